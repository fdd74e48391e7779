/* train_config.c — see train_config.h. */
#include "train/train_config.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
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
    /* the scale learns from IBM's start (scale 1e-6) within a few hundred updates: its
       gradient (× s(1−s) ≈ 1e-6) is far below torch's ε 1e-8 (docs/DESIGN.md §3.6) */
    c->sm_scale_lr = 5e-2f, c->sm_eps = 1e-16f;
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
    if (c->sm_only && !c->init) return SM_ERR("--sm-only trains the soft-masking of a model: give it with --init");
    if (c->sm_only && c->sm_prob != 1.0f)
        return SM_ERR("--sm-only makes every step a soft-masking step: sm-prob must be 1, not %g", c->sm_prob);
    if (!(c->ema >= 0.0f && c->ema < 1.0f)) return SM_ERR("ema %g must be in [0, 1)", c->ema);
    if (c->log_every < 1 || c->val_every < 0 || c->ckpt_every < 0 || c->keep_last < 1)
        return SM_ERR("log-every ≥ 1, val-every ≥ 0, ckpt-every ≥ 0 and keep-last ≥ 1 are required");
    if (!(c->lr > 0.0f && c->sm_lr >= 0.0f && c->sm_scale_lr >= 0.0f)) return SM_ERR("learning rates must be positive");
    if (!(c->sm_eps > 0.0f)) return SM_ERR("sm-eps %g must be > 0", c->sm_eps);
    sm_params p = {1, c->sm_scale, c->sm_centre, c->sm_steepness, c->sm_k};
    if (sm_params_validate(&p)) return -1;
    if (!c->init) {
        dit_config d = {2, c->hidden, c->n_heads, c->n_blocks, c->cond_dim, 2, 1, 0, 0};
        if (dit_config_validate(&d)) return -1;
    }
    return 0;
}

/* ---- the settings as JSON ----------------------------------------------------------------- */

typedef enum { F_INT, F_LONG, F_U64, F_FLOAT, F_STR, F_OBJECTIVE, F_SCHEDULE } field_kind;
/* What a resumed run may change: the budget, cadence and threads freely; the optimisation
 * with --override; the model, its data and the random streams never. */
typedef enum { CHANGE_FREE, CHANGE_OVERRIDE, CHANGE_NEVER } field_change;

typedef struct {
    const char *key;
    field_kind kind;
    size_t offset;
    double lo, hi;
    field_change change;
} config_field;

