/* corpus.c — input enumeration and document-reading helpers shared by data_prepare.c and
 * bpe_train.c. See corpus.h. */
#include "text/corpus.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <string.h>
#include <sys/stat.h>

#include "text/tokenizer_internal.h"
#include "base/util.h"

typedef struct {
    const char *glob;
    int path_glob;       /* the pattern has a '/': match the path below the input directory */
    int has_skip;        /* skip_dir exists: the walk does not enter it */
    dev_t skip_dev;
    ino_t skip_ino;
    corpus_file_fn fn;
    void *ctx;
    uint64_t taken;      /* files passed to fn */
} walk_ctx;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Recursively visits the regular files below dir (rel: the path below the input directory)
 * whose name (or relative path, when the pattern has a '/') matches the glob. */
static int walk_dir(walk_ctx *w, const char *dir, const char *rel) {
    DIR *d = opendir(dir);
    if (!d) return SM_ERR("cannot open directory '%s': %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files and directories */
        if (n == cap) names = sm_realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
        names[n++] = sm_strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char *path = sm_path_join(dir, names[i]);
        char *sub = *rel ? sm_path_join(rel, names[i]) : sm_strdup(names[i]);
        struct stat st;
        if (rc == 0 && lstat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                if (!(w->has_skip && st.st_dev == w->skip_dev && st.st_ino == w->skip_ino))
                    rc = walk_dir(w, path, sub);
            } else {
                /* a symbolic link to a file is taken; one to a directory is not followed */
                int regular = S_ISREG(st.st_mode) ||
                              (S_ISLNK(st.st_mode) && stat(path, &st) == 0 && S_ISREG(st.st_mode));
                if (regular && fnmatch(w->glob, w->path_glob ? sub : names[i], 0) == 0) {
                    w->taken++;
                    rc = w->fn(w->ctx, path);
                }
            }
        }
        free(path);
        free(sub);
        free(names[i]);
    }
    free(names);
    return rc;
}

int corpus_walk(const char *const *inputs, int ninputs, const char *glob, const char *skip_dir,
                corpus_file_fn fn, void *ctx) {
    walk_ctx w = {.glob = glob, .path_glob = strchr(glob, '/') != NULL, .fn = fn, .ctx = ctx};
    struct stat st;
    if (skip_dir && stat(skip_dir, &st) == 0 && S_ISDIR(st.st_mode))
        w.has_skip = 1, w.skip_dev = st.st_dev, w.skip_ino = st.st_ino;
    for (int i = 0; i < ninputs; i++) {
        if (stat(inputs[i], &st) != 0)
            return SM_ERR("cannot open input '%s': %s", inputs[i], strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            uint64_t before = w.taken;
            if (walk_dir(&w, inputs[i], "")) return -1;
            if (w.taken == before)
                return SM_ERR("input directory '%s' has no files matching '%s' (see --glob)",
                              inputs[i], glob);
        } else if (S_ISREG(st.st_mode)) {
            w.taken++;
            if (fn(ctx, inputs[i])) return -1;
        } else {
            return SM_ERR("input '%s' is neither a regular file nor a directory", inputs[i]);
        }
    }
    return 0;
}

int corpus_is_jsonl(const char *path) {
    size_t n = strlen(path), k = strlen(".jsonl");
    return n >= k && !strcmp(path + n - k, ".jsonl");
}

int corpus_is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

size_t corpus_check_text(const char *s, size_t n, int *is_nul) {
    size_t bad = tok_utf8_valid_prefix(s, n); /* NUL is valid UTF-8: look before it */
    const char *z = memchr(s, 0, bad);
    *is_nul = z != NULL;
    return z ? (size_t)(z - s) : bad;
}

int corpus_lines_open(corpus_lines *r, const char *path, size_t max_line) {
    memset(r, 0, sizeof *r);
    r->f = sm_fopen_regular(path);
    if (!r->f) return -1;
    r->path = path;
    r->max_line = max_line;
    r->cap = (size_t)1 << 20;
    r->buf = sm_malloc(r->cap);
    return 0;
}

int corpus_lines_next(corpus_lines *r, long lineno, char **line, size_t *len) {
    size_t scanned = r->start;
    for (;;) {
        char *nl = memchr(r->buf + scanned, '\n', r->end - scanned);
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            *nl = 0;
            r->start = (size_t)(nl - r->buf) + 1;
            r->consumed += *len + 1;
            return 1;
        }
        scanned = r->end;
        if (r->eof) {
            if (r->start == r->end) return 0;
            *line = r->buf + r->start;
            *len = r->end - r->start;
            r->buf[r->end] = 0; /* room kept by the reads below */
            r->start = r->end;
            r->consumed += *len;
            return 1;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            scanned -= r->start;
            r->start = 0;
        }
        if (r->end + 1 >= r->cap) {
            if (r->cap >= r->max_line)
                return SM_ERR("%s:%ld: line longer than %zu bytes", r->path, lineno, r->max_line);
            r->buf = sm_realloc(r->buf, r->cap *= 2);
        }
        size_t got = fread(r->buf + r->end, 1, r->cap - 1 - r->end, r->f);
        if (got == 0) {
            if (ferror(r->f)) return SM_ERR("cannot read '%s': %s", r->path, strerror(errno));
            r->eof = 1;
        }
        r->end += got;
    }
}

void corpus_lines_close(corpus_lines *r) {
    if (r->f) fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}
