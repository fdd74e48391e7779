/* trainloop.c — see trainloop.h. */
#include "train/trainloop.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/data.h"
#include "train/dist.h"
#include "base/jsonutil.h"
#include "compute/kernels.h"
#include "models/lm_dit.h"
#include "models/model.h"
#include "base/rng.h"
#include "generate/sampler.h"
#include "train/train.h"
#include "base/util.h"

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
    if (!rc && obj) {
        if (!strcmp(obj, "ar")) c->causal = 1;
        else if (!strcmp(obj, "mdlm")) c->causal = 0;
        else rc = SM_ERR("%s: objective \"%s\" must be \"mdlm\" or \"ar\"", path, obj);
    }
    const char *sched = json_get_string(root, "schedule");
    if (!rc && sched) {
        if (!strcmp(sched, "cosine")) c->schedule = SCHED_COSINE;
        else if (!strcmp(sched, "constant")) c->schedule = SCHED_CONSTANT;
        else rc = SM_ERR("%s: schedule \"%s\" must be \"constant\" or \"cosine\"", path, sched);
    }
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

/* ---- run state ---------------------------------------------------------------------------- */

typedef struct {
    const train_config *c;
    trainer tr;
    adamw opt;
    shard_set train, val;
    char *tok_dir; /* tokenizer files copied into checkpoints (NULL if none) */
    smdlm_tokenizer *tok;
    uint32_t *perm; /* block order of the current epoch */
    long step;      /* updates done */
    long epoch;
    size_t pos;     /* next index into perm */
    sm_rng rng;     /* noise, masks and soft-masking coins */
    int32_t *x0, *xt;
    float *t;
    FILE *log;
    double t_start;
    long tokens;
} run;

static void shuffle_epoch(run *r) {
    sm_rng g;
    rng_seed(&g, r->c->seed * 1000003u + (uint64_t)r->epoch);
    size_t n = r->train.nblocks;
    for (size_t i = 0; i < n; i++) r->perm[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) { /* Fisher–Yates */
        size_t j = (size_t)(rng_next(&g) % (i + 1));
        uint32_t x = r->perm[i];
        r->perm[i] = r->perm[j], r->perm[j] = x;
    }
}

/* The next block of the data order; read into out only when out != NULL (the blocks of
 * the other processes' shares are skipped). */
static int next_block(run *r, int32_t *out, int32_t *tmp) {
    if (r->pos == r->train.nblocks) {
        r->epoch++;
        r->pos = 0;
        shuffle_epoch(r);
    }
    uint32_t block = r->perm[r->pos++];
    if (!out) return 0;
    if (shards_read_block(&r->train, block, tmp)) return -1;
    memcpy(out, tmp, sizeof(int32_t) * (size_t)r->tr.T);
    return 0;
}

/* ---- evaluation --------------------------------------------------------------------------- */

int eval_loss(trainer *tr, const shard_set *data, size_t max_blocks, uint64_t seed, int sm,
              double *nats, long *tokens) {
    const int B = tr->B, T = tr->T;
    size_t n = max_blocks && max_blocks < data->nblocks ? max_blocks : data->nblocks;
    n -= n % (size_t)B;
    if (n == 0) return SM_ERR("the data has fewer than %d blocks (one batch)", B);
    if (T > data->block_len) return SM_ERR("length %d exceeds the data's blocks (%d)", T, data->block_len);
    sm_rng g;
    rng_seed(&g, seed);
    int32_t *tmp = sm_malloc(sizeof(int32_t) * (size_t)data->block_len);
    int32_t *x0 = sm_malloc(sizeof(int32_t) * (size_t)B * T), *xt = sm_malloc(sizeof(int32_t) * (size_t)B * T);
    float *t = sm_malloc(sizeof(float) * (size_t)B);
    double sum = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i += (size_t)B) {
        for (int b = 0; b < B && !rc; b++) {
            rc = shards_read_block(data, i + (size_t)b, tmp);
            memcpy(x0 + (size_t)b * T, tmp, sizeof(int32_t) * (size_t)T);
        }
        if (rc) break;
        if (tr->cfg.causal) memcpy(xt, x0, sizeof(int32_t) * (size_t)B * T);
        else mdlm_noise_batch(&g, x0, xt, t, B, T, tr->cfg.mask_id);
        train_batch bt = {xt, x0, t};
        sum += trainer_loss(tr, &bt, sm && !tr->cfg.causal);
    }
    free(tmp), free(x0), free(xt), free(t);
    *nats = sum / (double)(n / (size_t)B);
    *tokens = (long)n * (tr->cfg.causal ? T - 1 : T);
    return rc;
}

