/* dit.h — the MDLM diffusion transformer (docs/DESIGN.md §4): config, named weights, forward pass.
 *
 * Weights are a struct of named pointers (shapes in comments, PyTorch [out, in] layout).
 * dit_param_table lists every parameter with its checkpoint name and shape; the loader, the
 * safetensors writer and (later) gradients and optimizer state all walk that one table.
 */
#ifndef SMDLM_DIT_H
#define SMDLM_DIT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "formats/safetensors.h"

typedef struct {
    int vocab_size;   /* V, includes the mask token */
    int hidden;       /* D */
    int n_heads;      /* H, divides D; head_dim = D/H is even */
    int n_blocks;     /* L */
    int cond_dim;     /* C */
    int model_length; /* longest canvas the model was trained on */
    int mask_id;      /* default V − 1 */
    int time_conditioning;
    int causal;       /* AR variant: causal attention, next-token targets */
} dit_config;

typedef struct {
    float *norm1;    /* (D) */
    float *norm2;    /* (D) */
    float *attn_qkv; /* (3D, D), out rows laid out [3][H][hd] */
    float *attn_out; /* (D, D) */
    float *mlp0_w;   /* (4D, D) */
    float *mlp0_b;   /* (4D) */
    float *mlp2_w;   /* (D, 4D) */
    float *mlp2_b;   /* (D) */
    float *ada_w;    /* (6D, C): shift1, scale1, gate1, shift2, scale2, gate2 */
    float *ada_b;    /* (6D) */
} dit_block;

typedef struct {
    float *embed;       /* (V, D) vocab_embed.embedding */
    float *sigma_w0;    /* (C, 256) */
    float *sigma_b0;    /* (C) */
    float *sigma_w2;    /* (C, C) */
    float *sigma_b2;    /* (C) */
    dit_block *blocks;  /* [L] */
    float *final_norm;  /* (D) */
    float *final_ada_w; /* (2D, C): shift, scale */
    float *final_ada_b; /* (2D) */
    float *out_w;       /* (V, D) */
    float *out_b;       /* (V) */
} dit_weights;

typedef struct {
    char name[96]; /* checkpoint name without the `backbone.` prefix */
    int ndim;
    int64_t shape[2];
    size_t numel;
    float **slot; /* where the pointer lives in a dit_weights */
} dit_param;

/* Validates ranges (heads divide hidden, mask id < V, ...). 0 or -1 with a message. */
int dit_config_validate(const dit_config *c);
/* Parses a config.json text (model_type "mdlm"). */
int dit_config_parse(dit_config *c, const char *json_text, const char *what);
/* The same from the parsed object. */
int dit_config_from_json(dit_config *c, const cJSON *root, const char *what);

/* Number of parameters in the table and the table itself (caller passes an array of at
 * least dit_param_count entries). w->blocks must point at L blocks. */
int dit_param_count(const dit_config *c);
void dit_param_table(const dit_config *c, dit_weights *w, dit_param *out);
size_t dit_param_numel(const dit_config *c);

/* A loaded model: weights either point into the mapped checkpoint (F32, aligned) or into
 * one owned buffer (converted from BF16/F16, or allocated for training). */
typedef struct {
    dit_config cfg;
    dit_weights w;
    dit_block *blocks_mem;
    float *owned;       /* one allocation, or NULL */
    st_archive archive; /* kept open while weights point into it */
    const char *prefix; /* "backbone." or "": how the checkpoint names its tensors */
    /* When the embedding table lives in the mapped checkpoint, its rows are read with
     * pread from this descriptor: touching a mapped table maps whole large folios and a
     * 1k-token canvas would make most of it resident (see NOTES.md). −1 otherwise. */
    int embed_fd;
    uint64_t embed_offset;
} dit_model;

