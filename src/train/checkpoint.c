/* checkpoint.c — see checkpoint.h. */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "formats/manifest.h"
#include "formats/safetensors.h"
#include "models/model.h"
#include "text/tokenizer.h"
#include "train/data.h"

/* OUT/PREFIXckpt-NNNNNNNN */
static char *ckpt_path(const char *out, const char *prefix, long step) {
    char name[64];
    snprintf(name, sizeof name, "%sckpt-%08ld", prefix, step);
    return sm_path_join(out, name);
}

static int save_state(const train_config *c, const trainer *tr, const adamw *opt,
                      const train_progress *at, const char *dir) {
    size_t nm = opt->nm; /* --sm-only: the soft-masking scalars' 3 */
    char meta_vals[6][80];
    snprintf(meta_vals[0], 80, "%ld", at->step);
    snprintf(meta_vals[1], 80, "%ld", at->epoch);
    snprintf(meta_vals[2], 80, "%zu", at->pos);
    snprintf(meta_vals[3], 80, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             at->rng.s[0], at->rng.s[1], at->rng.s[2], at->rng.s[3]);
    snprintf(meta_vals[4], 80, "%" PRIu64, c->seed);
    snprintf(meta_vals[5], 80, "%ld", at->tokens);
    const char *meta[] = {"step", meta_vals[0], "epoch", meta_vals[1], "pos", meta_vals[2],
                          "rng", meta_vals[3], "seed", meta_vals[4], "tokens", meta_vals[5], NULL};
    float raw[3] = {tr->sm.raw_scale, tr->sm.raw_centre, tr->sm.raw_steepness};
    st_write_entry e[4] = {
        {"params", ST_F32, 1, {(int64_t)tr->nparams}, tr->model.owned},
        {"adam_m", ST_F32, 1, {(int64_t)nm}, opt->m},
        {"adam_v", ST_F32, 1, {(int64_t)nm}, opt->v},
        {"softmask_raw", ST_F32, 1, {3}, raw},
    };
    char *path = sm_path_join(dir, "train_state.safetensors");
    int rc = st_write(path, e, 4, meta);
    free(path);
    return rc;
}

static int newest_first(const void *a, const void *b) {
    const long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

/* Steps of the checkpoints in out (complete or not), newest first (a directory can hold any
 * number of entries: sorted in n log n). */
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
    if (*n) qsort(steps, (size_t)*n, sizeof *steps, newest_first);
    return steps;
}

/* Deletes a directory and its files, the COMPLETE marker first: whatever stops it half-way
 * leaves no marker on what remains. */
static void remove_dir(const char *dir) {
    char *marker = sm_path_join(dir, MANIFEST_FILE);
    unlink(marker);
    free(marker);
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

/* Deletes a checkpoint: first renamed to OUT/.old-ckpt-N, so that a crash half-way through
 * never leaves a ckpt-N (with its COMPLETE marker) that lacks files. */
static void delete_checkpoint(const char *out, long step) {
    char *p = ckpt_path(out, "", step), *old = ckpt_path(out, ".old-", step);
    remove_dir(old);
    if (rename(p, old) == 0) remove_dir(old);
    free(p), free(old);
}

/* Keeps the newest keep_last checkpoints and every milestone. */
static void prune_checkpoints(const train_config *c) {
    int n;
    long *steps = list_checkpoints(c->out, &n);
    for (int i = c->keep_last; i < n; i++)
        if (!(c->milestone_every > 0 && steps[i] % c->milestone_every == 0)) delete_checkpoint(c->out, steps[i]);
    free(steps);
}

int checkpoint_remove_stale(const char *out) {
    DIR *d = opendir(out);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, ".tmp-ckpt-", 10) && strncmp(n, ".old-ckpt-", 10) && !strstr(n, ".tmp.")) continue;
        char *p = sm_path_join(out, n);
        if (unlink(p) != 0) remove_dir(p);
        free(p);
        removed++;
    }
    closedir(d);
    return removed;
}

int checkpoint_remove_all(const char *out) {
    int n;
    long *steps = list_checkpoints(out, &n);
    for (int i = 0; i < n; i++) delete_checkpoint(out, steps[i]);
    free(steps);
    return n;
}

int checkpoint_save(const train_config *c, const trainer *tr, const adamw *opt,
                    const train_progress *at, const char *tok_dir) {
    char *tmp = ckpt_path(c->out, ".tmp-", at->step), *final = ckpt_path(c->out, "", at->step);
    int rc = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) rc = SM_ERR("cannot create '%s': %s", tmp, strerror(errno));
    if (!rc) rc = trainer_export(tr, tmp, tr->ema.owned != NULL, c->sm_prob > 0.0f);
    if (!rc && tok_dir) rc = tok_copy_dir(tok_dir, tmp, NULL, NULL);
    if (!rc) rc = save_state(c, tr, opt, at, tmp);
    if (!rc) rc = manifest_write(tmp); /* COMPLETE, listing every file's size and CRC-32 */
    if (!rc) {
        sm_fsync_dir(tmp);
        /* a checkpoint of the same step already there (a damaged one a resume skipped) is
           moved aside first: rename cannot replace a non-empty directory */
        char *old = ckpt_path(c->out, ".old-", at->step);
        remove_dir(old);
        int had_old = rename(final, old) == 0;
        if (rename(tmp, final) != 0) rc = SM_ERR("cannot rename '%s' to '%s': %s", tmp, final, strerror(errno));
        else sm_fsync_dir(c->out);
        if (had_old) remove_dir(old);
        free(old);
    }
    if (rc) {
        sm_wrap_error("checkpoint at step %ld not written (the previous ones are intact)", at->step);
        remove_dir(tmp);
    }
    free(tmp), free(final);
    if (!rc) prune_checkpoints(c);
    return rc;
}

