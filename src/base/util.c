/* util.c — error state, checked allocation and arithmetic, file helpers. */
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char g_error[1024];

void sm_assert_fail(const char *cond, const char *file, int line, const char *func) {
    fprintf(stderr, "smdlm: internal error: %s:%d %s: assertion '%s' failed\n", file, line,
            func, cond);
    abort();
}

int sm_set_error(const char *func, const char *fmt, ...) {
    va_list ap;
    int n = snprintf(g_error, sizeof g_error, "%s: ", func);
    if (n < 0 || (size_t)n >= sizeof g_error) n = 0;
    va_start(ap, fmt);
    vsnprintf(g_error + n, sizeof g_error - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int sm_wrap_error(const char *fmt, ...) {
    char prefix[512], old[sizeof g_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_error, sizeof old);
    snprintf(g_error, sizeof g_error, "%.400s: %.600s", prefix, old);
    return -1;
}

const char *smdlm_last_error(void) { return g_error[0] ? g_error : "no error recorded"; }

static void oom(size_t n) {
    fprintf(stderr, "smdlm: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sm_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *sm_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *sm_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *sm_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = sm_malloc(n);
    memcpy(d, s, n);
    return d;
}

void *sm_aligned_alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) oom(n);
    return p;
}

int sm_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

int sm_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

size_t sm_size_mul(size_t a, size_t b) {
    size_t r;
    return sm_mul_size(a, b, &r) ? SIZE_MAX : r;
}

size_t sm_size_add(size_t a, size_t b) {
    size_t r;
    return sm_add_size(a, b, &r) ? SIZE_MAX : r;
}

size_t sm_size_align(size_t n, size_t align) {
    return n > SIZE_MAX - (align - 1) ? SIZE_MAX : (n + align - 1) & ~(align - 1);
}

/* MemAvailable of /proc/meminfo in bytes; 0 when it cannot be read. */
static size_t meminfo_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return sm_size_mul((size_t)kb, 1024);
}

size_t sm_memory_available(void) {
    size_t avail = meminfo_available();
    if (avail == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        avail = pages > 0 && page > 0 ? sm_size_mul((size_t)pages, (size_t)page) : SIZE_MAX;
    }
    const int limits[] = {RLIMIT_AS, RLIMIT_DATA};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        struct rlimit rl;
        if (getrlimit(limits[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < (rlim_t)avail)
            avail = (size_t)rl.rlim_cur;
    }
    return avail;
}

int sm_check_memory(const char *func, size_t bytes, const char *fmt, ...) {
    const size_t avail = sm_memory_available();
    if (bytes <= avail) return 0;
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (bytes == SIZE_MAX)
        return sm_set_error(func, "%s needs more than 16 EiB (the size overflows) but %.1f GiB of "
                            "memory are available", what, (double)avail / gib);
    return sm_set_error(func, "%s needs %.1f GiB (%zu bytes) but %.1f GiB of memory are available",
                        what, (double)bytes / gib, bytes, (double)avail / gib);
}

int sm_open_regular(const char *path, struct stat *st) {
    struct stat sb;
    /* by name first: a device is never opened (opening one can have effects of its own) */
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return SM_ERR("'%s' is not a regular file", path);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return SM_ERR("cannot open '%s': %s", path, strerror(errno));
    int flags;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) { /* replaced since the stat */
        close(fd);
        return SM_ERR("'%s' is not a regular file", path);
    }
    if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return SM_ERR("cannot open '%s': %s", path, strerror(e));
    }
    if (st) *st = sb;
    return fd;
}