/* Validation NELBO with the EMA weights when there are any (fixed t and masks). */
static int validate(run *r, double *nats) {
    trainer *tr = &r->tr;
    float *saved = NULL;
    if (tr->ema.owned) {
        saved = sm_malloc(tr->nparams * sizeof(float));
        memcpy(saved, tr->model.owned, tr->nparams * sizeof(float));
        memcpy(tr->model.owned, tr->ema.owned, tr->nparams * sizeof(float));
    }
    long tokens;
    int rc = eval_loss(tr, &r->val, (size_t)r->c->val_batches * tr->B, r->c->seed ^ 0x5EED5EEDull,
                       r->c->sm_prob > 0.0f, nats, &tokens);
    if (saved) {
        memcpy(tr->model.owned, saved, tr->nparams * sizeof(float));
        free(saved);
    }
    return rc;
}

static void log_sample(run *r) {
    if (!r->tok || r->c->samples <= 0 || r->tr.cfg.causal) return;
    trainer *tr = &r->tr;
    const dit_model *m = tr->ema.owned ? &tr->ema : &tr->model;
    int len = tr->T < 128 ? tr->T : 128;
    sampler_params sp;
    sampler_params_default(&sp);
    sp.steps = len / 2 > 0 ? len / 2 : 1;
    sp.seed = r->c->seed;
    if (r->c->sm_prob > 0.0f) sm_raw_to_params(&tr->sm, &sp.sm);
    int32_t *x = sm_malloc(sizeof(int32_t) * (size_t)len);
    lm_dit view;
    lm_model lm;
    lm_dit_init(&view, &lm, m, 0, tr->nthreads);
    for (int s = 0; s < r->c->samples; s++) {
        for (int i = 0; i < len; i++) x[i] = tr->cfg.mask_id;
        sp.seed = r->c->seed + (uint64_t)s;
        sampler_stats st;
        char *text = NULL;
        size_t tl;
        if (sampler_run(&lm, &sp, x, NULL, 1, len, &st) == 0 &&
            tok_decode(r->tok, x, (size_t)len, &text, &tl) == 0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", (double)r->step);
            cJSON_AddStringToObject(o, "sample", text);
            char *line = cJSON_PrintUnformatted(o);
            fprintf(r->log, "%s\n", line);
            free(line);
            cJSON_Delete(o);
        }
        free(text);
    }
    lm_dit_free(&view);
    free(x);
}

/* ---- checkpoints -------------------------------------------------------------------------- */

static char *ckpt_path(const char *out, const char *prefix, long step) {
    char name[64];
    snprintf(name, sizeof name, "%sckpt-%08ld", prefix, step);
    return sm_path_join(out, name);
}

static int copy_file(const char *src, const char *dst) {
    char *buf;
    size_t n;
    if (sm_read_file(src, (size_t)1 << 30, &buf, &n)) return -1;
    int rc = sm_write_file_atomic(dst, buf, n);
    free(buf);
    return rc;
}

static int copy_tokenizer(const char *from, const char *to) {
    static const char *files[] = {"tokenizer.json", "vocab.json", "merges.txt",
                                  "tokenizer_config.json", "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *a = sm_path_join(from, files[i]), *b = sm_path_join(to, files[i]);
        int rc = sm_file_exists(a) ? copy_file(a, b) : 0;
        free(a), free(b);
        if (rc) return -1;
    }
    return 0;
}

static void fsync_dir(const char *dir) {
    FILE *f = fopen(dir, "r");
    if (f) {
        fsync(fileno(f));
        fclose(f);
    }
}

