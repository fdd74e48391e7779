/* adapter.c — see adapter.h. */
#include "models/adapter.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/jsonutil.h"
#include "base/util.h"
#include "compute/gemm.h"
#include "models/model.h"

#define PREFIX "base_model.model."

int adapter_dir_is_adapter(const char *dir) {
    char *p = sm_path_join(dir, "adapter_config.json");
    const int yes = sm_file_exists(p);
    free(p);
    return yes;
}

/* Options that change what the adapter computes: each must have its neutral value. */
static int check_unsupported(const cJSON *o, const char *path) {
    static const char *const must_be_empty[] = {"modules_to_save", "rank_pattern",
                                                "alpha_pattern", "exclude_modules",
                                                "target_parameters", "layer_replication",
                                                "trainable_token_indices", "megatron_config"};
    static const char *const must_be_false[] = {"lora_bias", "use_qalora", "use_dora_v2"};
    const char *type = json_get_string(o, "peft_type");
    if (type && strcmp(type, "LORA"))
        return SM_ERR("%s: peft_type \"%s\" is not supported (only LORA)", path, type);
    const char *bias = json_get_string(o, "bias");
    if (bias && strcmp(bias, "none"))
        return SM_ERR("%s: bias \"%s\" is not supported (only \"none\")", path, bias);
    for (size_t i = 0; i < sizeof must_be_empty / sizeof *must_be_empty; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, must_be_empty[i]);
        if (v && !cJSON_IsNull(v) && !((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child))
            return SM_ERR("%s: %s is not supported", path, must_be_empty[i]);
    }
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, must_be_false[i])))
            return SM_ERR("%s: %s is not supported", path, must_be_false[i]);
    return 0;
}

/* An array of strings or of integers (or one integer for layers_to_transform). */
static int read_targets(peft_adapter *a, const cJSON *o, const char *path) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "target_modules");
    if (cJSON_IsString(t))
        return SM_ERR("%s: target_modules as a regular expression (\"%s\") is not supported; "
                      "list the module names", path, t->valuestring);
    if (!cJSON_IsArray(t) || !t->child)
        return SM_ERR("%s: target_modules must be a non-empty list of module names", path);
    a->ntargets = cJSON_GetArraySize(t);
    a->targets = sm_calloc((size_t)a->ntargets, sizeof *a->targets);
    int i = 0;
    for (const cJSON *e = t->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) return SM_ERR("%s: target_modules[%d] is not a string", path, i);
        a->targets[i] = sm_strdup(e->valuestring);
    }
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "layers_to_transform");
    if (!l || cJSON_IsNull(l)) return 0;
    if (cJSON_IsNumber(l)) {
        a->nlayers = 1;
        a->layers = sm_malloc(sizeof(int));
        a->layers[0] = (int)l->valuedouble;
        return l->valuedouble == a->layers[0] && l->valuedouble >= 0
                   ? 0
                   : SM_ERR("%s: layers_to_transform %g is not a layer index", path, l->valuedouble);
    }
    if (!cJSON_IsArray(l))
        return SM_ERR("%s: layers_to_transform must be an integer or a list of integers", path);
    a->nlayers = cJSON_GetArraySize(l);
    a->layers = sm_calloc((size_t)a->nlayers + 1, sizeof(int));
    i = 0;
    for (const cJSON *e = l->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (int)e->valuedouble || e->valuedouble < 0)
            return SM_ERR("%s: layers_to_transform[%d] is not a layer index", path, i);
        a->layers[i] = (int)e->valuedouble;
    }
    return 0;
}

/* base_model_name_or_path: absolute as written; relative against the adapter directory when
 * that names a directory, else as written (relative to the working directory). */
