/* gpt2.c — HF GPT-2 evaluator: config, loading, forward, generative-perplexity scoring. */
#include "models/gpt2.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "base/jsonutil.h"
#include "compute/kernels.h"
#include "base/util.h"

/* ---- config ------------------------------------------------------------------------------ */

int gpt2_config_validate(const gpt2_config *c) {
    if (c->vocab_size < 2) return SM_ERR("vocab_size %d must be at least 2", c->vocab_size);
    if (c->n_embd < 1 || c->n_embd > 65536)
        return SM_ERR("n_embd %d out of range [1, 65536]", c->n_embd);
    if (c->n_head < 1 || c->n_head > c->n_embd || c->n_embd % c->n_head != 0)
        return SM_ERR("n_head %d must divide n_embd %d", c->n_head, c->n_embd);
    if (c->n_layer < 1 || c->n_layer > 1024)
        return SM_ERR("n_layer %d out of range [1, 1024]", c->n_layer);
    if (c->n_positions < 1 || c->n_positions > (1 << 20))
        return SM_ERR("n_positions %d out of range [1, 1048576]", c->n_positions);
    if (!(c->eps > 0.0f) || !isfinite(c->eps) || c->eps > 1.0f)
        return SM_ERR("layer_norm_epsilon %g out of range (0, 1]", (double)c->eps);
    if (c->eos_id >= c->vocab_size)
        return SM_ERR("eos_token_id %d must be below vocab_size %d", c->eos_id, c->vocab_size);
    size_t n;
    if (sm_mul_size((size_t)c->vocab_size, (size_t)c->n_embd, &n) || n > ((size_t)1 << 36))
        return SM_ERR("vocab_size × n_embd too large");
    return 0;
}

