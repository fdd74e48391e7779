/* step.h — what a generation loop (the MDLM samplers, the Dream/LLaDA decoders) reports after
 * every denoising step, and how a caller stops it: the hook under the public API's step and
 * abort callbacks.
 */
#ifndef SMDLM_STEP_H
#define SMDLM_STEP_H

#include <stdint.h>

#include "models/lm.h"

typedef struct {
    int step;            /* steps done so far (1 after the first) */
    int steps;           /* planned steps (threshold decoding: the planned count, or 0) */
    int B, T;            /* canvases [B, T] */
    int mask_id;
    int forwards;        /* real network evaluations so far */
    const int32_t *x;    /* the canvases after the step */
    /* [B·T] the soft-masking weight λ each still-masked position's next input will carry
     * (0 at other positions); NULL when soft-masking is off */
    const float *lambda;
} gen_step;

/* Called after every step; a non-zero return stops the run, which then returns GEN_STOPPED
 * with the canvases as they are (masked positions left masked). */
typedef int (*gen_step_fn)(void *user, const gen_step *s);

#define GEN_STOPPED 1

/* The error of a step whose prediction rows give no prediction — bad input, never an
 * assertion: names `when` ("step 3 of 128"), the model, the problem (NULL: the rows held a
 * NaN or an infinity, as a model whose weights hold them gives) and the first of the n canvas
 * positions pos (flat b·T + t). Returns −1. */
int gen_position_error(const lm_model *m, const char *when, const char *problem,
                       const int32_t *pos, int n, int T);

#endif
