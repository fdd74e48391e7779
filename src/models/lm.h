/* lm.h — the one view of a bidirectional denoiser that every generation loop drives, whatever
 * the architecture behind it (the MDLM DiT, Dream, LLaDA): the MDLM samplers (src/generate/
 * sampler.c) and the Dream/LLaDA decoders (src/generate/decoder.c) both run on it.
 *
 * forward() returns the network's raw output rows (before SUBS, before Dream's shift) for a
 * canvas x [B, T] at diffusion times t [B] (NULL: no time input; a model without time
 * conditioning ignores t). With sm and fb != NULL it feeds soft-masked inputs (the protocol of
 * src/softmask/softmask.h: fb [B·T] indexed like x, top-k from sm->k). need (may be NULL = all)
 * marks the output rows [B·T] the caller will read; an implementation may skip the output
 * projection for the others (their rows are then unspecified). With shift = 1 the prediction
 * for position i is output row i − 1 (row 0 predicts position 0), as in Dream.
 *
 * ctx is per generation state: it owns the scratch of its forwards, so two states of one
 * loaded model run concurrently from two threads.
 */
#ifndef SMDLM_LM_H
#define SMDLM_LM_H

#include <stdint.h>

#include "softmask/softmask.h"

typedef struct {
    int vocab_size;   /* V: floats per output row */
    int mask_id;
    int shift;        /* 1: Dream's logit shift */
    int max_len;      /* longest canvas the model accepts */
    int uses_time;    /* 1: the output depends on t (time-conditioned MDLM) */
    const char *name; /* for error messages (the model directory); may be NULL */
    int (*forward)(void *ctx, const int32_t *x, const double *t, const sm_params *sm,
                   const sm_feedback *fb, const uint8_t *need, int B, int T, float *logits);
    /* Optional (NULL: the model has no key/value cache). forward() over the positions
     * [lo, hi) of each canvas, the others' keys/values read from the model's cache; [0, T)
     * refreshes the cache (a full forward). Batch row b uses cache row cache_rows[b] (NULL: b)
     * of the last refresh. Rows outside the window are unspecified afterwards (src/models/kvcache.h). */
    int (*forward_cached)(void *ctx, const int32_t *x, const sm_params *sm,
                          const sm_feedback *fb, const uint8_t *need, int B, int T, int lo,
                          int hi, const int *cache_rows, float *logits);
    void *ctx;
} lm_model;

#endif
