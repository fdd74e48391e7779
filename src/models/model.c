/* model.c — loads a model directory: config → expected tensors → weights, tokenizer, SM. */
#include "models/model.h"

#include <string.h>

#include "base/jsonutil.h"
#include "base/util.h"

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

static char *read_config_text(const char *dir, char **path) {
    char *text = NULL;
    *path = sm_path_join(dir, "config.json");
    if (sm_read_file(*path, 1 << 20, &text, NULL)) {
        free(*path);
        *path = NULL;
        return NULL;
    }
    return text;
}

int model_dir_type(const char *dir, char *type, size_t n) {
    char *path, *text = read_config_text(dir, &path);
    if (!text) return -1;
    cJSON *o = json_parse_object(text, path);
    const char *t = o ? json_get_string(o, "model_type") : NULL;
    if (o) snprintf(type, n, "%s", t ? t : "");
    cJSON_Delete(o);
    free(text);
    free(path);
    return o ? 0 : -1;
}

int model_dir_arch(const char *dir, model_arch *arch) {
    char type[64];
    if (model_dir_type(dir, type, sizeof type)) return -1;
    if (!strcmp(type, "Dream"))
        *arch = MODEL_DREAM;
    else if (!strcmp(type, "llada"))
        *arch = MODEL_LLADA;
    else
        *arch = MODEL_MDLM; /* dit_config_parse names anything else */
    return 0;
}

static int load_transformer(model_dir *md, const char *dir) {
    char *path, *text = read_config_text(dir, &path);
    if (!text) return -1;
    tf_config cfg;
    int rc = tf_config_parse(&cfg, text, path);
    free(text);
    free(path);
    return rc ? -1 : transformer_load(&md->tf, &cfg, dir);
}

int model_dir_vocab_size(const model_dir *md) {
    return md->arch == MODEL_MDLM ? md->net.cfg.vocab_size : md->tf.cfg.vocab_size;
}

int model_dir_mask_id(const model_dir *md) {
    return md->arch == MODEL_MDLM ? md->net.cfg.mask_id : md->tf.cfg.mask_id;
}

int model_dir_max_len(const model_dir *md) {
    return md->arch == MODEL_MDLM ? md->net.cfg.model_length : md->tf.cfg.max_len;
}

static int load(model_dir *md, const char *dir, int with_tokenizer, int any) {
    memset(md, 0, sizeof *md);
    if (model_dir_arch(dir, &md->arch)) return -1;
    if (md->arch != MODEL_MDLM && !any)
        return SM_ERR("%s: a %s model; this command runs MDLM models only", dir,
                      md->arch == MODEL_DREAM ? "Dream" : "LLaDA");
    if (md->arch == MODEL_MDLM) {
        dit_config cfg;
        if (model_dir_read_config(&cfg, dir) || dit_model_load(&md->net, &cfg, dir)) return -1;
    } else if (load_transformer(md, dir)) {
        return -1;
    }
    md->dir = sm_strdup(dir);
    sm_params_default(&md->sm);
    md->sm.enabled = 0;
    if (md->arch != MODEL_MDLM) md->sm.k = 1; /* IBM's Dream default (dream_sm.patch) */
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
    if (md->arch != MODEL_MDLM) md->tf.sm_k = md->sm.k;
    if (with_tokenizer && (with_tokenizer == 2 || has_tokenizer_files(dir))) {
        if (tok_load_dir(&md->tok, dir)) {
            model_dir_free(md);
            return -1;
        }
        if (tok_vocab_size(md->tok) > model_dir_vocab_size(md)) {
            SM_ERR("%s: tokenizer has %d ids but the model's vocab_size is %d", dir,
                   tok_vocab_size(md->tok), model_dir_vocab_size(md));
            model_dir_free(md);
            return -1;
        }
    }
    return 0;
}

int model_dir_load(model_dir *md, const char *dir, int with_tokenizer) {
    return load(md, dir, with_tokenizer, 0);
}

int model_dir_load_any(model_dir *md, const char *dir, int with_tokenizer) {
    return load(md, dir, with_tokenizer, 1);
}

void model_dir_free(model_dir *md) {
    if (md->arch == MODEL_MDLM)
        dit_model_free(&md->net);
    else
        transformer_free(&md->tf);
    if (md->tok) tok_free(md->tok);
    free(md->dir);
    memset(md, 0, sizeof *md);
}
