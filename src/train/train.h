/* train.h — the training math of the DiT (docs/DESIGN.md §2, §3): forward with saved activations,
 * the MDLM NELBO (SUBS, weight 1/t on masked tokens, mean over all tokens) or the causal
 * next-token loss, the full backward pass, and the two-pass soft-masking step with
 * gradients to the three raw soft-masking scalars through λ only.
 *
 * A trainer owns its model's parameters in one allocation (dit_model_alloc layout), the
 * gradients in a second allocation of the same layout, and the activations for B×T. The
 * result of trainer_step is a pure function of its inputs (no randomness) and bit-identical
 * for the same thread count.
 */
#ifndef SMDLM_TRAIN_H
#define SMDLM_TRAIN_H

#include <stdint.h>

#include "models/dit.h"
#include "base/rng.h"
#include "softmask/softmask.h"

/* The three trained soft-masking scalars (IBM's raw parameterisation) and their gradients. */
typedef struct {
    float raw_scale, raw_centre, raw_steepness;
    int k;
} sm_raw;

typedef struct {
    dit_config cfg;
    int B, T, nthreads;
    dit_model model;    /* owned, contiguous parameters */
    dit_model grads;    /* same layout: gradients (model.owned of this one holds them) */
    dit_model ema;      /* exponential moving average of the parameters (after the first
                           trainer_ema_update), used for evaluation and export */
    size_t nparams;
    sm_raw sm;          /* trained scalars */
    float sm_grad[3];   /* d loss / d (raw_scale, raw_centre, raw_steepness) */
    int frozen;         /* `train --sm-only`: the backward runs to d x and the scalars'
                           gradients only; no parameter gradient is computed (grads stay 0) */
    float *mem;         /* saved activations and scratch (one allocation) */
    size_t mem_floats;
    struct train_acts *acts;
    dit_acts pass1;     /* inference activations for soft-masking's pass 1 */
} trainer;

typedef struct {
    const int32_t *xt; /* (B, T) noised ids: the mask id where masked (MDLM); input ids (causal) */
    const int32_t *x0; /* (B, T) clean ids (targets) */
    const float *t;    /* (B) diffusion times in (0, 1] (unused by the causal loss) */
} train_batch;

/* MDLM's forward process for one batch (docs/DESIGN.md §2): antithetic times from one uniform u,
 * t_b = (1 − ε)·((u + b/B) mod 1) + ε with ε = 1e-3, then every token masked independently
 * with probability (1 − 1e-3)·t_b. All draws from r, in batch then position order. */
void mdlm_noise_batch(sm_rng *r, const int32_t *x0, int32_t *xt, float *t, int B, int T,
                      int mask_id);
/* The same draws for a global batch of B_global rows, keeping only rows [b0, b0 + B) (one
 * process's share under data parallelism: every process draws the whole batch). */
void mdlm_noise_rows(sm_rng *r, const int32_t *x0, int32_t *xt, float *t, int B_global, int b0,
                     int B, int T, int mask_id);

/* Copies the parameters of `src` (mapped or owned) into a fresh trainer for batches of B×T;
 * −1 (nothing allocated) when that would not fit in the available memory. */
int trainer_init(trainer *tr, const dit_model *src, int B, int T, int nthreads);
void trainer_free(trainer *tr);
void sm_raw_from_params(sm_raw *r, const sm_params *p);
void sm_raw_to_params(const sm_raw *r, sm_params *p);
/* λ at one position's negH and its derivatives dlam = d λ / d (raw_scale, raw_centre,
 * raw_steepness) (docs/DESIGN.md §3.6). */
float sm_lambda_grad(const sm_raw *r, float neg_h, float dlam[3]);

/* Zeroes the gradients, runs forward and backward on one batch and returns the loss:
 * the NELBO (cfg.causal == 0; two-pass soft-masking when sm != 0) or the next-token
 * cross-entropy (cfg.causal). Ids must be < V (validated by the caller). */
double trainer_step(trainer *tr, const train_batch *b, int sm);
/* Gradient accumulation: zero once, then add scale·(gradients of each micro-batch);
 * returns the micro-batch's (unscaled) loss. trainer_step = zero + accumulate(1). */
void trainer_zero_grads(trainer *tr);
double trainer_accumulate(trainer *tr, const train_batch *b, int sm, float scale);
/* Loss only (no gradients, no saved activations): the evaluation path. */
double trainer_loss(trainer *tr, const train_batch *b, int sm);

/* ema = decay·ema + (1 − decay)·params; the first call copies the parameters. */
void trainer_ema_update(trainer *tr, float decay);
/* ema = the parameters of src (a model of the trainer's shape, mapped or owned). */
void trainer_set_ema(trainer *tr, const dit_model *src);
/* A model directory that `smdlm generate` loads: config.json, model.safetensors (EMA
 * weights when use_ema and available, plus the raw soft-masking scalars as
 * softmask.raw_*) and, when with_sm (the model was trained with soft-masking passes),
 * transparency_config.json (transformed values; never for causal models). A model trained
 * without soft-masking carries no SM values, so samplers leave it off. */
int trainer_export(const trainer *tr, const char *dir, int use_ema, int with_sm);

/* Bytes of activations and scratch the trainer holds (saved activations, pass-1 buffers). */
size_t trainer_activation_bytes(const trainer *tr);

/* Writes every gradient under its name in the source checkpoint (with or without
 * `backbone.`), plus
 * softmask.raw_scale / raw_centre / raw_steepness, to a safetensors file. */
int trainer_save_grads(const trainer *tr, const char *path);

#endif