static void resolve_base(peft_adapter *a, const char *base) {
    struct stat sb;
    char *joined = base[0] == '/' ? NULL : sm_path_join(a->dir, base);
    if (joined && stat(joined, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        a->base = joined;
        return;
    }
    free(joined);
    a->base = sm_strdup(base);
}

int adapter_open(peft_adapter *a, const char *dir) {
    memset(a, 0, sizeof *a);
    a->dir = sm_strdup(dir);
    char *path = sm_path_join(dir, "adapter_config.json"), *text = NULL;
    cJSON *o = NULL;
    int rc = -1, dora, rslora, fan;
    double alpha;
    if (sm_read_file(path, 1 << 20, &text, NULL) || !(o = json_parse_object(text, path)))
        goto done;
    if (check_unsupported(o, path) || json_get_int(o, "r", 1, 1 << 16, -1, &a->r, path) ||
        json_get_double(o, "lora_alpha", -1e9, 1e9, 8, 0, &alpha, path) ||
        json_get_bool(o, "use_dora", 0, &dora, path) ||
        json_get_bool(o, "use_rslora", 0, &rslora, path) ||
        /* PEFT sets fan_in_fan_out back to false for torch.nn.Linear targets */
        json_get_bool(o, "fan_in_fan_out", 0, &fan, path) || read_targets(a, o, path))
        goto done;
    a->use_dora = dora;
    a->scale = (float)(rslora ? alpha / sqrt((double)a->r) : alpha / a->r);
    const char *base = json_get_string(o, "base_model_name_or_path");
    if (base && *base) resolve_base(a, base);
    char *st = sm_path_join(dir, "adapter_model.safetensors");
    rc = st_open_file(&a->st, st);
    free(st);
done:
    cJSON_Delete(o);
    free(text);
    free(path);
    if (rc) {
        sm_wrap_error("adapter '%s'", dir);
        adapter_close(a);
    }
    return rc;
}

void adapter_close(peft_adapter *a) {
    for (int i = 0; i < a->ntargets; i++) free(a->targets[i]);
    free(a->targets);
    free(a->layers);
    free(a->base);
    free(a->dir);
    st_close(&a->st);
    memset(a, 0, sizeof *a);
}

/* PEFT's match: the module's full name is a target or ends with "." + a target. */
static int is_target(const peft_adapter *a, const tf_module *m) {
    int in_layers = !a->layers;
    for (int i = 0; i < a->nlayers; i++) in_layers |= a->layers[i] == m->layer;
    if (!in_layers) return 0;
    const size_t n = strlen(m->name);
    for (int i = 0; i < a->ntargets; i++) {
        const size_t k = strlen(a->targets[i]);
        if (!strcmp(m->name, a->targets[i]) ||
            (k < n && m->name[n - k - 1] == '.' && !strcmp(m->name + n - k, a->targets[i])))
            return 1;
    }
    return 0;
}

/* The adapter tensor module + suffix as fp32 [d0, d1] (d1 = 0: 1-D), or NULL with an error. */
static float *adapter_tensor(const peft_adapter *a, const char *module, const char *suffix,
                             int64_t d0, int64_t d1, int *used) {
    char name[256];
    snprintf(name, sizeof name, PREFIX "%s%s", module, suffix);
    const st_tensor *t = st_find(&a->st, name);
    if (!t) {
        SM_ERR("adapter '%s': tensor %s is missing", a->dir, name);
        return NULL;
    }
    const int ndim = d1 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        SM_ERR("adapter '%s': tensor %s has the wrong shape (expected [%lld%s%lld])", a->dir, name,
               (long long)d0, d1 ? ", " : "", d1 ? (long long)d1 : 0LL);
        return NULL;
    }
    float *out = sm_malloc(sizeof(float) * t->numel);
    if (st_tensor_to_f32(t, out)) {
        free(out);
        sm_wrap_error("adapter '%s'", a->dir);
        return NULL;
    }
    used[t - a->st.tensors] = 1;
    return out;
}

/* Rows [r0, r0 + n) of W + s·B·A into rows[n, in]. */
static void adapted_rows(float *rows, const linear_w *w, int r0, int n, int r, float scale,
                         const float *A, const float *B) {
    int32_t *ids = sm_malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) ids[i] = r0 + i;
    linear_rows_f32(rows, w, ids, n);
    free(ids);
    gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, n, w->in, r, scale, B + (size_t)r0 * r, r, A, w->in,
             1.0f, rows, w->in);
}

