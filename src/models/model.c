/* model.c — loads a model directory through the family registry: config → weights, SM values,
 * tokenizer; generation states over it. See model.h. */
#include "models/model.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "base/jsonutil.h"
#include "base/util.h"
#include "models/adapter.h"
#include "formats/manifest.h"
#include "text/tokenizer.h"

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

/* An adapter directory without a config.json of its own: it stands for its base + itself. */
static int adapter_only(const char *dir) {
    char *config = sm_path_join(dir, "config.json");
    const int yes = !sm_file_exists(config) && adapter_dir_is_adapter(dir);
    free(config);
    return yes;
}

int model_dir_type(const char *dir, char *type, size_t n) {
    if (adapter_only(dir)) { /* the base's type */
        peft_adapter a;
        if (adapter_open(&a, dir)) return -1;
        int rc = a.base ? model_dir_type(a.base, type, n)
                        : SM_ERR("adapter '%s' names no base model (base_model_name_or_path)", dir);
        adapter_close(&a);
        return rc;
    }
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

/* ---- the registry --------------------------------------------------------------------- */

/* config.json's eos_token_id (absent or null: -1). */
static int config_eos_id(const cJSON *o, const char *path, int *eos) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "eos_token_id");
    *eos = -1;
    return v && !cJSON_IsNull(v) ? json_get_int(o, "eos_token_id", 0, INT32_MAX, 0, eos, path) : 0;
}

static int load_mdlm(model_dir *md, const cJSON *config, const char *path, const char *dir) {
    dit_config cfg;
    if (dit_config_from_json(&cfg, config, path) || dit_model_load(&md->net, &cfg, dir)) return -1;
    md->vocab_size = cfg.vocab_size;
    md->mask_id = cfg.mask_id;
    md->max_len = cfg.model_length;
    return 0;
}

static int load_transformer(model_dir *md, const cJSON *config, const char *path, const char *dir) {
    tf_config cfg;
    if (tf_config_from_json(&cfg, config, path) || config_eos_id(config, path, &md->config_eos_id) ||
        transformer_load(&md->tf, &cfg, dir))
        return -1;
    md->vocab_size = cfg.vocab_size;
    md->mask_id = cfg.mask_id;
    md->max_len = cfg.max_len;
    return 0;
}

static void free_mdlm(model_dir *md) { dit_model_free(&md->net); }
static void free_transformer(model_dir *md) { transformer_free(&md->tf); }

static void state_mdlm(model_state *s, const model_dir *md, int nthreads) {
    lm_dit_init(&s->dit, &s->lm, &md->net, 0, nthreads);
}
static void state_transformer(model_state *s, const model_dir *md, int nthreads) {
    tf_state_init(&s->tf, &md->tf);
    transformer_as_lm(&s->tf, &s->lm);
}
static size_t bytes_mdlm(const model_state *s, int B, int T) {
    return lm_dit_forward_bytes(&s->dit, B, T);
}
static size_t bytes_transformer(const model_state *s, int B, int T) {
    return tf_state_forward_bytes(&s->tf, B, T);
}

typedef struct {
    const char *name;
    const char *model_type; /* config.json's value; NULL: every type no other row claims */
    model_arch arch;
    int sm_k;               /* soft-masking top-k when transparency_config.json has none */
    int (*load)(model_dir *md, const cJSON *config, const char *config_path, const char *dir);
    void (*state_init)(model_state *s, const model_dir *md, int nthreads);
    size_t (*state_bytes)(const model_state *s, int B, int T);
    void (*free)(model_dir *md);
} model_family;

/* Dream's k = 1 is IBM's dream_sm.patch default, the MDLM's 3 the paper's. The MDLM row comes
 * last: dit_config_parse names any model_type it does not know. */
static const model_family k_families[] = {
    {"Dream", "Dream", MODEL_DREAM, 1, load_transformer, state_transformer, bytes_transformer,
     free_transformer},
    {"LLaDA", "llada", MODEL_LLADA, 1, load_transformer, state_transformer, bytes_transformer,
     free_transformer},
    {"MDLM", NULL, MODEL_MDLM, 3, load_mdlm, state_mdlm, bytes_mdlm, free_mdlm},
};
#define N_FAMILIES (sizeof k_families / sizeof *k_families)

static const model_family *family_of_type(const char *type) {
    size_t i = 0;
    while (k_families[i].model_type && strcmp(type, k_families[i].model_type)) i++;
    return &k_families[i];
}

