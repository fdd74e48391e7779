/* model.h — a model directory as on Hugging Face (DESIGN §6): config.json, weights
 * (single file or shards), tokenizer files, optional transparency_config.json. */
#ifndef SMDLM_MODEL_H
#define SMDLM_MODEL_H

#include "dit.h"
#include "softmask.h"
#include "tokenizer.h"

typedef struct {
    char *dir;
    dit_model net;
    smdlm_tokenizer *tok; /* NULL when the directory carries no tokenizer */
    sm_params sm;         /* from transparency_config.json, else defaults with enabled = 0 */
    int has_sm_config;
} model_dir;

/* with_tokenizer: 1 = load it when present, 2 = required. */
int model_dir_load(model_dir *md, const char *dir, int with_tokenizer);
void model_dir_free(model_dir *md);
int model_dir_read_config(dit_config *cfg, const char *dir);

#endif