#define F(key, kind, member, lo, hi, change) {key, kind, offsetof(train_config, member), lo, hi, change}
static const config_field k_fields[] = {
    F("init", F_STR, init, 0, 0, CHANGE_NEVER),
    F("hidden", F_INT, hidden, 2, 65536, CHANGE_NEVER),
    F("n_heads", F_INT, n_heads, 1, 4096, CHANGE_NEVER),
    F("n_blocks", F_INT, n_blocks, 1, 1024, CHANGE_NEVER),
    F("cond_dim", F_INT, cond_dim, 1, 65536, CHANGE_NEVER),
    F("objective", F_OBJECTIVE, causal, 0, 0, CHANGE_NEVER),
    F("sm_only", F_INT, sm_only, 0, 1, CHANGE_NEVER),
    F("data", F_STR, data, 0, 0, CHANGE_FREE), /* the data themselves: rundir's fingerprint */
    F("seq_len", F_INT, seq_len, 0, 1 << 20, CHANGE_NEVER),
    F("seed", F_U64, seed, 0, 9e15, CHANGE_NEVER),
    F("sm_k", F_INT, sm_k, 1, SM_MAX_K, CHANGE_NEVER),
    /* initial soft-masking values: they act at step 0 only */
    F("sm_scale", F_FLOAT, sm_scale, 0, 1, CHANGE_NEVER),
    F("sm_centre", F_FLOAT, sm_centre, -1e6, 0, CHANGE_NEVER),
    F("sm_steepness", F_FLOAT, sm_steepness, 1e-6, 1e6, CHANGE_NEVER),
    F("batch", F_INT, batch, 1, 65536, CHANGE_OVERRIDE),
    F("accum", F_INT, accum, 1, 65536, CHANGE_OVERRIDE),
    F("lr", F_FLOAT, lr, 0, 10, CHANGE_OVERRIDE),
    F("sm_lr", F_FLOAT, sm_lr, 0, 10, CHANGE_OVERRIDE),
    F("sm_scale_lr", F_FLOAT, sm_scale_lr, 0, 10, CHANGE_OVERRIDE),
    F("sm_eps", F_FLOAT, sm_eps, 1e-30, 1, CHANGE_OVERRIDE),
    F("weight_decay", F_FLOAT, weight_decay, 0, 10, CHANGE_OVERRIDE),
    F("clip", F_FLOAT, clip, 0, 1e9, CHANGE_OVERRIDE),
    F("ema", F_FLOAT, ema, 0, 0.999999, CHANGE_OVERRIDE),
    F("warmup", F_INT, warmup, 0, 1e9, CHANGE_OVERRIDE),
    F("schedule", F_SCHEDULE, schedule, 0, 0, CHANGE_OVERRIDE),
    F("min_lr_ratio", F_FLOAT, min_lr_ratio, 0, 1, CHANGE_OVERRIDE),
    F("sm_prob", F_FLOAT, sm_prob, 0, 1, CHANGE_OVERRIDE),
    F("steps", F_LONG, steps, 1, 1e15, CHANGE_FREE),
    F("tokens", F_LONG, tokens, 0, 1e18, CHANGE_FREE),
    F("log_every", F_INT, log_every, 1, 1e9, CHANGE_FREE),
    F("val_every", F_INT, val_every, 0, 1e9, CHANGE_FREE),
    F("val_batches", F_INT, val_batches, 1, 1e9, CHANGE_FREE),
    F("ckpt_every", F_INT, ckpt_every, 0, 1e9, CHANGE_FREE),
    F("keep_last", F_INT, keep_last, 1, 1e6, CHANGE_FREE),
    F("milestone_every", F_INT, milestone_every, 0, 1e9, CHANGE_FREE),
    F("samples", F_INT, samples, 0, 64, CHANGE_FREE),
    F("threads", F_INT, threads, 1, 1024, CHANGE_FREE),
};
#undef F
#define FIELD(c, f, type) ((type *)((char *)(c) + (f)->offset))
#define CFIELD(c, f, type) ((const type *)((const char *)(c) + (f)->offset))

/* Strings read from JSON live as long as the process (train_config.h): a flag may replace the
 * pointer in a configuration, so the copies are owned here, where they stay reachable. */
static const char *keep_string(const char *s) {
    static char **kept;
    static size_t n;
    kept = sm_realloc(kept, (n + 1) * sizeof *kept);
    return kept[n++] = sm_strdup(s);
}

static int field_from_json(train_config *c, const config_field *f, const cJSON *obj, const char *what) {
    const char *key = f->key;
    double v;
    if (f->kind == F_INT) return json_get_int(obj, key, (long)f->lo, (long)f->hi, 0, FIELD(c, f, int), what);
    if (f->kind == F_STR || f->kind == F_OBJECTIVE || f->kind == F_SCHEDULE) {
        const char *sv = json_get_string(obj, key);
        if (!sv) return SM_ERR("%s: \"%s\" must be a string", what, key);
        if (f->kind == F_OBJECTIVE) return train_objective_parse(sv, FIELD(c, f, int)) ? sm_wrap_error("%s", what) : 0;
        if (f->kind == F_SCHEDULE) return sched_kind_parse(sv, FIELD(c, f, sched_kind)) ? sm_wrap_error("%s", what) : 0;
        *FIELD(c, f, const char *) = keep_string(sv);
        return 0;
    }
    if (json_get_double(obj, key, f->lo, f->hi, 0, 1, &v, what)) return -1;
    if (f->kind == F_FLOAT) *FIELD(c, f, float) = (float)v;
    else if (v != (double)(long long)v) return SM_ERR("%s: \"%s\" must be an integer", what, key);
    else if (f->kind == F_LONG) *FIELD(c, f, long) = (long)v;
    else *FIELD(c, f, uint64_t) = (uint64_t)v;
    return 0;
}

