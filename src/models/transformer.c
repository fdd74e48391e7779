/* transformer.c — Dream and LLaDA (docs/DESIGN.md §4): config, weights, forward. See transformer.h.
 *
 * Reference implementations read: Dream's modeling_dream.py (Qwen2 blocks, bidirectional) and
 * LLaDA's modeling_llada.py (LLaDALlamaBlock); tools/ref_dream.py follows both line by line.
 */
#include "models/transformer.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/jsonutil.h"
#include "compute/kernels.h"
#include "base/util.h"

/* ---- config ------------------------------------------------------------------------------ */

/* JSON null counts as absent (HF configs write `"n_kv_heads": null`). */
static int present(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v);
}

static int get_int(const cJSON *o, const char *key, long lo, long hi, long dflt, int *out,
                   const char *what) {
    if (!present(o, key)) {
        if (dflt == -1) return SM_ERR("%s: missing integer \"%s\"", what, key);
        *out = (int)dflt;
        return 0;
    }
    return json_get_int(o, key, lo, hi, dflt, out, what);
}

static int get_float(const cJSON *o, const char *key, double lo, double hi, double dflt,
                     float *out, const char *what) {
    double d = dflt;
    if (present(o, key) && json_get_double(o, key, lo, hi, dflt, 0, &d, what)) return -1;
    *out = (float)d;
    return 0;
}

static int get_bool(const cJSON *o, const char *key, int dflt, int *out, const char *what) {
    if (!present(o, key)) {
        *out = dflt;
        return 0;
    }
    return json_get_bool(o, key, dflt, out, what);
}

/* A string field that, when present and not null, must equal `want`. */
static int expect_string(const cJSON *o, const char *key, const char *want, const char *what) {
    if (!present(o, key)) return 0;
    const char *s = json_get_string(o, key);
    if (!s || strcmp(s, want))
        return SM_ERR("%s: \"%s\" must be \"%s\" (other values are not supported)", what, key,
                      want);
    return 0;
}

/* A boolean field that, when present, must have the value `want`. */
static int expect_bool(const cJSON *o, const char *key, int want, const char *what) {
    int v;
    if (get_bool(o, key, want, &v, what)) return -1;
    if (v != want)
        return SM_ERR("%s: \"%s\": %s is not supported", what, key, v ? "true" : "false");
    return 0;
}

#define MAX_DIM (1 << 16)
#define MAX_VOCAB (1 << 24)

/* Qwen2 field names (configuration_dream.py). */
static int parse_dream(tf_config *c, const cJSON *o, const char *what) {
    int ctx;
    c->family = TF_DREAM;
    c->shift = 1;
    c->qkv_bias = 1;
    if (get_int(o, "vocab_size", 2, MAX_VOCAB, -1, &c->vocab_size, what) ||
        get_int(o, "hidden_size", 2, MAX_DIM, -1, &c->hidden, what) ||
        get_int(o, "intermediate_size", 1, 1 << 20, -1, &c->ffn, what) ||
        get_int(o, "num_hidden_layers", 1, 1024, -1, &c->n_layers, what) ||
        get_int(o, "num_attention_heads", 1, MAX_DIM, -1, &c->n_heads, what) ||
        get_int(o, "num_key_value_heads", 1, MAX_DIM, c->n_heads, &c->n_kv_heads, what) ||
        get_int(o, "mask_token_id", 0, MAX_VOCAB, -1, &c->mask_id, what) ||
        get_int(o, "max_position_embeddings", 1, INT32_MAX, 32768, &ctx, what) ||
        get_float(o, "rms_norm_eps", 1e-12, 1.0, 1e-6, &c->rms_eps, what) ||
        get_float(o, "rope_theta", 1.0, 1e12, 10000.0, &c->rope_theta, what) ||
        get_bool(o, "tie_word_embeddings", 0, &c->tie_embeddings, what) ||
        expect_string(o, "hidden_act", "silu", what) ||
        expect_bool(o, "use_sliding_window", 0, what))
        return -1;
    if (present(o, "rope_scaling")) return SM_ERR("%s: \"rope_scaling\" is not supported", what);
    c->max_len = ctx < TF_MAX_LEN ? ctx : TF_MAX_LEN;
    return 0;
}

/* OLMo-style field names (configuration_llada.py); only the LLaMA block the released
 * checkpoints use is implemented, anything else is rejected by name. */
