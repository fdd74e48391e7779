/* train_config.c — see train_config.h. */
#include "train/train_config.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "base/jsonutil.h"
#include "base/util.h"
#include "models/dit.h"
#include "softmask/softmask.h"

static const sm_enum_entry k_objectives[] = {{"mdlm", 0}, {"ar", 1}};

int train_objective_parse(const char *name, int *causal) {
    return SM_ENUM_PARSE(k_objectives, name, causal, "objective");
}

void train_config_default(train_config *c) {
    memset(c, 0, sizeof *c);
    c->hidden = 128, c->n_heads = 4, c->n_blocks = 4, c->cond_dim = 64;
    c->batch = 16, c->accum = 1;
    c->lr = 3e-4f, c->sm_lr = 1e-2f, c->weight_decay = 0.0f, c->clip = 1.0f, c->ema = 0.9999f;
    c->warmup = 0, c->schedule = SCHED_CONSTANT, c->min_lr_ratio = 0.0f;
    c->steps = 1000;
    c->sm_prob = 0.0f, c->sm_k = 3, c->sm_scale = 0.0f, c->sm_centre = -0.75f;
    c->sm_steepness = 10.0f / 1.5f;
    c->log_every = 10, c->val_every = 200, c->val_batches = 8, c->ckpt_every = 500;
    c->keep_last = 3, c->milestone_every = 0, c->samples = 1;
    c->seed = 1, c->threads = 1;
}

int train_config_validate(const train_config *c) {
    if (!c->data) return SM_ERR("no data directory (--data)");
    if (!c->out) return SM_ERR("no output directory (--out)");
    if (c->batch < 1 || c->accum < 1) return SM_ERR("batch %d and accum %d must be ≥ 1", c->batch, c->accum);
    if (c->steps < 1) return SM_ERR("steps %ld must be ≥ 1", c->steps);
    if (!(c->sm_prob >= 0.0f && c->sm_prob <= 1.0f)) return SM_ERR("sm-prob %g must be in [0, 1]", c->sm_prob);
    if (c->causal && c->sm_prob > 0.0f) return SM_ERR("soft-masking needs the mdlm objective, not ar");
    if (!(c->ema >= 0.0f && c->ema < 1.0f)) return SM_ERR("ema %g must be in [0, 1)", c->ema);
    if (c->log_every < 1 || c->val_every < 0 || c->ckpt_every < 0 || c->keep_last < 1)
        return SM_ERR("log-every ≥ 1, val-every ≥ 0, ckpt-every ≥ 0 and keep-last ≥ 1 are required");
    if (!(c->lr > 0.0f && c->sm_lr >= 0.0f)) return SM_ERR("learning rates must be positive");
    sm_params p = {1, c->sm_scale, c->sm_centre, c->sm_steepness, c->sm_k};
    if (sm_params_validate(&p)) return -1;
    if (!c->init) {
        dit_config d = {2, c->hidden, c->n_heads, c->n_blocks, c->cond_dim, 2, 1, 0, 0};
        if (dit_config_validate(&d)) return -1;
    }
    return 0;
}

int train_config_load_json(train_config *c, const char *path) {
    char *text;
    if (sm_read_file(path, 1 << 20, &text, NULL)) return -1;
    cJSON *root = json_parse_object(text, path);
    free(text);
    if (!root) return -1;
    int rc = 0;
    double v;
    const struct {
        const char *key;
        float *f;
        int *i;
        double lo, hi;
    } nums[] = {
        {"hidden", NULL, &c->hidden, 2, 65536},       {"n_heads", NULL, &c->n_heads, 1, 4096},
        {"n_blocks", NULL, &c->n_blocks, 1, 1024},     {"cond_dim", NULL, &c->cond_dim, 1, 65536},
        {"batch", NULL, &c->batch, 1, 65536},          {"accum", NULL, &c->accum, 1, 65536},
        {"seq_len", NULL, &c->seq_len, 0, 1 << 20},    {"warmup", NULL, &c->warmup, 0, 1e9},
        {"sm_k", NULL, &c->sm_k, 1, SM_MAX_K},         {"log_every", NULL, &c->log_every, 1, 1e9},
        {"val_every", NULL, &c->val_every, 0, 1e9},    {"val_batches", NULL, &c->val_batches, 1, 1e9},
        {"ckpt_every", NULL, &c->ckpt_every, 0, 1e9},  {"keep_last", NULL, &c->keep_last, 1, 1e6},
        {"milestone_every", NULL, &c->milestone_every, 0, 1e9}, {"samples", NULL, &c->samples, 0, 64},
        {"threads", NULL, &c->threads, 1, 1024},
        {"lr", &c->lr, NULL, 0, 10},                   {"sm_lr", &c->sm_lr, NULL, 0, 10},
        {"weight_decay", &c->weight_decay, NULL, 0, 10}, {"clip", &c->clip, NULL, 0, 1e9},
        {"ema", &c->ema, NULL, 0, 0.999999},           {"min_lr_ratio", &c->min_lr_ratio, NULL, 0, 1},
        {"sm_prob", &c->sm_prob, NULL, 0, 1},          {"sm_scale", &c->sm_scale, NULL, 0, 1},
        {"sm_centre", &c->sm_centre, NULL, -1e6, 0},   {"sm_steepness", &c->sm_steepness, NULL, 1e-6, 1e6},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums && !rc; i++) {
        if (!cJSON_GetObjectItemCaseSensitive(root, nums[i].key)) continue;
        if (nums[i].i)
            rc = json_get_int(root, nums[i].key, (long)nums[i].lo, (long)nums[i].hi, 0, nums[i].i, path);
        else if (!(rc = json_get_double(root, nums[i].key, nums[i].lo, nums[i].hi, 0, 1, &v, path)))
            *nums[i].f = (float)v;
    }
    if (!rc && cJSON_GetObjectItemCaseSensitive(root, "steps")) {
        rc = json_get_double(root, "steps", 1, 1e15, 0, 1, &v, path);
        c->steps = (long)v;
    }
    if (!rc && cJSON_GetObjectItemCaseSensitive(root, "seed")) {
        rc = json_get_double(root, "seed", 0, 9e15, 0, 1, &v, path);
        c->seed = (uint64_t)v;
    }
    const char *obj = json_get_string(root, "objective");
    const char *sched = json_get_string(root, "schedule");
    if (!rc && ((obj && train_objective_parse(obj, &c->causal)) ||
                (sched && sched_kind_parse(sched, &c->schedule))))
        rc = sm_wrap_error("%s", path);
    /* strings must outlive the JSON tree: keep copies for the process's lifetime */
    const char *keys[] = {"init", "data", "out"};
    const char **dst[] = {&c->init, &c->data, &c->out};
    for (int i = 0; i < 3 && !rc; i++) {
        const char *sv = json_get_string(root, keys[i]);
        if (sv) *dst[i] = sm_strdup(sv);
    }
    cJSON_Delete(root);
    return rc;
}
