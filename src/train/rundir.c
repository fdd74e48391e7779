/* rundir.c — see rundir.h. */
#include "train/rundir.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

#include "base/jsonutil.h"
#include "train/checkpoint.h"

#define RUN_FILE "run.json"
#define LOCK_FILE ".lock"

static int take_lock(run_dir *rd, const char *out) {
    char *path = sm_path_join(out, LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = SM_ERR("cannot create '%s': %s", path, strerror(errno));
        free(path);
        return rc;
    }
    free(path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "?";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = 0, pid[strcspn(pid, "\n")] = 0;
        close(fd);
        return SM_ERR("'%s' is in use by another smdlm train (pid %s): one process per run directory",
                      out, pid);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    ssize_t written = ftruncate(fd, 0) == 0 ? pwrite(fd, pid, (size_t)n, 0) : -1;
    (void)written; /* the pid only informs a refused second process */
    rd->lock_fd = fd;
    return 0;
}

/* The first entry of out besides the lock, or NULL when there is none (malloc'ed). */
static char *first_entry(const char *out) {
    DIR *d = opendir(out);
    char *name = NULL;
    struct dirent *e;
    while (d && !name && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, LOCK_FILE))
            name = sm_strdup(e->d_name);
    if (d) closedir(d);
    return name;
}

/* --force: the previous run's files go; anything else in the directory stays. */
static void remove_previous_run(const char *out) {
    int n = checkpoint_remove_all(out);
    const char *files[] = {"train_log.jsonl", RUN_FILE};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = sm_path_join(out, files[i]);
        unlink(p);
        free(p);
    }
    fprintf(stderr, "smdlm train: --force: removed the previous run in %s (%d checkpoints, its log and settings)\n",
            out, n);
}

int run_dir_open(run_dir *rd, const train_config *c) {
    rd->lock_fd = -1;
    if (sm_mkdir_p(c->out)) return -1;
    if (take_lock(rd, c->out)) return -1;
    int stale = checkpoint_remove_stale(c->out);
    if (stale && !c->quiet)
        fprintf(stderr, "smdlm train: removed %d unfinished temporary entries in %s\n", stale, c->out);
    if (c->resume) return 0;
    char *entry = first_entry(c->out);
    if (entry && !c->force) {
        SM_ERR("'%s' is not empty (it holds '%s'): --resume continues the run there, --force "
               "replaces it with a new one", c->out, entry);
        free(entry);
        run_dir_close(rd);
        return -1;
    }
    if (entry) remove_previous_run(c->out);
    free(entry);
    return 0;
}

void run_dir_close(run_dir *rd) {
    if (rd->lock_fd >= 0) close(rd->lock_fd); /* closing releases the flock */
    rd->lock_fd = -1;
}

static cJSON *read_run_file(const char *out, char **path) {
    *path = sm_path_join(out, RUN_FILE);
    char *text;
    if (sm_read_file(*path, 1 << 20, &text, NULL)) return NULL;
    cJSON *root = json_parse_object(text, *path);
    free(text);
    if (root && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "config"))) {
        SM_ERR("%s: no \"config\" object", *path);
        cJSON_Delete(root);
        root = NULL;
    }
    return root;
}

/* The Adam ε every parameter had before the soft-masking scalars got their own optimiser
 * settings (optim_config_default's, torch's). */
#define SM_EPS_BEFORE_OWN_SETTINGS 1e-8f

/* The recorded config object applied to c. A run.json written before sm_scale_lr and sm_eps
 * existed describes a run whose three soft-masking scalars trained in one group at sm_lr with
 * the backbone's ε: the missing keys get those values, not today's defaults, so that the run
 * continues with the optimiser it started with. *legacy (may be NULL) is set when one was
 * missing. */
static int apply_recorded_config(train_config *c, const cJSON *config, const char *path, int *legacy) {
    if (train_config_from_json(c, config, path)) return -1;
    const int no_scale_lr = !cJSON_GetObjectItemCaseSensitive(config, "sm_scale_lr");
    const int no_eps = !cJSON_GetObjectItemCaseSensitive(config, "sm_eps");
    if (no_scale_lr) c->sm_scale_lr = c->sm_lr;
    if (no_eps) c->sm_eps = SM_EPS_BEFORE_OWN_SETTINGS;
    if (legacy) *legacy = no_scale_lr || no_eps;
    return 0;
}

int run_dir_load_settings(train_config *c, const char *out) {
    char *path = sm_path_join(out, RUN_FILE);
    int exists = sm_file_exists(path);
    free(path);
    if (!exists) return 1;
    cJSON *root = read_run_file(out, &path);
    int legacy = 0;
    int rc = root ? apply_recorded_config(c, cJSON_GetObjectItemCaseSensitive(root, "config"), path, &legacy) : -1;
    if (rc == 0 && legacy)
        fprintf(stderr, "smdlm train: %s predates the soft-masking optimiser settings: the run continues with "
                        "the optimiser it started with, sm_scale_lr %g (its sm_lr) and sm_eps %g\n",
                path, (double)c->sm_scale_lr, (double)c->sm_eps);
    cJSON_Delete(root);
    free(path);
    return rc;
}