static int parse_llada(tf_config *c, const cJSON *o, const char *what) {
    int ctx, vocab, emb, ratio, mqa, bias;
    c->family = TF_LLADA;
    c->shift = 0;
    if (get_int(o, "d_model", 2, MAX_DIM, -1, &c->hidden, what) ||
        get_int(o, "n_heads", 1, MAX_DIM, -1, &c->n_heads, what) ||
        get_int(o, "n_layers", 1, 1024, -1, &c->n_layers, what) ||
        get_int(o, "vocab_size", 2, MAX_VOCAB, -1, &vocab, what) ||
        get_int(o, "embedding_size", 2, MAX_VOCAB, vocab, &emb, what) ||
        get_int(o, "mlp_ratio", 1, 1024, 4, &ratio, what) ||
        get_bool(o, "multi_query_attention", 0, &mqa, what) ||
        get_int(o, "n_kv_heads", 1, MAX_DIM, mqa ? 1 : c->n_heads, &c->n_kv_heads, what) ||
        get_int(o, "mask_token_id", 0, MAX_VOCAB, 126336, &c->mask_id, what) ||
        get_int(o, "max_sequence_length", 1, INT32_MAX, 1024, &ctx, what) ||
        get_float(o, "rms_norm_eps", 1e-12, 1.0, 1e-5, &c->rms_eps, what) ||
        get_float(o, "rope_theta", 1.0, 1e12, 10000.0, &c->rope_theta, what) ||
        get_bool(o, "weight_tying", 1, &c->tie_embeddings, what) ||
        get_bool(o, "include_qkv_bias", 0, &c->qkv_bias, what) ||
        get_bool(o, "include_bias", 0, &bias, what) ||
        expect_string(o, "activation_type", "silu", what) ||
        expect_string(o, "block_type", "llama", what) ||
        expect_string(o, "layer_norm_type", "rms", what) ||
        expect_bool(o, "rope", 1, what) || expect_bool(o, "alibi", 0, what) ||
        expect_bool(o, "attention_layer_norm", 0, what) ||
        expect_bool(o, "input_emb_norm", 0, what) || expect_bool(o, "scale_logits", 0, what) ||
        expect_bool(o, "layer_norm_with_affine", 1, what) ||
        expect_bool(o, "bias_for_layer_norm", 0, what))
        return -1;
    if (bias) return SM_ERR("%s: \"include_bias\": true is not supported", what);
    int group;
    if (get_int(o, "block_group_size", 1, 1, 1, &group, what)) return -1;
    if (emb < vocab)
        return SM_ERR("%s: embedding_size %d is smaller than vocab_size %d", what, emb, vocab);
    c->vocab_size = emb;
    if (present(o, "mlp_hidden_size")) {
        if (get_int(o, "mlp_hidden_size", 1, 1 << 20, -1, &c->ffn, what)) return -1;
    } else if ((long)ratio * c->hidden > (1 << 20)) {
        return SM_ERR("%s: mlp_ratio·d_model is too large", what);
    } else {
        c->ffn = ratio * c->hidden;
    }
    c->max_len = ctx < TF_MAX_LEN ? ctx : TF_MAX_LEN;
    return 0;
}

int tf_config_validate(const tf_config *c, const char *what) {
    if (c->hidden % c->n_heads)
        return SM_ERR("%s: %d heads do not divide the hidden size %d", what, c->n_heads, c->hidden);
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return SM_ERR("%s: %d key/value heads do not divide %d heads", what, c->n_kv_heads,
                      c->n_heads);
    if (c->head_dim % 2) return SM_ERR("%s: head size %d is odd (rotary needs pairs)", what, c->head_dim);
    if (c->mask_id >= c->vocab_size)
        return SM_ERR("%s: mask id %d is not below the vocabulary size %d", what, c->mask_id,
                      c->vocab_size);
    if (!(c->rms_eps > 0.0f) || !isfinite(c->rope_theta) || c->rope_theta < 1.0f)
        return SM_ERR("%s: rms_norm_eps and rope_theta must be positive", what);
    return 0;
}

int tf_config_from_json(tf_config *c, const cJSON *o, const char *what) {
    static const char *const types[] = {"Dream", "llada", NULL};
    int which;
    memset(c, 0, sizeof *c);
    if (json_model_config_type(o, what, "a Dream or LLaDA", types, &which) ||
        (which == 0 ? parse_dream(c, o, what) : parse_llada(c, o, what)) ||
        expect_string(o, TF_QUANT_KEY, "q8", what))
        return -1;
    c->q8 = present(o, TF_QUANT_KEY);
    c->head_dim = c->hidden / c->n_heads;
    return tf_config_validate(c, what);
}

int tf_config_parse(tf_config *c, const char *json_text, const char *what) {
    memset(c, 0, sizeof *c);
    cJSON *o = json_parse_object(json_text, what);
    if (!o) return -1;
    int rc = tf_config_from_json(c, o, what);
    cJSON_Delete(o);
    return rc;
}

/* ---- weights ----------------------------------------------------------------------------- */

typedef struct {
    char name[128];
    int64_t shape[2];
    int ndim;
    linear_w *lin;      /* a projection (q8: its I8 weights), or */
    const float **f32;  /* a small fp32 tensor (q8: also a projection's scales) */
    int q8;             /* 1: I8 weights of a q8 model; 2: their scales */
} tf_tensor;