int dit_model_load(dit_model *m, const dit_config *cfg, const char *dir);
/* Fresh model with every parameter in one owned allocation (zeroed). */
void dit_model_alloc(dit_model *m, const dit_config *cfg);
void dit_model_free(dit_model *m);
/* Writes model.safetensors with `backbone.` names (fp32), atomically. */
int dit_model_save(const dit_model *m, const char *path);
/* The tensors of a weights struct (parameters or gradients) named prefix + name, then the
 * extra entries, to a safetensors file (atomically). */
int dit_weights_save(const dit_config *c, const dit_weights *w, const char *prefix,
                     const st_write_entry *extra, int nextra, const char *path);
/* config.json of a model directory. */
int dit_config_save(const dit_config *c, const char *path);

/* Activations for up to B×T positions, one allocation. */
typedef struct {
    int B, T, nthreads;
    /* 1: every product runs on one canvas's rows at a time (and the conditioning on one row),
     * so a canvas's output does not depend on the other canvases of its batch: a BLAS picks
     * its kernels by the row count, and so the last bits. 0 (training): one product over all
     * rows. */
    int per_canvas;
    float *x;      /* (B, T, D) residual stream; the embedding is written here */
    float *h;      /* (B, T, D) normalised + modulated */
    float *qkv;    /* (B, T, 3D) */
    float *att;    /* (B, T, D) attention output before the projection */
    float *proj;   /* (B, T, D) */
    float *mlp;    /* (B, T, 4D) */
    float *scores; /* T·T per thread */
    float *temb;   /* (B, 256) */
    float *c1;     /* (B, C) */
    float *c;      /* (B, C) conditioning after SiLU */
    float *mod;    /* (B, 6D) */
    float *rope_cos, *rope_sin; /* (T, hd/2) */
    float *rows;   /* (B·T, D) gathered rows for a partial output layer */
    float *mem;
} dit_acts;

/* −1 (nothing allocated, a zeroed *a) when they would not fit in the available memory. */
int dit_acts_alloc(dit_acts *a, const dit_config *c, int B, int T, int nthreads);
/* Their size in bytes (saturating at SIZE_MAX). */
size_t dit_acts_bytes(const dit_config *c, int B, int T, int nthreads);
void dit_acts_free(dit_acts *a);

/* out[D] = E[id] (id already validated < V). Thread-safe. */
void dit_embedding_row(const dit_model *m, int32_t id, float *out);
/* x[b,t,:] = E[ids[b,t]] (ids already validated < V). */
void dit_embed_ids(const dit_model *m, dit_acts *a, const int32_t *ids, int B, int T);
/* n embedding rows into out[n, D]; m is a const dit_model * (softmask.h's sm_embed_fn). */
void dit_embed_rows(void *m, const int32_t *ids, int n, float *out);
/* Runs the blocks and the final layer's norm and modulation on a->x (already embedded):
 * a->h (B, T, D) then holds the last hidden state, the input of the output linear. */
void dit_forward_hidden(const dit_model *m, dit_acts *a, const float *sigma, int B, int T);
/* Runs the blocks and the final layer on a->x (already embedded) with noise levels
 * sigma[B] (ignored when time_conditioning is false). Writes logits for all B·T rows when
 * rows == NULL, else only for the nrows listed flat indices (b·T + t), in that order. */
void dit_forward_embedded(const dit_model *m, dit_acts *a, const float *sigma, int B, int T,
                          const int32_t *rows, int nrows, float *logits);
/* Convenience: embed ids and run the whole network. logits (B, T, V). */
void dit_forward(const dit_model *m, dit_acts *a, const int32_t *ids, const float *sigma, int B,
                 int T, float *logits);

/* SUBS on the raw output row of a *masked* position (docs/DESIGN.md §2): −1e6 added to the mask
 * logit, then log-softmax. (Unmasked positions carry their input over as a one-hot.) −1 when
 * the raw row held a NaN or an infinity (log_softmax_row). */
#define SUBS_NEG_INF -1e6f
int dit_subs_row(float *row, int V, int mask_id);

/* FLOPs of one forward over B×T positions (matmuls and attention, multiply-add = 2). */
double dit_forward_flops(const dit_config *c, int B, int T);

#endif
