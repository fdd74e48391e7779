/* smdlm.h — public API of libsmdlm: masked diffusion language models with soft-masking
 * (MDLM DiT checkpoints, and Dream / Dream-Coder / LLaDA directories).
 *
 * Usage (error handling shortened; every call that can fail returns NULL or -1 and
 * smdlm_last_error() says what and where):
 *
 *     #include <smdlm.h>
 *
 *     smdlm_load_params lp = smdlm_load_default_params();
 *     lp.threads = 4;
 *     smdlm_ctx *ctx = smdlm_load("models/demo", &lp);
 *     if (!ctx) { fprintf(stderr, "%s\n", smdlm_last_error()); return 1; }
 *
 *     smdlm_gen_params gp = smdlm_gen_default_params();
 *     gp.len = 128;          // canvas length in tokens
 *     gp.steps = 32;         // 4 tokens revealed per step on average
 *     gp.seed = 7;
 *     char *text = NULL;
 *     if (smdlm_generate(ctx, "In the beginning", &gp, &text) == 0) puts(text);
 *     free(text);
 *
 *     // Dream / LLaDA: a completion of a chat message (the model's chat template)
 *     smdlm_ctx *dream = smdlm_load("models/Dream-v0-Instruct-7B", &lp);
 *     smdlm_gen_params dp = smdlm_gen_default_params();
 *     dp.max_new_tokens = 64;
 *     dp.alg = "entropy";
 *     dp.chat = 1;
 *     char *reply = NULL;
 *     if (dream && smdlm_generate(dream, "Write a haiku.", &dp, &reply) == 0) puts(reply);
 *     free(reply);
 *     smdlm_free(dream);
 *
 *     // raw logits of a batch (B × T ids → B × T × V floats, before SUBS)
 *     float *logits = malloc(sizeof(float) * B * T * smdlm_vocab_size(ctx));
 *     smdlm_forward(ctx, ids, B, T, NULL, logits);
 *
 *     smdlm_free(ctx);
 *
 * Thread safety: a context is used by one thread at a time (it owns scratch buffers);
 * separate contexts are independent. The library itself runs its kernels on the number of
 * threads given at load time (OpenMP). smdlm_last_error() is per thread.
 */
#ifndef SMDLM_H
#define SMDLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct smdlm_ctx smdlm_ctx;

typedef struct {
    int threads; /* ≥ 1; default: all cores */
    const char *quant; /* Dream/LLaDA: NULL (weights as stored, default) or "q8" */
} smdlm_load_params;

typedef struct {
    const char *sampler; /* "ddpm", "ddpm_cache" (default), "remdm-cap", "remdm-loop" */
    int len;             /* canvas length in tokens, prompt included (default: model length) */
    int steps;           /* denoising steps (default 128) */
    float top_p;         /* nucleus filtering, (0, 1] (default 1) */
    uint64_t seed;
    int soft_masking;    /* −1: as the model directory says (default), 0: off, 1: on */
    /* Dream / LLaDA models (the MDLM samplers ignore these; `len` and `sampler` do not apply
     * to Dream/LLaDA: the canvas is the prompt + max_new_tokens). `steps` is the number of
     * decoding steps there too (defaults match: 128 tokens in 128 steps). */
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
    int chat;            /* 1: the prompt is a user message in the model's chat template */
    const char *system;  /* with chat: system prompt (NULL: the template's default) */
    int allow_special;   /* 1: parse special-token text in the prompt (default 0: plain text) */
} smdlm_gen_params;

smdlm_load_params smdlm_load_default_params(void);
smdlm_gen_params smdlm_gen_default_params(void);

/* Loads a model directory (config.json, model.safetensors or shards, tokenizer files,
 * optional transparency_config.json): MDLM, Dream or LLaDA, from config.json's model_type.
 * NULL on error. */
smdlm_ctx *smdlm_load(const char *dir, const smdlm_load_params *params);
void smdlm_free(smdlm_ctx *ctx);

int smdlm_vocab_size(const smdlm_ctx *ctx);
int smdlm_mask_id(const smdlm_ctx *ctx);
int smdlm_max_length(const smdlm_ctx *ctx);

/* Text ↔ ids with the model's tokenizer; outputs are malloc'ed (free them). smdlm_tokenize
 * parses special-token text ("<|endoftext|>") as Hugging Face's encode does. */
int smdlm_tokenize(const smdlm_ctx *ctx, const char *text, int32_t **ids, size_t *n);
int smdlm_detokenize(const smdlm_ctx *ctx, const int32_t *ids, size_t n, char **text);

/* Raw network output for ids [B, T] at diffusion times t[B] (NULL: t = 1), written to
 * logits [B, T, V]. Ids are validated (< V). Dream/LLaDA have no time input (t must be NULL);
 * their output is before Dream's logit shift (row i predicts position i + 1). */
int smdlm_forward(smdlm_ctx *ctx, const int32_t *ids, int B, int T, const float *t,
                  float *logits);

/* MDLM: samples a canvas of gp->len tokens whose first tokens are the prompt (may be NULL or
 * "") and returns its text (prompt included). Dream/LLaDA: generates gp->max_new_tokens after
 * the prompt (or the chat-templated prompt) and returns the completion alone, up to the first
 * EOS, special tokens left out. The prompt is plain text unless gp->allow_special. */
int smdlm_generate(smdlm_ctx *ctx, const char *prompt, const smdlm_gen_params *gp, char **text);
/* Same on ids: x [len] holds prompt tokens at fixed positions (fixed[i] != 0) and the mask
 * id elsewhere; on return it holds the sample. Dream/LLaDA: the fixed positions must be a
 * prefix (the prompt) and len − prompt is the generation length (gp->max_new_tokens is not
 * used); positions after the first generated EOS may keep the mask id. */
int smdlm_generate_ids(smdlm_ctx *ctx, int32_t *x, const uint8_t *fixed, int len,
                       const smdlm_gen_params *gp);

const char *smdlm_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