/* A q8 model (c->q8) saves the output projection even when tied, and a scale per projection. */
static int tensor_count(const tf_config *c) {
    const int head = !c->tie_embeddings || c->q8;
    return 2 + head + c->n_layers * (9 + 3 * c->qkv_bias) + (c->q8 ? 7 * c->n_layers + 1 : 0);
}

static void add(tf_tensor *t, int *n, const char *name, int64_t d0, int64_t d1, linear_w *lin,
                const float **f32) {
    tf_tensor *e = &t[(*n)++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->ndim = d1 ? 2 : 1;
    e->lin = lin;
    e->f32 = f32;
    e->q8 = 0;
}

/* A projection [d0, d1]; in a q8 model I8, followed by its F32 scales NAME_scale [d0]. */
static void add_proj(tf_tensor *t, int *n, int q8, const char *name, int64_t d0, int64_t d1,
                     linear_w *lin) {
    add(t, n, name, d0, d1, lin, NULL);
    if (!q8) return;
    t[*n - 1].q8 = 1;
    char s[128];
    snprintf(s, sizeof s, "%s%s", name, TF_SCALE_SUFFIX);
    add(t, n, s, d0, 0, NULL, &lin->scales);
    t[*n - 1].q8 = 2;
}

/* The expected-tensor registry of the config (HF names). */
static int tensor_table(transformer_model *m, tf_tensor *t) {
    const tf_config *c = &m->cfg;
    const int64_t D = c->hidden, QD = (int64_t)c->n_heads * c->head_dim,
                  KD = (int64_t)c->n_kv_heads * c->head_dim, F = c->ffn, V = c->vocab_size;
    const int dream = c->family == TF_DREAM, q8 = c->q8;
    char nm[128];
    int n = 0;
    add(t, &n, dream ? "model.embed_tokens.weight" : "model.transformer.wte.weight", V, D,
        &m->embed, NULL);
    add(t, &n, dream ? "model.norm.weight" : "model.transformer.ln_f.weight", D, 0, NULL,
        &m->final_norm);
    if (!c->tie_embeddings || q8)
        add_proj(t, &n, q8, dream ? "lm_head.weight" : "model.transformer.ff_out.weight", V, D,
                 &m->lm_head);
    for (int i = 0; i < c->n_layers; i++) {
        tf_layer *l = &m->layers[i];
        char pre[64];
        snprintf(pre, sizeof pre, dream ? "model.layers.%d." : "model.transformer.blocks.%d.", i);
        const char *att = dream ? "self_attn." : "";
        const char *mlp = dream ? "mlp." : "";
#define NAME(fmt, ...) (snprintf(nm, sizeof nm, "%s" fmt, pre, __VA_ARGS__), nm)
        add(t, &n, NAME("%s", dream ? "input_layernorm.weight" : "attn_norm.weight"), D, 0, NULL,
            &l->attn_norm);
        add_proj(t, &n, q8, NAME("%sq_proj.weight", att), QD, D, &l->q);
        add_proj(t, &n, q8, NAME("%sk_proj.weight", att), KD, D, &l->k);
        add_proj(t, &n, q8, NAME("%sv_proj.weight", att), KD, D, &l->v);
        if (c->qkv_bias) {
            add(t, &n, NAME("%sq_proj.bias", att), QD, 0, NULL, &l->bq);
            add(t, &n, NAME("%sk_proj.bias", att), KD, 0, NULL, &l->bk);
            add(t, &n, NAME("%sv_proj.bias", att), KD, 0, NULL, &l->bv);
        }
        add_proj(t, &n, q8, NAME("%s", dream ? "self_attn.o_proj.weight" : "attn_out.weight"), D,
                 QD, &l->o);
        add(t, &n, NAME("%s", dream ? "post_attention_layernorm.weight" : "ff_norm.weight"), D, 0,
            NULL, &l->ffn_norm);
        add_proj(t, &n, q8, NAME("%s%s", mlp, dream ? "gate_proj.weight" : "ff_proj.weight"), F,
                 D, &l->gate);
        add_proj(t, &n, q8, NAME("%sup_proj.weight", mlp), F, D, &l->up);
        add_proj(t, &n, q8, NAME("%s%s", mlp, dream ? "down_proj.weight" : "ff_out.weight"), D,
                 F, &l->down);
#undef NAME
    }
    SM_ASSERT(n == tensor_count(c));
    return n;
}

tf_module *transformer_modules(transformer_model *m, int *count) {
    const int n = tensor_count(&m->cfg);
    tf_tensor *t = sm_calloc((size_t)n, sizeof *t);
    tensor_table(m, t);
    tf_module *mods = sm_calloc((size_t)n, sizeof *mods);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *l0 = (const char *)m->layers, *p = (const char *)t[i].lin;
        if (!p || p < l0 || p >= l0 + sizeof(tf_layer) * (size_t)m->cfg.n_layers) continue;
        const size_t len = strlen(t[i].name) - strlen(".weight");
        snprintf(mods[k].name, sizeof mods[k].name, "%.*s", (int)len, t[i].name);
        mods[k].layer = (int)((size_t)(p - l0) / sizeof(tf_layer));
        mods[k++].w = t[i].lin;
    }
    free(t);
    *count = k;
    return mods;
}

