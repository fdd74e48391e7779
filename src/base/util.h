/* util.h — errors, invariant checks, allocation and small helpers shared by every file.
 *
 * Two classes of error (see NOTES.md):
 *   - broken invariants (a bug in smdlm): SM_ASSERT, always on, prints and aborts;
 *   - untrusted input (files, configs, flags): SM_ERR records a message naming the function
 *     and returns -1; the caller propagates it and the program reports smdlm_last_error().
 */
#ifndef SMDLM_UTIL_H
#define SMDLM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SM_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) sm_assert_fail(#cond, __FILE__, __LINE__, __func__);                \
    } while (0)

/* Record an error message "function: message" and evaluate to -1. */
#define SM_ERR(...) sm_set_error(__func__, __VA_ARGS__)

void sm_assert_fail(const char *cond, const char *file, int line, const char *func);
int sm_set_error(const char *func, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current error with more context ("loading DIR: ...") and return -1. */
int sm_wrap_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *smdlm_last_error(void);

/* Allocation: out-of-memory is fatal — sizes that come from files or flags are checked with
 * SM_CHECK_MEMORY before they get here (NOTES.md, "Files and memory"). */
void *sm_malloc(size_t n);
void *sm_calloc(size_t count, size_t size);
void *sm_realloc(void *p, size_t n);
char *sm_strdup(const char *s);
/* 64-byte aligned allocation, released with free(). */
void *sm_aligned_alloc(size_t n);

/* Checked size arithmetic: return 0 on success, -1 on overflow. */
int sm_mul_size(size_t a, size_t b, size_t *out);
int sm_add_size(size_t a, size_t b, size_t *out);
/* The same saturating at SIZE_MAX: a size computed from input this way needs no overflow
 * test of its own, SM_CHECK_MEMORY rejects SIZE_MAX. */
size_t sm_size_mul(size_t a, size_t b);
size_t sm_size_add(size_t a, size_t b);
/* n rounded up to a multiple of align (a power of two), saturating. */
size_t sm_size_align(size_t n, size_t align);

/* The memory this process can allocate now: /proc/meminfo's MemAvailable (physical memory
 * where it cannot be read), lowered to RLIMIT_AS / RLIMIT_DATA when those are set. */
size_t sm_memory_available(void);
/* 0 when `bytes` fit in sm_memory_available(); else −1 with the error "FUNC: WHAT needs N GiB
 * (N bytes) but M GiB of memory are available", WHAT formatted from fmt, under the name of
 * the calling function (as SM_ERR). Every allocation whose size comes from a file or a flag is
 * checked with it first. */
#define SM_CHECK_MEMORY(bytes, ...) sm_check_memory(__func__, (bytes), __VA_ARGS__)
int sm_check_memory(const char *func, size_t bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every file a user or a directory names is opened for reading through these (NOTES.md,
 * "Files and memory"): the path must be a regular file. A FIFO, device or directory is an
 * error ("'P' is not a regular file") before anything reads it — opening a FIFO that no one
 * writes would block forever. The open is non-blocking (O_NONBLOCK, cleared afterwards) and
 * the type is checked with fstat on the opened descriptor.
 * sm_open_regular returns the descriptor (O_CLOEXEC) and fills st when not NULL; −1 on error. */
struct stat;
int sm_open_regular(const char *path, struct stat *st);
/* The same as a stdio stream ("rb"); NULL on error. */
FILE *sm_fopen_regular(const char *path);
/* Whole-file read (bounded by max_bytes); result is NUL-terminated. */
int sm_read_file(const char *path, size_t max_bytes, char **out, size_t *len);
/* Atomic writes: a temp file beside `path`, fsync, rename, fsync of the directory.
 * sm_atomic_open returns the stream and the temp name (free it); sm_atomic_commit finishes
 * (or, with ok == 0, removes the temp file). A path that names a device or pipe
 * (/dev/null, /dev/stdout) is written in place instead (tmp_path is then NULL). */
FILE *sm_atomic_open(const char *path, char **tmp_path);
int sm_atomic_commit(FILE *f, char *tmp_path, const char *path, int ok);
int sm_write_file_atomic(const char *path, const void *data, size_t len);
/* dst = a copy of the regular file src (at most 1 GiB), written as sm_write_file_atomic does. */
int sm_copy_file(const char *src, const char *dst);
/* Makes a directory's entries durable (fsync of the directory; errors are ignored). */
void sm_fsync_dir(const char *dir);

/* Creates a directory and its parents (like mkdir -p); an existing directory is fine. */
int sm_mkdir_p(const char *path);

/* A growing NUL-terminated string: zero-initialise (sm_buf b = {0}), append, free(b.s). */
typedef struct {
    char *s;
    size_t len, cap;
} sm_buf;
void sm_buf_add(sm_buf *b, const char *p, size_t n);
void sm_buf_str(sm_buf *b, const char *s);
void sm_buf_printf(sm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Name↔enum tables: one entry per accepted name; errors list the names in table order. */
typedef struct {
    const char *name;
    int value;
} sm_enum_entry;
#define SM_ENUM_COUNT(table) (sizeof(table) / sizeof *(table))
/* The value of `name` in the table: 0, or −1 (no error recorded) when no entry has it. */
int sm_enum_find(const sm_enum_entry *table, size_t n, const char *name, int *value);
/* sm_enum_find that records the error "FUNC: unknown WHAT "NAME" (expected A, B or C)"
 * under the name of the calling function (as SM_ERR does). */
#define SM_ENUM_PARSE(table, name, value, what) \
    sm_enum_parse(__func__, (table), SM_ENUM_COUNT(table), (name), (value), (what))
int sm_enum_parse(const char *func, const sm_enum_entry *table, size_t n, const char *name,
                  int *value, const char *what);
/* Defines `int FN(const char *name, TYPE *out)`: SM_ENUM_PARSE into an enum type. */
#define SM_ENUM_PARSER(fn, type, table, what)                                                   \
    int fn(const char *name, type *out) {                                                       \
        int v;                                                                                   \
        if (SM_ENUM_PARSE(table, name, &v, what)) return -1;                                     \
        *out = (type)v;                                                                          \
        return 0;                                                                                \
    }
/* The name of value in the table, or "unknown". */
#define SM_ENUM_NAME(table, value) sm_enum_name((table), SM_ENUM_COUNT(table), (int)(value))
const char *sm_enum_name(const sm_enum_entry *table, size_t n, int value);

/* path joining into a fresh string */
char *sm_path_join(const char *dir, const char *name);
/* 1 when path names something other than a directory: an optional file that is there but is
 * a FIFO or a device then fails at sm_open_regular with a clear error instead of being
 * skipped. */
int sm_file_exists(const char *path);

double sm_time_sec(void);
/* CPU seconds of this process, all threads together (a benchmark on a shared machine: time
 * spent waiting for a core does not count). */
double sm_cpu_time_sec(void);
/* Peak resident set size of this process in bytes (from getrusage). */
size_t sm_peak_rss_bytes(void);

#endif