static int save_state(const run *r, const char *dir) {
    const trainer *tr = &r->tr;
    size_t nm = tr->nparams + 3;
    char meta_vals[6][80];
    snprintf(meta_vals[0], 80, "%ld", r->step);
    snprintf(meta_vals[1], 80, "%ld", r->epoch);
    snprintf(meta_vals[2], 80, "%zu", r->pos);
    snprintf(meta_vals[3], 80, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             r->rng.s[0], r->rng.s[1], r->rng.s[2], r->rng.s[3]);
    snprintf(meta_vals[4], 80, "%" PRIu64, r->c->seed);
    snprintf(meta_vals[5], 80, "%ld", r->tokens);
    const char *meta[] = {"step", meta_vals[0], "epoch", meta_vals[1], "pos", meta_vals[2],
                          "rng", meta_vals[3], "seed", meta_vals[4], "tokens", meta_vals[5], NULL};
    float raw[3] = {tr->sm.raw_scale, tr->sm.raw_centre, tr->sm.raw_steepness};
    st_write_entry e[4] = {
        {"params", ST_F32, 1, {(int64_t)tr->nparams}, tr->model.owned},
        {"adam_m", ST_F32, 1, {(int64_t)nm}, r->opt.m},
        {"adam_v", ST_F32, 1, {(int64_t)nm}, r->opt.v},
        {"softmask_raw", ST_F32, 1, {3}, raw},
    };
    char *path = sm_path_join(dir, "train_state.safetensors");
    int rc = st_write(path, e, 4, meta);
    free(path);
    return rc;
}

static void prune_checkpoints(const run *r);
static void remove_dir(const char *dir);

static int save_checkpoint(run *r) {
    char *tmp = ckpt_path(r->c->out, ".tmp-", r->step), *final = ckpt_path(r->c->out, "", r->step);
    int rc = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) rc = SM_ERR("cannot create '%s': %s", tmp, strerror(errno));
    if (!rc) rc = trainer_export(&r->tr, tmp, r->tr.ema.owned != NULL, r->c->sm_prob > 0.0f);
    if (!rc && r->tok_dir) rc = copy_tokenizer(r->tok_dir, tmp);
    if (!rc) rc = save_state(r, tmp);
    if (!rc) {
        char *marker = sm_path_join(tmp, "COMPLETE");
        rc = sm_write_file_atomic(marker, "ok\n", 3);
        free(marker);
    }
    if (!rc) {
        fsync_dir(tmp);
        /* a checkpoint of the same step already there (a damaged one a resume skipped) is
           moved aside first: rename cannot replace a non-empty directory */
        char *old = ckpt_path(r->c->out, ".old-", r->step);
        remove_dir(old);
        int had_old = rename(final, old) == 0;
        if (rename(tmp, final) != 0) rc = SM_ERR("cannot rename '%s' to '%s': %s", tmp, final, strerror(errno));
        else fsync_dir(r->c->out);
        if (had_old) remove_dir(old);
        free(old);
    }
    if (rc) {
        sm_wrap_error("checkpoint at step %ld not written (the previous ones are intact)", r->step);
        remove_dir(tmp);
    }
    free(tmp), free(final);
    if (!rc) prune_checkpoints(r);
    return rc;
}