int train_config_from_json(train_config *c, const cJSON *obj, const char *what) {
    if (json_check_unique_keys(obj, what)) return -1;
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!strcmp(it->string, "out")) { /* a setting of the command, not of the run */
            if (!cJSON_IsString(it)) return SM_ERR("%s: \"out\" must be a string", what);
            c->out = keep_string(it->valuestring);
            continue;
        }
        const config_field *f = NULL;
        for (size_t i = 0; i < sizeof k_fields / sizeof *k_fields && !f; i++)
            if (!strcmp(k_fields[i].key, it->string)) f = &k_fields[i];
        if (!f) return SM_ERR("%s: unknown key \"%s\"", what, it->string);
        if (field_from_json(c, f, obj, what)) return -1;
    }
    return 0;
}

int train_config_load_json(train_config *c, const char *path) {
    char *text;
    if (sm_read_file(path, 1 << 20, &text, NULL)) return -1;
    cJSON *root = json_parse_object(text, path);
    free(text);
    if (!root) return -1;
    int rc = train_config_from_json(c, root, path);
    cJSON_Delete(root);
    return rc;
}

/* The value of a field as text (JSON-like: numbers as the user wrote them, names quoted). */
static void field_text(const train_config *c, const config_field *f, char *buf, size_t n) {
    switch (f->kind) {
    case F_INT: snprintf(buf, n, "%d", *CFIELD(c, f, int)); break;
    case F_LONG: snprintf(buf, n, "%ld", *CFIELD(c, f, long)); break;
    case F_U64: snprintf(buf, n, "%" PRIu64, *CFIELD(c, f, uint64_t)); break;
    case F_FLOAT: snprintf(buf, n, "%.9g", optim_as_decimal(*CFIELD(c, f, float))); break;
    case F_STR: snprintf(buf, n, "%s", *CFIELD(c, f, const char *) ? *CFIELD(c, f, const char *) : "(none)"); break;
    case F_OBJECTIVE: snprintf(buf, n, "%s", SM_ENUM_NAME(k_objectives, *CFIELD(c, f, int))); break;
    case F_SCHEDULE: snprintf(buf, n, "%s", sched_kind_name(*CFIELD(c, f, sched_kind))); break;
    }
}

cJSON *train_config_to_json(const train_config *c) {
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof k_fields / sizeof *k_fields; i++) {
        const config_field *f = &k_fields[i];
        char buf[64];
        field_text(c, f, buf, sizeof buf);
        switch (f->kind) {
        case F_STR:
            if (*CFIELD(c, f, const char *)) cJSON_AddStringToObject(o, f->key, *CFIELD(c, f, const char *));
            break;
        case F_OBJECTIVE:
        case F_SCHEDULE: cJSON_AddStringToObject(o, f->key, buf); break;
        default: cJSON_AddRawToObject(o, f->key, buf); /* exact: %.9g float, full integers */
        }
    }
    return o;
}

int train_config_diff(const train_config *rec, const train_config *now, sm_buf *report, int *changed) {
    int refused = 0;
    *changed = 0;
    for (size_t i = 0; i < sizeof k_fields / sizeof *k_fields; i++) {
        const config_field *f = &k_fields[i];
        char a[1024], b[1024];
        field_text(rec, f, a, sizeof a);
        field_text(now, f, b, sizeof b);
        if (!strcmp(a, b)) continue;
        int refuse = f->change == CHANGE_NEVER || (f->change == CHANGE_OVERRIDE && !now->override);
        sm_buf_printf(report, "  %s: %s → %s%s\n", f->key, a, b,
                      f->change == CHANGE_NEVER ? "   (cannot change in a run)"
                      : refuse ? "   (needs --override)" : "");
        refused += refuse;
        (*changed)++;
    }
    return refused;
}
