/* softmask.h — soft-masking feedback (DESIGN §3, IBM's "mixinputs_with_topk").
 *
 * For a still-masked position with previous prediction row z (MDLM: SUBS log-probs):
 *   p = softmax(z), negH = Σ p·log p, λ = scale·sigmoid(steepness·(negH − centre)),
 *   π = softmax(top-k of z), e = (1−λ)·E[m] + λ·Σ_j π_j·E[v_j].
 * Every other position keeps E[x]. negH uses log p = z − logsumexp(z) instead of the
 * reference's log(p + 1e-10); the two differ by < 1e-9 per row (see NOTES.md).
 */
#ifndef SMDLM_SOFTMASK_H
#define SMDLM_SOFTMASK_H

#include <stddef.h>
#include <stdint.h>

#include "models/dit.h"

#define SM_MAX_K 16

typedef struct {
    int enabled;
    float scale;     /* in [0, 1] */
    float centre;    /* ≤ 0 */
    float steepness; /* > 0 */
    int k;           /* top-k, 1..SM_MAX_K */
} sm_params;

/* IBM defaults for an MDLM (scale 0 means switched off until trained). */
void sm_params_default(sm_params *p);
int sm_params_validate(const sm_params *p);
/* Reads IBM's transparency_config.json (transformed values). */
int sm_params_load_json(sm_params *p, const char *path);
int sm_params_save_json(const sm_params *p, const char *path);

/* The raw (trained) parameterisation and back: scale = sigmoid(raw_scale),
 * centre = −softplus(raw_centre) − 1e-6, steepness = softplus(raw_steepness) + 1e-6. */
void sm_params_from_raw(sm_params *p, float raw_scale, float raw_centre, float raw_steep);
void sm_params_to_raw(const sm_params *p, float *raw_scale, float *raw_centre, float *raw_steep);

typedef struct {
    float neg_h;
    float lambda;
    int32_t idx[SM_MAX_K];
    float pi[SM_MAX_K];
} sm_feedback;

/* Statistics of one previous-prediction row of length V: negH, top-k indices (descending,
 * ties to the lower index) and π. λ is filled from p. */
void sm_feedback_from_row(const sm_params *p, const float *row, int V, sm_feedback *f);
/* Feedback of a position whose previous prediction was the one-hot of `token` (a SUBS
 * carry-over row, e.g. a position remasked by ReMDM). */
void sm_feedback_from_token(const sm_params *p, int32_t token, sm_feedback *f);
float sm_lambda(const sm_params *p, float neg_h);
/* out[D] = (1−λ)·e_mask + λ·Σ_j π_j·e_j, given the k + 1 embedding rows. */
void sm_mix_rows(float *out, int D, const float *e_mask, const float *const *e_top,
                 const sm_params *p, const sm_feedback *f);

/* Soft input of a whole canvas (B·T positions) into x_out (B·T, D): E[x] at unmasked
 * positions; at masked ones the mix from row row_of[i] of prev (V floats per row), or —
 * when row_of[i] < 0 — from the one-hot of prev_token[i] (a position remasked since the
 * previous forward). prev_token may be NULL when every masked position has a row. */
void sm_build_input(float *x_out, const dit_model *m, const sm_params *p, const int32_t *x,
                    size_t n, const float *prev, const int32_t *row_of,
                    const int32_t *prev_token);

#endif