static double row_norm(const float *row, int in) {
    double ss = 0.0;
    for (int j = 0; j < in; j++) ss += (double)row[j] * row[j];
    return sqrt(ss);
}

void adapter_row_norms(const linear_w *w, int r, float scale, const float *A, const float *B,
                       double *norm) {
    enum { ROWS = 64 };
    float *rows = sm_malloc(sizeof(float) * ROWS * (size_t)w->in);
    for (int r0 = 0; r0 < w->out; r0 += ROWS) {
        const int n = w->out - r0 < ROWS ? w->out - r0 : ROWS;
        adapted_rows(rows, w, r0, n, r, scale, A, B);
        for (int i = 0; i < n; i++) norm[r0 + i] = row_norm(rows + (size_t)i * w->in, w->in);
    }
    free(rows);
}

void adapter_targets_free(adapter_target *t, int n) {
    for (int i = 0; t && i < n; i++) free(t[i].a), free(t[i].b), free(t[i].mag);
    free(t);
}

int adapter_targets_load(const peft_adapter *a, transformer_model *m, adapter_target **out,
                         int *nout) {
    int n, rc = 0, nt = 0;
    tf_module *mods = transformer_modules(m, &n);
    adapter_target *t = sm_calloc((size_t)n, sizeof *t);
    int *used = sm_calloc((size_t)a->st.ntensors + 1, sizeof(int));
    for (int i = 0; i < n && rc == 0; i++) {
        if (!is_target(a, &mods[i])) continue;
        const linear_w *w = mods[i].w;
        adapter_target *e = &t[nt++];
        e->module = i;
        e->a = adapter_tensor(a, mods[i].name, ".lora_A.weight", a->r, w->in, used);
        e->b = e->a ? adapter_tensor(a, mods[i].name, ".lora_B.weight", w->out, a->r, used) : NULL;
        if (e->b && a->use_dora)
            e->mag = adapter_tensor(a, mods[i].name, ".lora_magnitude_vector", w->out, 0, used);
        if (!e->a || !e->b || (a->use_dora && !e->mag)) rc = -1;
    }
    if (rc == 0 && !nt)
        rc = SM_ERR("adapter '%s': target_modules match no projection of the model", a->dir);
    for (int i = 0; i < a->st.ntensors && rc == 0; i++)
        if (!used[i])
            rc = SM_ERR("adapter '%s': tensor %s belongs to no target module of the model",
                        a->dir, a->st.tensors[i].name);
    free(used);
    free(mods);
    if (rc) {
        adapter_targets_free(t, nt);
        return -1;
    }
    *out = t;
    *nout = nt;
    return 0;
}

/* One target: merged into an owned fp32 copy (W ← W + s·B·A, DoRA rows scaled by m/‖row‖),
 * or kept in place with the adapter attached (the DoRA factors computed a block of rows at a
 * time, never the whole matrix in fp32). Takes the target's tensors. */
static void apply_one(const peft_adapter *a, linear_w *w, adapter_target *t, int merge) {
    const int out = w->out, in = w->in, r = a->r;
    if (merge) {
        float *W = sm_malloc(sizeof(float) * (size_t)out * in);
        adapted_rows(W, w, 0, out, r, a->scale, t->a, t->b);
        for (int i = 0; t->mag && i < out; i++) {
            float *row = W + (size_t)i * in;
            const float f = (float)(t->mag[i] / row_norm(row, in));
            for (int j = 0; j < in; j++) row[j] *= f;
        }
        linear_free(w);
        *w = (linear_w){.type = WT_F32, .out = out, .in = in, .data = W, .owned = W};
        free(t->a), free(t->b), free(t->mag);
    } else {
        linear_lora *l = sm_malloc(sizeof *l);
        *l = (linear_lora){.r = r, .scale = a->scale, .a = t->a, .b = t->b, .dora = t->mag};
        if (t->mag) {
            double *norm = sm_malloc(sizeof(double) * (size_t)out);
            adapter_row_norms(w, r, a->scale, t->a, t->b, norm);
            for (int i = 0; i < out; i++) t->mag[i] = (float)(t->mag[i] / norm[i]);
            free(norm);
        }
        w->lora = l;
    }
    t->a = t->b = t->mag = NULL;
}

