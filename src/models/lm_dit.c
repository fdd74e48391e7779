/* lm_dit.c — the MDLM DiT as an lm_model; see lm_dit.h and lm.h. */
#include "models/lm_dit.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "models/noise.h"
#include "softmask/softmask.h"
#include "base/util.h"

static void free_scratch(lm_dit *d) {
    if (d->B_alloc) {
        dit_acts_free(&d->acts);
        free(d->sigma);
        free(d->rows);
    }
    d->B_alloc = 0;
}

/* The scratch of a forward over [B, T] (saturating): activations, σ and row indices. */
static size_t scratch_bytes(const lm_dit *d, int B, int T, int nthreads) {
    const size_t per_canvas = sizeof(float) + sizeof(int32_t) * (size_t)T;
    return sm_size_add(dit_acts_bytes(&d->m->cfg, B, T, nthreads),
                       sm_size_mul(per_canvas, (size_t)B));
}

/* The threads the attention scratch is sized for: never fewer than the OpenMP pool can run. */
static int scratch_threads(const lm_dit *d) {
    return d->nthreads < omp_get_max_threads() ? omp_get_max_threads() : d->nthreads;
}

static int ensure_acts(lm_dit *d, int B, int T) {
    if (d->B_alloc >= B && d->T == T) return 0;
    free_scratch(d);
    d->nthreads = scratch_threads(d);
    if (dit_acts_alloc(&d->acts, &d->m->cfg, B, T, d->nthreads)) return -1;
    d->acts.per_canvas = 1; /* a sample's output does not depend on its batch */
    d->sigma = sm_calloc((size_t)B, sizeof(float));
    d->rows = sm_malloc(sizeof(int32_t) * (size_t)B * T);
    d->B_alloc = B;
    d->T = T;
    return 0;
}

size_t lm_dit_forward_bytes(const lm_dit *d, int B, int T) {
    if (d->B_alloc >= B && d->T == T) return 0;
    const size_t need = scratch_bytes(d, B, T, scratch_threads(d));
    const size_t have = d->B_alloc ? scratch_bytes(d, d->B_alloc, d->T, d->nthreads) : 0;
    return need > have ? need - have : 0; /* the old scratch is freed first */
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
    if (ensure_acts(d, B, T)) return -1;
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
    free_scratch(d);
    memset(d, 0, sizeof *d);
}
