/* transformer.h — the bidirectional LLaMA-style denoisers (docs/DESIGN.md §4): Dream / Dream-Coder
 * (Qwen2.5 weights, model_type "Dream") and LLaDA (model_type "llada").
 *
 * Both are pre-norm transformers: RMSNorm (fp32), rotary q/k (rotate_half, positions 0..T−1),
 * grouped-query attention without a causal mask, SwiGLU MLP down(silu(gate(x))·up(x)),
 * final RMSNorm and an output projection. Projections stay in the checkpoint's dtype
 * (f32/bf16/f16 mmapped, never copied; or q8 after transformer_quantize_q8) and go through
 * linear.h; norm weights and biases are small fp32 copies.
 *
 * forward() writes the raw output rows (before Dream's shift); transformer_shift_logits
 * applies the shift. Not thread-safe: a model owns one workspace.
 */
#ifndef SMDLM_TRANSFORMER_H
#define SMDLM_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "models/kvcache.h"
#include "compute/linear.h"
#include "models/lm.h"
#include "formats/safetensors.h"
#include "softmask/softmask.h"

/* A saved q8 model (`smdlm quantize`, docs/DESIGN.md formats): config.json carries
 * "smdlm_quantization": "q8", and each projection NAME.weight (I8) has NAME.weight_scale (F32). */
#define TF_QUANT_KEY "smdlm_quantization"
#define TF_SCALE_SUFFIX "_scale"

/* The longest canvas accepted whatever the config says (docs/DESIGN.md §4: context used in
 * practice). */
#define TF_MAX_LEN 2048

typedef enum { TF_DREAM = 0, TF_LLADA } tf_family;

typedef struct {
    tf_family family;
    int vocab_size;   /* V: embedding rows and output width (LLaDA: embedding_size) */
    int hidden;       /* D */
    int n_layers;     /* L */
    int n_heads;      /* H */
    int n_kv_heads;   /* KVH, divides H */
    int head_dim;     /* hd = D / H, even */
    int ffn;          /* F: SwiGLU width */
    float rms_eps;
    float rope_theta;
    int qkv_bias;     /* q/k/v projections carry a bias (Dream: always) */
    int tie_embeddings; /* output projection = embedding table */
    int mask_id;
    int max_len;      /* min(config context, TF_MAX_LEN) */
    int shift;        /* 1 for Dream: prediction for position i is output row i − 1 */
    int q8;           /* config.json "smdlm_quantization": "q8": int8 projections saved
                         by `smdlm quantize` (docs/DESIGN.md, formats) */
} tf_config;

/* Parses config.json text (model_type "Dream" or "llada"); `what` names the file in errors. */
int tf_config_parse(tf_config *c, const char *json_text, const char *what);
/* The same from the parsed object. */
int tf_config_from_json(tf_config *c, const cJSON *o, const char *what);
int tf_config_validate(const tf_config *c, const char *what);

typedef struct {
    const float *attn_norm;       /* (D) */
    linear_w q, k, v;             /* (H·hd, D), (KVH·hd, D), (KVH·hd, D) */
    const float *bq, *bk, *bv;    /* (H·hd), (KVH·hd), (KVH·hd) or NULL */
    linear_w o;                   /* (D, H·hd) */
    const float *ffn_norm;        /* (D) */
    linear_w gate, up;            /* (F, D) */
    linear_w down;                /* (D, F) */
} tf_layer;

/* A projection of one layer with its module name as Hugging Face names it (the tensor's name
 * without ".weight", e.g. "model.layers.0.self_attn.q_proj"). */
typedef struct {
    char name[128];
    int layer;
    linear_w *w;
} tf_module;

/* Activations for up to cap_rows = B·T positions and canvases of up to cap_T. */
typedef struct {
    size_t cap_rows;
    int cap_T, nthreads;
    float *x;        /* (N, D) residual stream */
    float *h;        /* (N, D) normalised */
    float *q;        /* (N, H·hd) */
    float *k, *v;    /* (N, KVH·hd) */
    float *att;      /* (N, H·hd) */
    float *gate, *up; /* (N, F) */
    float *scores;   /* T·T per thread */
    float *rope_cos, *rope_sin; /* (cap_T, hd/2) */
    int *need_rows;  /* (N) flat indices of the rows the output projection runs on */
    float *mem;
} tf_workspace;