int gpt2_config_parse(gpt2_config *c, const char *json_text, const char *what) {
    static const char *const types[] = {"gpt2", NULL};
    int which;
    cJSON *root = json_parse_model_config(json_text, what, "a GPT-2", types, &which);
    if (!root) return -1;
    int rc = -1;
    memset(c, 0, sizeof *c);
    double eps;
    if (json_get_int(root, "vocab_size", 2, INT32_MAX, -1, &c->vocab_size, what) ||
        json_get_int(root, "n_embd", 1, 65536, -1, &c->n_embd, what) ||
        json_get_int(root, "n_head", 1, 65536, -1, &c->n_head, what) ||
        json_get_int(root, "n_layer", 1, 1024, -1, &c->n_layer, what) ||
        json_get_int(root, "n_positions", 1, 1 << 20, 1024, &c->n_positions, what) ||
        json_get_double(root, "layer_norm_epsilon", 1e-30, 1.0, 1e-5, 0, &eps, what))
        goto done;
    c->eps = (float)eps;
    c->eos_id = -1; /* json_get_int's default -1 would mean "required" */
    if (cJSON_GetObjectItemCaseSensitive(root, "eos_token_id") &&
        json_get_int(root, "eos_token_id", 0, INT32_MAX, 0, &c->eos_id, what))
        goto done;
    /* variants this forward does not implement are rejected, not silently mis-scored */
    const char *act = json_get_string(root, "activation_function");
    if (act && strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0) {
        SM_ERR("%s: activation_function \"%s\" is not supported (gelu_new only)", what, act);
        goto done;
    }
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(root, "n_inner");
    if (inner && !cJSON_IsNull(inner) &&
        (!cJSON_IsNumber(inner) || inner->valuedouble != 4.0 * c->n_embd)) {
        SM_ERR("%s: n_inner must be null or 4·n_embd (%d)", what, 4 * c->n_embd);
        goto done;
    }
    int flag;
    if (json_get_bool(root, "scale_attn_by_inverse_layer_idx", 0, &flag, what)) goto done;
    if (flag) {
        SM_ERR("%s: scale_attn_by_inverse_layer_idx is not supported", what);
        goto done;
    }
    if (json_get_bool(root, "scale_attn_weights", 1, &flag, what)) goto done;
    if (!flag) {
        SM_ERR("%s: scale_attn_weights false is not supported", what);
        goto done;
    }
    if (gpt2_config_validate(c)) {
        sm_wrap_error("%s", what);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------- */

typedef struct {
    char name[112];
    const float **slot;
    int ndim;
    int64_t shape[2];
} gpt2_param;

static void put(gpt2_param *p, int *n, const char *prefix, const float **slot, int64_t d0,
                int64_t d1, const char *fmt, int i) {
    gpt2_param *e = &p[(*n)++];
    char base[96];
    snprintf(base, sizeof base, fmt, i);
    snprintf(e->name, sizeof e->name, "%s%s", prefix, base);
    e->slot = slot;
    e->ndim = d1 ? 2 : 1;
    e->shape[0] = d0;
    e->shape[1] = d1;
}

/* HF GPT-2 checkpoints also store the causal-mask buffers and sometimes the tied head. */
static const char *const k_ignored_suffixes[] = {".attn.bias", ".attn.masked_bias", "lm_head.weight"};

int gpt2_load(gpt2_model *m, const char *dir) {
    memset(m, 0, sizeof *m);
    char *cpath = sm_path_join(dir, "config.json"), *text = NULL;
    size_t len;
    int rc = sm_read_file(cpath, (size_t)1 << 20, &text, &len);
    if (rc == 0) rc = gpt2_config_parse(&m->cfg, text, cpath);
    free(text);
    free(cpath);
    if (rc) return -1;
    if (st_open_dir(&m->archive, dir)) return -1;
    const gpt2_config *c = &m->cfg;
    const char *prefix = st_find(&m->archive, "transformer.wte.weight") ? "transformer." : "";
    const int64_t V = c->vocab_size, D = c->n_embd, P = c->n_positions;
    int n = 4 + 12 * c->n_layer, k = 0;
    m->blocks = sm_calloc((size_t)c->n_layer, sizeof *m->blocks);
    gpt2_param *t = sm_calloc((size_t)n, sizeof *t);
    put(t, &k, prefix, &m->wte, V, D, "wte.weight", 0);
    put(t, &k, prefix, &m->wpe, P, D, "wpe.weight", 0);
    for (int i = 0; i < c->n_layer; i++) {
        gpt2_block *b = &m->blocks[i];
        put(t, &k, prefix, &b->ln1_w, D, 0, "h.%d.ln_1.weight", i);
        put(t, &k, prefix, &b->ln1_b, D, 0, "h.%d.ln_1.bias", i);
        put(t, &k, prefix, &b->attn_w, D, 3 * D, "h.%d.attn.c_attn.weight", i);
        put(t, &k, prefix, &b->attn_b, 3 * D, 0, "h.%d.attn.c_attn.bias", i);
        put(t, &k, prefix, &b->proj_w, D, D, "h.%d.attn.c_proj.weight", i);
        put(t, &k, prefix, &b->proj_b, D, 0, "h.%d.attn.c_proj.bias", i);
        put(t, &k, prefix, &b->ln2_w, D, 0, "h.%d.ln_2.weight", i);
        put(t, &k, prefix, &b->ln2_b, D, 0, "h.%d.ln_2.bias", i);
        put(t, &k, prefix, &b->fc_w, D, 4 * D, "h.%d.mlp.c_fc.weight", i);
        put(t, &k, prefix, &b->fc_b, 4 * D, 0, "h.%d.mlp.c_fc.bias", i);
        put(t, &k, prefix, &b->fc2_w, 4 * D, D, "h.%d.mlp.c_proj.weight", i);
        put(t, &k, prefix, &b->fc2_b, D, 0, "h.%d.mlp.c_proj.bias", i);
    }
    put(t, &k, prefix, &m->lnf_w, D, 0, "ln_f.weight", 0);
    put(t, &k, prefix, &m->lnf_b, D, 0, "ln_f.bias", 0);
    SM_ASSERT(k == n);
    st_expect *ex = sm_calloc((size_t)n, sizeof *ex);
    for (int i = 0; i < n; i++) {
        ex[i].name = t[i].name;
        ex[i].ndim = t[i].ndim;
        ex[i].shape[0] = t[i].shape[0];
        ex[i].shape[1] = t[i].shape[1];
    }
    const float **views = sm_malloc(sizeof *views * (size_t)n);
    rc = st_load_f32(&m->archive, ex, n, k_ignored_suffixes,
                     (int)(sizeof k_ignored_suffixes / sizeof *k_ignored_suffixes), views,
                     &m->owned);
    for (int i = 0; i < n && rc == 0; i++) *t[i].slot = views[i];
    free(views);
    free(ex);
    free(t);
    if (rc) {
        sm_wrap_error("loading GPT-2 from '%s'", dir);
        gpt2_free(m);
        return -1;
    }
    return 0;
}

void gpt2_free(gpt2_model *m) {
    st_close(&m->archive);
    free(m->owned);
    free(m->blocks);
    memset(m, 0, sizeof *m);
}

/* ---- forward ----------------------------------------------------------------------------- */

/* The network on ids[B,T]: logits[B,T,V] when logits != NULL, else the final hidden states
 * (after ln_f) of the nrows flat positions rows[] (b·T + t) into hidden[nrows, D]. */
static int forward_impl(const gpt2_model *m, const int32_t *ids, int B, int T, float *logits,
                        const int32_t *rows, int nrows, float *hidden) {
    const gpt2_config *c = &m->cfg;
    const int D = c->n_embd, H = c->n_head, hd = D / H, V = c->vocab_size;
    if (B < 1 || T < 1 || T > c->n_positions)
        return SM_ERR("%d positions do not fit the model's context (%d)", T, c->n_positions);
    const size_t N = (size_t)B * (size_t)T;
    for (size_t i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return SM_ERR("token id %d at %zu out of range [0, %d)", ids[i], i, V);
    float *x = sm_aligned_alloc(N * (size_t)D * sizeof(float));
    float *ln = sm_aligned_alloc(N * (size_t)D * sizeof(float));
    float *qkv = sm_aligned_alloc(N * 3 * (size_t)D * sizeof(float));
    float *att = sm_aligned_alloc(N * (size_t)D * sizeof(float));
    float *y = sm_aligned_alloc(N * (size_t)D * sizeof(float));
    float *h = sm_aligned_alloc(N * 4 * (size_t)D * sizeof(float));
    float *scratch = sm_aligned_alloc(attention_scratch_floats(T, kernels_get_threads()) * sizeof(float));
    for (size_t r = 0; r < N; r++) {
        const float *e = m->wte + (size_t)ids[r] * D, *p = m->wpe + (r % (size_t)T) * D;
        float *xr = x + r * D;
        for (int i = 0; i < D; i++) xr[i] = e[i] + p[i];
    }
    for (int l = 0; l < c->n_layer; l++) {
        const gpt2_block *b = &m->blocks[l];
        layernorm_forward(ln, x, b->ln1_w, b->ln1_b, N, D, c->eps);
        matmul_forward_in_out(qkv, ln, b->attn_w, b->attn_b, (int)N, D, 3 * D);
        attention_forward(att, qkv, scratch, B, T, H, hd, 1);
        matmul_forward_in_out(y, att, b->proj_w, b->proj_b, (int)N, D, D);
        residual_add_forward(x, y, N * (size_t)D);
        layernorm_forward(ln, x, b->ln2_w, b->ln2_b, N, D, c->eps);
        matmul_forward_in_out(h, ln, b->fc_w, b->fc_b, (int)N, D, 4 * D);
        gelu_tanh_forward(h, N * 4 * (size_t)D);
        matmul_forward_in_out(y, h, b->fc2_w, b->fc2_b, (int)N, 4 * D, D);
        residual_add_forward(x, y, N * (size_t)D);
    }
    if (logits) {
        layernorm_forward(ln, x, m->lnf_w, m->lnf_b, N, D, c->eps);
        matmul_forward(logits, ln, m->wte, NULL, (int)N, D, V); /* tied head: wte is [V, D] */
    }
    for (int r = 0; r < nrows; r++) {
        SM_ASSERT(rows[r] >= 0 && (size_t)rows[r] < N);
        layernorm_forward(hidden + (size_t)r * D, x + (size_t)rows[r] * D, m->lnf_w, m->lnf_b, 1,
                          D, c->eps);
    }
    free(x);
    free(ln);
    free(qkv);
    free(att);
    free(y);
    free(h);
    free(scratch);
    return 0;
}

int gpt2_forward(const gpt2_model *m, const int32_t *ids, int B, int T, float *logits) {
    return forward_impl(m, ids, B, T, logits, NULL, 0, NULL);
}

int gpt2_hidden(const gpt2_model *m, const int32_t *ids, int B, int T, const int32_t *rows,
                int nrows, float *hidden) {
    return forward_impl(m, ids, B, T, NULL, rows, nrows, hidden);
}