static const model_family *family_of_arch(model_arch arch) {
    size_t i = 0;
    while (i + 1 < N_FAMILIES && k_families[i].arch != arch) i++;
    return &k_families[i];
}

int model_dir_arch(const char *dir, model_arch *arch) {
    char type[64];
    if (model_dir_type(dir, type, sizeof type)) return -1;
    *arch = family_of_type(type)->arch;
    return 0;
}

static int load_sm_config(model_dir *md, const model_family *f, const char *dir) {
    sm_params_default(&md->sm);
    md->sm.enabled = 0;
    md->sm.k = f->sm_k;
    char *smpath = sm_path_join(dir, "transparency_config.json");
    int rc = 0;
    if (sm_file_exists(smpath)) {
        rc = sm_params_load_json(&md->sm, smpath) || sm_params_validate(&md->sm) ? -1 : 0;
        md->has_sm_config = rc == 0;
    }
    free(smpath);
    return rc;
}

static int load_tokenizer(model_dir *md, int with_tokenizer) {
    if (!with_tokenizer || (with_tokenizer == 1 && !tok_dir_has_tokenizer(md->dir))) return 0;
    if (tok_load_dir(&md->tok, md->dir)) return -1;
    if (tok_vocab_size(md->tok) > md->vocab_size)
        return SM_ERR("%s: tokenizer has %d ids but the model's vocab_size is %d", md->dir,
                      tok_vocab_size(md->tok), md->vocab_size);
    return 0;
}

/* config.json is read and parsed here once; the family's loader reads the parsed object. */
static int load(model_dir *md, const char *dir, int with_tokenizer, int any) {
    memset(md, 0, sizeof *md);
    md->config_eos_id = -1;
    if (manifest_verify(dir) < 0) return sm_wrap_error("%s is not a valid checkpoint", dir);
    char *path, *text = read_config_text(dir, &path);
    if (!text) return -1;
    cJSON *o = json_parse_object(text, path);
    const char *t = o ? json_get_string(o, "model_type") : NULL;
    const model_family *f = family_of_type(t ? t : "");
    int rc = o ? 0 : -1;
    if (rc == 0 && f->arch != MODEL_MDLM && !any)
        rc = SM_ERR("%s: a %s model; this command runs MDLM models only", dir, f->name);
    if (rc == 0) rc = f->load(md, o, path, dir);
    cJSON_Delete(o);
    if (rc == 0) {
        md->arch = f->arch;
        md->family = f->name;
        md->dir = sm_strdup(dir);
        rc = load_sm_config(md, f, dir);
        if (rc == 0) rc = load_tokenizer(md, with_tokenizer);
        if (rc) model_dir_free(md);
    }
    free(text);
    free(path);
    return rc;
}

int model_dir_load(model_dir *md, const char *dir, int with_tokenizer) {
    return load(md, dir, with_tokenizer, 0);
}

int model_dir_load_any(model_dir *md, const char *dir, int with_tokenizer) {
    if (adapter_only(dir)) return model_dir_load_adapted(md, NULL, dir, 0, with_tokenizer);
    return load(md, dir, with_tokenizer, 1);
}

/* The base (dir, else the adapter's base_model_name_or_path) with the open adapter applied. */
static int load_with_adapter(model_dir *md, const char *dir, const peft_adapter *a,
                             int merge_all, int with_tokenizer) {
    if (!dir) dir = a->base;
    int rc = dir ? load(md, dir, with_tokenizer, 1)
                 : SM_ERR("adapter '%s' names no base model (base_model_name_or_path): give the "
                          "model directory with the adapter", a->dir);
    if (rc == 0 && md->arch == MODEL_MDLM)
        rc = SM_ERR("%s: adapters apply to Dream and LLaDA models, not to an MDLM", dir);
    if (rc == 0) rc = adapter_apply(&md->tf, a, merge_all);
    char *smpath = sm_path_join(a->dir, "transparency_config.json");
    if (rc == 0 && sm_file_exists(smpath)) /* trained beside the adapter: it wins */
        rc = load_sm_config(md, family_of_arch(md->arch), a->dir);
    free(smpath);
    if (rc && md->family) model_dir_free(md);
    return rc;
}

int model_dir_load_adapted(model_dir *md, const char *dir, const char *adapter, int merge_all,
                           int with_tokenizer) {
    if (!adapter) return model_dir_load_any(md, dir, with_tokenizer);
    peft_adapter a;
    if (adapter_open(&a, adapter)) return -1;
    int rc = load_with_adapter(md, dir, &a, merge_all, with_tokenizer);
    adapter_close(&a);
    return rc;
}

