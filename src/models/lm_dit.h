/* lm_dit.h — the MDLM DiT (src/models/dit.h) seen as an lm_model (src/models/lm.h): raw output
 * rows at the diffusion times given (σ = 0 without them, as the decoders have no diffusion
 * time), soft-masked inputs through src/softmask, and the output layer only on the rows asked
 * for. shift = 1 makes it a "pretend Dream" (the decoder reads row i − 1 for position i), which
 * the tests use. An lm_dit is one generation state: its scratch is its own, the weights are
 * shared read-only.
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
    float *sigma;     /* (B_alloc) σ(t) of each canvas, zeros without times */
    int32_t *rows;    /* (B_alloc·T) flat indices of the rows asked for */
} lm_dit;

/* Fills *out with a view of m (which must outlive it). */
void lm_dit_init(lm_dit *d, lm_model *out, const dit_model *m, int shift, int nthreads);
void lm_dit_free(lm_dit *d);
/* The bytes a forward over [B, T] would allocate beyond the scratch d holds now (saturating):
 * for checking a whole generation against the available memory before it starts. */
size_t lm_dit_forward_bytes(const lm_dit *d, int B, int T);

#endif
