/* smdlm.h — public API of libsmdlm: masked diffusion language models with soft-masking
 * (MDLM DiT checkpoints, and Dream / Dream-Coder / LLaDA directories).
 *
 * A model (weights, tokenizer, configuration, the directory's soft-masking values) is loaded
 * once and is read-only afterwards; a state holds what one generation needs (scratch, the
 * canvas, per-request buffers). Several states may run on one model at once, one thread each.
 *
 * Usage (error handling shortened; every call that can fail returns NULL or SMDLM_ERROR (-1)
 * and smdlm_last_error() says what and where):
 *
 *     #include <smdlm.h>
 *
 *     // after each step: the canvas, its masked positions and their soft-masking weights λ;
 *     // a non-zero return stops the run (the call then returns SMDLM_ABORTED)
 *     static int progress(void *user, const smdlm_step *s) {
 *         fprintf(stderr, "step %d/%d, %d forwards\n", s->step, s->steps, s->forwards);
 *         return atomic_load((atomic_int *)user);  // e.g. a flag another thread sets
 *     }
 *
 *     smdlm_load_params lp = smdlm_load_default_params();
 *     lp.threads = 4;
 *     smdlm_model *model = smdlm_model_load("models/demo", &lp);
 *     if (!model) { fprintf(stderr, "%s\n", smdlm_last_error()); return 1; }
 *     smdlm_state *st = smdlm_state_new(model);   // one per concurrent generation
 *
 *     smdlm_gen_params gp = smdlm_gen_default_params();
 *     gp.mdlm.len = 128;       // canvas length in tokens
 *     gp.steps = 32;           // 4 tokens revealed per step on average
 *     gp.seed = 7;
 *     gp.n = 2;                // two samples (seeds 7 and 8), one batch
 *     gp.sm.k = 3;             // soft-masking as the directory says, top-3 mixed in
 *     gp.on_step = progress;
 *     gp.user = &stop_flag;
 *     smdlm_result r;
 *     if (smdlm_generate(st, "In the beginning", &gp, &r) == SMDLM_OK)
 *         for (int b = 0; b < r.n; b++) puts(r.text[b]);
 *     printf("%d forwards in %.2f s\n", r.stats.forwards, r.stats.seconds);
 *     smdlm_result_free(&r);
 *
 *     // infilling: prefix and suffix stay, 16 masked tokens between them are generated
 *     // (smdlm_generate_ids: fixed tokens anywhere in the canvas)
 *     if (smdlm_infill(st, "In the beginning", 16, "and the earth.", &gp, &r) == SMDLM_OK)
 *         puts(r.text[0]);
 *     smdlm_result_free(&r);
 *
 *     // raw logits of a batch (B × T ids → B × T × V floats, before SUBS)
 *     float *logits = malloc(sizeof(float) * B * T * smdlm_vocab_size(model));
 *     smdlm_forward(st, ids, B, T, NULL, logits);
 *     smdlm_state_free(st);
 *     smdlm_model_free(model);
 *
 *     // Dream / LLaDA: a completion of a chat message (the model's chat template)
 *     smdlm_model *dream = smdlm_model_load("models/Dream-v0-Instruct-7B", &lp);
 *     smdlm_state *ds = smdlm_state_new(dream);
 *     smdlm_gen_params dp = smdlm_gen_default_params();
 *     dp.decoder.max_new_tokens = 64;
 *     dp.decoder.alg = "entropy";
 *     dp.chat = 1;
 *     if (smdlm_generate(ds, "Write a haiku.", &dp, &r) == SMDLM_OK) puts(r.text[0]);
 *     smdlm_result_free(&r);
 *     smdlm_state_free(ds);
 *     smdlm_model_free(dream);
 *
 * Threads: a model may be shared by any number of threads, each with its own state; a state
 * is used by one thread at a time. Kernels run on the number of threads given at load time
 * (OpenMP). smdlm_last_error() is per thread.
 */
#ifndef SMDLM_H
#define SMDLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return values of the calls that run a model. */
#define SMDLM_OK 0
#define SMDLM_ERROR (-1)  /* smdlm_last_error() says why */
#define SMDLM_ABORTED 1   /* the step callback stopped the run; no error is recorded */

/* Largest soft-masking top-k. */
#define SMDLM_SM_MAX_K 16

typedef struct smdlm_model smdlm_model;
typedef struct smdlm_state smdlm_state;

typedef enum { SMDLM_ARCH_MDLM = 0, SMDLM_ARCH_DREAM, SMDLM_ARCH_LLADA } smdlm_arch;

