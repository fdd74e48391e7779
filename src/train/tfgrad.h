/* tfgrad.h — the gradient of the coding fine-tuning of a Dream or LLaDA model
 * (docs/DESIGN.md §3.7): the base model frozen and used in place in its dtype (f32, bf16, f16;
 * never widened as a whole), a PEFT LoRA / DoRA adapter (src/models/adapter.h) and the three
 * raw soft-masking scalars trained.
 *
 * Loss (IBM coding/train/components, `loss_calc: model_weighted`): the mean cross-entropy over
 * the counted masked positions of the batch, times 1/t (one t per batch). Dream's model loss
 * shifts the labels (output row i − 1 predicts position i; a mask at position 0 counts for
 * nothing); LLaDA's row i predicts position i. With soft-masking, pass 1 runs the inference
 * forward without gradient (adapter included), its feedback (negH, top-k, π) is detached and
 * only λ carries gradient to the scalars; pass 2 mixes its inputs (docs/DESIGN.md §3.6).
 * DoRA's row norm ‖W + s·B·A‖ is a constant in the backward (PEFT detaches it).
 */
#ifndef SMDLM_TFGRAD_H
#define SMDLM_TFGRAD_H

#include <stdint.h>

#include "models/adapter.h"
#include "models/transformer.h"
#include "train/train.h"

/* One adapted projection: parameters, gradients and what its backward needs. */
typedef struct {
    char name[128];      /* the module's name in the base model */
    int layer, proj;     /* the projection: layer and index in q, k, v, o, gate, up, down */
    linear_w *w;         /* the frozen base projection (no adapter attached) */
    int r;
    float scale;         /* lora_alpha / r (or / √r) */
    float *a, *b, *mag;  /* lora_A [r, in], lora_B [out, r], magnitude [out] (NULL: LoRA) */
    float *da, *db, *dmag;
    double *norm;        /* DoRA: ‖W + s·B·A‖ per row at the last forward */
    float *f;            /* DoRA: m / norm */
    float *u;            /* saved x·Aᵀ [B·T, r] */
    float *ypre;         /* DoRA: saved x·Wᵀ + s·u·Bᵀ [B·T, out] */
} tf_adapted;

typedef struct {
    const int32_t *xt; /* (B, T) noised ids: the mask id where masked */
    const int32_t *x0; /* (B, T) clean ids */
    float t;           /* the batch's diffusion time in (0, 1] */
} tf_batch;

typedef struct {
    transformer_model *m; /* the frozen base (not owned; projections carry no adapter) */
    int B, T;
    int ntargets;
    tf_adapted *targets;
    tf_adapted **by_proj; /* [L·7]: the adapted projection p of layer l, or NULL */
    int lowest;           /* lowest layer with a target */
    sm_raw sm;            /* trained soft-masking scalars */
    float sm_grad[3];     /* d loss / d (raw_scale, raw_centre, raw_steepness) */
    struct tf_acts *acts;
    tf_state pass1;       /* soft-masking's first pass (the inference forward) */
} tf_trainer;

/* The noise of one batch (IBM coding/train/components/data_collator.py, forward_process and
 * add_at_least_one_mask): one time t = t_min + (t_max − t_min)·u (at least 1e-3) for the
 * batch; every position at or after its row's prompt masked with probability
 * (1 − 1e-3)·t + 1e-3, the prompt never; a row left without a mask gets one at a position
 * drawn uniformly after its prompt. Draws from r in the order u, the positions row by row, one
 * more uniform per row without a mask. −1 with an error when a prompt leaves no position
 * (prompt_len[b] ≥ T) or the time range is not inside (0, 1]. */
int tf_noise_batch(sm_rng *r, const int32_t *x0, const int *prompt_len, int32_t *xt, float *t,
                   int B, int T, int mask_id, float t_min, float t_max);

/* A trainer of the adapter a on m (its targets, PEFT's rule) for batches of B × T; −1 with an
 * error (nothing kept) when the adapter does not fit m or the memory is not available. The
 * soft-masking scalars start at IBM's values (k = 1). */
int tf_trainer_init(tf_trainer *tr, transformer_model *m, const peft_adapter *a, int B, int T);
void tf_trainer_free(tf_trainer *tr);

/* Gradient accumulation as trainer_accumulate: zero once, then add scale·(the gradients of
 * each micro-batch); *loss is the micro-batch's loss. sm: the two-pass soft-masking step.
 * −1 with an error for ids outside the vocabulary. */
void tf_trainer_zero_grads(tf_trainer *tr);
int tf_trainer_accumulate(tf_trainer *tr, const tf_batch *b, int sm, float scale, double *loss);

/* Every gradient under PEFT's tensor name ("base_model.model." + module + ".lora_A.weight",
 * ".lora_B.weight", ".lora_magnitude_vector") plus softmask.raw_*, to a safetensors file. */
int tf_trainer_save_grads(const tf_trainer *tr, const char *path);

#endif
