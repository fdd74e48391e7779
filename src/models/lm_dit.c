/* lm_dit.c — the MDLM DiT as an lm_model; see lm_dit.h and lm.h. */
#include "models/lm_dit.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "models/noise.h"
#include "softmask/softmask.h"
#include "base/util.h"

static void ensure_acts(lm_dit *d, int B, int T) {
    if (d->B_alloc >= B && d->T == T) return;
    if (d->B_alloc) {
        dit_acts_free(&d->acts);
        free(d->sigma);
        free(d->rows);
    }
    /* the attention scratch is per OpenMP thread: never fewer than the pool can run */
    if (d->nthreads < omp_get_max_threads()) d->nthreads = omp_get_max_threads();
    dit_acts_alloc(&d->acts, &d->m->cfg, B, T, d->nthreads);
    d->sigma = sm_calloc((size_t)B, sizeof(float));
    d->rows = sm_malloc(sizeof(int32_t) * (size_t)B * T);
    d->B_alloc = B;
    d->T = T;
}

static int lm_dit_forward(void *ctx, const int32_t *x, const double *t, const sm_params *sm,
                          const sm_feedback *fb, const uint8_t *need, int B, int T, float *logits) {
    lm_dit *d = ctx;
    const int V = d->m->cfg.vocab_size;
    const size_t n = (size_t)B * T;
    if (B < 1 || T < 1 || T > d->m->cfg.model_length)
        return SM_ERR("canvas [%d, %d] does not fit the model (length %d)", B, T,
                      d->m->cfg.model_length);
    for (size_t i = 0; i < n; i++)
        if (x[i] < 0 || x[i] >= V)
            return SM_ERR("token id %d at position %zu is outside [0, %d)", x[i], i, V);
    ensure_acts(d, B, T);
    for (int b = 0; b < B; b++) d->sigma[b] = t ? mdlm_sigma(t[b]) : 0.0f;
    dit_embed_ids(d->m, &d->acts, x, B, T);
    if (sm && fb)
        sm_mix_inputs(d->acts.x, d->m->cfg.hidden, n, x, d->m->cfg.mask_id, sm, fb, dit_embed_rows,
                      (void *)d->m);
    if (!need) {
        dit_forward_embedded(d->m, &d->acts, d->sigma, B, T, NULL, 0, logits);
        return 0;
    }
    int nrows = 0;
    for (size_t i = 0; i < n; i++)
        if (need[i]) d->rows[nrows++] = (int32_t)i;
    if (nrows == 0) return 0;
    dit_forward_embedded(d->m, &d->acts, d->sigma, B, T, d->rows, nrows, logits);
    /* the rows come back packed in order; move each to its place, last first */
    for (int r = nrows - 1; r >= 0; r--)
        if (d->rows[r] != r)
            memmove(logits + (size_t)d->rows[r] * V, logits + (size_t)r * V, sizeof(float) * V);
    return 0;
}

void lm_dit_init(lm_dit *d, lm_model *out, const dit_model *m, int shift, int nthreads) {
    memset(d, 0, sizeof *d);
    d->m = m;
    d->nthreads = nthreads < 1 ? 1 : nthreads;
    out->vocab_size = m->cfg.vocab_size;
    out->mask_id = m->cfg.mask_id;
    out->shift = shift;
    out->max_len = m->cfg.model_length;
    out->uses_time = m->cfg.time_conditioning;
    out->forward = lm_dit_forward;
    out->forward_cached = NULL; /* no key/value cache */
    out->ctx = d;
}

void lm_dit_free(lm_dit *d) {
    if (d->B_alloc) {
        dit_acts_free(&d->acts);
        free(d->sigma);
        free(d->rows);
    }
    memset(d, 0, sizeof *d);
}