/* Projections in bf16/f16 point into the mapping; every other dtype (and every small
 * tensor) goes through st_bind_f32 (fp32 in place when aligned, else one owned copy). */
static int bind(transformer_model *m, const tf_tensor *t, int n) {
    const char **names = sm_malloc(sizeof *names * (size_t)n);
    const float **views = sm_malloc(sizeof *views * (size_t)n);
    int *which = sm_malloc(sizeof *which * (size_t)n), nf = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *st = st_find(&m->archive, t[i].name);
        SM_ASSERT(st);
        if (t[i].lin) {
            linear_w *w = t[i].lin;
            memset(w, 0, sizeof *w);
            w->out = (int)t[i].shape[0];
            w->in = (int)t[i].shape[1];
            if (t[i].q8) { /* wrapped once its scales are bound (transformer_load) */
                w->type = WT_Q8;
                w->data = st->data;
                continue;
            }
            if (st->dtype == ST_BF16 || st->dtype == ST_F16) {
                w->type = st->dtype == ST_BF16 ? WT_BF16 : WT_F16;
                w->data = st->data;
                continue;
            }
            w->type = WT_F32;
        }
        names[nf] = t[i].name;
        which[nf++] = i;
    }
    int rc = nf ? st_bind_f32(&m->archive, names, nf, views, &m->owned) : 0;
    for (int j = 0; j < nf && rc == 0; j++) {
        const tf_tensor *e = &t[which[j]];
        if (e->lin)
            e->lin->data = views[j];
        else
            *e->f32 = views[j];
    }
    free(names);
    free(views);
    free(which);
    return rc;
}

int transformer_load(transformer_model *m, const tf_config *cfg, const char *dir) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (st_open_dir(&m->archive, dir)) return sm_wrap_error("loading '%s'", dir);
    m->layers = sm_calloc((size_t)cfg->n_layers, sizeof *m->layers);
    int n = tensor_count(cfg);
    tf_tensor *t = sm_calloc((size_t)n, sizeof *t);
    tensor_table(m, t);
    st_expect *ex = sm_calloc((size_t)n, sizeof *ex);
    for (int i = 0; i < n; i++) {
        ex[i].name = t[i].name;
        ex[i].ndim = t[i].ndim;
        ex[i].shape[0] = t[i].shape[0];
        ex[i].shape[1] = t[i].shape[1];
        ex[i].int8 = t[i].q8 == 1;
    }
    /* HF omits a tied head (or writes it anyway); old checkpoints carry rotary buffers */
    static const char *const ok_tied[] = {"rotary_emb.inv_freq", "lm_head.weight"};
    int rc = st_check_expected(&m->archive, ex, n, ok_tied, cfg->tie_embeddings ? 2 : 1);
    if (rc == 0) rc = bind(m, t, n);
    for (int i = 0; i < n && rc == 0; i++) /* saved q8: check the values, compute the row sums */
        if (t[i].q8 == 1) {
            linear_w w = *t[i].lin;
            rc = linear_q8_wrap(t[i].lin, w.data, w.scales, w.out, w.in, t[i].name);
        }
    free(ex);
    free(t);
    if (rc) {
        sm_wrap_error("loading '%s'", dir);
        transformer_free(m);
        return -1;
    }
    if (cfg->tie_embeddings && !cfg->q8) m->lm_head = m->embed;
    return 0;
}

static void workspace_free(tf_workspace *w) {
    free(w->mem);
    free(w->need_rows);
    memset(w, 0, sizeof *w);
}

void transformer_free(transformer_model *m) {
    if (m->layers) {
        for (int i = 0; i < m->cfg.n_layers; i++) {
            tf_layer *l = &m->layers[i];
            linear_w *ws[] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
            for (size_t j = 0; j < sizeof ws / sizeof *ws; j++) linear_free(ws[j]);
        }
    }
    if (m->lm_head.owned) linear_free(&m->lm_head);
    free(m->layers);
    free(m->owned);
    st_close(&m->archive);
    memset(m, 0, sizeof *m);
}

int transformer_quantize_q8(transformer_model *m) {
    for (int i = 0; i < m->cfg.n_layers; i++) {
        tf_layer *l = &m->layers[i];
        linear_w *ws[] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
        for (size_t j = 0; j < sizeof ws / sizeof *ws; j++) {
            linear_w q;
            if (ws[j]->type == WT_Q8) continue;
            if (linear_quantize_q8(&q, ws[j])) return -1;
            q.lora = ws[j]->lora;
            ws[j]->lora = NULL;
            linear_free(ws[j]);
            *ws[j] = q;
        }
    }
    if (m->lm_head.type != WT_Q8) {
        linear_w q;
        if (linear_quantize_q8(&q, &m->lm_head)) return -1;
        m->lm_head = q;
    }
    return 0;
}