/* A count as save_state writes it: decimal digits only (no sign, no space), at most LONG_MAX. */
static int parse_count(const char *s, long *out) {
    const size_t n = strlen(s);
    if (n == 0 || n > 19 || strspn(s, "0123456789") != n) return -1;
    const unsigned long long v = strtoull(s, NULL, 10);
    if (v > (unsigned long long)LONG_MAX) return -1;
    *out = (long)v;
    return 0;
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

/* Loads one checkpoint (trainer and optimizer already sized). */
static int load_checkpoint(const train_config *c, trainer *tr, adamw *opt, train_progress *at,
                           size_t nblocks, const char *dir) {
    char *marker = sm_path_join(dir, MANIFEST_FILE);
    int complete = sm_file_exists(marker);
    free(marker);
    if (!complete) return SM_ERR("'%s' has no COMPLETE marker", dir);
    model_dir md; /* model_dir_load checks every file against the marker's manifest */
    if (model_dir_load(&md, dir, 0)) return -1;
    int rc = 0;
    if (dit_param_numel(&md.net.cfg) != tr->nparams || md.net.cfg.hidden != tr->cfg.hidden ||
        md.net.cfg.vocab_size != tr->cfg.vocab_size)
        rc = SM_ERR("'%s' holds a model of another shape", dir);
    char *path = sm_path_join(dir, "train_state.safetensors");
    st_archive st = {0};
    if (!rc) rc = st_open_file(&st, path);
    free(path);
    const st_tensor *p = rc ? NULL : st_find(&st, "params"), *m = rc ? NULL : st_find(&st, "adam_m"),
                    *v = rc ? NULL : st_find(&st, "adam_v"), *s = rc ? NULL : st_find(&st, "softmask_raw");
    if (!rc && (!p || !m || !v || !s || p->numel != tr->nparams || m->numel != opt->nm ||
                v->numel != opt->nm || s->numel != 3))
        rc = SM_ERR("'%s': train_state.safetensors does not match the model", dir);
    const char *buf[5] = {0};
    const char *keys[5] = {"step", "epoch", "pos", "rng", "tokens"};
    for (int i = 0; i < 5 && !rc; i++)
        if (!(buf[i] = st_metadata(&st, keys[i])))
            rc = SM_ERR("'%s': train_state.safetensors lacks \"%s\"", dir, keys[i]);
    uint64_t rs[4];
    if (!rc && (strlen(buf[3]) != 64 || parse_u64_hex(buf[3], rs))) rc = SM_ERR("'%s': bad rng state", dir);
    long count[5] = {0}; /* step, epoch, pos, -, tokens */
    for (int i = 0; i < 5 && !rc; i++)
        if (i != 3 && parse_count(buf[i], &count[i]))
            rc = SM_ERR("'%s': train_state.safetensors has \"%s\" = \"%.40s\", not a count", dir,
                        keys[i], buf[i]);
    if (!rc && (size_t)count[2] > nblocks) rc = SM_ERR("'%s': data position beyond the data", dir);
    if (!rc) {
        float raw[3];
        st_tensor_to_f32(p, tr->model.owned);
        st_tensor_to_f32(m, opt->m);
        st_tensor_to_f32(v, opt->v);
        st_tensor_to_f32(s, raw);
        tr->sm.raw_scale = raw[0], tr->sm.raw_centre = raw[1], tr->sm.raw_steepness = raw[2];
        if (c->ema > 0.0f) trainer_set_ema(tr, &md.net); /* the model directory's weights */
        at->step = count[0];
        at->epoch = count[1];
        at->pos = (size_t)count[2];
        at->tokens = count[4];
        memcpy(at->rng.s, rs, sizeof rs);
        opt->step = at->step;
    }
    st_close(&st);
    model_dir_free(&md);
    return rc;
}

int checkpoint_resume(const train_config *c, trainer *tr, adamw *opt, train_progress *at,
                      size_t nblocks) {
    int n;
    long *steps = list_checkpoints(c->out, &n);
    int rc = n ? -1 : 1;
    if (!n) fprintf(stderr, "smdlm train: no checkpoint in %s; starting from step 0\n", c->out);
    for (int i = 0; i < n && rc; i++) {
        char *dir = ckpt_path(c->out, "", steps[i]);
        if (rc && load_checkpoint(c, tr, opt, at, nblocks, dir) == 0) {
            fprintf(stderr, "smdlm train: resuming from %s (step %ld)\n", dir, at->step);
            /* its tokenizer files are --init's (checked already) or a copy of the data's */
            rc = 0;
            if (!c->init && data_check_tokenizer(c->data, dir, c->allow_mismatch, "smdlm train")) {
                free(dir), free(steps);
                return -1;
            }
        } else {
            fprintf(stderr, "smdlm train: skipping %s: %s\n", dir, smdlm_last_error());
        }
        free(dir);
    }
    free(steps);
    if (rc < 0) SM_ERR("no checkpoint in %s could be loaded", c->out);
    return rc;
}
