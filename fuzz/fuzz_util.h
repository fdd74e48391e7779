/* fuzz_util.h — what the fuzz targets share: a private scratch directory, files written into
 * it, fixture files copied in, and an abort that names the broken invariant. Targets run from
 * the repository root (fixtures under tests/fixtures, or SMDLM_FUZZ_FIXTURES). */
#ifndef SMDLM_FUZZ_UTIL_H
#define SMDLM_FUZZ_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "smdlm.h"

static char fz_dir[64];

static void fz_die(const char *what) {
    fprintf(stderr, "fuzz: %s (last error: %s)\n", what, smdlm_last_error());
    abort();
}

static int fz_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    return remove(path) != 0;
}

/* Removes path and everything below it (no error when it is missing). */
static void fz_remove_tree(const char *path) {
    if (nftw(path, fz_remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && access(path, F_OK) == 0)
        fz_die("removing a scratch tree");
}

static void fz_remove_scratch(void) { fz_remove_tree(fz_dir); }

/* The scratch directory of this process (created on first use, removed at exit). */
static const char *fz_scratch(void) {
    if (!fz_dir[0]) {
        snprintf(fz_dir, sizeof fz_dir, "/tmp/smdlm-fuzz-XXXXXX");
        if (!mkdtemp(fz_dir)) fz_die("mkdtemp");
        atexit(fz_remove_scratch);
    }
    return fz_dir;
}

/* scratch/name (malloc'ed); sub-directories of name are created. */
static char *fz_path(const char *name) {
    char *p = sm_path_join(fz_scratch(), name);
    char *slash = strrchr(p, '/');
    *slash = 0;
    if (sm_mkdir_p(p)) fz_die("mkdir");
    *slash = '/';
    return p;
}

/* Writes size bytes to scratch/name (replacing whatever is there; no fsync: the scratch
 * directory need not survive a crash); returns the path (malloc'ed). */
static char *fz_write(const char *name, const void *data, size_t size) {
    char *p = fz_path(name);
    unlink(p);
    FILE *f = fopen(p, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) fz_die("writing a scratch file");
    return p;
}

/* The fixture file tests/fixtures/rel (malloc'ed path). */
static char *fz_fixture(const char *rel) {
    const char *dir = getenv("SMDLM_FUZZ_FIXTURES");
    return sm_path_join(dir ? dir : "tests/fixtures", rel);
}

/* Copies the fixture file rel to scratch/name. */
static void fz_copy_fixture(const char *rel, const char *name) {
    char *src = fz_fixture(rel), *text;
    size_t len;
    if (sm_read_file(src, (size_t)1 << 30, &text, &len)) fz_die("reading a fixture");
    free(fz_write(name, text, len));
    free(text);
    free(src);
}

/* With SMDLM_FUZZ_SEEDS=DIR set, writes a seed: the mode byte, then size bytes of data, to
 * DIR/name (for the targets whose seeds come from files they make at start-up). */
static void fz_seed(int mode, const void *data, size_t size, const char *name) {
    const char *dir = getenv("SMDLM_FUZZ_SEEDS");
    if (!dir) return;
    char *path = sm_path_join(dir, name);
    uint8_t *buf = malloc(size + 1);
    buf[0] = (uint8_t)mode;
    if (size) memcpy(buf + 1, data, size);
    if (sm_mkdir_p(dir) || sm_write_file_atomic(path, buf, size + 1)) fz_die("writing a seed");
    free(buf);
    free(path);
}

/* The input without its first byte (the mode), NUL-terminated (malloc'ed). */
static char *fz_text(const uint8_t *data, size_t size, size_t *len) {
    *len = size ? size - 1 : 0;
    char *s = malloc(*len + 1);
    if (*len) memcpy(s, data + 1, *len);
    s[*len] = 0;
    return s;
}

#endif