typedef struct {
    int threads;       /* ≥ 1; default: all cores */
    const char *quant; /* Dream/LLaDA: NULL (weights as stored, default) or "q8" */
    int need_tokenizer; /* 1: a directory without tokenizer files is an error (default 0: the
                           tokenizer is loaded when present) */
    int check_weights;  /* 1: every floating tensor is scanned for NaN and infinities at load,
                           the first one found is an error naming the tensor and the index
                           (default 0: a generation reports non-finite logits when they occur) */
    const char *adapter; /* Dream/LLaDA: a PEFT LoRA/DoRA adapter directory applied to the
                            model (merged into fp32 weights, on the fly over bf16/f16 ones; its
                            transparency_config.json wins); NULL: none (default). A model
                            directory that is itself an adapter directory (adapter_config.json,
                            no config.json) loads its base_model_name_or_path with it. */
} smdlm_load_params;

/* Soft-masking (docs/DESIGN.md §3): a still-masked position's next input mixes the mask embedding
 * with its top-k predicted tokens' embeddings, weighted by
 * λ = scale · sigmoid(steepness · (negative entropy − centre)). */
typedef enum {
    SMDLM_SM_MODEL = 0, /* on when the directory has a transparency_config.json (default) */
    SMDLM_SM_OFF,
    SMDLM_SM_ON,
} smdlm_sm_mode;

/* What a masked input mixes (transparency_alg): its top-k tokens' embeddings, or every token's
 * weighted by softmax(logits / temp), whose entropy then also gives λ. */
typedef enum {
    SMDLM_SM_ALG_MODEL = 0, /* the model directory's (default: top-k) */
    SMDLM_SM_ALG_TOPK,      /* "mixinputs_with_topk" */
    SMDLM_SM_ALG_TEMP,      /* "mixinputs_with_temp" */
} smdlm_sm_alg;

/* How λ's scale follows decoding (transparency_scheduling), with t the share of the positions
 * masked at the start that are still masked: none, linear (scale·t), stepwise (scale while
 * t > 0.5, then 0). */
typedef enum {
    SMDLM_SM_SCHEDULE_MODEL = 0, /* the model directory's (default: none) */
    SMDLM_SM_SCHEDULE_NONE,
    SMDLM_SM_SCHEDULE_LINEAR,
    SMDLM_SM_SCHEDULE_STEPWISE,
} smdlm_sm_schedule;

typedef struct {
    smdlm_sm_mode mode;
    /* Values; NAN (k, temp: 0) keeps the model directory's value (without a
     * transparency_config.json: scale 0, centre −0.75, steepness 6.67, k 3, temp 1; Dream/LLaDA
     * k 1). Validated when soft-masking is on: scale in [0, 1], centre ≤ 0, steepness > 0, k in
     * [1, SMDLM_SM_MAX_K], temp > 0. */
    float scale, centre, steepness;
    int k;
    smdlm_sm_alg alg;
    float temp;
    smdlm_sm_schedule schedule;
} smdlm_softmask;

/* MDLM samplers (docs/DESIGN.md §2). A NULL name is the default. */
typedef struct {
    const char *sampler; /* "ddpm", "ddpm_cache" (default), "remdm-cap", "remdm-loop" */
    int len;             /* canvas length in tokens, prompt included (default 0: the model's) */
    float eta;           /* ReMDM remasking strength (default 0.02) */
    float t_on, t_off;   /* ReMDM-loop: the loop phase (defaults 0.55, 0.05) */
    float alpha_on;      /* ReMDM-loop: α during the loop (default 0.9) */
    int noise_removal;   /* final argmax forward over what is still masked (default 1) */
    /* MDLM's semi-autoregressive sampler (diffusion.py sample_subs_guidance) when num_strides
     * > 0: a first canvas of len tokens, then num_strides rounds that each keep the last
     * len − stride_length tokens as a fixed prefix and sample stride_length more: len +
     * num_strides·stride_length tokens in all, beyond the model's length. Each round runs ddpm
     * or ddpm_cache on MDLM's grid, int(1/dt) + 1 updates with dt = 1/steps (docs/DESIGN.md
     * §2.6); the step callback sees the round's canvas. smdlm_generate_ids / smdlm_infill
     * canvases are then the whole length. Not in a batch. */
    int stride_length;   /* in [1, len] (default 0: half of len) */
    int num_strides;     /* default 0: off */
} smdlm_mdlm_params;

/* Dream / LLaDA decoders (docs/DESIGN.md §5). The canvas is the prompt + max_new_tokens. A NULL name is
 * the default. */