int adapter_apply(transformer_model *m, const peft_adapter *a, int merge_all) {
    int n, nt, rc = 0;
    adapter_target *t;
    if (adapter_targets_load(a, m, &t, &nt)) return -1;
    tf_module *mods = transformer_modules(m, &n);
    for (int i = 0; i < nt && rc == 0; i++)
        if (mods[t[i].module].w->lora)
            rc = SM_ERR("adapter '%s': %s already carries an adapter", a->dir,
                        mods[t[i].module].name);
    for (int i = 0; i < nt && rc == 0; i++) {
        linear_w *w = mods[t[i].module].w;
        apply_one(a, w, &t[i], merge_all || w->type == WT_F32);
    }
    adapter_targets_free(t, nt);
    free(mods);
    return rc;
}

/* ---- merged model directory ------------------------------------------------------------- */

/* Every regular file of the base directory but the weights, then the adapter's
 * transparency_config.json (trained beside the adapter). */
static int copy_side_files(const char *base_dir, const char *adapter_dir, const char *out_dir) {
    int rc = model_dir_copy_side_files(base_dir, out_dir);
    char *sm = sm_path_join(adapter_dir, "transparency_config.json");
    if (rc == 0 && sm_file_exists(sm)) {
        char *dst = sm_path_join(out_dir, "transparency_config.json");
        rc = sm_copy_file(sm, dst);
        free(dst);
    }
    free(sm);
    return rc;
}

/* The merged fp32 rows of a target as the base tensor's dtype: fp32, or bf16 (rounded to
 * nearest even) for bf16 bases; other bases get fp32. */
static const void *merged_data(const linear_w *w, st_dtype base, st_dtype *dtype, void **owned) {
    const size_t n = (size_t)w->out * w->in;
    const float *src = w->data;
    *dtype = ST_F32;
    if (base != ST_BF16) return src;
    uint16_t *h = sm_malloc(sizeof(uint16_t) * n);
    for (size_t i = 0; i < n; i++) h[i] = st_f32_to_bf16(src[i]);
    *dtype = ST_BF16;
    *owned = h;
    return h;
}

int adapter_write_merged(const transformer_model *m, const peft_adapter *a, const char *base_dir,
                         const char *out_dir) {
    if (model_dir_create(out_dir)) return -1;
    int nmods;
    tf_module *mods = transformer_modules((transformer_model *)m, &nmods);
    const st_archive *ar = &m->archive;
    st_write_entry *e = sm_calloc((size_t)ar->ntensors, sizeof *e);
    void **owned = sm_calloc((size_t)ar->ntensors, sizeof *owned);
    for (int i = 0; i < ar->ntensors; i++) {
        const st_tensor *t = &ar->tensors[i];
        e[i] = (st_write_entry){.name = t->name, .dtype = t->dtype, .ndim = t->ndim,
                                .data = t->data};
        memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        for (int k = 0; k < nmods; k++) {
            const size_t len = strlen(mods[k].name);
            if (is_target(a, &mods[k]) && !strncmp(t->name, mods[k].name, len) &&
                !strcmp(t->name + len, ".weight"))
                e[i].data = merged_data(mods[k].w, t->dtype, &e[i].dtype, &owned[i]);
        }
    }
    char *path = sm_path_join(out_dir, "model.safetensors");
    static const char *const meta[] = {"format", "pt", NULL};
    int rc = st_write(path, e, ar->ntensors, meta);
    if (rc == 0) rc = copy_side_files(base_dir, a->dir, out_dir);
    for (int i = 0; i < ar->ntensors; i++) free(owned[i]);
    free(owned), free(e), free(path), free(mods);
    return rc;
}
