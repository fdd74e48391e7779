/* model.h — a model directory as on Hugging Face (DESIGN §6): config.json, weights
 * (single file or shards), tokenizer files, optional transparency_config.json.
 * The architecture comes from config.json's model_type: the MDLM DiT (`net`) or a
 * Dream/LLaDA transformer (`tf`). */
#ifndef SMDLM_MODEL_H
#define SMDLM_MODEL_H

#include "models/dit.h"
#include "softmask/softmask.h"
#include "text/tokenizer.h"
#include "models/transformer.h"

typedef enum { MODEL_MDLM = 0, MODEL_DREAM, MODEL_LLADA } model_arch;

typedef struct {
    char *dir;
    model_arch arch;
    dit_model net;        /* MODEL_MDLM */
    transformer_model tf; /* MODEL_DREAM, MODEL_LLADA */
    smdlm_tokenizer *tok; /* NULL when the directory carries no tokenizer */
    sm_params sm;         /* from transparency_config.json, else defaults with enabled = 0 */
    int has_sm_config;
} model_dir;

/* with_tokenizer: 1 = load it when present, 2 = required. MDLM directories only: any other
 * architecture is an error naming it (for the commands that need the DiT). */
int model_dir_load(model_dir *md, const char *dir, int with_tokenizer);
/* Any architecture (MDLM, Dream, LLaDA). */
int model_dir_load_any(model_dir *md, const char *dir, int with_tokenizer);
/* config.json's model_type mapped to an architecture (0, or -1 with a message). */
int model_dir_arch(const char *dir, model_arch *arch);
/* config.json's model_type into type[n] ("" when absent); -1 when the file cannot be read
 * or parsed (the error names it). */
int model_dir_type(const char *dir, char *type, size_t n);
/* Vocabulary size, mask id and longest canvas, whatever the architecture. */
int model_dir_vocab_size(const model_dir *md);
int model_dir_mask_id(const model_dir *md);
int model_dir_max_len(const model_dir *md);
void model_dir_free(model_dir *md);
int model_dir_read_config(dit_config *cfg, const char *dir);

#endif
