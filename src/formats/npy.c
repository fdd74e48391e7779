/* npy.c — NumPy .npy reader (v1.0/2.0/3.0) and v1.0 writer for '<i4', '<i8', '<f4', C order.
 *
 * File layout: "\x93NUMPY", major, minor, header length (u16 LE for v1, u32 LE for v2/v3),
 * then a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a final '\n', then the raw C-order data, which must fill the rest
 * of the file exactly.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_CLOEXEC, mkdtemp, fileno with -std=c11 */
#endif
#include "formats/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define NPY_MAX_HEADER ((size_t)1 << 20) /* numpy's own headers are < 100 bytes for us */

static const char k_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static size_t dtype_size(npy_dtype dt) { return dt == NPY_I8 ? 8 : 4; }

static const char *dtype_descr(npy_dtype dt) {
    return dt == NPY_I4 ? "<i4" : dt == NPY_I8 ? "<i8" : "<f4";
}

void npy_free(npy_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------- header dict parser */

typedef struct {
    const char *path;
    const char *s;
    size_t n, i;
} cursor;

static void skip_ws(cursor *c) {
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
                           c->s[c->i] == '\r'))
        c->i++;
}

static int peek(const cursor *c) { return c->i < c->n ? (unsigned char)c->s[c->i] : -1; }

static int expect_char(cursor *c, char ch, const char *what) {
    skip_ws(c);
    if (peek(c) != ch)
        return SM_ERR("'%s': malformed header: expected %s at header offset %zu", c->path, what,
                      c->i);
    c->i++;
    return 0;
}

/* A quoted Python string without escapes, copied into buf. */
static int parse_str(cursor *c, char *buf, size_t cap) {
    skip_ws(c);
    int q = peek(c);
    if (q != '\'' && q != '"')
        return SM_ERR("'%s': malformed header: expected a quoted string at header offset %zu",
                      c->path, c->i);
    size_t start = ++c->i, len = 0;
    while (c->i < c->n && c->s[c->i] != q) {
        if (c->s[c->i] == '\\' || c->s[c->i] == '\n')
            return SM_ERR("'%s': malformed header: unsupported character in string at header "
                          "offset %zu", c->path, c->i);
        c->i++;
    }
    if (c->i >= c->n)
        return SM_ERR("'%s': malformed header: unterminated string at header offset %zu",
                      c->path, start - 1);
    len = c->i - start;
    c->i++; /* closing quote */
    if (len >= cap)
        return SM_ERR("'%s': malformed header: string at header offset %zu is too long",
                      c->path, start - 1);
    memcpy(buf, c->s + start, len);
    buf[len] = 0;
    return 0;
}

static bool match_word(cursor *c, const char *w) {
    size_t n = strlen(w);
    if (c->n - c->i < n || memcmp(c->s + c->i, w, n) != 0) return false;
    size_t j = c->i + n;
    if (j < c->n && (c->s[j] == '_' || (c->s[j] >= 'a' && c->s[j] <= 'z') ||
                     (c->s[j] >= 'A' && c->s[j] <= 'Z') || (c->s[j] >= '0' && c->s[j] <= '9')))
        return false;
    c->i = j;
    return true;
}

static int parse_dim(cursor *c, int64_t *out) {
    skip_ws(c);
    if (peek(c) == '-')
        return SM_ERR("'%s': negative dimension in shape at header offset %zu", c->path, c->i);
    if (peek(c) < '0' || peek(c) > '9')
        return SM_ERR("'%s': malformed shape: expected an integer at header offset %zu", c->path,
                      c->i);
    uint64_t v = 0;
    size_t start = c->i;
    while (peek(c) >= '0' && peek(c) <= '9') {
        unsigned dgt = (unsigned)(c->s[c->i] - '0');
        if (v > ((uint64_t)INT64_MAX - dgt) / 10)
            return SM_ERR("'%s': dimension at header offset %zu is too large", c->path, start);
        v = v * 10 + dgt;
        c->i++;
    }
    if (peek(c) == 'L' || peek(c) == 'l') c->i++; /* Python 2 long suffix */
    *out = (int64_t)v;
    return 0;
}

