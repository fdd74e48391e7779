/* gpt2.h — Hugging Face GPT-2 (`model_type: gpt2`) as a causal evaluator model: loading,
 * forward (logits) and the generative-perplexity scoring of MDLM's evaluation.
 *
 * Checkpoint: config.json (n_embd, n_layer, n_head, n_positions, vocab_size,
 * layer_norm_epsilon, optional eos_token_id) and model.safetensors (or a sharded index) with
 * HF names, with or without the `transformer.` prefix. Conv1D weights are stored [in, out]
 * and used in place: the Conv1D matmul is `inp · W` (matmul_forward_in_out), no transpose.
 * The head is tied (logits = x · wteᵀ). See NOTES.md "GPT-2".
 */
#ifndef SMDLM_GPT2_H
#define SMDLM_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "formats/safetensors.h"

typedef struct {
    int vocab_size, n_embd, n_layer, n_head, n_positions;
    float eps;  /* layer_norm_epsilon (default 1e-5) */
    int eos_id; /* eos_token_id from config.json, -1 when absent */
} gpt2_config;

typedef struct {
    const float *ln1_w, *ln1_b, *attn_w, *attn_b, *proj_w, *proj_b;
    const float *ln2_w, *ln2_b, *fc_w, *fc_b, *fc2_w, *fc2_b;
} gpt2_block;

typedef struct {
    gpt2_config cfg;
    st_archive archive;
    const float *wte, *wpe, *lnf_w, *lnf_b;
    gpt2_block *blocks;
    float *owned; /* converted (non-F32 or unaligned) tensors */
} gpt2_model;

/* Range checks (like dit_config_validate). */
int gpt2_config_validate(const gpt2_config *c);
/* Parses config.json text; model_type must be "gpt2". */
int gpt2_config_parse(gpt2_config *c, const char *json_text, const char *what);
/* DIR/config.json + DIR's safetensors. Errors name the file and the reason. */
int gpt2_load(gpt2_model *m, const char *dir);
void gpt2_free(gpt2_model *m);

/* logits[B,T,V] for ids[B,T] (T ≤ n_positions, every id in [0, V)). */
int gpt2_forward(const gpt2_model *m, const int32_t *ids, int B, int T, float *logits);
/* Final hidden states (after ln_f: what the head reads, HF's hidden_states[-1]) of the nrows
 * flat positions rows[] (b·T + t) into hidden[nrows, n_embd]; checks as gpt2_forward. */
int gpt2_hidden(const gpt2_model *m, const int32_t *ids, int B, int T, const int32_t *rows,
                int nrows, float *hidden);

#endif