typedef struct {
    int max_new_tokens;  /* tokens generated after the prompt (default 128) */
    int tokens_per_step; /* > 0: steps = ceil(max_new_tokens / tokens_per_step) (default 0) */
    float temperature;   /* 0: argmax (default) */
    int top_k;           /* 0: off (default) */
    const char *alg;     /* Dream: "origin" (default), "maskgit_plus", "topk_margin", "entropy" */
    float alg_temp;      /* Dream: 0 = reveal the most confident positions (default) */
    int block_length;    /* LLaDA: semi-autoregressive block, divides max_new_tokens (default 32) */
    const char *remasking; /* LLaDA: "low_confidence" (default) or "random" */
    float threshold;     /* 0: off (default); else reveal every position with confidence ≥ it */
    float eos_penalty;   /* subtracted from the EOS logit (default 0) */
    const char *cache;   /* approximate key/value cache: "off" (default, exact), "prefix" or
                            "dual" (blocks: LLaDA's block_length or dream_block_length below
                            max_new_tokens) */
    int cache_refresh;   /* with a cache: every N-th forward in a block is a full one (default 0:
                            block starts only) */
    /* LLaDA's generate.py options: */
    float cfg_scale;     /* classifier-free guidance, u + (cfg_scale + 1)·(c − u) with u from the
                            canvas with the prompt masked (default 0: off; not with soft-masking
                            or a cache) */
    int logits_eos_inf;  /* 1: <|endoftext|> never generated (its logit −∞) */
    int confidence_eos_eot_inf; /* 1: low_confidence confidences with <|eot_id|>'s logit −∞ */
    /* Dream: Fast-dLLM's block-wise decoding in blocks of this length (divides max_new_tokens;
     * needs a confidence alg, and steps a multiple of the blocks, ≥ 2 per block; default 0:
     * Dream's one block) */
    int dream_block_length;
} smdlm_decoder_params;

/* What the step callback sees after each step. */
typedef struct {
    int B, T;            /* the batch: all n samples of the request, canvases of T tokens */
    int step;            /* steps done, 1, 2, …; MDLM: once more with step == steps after the
                            final noise removal */
    int steps;           /* steps planned (0: unknown, threshold decoding) */
    int forwards;        /* network evaluations so far */
    int mask_id;
    const int32_t *ids;  /* [B, T] the canvases */
    const uint8_t *masked; /* [B, T] 1 where a position still holds the mask id */
    const float *lambda; /* [B, T] λ of each still-masked position's next input, 0 elsewhere;
                            NULL when soft-masking is off */
} smdlm_step;

/* Returns 0 to go on; anything else stops the run within this step (SMDLM_ABORTED). */
typedef int (*smdlm_step_fn)(void *user, const smdlm_step *step);

typedef struct {
    uint64_t seed;       /* sample b draws with seed + b */
    int steps;           /* denoising / decoding steps (default 128) */
    float top_p;         /* nucleus filtering, (0, 1] (default 1) */
    int n;               /* samples, run as one batch (default 1) */
    int chat;            /* Dream/LLaDA: the prompt is a user message in the chat template */
    const char *system;  /* with chat: system prompt (NULL: the template's default) */
    int allow_special;   /* 1: parse special-token text in the prompt (default 0: plain text) */
    smdlm_softmask sm;   /* default: as the model directory says */
    smdlm_mdlm_params mdlm;       /* MDLM models only */
    smdlm_decoder_params decoder; /* Dream / LLaDA models only */
    smdlm_step_fn on_step;        /* NULL: none */
    void *user;
} smdlm_gen_params;

typedef struct {
    int soft_masking;      /* 1 when it was on */
    int steps;             /* steps run */
    int planned_steps;     /* steps asked for (Dream/LLaDA: after tokens_per_step; 0: threshold) */
    int forwards;          /* network evaluations (steps that changed nothing reuse the last) */
    long tokens;           /* MDLM: canvas positions (n × T); Dream/LLaDA: generated tokens
                              before each sample's EOS */
    double seconds;        /* the whole run */
    double forward_seconds;  /* in the network */
    double softmask_seconds; /* MDLM: computing the soft-masking feedback (0 for Dream/LLaDA) */
    const char *method;    /* the sampler (MDLM), alg (Dream) or remasking (LLaDA) */
    const char *cache;     /* "off", "prefix" or "dual" */
    int refreshes;         /* with a cache: full forwards that refilled it */
    long positions_computed; /* positions run through the network, all forwards */
} smdlm_stats;