static int parse_shape(cursor *c, npy_array *a) {
    if (expect_char(c, '(', "'(' starting the shape tuple") != 0) return -1;
    int nd = 0;
    skip_ws(c);
    if (peek(c) == ')') {
        c->i++;
        a->ndim = 0;
        return 0;
    }
    for (;;) {
        if (nd >= NPY_MAX_DIMS)
            return SM_ERR("'%s': shape has more than %d dimensions", c->path, NPY_MAX_DIMS);
        if (parse_dim(c, &a->shape[nd]) != 0) return -1;
        nd++;
        skip_ws(c);
        if (peek(c) == ',') {
            c->i++;
            skip_ws(c);
            if (peek(c) == ')') {
                c->i++;
                break;
            }
            continue;
        }
        if (peek(c) == ')') {
            c->i++;
            if (nd == 1)
                return SM_ERR("'%s': malformed shape: '(n)' is not a tuple (expected '(n,)')",
                              c->path);
            break;
        }
        return SM_ERR("'%s': malformed shape: expected ',' or ')' at header offset %zu", c->path,
                      c->i);
    }
    a->ndim = nd;
    return 0;
}

static int parse_header(const char *path, const char *h, size_t n, npy_array *a) {
    cursor c = {path, h, n, 0};
    bool have_descr = false, have_fortran = false, have_shape = false;
    if (expect_char(&c, '{', "'{' starting the header dict") != 0) return -1;
    for (;;) {
        skip_ws(&c);
        if (peek(&c) == '}') {
            c.i++;
            break;
        }
        char key[32], val[32];
        if (parse_str(&c, key, sizeof key) != 0) return -1;
        if (expect_char(&c, ':', "':' after a key") != 0) return -1;
        if (strcmp(key, "descr") == 0) {
            if (have_descr) return SM_ERR("'%s': duplicate key 'descr' in header", path);
            have_descr = true;
            skip_ws(&c);
            if (peek(&c) != '\'' && peek(&c) != '"')
                return SM_ERR("'%s': unsupported descr (structured dtypes are not supported)",
                              path);
            if (parse_str(&c, val, sizeof val) != 0) return -1;
            if (strcmp(val, "<i4") == 0) a->dtype = NPY_I4;
            else if (strcmp(val, "<i8") == 0) a->dtype = NPY_I8;
            else if (strcmp(val, "<f4") == 0) a->dtype = NPY_F4;
            else if (val[0] == '>')
                return SM_ERR("'%s': descr '%s' is big-endian; only little-endian '<i4', '<i8', "
                              "'<f4' are supported", path, val);
            else
                return SM_ERR("'%s': unsupported descr '%s' (supported: '<i4', '<i8', '<f4')",
                              path, val);
        } else if (strcmp(key, "fortran_order") == 0) {
            if (have_fortran) return SM_ERR("'%s': duplicate key 'fortran_order' in header", path);
            have_fortran = true;
            skip_ws(&c);
            if (match_word(&c, "True"))
                return SM_ERR("'%s': fortran_order is True; only C-order arrays are supported",
                              path);
            if (!match_word(&c, "False"))
                return SM_ERR("'%s': malformed header: fortran_order must be True or False",
                              path);
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape) return SM_ERR("'%s': duplicate key 'shape' in header", path);
            have_shape = true;
            if (parse_shape(&c, a) != 0) return -1;
        } else {
            return SM_ERR("'%s': unexpected key '%s' in header", path, key);
        }
        skip_ws(&c);
        if (peek(&c) == ',') {
            c.i++;
            continue;
        }
        if (peek(&c) == '}') {
            c.i++;
            break;
        }
        return SM_ERR("'%s': malformed header: expected ',' or '}' at header offset %zu", path,
                      c.i);
    }
    skip_ws(&c);
    if (c.i != c.n)
        return SM_ERR("'%s': malformed header: unexpected text after the dict at header "
                      "offset %zu", path, c.i);
    if (!have_descr || !have_fortran || !have_shape)
        return SM_ERR("'%s': header lacks key '%s'", path,
                      !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
    return 0;
}