/* Steps of the checkpoints in out (complete or not), newest first. */
static long *list_checkpoints(const char *out, int *n) {
    DIR *d = opendir(out);
    long *steps = NULL;
    int cap = 0;
    *n = 0;
    if (!d) return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        char tail;
        if (sscanf(e->d_name, "ckpt-%ld%c", &s, &tail) != 1) continue;
        if (*n == cap) steps = sm_realloc(steps, sizeof(long) * (size_t)(cap = cap ? 2 * cap : 16));
        steps[(*n)++] = s;
    }
    closedir(d);
    for (int i = 0; i < *n; i++) /* sort descending */
        for (int j = i + 1; j < *n; j++)
            if (steps[j] > steps[i]) {
                long x = steps[i];
                steps[i] = steps[j], steps[j] = x;
            }
    return steps;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = sm_path_join(dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Keeps the newest keep_last checkpoints and every milestone. */
static void prune_checkpoints(const run *r) {
    int n;
    long *steps = list_checkpoints(r->c->out, &n);
    for (int i = r->c->keep_last; i < n; i++) {
        if (r->c->milestone_every > 0 && steps[i] % r->c->milestone_every == 0) continue;
        char *p = ckpt_path(r->c->out, "", steps[i]);
        remove_dir(p);
        free(p);
    }
    free(steps);
}

static int parse_u64_hex(const char *s, uint64_t *out) {
    for (int k = 0; k < 4; k++) {
        char part[17];
        memcpy(part, s + 16 * k, 16);
        part[16] = 0;
        char *end;
        out[k] = strtoull(part, &end, 16);
        if (*end) return -1;
    }
    return 0;
}

/* Loads one checkpoint into r (trainer and optimizer already sized). */
static int load_checkpoint(run *r, const char *dir) {
    char *marker = sm_path_join(dir, "COMPLETE");
    int complete = sm_file_exists(marker);
    free(marker);
    if (!complete) return SM_ERR("'%s' has no COMPLETE marker", dir);
    model_dir md;
    if (model_dir_load(&md, dir, 0)) return -1;
    int rc = 0;
    trainer *tr = &r->tr;
    if (dit_param_numel(&md.net.cfg) != tr->nparams || md.net.cfg.hidden != tr->cfg.hidden ||
        md.net.cfg.vocab_size != tr->cfg.vocab_size)
        rc = SM_ERR("'%s' holds a model of another shape", dir);
    char *path = sm_path_join(dir, "train_state.safetensors");
    st_archive st = {0};
    if (!rc) rc = st_open_file(&st, path);
    free(path);
    const st_tensor *p = rc ? NULL : st_find(&st, "params"), *m = rc ? NULL : st_find(&st, "adam_m"),
                    *v = rc ? NULL : st_find(&st, "adam_v"), *s = rc ? NULL : st_find(&st, "softmask_raw");
    if (!rc && (!p || !m || !v || !s || p->numel != tr->nparams || m->numel != tr->nparams + 3 ||
                v->numel != tr->nparams + 3 || s->numel != 3))
        rc = SM_ERR("'%s': train_state.safetensors does not match the model", dir);
    const char *buf[5] = {0};
    const char *keys[5] = {"step", "epoch", "pos", "rng", "tokens"};
    for (int i = 0; i < 5 && !rc; i++)
        if (!(buf[i] = st_metadata(&st, keys[i])))
            rc = SM_ERR("'%s': train_state.safetensors lacks \"%s\"", dir, keys[i]);
    uint64_t rs[4];
    if (!rc && (strlen(buf[3]) != 64 || parse_u64_hex(buf[3], rs))) rc = SM_ERR("'%s': bad rng state", dir);
    if (!rc) {
        float raw[3];
        st_tensor_to_f32(p, tr->model.owned);
        st_tensor_to_f32(m, r->opt.m);
        st_tensor_to_f32(v, r->opt.v);
        st_tensor_to_f32(s, raw);
        tr->sm.raw_scale = raw[0], tr->sm.raw_centre = raw[1], tr->sm.raw_steepness = raw[2];
        if (r->c->ema > 0.0f) {
            if (!tr->ema.owned) trainer_ema_update(tr, 0.0f); /* allocates */
            int n = dit_param_count(&tr->cfg);
            dit_param *a = sm_malloc(sizeof *a * (size_t)n), *b = sm_malloc(sizeof *b * (size_t)n);
            dit_weights w = md.net.w;
            dit_param_table(&tr->cfg, &w, a);
            dit_param_table(&tr->cfg, &tr->ema.w, b);
            for (int i = 0; i < n; i++) memcpy(*b[i].slot, *a[i].slot, a[i].numel * sizeof(float));
            free(a), free(b);
        }
        r->step = strtol(buf[0], NULL, 10);
        r->epoch = strtol(buf[1], NULL, 10);
        r->pos = (size_t)strtoull(buf[2], NULL, 10);
        r->tokens = strtol(buf[4], NULL, 10);
        memcpy(r->rng.s, rs, sizeof rs);
        r->opt.step = r->step;
        if (r->pos > r->train.nblocks) rc = SM_ERR("'%s': data position beyond the data", dir);
        else shuffle_epoch(r);
    }
    st_close(&st);
    model_dir_free(&md);
    return rc;
}

/* Newest checkpoint that loads; older ones when a newer one is damaged. 1 when there is
 * none (a fresh start), −1 when there are some and none loads. */
static int resume_from(run *r) {
    int n;
    long *steps = list_checkpoints(r->c->out, &n);
    int rc = n ? -1 : 1;
    if (!n) fprintf(stderr, "smdlm train: no checkpoint in %s; starting from step 0\n", r->c->out);
    for (int i = 0; i < n && rc; i++) {
        char *dir = ckpt_path(r->c->out, "", steps[i]);
        if (rc && load_checkpoint(r, dir) == 0) {
            fprintf(stderr, "smdlm train: resuming from %s (step %ld)\n", dir, r->step);
            rc = 0;
        } else {
            fprintf(stderr, "smdlm train: skipping %s: %s\n", dir, smdlm_last_error());
        }
        free(dir);
    }
    free(steps);
    if (rc < 0) SM_ERR("no checkpoint in %s could be loaded", r->c->out);
    return rc;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static int open_data(run *r, dit_config *cfg) {
    const train_config *c = r->c;
    if (shards_open(&r->train, c->data, "train") || shards_open(&r->val, c->data, "val")) return -1;
    if (r->train.nblocks == 0) return SM_ERR("%s: the training split is empty", c->data);
    int T = c->seq_len ? c->seq_len : r->train.block_len;
    if (T > r->train.block_len || T < 2)
        return SM_ERR("seq-len %d must be in [2, the data's block length %d]", T, r->train.block_len);
    char *meta_tok = sm_path_join(c->data, "tokenizer");
    if (c->init) { /* continue pretraining: the model's own tokenizer must fit the data */
        if (model_dir_read_config(cfg, c->init)) return -1;
        if (cfg->vocab_size < r->train.vocab_size)
            return SM_ERR("the data has %d token ids but the model at %s only %d", r->train.vocab_size,
                          c->init, cfg->vocab_size);
        r->tok_dir = sm_strdup(c->init);
    } else {
        r->tok_dir = meta_tok;
        meta_tok = NULL;
    }
    free(meta_tok);
    if (tok_load_dir(&r->tok, r->tok_dir)) { /* samples are optional: no tokenizer, no samples */
        r->tok = NULL;
        if (!c->init) {
            free(r->tok_dir);
            r->tok_dir = NULL;
        }
    }
    if (!c->init) {
        /* the mask id: the tokenizer's own <|mask|> when it is its last id, else one more id */
        int V = r->train.vocab_size, mask = V;
        if (r->tok && tok_str_to_id(r->tok, "<|mask|>") == tok_vocab_size(r->tok) - 1 &&
            tok_vocab_size(r->tok) >= V)
            V = tok_vocab_size(r->tok), mask = V - 1;
        else
            V = V + 1;
        *cfg = (dit_config){V, c->hidden, c->n_heads, c->n_blocks, c->cond_dim, T, mask, 0, 0};
    }
    cfg->causal = c->causal;
    if (cfg->model_length < T) return SM_ERR("seq-len %d exceeds the model's length %d", T, cfg->model_length);
    return dit_config_validate(cfg);
}

static void log_step(run *r, double loss, double norm, int sm_passes, double dt) {
    const trainer *tr = &r->tr;
    sm_params p;
    sm_raw_to_params(&tr->sm, &p);
    double lr = r->c->lr * optim_lr_factor(&r->opt.cfg, r->step - 1);
    double elapsed = sm_time_sec() - r->t_start;
    fprintf(r->log,
            "{\"step\":%ld,\"loss\":%.17g,\"grad_norm\":%.6g,\"lr\":%.6g,\"tokens\":%ld,"
            "\"step_s\":%.4f,\"elapsed_s\":%.2f,\"sm_passes\":%d,\"sm_scale\":%.6g,"
            "\"sm_centre\":%.6g,\"sm_steepness\":%.6g}\n",
            r->step, loss, norm, lr, r->tokens, dt, elapsed, sm_passes, p.scale, p.centre, p.steepness);
    fflush(r->log);
    if (r->c->quiet) return;
    double tps = (double)tr->B * tr->T * r->c->accum / dt;
    double eta = (double)(r->c->steps - r->step) * dt;
    int tty = isatty(STDERR_FILENO); /* a live line on a terminal, one line per log otherwise */
    fprintf(stderr, "%sstep %ld/%ld  loss %.4f  %.0f tok/s  lr %.2e  λ: scale %.3g centre %.3g steep %.3g  ETA %.0f s%s",
            tty ? "\r" : "", r->step, r->c->steps, loss, tps, lr, p.scale, p.centre, p.steepness, eta,
            tty && r->step != r->c->steps ? "   " : "\n");
}

static int train_loop(run *r) {
    const train_config *c = r->c;
    trainer *tr = &r->tr;
    const int B = tr->B, T = tr->T;
    int32_t *tmp = sm_malloc(sizeof(int32_t) * (size_t)r->train.block_len);
    int rc = 0;
    while (r->step < c->steps && !rc) {
        double t0 = sm_time_sec(), loss = 0;
        int sm_passes = 0;
        trainer_zero_grads(tr);
        /* the global batch is world·B rows; this process owns rows [rank·B, rank·B + B) */
        const int world = dist_size(), b0 = dist_rank() * B;
        for (int a = 0; a < c->accum && !rc; a++) {
            for (int g = 0; g < world * B && !rc; g++)
                rc = next_block(r, g >= b0 && g < b0 + B ? r->x0 + (size_t)(g - b0) * T : NULL, tmp);
            if (rc) break;
            int sm = 0;
            if (tr->cfg.causal) {
                memcpy(r->xt, r->x0, sizeof(int32_t) * (size_t)B * T);
            } else {
                mdlm_noise_rows(&r->rng, r->x0, r->xt, r->t, world * B, b0, B, T, tr->cfg.mask_id);
                sm = c->sm_prob > 0.0f && rng_uniform(&r->rng) < c->sm_prob;
            }
            train_batch bt = {r->xt, r->x0, r->t};
            loss += trainer_accumulate(tr, &bt, sm, 1.0f / (c->accum * world)) / c->accum;
            sm_passes += sm;
            r->tokens += (long)world * B * T;
        }
        if (rc) break;
        if (world > 1) { /* average: every process then makes the same update */
            dist_allreduce_sum(tr->grads.owned, tr->nparams);
            dist_allreduce_sum(tr->sm_grad, 3);
            loss = dist_allreduce_sum_double(loss) / world;
        }
        double norm = adamw_step(&r->opt);
        if (c->ema > 0.0f) /* MDLM's warm-up: decay min(ema, (1 + n)/(10 + n)) after n updates */
            trainer_ema_update(tr, fminf(c->ema, (float)(1 + r->step) / (float)(10 + r->step)));
        r->step++;
        if (!isfinite(loss)) {
            rc = SM_ERR("the loss is %g at step %ld; stopping (lower the learning rate?)", loss, r->step);
            break;
        }
        if (dist_rank() != 0) continue; /* process 0 logs, validates and writes checkpoints */
        if (r->step % c->log_every == 0 || r->step == c->steps) log_step(r, loss, norm, sm_passes, sm_time_sec() - t0);
        if (c->val_every && (r->step % c->val_every == 0 || r->step == c->steps)) {
            double nats = 0;
            if ((rc = validate(r, &nats))) break;
            fprintf(r->log, "{\"step\":%ld,\"tokens\":%ld,\"val_nats\":%.9g,\"val_ppl\":%.6g}\n",
                    r->step, r->tokens, nats, exp(nats));
            if (!c->quiet)
                fprintf(stderr, "%sstep %ld: validation %.4f nats/token, perplexity %s %.3f\n",
                        isatty(STDERR_FILENO) ? "\n" : "", r->step, nats, r->tr.cfg.causal ? "=" : "≤", exp(nats));
            log_sample(r);
            fflush(r->log);
        }
        if (c->ckpt_every && (r->step % c->ckpt_every == 0 || r->step == c->steps)) {
            double t1 = sm_time_sec();
            if ((rc = save_checkpoint(r))) break;
            /* bytes: the EMA model, and raw weights + two moments in the training state */
            double mb = (double)r->tr.nparams * 4.0 * 4 / 1048576.0;
            fprintf(r->log, "{\"step\":%ld,\"checkpoint_s\":%.3f,\"checkpoint_mib\":%.1f}\n", r->step,
                    sm_time_sec() - t1, mb);
            fflush(r->log);
        }
    }
    free(tmp);
    return rc;
}

int train_run(const train_config *config) {
    if (train_config_validate(config)) return -1;
    train_config cc = *config; /* steps may follow from a token budget */
    const train_config *c = &cc;
    run r = {.c = c};
    dit_config cfg;
    int rc = -1;
    if (mkdir(c->out, 0755) != 0 && errno != EEXIST) {
        SM_ERR("cannot create '%s': %s", c->out, strerror(errno));
        goto done;
    }
    if (open_data(&r, &cfg)) goto done;
    kernels_set_threads(c->threads);
    if (c->tokens > 0) { /* a token budget: whole updates of world × batch × accum × T tokens */
        long per = (long)dist_size() * c->batch * c->accum * (c->seq_len ? c->seq_len : r.train.block_len);
        cc.steps = (c->tokens + per - 1) / per;
    }
    {
        dit_model init;
        if (c->init) {
            if (dit_model_load(&init, &cfg, c->init)) goto done;
        } else {
            dit_model_alloc(&init, &cfg);
            /* MDLM's initialisation: normal(0, 0.02) weights, unit norms, zero biases,
               zero adaLN and output layer */
            sm_rng g;
            rng_seed(&g, c->seed ^ 0x1417ull);
            int n = dit_param_count(&cfg);
            dit_param *tab = sm_malloc(sizeof *tab * (size_t)n);
            dit_param_table(&cfg, &init.w, tab);
            for (int i = 0; i < n; i++) {
                float *p = *tab[i].slot;
                int zero = strstr(tab[i].name, "adaLN") || strstr(tab[i].name, "output_layer.linear") ||
                           tab[i].ndim == 1;
                for (size_t j = 0; j < tab[i].numel; j++) {
                    if (strstr(tab[i].name, "norm")) p[j] = 1.0f;
                    else if (zero) p[j] = 0.0f;
                    else { /* Box–Muller */
                        double u1 = rng_uniform(&g), u2 = rng_uniform(&g);
                        p[j] = (float)(0.02 * sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2));
                    }
                }
            }
            free(tab);
        }
        trainer_init(&r.tr, &init, c->batch, c->seq_len ? c->seq_len : r.train.block_len, c->threads);
        dit_model_free(&init);
    }
    r.tr.cfg.causal = c->causal;
    sm_params smp = {1, c->sm_scale, c->sm_centre, c->sm_steepness, c->sm_k};
    sm_raw_from_params(&r.tr.sm, &smp);
    optim_config oc;
    optim_config_default(&oc);
    oc.warmup_steps = c->warmup, oc.schedule = c->schedule, oc.total_steps = c->steps;
    oc.min_lr_ratio = c->min_lr_ratio, oc.grad_clip = c->clip;
    if (optim_config_validate(&oc)) goto done;
    optim_group g[2] = {{r.tr.model.owned, r.tr.grads.owned, r.tr.nparams, c->lr, c->weight_decay},
                        {&r.tr.sm.raw_scale, r.tr.sm_grad, 3, c->sm_lr, 0.0f}};
    adamw_init(&r.opt, &oc, g, 2);
    r.perm = sm_malloc(sizeof(uint32_t) * r.train.nblocks);
    rng_seed(&r.rng, c->seed);
    shuffle_epoch(&r);
    if (c->resume && resume_from(&r) < 0) goto done;
    r.x0 = sm_malloc(sizeof(int32_t) * (size_t)r.tr.B * r.tr.T);
    r.xt = sm_malloc(sizeof(int32_t) * (size_t)r.tr.B * r.tr.T);
    r.t = sm_malloc(sizeof(float) * (size_t)r.tr.B);
    char *log_path = dist_rank() == 0 ? sm_path_join(c->out, "train_log.jsonl") : sm_strdup("/dev/null");
    r.log = fopen(log_path, "a");
    if (!r.log) SM_ERR("cannot open '%s'", log_path);
    free(log_path);
    if (!r.log) goto done;
    r.t_start = sm_time_sec();
    rc = train_loop(&r);
done:
    if (r.log) fclose(r.log);
    if (r.opt.m) adamw_free(&r.opt);
    if (r.tr.acts) trainer_free(&r.tr);
    shards_close(&r.train);
    shards_close(&r.val);
    if (r.tok) tok_free(r.tok);
    free(r.tok_dir);
    free(r.perm), free(r.x0), free(r.xt), free(r.t);
    return rc;
}