int transformer_write_q8(const transformer_model *m, const char *path) {
    tf_config c = m->cfg;
    c.q8 = 1;
    transformer_model q = *m; /* the q8 layout's table over m's weights */
    q.cfg = c;
    const int n = tensor_count(&c);
    tf_tensor *t = sm_calloc((size_t)n, sizeof *t);
    tensor_table(&q, t);
    st_write_entry *e = sm_calloc((size_t)n, sizeof *e);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        e[i] = (st_write_entry){.name = t[i].name, .ndim = t[i].ndim,
                                .shape = {t[i].shape[0], t[i].shape[1]}};
        if (t[i].q8) {
            const linear_w *w = t[i].q8 == 1 ? t[i].lin : NULL;
            if (w && w->type != WT_Q8) rc = SM_ERR("%s: not quantised", t[i].name);
            e[i].dtype = t[i].q8 == 1 ? ST_I8 : ST_F32;
            e[i].data = t[i].q8 == 1 ? w->data : (const void *)*t[i].f32;
        } else { /* as stored */
            const st_tensor *s = st_find(&m->archive, t[i].name);
            SM_ASSERT(s);
            e[i].dtype = s->dtype;
            e[i].data = s->data;
        }
    }
    static const char *const meta[] = {"format", "pt", NULL};
    if (rc == 0) rc = st_write(path, e, n, meta);
    free(e);
    free(t);
    return rc;
}

size_t transformer_weight_bytes(const transformer_model *m) {
    size_t s = 0;
    for (int i = 0; i < m->archive.ntensors; i++) s += m->archive.tensors[i].nbytes;
    return s;
}

double transformer_forward_flops(const tf_config *c, int B, int T) {
    double D = c->hidden, QD = (double)c->n_heads * c->head_dim,
           KD = (double)c->n_kv_heads * c->head_dim, F = c->ffn, N = (double)B * T;
    double per_tok = 2.0 * (D * QD + 2.0 * D * KD + QD * D + 3.0 * D * (double)F);
    double attn = 4.0 * (double)T * QD; /* q·kᵀ and p·v per query position */
    return N * (c->n_layers * (per_tok + attn) + 2.0 * D * c->vocab_size);
}

/* ---- workspace --------------------------------------------------------------------------- */

void tf_state_init(tf_state *s, const transformer_model *m) {
    memset(s, 0, sizeof *s);
    s->m = m;
}

void tf_state_free(tf_state *s) {
    workspace_free(&s->ws);
    kv_cache_free(&s->kv);
    memset(s, 0, sizeof *s);
}

/* Floats of the workspace for N rows of canvases of T positions (saturating): per row x, h,
 * q, att, k, v, gate, up; the attention scores of each thread; the rope tables. */
static size_t workspace_floats(const tf_config *c, size_t N, int T, int nth) {
    const size_t D = c->hidden, QD = (size_t)c->n_heads * c->head_dim,
                 KD = (size_t)c->n_kv_heads * c->head_dim, F = c->ffn, half = c->head_dim / 2;
    const size_t per_row = 2 * D + 2 * QD + 2 * KD + 2 * F;
    return sm_size_add(sm_size_add(sm_size_mul(N, per_row), attention_scratch_floats(T, nth)),
                       sm_size_mul(2 * (size_t)T, half));
}

/* Bytes of the workspace with its row list. */
static size_t workspace_bytes(const tf_config *c, size_t N, int T, int nth) {
    return sm_size_add(sm_size_mul(workspace_floats(c, N, T, nth), sizeof(float)),
                       sm_size_mul(N, sizeof(int)));
}

static int workspace_fits(const tf_workspace *w, size_t N, int T, int nth) {
    return N <= w->cap_rows && T <= w->cap_T && nth <= w->nthreads;
}

static int workspace_ensure(tf_state *s, int B, int T) {
    tf_workspace *w = &s->ws;
    const tf_config *c = &s->m->cfg;
    size_t N = (size_t)B * T;
    int nth = omp_get_max_threads(); /* the threads the parallel regions below will use */
    if (workspace_fits(w, N, T, nth)) return 0;
    workspace_free(w);
    if (SM_CHECK_MEMORY(workspace_bytes(c, N, T, nth), "the workspace of a forward of %d × %d "
                        "positions", B, T))
        return -1;
    size_t D = c->hidden, QD = (size_t)c->n_heads * c->head_dim,
           KD = (size_t)c->n_kv_heads * c->head_dim, F = c->ffn, half = c->head_dim / 2;
    const size_t score_f = attention_scratch_floats(T, nth);
    float *p = w->mem = sm_aligned_alloc(workspace_floats(c, N, T, nth) * sizeof(float));
#define TAKE(ptr, n) (ptr = p, p += (n))
    TAKE(w->x, N * D);
    TAKE(w->h, N * D);
    TAKE(w->q, N * QD);
    TAKE(w->att, N * QD);
    TAKE(w->k, N * KD);
    TAKE(w->v, N * KD);
    TAKE(w->gate, N * F);
    TAKE(w->up, N * F);
    TAKE(w->scores, score_f);
    TAKE(w->rope_cos, (size_t)T * half);
    TAKE(w->rope_sin, (size_t)T * half);
#undef TAKE
    w->need_rows = sm_malloc(sizeof(int) * N);
    w->cap_rows = N;
    w->cap_T = T;
    w->nthreads = nth;
    rope_tables(w->rope_cos, w->rope_sin, T, c->head_dim, c->rope_theta);
    return 0;
}