/* ------------------------------------------------------------------ reader */

static int read_exact(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n ? 0 : -1; }

int npy_read(const char *path, npy_array *out) {
    memset(out, 0, sizeof *out);
    struct stat sb;
    int fd = sm_open_regular(path, &sb);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return SM_ERR("cannot open '%s': %s", path, strerror(errno));
    }
    int rc = -1;
    char *hdr = NULL;
    void *data = NULL;
    size_t fsize = (size_t)sb.st_size;
    uint8_t pre[12];
    if (fsize < 10 || read_exact(f, pre, 10) != 0) {
        SM_ERR("'%s': file is %zu bytes, too short for a .npy preamble (truncated)", path, fsize);
        goto done;
    }
    if (memcmp(pre, k_magic, 6) != 0) {
        SM_ERR("'%s': bad magic: not a .npy file", path);
        goto done;
    }
    unsigned major = pre[6], minor = pre[7];
    size_t hlen, preamble;
    if (major == 1 && minor == 0) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        preamble = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (fsize < 12 || read_exact(f, pre + 10, 2) != 0) {
            SM_ERR("'%s': truncated .npy preamble", path);
            goto done;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
               (size_t)pre[11] << 24;
        preamble = 12;
    } else {
        SM_ERR("'%s': unsupported .npy format version %u.%u", path, major, minor);
        goto done;
    }
    if (hlen > NPY_MAX_HEADER) {
        SM_ERR("'%s': header length %zu exceeds the limit of %zu bytes", path, hlen,
               NPY_MAX_HEADER);
        goto done;
    }
    if (hlen > fsize - preamble) {
        SM_ERR("'%s': header length %zu extends beyond the end of the file (%zu bytes; "
               "truncated)", path, hlen, fsize);
        goto done;
    }
    hdr = sm_malloc(hlen + 1);
    if (read_exact(f, hdr, hlen) != 0) {
        SM_ERR("'%s': cannot read the header", path);
        goto done;
    }
    hdr[hlen] = 0;
    if (parse_header(path, hdr, hlen, out) != 0) goto done;

    size_t numel = 1, nbytes;
    for (int d = 0; d < out->ndim; d++)
        if (sm_mul_size(numel, (size_t)out->shape[d], &numel) != 0) {
            SM_ERR("'%s': element count overflows", path);
            goto done;
        }
    if (sm_mul_size(numel, dtype_size(out->dtype), &nbytes) != 0) {
        SM_ERR("'%s': data size overflows", path);
        goto done;
    }
    size_t avail = fsize - preamble - hlen;
    if (avail < nbytes) {
        SM_ERR("'%s': data truncated: %zu bytes present, shape needs %zu", path, avail, nbytes);
        goto done;
    }
    if (avail > nbytes) {
        SM_ERR("'%s': %zu extra bytes after the data (shape needs %zu, file has %zu)", path,
               avail - nbytes, nbytes, avail);
        goto done;
    }
    if (SM_CHECK_MEMORY(nbytes, "the data of '%s'", path)) goto done;
    data = sm_aligned_alloc(nbytes);
    if (nbytes && read_exact(f, data, nbytes) != 0) {
        SM_ERR("'%s': cannot read %zu data bytes", path, nbytes);
        goto done;
    }
    out->numel = numel;
    out->data = data;
    data = NULL;
    rc = 0;
done:
    free(data);
    free(hdr);
    fclose(f);
    if (rc != 0) memset(out, 0, sizeof *out);
    return rc;
}

/* ------------------------------------------------------------------ writer */

