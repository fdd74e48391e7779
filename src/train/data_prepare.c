/* data_prepare.c — text files, directories and JSONL → token shards (see data_prepare.h).
 *
 * Layout: input list (corpus.h) · validation split · shard writers · batches of
 * documents (read in order, encoded in parallel, written in order) · meta.json · driver.
 */
#include "train/data_prepare.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "text/corpus.h"
#include "train/data.h"
#include "base/jsonutil.h"
#include "base/rng.h"
#include "text/tokenizer.h"
#include "base/progress.h"
#include "base/util.h"

#define BATCH_BYTES ((size_t)16 << 20) /* text per parallel batch */
#define BATCH_DOCS 65536
#define MAX_WARNINGS 20

void data_prepare_defaults(data_prepare_opts *o) {
    memset(o, 0, sizeof *o);
    o->block_len = 1024;
    o->val_fraction = 0.005;
    o->val_docs = -1;
    o->jsonl_field = "text";
    o->glob = "*";
    o->shard_tokens = DATA_DEFAULT_SHARD_TOKENS;
}

/* ---------------------------------------------------------------------------------------
 * Input list */

typedef struct {
    char *path;
    int jsonl;
} in_file;

typedef struct {
    in_file *v;
    int n, cap;
} file_list;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int fl_add(void *ctx, const char *path) {
    file_list *fl = ctx;
    if (fl->n == fl->cap) fl->v = sm_realloc(fl->v, (size_t)(fl->cap = fl->cap ? 2 * fl->cap : 64) * sizeof *fl->v);
    fl->v[fl->n].path = sm_strdup(path);
    fl->v[fl->n].jsonl = corpus_is_jsonl(path);
    fl->n++;
    return 0;
}

static void fl_free(file_list *fl) {
    for (int i = 0; i < fl->n; i++) free(fl->v[i].path);
    free(fl->v);
    memset(fl, 0, sizeof *fl);
}

/* The input files in order (corpus.h); the output directory inside an input one is skipped:
 * its shards are not input. */
static int collect_inputs(const data_prepare_opts *o, const char *const *inputs, int ninputs,
                          file_list *fl) {
    return corpus_walk(inputs, ninputs, o->glob, o->out_dir, fl_add, fl);
}

static char *fmt_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_msg(const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return sm_strdup(tmp);
}

/* ---------------------------------------------------------------------------------------
 * Reading: whole files, and JSONL lines with a bounded buffer */

/* One JSONL line: 1 with *text (the field's string; *obj to free) for a document, 0 for a
 * line without one (blank, or an empty string), -1 for a bad line with *err (malloc'ed). */
static int parse_jsonl_line(char *line, size_t len, const char *field, const char *what,
                            cJSON **obj, const char **text, char **err) {
    *obj = NULL;
    *text = NULL;
    *err = NULL;
    if (corpus_is_blank(line, len)) return 0;
    size_t nul = strlen(line);
    if (nul != len) {
        *err = fmt_msg("%s: a NUL byte (binary data?) at byte %zu of the line", what, nul);
        return -1;
    }
    if (!(*obj = json_parse_object(line, what))) {
        *err = sm_strdup(smdlm_last_error());
        return -1;
    }
    if (!(*text = json_get_string(*obj, field))) {
        *err = fmt_msg("%s: no string field \"%s\"", what, field);
        cJSON_Delete(*obj);
        *obj = NULL;
        return -1;
    }
    return **text ? 1 : 0;
}