typedef struct {
    int n;               /* samples */
    int T;               /* canvas length */
    int prompt_len;      /* the fixed prefix: prompt tokens at the start of every canvas */
    int32_t *ids;        /* [n, T] the canvases (positions after a Dream/LLaDA EOS may still
                            hold the mask id; after SMDLM_ABORTED, wherever still masked) */
    int *gen_len;        /* [n] Dream/LLaDA: tokens generated before the first EOS; MDLM: the
                            positions that were not fixed */
    char **text;         /* [n] MDLM: the canvas (masked positions left out, ids beyond the
                            tokenizer as "[id]"); Dream/LLaDA: the completion up to the first
                            EOS, special tokens left out; infilling: the infilled span. An entry
                            is NULL after SMDLM_ABORTED and for Dream/LLaDA without a tokenizer */
    smdlm_stats stats;
} smdlm_result;

smdlm_load_params smdlm_load_default_params(void);
smdlm_gen_params smdlm_gen_default_params(void);
/* mode SMDLM_SM_MODEL, every value the model's. */
smdlm_softmask smdlm_softmask_default(void);
/* Reads IBM's transparency_config.json into sm's values and switches it on (k stays as it
 * was when the file has no mixinputs_k); "transparency_alg": "none" switches it off. */
int smdlm_softmask_load(const char *path, smdlm_softmask *sm);

/* The architecture of a model directory from its config.json, without loading it. */
int smdlm_dir_arch(const char *dir, smdlm_arch *arch);
/* Loads a model directory (config.json, model.safetensors or shards, tokenizer files when
 * present, optional transparency_config.json): MDLM, Dream or LLaDA, from config.json's
 * model_type. NULL on error. */
smdlm_model *smdlm_model_load(const char *dir, const smdlm_load_params *params);
void smdlm_model_free(smdlm_model *model);

smdlm_arch smdlm_model_arch(const smdlm_model *model);
int smdlm_vocab_size(const smdlm_model *model);
int smdlm_mask_id(const smdlm_model *model);
int smdlm_max_length(const smdlm_model *model);
int smdlm_has_tokenizer(const smdlm_model *model);
/* The directory's soft-masking: mode SMDLM_SM_ON with its values when it has a
 * transparency_config.json, else SMDLM_SM_OFF with the defaults. */
smdlm_softmask smdlm_model_softmask(const smdlm_model *model);

/* The EOS id that ends a Dream/LLaDA completion (tokenizer_config.json's eos_token, else
 * config.json's eos_token_id), or -1 when the model has none. */
int smdlm_eos_id(const smdlm_model *model);

/* Text ↔ ids with the model's tokenizer; outputs are malloc'ed (free them). With
 * allow_special, smdlm_tokenize parses special-token text ("<|endoftext|>") as Hugging Face's
 * encode does; without, such text stays plain text (as prompts are). */
int smdlm_tokenize(const smdlm_model *model, const char *text, int allow_special, int32_t **ids,
                   size_t *n);
int smdlm_detokenize(const smdlm_model *model, const int32_t *ids, size_t n, char **text);
/* One message of a conversation: role "system", "user" or "assistant". */
typedef struct {
    const char *role;
    const char *content;
} smdlm_chat_message;
/* A conversation of n ≥ 1 messages in the model's chat template, ending with the assistant's
 * header (Dream/LLaDA models with a tokenizer); *ids is malloc'ed. The contents are plain text
 * unless allow_special. */
int smdlm_chat_tokenize(const smdlm_model *model, const smdlm_chat_message *msgs, size_t n,
                        int allow_special, int32_t **ids, size_t *n_ids);
/* The same conversation as text (Hugging Face's apply_chat_template with tokenize=False):
 * ending with the assistant's header, or, with continue_final, inside the last message, which
 * must be the assistant's (continue_final_message: a reply the model continues). The text
 * holds the control tokens as text: encode it with allow_special. *text is malloc'ed. */
int smdlm_chat_text(const smdlm_model *model, const smdlm_chat_message *msgs, size_t n,
                    int continue_final, char **text);
/* Text of a canvas: runs of tokens decoded, each position holding the mask id shown as
 * mask_text (NULL: left out), ids the tokenizer cannot decode (or all, without a tokenizer)
 * as "[id]". Never fails; *text is malloc'ed. */
void smdlm_canvas_text(const smdlm_model *model, const int32_t *ids, size_t n,
                       const char *mask_text, char **text);

/* Scratch for one generation (or forward) at a time on the model. */
smdlm_state *smdlm_state_new(const smdlm_model *model);
void smdlm_state_free(smdlm_state *state);

/* Raw network output for ids [B, T] at diffusion times t[B] (NULL: t = 1), written to
 * logits [B, T, V]. Ids are validated (< V). Dream/LLaDA have no time input (t must be NULL);
 * their output is before Dream's logit shift (row i predicts position i + 1). */