/* The data directory's identity: CRC-32 and size of its meta.json (which lists every shard
 * with its block count, the tokenizer and the inputs). */
static char *data_fingerprint(const char *data) {
    char *path = sm_path_join(data, "meta.json"), *text, fp[64];
    size_t n;
    int rc = sm_read_file(path, 1 << 26, &text, &n);
    free(path);
    if (rc) return NULL;
    snprintf(fp, sizeof fp, "crc32:%08lx:%zu", crc32(0L, (const Bytef *)text, (uInt)n), n);
    free(text);
    return sm_strdup(fp);
}

static const char *absolute(const char *path, char *buf) {
    return path && realpath(path, buf) ? buf : path;
}

/* A resumption against the recorded run: 0 (*changes lists the allowed differences) or −1. */
static int compare_with_record(const train_config *now, const char *fingerprint, char **changes) {
    char *path;
    cJSON *root = read_run_file(now->out, &path);
    if (!root) {
        free(path);
        return -1;
    }
    train_config rec;
    train_config_default(&rec);
    int rc = apply_recorded_config(&rec, cJSON_GetObjectItemCaseSensitive(root, "config"), path, NULL);
    sm_buf report = {0};
    int changed = 0, refused = rc ? 0 : train_config_diff(&rec, now, &report, &changed);
    const char *rec_fp = json_get_string(root, "data_fingerprint");
    if (!rc && rec_fp && strcmp(rec_fp, fingerprint)) {
        sm_buf_printf(&report, "  data_fingerprint: %s → %s   (other data: cannot change in a run)\n", rec_fp,
                      fingerprint);
        refused++, changed++;
    }
    if (!rc && refused)
        rc = SM_ERR("resuming %s with settings it did not start with (%d refused):\n%s"
                    "(the run's settings are in %s; --resume needs only --out)",
                    now->out, refused, report.s, path);
    else if (!rc && changed)
        *changes = sm_strdup(report.s);
    free(report.s);
    cJSON_Delete(root);
    free(path);
    return rc;
}

int run_dir_record(const train_config *c, char **changes) {
    *changes = NULL;
    char data_abs[PATH_MAX], init_abs[PATH_MAX];
    train_config rec = *c; /* paths made absolute: the run may resume from another directory */
    rec.data = absolute(c->data, data_abs);
    rec.init = absolute(c->init, init_abs);
    char *fp = data_fingerprint(c->data);
    if (!fp) return -1;
    char *path = sm_path_join(c->out, RUN_FILE);
    int rc = 0;
    if (c->resume && sm_file_exists(path)) rc = compare_with_record(&rec, fp, changes);
    else if (c->resume)
        fprintf(stderr, "smdlm train: %s has no %s (a run of an older smdlm): the settings are the "
                        "command line's; recording them\n", c->out, RUN_FILE);
    if (!rc) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "format", "smdlm-run");
        cJSON_AddStringToObject(root, "code_version", c->code_version ? c->code_version : "unknown");
        cJSON_AddStringToObject(root, "data_fingerprint", fp);
        cJSON_AddItemToObject(root, "config", train_config_to_json(&rec));
        char *text = cJSON_Print(root);
        sm_buf b = {0};
        sm_buf_printf(&b, "%s\n", text);
        rc = sm_write_file_atomic(path, b.s, b.len);
        free(text), free(b.s);
        cJSON_Delete(root);
    }
    free(path), free(fp);
    return rc;
}

int run_dir_truncate_log(const char *out, long step) {
    char *path = sm_path_join(out, "train_log.jsonl"), *text = NULL;
    size_t len = 0;
    int rc = 0;
    if (sm_file_exists(path) && (rc = sm_read_file(path, (size_t)1 << 30, &text, &len)) == 0) {
        sm_buf kept = {0};
        size_t dropped = 0;
        for (char *line = text, *end; line < text + len; line = end + 1) {
            end = memchr(line, '\n', (size_t)(text + len - line));
            if (!end) end = text + len;
            cJSON *o = cJSON_ParseWithLength(line, (size_t)(end - line));
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
            if (cJSON_IsObject(o) && !(cJSON_IsNumber(s) && s->valuedouble > (double)step)) {
                sm_buf_add(&kept, line, (size_t)(end - line));
                sm_buf_add(&kept, "\n", 1);
            } else {
                dropped++;
            }
            cJSON_Delete(o);
        }
        if (dropped) rc = sm_write_file_atomic(path, kept.s ? kept.s : "", kept.len);
        free(kept.s);
    }
    free(text);
    free(path);
    return rc;
}
