/* convert.c — see convert.h. */
#include "models/convert.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "formats/ckpt.h"
#include "formats/safetensors.h"
#include "models/dit.h"
#include "softmask/softmask.h"

#define BACKBONE "backbone."

convert_params convert_default_params(void) {
    convert_params p = {12, 1024, 0, 3, 0};
    return p;
}

static int is_buffer(const char *name) {
    const size_t n = strlen(name), k = strlen("inv_freq");
    return n >= k && !strcmp(name + n - k, "inv_freq");
}

static int same_shape(const ck_value *a, const ck_value *b) {
    if (a->ndim != b->ndim || a->dtype != b->dtype) return 0;
    for (int64_t d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* The tensor under key in the state dict, NULL when absent (or not a tensor). */
static const ck_value *tensor_at(const ck_value *sd, const char *key) {
    const ck_value *v = ck_dict_get(sd, key);
    return v && v->type == CK_TENSOR ? v : NULL;
}

/* The EMA weights for the backbone entries (in order, buffers skipped); −1 on a mismatch. */
static int ema_weights(const ck_file *f, const ck_value *sd, const ck_value **vals) {
    const ck_value *shadow = ck_dict_get(ck_dict_get(f->root, "ema"), "shadow_params");
    if (!shadow || shadow->type != CK_LIST)
        return SM_ERR("%s: ema has no list shadow_params", f->path);
    size_t j = 0;
    for (size_t i = 0; i + 1 < sd->n; i += 2) {
        const char *name = sd->items[i]->s;
        if (sd->items[i]->type != CK_STR || strncmp(name, BACKBONE, strlen(BACKBONE)) ||
            is_buffer(name))
            continue;
        if (j >= shadow->n)
            return SM_ERR("%s: ema.shadow_params has %zu tensors, fewer than the backbone's "
                          "parameters", f->path, shadow->n);
        const ck_value *e = shadow->items[j++];
        if (e->type != CK_TENSOR || !same_shape(e, sd->items[i + 1]))
            return SM_ERR("%s: ema.shadow_params[%zu] does not match %s (shape or dtype)", f->path,
                          j - 1, name);
        vals[i / 2] = e;
    }
    if (j != shadow->n)
        return SM_ERR("%s: ema.shadow_params has %zu tensors, the backbone %zu parameters",
                      f->path, shadow->n, j);
    return 0;
}

/* The shapes decide vocabulary, width, depth and conditioning width. */
static int infer_config(const ck_file *f, const ck_value *sd, const convert_params *p,
                        dit_config *c) {
    const ck_value *emb = tensor_at(sd, BACKBONE "vocab_embed.embedding");
    const ck_value *sig = tensor_at(sd, BACKBONE "sigma_map.mlp.0.weight");
    if (!emb || emb->ndim != 2 || !sig || sig->ndim != 2)
        return SM_ERR("%s: no MDLM DiT under backbone. (vocab_embed.embedding, "
                      "sigma_map.mlp.0.weight)", f->path);
    memset(c, 0, sizeof *c);
    c->vocab_size = (int)emb->shape[0];
    c->hidden = (int)emb->shape[1];
    c->cond_dim = (int)sig->shape[0];
    char name[96];
    do snprintf(name, sizeof name, BACKBONE "blocks.%d.attn_qkv.weight", c->n_blocks);
    while (tensor_at(sd, name) && ++c->n_blocks < 100000);
    c->n_heads = p->heads;
    c->model_length = p->length;
    c->mask_id = c->vocab_size - 1; /* MDLM appends the mask id to the tokenizer's */
    c->time_conditioning = p->time_conditioning;
    return dit_config_validate(c) ? sm_wrap_error("%s", f->path) : 0;
}

/* tran_head.raw_* → transparency_config.json */
static int write_sm(const ck_file *f, const ck_value *sd, const convert_params *p,
                    const char *out_dir) {
    static const char *const keys[] = {"tran_head.raw_scale", "tran_head.raw_centre_neg",
                                       "tran_head.raw_steep", "tran_head.raw_temperature"};
    float raw[4];
    int have = 0;
    for (int i = 0; i < 4; i++) {
        const ck_value *t = tensor_at(sd, keys[i]);
        if (!t) continue;
        size_t n;
        void *data = ck_tensor_data(f, t, &n);
        if (!data) return -1;
        st_tensor view = {.dtype = t->dtype, .numel = n, .data = data};
        const int rc = n == 1 ? st_tensor_to_f32(&view, &raw[i]) : SM_ERR("%s: %s is not a scalar",
                                                                          f->path, keys[i]);
        free(data);
        if (rc) return -1;
        have |= 1 << i;
    }
    if (!have) return 0;
    if ((have & 7) != 7)
        return SM_ERR("%s: tran_head lacks raw_scale, raw_centre_neg or raw_steep", f->path);
    sm_params sm;
    sm_params_default(&sm);
    sm_params_from_raw(&sm, raw[0], raw[1], raw[2]);
    sm.k = p->sm_k;
    if (have & 8) sm.temp = (raw[3] > 20.0f ? raw[3] : log1pf(expf(raw[3]))) + 1e-6f;
    if (sm_params_validate(&sm)) return sm_wrap_error("%s: tran_head", f->path);
    char *path = sm_path_join(out_dir, "transparency_config.json");
    int rc = sm_params_save_json(&sm, path);
    free(path);
    return rc;
}

int convert_lightning_mdlm(const char *ckpt, const char *out_dir, const convert_params *p,
                           int *used_ema) {
    ck_file f;
    if (ck_open(&f, ckpt)) return -1;
    const ck_value *sd = ck_dict_get(f.root, "state_dict");
    if (!sd) sd = f.root; /* a bare torch.save(state_dict) */
    dit_config cfg;
    int rc = sd->type == CK_DICT ? 0 : SM_ERR("%s: neither a state dict nor a dict with one", ckpt);
    if (rc == 0) rc = infer_config(&f, sd, p, &cfg);
    const size_t n = sd->n / 2;
    const ck_value **vals = sm_calloc(n + 1, sizeof *vals);
    for (size_t i = 0; i < n; i++) vals[i] = sd->items[2 * i + 1];
    *used_ema = rc == 0 && !p->use_raw && ck_dict_get(f.root, "ema");
    if (*used_ema) rc = ema_weights(&f, sd, vals);
    st_write_entry *e = sm_calloc(n + 1, sizeof *e);
    void **data = sm_calloc(n + 1, sizeof *data);
    int ne = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *name = sd->items[2 * i]->s;
        if (sd->items[2 * i]->type != CK_STR || strncmp(name, BACKBONE, strlen(BACKBONE))) continue;
        if (vals[i]->type != CK_TENSOR) {
            rc = SM_ERR("%s: %s is not a tensor", ckpt, name);
            break;
        }
        size_t numel;
        if (!(data[ne] = ck_tensor_data(&f, vals[i], &numel))) {
            rc = -1;
            break;
        }
        e[ne] = (st_write_entry){.name = name, .dtype = vals[i]->dtype,
                                 .ndim = (int)vals[i]->ndim, .data = data[ne]};
        for (int64_t d = 0; d < vals[i]->ndim; d++) e[ne].shape[d] = vals[i]->shape[d];
        ne++;
    }
    if (rc == 0 && mkdir(out_dir, 0777) && errno != EEXIST)
        rc = SM_ERR("%s: cannot create the directory: %s", out_dir, strerror(errno));
    char *st_path = sm_path_join(out_dir, "model.safetensors"),
         *cfg_path = sm_path_join(out_dir, "config.json");
    static const char *const meta[] = {"format", "pt", NULL};
    if (rc == 0) rc = st_write(st_path, e, ne, meta);
    if (rc == 0) rc = dit_config_save(&cfg, cfg_path);
    if (rc == 0) rc = write_sm(&f, sd, p, out_dir);
    for (int i = 0; i < ne; i++) free(data[i]);
    free(data), free(e), free(vals), free(st_path), free(cfg_path);
    ck_close(&f);
    return rc;
}