int model_dir_merge_adapter(const char *dir, const char *adapter, const char *out_dir) {
    peft_adapter a;
    if (adapter_open(&a, adapter)) return -1;
    model_dir md;
    int rc = load_with_adapter(&md, dir, &a, 1, 0);
    if (rc == 0) {
        rc = adapter_write_merged(&md.tf, &a, md.dir, out_dir);
        model_dir_free(&md);
    }
    adapter_close(&a);
    return rc;
}

int model_dir_create(const char *out_dir) {
    if (mkdir(out_dir, 0777) && errno != EEXIST)
        return SM_ERR("%s: cannot create the directory: %s", out_dir, strerror(errno));
    return 0;
}

/* The weight files of a model directory (replaced by the written model.safetensors). */
static int is_weight_file(const char *name) {
    return !strncmp(name, "model", 5) && strstr(name, ".safetensors");
}

int model_dir_copy_side_files(const char *dir, const char *out_dir) {
    DIR *d = opendir(dir);
    if (!d) return SM_ERR("%s: cannot list the directory: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        char *src = sm_path_join(dir, e->d_name);
        struct stat sb;
        if (stat(src, &sb) == 0 && S_ISREG(sb.st_mode) && !is_weight_file(e->d_name) &&
            strcmp(e->d_name, MANIFEST_FILE)) {
            char *dst = sm_path_join(out_dir, e->d_name);
            rc = sm_copy_file(src, dst);
            free(dst);
        }
        free(src);
    }
    closedir(d);
    return rc;
}

/* out_dir/config.json: dir's with "smdlm_quantization": quant added. */
static int write_quant_config(const char *dir, const char *quant, const char *out_dir) {
    char *path, *text = read_config_text(dir, &path);
    if (!text) return -1;
    cJSON *o = json_parse_object(text, path);
    int rc = o ? 0 : -1;
    if (o) {
        cJSON_AddStringToObject(o, TF_QUANT_KEY, quant);
        char *out = cJSON_Print(o), *dst = sm_path_join(out_dir, "config.json");
        rc = sm_write_file_atomic(dst, out, strlen(out));
        free(dst);
        cJSON_free(out);
        cJSON_Delete(o);
    }
    free(text);
    free(path);
    return rc;
}

int model_dir_quantize(const char *dir, const char *quant, const char *out_dir) {
    if (strcmp(quant, "q8")) return SM_ERR("quantisation '%s': the only one is q8", quant);
    model_dir md;
    if (model_dir_load_any(&md, dir, 0)) return -1;
    int rc = 0;
    if (md.arch == MODEL_MDLM) rc = SM_ERR("%s: q8 applies to Dream/LLaDA models, not MDLM", dir);
    else if (md.tf.cfg.q8) rc = SM_ERR("%s is quantised already (%s)", dir, TF_QUANT_KEY);
    if (rc == 0) rc = transformer_quantize_q8(&md.tf);
    if (rc == 0) rc = model_dir_create(out_dir);
    if (rc == 0) rc = model_dir_copy_side_files(dir, out_dir);
    if (rc == 0) {
        char *path = sm_path_join(out_dir, "model.safetensors");
        rc = transformer_write_q8(&md.tf, path);
        free(path);
    }
    if (rc == 0) rc = write_quant_config(dir, quant, out_dir);
    model_dir_free(&md);
    return rc;
}

void model_dir_free(model_dir *md) {
    if (md->family) family_of_arch(md->arch)->free(md);
    if (md->tok) tok_free(md->tok);
    free(md->dir);
    memset(md, 0, sizeof *md);
}

int model_dir_check_weights(const model_dir *md) {
    const st_archive *a = md->arch == MODEL_MDLM ? &md->net.archive : &md->tf.archive;
    return st_check_finite(a) ? sm_wrap_error("%s: weight check", md->dir) : 0;
}

void model_state_init(model_state *s, const model_dir *md, int nthreads) {
    memset(s, 0, sizeof *s);
    family_of_arch(md->arch)->state_init(s, md, nthreads);
    s->lm.name = md->dir;
}

size_t model_state_forward_bytes(const model_state *s, const model_dir *md, int B, int T) {
    return family_of_arch(md->arch)->state_bytes(s, B, T);
}

void model_state_free(model_state *s) {
    lm_dit_free(&s->dit);
    tf_state_free(&s->tf);
    memset(s, 0, sizeof *s);
}
