/* api.c — the public API of include/smdlm.h over the internal subsystems. */
#include "smdlm.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "model.h"
#include "sampler.h"
#include "util.h"

struct smdlm_ctx {
    model_dir md;
    int threads;
};

smdlm_load_params smdlm_load_default_params(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    smdlm_load_params p = {n < 1 ? 1 : (int)n};
    return p;
}

smdlm_gen_params smdlm_gen_default_params(void) {
    smdlm_gen_params p = {"ddpm_cache", 0, 128, 1.0f, 0, -1};
    return p;
}

smdlm_ctx *smdlm_load(const char *dir, const smdlm_load_params *params) {
    smdlm_load_params d = smdlm_load_default_params();
    if (!params) params = &d;
    if (params->threads < 1 || params->threads > 1024) {
        SM_ERR("threads %d must be in [1, 1024]", params->threads);
        return NULL;
    }
    smdlm_ctx *ctx = sm_calloc(1, sizeof *ctx);
    if (model_dir_load(&ctx->md, dir, 1)) {
        free(ctx);
        return NULL;
    }
    ctx->threads = params->threads;
    return ctx;
}

void smdlm_free(smdlm_ctx *ctx) {
    if (!ctx) return;
    model_dir_free(&ctx->md);
    free(ctx);
}

int smdlm_vocab_size(const smdlm_ctx *ctx) { return ctx->md.net.cfg.vocab_size; }
int smdlm_mask_id(const smdlm_ctx *ctx) { return ctx->md.net.cfg.mask_id; }
int smdlm_max_length(const smdlm_ctx *ctx) { return ctx->md.net.cfg.model_length; }

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
    const dit_config *c = &ctx->md.net.cfg;
    if (B < 1 || T < 1 || T > c->model_length)
        return SM_ERR("batch %d × length %d: need B ≥ 1 and 1 ≤ T ≤ %d", B, T, c->model_length);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return SM_ERR("token id %d at position %zu is outside [0, %d)", ids[i], i, c->vocab_size);
    float *sigma = sm_malloc(sizeof(float) * (size_t)B);
    for (int b = 0; b < B; b++) {
        float tb = t ? t[b] : 1.0f;
        if (!(tb > 0.0f && tb <= 1.0f)) {
            free(sigma);
            return SM_ERR("t[%d] = %g is outside (0, 1]", b, tb);
        }
        sigma[b] = (float)-log1p(-(1.0 - 1e-3) * tb);
    }
    kernels_set_threads(ctx->threads);
    dit_acts a;
    dit_acts_alloc(&a, c, B, T, ctx->threads);
    dit_forward(&ctx->md.net, &a, ids, sigma, B, T, logits);
    dit_acts_free(&a);
    free(sigma);
    return 0;
}

int smdlm_generate_ids(smdlm_ctx *ctx, int32_t *x, const uint8_t *fixed, int len,
                       const smdlm_gen_params *gp) {
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
    return sampler_run(&ctx->md.net, &sp, x, fixed, 1, len, ctx->threads, &st);
}

int smdlm_generate(smdlm_ctx *ctx, const char *prompt, const smdlm_gen_params *gp, char **text) {
    const dit_config *c = &ctx->md.net.cfg;
    int len = gp->len ? gp->len : c->model_length;
    if (len < 1 || len > c->model_length)
        return SM_ERR("length %d must be in [1, %d]", len, c->model_length);
    int32_t *pids = NULL;
    size_t np = 0;
    if (prompt && *prompt && smdlm_tokenize(ctx, prompt, &pids, &np)) return -1;
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
