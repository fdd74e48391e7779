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

/* What a masked input mixes (transparency_alg): the top-k tokens' embeddings weighted by the
 * softmax of their logits, or every token's weighted by softmax(logits / temp), whose entropy
 * then also gives λ. */
typedef enum { SM_ALG_TOPK = 0, SM_ALG_TEMP } sm_alg;
/* How λ's scale follows decoding (transparency_scheduling, sm_scheduled_scale). */
typedef enum { SM_SCHEDULE_NONE = 0, SM_SCHEDULE_LINEAR, SM_SCHEDULE_STEPWISE } sm_schedule;

typedef struct {
    int enabled;
    float scale;     /* in [0, 1] */
    float centre;    /* ≤ 0 */
    float steepness; /* > 0 */
    int k;           /* top-k, 1..SM_MAX_K */
    sm_alg alg;
    float temp;      /* SM_ALG_TEMP's temperature (mixture_temp), > 0 */
    sm_schedule schedule;
} sm_params;

/* Below this scale soft-masking counts as untrained: λ ≤ scale (docs/DESIGN.md §3.1), so a
 * masked input is (1 − λ)·E[m] + λ·Σ π_j E[v_j], within scale·|Σ π_j E[v_j] − E[m]| of the
 * bare mask embedding — less than a thousandth of the way to the predicted tokens. IBM's
 * initial scale (1e-6, §3.2) is far below it. */
#define SM_UNTRAINED_SCALE 1e-3f

/* IBM defaults for an MDLM (scale 0 means switched off until trained). */
void sm_params_default(sm_params *p);
int sm_params_validate(const sm_params *p);
/* On with a scale below SM_UNTRAINED_SCALE. */
int sm_params_untrained(const sm_params *p);
/* What p does, for messages: "off", "on", or with a scale below SM_UNTRAINED_SCALE
 * "on (k=3, λ scale 1.0e-06: untrained, the feedback barely changes the input)" (temp=T
 * instead of k=K for SM_ALG_TEMP). Returns buf. */
const char *sm_params_describe(const sm_params *p, char *buf, size_t cap);
/* Reads IBM's transparency_config.json (transformed values). "transparency_alg": "none" (the
 * reference's arms without soft-masking) sets enabled = 0 and reads no values; an unknown
 * algorithm or schedule is an error naming the file and the key. */
int sm_params_load_json(sm_params *p, const char *path);
int sm_params_save_json(const sm_params *p, const char *path);

/* The raw (trained) parameterisation and back: scale = sigmoid(raw_scale),
 * centre = −softplus(raw_centre) − 1e-6, steepness = softplus(raw_steepness) + 1e-6. */
void sm_params_from_raw(sm_params *p, float raw_scale, float raw_centre, float raw_steep);
void sm_params_to_raw(const sm_params *p, float *raw_scale, float *raw_centre, float *raw_steep);

/* The scale λ uses when `masked` of the `masked0` positions masked at the start are still
 * masked (IBM coding/patches/dream_sm.patch, get_time_dependence from soft to hard masking):
 * t = masked / masked0 (1 when masked0 is 0); none: scale, linear: scale·t, stepwise: scale
 * while t > 0.5, then 0. */
float sm_scheduled_scale(const sm_params *p, int masked, int masked0);
/* p with its scale at that point of decoding and no schedule: the parameters a step's feedback
 * uses (a copy of p when it has no schedule). */
sm_params sm_params_at(const sm_params *p, int masked, int masked0);

typedef struct {
    float neg_h;
    float lambda;
    int32_t idx[SM_MAX_K];
    float pi[SM_MAX_K];
    const float *probs; /* SM_ALG_TEMP: softmax(row / temp) over V, else NULL (then idx/π) */
} sm_feedback;

/* Statistics of one previous-prediction row of length V: negH, top-k indices (descending,
 * ties to the lower index) and π. λ is filled from p. With SM_ALG_TEMP, negH is that of
 * softmax(row / temp), which is written to probs (V floats, kept by the caller until the mix
 * has read it) and referenced by f; probs is unused (may be NULL) otherwise. */
void sm_feedback_from_row(const sm_params *p, const float *row, int V, sm_feedback *f,
                          float *probs);
/* Feedback of a position whose previous prediction was the one-hot of `token` (a SUBS
 * carry-over row, e.g. a position remasked by ReMDM). */
void sm_feedback_from_token(const sm_params *p, int32_t token, sm_feedback *f);
float sm_lambda(const sm_params *p, float neg_h);

/* Feedback of every position of the canvases x [B, T] that holds mask_id, from prediction rows
 * [B·T, V]: row i for position i, or with shift (Dream's logit shift) row i − 1 (row 0 for
 * position 0). Entries of other positions are zeroed. probs: [B·T, V] for SM_ALG_TEMP (see
 * sm_feedback_from_row), else NULL. */
void sm_feedback_canvas(const sm_params *p, const int32_t *x, int B, int T, int32_t mask_id,
                        const float *rows, int V, int shift, sm_feedback *fb, float *probs);
/* Floats of the probs buffer sm_feedback_canvas / sm_feedback_from_row need for n positions
 * (0 unless SM_ALG_TEMP), and that buffer (NULL when it needs none). */
size_t sm_feedback_probs_floats(const sm_params *p, size_t n, int V);
float *sm_feedback_probs_alloc(const sm_params *p, size_t n, int V);

/* Embedding rows of n ids into out[n, D] (the model's lookup, whatever its storage). */
typedef void (*sm_embed_fn)(void *ctx, const int32_t *ids, int n, float *out);

/* Soft inputs: out[n, D] holds E[ids[i]] on entry; every row whose id is mask_id and whose
 * feedback fb[i] has λ ≠ 0 becomes (1−λ)·E[mask] + λ·Σ_{j<p->k} π_j·E[idx_j], or with
 * fb[i].probs (SM_ALG_TEMP) (1−λ)·E[mask] + λ·Σ_v probs_v·E[v] over the vocab_size tokens.
 * fb is indexed like ids. The result does not depend on threads. */
void sm_mix_inputs(float *out, int D, size_t n, const int32_t *ids, int32_t mask_id,
                   int vocab_size, const sm_params *p, const sm_feedback *fb, sm_embed_fn embed,
                   void *ctx);

#endif