size_t tf_state_forward_bytes(const tf_state *s, int B, int T) {
    const tf_workspace *w = &s->ws;
    const int nth = omp_get_max_threads();
    if (workspace_fits(w, (size_t)B * T, T, nth)) return 0;
    const size_t need = workspace_bytes(&s->m->cfg, (size_t)B * T, T, nth);
    const size_t have =
        w->mem ? workspace_bytes(&s->m->cfg, w->cap_rows, w->cap_T, w->nthreads) : 0;
    return need > have ? need - have : 0; /* the old workspace is freed first */
}

/* ---- attention --------------------------------------------------------------------------- */

/* Where a forward reads keys/values: the workspace (no cache: Tq = T) or a cache that the
 * window's rows were just written into (kvcache.h). */
typedef struct {
    kv_cache *kv;          /* NULL: w->k / w->v */
    const int *cache_rows; /* batch row b uses cache row cache_rows[b] (NULL: b) */
    int layer, lo;         /* the window's first position */
} kv_src;

static const float *keys_of(const tf_workspace *w, const kv_src *s, int b, int T, int KD) {
    if (!s->kv) return w->k + (size_t)b * T * KD;
    return kv_cache_k(s->kv, s->layer, s->cache_rows ? s->cache_rows[b] : b);
}

static const float *values_of(const tf_workspace *w, const kv_src *s, int b, int T, int KD) {
    if (!s->kv) return w->v + (size_t)b * T * KD;
    return kv_cache_v(s->kv, s->layer, s->cache_rows ? s->cache_rows[b] : b);
}

/* Copies the window's keys/values (rows b·Tq + j of the workspace) to positions lo + j of
 * the cache rows. */
static void store_kv(const tf_config *c, tf_workspace *w, const kv_src *s, int B, int Tq) {
    const size_t KD = (size_t)c->n_kv_heads * c->head_dim;
    for (int b = 0; b < B; b++) {
        const int cb = s->cache_rows ? s->cache_rows[b] : b;
        memcpy(kv_cache_k(s->kv, s->layer, cb) + (size_t)s->lo * KD, w->k + (size_t)b * Tq * KD,
               (size_t)Tq * KD * sizeof(float));
        memcpy(kv_cache_v(s->kv, s->layer, cb) + (size_t)s->lo * KD, w->v + (size_t)b * Tq * KD,
               (size_t)Tq * KD * sizeof(float));
    }
}

/* Bidirectional grouped-query attention: query head h reads key/value head h / (H / KVH)
 * (repeat_kv). Tq query rows per canvas against all T keys. One (b, h) per task, its matrix
 * products single-threaded inside the region (gemm.h). */
static void attention_gqa(const tf_config *c, tf_workspace *w, const kv_src *src, int B, int Tq,
                          int T) {
    const int H = c->n_heads, hd = c->head_dim, rep = c->n_heads / c->n_kv_heads;
    const int QD = H * hd, KD = c->n_kv_heads * hd;
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, g = h / rep;
        float *S = w->scores + (size_t)omp_get_thread_num() * T * T;
        const float *q = w->q + (size_t)b * Tq * QD + (size_t)h * hd;
        const float *k = keys_of(w, src, b, T, KD) + (size_t)g * hd;
        const float *v = values_of(w, src, b, T, KD) + (size_t)g * hd;
        float *o = w->att + (size_t)b * Tq * QD + (size_t)h * hd;
        attention_head(o, S, q, k, v, Tq, T, hd, QD, KD, QD, 0);
    }
}

/* ---- forward ----------------------------------------------------------------------------- */

/* Workspace row n of a forward over positions [lo, lo + Tq) of canvases of T positions is
 * canvas position (n / Tq)·T + lo + n mod Tq. */
static inline size_t canvas_index(size_t n, int Tq, int lo, int T) {
    return Tq == T ? n : (n / Tq) * T + lo + n % Tq;
}

static void embed_rows(void *ctx, const int32_t *ids, int n, float *out) {
    const transformer_model *m = ctx;
    linear_rows_f32(out, &m->embed, ids, n);
}

