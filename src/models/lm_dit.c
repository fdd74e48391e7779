/* lm_dit.c — the MDLM DiT as an lm_model; see lm_dit.h, lm.h and DESIGN §3 (soft inputs). */
#include "models/lm_dit.h"

#include <omp.h>
#include <string.h>

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

/* Number of leading feedback entries with weight: the decoders zero π beyond their k
 * (NOTES.md, "Decoders"), so a view never needs to know k. */
static int feedback_k(const sm_feedback *f) {
    int k = 0;
    while (k < SM_MAX_K && f->pi[k] > 0.0f) k++;
    return k;
}

/* a->x = E[x] at every position, the soft mix at masked positions that carry feedback. */
static void embed_inputs(lm_dit *d, const int32_t *x, const sm_feedback *fb, size_t n) {
    const dit_model *m = d->m;
    const int D = m->cfg.hidden, mask_id = m->cfg.mask_id;
    if (!fb) {
        dit_embed_ids(m, &d->acts, x, (int)n, 1);
        return;
    }
#pragma omp parallel
    {
        float *buf = sm_malloc(sizeof(float) * (size_t)(SM_MAX_K + 1) * D), *e_mask = buf;
        const float *e_top[SM_MAX_K];
        for (int j = 0; j < SM_MAX_K; j++) e_top[j] = buf + (size_t)(j + 1) * D;
        dit_embedding_row(m, mask_id, e_mask);
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++) {
            float *out = d->acts.x + i * (size_t)D;
            const int k = x[i] == mask_id ? feedback_k(&fb[i]) : 0;
            if (k == 0 || fb[i].lambda == 0.0f) {
                dit_embedding_row(m, x[i], out);
                continue;
            }
            sm_params p = {.enabled = 1, .k = k};
            for (int j = 0; j < k; j++) dit_embedding_row(m, fb[i].idx[j], (float *)e_top[j]);
            sm_mix_rows(out, D, e_mask, e_top, &p, &fb[i]);
        }
        free(buf);
    }
}

static int lm_dit_forward(void *ctx, const int32_t *x, const sm_feedback *fb, const uint8_t *need,
                          int B, int T, float *logits) {
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
    embed_inputs(d, x, fb, n);
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
