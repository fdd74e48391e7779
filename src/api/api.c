/* api.c — the public API of include/smdlm.h over the internal subsystems. */
#include "smdlm.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "compute/kernels.h"
#include "models/model.h"
#include "models/noise.h"
#include "generate/sampler.h"
#include "generate/tfgen.h"
#include "base/util.h"

struct smdlm_ctx {
    model_dir md;
    int threads;
};

smdlm_load_params smdlm_load_default_params(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    smdlm_load_params p = {n < 1 ? 1 : (int)n, NULL};
    return p;
}

smdlm_gen_params smdlm_gen_default_params(void) {
    smdlm_gen_params p = {"ddpm_cache", 0, 128, 1.0f, 0, -1};
    p.max_new_tokens = 128;
    p.alg = "origin";
    p.block_length = 32;
    p.remasking = "low_confidence";
    return p;
}

smdlm_ctx *smdlm_load(const char *dir, const smdlm_load_params *params) {
    smdlm_load_params d = smdlm_load_default_params();
    if (!params) params = &d;
    if (params->threads < 1 || params->threads > 1024) {
        SM_ERR("threads %d must be in [1, 1024]", params->threads);
        return NULL;
    }
    if (params->quant && strcmp(params->quant, "q8") != 0) {
        SM_ERR("quantisation '%s': the only one is q8", params->quant);
        return NULL;
    }
    smdlm_ctx *ctx = sm_calloc(1, sizeof *ctx);
    if (model_dir_load_any(&ctx->md, dir, 1)) {
        free(ctx);
        return NULL;
    }
    ctx->threads = params->threads;
    if (params->quant) {
        int rc = ctx->md.arch == MODEL_MDLM
                     ? SM_ERR("%s: q8 applies to Dream/LLaDA models, not MDLM", dir)
                     : transformer_quantize_q8(&ctx->md.tf);
        if (rc) {
            smdlm_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

void smdlm_free(smdlm_ctx *ctx) {
    if (!ctx) return;
    model_dir_free(&ctx->md);
    free(ctx);
}

int smdlm_vocab_size(const smdlm_ctx *ctx) { return ctx->md.vocab_size; }
int smdlm_mask_id(const smdlm_ctx *ctx) { return ctx->md.mask_id; }
int smdlm_max_length(const smdlm_ctx *ctx) { return ctx->md.max_len; }

int smdlm_tokenize(const smdlm_ctx *ctx, const char *text, int32_t **ids, size_t *n) {
    if (!ctx->md.tok) return SM_ERR("the model directory '%s' has no tokenizer", ctx->md.dir);
    return tok_encode(ctx->md.tok, text, strlen(text), ids, n);
}

int smdlm_detokenize(const smdlm_ctx *ctx, const int32_t *ids, size_t n, char **text) {
    if (!ctx->md.tok) return SM_ERR("the model directory '%s' has no tokenizer", ctx->md.dir);
    size_t len;
    return tok_decode(ctx->md.tok, ids, n, text, &len);
}

int smdlm_forward(smdlm_ctx *ctx, const int32_t *ids, int B, int T, const float *t,
                  float *logits) {
    const int V = smdlm_vocab_size(ctx), maxT = smdlm_max_length(ctx);
    if (B < 1 || T < 1 || T > maxT)
        return SM_ERR("batch %d × length %d: need B ≥ 1 and 1 ≤ T ≤ %d", B, T, maxT);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return SM_ERR("token id %d at position %zu is outside [0, %d)", ids[i], i, V);
    kernels_set_threads(ctx->threads);
    if (ctx->md.arch != MODEL_MDLM) {
        if (t) return SM_ERR("%s: Dream/LLaDA models have no diffusion time (pass t = NULL)",
                             ctx->md.dir);
        tf_state s;
        tf_state_init(&s, &ctx->md.tf);
        int rc = transformer_forward(&s, ids, NULL, NULL, NULL, B, T, logits);
        tf_state_free(&s);
        return rc;
    }
    const dit_config *c = &ctx->md.net.cfg;
    float *sigma = sm_malloc(sizeof(float) * (size_t)B);
    for (int b = 0; b < B; b++) {
        float tb = t ? t[b] : 1.0f;
        if (!(tb > 0.0f && tb <= 1.0f)) {
            free(sigma);
            return SM_ERR("t[%d] = %g is outside (0, 1]", b, tb);
        }
        sigma[b] = mdlm_sigma(tb);
    }
    dit_acts a;
    dit_acts_alloc(&a, c, B, T, ctx->threads);
    dit_forward(&ctx->md.net, &a, ids, sigma, B, T, logits);
    dit_acts_free(&a);
    free(sigma);
    return 0;
}

/* Decoder parameters of a Dream/LLaDA context from gp (gen_len: the caller's). */
static int tf_params(const smdlm_ctx *ctx, const smdlm_gen_params *gp, int gen_len,
                     decoder_params *p) {
    if (tfgen_default_params(&ctx->md, p)) return -1;
    p->gen_len = gen_len;
    p->steps = gp->steps;
    p->tokens_per_step = gp->tokens_per_step;
    p->temperature = gp->temperature;
    p->top_p = gp->top_p;
    p->top_k = gp->top_k;
    p->alg_temp = gp->alg_temp;
    p->threshold = gp->threshold;
    p->eos_penalty = gp->eos_penalty;
    p->seed = gp->seed;
    if (ctx->md.arch == MODEL_DREAM) {
        if (gp->alg && decoder_alg_parse(gp->alg, &p->alg)) return -1;
    } else {
        p->block_length = gp->block_length;
        if (gp->remasking && decoder_remask_parse(gp->remasking, &p->remasking)) return -1;
    }
    if (gp->soft_masking == 0) p->sm.enabled = 0;
    if (gp->soft_masking == 1) p->sm.enabled = 1;
    return 0;
}

/* Dream/LLaDA on ids: the fixed positions must be the prefix. */
static int generate_ids_tf(smdlm_ctx *ctx, int32_t *x, const uint8_t *fixed, int len,
                           const smdlm_gen_params *gp) {
    int P = 0;
    while (P < len && fixed[P]) P++;
    for (int i = P; i < len; i++)
        if (fixed[i])
            return SM_ERR("fixed position %d after the prompt (%d tokens): Dream/LLaDA prompts "
                          "are a prefix", i, P);
    if (P == len) return SM_ERR("every position of the canvas (%d) is fixed: nothing to generate", len);
    decoder_params p;
    if (tf_params(ctx, gp, len - P, &p)) return -1;
    kernels_set_threads(ctx->threads);
    int32_t *out;
    int gen;
    decoder_stats st;
    if (tfgen_run(&ctx->md, &p, x, P, 1, &out, &gen, &st)) return -1;
    memcpy(x, out, sizeof(int32_t) * (size_t)len);
    free(out);
    return 0;
}

int smdlm_generate_ids(smdlm_ctx *ctx, int32_t *x, const uint8_t *fixed, int len,
                       const smdlm_gen_params *gp) {
    if (ctx->md.arch != MODEL_MDLM) return generate_ids_tf(ctx, x, fixed, len, gp);
    sampler_params sp;
    sampler_params_default(&sp);
    if (sampler_kind_parse(gp->sampler ? gp->sampler : "ddpm_cache", &sp.kind)) return -1;
    sp.steps = gp->steps;
    sp.top_p = gp->top_p;
    sp.seed = gp->seed;
    sp.sm = ctx->md.sm;
    if (gp->soft_masking == 0) sp.sm.enabled = 0;
    if (gp->soft_masking == 1) sp.sm.enabled = 1;
    kernels_set_threads(ctx->threads);
    sampler_stats st;
    model_state s;
    model_state_init(&s, &ctx->md, ctx->threads);
    int rc = sampler_run(&s.lm, &sp, x, fixed, 1, len, &st);
    model_state_free(&s);
    return rc;
}

/* Dream/LLaDA: the completion of a prompt (plain or chat) as text. */
static int generate_tf(smdlm_ctx *ctx, const char *prompt, const smdlm_gen_params *gp,
                       char **text) {
    decoder_params p;
    int32_t *pids = NULL, *x = NULL;
    size_t np = 0;
    int gen = 0;
    decoder_stats st;
    if (gp->max_new_tokens < 1)
        return SM_ERR("max_new_tokens %d must be ≥ 1", gp->max_new_tokens);
    int rc = tf_params(ctx, gp, gp->max_new_tokens, &p);
    if (rc == 0 && (prompt || gp->chat))
        rc = tfgen_encode_prompt(&ctx->md, prompt, gp->chat, gp->system, gp->allow_special, &pids,
                                 &np);
    if (rc == 0 && np > (size_t)smdlm_max_length(ctx))
        rc = SM_ERR("the prompt has %zu tokens but the model's length is %d", np,
                    smdlm_max_length(ctx));
    if (rc == 0) {
        kernels_set_threads(ctx->threads);
        rc = tfgen_run(&ctx->md, &p, pids, (int)np, 1, &x, &gen, &st);
    }
    if (rc == 0) rc = tfgen_completion(&ctx->md, x + np, gen, text);
    free(pids);
    free(x);
    return rc;
}

int smdlm_generate(smdlm_ctx *ctx, const char *prompt, const smdlm_gen_params *gp, char **text) {
    *text = NULL;
    if (ctx->md.arch != MODEL_MDLM) return generate_tf(ctx, prompt, gp, text);
    if (gp->chat) return SM_ERR("%s: an MDLM model has no chat template", ctx->md.dir);
    const dit_config *c = &ctx->md.net.cfg;
    int len = gp->len ? gp->len : c->model_length;
    if (len < 1 || len > c->model_length)
        return SM_ERR("length %d must be in [1, %d]", len, c->model_length);
    int32_t *pids = NULL;
    size_t np = 0;
    if (prompt && *prompt) {
        if (!ctx->md.tok) return SM_ERR("the model directory '%s' has no tokenizer", ctx->md.dir);
        if (tok_encode_ex(ctx->md.tok, prompt, strlen(prompt),
                          gp->allow_special ? TOK_ALLOW_SPECIAL : 0, &pids, &np))
            return -1;
    }
    if (np >= (size_t)len) {
        free(pids);
        return SM_ERR("the prompt has %zu tokens but the canvas holds only %d", np, len);
    }
    int32_t *x = sm_malloc(sizeof(int32_t) * (size_t)len);
    uint8_t *fixed = sm_calloc((size_t)len, 1);
    for (int i = 0; i < len; i++) {
        x[i] = (size_t)i < np ? pids[i] : c->mask_id;
        fixed[i] = (size_t)i < np;
    }
    int rc = smdlm_generate_ids(ctx, x, fixed, len, gp);
    if (rc == 0) rc = smdlm_detokenize(ctx, x, (size_t)len, text);
    free(x);
    free(fixed);
    free(pids);
    return rc;
}
