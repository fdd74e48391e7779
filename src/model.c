/* model.c — loads a model directory: config → expected tensors → weights, tokenizer, SM. */
#include "model.h"

#include <string.h>

#include "util.h"

int model_dir_read_config(dit_config *cfg, const char *dir) {
    char *path = sm_path_join(dir, "config.json"), *text;
    int rc = sm_read_file(path, 1 << 20, &text, NULL);
    if (rc == 0) {
        rc = dit_config_parse(cfg, text, path);
        free(text);
    }
    free(path);
    return rc;
}

static int has_tokenizer_files(const char *dir) {
    char *a = sm_path_join(dir, "tokenizer.json"), *b = sm_path_join(dir, "vocab.json");
    int yes = sm_file_exists(a) || sm_file_exists(b);
    free(a);
    free(b);
    return yes;
}

int model_dir_load(model_dir *md, const char *dir, int with_tokenizer) {
    memset(md, 0, sizeof *md);
    dit_config cfg;
    if (model_dir_read_config(&cfg, dir)) return -1;
    if (dit_model_load(&md->net, &cfg, dir)) return -1;
    md->dir = sm_strdup(dir);
    sm_params_default(&md->sm);
    md->sm.enabled = 0;
    char *smpath = sm_path_join(dir, "transparency_config.json");
    if (sm_file_exists(smpath)) {
        if (sm_params_load_json(&md->sm, smpath) || sm_params_validate(&md->sm)) {
            free(smpath);
            model_dir_free(md);
            return -1;
        }
        md->has_sm_config = 1;
    }
    free(smpath);
    if (with_tokenizer && (with_tokenizer == 2 || has_tokenizer_files(dir))) {
        if (tok_load_dir(&md->tok, dir)) {
            model_dir_free(md);
            return -1;
        }
        if (tok_vocab_size(md->tok) > cfg.vocab_size) {
            SM_ERR("%s: tokenizer has %d ids but the model's vocab_size is %d", dir,
                   tok_vocab_size(md->tok), cfg.vocab_size);
            model_dir_free(md);
            return -1;
        }
    }
    return 0;
}

void model_dir_free(model_dir *md) {
    dit_model_free(&md->net);
    if (md->tok) tok_free(md->tok);
    free(md->dir);
    memset(md, 0, sizeof *md);
}