int npy_write(const char *path, npy_dtype dtype, int ndim, const int64_t *shape,
              const void *data) {
    if (dtype != NPY_I4 && dtype != NPY_I8 && dtype != NPY_F4)
        return SM_ERR("'%s': invalid dtype %d", path, (int)dtype);
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return SM_ERR("'%s': ndim %d out of range [0, %d]", path, ndim, NPY_MAX_DIMS);
    size_t numel = 1, nbytes;
    char h[512];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype_descr(dtype));
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || sm_mul_size(numel, (size_t)shape[d], &numel) != 0)
            return SM_ERR("'%s': negative or overflowing shape", path);
        n += snprintf(h + n, sizeof h - (size_t)n, "%s%" PRId64, d ? ", " : "", shape[d]);
    }
    if (sm_mul_size(numel, dtype_size(dtype), &nbytes) != 0)
        return SM_ERR("'%s': data size overflows", path);
    if (nbytes && !data) return SM_ERR("'%s': no data", path);
    n += snprintf(h + n, sizeof h - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    /* pad with spaces so that 10 + header (incl. final '\n') is a multiple of 64 */
    while ((10 + (size_t)n + 1) % 64 != 0) h[n++] = ' ';
    h[n++] = '\n';

    uint8_t pre[10];
    memcpy(pre, k_magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (uint8_t)(n & 0xff);
    pre[9] = (uint8_t)(n >> 8);
    char *tmp = NULL;
    FILE *f = sm_atomic_open(path, &tmp);
    if (!f) return -1;
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, (size_t)n, f) == (size_t)n;
    if (ok && nbytes) ok = fwrite(data, 1, nbytes, f) == nbytes;
    if (!ok) SM_ERR("short write to '%s'", tmp);
    return sm_atomic_commit(f, tmp, path, ok);
}

/* ------------------------------------------------------------------ token ids */

int npy_read_ids(const char *path, int vocab, int32_t **ids, int *B, int *T) {
    *ids = NULL;
    if (vocab <= 0) return SM_ERR("'%s': vocabulary size %d must be positive", path, vocab);
    npy_array a;
    if (npy_read(path, &a) != 0) return -1;
    int rc = -1;
    int32_t *out = NULL;
    int64_t b64, t64;
    if (a.dtype == NPY_F4) {
        SM_ERR("'%s': token ids must be integers ('<i4' or '<i8'), found float32", path);
        goto done;
    }
    if (a.ndim == 1) {
        b64 = 1;
        t64 = a.shape[0];
    } else if (a.ndim == 2) {
        b64 = a.shape[0];
        t64 = a.shape[1];
    } else {
        SM_ERR("'%s': token ids must be 1-D [T] or 2-D [B, T], found %d-D", path, a.ndim);
        goto done;
    }
    if (b64 < 1 || t64 < 1 || b64 > INT_MAX || t64 > INT_MAX) {
        SM_ERR("'%s': token ids shape [B=%" PRId64 ", T=%" PRId64 "]: B and T must be in [1, %d]",
               path, b64, t64, INT_MAX);
        goto done;
    }
    out = sm_malloc(a.numel * sizeof *out);
    int bb = (int)b64, tt = (int)t64;
    for (int b = 0; b < bb; b++)
        for (int t = 0; t < tt; t++) {
            size_t i = (size_t)b * (size_t)tt + (size_t)t;
            int64_t v = a.dtype == NPY_I4 ? ((const int32_t *)a.data)[i]
                                          : ((const int64_t *)a.data)[i];
            if (v < 0 || v >= vocab) {
                SM_ERR("'%s': token id %" PRId64 " at position (b=%d, t=%d) is out of range "
                       "[0, %d)", path, v, b, t, vocab);
                goto done;
            }
            out[i] = (int32_t)v;
        }
    *ids = out;
    out = NULL;
    *B = bb;
    *T = tt;
    rc = 0;
done:
    free(out);
    npy_free(&a);
    return rc;
}
