/* softmask.h — soft-masking (docs/DESIGN.md §3, IBM's "mixinputs_with_topk"), independent of any
 * model: it sees prediction rows of V floats and embedding rows of D floats, nothing else.
 *
 * For a still-masked position with previous prediction row z:
 *   p = softmax(z), negH = Σ p·log p, λ = scale·sigmoid(steepness·(negH − centre)),
 *   π = softmax(top-k of z), e = (1−λ)·E[m] + λ·Σ_j π_j·E[v_j].
 * Every other position keeps E[x]. negH uses log p = z − logsumexp(z) instead of the
 * reference's log(p + 1e-10); the two differ by < 1e-9 per row (see NOTES.md).
 *
 * The protocol every model family and generation loop follows:
 *   1. after a real forward, the loop computes the feedback of each position that stays
 *      masked from that position's prediction row (sm_feedback_from_row) — the row is the
 *      family's parameter: MDLM uses SUBS log-probs, Dream/LLaDA the (shifted, EOS-penalised)
 *      raw logits; a position with no row of its own (remasked by ReMDM since the forward)
 *      takes the one-hot of its old token (sm_feedback_from_token);
 *   2. the next forward gets (sm_params, feedback[B·T]) and builds its inputs with
 *      sm_mix_inputs through the model's embedding-row lookup.
 * Top-k lives in sm_params.k alone: feedback entries beyond it are never read.
 */
#ifndef SMDLM_SOFTMASK_H
#define SMDLM_SOFTMASK_H

#include <stddef.h>
#include <stdint.h>

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

/* Feedback of every position of the canvases x [B, T] that holds mask_id, from prediction rows
 * [B·T, V]: row i for position i, or with shift (Dream's logit shift) row i − 1 (row 0 for
 * position 0). Entries of other positions are zeroed. */
void sm_feedback_canvas(const sm_params *p, const int32_t *x, int B, int T, int32_t mask_id,
                        const float *rows, int V, int shift, sm_feedback *fb);

/* Embedding rows of n ids into out[n, D] (the model's lookup, whatever its storage). */
typedef void (*sm_embed_fn)(void *ctx, const int32_t *ids, int n, float *out);

/* Soft inputs: out[n, D] holds E[ids[i]] on entry; every row whose id is mask_id and whose
 * feedback fb[i] has λ ≠ 0 becomes (1−λ)·E[mask] + λ·Σ_{j<p->k} π_j·E[idx_j]. fb is indexed
 * like ids. Rows are independent (run in parallel); the result does not depend on threads. */
void sm_mix_inputs(float *out, int D, size_t n, const int32_t *ids, int32_t mask_id,
                   const sm_params *p, const sm_feedback *fb, sm_embed_fn embed, void *ctx);

#endif