typedef struct {
    tf_config cfg;
    linear_w embed;     /* (V, D) */
    tf_layer *layers;   /* [L] */
    const float *final_norm; /* (D) */
    linear_w lm_head;   /* (V, D); shares embed's data when tied */
    float *owned;       /* fp32 copies of norms and biases (st_bind_f32) */
    st_archive archive; /* kept open: the projections point into its mapping */
} transformer_model;

/* One generation state over a loaded model: the forwards' scratch and the key/value cache.
 * The model is only read, so several states may run on one model at once. */
typedef struct {
    const transformer_model *m;
    tf_workspace ws;
    kv_cache kv;        /* keys/values of the last refresh (transformer_forward_cached) */
    int kv_valid;
} tf_state;

void tf_state_init(tf_state *s, const transformer_model *m);
void tf_state_free(tf_state *s);
/* The bytes a forward over [B, T] would allocate beyond the workspace s holds now
 * (saturating; the key/value cache not included). */
size_t tf_state_forward_bytes(const tf_state *s, int B, int T);

/* Loads the weights of DIR (model.safetensors or shards + index) for a parsed config. Every
 * tensor is checked against the config (names and shapes); errors name the tensor. */
int transformer_load(transformer_model *m, const tf_config *cfg, const char *dir);
/* The layer projections of m (7 per layer) in a fresh array, *n their count. */
tf_module *transformer_modules(transformer_model *m, int *n);
void transformer_free(transformer_model *m);
/* Replaces every projection (and the output projection) by an int8 copy with per-row
 * scales; the embedding rows stay in the checkpoint's dtype. */
int transformer_quantize_q8(transformer_model *m);
/* Writes the weights of a quantised m (transformer_quantize_q8) as one safetensors file in
 * the layout of a saved q8 model: projections (and the output projection, tied or not) I8
 * [out, in] with F32 `NAME_scale` [out] beside them, every other tensor as stored. */
int transformer_write_q8(const transformer_model *m, const char *path);

/* Raw output rows logits[B·T, V] for ids x [B, T] (ids < V, T ≤ max_len: checked, error
 * otherwise). sm and fb (may be NULL): soft-masked inputs (src/softmask/softmask.h) at masked
 * positions whose feedback has λ ≠ 0, elsewhere E[x]. need (may be NULL = all): rows nobody
 * reads skip the output projection (their content is then unspecified). */
int transformer_forward(tf_state *s, const int32_t *x, const sm_params *sm, const sm_feedback *fb,
                        const uint8_t *need, int B, int T, float *logits);

/* transformer_forward over the positions [lo, hi) of each canvas only, reading the other
 * positions' keys/values from s->kv (kvcache.h: an approximation once the canvas changed).
 * lo = 0, hi = T is a refresh: a full forward (the same result as transformer_forward) that
 * stores every layer's keys/values of rows 0..B−1 (cache_rows must be NULL). Otherwise the
 * cache must hold T positions; batch row b reads cache row cache_rows[b] (NULL: b), and the
 * window's new keys/values replace the cached ones. x, fb, need and logits are indexed by
 * canvas position [B, T] as in transformer_forward; output rows outside the window, like rows
 * not needed, are unspecified afterwards. */
int transformer_forward_cached(tf_state *s, const int32_t *x, const sm_params *sm,
                               const sm_feedback *fb, const uint8_t *need, int B, int T, int lo,
                               int hi, const int *cache_rows, float *logits);

/* Dream's shift in place on [B, T, V]: row t ← row t − 1 for t ≥ 1, row 0 unchanged
 * (`cat(logits[:, :1], logits[:, :-1])`). */
void transformer_shift_logits(float *logits, int B, int T, int V);

/* The lm.h view of a generation state (ctx = s). */
void transformer_as_lm(tf_state *s, lm_model *out);

/* Matmul FLOPs of one forward over B×T positions (multiply-add = 2), output projection on
 * all rows. */
double transformer_forward_flops(const tf_config *c, int B, int T);
/* Bytes of the weights as stored. */
size_t transformer_weight_bytes(const transformer_model *m);

#endif