/* x = E[ids], soft-masked inputs at masked positions with feedback (src/softmask/softmask.h).
 * Rows of the window [lo, lo + Tq) of each canvas x [B, T] (fb indexed like x). */
static void embed(tf_state *s, const int32_t *x, const sm_params *sm, const sm_feedback *fb,
                  int B, int Tq, int lo, int T) {
    const transformer_model *m = s->m;
    const size_t N = (size_t)B * Tq;
    int32_t *gathered = NULL;
    sm_feedback *fb_rows = NULL;
    const int32_t *ids = x;
    const sm_feedback *fbw = fb;
    if (Tq != T) {
        ids = gathered = sm_malloc(sizeof(int32_t) * N);
        for (size_t n = 0; n < N; n++) gathered[n] = x[canvas_index(n, Tq, lo, T)];
        if (fb) {
            fbw = fb_rows = sm_malloc(sizeof(sm_feedback) * N);
            for (size_t n = 0; n < N; n++) fb_rows[n] = fb[canvas_index(n, Tq, lo, T)];
        }
    }
    linear_rows_f32(s->ws.x, &m->embed, ids, (int)N);
    if (sm && fb)
        sm_mix_inputs(s->ws.x, m->cfg.hidden, N, ids, m->cfg.mask_id, m->cfg.vocab_size, sm, fbw,
                      embed_rows, (void *)m);
    free(gathered);
    free(fb_rows);
}

/* One block over the Tq positions of the workspace rows (src->lo onwards; Tq = T without a
 * cache), attending to all T positions. */
static void layer_forward(tf_state *s, const tf_layer *l, const kv_src *src, int B, int Tq,
                          int T) {
    const tf_config *c = &s->m->cfg;
    tf_workspace *w = &s->ws;
    const size_t N = (size_t)B * Tq, D = c->hidden;
    rmsnorm_forward(w->h, w->x, l->attn_norm, N, c->hidden, c->rms_eps);
    linear_forward(w->q, w->h, &l->q, l->bq, (int)N);
    linear_forward(w->k, w->h, &l->k, l->bk, (int)N);
    linear_forward(w->v, w->h, &l->v, l->bv, (int)N);
    rope_forward_qk(w->q, w->k, w->rope_cos, w->rope_sin, N, Tq, src->lo, c->n_heads,
                    c->n_kv_heads, c->head_dim);
    if (src->kv) store_kv(c, w, src, B, Tq);
    attention_gqa(c, w, src, B, Tq, T);
    linear_forward(w->h, w->att, &l->o, NULL, (int)N);
    residual_add_forward(w->x, w->h, N * D);
    rmsnorm_forward(w->h, w->x, l->ffn_norm, N, c->hidden, c->rms_eps);
    linear_forward(w->gate, w->h, &l->gate, NULL, (int)N);
    linear_forward(w->up, w->h, &l->up, NULL, (int)N);
    swiglu_forward(w->gate, w->up, N * (size_t)c->ffn);
    linear_forward(w->h, w->gate, &l->down, NULL, (int)N);
    residual_add_forward(w->x, w->h, N * D);
}

/* Final norm and output projection on the needed rows only: they are packed to the front,
 * projected, and the output rows moved back to their canvas places (last first, so no row is
 * overwritten before it moves: the destination of packed row i is ≥ i). need and logits are
 * indexed by canvas position [B, T]; the workspace holds the window [lo, lo + Tq). */
static void output(tf_state *s, const uint8_t *need, int B, int Tq, int lo, int T,
                   float *logits) {
    const transformer_model *m = s->m;
    const tf_config *c = &m->cfg;
    tf_workspace *w = &s->ws;
    const size_t D = c->hidden, V = c->vocab_size, N = (size_t)B * Tq;
    int *rows = w->need_rows, n = 0;
    for (size_t i = 0; i < N; i++)
        if (!need || need[canvas_index(i, Tq, lo, T)]) rows[n++] = (int)i;
    if (n == 0) return;
    for (int i = 0; i < n; i++)
        if (rows[i] != i) memcpy(w->x + (size_t)i * D, w->x + (size_t)rows[i] * D, D * sizeof(float));
    rmsnorm_forward(w->h, w->x, m->final_norm, (size_t)n, c->hidden, c->rms_eps);
    linear_forward(logits, w->h, &m->lm_head, NULL, n);
    for (int i = n - 1; i >= 0; i--) {
        const size_t dst = canvas_index((size_t)rows[i], Tq, lo, T);
        if (dst != (size_t)i) memcpy(logits + dst * V, logits + (size_t)i * V, V * sizeof(float));
    }
}