FILE *sm_fopen_regular(const char *path) {
    int fd = sm_open_regular(path, NULL);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        SM_ERR("cannot open '%s': %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int sm_read_file(const char *path, size_t max_bytes, char **out, size_t *len) {
    struct stat st;
    int fd = sm_open_regular(path, &st);
    if (fd < 0) return -1;
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return SM_ERR("'%s' is too large (%lld bytes, limit %zu)", path, (long long)st.st_size,
                      max_bytes);
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = sm_malloc(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(buf);
        return SM_ERR("cannot read '%s'", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

FILE *sm_atomic_open(const char *path, char **tmp_path) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        /* a device or pipe (e.g. -o /dev/null, /dev/stdout): written in place — renaming a
         * temp file over it would replace the device node */
        FILE *f = fopen(path, "wb");
        if (!f) SM_ERR("cannot open '%s': %s", path, strerror(errno));
        *tmp_path = NULL;
        return f;
    }
    size_t n = strlen(path) + 32;
    char *tmp = sm_malloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        SM_ERR("cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return NULL;
    }
    *tmp_path = tmp;
    return f;
}

void sm_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void fsync_parent_dir(const char *path) {
    char *copy = sm_strdup(path);
    sm_fsync_dir(dirname(copy));
    free(copy);
}

int sm_atomic_commit(FILE *f, char *tmp_path, const char *path, int ok) {
    int rc = 0;
    if (!tmp_path) { /* opened in place (not a regular file) */
        int closed = fclose(f) == 0;
        if (ok && !closed) SM_ERR("cannot write '%s': %s", path, strerror(errno));
        return ok && closed ? 0 : -1;
    }
    if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) {
        SM_ERR("cannot write '%s': %s", tmp_path, strerror(errno));
        ok = 0;
    }
    if (fclose(f) != 0 && ok) {
        SM_ERR("cannot close '%s': %s", tmp_path, strerror(errno));
        ok = 0;
    }
    if (ok && rename(tmp_path, path) != 0) {
        SM_ERR("cannot rename '%s' to '%s': %s", tmp_path, path, strerror(errno));
        ok = 0;
    }
    if (ok) {
        fsync_parent_dir(path);
    } else {
        unlink(tmp_path);
        rc = -1;
    }
    free(tmp_path);
    return rc;
}

int sm_write_file_atomic(const char *path, const void *data, size_t len) {
    char *tmp;
    FILE *f = sm_atomic_open(path, &tmp);
    if (!f) return -1;
    int ok = fwrite(data, 1, len, f) == len;
    if (!ok) SM_ERR("short write to '%s'", tmp);
    return sm_atomic_commit(f, tmp, path, ok);
}

int sm_copy_file(const char *src, const char *dst) {
    char *buf;
    size_t n;
    if (sm_read_file(src, (size_t)1 << 30, &buf, &n)) return -1;
    int rc = sm_write_file_atomic(dst, buf, n);
    free(buf);
    return rc;
}

char *sm_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sm_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int sm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

double sm_time_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double sm_cpu_time_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t sm_peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

int sm_mkdir_p(const char *path) {
    char *p = sm_strdup(path);
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            rc = SM_ERR("cannot create directory '%s': %s", p, strerror(errno));
        else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            rc = SM_ERR("cannot create directory '%s': not a directory", p);
        *s = c;
        if (!c) break;
    }
    free(p);
    return rc;
}

void sm_buf_add(sm_buf *b, const char *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        b->s = sm_realloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sm_buf_str(sm_buf *b, const char *s) { sm_buf_add(b, s, strlen(s)); }

void sm_buf_printf(sm_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    SM_ASSERT(n >= 0);
    char *tmp = sm_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sm_buf_add(b, tmp, (size_t)n);
    free(tmp);
}

int sm_enum_find(const sm_enum_entry *table, size_t n, const char *name, int *value) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, table[i].name)) {
            *value = table[i].value;
            return 0;
        }
    return -1;
}

int sm_enum_parse(const char *func, const sm_enum_entry *table, size_t n, const char *name,
                  int *value, const char *what) {
    if (!sm_enum_find(table, n, name, value)) return 0;
    sm_buf names = {0}; /* "a, b or c" */
    for (size_t i = 0; i < n; i++)
        sm_buf_printf(&names, "%s%s", i == 0 ? "" : i + 1 < n ? ", " : " or ", table[i].name);
    sm_set_error(func, "unknown %s \"%s\" (expected %s)", what, name, names.s ? names.s : "");
    free(names.s);
    return -1;
}

const char *sm_enum_name(const sm_enum_entry *table, size_t n, int value) {
    for (size_t i = 0; i < n; i++)
        if (table[i].value == value) return table[i].name;
    return "unknown";
}
