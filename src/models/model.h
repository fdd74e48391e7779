/* model.h — a model directory as on Hugging Face (docs/DESIGN.md §6): config.json, weights (single
 * file or shards), tokenizer files, optional transparency_config.json; and the generation
 * states that run it.
 *
 * The model family comes from config.json's model_type through a registry (model.c): one row
 * {name, model types, load, state_new, state_bytes, free} per family. Adding a family = one
 * unit with its loader and an lm_model view (src/models/lm.h), one registry row, its tests.
 * config.json is read once per load; what the rest of the engine needs of it (vocabulary,
 * mask id, length, EOS) is kept in the model_dir.
 *
 * A model_dir is read-only once loaded; a model_state is one generation's scratch over it
 * (its lm_model view). Several states of one model may run at once from different threads.
 */
#ifndef SMDLM_MODEL_H
#define SMDLM_MODEL_H

#include "models/dit.h"
#include "models/lm.h"
#include "models/lm_dit.h"
#include "softmask/softmask.h"
#include "text/tokenizer.h"
#include "models/transformer.h"

typedef enum { MODEL_MDLM = 0, MODEL_DREAM, MODEL_LLADA } model_arch;

typedef struct {
    char *dir;
    model_arch arch;
    const char *family;   /* the registry row's name: "MDLM", "Dream", "LLaDA" */
    int vocab_size, mask_id, max_len;
    int config_eos_id;    /* Dream/LLaDA: config.json's eos_token_id, −1 when absent or null */
    dit_model net;        /* MODEL_MDLM */
    transformer_model tf; /* MODEL_DREAM, MODEL_LLADA */
    smdlm_tokenizer *tok; /* NULL when the directory carries no tokenizer */
    sm_params sm;         /* from transparency_config.json, else defaults with enabled = 0 */
    int has_sm_config;
} model_dir;

/* with_tokenizer: 1 = load it when present, 2 = required. MDLM directories only: any other
 * architecture is an error naming it (for the commands that need the DiT). */
int model_dir_load(model_dir *md, const char *dir, int with_tokenizer);
/* Any registered family (MDLM, Dream, LLaDA). */
int model_dir_load_any(model_dir *md, const char *dir, int with_tokenizer);
/* model_dir_load_any with a PEFT adapter directory applied to the projections (adapter.h:
 * merge_all merges every target into fp32, else only fp32 bases are merged); dir NULL: the
 * adapter's base_model_name_or_path. The adapter's transparency_config.json, when
 * it has one, replaces the base's. A directory with adapter_config.json and no config.json
 * given to model_dir_load_any loads this way. */
int model_dir_load_adapted(model_dir *md, const char *dir, const char *adapter, int merge_all,
                           int with_tokenizer);
/* Writes out_dir: the model directory dir (NULL: the adapter's base) with the adapter merged
 * (adapter_write_merged). */
int model_dir_merge_adapter(const char *dir, const char *adapter, const char *out_dir);
/* Writes out_dir: the Dream/LLaDA model directory dir with its projections quantised as
 * `quant` ("q8"; transformer_write_q8) in model.safetensors, its config.json marked
 * (TF_QUANT_KEY) and its other files copied. Loading out_dir needs no quantisation and
 * computes what --quant q8 computes on dir. */
int model_dir_quantize(const char *dir, const char *quant, const char *out_dir);
/* mkdir out_dir (an existing directory is fine). */
int model_dir_create(const char *out_dir);
/* Copies every regular file of dir into out_dir except the weights (model*.safetensors,
 * replaced by the writer) and a checkpoint's COMPLETE manifest (it lists the old weights). */
int model_dir_copy_side_files(const char *dir, const char *out_dir);
/* config.json's model_type mapped to a family (0, or -1 with a message). */
int model_dir_arch(const char *dir, model_arch *arch);
/* config.json's model_type into type[n] ("" when absent); -1 when the file cannot be read
 * or parsed (the error names it). */
int model_dir_type(const char *dir, char *type, size_t n);
void model_dir_free(model_dir *md);
/* Scans every floating tensor of the loaded weights for NaN and infinities (st_check_finite):
 * −1 with an error naming the directory, the first bad tensor and the index. */
int model_dir_check_weights(const model_dir *md);
int model_dir_read_config(dit_config *cfg, const char *dir);

/* One generation state of a loaded model: the lm_model view the samplers and decoders drive. */
typedef struct {
    lm_model lm;
    lm_dit dit;           /* MDLM */
    tf_state tf;          /* Dream, LLaDA */
} model_state;

void model_state_init(model_state *s, const model_dir *md, int nthreads);
/* The bytes a forward of the state over [B, T] would allocate beyond its scratch now. */
size_t model_state_forward_bytes(const model_state *s, const model_dir *md, int B, int T);
void model_state_free(model_state *s);

#endif