/* Checks of the inputs shared by both forwards. */
static int check_inputs(const transformer_model *m, const int32_t *x, const sm_params *sm,
                        const sm_feedback *fb, int B, int T) {
    const int sm_k = sm ? sm->k : 0;
    const tf_config *c = &m->cfg;
    if (B < 1 || T < 1) return SM_ERR("empty batch (%d × %d)", B, T);
    if (T > c->max_len)
        return SM_ERR("%d positions exceed the model's context of %d", T, c->max_len);
    if (fb && (sm_k < 1 || sm_k > SM_MAX_K)) return SM_ERR("soft-masking k = %d out of range", sm_k);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (x[i] < 0 || x[i] >= c->vocab_size)
            return SM_ERR("token id %d at position %zu is outside the vocabulary [0, %d)", x[i],
                          i, c->vocab_size);
    if (fb)
        for (size_t i = 0; i < (size_t)B * T; i++)
            for (int j = 0; j < sm_k && x[i] == c->mask_id && fb[i].lambda != 0.0f; j++)
                if (fb[i].idx[j] < 0 || fb[i].idx[j] >= c->vocab_size)
                    return SM_ERR("feedback token %d at position %zu is outside the vocabulary",
                                  fb[i].idx[j], i);
    return 0;
}

int transformer_forward(tf_state *s, const int32_t *x, const sm_params *sm, const sm_feedback *fb,
                        const uint8_t *need, int B, int T, float *logits) {
    const transformer_model *m = s->m;
    const tf_config *c = &m->cfg;
    if (check_inputs(m, x, sm, fb, B, T) || workspace_ensure(s, B, T)) return -1;
    const kv_src src = {0};
    embed(s, x, sm, fb, B, T, 0, T);
    for (int i = 0; i < c->n_layers; i++) layer_forward(s, &m->layers[i], &src, B, T, T);
    output(s, need, B, T, 0, T, logits);
    return 0;
}

int transformer_forward_cached(tf_state *s, const int32_t *x, const sm_params *sm,
                               const sm_feedback *fb, const uint8_t *need, int B, int T, int lo,
                               int hi, const int *cache_rows, float *logits) {
    const transformer_model *m = s->m;
    const tf_config *c = &m->cfg;
    if (check_inputs(m, x, sm, fb, B, T)) return -1;
    if (lo < 0 || hi > T || lo >= hi)
        return SM_ERR("cached forward: window [%d, %d) is not inside [0, %d)", lo, hi, T);
    kv_cache *kv = &s->kv;
    const int refresh = lo == 0 && hi == T;
    if (refresh) {
        if (cache_rows) return SM_ERR("cached forward: a refresh stores rows 0..B−1 (no row map)");
        s->kv_valid = 0; /* a failed reserve leaves no cache */
        if (kv_cache_reserve(kv, c->n_layers, B, T, c->n_kv_heads * c->head_dim)) return -1;
        s->kv_valid = 1;
    } else {
        if (!s->kv_valid || kv->T != T)
            return SM_ERR("cached forward: no cache of %d positions to reuse (refresh first)", T);
        for (int b = 0; b < B; b++) {
            const int cb = cache_rows ? cache_rows[b] : b;
            if (cb < 0 || cb >= kv->B)
                return SM_ERR("cached forward: row %d maps to cache row %d of %d", b, cb, kv->B);
        }
    }
    if (workspace_ensure(s, B, T)) return -1;
    const int Tq = hi - lo;
    kv_src src = {.kv = kv, .cache_rows = cache_rows, .lo = lo};
    embed(s, x, sm, fb, B, Tq, lo, T);
    for (int i = 0; i < c->n_layers; i++) {
        src.layer = i;
        layer_forward(s, &m->layers[i], &src, B, Tq, T);
    }
    output(s, need, B, Tq, lo, T, logits);
    return 0;
}

/* ---- logit shift, soft-masking feedback, lm view ---------------------------------------- */

void transformer_shift_logits(float *logits, int B, int T, int V) {
    for (int b = 0; b < B; b++) {
        float *L = logits + (size_t)b * T * V;
        if (T > 1) memmove(L + V, L, (size_t)(T - 1) * V * sizeof(float));
    }
}

static int lm_forward(void *ctx, const int32_t *x, const double *t, const sm_params *sm,
                      const sm_feedback *fb, const uint8_t *need, int B, int T, float *logits) {
    return transformer_forward(ctx, x, sm, fb, need, B, T, logits); /* no time input */
}

static int lm_forward_cached(void *ctx, const int32_t *x, const sm_params *sm,
                             const sm_feedback *fb, const uint8_t *need, int B, int T, int lo,
                             int hi, const int *cache_rows, float *logits) {
    return transformer_forward_cached(ctx, x, sm, fb, need, B, T, lo, hi, cache_rows, logits);
}

void transformer_as_lm(tf_state *s, lm_model *out) {
    const transformer_model *m = s->m;
    memset(out, 0, sizeof *out);
    out->vocab_size = m->cfg.vocab_size;
    out->mask_id = m->cfg.mask_id;
    out->shift = m->cfg.shift;
    out->max_len = m->cfg.max_len;
    out->forward = lm_forward;
    out->forward_cached = lm_forward_cached;
    out->ctx = s;
}
