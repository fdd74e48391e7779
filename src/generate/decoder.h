/* decoder.h — unmasking strategies for Dream / LLaDA-style diffusion LMs (docs/DESIGN.md §5), with or
 * without soft-masking (docs/DESIGN.md §3), over any lm_model (src/models/lm.h).
 *
 *   DECODER_DREAM  Dream's generation_utils `_sample`: timesteps linspace(1, 1e-3, steps + 1);
 *                  `origin` reveals each masked position w.p. 1 − s/t; the confidence
 *                  algorithms reveal int(n_mask·(1 − s/t)) positions per step (all at the last)
 *                  by top confidence, or sampled from softmax(confidence / alg_temp).
 *                  With a block length below gen_len, Fast-dLLM's block-wise Dream
 *                  (generation_utils_block): blocks left to right, steps / blocks each; a block's
 *                  first step reveals its first position, the others follow the same quotas on
 *                  linspace(1, 1e-3, steps per block + 1) inside the block (not with origin).
 *   DECODER_LLADA  LLaDA's generate.py: semi-autoregressive blocks, equal reveal quotas per
 *                  step inside the block, tokens ~ softmax(logits / T) (argmax at T = 0),
 *                  confidence p(token) (`low_confidence`) or uniform (`random`).
 *   threshold > 0  Fast-dLLM parallel decoding: each step reveals every candidate whose
 *                  confidence is ≥ τ, at least the best one, until nothing is masked.
 *
 * Rows of a batch are independent (RNG seeded with seed + b; NOTES.md lists the draw order) and
 * share the forwards. A row stops once every position before its first revealed EOS is
 * decoded. Without soft-masking a step that changed nothing reuses the last forward.
 */
#ifndef SMDLM_DECODER_H
#define SMDLM_DECODER_H

#include <stdint.h>

#include "generate/step.h"
#include "models/kvcache.h"
#include "models/lm.h"
#include "softmask/softmask.h"

typedef enum { DECODER_DREAM = 0, DECODER_LLADA } decoder_style;
typedef enum {
    DECODER_ALG_ORIGIN = 0,
    DECODER_ALG_MASKGIT_PLUS,
    DECODER_ALG_TOPK_MARGIN,
    DECODER_ALG_ENTROPY,
} decoder_alg;
typedef enum { DECODER_REMASK_LOW_CONFIDENCE = 0, DECODER_REMASK_RANDOM } decoder_remask;

typedef struct {
    decoder_style style;
    int gen_len;           /* positions to generate after the prompt (max_new_tokens), ≥ 1 */
    int steps;             /* ≥ 1; ignored when tokens_per_step > 0 */
    int tokens_per_step;   /* > 0: steps = ceil(gen_len / tokens_per_step) */
    float temperature;     /* 0: argmax */
    float top_p;           /* (0, 1]; 1: off (Dream's rule: the token crossing top_p stays) */
    int top_k;             /* 0: off */
    decoder_alg alg;       /* DECODER_DREAM */
    float alg_temp;        /* DECODER_DREAM: 0 = top confidence, > 0 = sampled positions */
    int block_length;      /* divides gen_len; 0 = gen_len (one block). DECODER_DREAM: below
                              gen_len switches to Fast-dLLM's block-wise rules */
    decoder_remask remasking; /* DECODER_LLADA */
    float threshold;       /* 0: off, else in (0, 1] */
    int eos_id;            /* −1: none */
    float eos_penalty;     /* subtracted from the EOS logit of every prediction (needs eos_id) */
    /* LLaDA's generate.py options (DECODER_LLADA only):
     * cfg_scale > 0: classifier-free guidance, logits = u + (cfg_scale + 1)·(c − u) with c from
     * the canvases and u from copies whose prompt (and fixed) positions hold the mask id; one
     * forward of 2B rows per step (no soft-masking, no cache) */
    float cfg_scale;
    int logits_inf_id;     /* −1: off; else this token's logit is −∞ in every prediction, for
                              the token and the confidence (logits_eos_inf: <|endoftext|>) */
    int conf_inf_id;       /* −1: off; else the low_confidence confidence is p(token) under the
                              softmax with this token's logit −∞ (confidence_eos_eot_inf: of its
                              chained assignment only the <|eot_id|> part reaches the confidence) */
    uint64_t seed;
    sm_params sm;          /* sm.enabled = 0: no soft-masking */
    kv_cache_mode cache;   /* KV_CACHE_OFF (default, exact); prefix / dual: approximate
                              (kvcache.h; needs lm_model.forward_cached; dual needs blocks) */
    int cache_refresh;     /* with a cache: every N-th forward inside a block is a full one
                              (0: only when a block starts; 1: every forward, exact) */
    /* positions after the prompt that keep the token the caller put there (infilling), [B·T];
     * NULL: every position after the prompt is generated */
    const uint8_t *fixed;
    /* called after every step with the whole canvas; a non-zero return stops the run */
    gen_step_fn on_step;
    void *user;
} decoder_params;

typedef struct {
    int forwards;        /* calls to lm_model.forward */
    int steps;           /* decoding steps run (a step without a forward counts) */
    int planned_steps;   /* steps after tokens_per_step */
    long revealed;       /* positions revealed, all rows */
    long rows_computed;  /* output rows asked of the model, all forwards */
    long positions_computed; /* positions run through the network, all forwards (rows × window) */
    int refreshes;       /* full forwards that (re)filled the key/value cache */
    double seconds, forward_seconds;
} decoder_stats;

void decoder_params_default(decoder_params *p);
/* Ranges, and what the model allows: prompt_len + gen_len ≤ max_len. */
int decoder_params_validate(const decoder_params *p, const lm_model *m, int prompt_len);
/* 1 when a DECODER_DREAM run decodes Fast-dLLM's blocks (block_length not 0 and not gen_len). */
int decoder_dream_blocks(const decoder_params *p);
/* steps after tokens_per_step (ceil(gen_len / tokens_per_step)). */
int decoder_planned_steps(const decoder_params *p);

int decoder_alg_parse(const char *name, decoder_alg *out);
const char *decoder_alg_name(decoder_alg a);
int decoder_remask_parse(const char *name, decoder_remask *out);
const char *decoder_remask_name(decoder_remask r);

/* Dream's float32 schedule: linspace(1, eps, n) exactly as torch computes it (n ≥ 2). */
void decoder_linspace(float *out, float start, float end, int n);
/* Positions to reveal at step i of `steps` with n_mask masked (Dream, float32 as the reference). */
int decoder_dream_quota(int n_mask, const float *timesteps, int i, int steps);

/* x [B, T = prompt_len + gen_len]: each row's prompt in its first prompt_len positions; the rest
 * is overwritten with the mask id except where p->fixed keeps a token (infilling: the reference
 * decoders generate exactly the masked positions). GEN_STOPPED when the step hook stopped the run. On return x holds the canvases and gen_out[b] (may be NULL)
 * the number of generated tokens before the row's first EOS (gen_len without one); positions
 * after that EOS are unspecified (they may still hold the mask id). */
int decoder_run(const lm_model *m, const decoder_params *p, int32_t *x, int B, int prompt_len,
                int *gen_out, decoder_stats *stats);
/* The bytes decoder_run allocates for [B, T] canvases over V tokens (saturating), the model's
 * scratch not included; decoder_run checks them against the available memory first. */
size_t decoder_run_bytes(const decoder_params *p, int B, int T, int V);

#endif
