/* lm.h — the view of a bidirectional denoiser that the decoders (DESIGN §5) need, whatever the
 * architecture behind it (the MDLM DiT, Dream, LLaDA).
 *
 * forward() returns the network's raw output rows (before SUBS, before Dream's shift) for a
 * canvas x [B, T]. With fb != NULL it feeds soft-masked inputs (DESIGN §3): at every position
 * where x == mask_id the input embedding is sm_mix_rows(E[mask], E[fb.idx], fb) — the
 * feedback's λ may be 0 (no previous prediction: plain E[mask]); elsewhere E[x].
 * need (may be NULL = all) marks the output rows [B·T] the caller will read; an
 * implementation may skip the output projection for the others (their rows are then
 * unspecified). With shift = 1 the prediction for position i is output row i − 1 (row 0
 * predicts position 0), as in Dream.
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
    int (*forward)(void *ctx, const int32_t *x, const sm_feedback *fb, const uint8_t *need,
                   int B, int T, float *logits);
    /* Optional (NULL: the model has no key/value cache). forward() over the positions
     * [lo, hi) of each canvas, the others' keys/values read from the model's cache; [0, T)
     * refreshes the cache (a full forward). Batch row b uses cache row cache_rows[b] (NULL: b)
     * of the last refresh. Rows outside the window are unspecified afterwards (src/models/kvcache.h). */
    int (*forward_cached)(void *ctx, const int32_t *x, const sm_feedback *fb,
                          const uint8_t *need, int B, int T, int lo, int hi,
                          const int *cache_rows, float *logits);
    void *ctx;
} lm_model;

#endif