int smdlm_forward(smdlm_state *state, const int32_t *ids, int B, int T, const float *t,
                  float *logits);

/* MDLM: gp->n canvases of gp->mdlm.len tokens whose first tokens are the prompt (may be NULL
 * or ""). Dream/LLaDA: gp->decoder.max_new_tokens after the prompt (or the chat-templated
 * prompt). The prompt is plain text unless gp->allow_special. Fills *r (free it with
 * smdlm_result_free whatever the outcome). */
int smdlm_generate(smdlm_state *state, const char *prompt, const smdlm_gen_params *gp,
                   smdlm_result *r);
/* Dream/LLaDA: the assistant's next message after a conversation (smdlm_chat_tokenize's ids as
 * the prompt, gp->decoder.max_new_tokens after it; gp->chat and gp->system are not used): what
 * smdlm_generate gives for the rendered conversation as its prompt. */
int smdlm_generate_chat(smdlm_state *state, const smdlm_chat_message *msgs, size_t n,
                        const smdlm_gen_params *gp, smdlm_result *r);
/* The same on ids: x [len] holds tokens at the fixed positions (fixed[i] != 0; fixed may be
 * NULL: none) and the mask id elsewhere; every sample starts from it. The leading fixed positions are the prompt
 * (r->prompt_len). MDLM and Dream: fixed positions anywhere (infilling). LLaDA's decoder
 * generates every position after the prompt: fixed positions there are an error. Dream/LLaDA:
 * len − prompt is the generation length (gp->decoder.max_new_tokens is not used). */
int smdlm_generate_ids(smdlm_state *state, const int32_t *x, const uint8_t *fixed, int len,
                       const smdlm_gen_params *gp, smdlm_result *r);
/* Infilling from text: the canvas prefix + `middle` masked positions + suffix (plain text unless
 * gp->allow_special); r->text holds each sample's generated middle. MDLM and Dream models
 * (gp->mdlm.len and gp->decoder.max_new_tokens are not used). Dream may leave the positions
 * after a generated EOS masked (gp->decoder.eos_penalty keeps EOS out). */
int smdlm_infill(smdlm_state *state, const char *prefix, int middle, const char *suffix,
                 const smdlm_gen_params *gp, smdlm_result *r);
void smdlm_result_free(smdlm_result *r);

/* Continuous batching (MDLM models): generations that advance one step at a time together,
 * the forwards of each step run as one batched forward over all their canvases; generations
 * join and leave between steps. A member's result (and its step callbacks) are those of
 * smdlm_generate_ids with the same arguments. Members share a batched forward when their
 * canvases have the same length and their soft-masking top-k is the same where it is on
 * (smdlm_batch_accepts). A batch is used by one thread at a time, with the state it was made
 * on (which then runs nothing else). */
typedef struct smdlm_batch smdlm_batch;

/* NULL with an error when the model is not an MDLM. */
smdlm_batch *smdlm_batch_new(smdlm_state *state);
void smdlm_batch_free(smdlm_batch *batch); /* running members are dropped */
/* 1 when a generation of a canvas of len positions with gp may join the members now. */
int smdlm_batch_accepts(const smdlm_batch *batch, int len, const smdlm_gen_params *gp);
/* Adds a generation (smdlm_generate_ids's arguments, copied; gp's strings are read now, its
 * on_step and user are kept). Its id (≥ 0), or SMDLM_ERROR: bad arguments, or it does not fit. */
int smdlm_batch_add(smdlm_batch *batch, const int32_t *x, const uint8_t *fixed, int len,
                    const smdlm_gen_params *gp);
/* Members (running or ended, not yet taken). */
int smdlm_batch_count(const smdlm_batch *batch);
/* One step of every running member (its on_step is called after it). SMDLM_OK; a member that
 * fails ends with its error (smdlm_batch_take reports it). */
int smdlm_batch_step(smdlm_batch *batch);
/* The id of a member that has ended (completed, stopped by its callback, or failed), −1 if none. */
int smdlm_batch_ended(const smdlm_batch *batch);
/* Forwards the batch has run: a batched forward counts once however many members it served
 * (each member's smdlm_step.forwards and result count it for themselves). */
long smdlm_batch_forwards(const smdlm_batch *batch);
/* Removes member id: *r and the return value are smdlm_generate_ids's (a member taken while
 * still running is stopped: SMDLM_ABORTED). */
int smdlm_batch_take(smdlm_batch *batch, int id, smdlm_result *r);

const char *smdlm_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
