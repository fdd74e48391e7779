/* manifest.c — see manifest.h. */
#include "formats/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/util.h"

#define MANIFEST_HEADER "smdlm-manifest 1\n"

/* Size and CRC-32 of a regular file, read in 1 MiB pieces. */
static int file_crc32(const char *path, size_t *size, unsigned long *crc) {
    struct stat st;
    int fd = sm_open_regular(path, &st);
    if (fd < 0) return -1;
    size_t cap = (size_t)1 << 20, total = 0;
    unsigned char *buf = sm_malloc(cap);
    unsigned long c = crc32(0L, Z_NULL, 0);
    ssize_t n;
    while ((n = read(fd, buf, cap)) > 0) {
        c = crc32(c, buf, (uInt)n);
        total += (size_t)n;
    }
    int rc = n < 0 ? SM_ERR("cannot read '%s': %s", path, strerror(errno)) : 0;
    free(buf);
    close(fd);
    *size = total, *crc = c;
    return rc;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int manifest_write(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return SM_ERR("cannot open '%s': %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *p = sm_path_join(dir, e->d_name);
        struct stat st;
        int listed = lstat(p, &st) == 0 && S_ISREG(st.st_mode) && strcmp(e->d_name, MANIFEST_FILE) &&
                     !strstr(e->d_name, ".tmp.");
        free(p);
        if (!listed) continue;
        if (n == cap) names = sm_realloc(names, sizeof *names * (cap = cap ? 2 * cap : 16));
        names[n++] = sm_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name); /* a listing that does not depend on readdir */
    sm_buf text = {0};
    sm_buf_str(&text, MANIFEST_HEADER);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char *p = sm_path_join(dir, names[i]);
        size_t size;
        unsigned long crc;
        rc = file_crc32(p, &size, &crc);
        if (!rc) sm_buf_printf(&text, "%zu %08lx %s\n", size, crc, names[i]);
        free(p);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    char *marker = sm_path_join(dir, MANIFEST_FILE);
    if (!rc) rc = sm_write_file_atomic(marker, text.s, text.len);
    free(marker), free(text.s);
    return rc;
}

/* Checks one manifest line against the file it names. */
static int verify_line(const char *dir, const char *marker, const char *line, int lineno) {
    size_t size;
    unsigned long crc;
    int name_at = 0;
    if (sscanf(line, "%zu %8lx %n", &size, &crc, &name_at) != 2 || !name_at || !line[name_at] ||
        strchr(line + name_at, '/'))
        return SM_ERR("%s:%d: not a manifest line (SIZE CRC32 NAME)", marker, lineno);
    const char *name = line + name_at;
    char *path = sm_path_join(dir, name);
    size_t got_size;
    unsigned long got_crc;
    int rc = 0;
    if (!sm_file_exists(path))
        rc = SM_ERR("'%s' is missing (the checkpoint lists it): a partial checkpoint", name);
    else if (file_crc32(path, &got_size, &got_crc))
        rc = -1;
    else if (got_size != size)
        rc = SM_ERR("'%s' has %zu bytes, the checkpoint recorded %zu: a truncated or replaced file",
                    name, got_size, size);
    else if (got_crc != crc)
        rc = SM_ERR("'%s' has CRC-32 %08lx, the checkpoint recorded %08lx: a damaged or replaced file",
                    name, got_crc, crc);
    free(path);
    return rc;
}

int manifest_verify(const char *dir) {
    char *marker = sm_path_join(dir, MANIFEST_FILE), *text = NULL;
    if (!sm_file_exists(marker)) {
        free(marker);
        return 1;
    }
    int rc = sm_read_file(marker, 1 << 20, &text, NULL);
    if (!rc && !strncmp(text, MANIFEST_HEADER, strlen(MANIFEST_HEADER))) {
        int lineno = 1;
        for (char *line = text + strlen(MANIFEST_HEADER), *end; *line && !rc; line = end + 1) {
            end = strchr(line, '\n');
            if (!end) {
                rc = SM_ERR("%s:%d: the last line is cut short", marker, lineno + 1);
                break;
            }
            *end = 0;
            rc = verify_line(dir, marker, line, ++lineno);
        }
    }
    free(text);
    free(marker);
    return rc;
}
