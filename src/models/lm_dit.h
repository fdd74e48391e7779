/* lm_dit.h — the MDLM DiT (src/models/dit.h) seen as an lm_model (src/models/lm.h), so that the decoders
 * can drive it: raw output rows at σ = 0 (the decoders have no diffusion time), soft-masked
 * inputs from per-position feedback, and the output layer only on the rows asked for.
 * shift = 1 makes it a "pretend Dream" (the decoder reads row i − 1 for position i), which
 * the tests use until a Dream checkpoint is at hand. Not thread-safe (one context, one run).
 */
#ifndef SMDLM_LM_DIT_H
#define SMDLM_LM_DIT_H

#include "models/dit.h"
#include "models/lm.h"

typedef struct {
    const dit_model *m;
    dit_acts acts;    /* allocated for (B_alloc, T) on first use, grown when needed */
    int B_alloc, T;
    int nthreads;
    float *sigma;     /* (B_alloc) zeros */
    int32_t *rows;    /* (B_alloc·T) flat indices of the rows asked for */
} lm_dit;

/* Fills *out with a view of m (which must outlive it). */
void lm_dit_init(lm_dit *d, lm_model *out, const dit_model *m, int shift, int nthreads);
void lm_dit_free(lm_dit *d);

#endif