/* Documents of a JSONL file (lines with a non-empty text field), for --val-docs. */
static int count_jsonl_docs(const char *path, const char *field, uint64_t *count) {
    corpus_lines r;
    if (corpus_lines_open(&r, path, DATA_MAX_DOC_BYTES)) return -1;
    char *line, *err;
    size_t len;
    int rc;
    long lineno = 0;
    while ((rc = corpus_lines_next(&r, ++lineno, &line, &len)) == 1) {
        cJSON *obj;
        const char *text;
        if (parse_jsonl_line(line, len, field, path, &obj, &text, &err) == 1) (*count)++;
        cJSON_Delete(obj);
        free(err);
    }
    corpus_lines_close(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Validation split */

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* k distinct indices in [0, n), drawn with the seed (Floyd's algorithm), sorted. */
static uint64_t *sample_indices(uint64_t n, uint64_t k, uint64_t seed) {
    uint64_t *out = sm_malloc((k ? k : 1) * sizeof *out);
    size_t hcap = 16;
    while (hcap < 2 * k) hcap *= 2;
    uint64_t *set = sm_malloc(hcap * sizeof *set); /* open addressing; value + 1, 0 = empty */
    memset(set, 0, hcap * sizeof *set);
    sm_rng rng;
    rng_seed(&rng, seed ^ 0x76616c2d646f6373ull);
    for (uint64_t j = n - k, m = 0; j < n; j++, m++) {
        uint64_t t = (uint64_t)(rng_uniform(&rng) * (double)(j + 1));
        if (t > j) t = j;
        for (int pass = 0; pass < 2; pass++) {
            size_t h = (size_t)mix64(t) & (hcap - 1);
            while (set[h] && set[h] != t + 1) h = (h + 1) & (hcap - 1);
            if (!set[h]) {
                set[h] = t + 1;
                out[m] = t;
                break;
            }
            t = j; /* t was taken already: take j (never taken before) */
        }
    }
    free(set);
    qsort(out, (size_t)k, sizeof *out, cmp_u64);
    return out;
}

/* ---------------------------------------------------------------------------------------
 * Shard writers: one per split; blocks [BOS] piece [EOS] */

typedef struct {
    char *name;
    uint64_t blocks;
} shard_rec;

typedef struct {
    const char *split; /* "train" or "val" */
    const char *dir;
    int L, width;
    int32_t bos, eos;
    uint64_t max_blocks; /* per shard */
    int32_t *piece;      /* L − 2 tokens */
    size_t fill;
    uint8_t *block;      /* L·width bytes */
    FILE *f;
    char *tmp, *path;
    uint64_t shard_blocks;
    shard_rec *shards;
    int nshards;
    uint64_t blocks, documents, document_tokens;
} split_writer;

static void sw_init(split_writer *w, const char *split, const char *dir, int L, int width,
                    int32_t bos, int32_t eos, uint64_t max_blocks) {
    memset(w, 0, sizeof *w);
    w->split = split;
    w->dir = dir;
    w->L = L;
    w->width = width;
    w->bos = bos;
    w->eos = eos;
    w->max_blocks = max_blocks;
    w->piece = sm_malloc((size_t)(L - 2) * sizeof *w->piece);
    w->block = sm_malloc((size_t)L * (size_t)width);
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static char *shard_name(const split_writer *w) {
    char name[64];
    if (!strcmp(w->split, "val"))
        snprintf(name, sizeof name, "val.bin");
    else
        snprintf(name, sizeof name, "%s_%05d.bin", w->split, w->nshards);
    return sm_strdup(name);
}

static int sw_open_shard(split_writer *w) {
    char *name = shard_name(w);
    w->path = sm_path_join(w->dir, name);
    free(name);
    w->f = sm_atomic_open(w->path, &w->tmp);
    if (!w->f) {
        free(w->path);
        w->path = NULL;
        return -1;
    }
    static const uint8_t zero[SHARD_HEADER_BYTES];
    if (fwrite(zero, 1, sizeof zero, w->f) != sizeof zero)
        return SM_ERR("cannot write '%s': %s", w->tmp, strerror(errno));
    w->shard_blocks = 0;
    return 0;
}

/* Writes the header, fsyncs and renames the current shard. */
static int sw_close_shard(split_writer *w) {
    uint8_t h[SHARD_HEADER_BYTES];
    memcpy(h, SHARD_MAGIC, 8);
    put_u32(h + 8, SHARD_VERSION);
    put_u32(h + 12, (uint32_t)w->width);
    uint64_t ntok = w->shard_blocks * (uint64_t)w->L;
    put_u32(h + 16, (uint32_t)ntok);
    put_u32(h + 20, (uint32_t)(ntok >> 32));
    put_u32(h + 24, (uint32_t)w->L);
    put_u32(h + 28, 0);
    int ok = fflush(w->f) == 0 && fseek(w->f, 0, SEEK_SET) == 0 && fwrite(h, 1, sizeof h, w->f) == sizeof h;
    if (!ok) SM_ERR("cannot write '%s': %s", w->tmp, strerror(errno));
    int rc = sm_atomic_commit(w->f, w->tmp, w->path, ok);
    w->f = NULL;
    w->tmp = NULL;
    if (rc == 0) {
        w->shards = sm_realloc(w->shards, (size_t)(w->nshards + 1) * sizeof *w->shards);
        const char *slash = strrchr(w->path, '/');
        w->shards[w->nshards].name = sm_strdup(slash ? slash + 1 : w->path);
        w->shards[w->nshards].blocks = w->shard_blocks;
        w->nshards++;
    }
    free(w->path);
    w->path = NULL;
    return rc;
}

static int sw_emit_block(split_writer *w) {
    if (!w->f && sw_open_shard(w)) return -1;
    size_t L = (size_t)w->L;
    if (w->width == 2) {
        uint8_t *p = w->block;
        p[0] = (uint8_t)w->bos, p[1] = (uint8_t)(w->bos >> 8);
        for (size_t j = 0; j < L - 2; j++)
            p[2 * (j + 1)] = (uint8_t)w->piece[j], p[2 * (j + 1) + 1] = (uint8_t)(w->piece[j] >> 8);
        p[2 * (L - 1)] = (uint8_t)w->eos, p[2 * (L - 1) + 1] = (uint8_t)(w->eos >> 8);
    } else {
        put_u32(w->block, (uint32_t)w->bos);
        for (size_t j = 0; j < L - 2; j++) put_u32(w->block + 4 * (j + 1), (uint32_t)w->piece[j]);
        put_u32(w->block + 4 * (L - 1), (uint32_t)w->eos);
    }
    if (fwrite(w->block, (size_t)w->width, L, w->f) != L)
        return SM_ERR("cannot write '%s': %s", w->tmp, strerror(errno));
    w->fill = 0;
    w->blocks++;
    if (++w->shard_blocks == w->max_blocks) return sw_close_shard(w);
    return 0;
}

static int sw_push(split_writer *w, const int32_t *ids, size_t n) {
    size_t cap = (size_t)w->L - 2;
    while (n) {
        size_t take = cap - w->fill < n ? cap - w->fill : n;
        memcpy(w->piece + w->fill, ids, take * sizeof *ids);
        w->fill += take;
        ids += take;
        n -= take;
        if (w->fill == cap && sw_emit_block(w)) return -1;
    }
    return 0;
}

/* Ends the split: the partial block is dropped; a split without blocks (val only) still gets
 * a header-only file so that readers find it. */
static int sw_finish(split_writer *w) {
    if (!w->f && w->nshards == 0 && strcmp(w->split, "val") == 0 && sw_open_shard(w)) return -1;
    return w->f ? sw_close_shard(w) : 0;
}

/* After a failure: removes the temporary file and the shards this run completed. */
static void sw_abort(split_writer *w) {
    if (w->f) sm_atomic_commit(w->f, w->tmp, w->path, 0);
    w->f = NULL;
    free(w->path);
    w->path = NULL;
    for (int i = 0; i < w->nshards; i++) {
        char *p = sm_path_join(w->dir, w->shards[i].name);
        unlink(p);
        free(p);
    }
}

static void sw_free(split_writer *w) {
    for (int i = 0; i < w->nshards; i++) free(w->shards[i].name);
    free(w->shards);
    free(w->piece);
    free(w->block);
}

/* ---------------------------------------------------------------------------------------
 * Batches: documents are read in order by the calling thread, encoded in parallel, then
 * appended to their split in order. */

typedef struct {
    size_t off, len; /* text in the arena */
    int file;
    long line;       /* 0: the whole file is the document */
    int split;
    int32_t *ids;
    size_t n;
    char *err;       /* a bad document: the message */
} doc;

typedef struct {
    char *arena;
    size_t used, cap;
    doc *docs;
    size_t n, cap_docs;
} batch;

static doc *batch_add(batch *b, size_t len) {
    if (b->n == b->cap_docs)
        b->docs = sm_realloc(b->docs, (b->cap_docs = b->cap_docs ? 2 * b->cap_docs : 1024) * sizeof *b->docs);
    if (b->used + len + 1 > b->cap) {
        while (b->used + len + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : BATCH_BYTES + 4096;
        b->arena = sm_realloc(b->arena, b->cap);
    }
    doc *d = &b->docs[b->n++];
    memset(d, 0, sizeof *d);
    d->off = b->used;
    d->len = len;
    b->used += len;
    return d;
}

static void encode_doc(const smdlm_tokenizer *tok, int32_t mask_id, const file_list *fl,
                       const char *field, const char *text, doc *d) {
    if (d->err) return;
    const char *path = fl->v[d->file].path;
    char where[64] = "";
    if (d->line) snprintf(where, sizeof where, ":%ld", d->line);
    int nul;
    size_t bad = corpus_check_text(text, d->len, &nul);
    if (bad != d->len) {
        const char *what = nul ? "a NUL byte (binary data?)" : "invalid UTF-8";
        if (d->line)
            d->err = fmt_msg("%s%s: %s at byte %zu of the \"%s\" field", path, where, what, bad, field);
        else if (nul)
            d->err = fmt_msg("%s: %s at byte offset %zu", path, what, bad);
        else
            d->err = fmt_msg("%s: %s at byte offset %zu (byte 0x%02x)", path, what, bad,
                             (uint8_t)text[bad]);
        return;
    }
    if (tok_encode(tok, text, d->len, &d->ids, &d->n) != 0) {
        d->err = fmt_msg("%s%s: %s", path, where, smdlm_last_error());
        return;
    }
    /* the text "<|mask|>" encodes to the mask id, which clean training data must not hold */
    for (size_t i = 0; mask_id >= 0 && i < d->n; i++)
        if (d->ids[i] == mask_id) {
            d->err = fmt_msg("%s%s: the text holds the mask token <|mask|> (id %d, token %zu)",
                             path, where, mask_id, i);
            free(d->ids);
            d->ids = NULL;
            d->n = 0;
            return;
        }
}

/* ---------------------------------------------------------------------------------------
 * The run */

typedef struct {
    const data_prepare_opts *o;
    const smdlm_tokenizer *tok;
    int32_t mask_id; /* <|mask|>, or -1 */
    char tok_fingerprint[TOK_FINGERPRINT_SIZE];
    file_list files;
    split_writer w[2];
    batch b;
    uint64_t next_index;   /* documents seen (non-empty texts, bad ones included), in order */
    uint64_t *val_idx;     /* --val-docs: sorted indices */
    uint64_t nval_idx, val_cursor;
    data_prepare_stats *st;
    int warnings;
    double t0;
    progress prog;
} run_ctx;

static int pick_split(run_ctx *c, uint64_t index) {
    if (c->val_idx) {
        while (c->val_cursor < c->nval_idx && c->val_idx[c->val_cursor] < index) c->val_cursor++;
        return c->val_cursor < c->nval_idx && c->val_idx[c->val_cursor] == index;
    }
    if (c->o->val_fraction <= 0) return 0;
    double u = (double)(mix64(c->o->seed ^ mix64(index)) >> 11) * 0x1.0p-53;
    return u < c->o->val_fraction;
}

static void report_progress(run_ctx *c) {
    double mb = (double)c->st->bytes_read / 1e6, dt = sm_time_sec() - c->t0;
    progress_report(&c->prog, 0, 0, "%.1f MB read, %.1f MB/s, %llu documents, %llu tokens", mb,
                    dt > 0 ? mb / dt : 0.0, (unsigned long long)(c->w[0].documents + c->w[1].documents),
                    (unsigned long long)(c->w[0].document_tokens + c->w[1].document_tokens));
}

static int flush_batch(run_ctx *c) {
    batch *b = &c->b;
    long n = (long)b->n;
    const char *field = c->o->jsonl_field;
    if (c->o->threads > 0) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->o->threads)
        for (long i = 0; i < n; i++)
            encode_doc(c->tok, c->mask_id, &c->files, field, b->arena + b->docs[i].off, &b->docs[i]);
    } else {
#pragma omp parallel for schedule(dynamic, 1)
        for (long i = 0; i < n; i++)
            encode_doc(c->tok, c->mask_id, &c->files, field, b->arena + b->docs[i].off, &b->docs[i]);
    }
    int rc = 0;
    for (long i = 0; i < n; i++) {
        doc *d = &b->docs[i];
        if (rc == 0 && d->err) {
            if (c->o->skip_bad) {
                c->st->skipped++;
                if (!c->o->quiet && c->warnings++ < MAX_WARNINGS) {
                    progress_clear(&c->prog);
                    fprintf(stderr, "smdlm data prepare: warning: skipped %s\n", d->err);
                }
                if (!c->o->quiet && c->warnings == MAX_WARNINGS + 1)
                    fprintf(stderr, "smdlm data prepare: warning: further skipped documents are "
                                    "only counted\n");
            } else {
                rc = SM_ERR("%s (--skip-bad leaves such documents out)", d->err);
            }
        } else if (rc == 0) {
            split_writer *w = &c->w[d->split];
            if (sw_push(w, d->ids, d->n) || sw_push(w, &w->eos, 1)) rc = -1;
            w->documents++;
            w->document_tokens += d->n + 1;
        }
        free(d->ids);
        free(d->err);
    }
    b->n = 0;
    b->used = 0;
    report_progress(c);
    return rc;
}

static int maybe_flush(run_ctx *c, int stop) {
    if (stop || c->b.used >= BATCH_BYTES || c->b.n >= BATCH_DOCS) return flush_batch(c);
    return 0;
}

static int read_text_file(run_ctx *c, int fi) {
    const char *path = c->files.v[fi].path;
    struct stat st;
    int fd = sm_open_regular(path, &st);
    if (fd < 0) return -1;
    size_t size = (size_t)st.st_size;
    if (size > DATA_MAX_DOC_BYTES) {
        close(fd);
        return SM_ERR("'%s' is too large to be one document (%zu bytes, limit %zu): split it, or "
                      "make it a .jsonl of documents", path, size, DATA_MAX_DOC_BYTES);
    }
    if (size == 0) {
        close(fd);
        c->st->empty++;
        return 0;
    }
    if (c->b.used > 0 && c->b.used + size > BATCH_BYTES && flush_batch(c)) {
        close(fd);
        return -1;
    }
    doc *d = batch_add(&c->b, size);
    d->file = fi;
    d->split = pick_split(c, c->next_index++);
    char *dst = c->b.arena + d->off;
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, dst + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            close(fd);
            c->b.n--;
            c->b.used = d->off;
            return SM_ERR("cannot read '%s': %s", path, r < 0 ? strerror(errno) : "file shrank");
        }
        got += (size_t)r;
    }
    close(fd);
    c->st->bytes_read += size;
    return maybe_flush(c, 0);
}

static int read_jsonl_file(run_ctx *c, int fi) {
    const char *path = c->files.v[fi].path;
    corpus_lines r;
    if (corpus_lines_open(&r, path, DATA_MAX_DOC_BYTES)) return -1;
    char *line, what[1100];
    size_t len;
    long lineno = 0;
    int rc;
    while ((rc = corpus_lines_next(&r, lineno + 1, &line, &len)) == 1) {
        lineno++;
        c->st->bytes_read += len + 1;
        snprintf(what, sizeof what, "%s:%ld", path, lineno);
        cJSON *obj;
        const char *text;
        char *err;
        int kind = parse_jsonl_line(line, len, c->o->jsonl_field, what, &obj, &text, &err);
        if (kind == 0) {
            if (obj) c->st->empty++; /* an empty string; blank lines are not counted */
            cJSON_Delete(obj);
            continue;
        }
        size_t tlen = kind == 1 ? strlen(text) : 0;
        doc *d = batch_add(&c->b, tlen);
        d->file = fi;
        d->line = lineno;
        d->err = err;
        if (kind == 1) {
            d->split = pick_split(c, c->next_index++);
            memcpy(c->b.arena + d->off, text, tlen);
        }
        cJSON_Delete(obj);
        /* a bad line ends the run unless --skip-bad: report it without reading further */
        if ((rc = maybe_flush(c, err && !c->o->skip_bad)) != 0) break;
    }
    corpus_lines_close(&r);
    return rc < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------
 * Output directory, tokenizer copy, meta.json */

static int is_shard_name(const char *name) {
    if (!strcmp(name, "val.bin")) return 1;
    if (strncmp(name, "train_", 6) != 0 || !ends_with(name, ".bin")) return 0;
    for (const char *s = name + 6; *s != '.'; s++)
        if (*s < '0' || *s > '9') return 0;
    return strlen(name) > 10;
}

/* A temporary file of an atomic write (NAME.tmp.PID, sm_atomic_open) whose writer is gone:
 * what a killed `data prepare` leaves behind. */
static int is_stale_temp(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t || !t[5] || t[5 + strspn(t + 5, "0123456789")]) return 0;
    long pid = strtol(t + 5, NULL, 10);
    return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* An earlier data set in out: an error, or with --force removed (meta.json first). Stale
 * temporary files are removed in any case. */
static int clear_out_dir(const char *out, int force) {
    char *meta = sm_path_join(out, "meta.json");
    int has_meta = sm_file_exists(meta), rc = 0;
    if (has_meta && !force) rc = SM_ERR("'%s' already holds a data set (use --force to replace it)", out);
    if (rc == 0 && has_meta && unlink(meta) != 0)
        rc = SM_ERR("cannot remove '%s': %s", meta, strerror(errno));
    free(meta);
    DIR *d = rc ? NULL : opendir(out);
    struct dirent *e;
    while (d && rc == 0 && (e = readdir(d))) {
        int stale = is_stale_temp(e->d_name);
        if (!stale && !is_shard_name(e->d_name)) continue;
        char *p = sm_path_join(out, e->d_name);
        if (stale)
            unlink(p);
        else if (!force)
            rc = SM_ERR("'%s' already holds token shards such as '%s' (use --force to replace "
                        "them)", out, e->d_name);
        else if (unlink(p) != 0)
            rc = SM_ERR("cannot remove '%s': %s", p, strerror(errno));
        free(p);
    }
    if (d) closedir(d);
    return rc;
}

static int copy_tokenizer(const char *src, const char *out, cJSON *list) {
    char *dst = sm_path_join(out, "tokenizer");
    const char *copied[TOK_DIR_NFILES];
    int n = 0, rc = sm_mkdir_p(dst) || tok_copy_dir(src, dst, copied, &n) ? -1 : 0;
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(list, cJSON_CreateString(copied[i]));
    free(dst);
    return rc;
}

static void add_u64(cJSON *o, const char *key, uint64_t v) {
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    cJSON_AddItemToObject(o, key, cJSON_CreateRaw(num));
}

static cJSON *split_json(const split_writer *w) {
    cJSON *s = cJSON_CreateObject(), *files = cJSON_AddArrayToObject(s, "files");
    for (int i = 0; i < w->nshards; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", w->shards[i].name);
        add_u64(f, "blocks", w->shards[i].blocks);
        cJSON_AddItemToArray(files, f);
    }
    add_u64(s, "blocks", w->blocks);
    add_u64(s, "tokens", w->blocks * (uint64_t)w->L);
    add_u64(s, "documents", w->documents);
    add_u64(s, "document_tokens", w->document_tokens);
    add_u64(s, "dropped_tokens", w->fill);
    return s;
}

static int write_meta(run_ctx *c, int vocab, int width, int32_t eos, cJSON *tok_files,
                      const char *const *inputs, int ninputs) {
    const data_prepare_opts *o = c->o;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "format", "smdlm-tokens");
    cJSON_AddNumberToObject(m, "version", SHARD_VERSION);
    cJSON_AddNumberToObject(m, "vocab_size", vocab);
    cJSON_AddNumberToObject(m, "block_len", o->block_len);
    cJSON_AddNumberToObject(m, "token_bytes", width);
    cJSON_AddNumberToObject(m, "bos_id", eos);
    cJSON_AddNumberToObject(m, "eos_id", eos);
    if (c->mask_id >= 0)
        cJSON_AddNumberToObject(m, "mask_id", c->mask_id);
    else
        cJSON_AddNullToObject(m, "mask_id");
    cJSON_AddStringToObject(m, "tokenizer", "tokenizer");
    char *abs = realpath(o->tokenizer_dir, NULL);
    cJSON_AddStringToObject(m, "tokenizer_source", abs ? abs : o->tokenizer_dir);
    free(abs);
    cJSON_AddItemToObject(m, "tokenizer_files", tok_files);
    cJSON_AddStringToObject(m, "tokenizer_fingerprint", c->tok_fingerprint);
    add_u64(m, "seed", o->seed);
    if (o->val_docs >= 0)
        add_u64(m, "val_docs", (uint64_t)o->val_docs);
    else
        cJSON_AddNumberToObject(m, "val_fraction", o->val_fraction);
    cJSON_AddStringToObject(m, "jsonl_field", o->jsonl_field);
    cJSON_AddStringToObject(m, "glob", o->glob);
    cJSON *in = cJSON_AddArrayToObject(m, "inputs");
    for (int i = 0; i < ninputs; i++) cJSON_AddItemToArray(in, cJSON_CreateString(inputs[i]));
    cJSON_AddItemToObject(m, "train", split_json(&c->w[0]));
    cJSON_AddItemToObject(m, "val", split_json(&c->w[1]));
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    SM_ASSERT(text);
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: written with its length */
    char *path = sm_path_join(o->out_dir, "meta.json");
    int rc = sm_write_file_atomic(path, text, len + 1);
    free(path);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Driver */

static int check_opts(const data_prepare_opts *o, int ninputs) {
    if (!o->tokenizer_dir || !*o->tokenizer_dir) return SM_ERR("a tokenizer directory is required");
    if (!o->out_dir || !*o->out_dir) return SM_ERR("an output directory is required");
    if (ninputs < 1) return SM_ERR("no inputs given");
    if (o->block_len < DATA_MIN_BLOCK_LEN || o->block_len > DATA_MAX_BLOCK_LEN)
        return SM_ERR("block length %d out of range [%d, %d]", o->block_len, DATA_MIN_BLOCK_LEN,
                      DATA_MAX_BLOCK_LEN);
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return SM_ERR("validation fraction %g out of range [0, 1)", o->val_fraction);
    if (o->val_docs < -1) return SM_ERR("validation documents %lld < 0", (long long)o->val_docs);
    if (o->shard_tokens < (uint64_t)o->block_len)
        return SM_ERR("shard size %llu tokens is smaller than one block (%d tokens)",
                      (unsigned long long)o->shard_tokens, o->block_len);
    if (!o->jsonl_field || !*o->jsonl_field) return SM_ERR("the JSONL field name is empty");
    if (!o->glob || !*o->glob) return SM_ERR("the glob pattern is empty");
    return 0;
}

static int run_inputs(run_ctx *c) {
    for (int i = 0; i < c->files.n; i++) {
        int rc = c->files.v[i].jsonl ? read_jsonl_file(c, i) : read_text_file(c, i);
        if (rc) return -1;
        report_progress(c);
    }
    return flush_batch(c);
}

static int setup_val_docs(run_ctx *c) {
    if (c->o->val_docs < 0) return 0;
    uint64_t total = 0;
    for (int i = 0; i < c->files.n; i++) {
        struct stat st;
        if (!c->files.v[i].jsonl)
            total += stat(c->files.v[i].path, &st) == 0 && st.st_size > 0;
        else if (count_jsonl_docs(c->files.v[i].path, c->o->jsonl_field, &total))
            return -1;
    }
    uint64_t k = (uint64_t)c->o->val_docs;
    if (k >= total)
        return SM_ERR("--val-docs %llu leaves no training documents: the inputs hold %llu",
                      (unsigned long long)k, (unsigned long long)total);
    c->val_idx = sample_indices(total, k, c->o->seed);
    c->nval_idx = k;
    return 0;
}

int data_prepare(const data_prepare_opts *o, const char *const *inputs, int ninputs,
                 data_prepare_stats *st) {
    memset(st, 0, sizeof *st);
    if (check_opts(o, ninputs)) return -1;
    run_ctx c = {.o = o, .st = st};
    c.t0 = sm_time_sec();
    progress_start(&c.prog, "smdlm data prepare", !o->progress);
    smdlm_tokenizer *tok = NULL;
    cJSON *tok_files = NULL;
    int rc = -1, started = 0;
    if (tok_load_dir(&tok, o->tokenizer_dir)) {
        sm_wrap_error("loading the tokenizer from '%s'", o->tokenizer_dir);
        goto done;
    }
    c.tok = tok;
    int32_t eos = tok_str_to_id(tok, "<|endoftext|>");
    if (eos < 0) {
        SM_ERR("the tokenizer in '%s' has no <|endoftext|> token (needed as BOS and EOS)",
               o->tokenizer_dir);
        goto done;
    }
    c.mask_id = tok_str_to_id(tok, "<|mask|>");
    if (tok_fingerprint_dir(o->tokenizer_dir, c.tok_fingerprint) != 0) goto done; /* loaded: 0 or −1 */
    int vocab = tok_vocab_size(tok), width = vocab <= 65536 ? 2 : 4;
    if (collect_inputs(o, inputs, ninputs, &c.files) || setup_val_docs(&c)) goto done;
    if (sm_mkdir_p(o->out_dir)) {
        sm_wrap_error("cannot create output directory '%s'", o->out_dir);
        goto done;
    }
    if (clear_out_dir(o->out_dir, o->force)) goto done;
    uint64_t per_shard = o->shard_tokens / (uint64_t)o->block_len;
    sw_init(&c.w[0], "train", o->out_dir, o->block_len, width, eos, eos, per_shard);
    sw_init(&c.w[1], "val", o->out_dir, o->block_len, width, eos, eos, UINT64_MAX);
    started = 1;
    if (run_inputs(&c)) goto done;
    if (c.w[0].documents + c.w[1].documents == 0) {
        SM_ERR("no documents in the inputs (%llu empty, %llu skipped)",
               (unsigned long long)st->empty, (unsigned long long)st->skipped);
        goto done;
    }
    if (c.w[0].blocks == 0) {
        SM_ERR("the training split has no complete block: %llu tokens, fewer than the %d a block "
               "of %d holds (add text or lower --block-len)",
               (unsigned long long)c.w[0].document_tokens, o->block_len - 2, o->block_len);
        goto done;
    }
    if (sw_finish(&c.w[0]) || sw_finish(&c.w[1])) goto done;
    progress_clear(&c.prog);
    if (!o->quiet && c.w[1].blocks == 0 && (o->val_docs > 0 || (o->val_docs < 0 && o->val_fraction > 0)))
        fprintf(stderr, "smdlm data prepare: warning: the validation split has no complete "
                        "block (%llu documents, %llu tokens): raise --val-fraction or use --val-docs\n",
                (unsigned long long)c.w[1].documents, (unsigned long long)c.w[1].document_tokens);
    tok_files = cJSON_CreateArray();
    if (copy_tokenizer(o->tokenizer_dir, o->out_dir, tok_files)) goto done;
    if (write_meta(&c, vocab, width, eos, tok_files, inputs, ninputs) == 0) rc = 0;
    tok_files = NULL; /* owned by the meta object */
done:
    progress_clear(&c.prog);
    if (started) {
        for (int s = 0; s < 2; s++) {
            st->documents[s] = c.w[s].documents;
            st->document_tokens[s] = c.w[s].document_tokens;
            st->blocks[s] = c.w[s].blocks;
            st->dropped_tokens[s] = c.w[s].fill;
            if (rc) sw_abort(&c.w[s]);
        }
        st->train_shards = c.w[0].nshards;
        for (int s = 0; s < 2; s++) sw_free(&c.w[s]);
    }
    for (size_t i = 0; i < c.b.n; i++) free(c.b.docs[i].ids), free(c.b.docs[i].err);
    free(c.b.arena);
    free(c.b.docs);
    free(c.val_idx);
    cJSON_Delete(tok_files);
    fl_free(&c.files);
    tok_free(tok);
    st->seconds = sm_time_sec() - c.t0;
    return rc;
}

static void fmt_count(char *buf, size_t n, uint64_t v) {
    if (v >= 10000000000ull)
        snprintf(buf, n, "%.1fG", (double)v / 1e9);
    else if (v >= 10000000)
        snprintf(buf, n, "%.1fM", (double)v / 1e6);
    else
        snprintf(buf, n, "%llu", (unsigned long long)v);
}

void data_prepare_summary(const data_prepare_opts *o, const data_prepare_stats *st, char *buf,
                          size_t size) {
    char tt[32], vt[32];
    fmt_count(tt, sizeof tt, st->blocks[0] * (uint64_t)o->block_len);
    fmt_count(vt, sizeof vt, st->blocks[1] * (uint64_t)o->block_len);
    double mb = (double)st->bytes_read / 1e6;
    snprintf(buf, size,
             "%llu documents, %.1f MB in %.1f s (%.1f MB/s): train %llu docs, %s tokens = %llu "
             "blocks of %d in %d shard%s; val %llu docs, %s tokens = %llu blocks; last partial "
             "blocks dropped (%llu + %llu tokens); %llu empty, %llu bad skipped -> %s",
             (unsigned long long)(st->documents[0] + st->documents[1]), mb, st->seconds,
             st->seconds > 0 ? mb / st->seconds : 0.0, (unsigned long long)st->documents[0], tt,
             (unsigned long long)st->blocks[0], o->block_len, st->train_shards,
             st->train_shards == 1 ? "" : "s", (unsigned long long)st->documents[1], vt,
             (unsigned long long)st->blocks[1], (unsigned long long)st->dropped_tokens[0],
             (unsigned long long)st->dropped_tokens[1], (unsigned long long)st->empty,
             (unsigned long long)st->skipped, o->out_dir);
}
