/* safetensors.c — hardened safetensors reader (mmap'ed, single file or sharded) and writer.
 *
 * Every rule of the reference reader is checked before a tensor is handed out; see
 * safetensors.h and ENGINEERING.md "Reliability checklist". Layout of a file:
 *   [8-byte little-endian header length N][N bytes of JSON][data section]
 * The JSON header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the data section) plus an optional "__metadata__" string map.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_CLOEXEC, mkdtemp, fileno with -std=c11 */
#endif
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* 100 MB, as the reference reader */
#define ST_MAX_INDEX_BYTES ((size_t)100 * 1000 * 1000)
/* Integers in the header travel through cJSON's double; above 2^53 they are inexact. */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53 */

/* ------------------------------------------------------------------ dtypes */

static const struct {
    const char *name;
    size_t size;
} k_dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2},   [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define ST_NDTYPES ((int)(sizeof k_dtypes / sizeof k_dtypes[0]))

static bool dtype_valid(st_dtype dt) { return (int)dt >= 0 && (int)dt < ST_NDTYPES; }

size_t st_dtype_size(st_dtype dt) { return dtype_valid(dt) ? k_dtypes[dt].size : 0; }

const char *st_dtype_name(st_dtype dt) { return dtype_valid(dt) ? k_dtypes[dt].name : "?"; }

static int dtype_from_name(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, k_dtypes[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

static bool dtype_is_float(st_dtype dt) {
    return dt == ST_F32 || dt == ST_F16 || dt == ST_BF16 || dt == ST_F64;
}

/* ------------------------------------------------------- scalar conversions */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign, force a quiet mantissa bit */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) { /* inf / NaN */
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) { /* normal */
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) { /* ±0 */
        u = sign;
    } else { /* subnormal: value = man * 2^-24, exact in f32 */
        float v = (float)man * 5.9604644775390625e-8f;
        u = sign | f32_bits(v);
    }
    return bits_f32(u);
}

/* ------------------------------------------------------------- archive ops */

void st_close(st_archive *a) {
    if (!a) return;
    for (int i = 0; i < a->ntensors; i++) free(a->tensors[i].name);
    free(a->tensors);
    for (int i = 0; i < a->nfiles; i++) {
        if (a->files[i].map && a->files[i].map != MAP_FAILED)
            munmap(a->files[i].map, a->files[i].map_size);
        free(a->files[i].path);
    }
    free(a->files);
    for (int i = 0; i < 2 * a->nmeta; i++) free(a->meta[i]);
    free(a->meta);
    memset(a, 0, sizeof *a);
}

const char *st_metadata(const st_archive *a, const char *key) {
    for (int i = 0; i < a->nmeta; i++)
        if (!strcmp(a->meta[2 * i], key)) return a->meta[2 * i + 1];
    return NULL;
}

static int cmp_tensor_name(const void *x, const void *y) {
    return strcmp(((const st_tensor *)x)->name, ((const st_tensor *)y)->name);
}

const st_tensor *st_find(const st_archive *a, const char *name) {
    if (!a || !name || a->ntensors <= 0) return NULL;
    st_tensor key;
    memset(&key, 0, sizeof key);
    key.name = (char *)name;
    return bsearch(&key, a->tensors, (size_t)a->ntensors, sizeof *a->tensors, cmp_tensor_name);
}

/* --------------------------------------------------------- header checking */

/* Header bytes: valid UTF-8, no NUL, no \u0000 escape (it would truncate C strings), and
 * outside strings only structural characters, whitespace and plain non-negative integers
 * (a valid header has no true/false/null, no fractions, no exponents). Run after the
 * structural validation, as a catch-all that reports a byte offset. */
static int check_header_bytes(const char *path, const uint8_t *h, size_t n) {
    bool in_str = false;
    for (size_t i = 0; i < n;) {
        uint8_t c = h[i];
        if (c == 0)
            return SM_ERR("'%s': header contains a NUL byte at header offset %zu", path, i);
        if (c >= 0x80) { /* UTF-8 multi-byte sequence */
            size_t len;
            uint32_t cp;
            if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1fu;
            } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0fu;
            } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07u;
            } else {
                return SM_ERR("'%s': header is not valid UTF-8 (byte 0x%02x at header offset %zu)",
                              path, c, i);
            }
            if (len > n - i)
                return SM_ERR("'%s': header is not valid UTF-8 (truncated sequence at header "
                              "offset %zu)", path, i);
            for (size_t k = 1; k < len; k++) {
                if ((h[i + k] & 0xc0u) != 0x80u)
                    return SM_ERR("'%s': header is not valid UTF-8 (bad continuation byte at "
                                  "header offset %zu)", path, i + k);
                cp = (cp << 6) | (h[i + k] & 0x3fu);
            }
            if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                (cp >= 0xd800 && cp <= 0xdfff))
                return SM_ERR("'%s': header is not valid UTF-8 (overlong or surrogate at header "
                              "offset %zu)", path, i);
            if (!in_str)
                return SM_ERR("'%s': unexpected non-ASCII byte outside a string at header "
                              "offset %zu", path, i);
            i += len;
            continue;
        }
        if (in_str) {
            if (c == '\\') {
                if (i + 1 < n && h[i + 1] == 'u' && i + 5 < n && memcmp(h + i + 2, "0000", 4) == 0)
                    return SM_ERR("'%s': header string contains an escaped NUL (\\u0000) at "
                                  "header offset %zu", path, i);
                i += 2;
                continue;
            }
            if (c < 0x20)
                return SM_ERR("'%s': raw control character 0x%02x inside a string at header "
                              "offset %zu", path, c, i);
            if (c == '"') in_str = false;
            i++;
            continue;
        }
        if (c == '"') {
            in_str = true;
            i++;
        } else if (c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == ':' ||
                   c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            i++;
        } else if (c >= '0' && c <= '9') {
            size_t j = i;
            while (j < n && h[j] >= '0' && h[j] <= '9') j++;
            if (j - i > 1 && h[i] == '0')
                return SM_ERR("'%s': number with a leading zero at header offset %zu", path, i);
            if (j < n && (h[j] == '.' || h[j] == 'e' || h[j] == 'E'))
                return SM_ERR("'%s': number at header offset %zu is not a plain integer "
                              "(non-integer numbers are not allowed in a safetensors header)",
                              path, i);
            i = j;
        } else {
            return SM_ERR("'%s': unexpected character '%c' at header offset %zu (a safetensors "
                          "header holds only strings, objects, arrays and non-negative integers)",
                          path, c >= 0x20 && c < 0x7f ? c : '?', i);
        }
    }
    return 0;
}

/* A JSON number that must be a non-negative integer. */
static int json_uint(const char *path, const char *tname, const char *what, const cJSON *v,
                     uint64_t *out) {
    if (!cJSON_IsNumber(v))
        return SM_ERR("'%s': tensor '%s': %s is not a number", path, tname, what);
    double d = v->valuedouble;
    if (d != d) return SM_ERR("'%s': tensor '%s': %s is not a number", path, tname, what);
    if (d < 0)
        return SM_ERR("'%s': tensor '%s': %s is negative (%.17g)", path, tname, what, d);
    if (d >= ST_MAX_JSON_INT)
        return SM_ERR("'%s': tensor '%s': %s %.17g is too large (limit 2^53)", path, tname,
                      what, d);
    if ((double)(uint64_t)d != d)
        return SM_ERR("'%s': tensor '%s': %s is not an integer (%.17g)", path, tname, what, d);
    *out = (uint64_t)d;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int idx; /* index into the archive's tensors */
} span;

static int cmp_span(const void *x, const void *y) {
    const span *a = x, *b = y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return 0;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Parse one tensor entry of the header into t (name already set). */
static int parse_entry(const char *path, const cJSON *e, size_t data_size, st_tensor *t,
                       uint64_t *begin, uint64_t *end) {
    const char *name = t->name;
    if (!cJSON_IsObject(e)) return SM_ERR("'%s': tensor '%s': entry is not an object", path, name);
    const cJSON *jdt = NULL, *jshape = NULL, *joff = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        const cJSON **slot = NULL;
        if (strcmp(f->string, "dtype") == 0) slot = &jdt;
        else if (strcmp(f->string, "shape") == 0) slot = &jshape;
        else if (strcmp(f->string, "data_offsets") == 0) slot = &joff;
        else
            return SM_ERR("'%s': tensor '%s': unknown field '%s'", path, name, f->string);
        if (*slot) return SM_ERR("'%s': tensor '%s': duplicate field '%s'", path, name, f->string);
        *slot = f;
    }
    if (!jdt || !jshape || !joff)
        return SM_ERR("'%s': tensor '%s': missing field '%s'", path, name,
                      !jdt ? "dtype" : !jshape ? "shape" : "data_offsets");

    if (!cJSON_IsString(jdt)) return SM_ERR("'%s': tensor '%s': dtype is not a string", path, name);
    if (dtype_from_name(jdt->valuestring, &t->dtype) != 0)
        return SM_ERR("'%s': tensor '%s': unknown dtype '%.32s' (allowed: F32 F16 BF16 F64 I64 "
                      "I32 I16 I8 U8 BOOL)", path, name, jdt->valuestring);

    if (!cJSON_IsArray(jshape)) return SM_ERR("'%s': tensor '%s': shape is not an array", path, name);
    int nd = cJSON_GetArraySize(jshape);
    if (nd > ST_MAX_DIMS)
        return SM_ERR("'%s': tensor '%s': shape has %d dims (limit %d)", path, name, nd,
                      ST_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    int d = 0;
    for (const cJSON *s = jshape->child; s; s = s->next, d++) {
        uint64_t v;
        char what[32];
        snprintf(what, sizeof what, "shape[%d]", d);
        if (json_uint(path, name, what, s, &v) != 0) return -1;
        t->shape[d] = (int64_t)v;
        if (sm_mul_size(numel, (size_t)v, &numel) != 0)
            return SM_ERR("'%s': tensor '%s': element count overflows (shape entry %d = %" PRIu64
                          ")", path, name, d, v);
    }
    t->numel = numel;
    if (sm_mul_size(numel, st_dtype_size(t->dtype), &t->nbytes) != 0)
        return SM_ERR("'%s': tensor '%s': byte size overflows (%zu elements of %s)", path, name,
                      numel, st_dtype_name(t->dtype));

    if (!cJSON_IsArray(joff) || cJSON_GetArraySize(joff) != 2)
        return SM_ERR("'%s': tensor '%s': data_offsets is not an array of two integers", path,
                      name);
    if (json_uint(path, name, "data_offsets[0]", joff->child, begin) != 0 ||
        json_uint(path, name, "data_offsets[1]", joff->child->next, end) != 0)
        return -1;
    if (*begin > *end)
        return SM_ERR("'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                      "] begin after end", path, name, *begin, *end);
    if (*end > data_size)
        return SM_ERR("'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                      "] out of range: the data section has %zu bytes (file truncated?)",
                      path, name, *begin, *end, data_size);
    if (*end - *begin != t->nbytes) {
        char sh[160];
        format_shape(sh, sizeof sh, t->ndim, t->shape);
        return SM_ERR("'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                      " bytes but shape %s x %s needs %zu bytes (nbytes mismatch)",
                      path, name, *begin, *end, *end - *begin, sh, st_dtype_name(t->dtype),
                      t->nbytes);
    }
    return 0;
}

static int cmp_cstr(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int check_metadata(const char *path, const cJSON *m) {
    if (!cJSON_IsObject(m)) return SM_ERR("'%s': __metadata__ is not an object", path);
    int n = cJSON_GetArraySize(m), k = 0;
    const char **keys = sm_malloc(sizeof *keys * (size_t)(n ? n : 1));
    for (const cJSON *kv = m->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv)) {
            free(keys);
            return SM_ERR("'%s': __metadata__ value of '%.64s' is not a string (metadata must "
                          "map strings to strings)", path, kv->string);
        }
        keys[k++] = kv->string;
    }
    /* duplicate keys (cJSON keeps them): sort and compare neighbours, O(n log n) */
    qsort(keys, (size_t)k, sizeof *keys, cmp_cstr);
    for (int i = 1; i < k; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            int rc = SM_ERR("'%s': __metadata__ has duplicate key '%.64s'", path, keys[i]);
            free(keys);
            return rc;
        }
    free(keys);
    return 0;
}

/* Map `path`, validate it, and append its tensors to `a` (unsorted) with file index
 * a->nfiles. On error the archive keeps whatever was appended; the caller closes it. */
static int load_file(st_archive *a, const char *path) {
    struct stat sb;
    int fd = sm_open_regular(path, &sb);
    if (fd < 0) return -1;
    if (sb.st_size < 8) {
        close(fd);
        return SM_ERR("'%s': file is %lld bytes, too short for the 8-byte header length "
                      "(truncated)", path, (long long)sb.st_size);
    }
    size_t fsize = (size_t)sb.st_size;
    void *map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) return SM_ERR("cannot map '%s': %s", path, strerror(map_errno));

    int fi = a->nfiles;
    a->files = sm_realloc(a->files, sizeof *a->files * (size_t)(fi + 1));
    a->files[fi].path = sm_strdup(path);
    a->files[fi].map = map;
    a->files[fi].map_size = fsize;
    a->nfiles = fi + 1;

    const uint8_t *base = map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | base[i];
    if (n > ST_MAX_HEADER)
        return SM_ERR("'%s': header length %" PRIu64 " exceeds the 100 MB limit", path, n);
    if (n > fsize - 8)
        return SM_ERR("'%s': header length %" PRIu64 " extends beyond the end of the file "
                      "(%zu bytes)", path, n, fsize);
    if (n < 2) return SM_ERR("'%s': header length %" PRIu64 " is too short for a JSON object",
                             path, n);
    const char *hdr = (const char *)base + 8;
    size_t hlen = (size_t)n;
    size_t data_size = fsize - 8 - hlen;
    const uint8_t *data = base + 8 + hlen;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        size_t off = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
        const char *ep = cJSON_GetErrorPtr();
        if (ep && ep >= hdr && ep <= hdr + hlen) off = (size_t)(ep - hdr);
        return SM_ERR("'%s': header is not valid JSON (error near header offset %zu)", path, off);
    }
    int rc = -1;
    if (!end || end < hdr || end > hdr + hlen) {
        SM_ERR("'%s': header is not valid JSON", path);
        goto done;
    }
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            SM_ERR("'%s': trailing garbage after the header JSON at header offset %zu", path,
                   (size_t)(p - hdr));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        SM_ERR("'%s': header JSON is not an object", path);
        goto done;
    }

    /* Count entries, check metadata. */
    int count = 0, nmeta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) {
            SM_ERR("'%s': header entry without a name", path);
            goto done;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            if (++nmeta > 1) {
                SM_ERR("'%s': duplicate __metadata__ entry", path);
                goto done;
            }
            if (check_metadata(path, e) != 0) goto done;
            if (a->nfiles == 1) /* keep the first file's metadata */
                for (const cJSON *kv = e->child; kv; kv = kv->next) {
                    a->meta = sm_realloc(a->meta, sizeof *a->meta * (size_t)(2 * a->nmeta + 2));
                    a->meta[2 * a->nmeta] = sm_strdup(kv->string);
                    a->meta[2 * a->nmeta + 1] = sm_strdup(kv->valuestring);
                    a->nmeta++;
                }
        } else {
            count++;
        }
    }
    if (count > 0) {
        size_t cap;
        if (sm_add_size((size_t)a->ntensors, (size_t)count, &cap) != 0 || cap > INT32_MAX) {
            SM_ERR("'%s': too many tensors", path);
            goto done;
        }
        a->tensors = sm_realloc(a->tensors, sizeof *a->tensors * cap);
    }

    span *spans = sm_malloc(sizeof *spans * (size_t)(count ? count : 1));
    int ns = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        if (e->string[0] == 0) {
            SM_ERR("'%s': tensor with an empty name", path);
            free(spans);
            goto done;
        }
        st_tensor *t = &a->tensors[a->ntensors];
        memset(t, 0, sizeof *t);
        t->name = sm_strdup(e->string);
        t->file_index = fi;
        a->ntensors++;
        uint64_t b, en;
        if (parse_entry(path, e, data_size, t, &b, &en) != 0) {
            free(spans);
            goto done;
        }
        t->data = data + b;
        spans[ns].begin = b;
        spans[ns].end = en;
        spans[ns].idx = a->ntensors - 1;
        ns++;
    }

    /* Offsets sorted: contiguous, non-overlapping, covering the whole data section. */
    qsort(spans, (size_t)ns, sizeof *spans, cmp_span);
    uint64_t expect = 0;
    for (int i = 0; i < ns; i++) {
        const char *tn = a->tensors[spans[i].idx].name;
        if (spans[i].begin < expect) {
            const char *prev = i ? a->tensors[spans[i - 1].idx].name : "?";
            SM_ERR("'%s': tensor '%s' at data_offsets [%" PRIu64 ", %" PRIu64 "] overlaps tensor "
                   "'%s' (which ends at %" PRIu64 ")", path, tn, spans[i].begin, spans[i].end,
                   prev, expect);
            free(spans);
            goto done;
        }
        if (spans[i].begin > expect) {
            SM_ERR("'%s': hole in the data section: bytes [%" PRIu64 ", %" PRIu64 ") before "
                   "tensor '%s' belong to no tensor", path, expect, spans[i].begin, tn);
            free(spans);
            goto done;
        }
        expect = spans[i].end;
    }
    free(spans);
    if (expect != data_size) {
        SM_ERR("'%s': %" PRIu64 " trailing bytes after the last tensor (data section is %zu "
               "bytes, tensors cover %" PRIu64 ")", path, (uint64_t)data_size - expect,
               data_size, expect);
        goto done;
    }
    if (check_header_bytes(path, (const uint8_t *)hdr, hlen) != 0) goto done;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* Sort by name and reject duplicates (within or across files). */
static int finish_archive(st_archive *a) {
    if (a->ntensors > 1)
        qsort(a->tensors, (size_t)a->ntensors, sizeof *a->tensors, cmp_tensor_name);
    for (int i = 1; i < a->ntensors; i++)
        if (strcmp(a->tensors[i - 1].name, a->tensors[i].name) == 0) {
            const st_tensor *x = &a->tensors[i - 1], *y = &a->tensors[i];
            if (x->file_index == y->file_index)
                return SM_ERR("'%s': duplicate tensor name '%s'", a->files[x->file_index].path,
                              x->name);
            return SM_ERR("duplicate tensor name '%s': present in both '%s' and '%s'", x->name,
                          a->files[x->file_index].path, a->files[y->file_index].path);
        }
    return 0;
}

int st_open_file(st_archive *a, const char *path) {
    memset(a, 0, sizeof *a);
    if (load_file(a, path) != 0 || finish_archive(a) != 0) {
        st_close(a);
        return -1;
    }
    return 0;
}

/* NULL if `s` is an acceptable shard file name (a plain name inside the model directory),
 * else the reason. */
static const char *shard_name_problem(const char *s) {
    if (!s[0]) return "empty shard file name";
    if (strstr(s, "..")) return "contains '..'";
    if (strchr(s, '/') || strchr(s, '\\')) return "contains a path separator";
    return NULL;
}

static int open_index(st_archive *a, const char *dir, const char *index_path) {
    char *text = NULL;
    size_t len = 0;
    if (sm_read_file(index_path, ST_MAX_INDEX_BYTES, &text, &len) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    int rc = -1;
    const char **shards = NULL; /* distinct shard names, in first-seen order */
    int nshards = 0;
    int *entry_shard = NULL;
    if (!root) {
        SM_ERR("'%s': not valid JSON", index_path);
        goto done;
    }
    for (const char *p = end; p && p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            SM_ERR("'%s': trailing garbage after the JSON", index_path);
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        SM_ERR("'%s': not a JSON object", index_path);
        goto done;
    }
    const cJSON *wm = NULL;
    for (const cJSON *e = root->child; e; e = e->next)
        if (e->string && strcmp(e->string, "weight_map") == 0) {
            if (wm) {
                SM_ERR("'%s': duplicate 'weight_map' key", index_path);
                goto done;
            }
            wm = e;
        }
    if (!cJSON_IsObject(wm) || !wm->child) {
        SM_ERR("'%s': missing or empty 'weight_map' object", index_path);
        goto done;
    }
    int nentries = cJSON_GetArraySize(wm);
    entry_shard = sm_malloc(sizeof *entry_shard * (size_t)nentries);
    shards = sm_malloc(sizeof *shards * (size_t)nentries);
    int k = 0;
    for (const cJSON *e = wm->child; e; e = e->next, k++) {
        if (!e->string || !e->string[0]) {
            SM_ERR("'%s': weight_map has an empty tensor name", index_path);
            goto done;
        }
        if (!cJSON_IsString(e)) {
            SM_ERR("'%s': weight_map entry for tensor '%s' is not a string", index_path,
                   e->string);
            goto done;
        }
        const char *fname = e->valuestring;
        const char *why = shard_name_problem(fname);
        if (why) {
            SM_ERR("'%s': tensor '%s' names shard file '%.200s': %s (shards must be plain file "
                   "names inside the model directory)", index_path, e->string, fname, why);
            goto done;
        }
        shards[k] = fname;
    }
    /* distinct shard names, sorted (O(n log n) even for a huge index) */
    qsort(shards, (size_t)nentries, sizeof *shards, cmp_cstr);
    for (int i = 0; i < nentries; i++)
        if (nshards == 0 || strcmp(shards[nshards - 1], shards[i]) != 0)
            shards[nshards++] = shards[i];
    k = 0;
    for (const cJSON *e = wm->child; e; e = e->next, k++) {
        const char **hit = bsearch(&e->valuestring, shards, (size_t)nshards, sizeof *shards,
                                   cmp_cstr);
        SM_ASSERT(hit != NULL);
        entry_shard[k] = (int)(hit - shards);
    }

    for (int s = 0; s < nshards; s++) {
        char *p = sm_path_join(dir, shards[s]);
        int r = load_file(a, p);
        free(p);
        if (r != 0) {
            sm_wrap_error("shard %d of %d listed in '%s'", s + 1, nshards, index_path);
            goto done;
        }
    }
    if (finish_archive(a) != 0) goto done;

    /* Index ↔ shards: every index entry in exactly the shard it names, and every tensor of
     * every shard listed. Duplicates across shards were rejected by finish_archive. */
    bool *listed = sm_calloc((size_t)(a->ntensors ? a->ntensors : 1), sizeof *listed);
    k = 0;
    for (const cJSON *e = wm->child; e; e = e->next, k++) {
        const st_tensor *t = st_find(a, e->string);
        if (!t) {
            SM_ERR("'%s': tensor '%s' is listed in the index for shard '%s' but absent from it",
                   index_path, e->string, shards[entry_shard[k]]);
            free(listed);
            goto done;
        }
        size_t ti = (size_t)(t - a->tensors);
        if (listed[ti]) {
            SM_ERR("'%s': tensor '%s' is listed twice in weight_map", index_path, e->string);
            free(listed);
            goto done;
        }
        listed[ti] = true;
        if (t->file_index != entry_shard[k]) {
            SM_ERR("'%s': tensor '%s' is listed for shard '%s' but absent from it (found in "
                   "'%s')", index_path, e->string, shards[entry_shard[k]],
                   a->files[t->file_index].path);
            free(listed);
            goto done;
        }
    }
    for (int i = 0; i < a->ntensors; i++)
        if (!listed[i]) {
            SM_ERR("'%s': tensor '%s' in shard '%s' is not listed in the index", index_path,
                   a->tensors[i].name, a->files[a->tensors[i].file_index].path);
            free(listed);
            goto done;
        }
    free(listed);
    rc = 0;
done:
    free(shards);
    free(entry_shard);
    cJSON_Delete(root);
    free(text);
    return rc;
}

int st_open_dir(st_archive *a, const char *dir) {
    memset(a, 0, sizeof *a);
    char *index = sm_path_join(dir, "model.safetensors.index.json");
    int rc;
    if (sm_file_exists(index)) {
        rc = open_index(a, dir, index);
    } else {
        char *single = sm_path_join(dir, "model.safetensors");
        if (!sm_file_exists(single))
            rc = SM_ERR("'%s' has neither model.safetensors nor model.safetensors.index.json",
                        dir);
        else
            rc = load_file(a, single) == 0 ? finish_archive(a) : -1;
        free(single);
    }
    free(index);
    if (rc != 0) st_close(a);
    return rc;
}

/* ------------------------------------------------------------- conversion */

int st_tensor_to_f32(const st_tensor *t, float *out) {
    if (!t) return SM_ERR("no tensor");
    const uint8_t *p = t->data;
    const long long n = (long long)t->numel;
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(out, p, (size_t)n * 4);
        return 0;
    case ST_F16:
    case ST_BF16: {
        const bool bf16 = t->dtype == ST_BF16;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
        for (long long i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = bf16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
        }
        return 0;
    }
    case ST_F64:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
        for (long long i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            /* out-of-range values become ±inf explicitly (0x1.ffffffp127 rounds up) */
            out[i] = d >= 0x1.ffffffp127 ? INFINITY : d <= -0x1.ffffffp127 ? -INFINITY : (float)d;
        }
        return 0;
    default:
        return SM_ERR("tensor '%s' has dtype %s, not a floating type convertible to F32",
                      t->name, st_dtype_name(t->dtype));
    }
}

/* ------------------------------------------------------- finiteness scan */

/* Element i of a floating tensor as an fp32 value is NaN or infinite (F64: also beyond the
 * float range, where the conversion to F32 gives ±inf). Unaligned data is read by memcpy. */
static bool element_nonfinite(const uint8_t *p, st_dtype dt, size_t i) {
    uint16_t h;
    uint32_t u;
    double d;
    switch (dt) {
    case ST_F32:
        memcpy(&u, p + 4 * i, 4);
        return (u & 0x7f800000u) == 0x7f800000u;
    case ST_F16:
        memcpy(&h, p + 2 * i, 2);
        return (h & 0x7c00u) == 0x7c00u;
    case ST_BF16:
        memcpy(&h, p + 2 * i, 2);
        return (h & 0x7f80u) == 0x7f80u;
    default:
        memcpy(&d, p + 8 * i, 8);
        return !(fabs(d) < 0x1.ffffffp127);
    }
}

#define SCAN_BLOCK ((size_t)1 << 16)

int st_check_finite(const st_archive *a) {
    for (int k = 0; k < a->ntensors; k++) {
        const st_tensor *t = &a->tensors[k];
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
            continue;
        const size_t n = t->numel, nblocks = (n + SCAN_BLOCK - 1) / SCAN_BLOCK;
        size_t first = n; /* blocks in parallel, the lowest bad index wins */
#pragma omp parallel for schedule(dynamic) reduction(min : first)
        for (size_t b = 0; b < nblocks; b++) {
            const size_t hi = b * SCAN_BLOCK + SCAN_BLOCK < n ? b * SCAN_BLOCK + SCAN_BLOCK : n;
            for (size_t i = b * SCAN_BLOCK; i < hi && i < first; i++)
                if (element_nonfinite(t->data, t->dtype, i)) first = i;
        }
        if (first == n) continue;
        int64_t index[ST_MAX_DIMS]; /* row-major coordinates of the element */
        size_t rem = first;
        for (int d = t->ndim - 1; d >= 0; d--) {
            index[d] = (int64_t)(rem % (size_t)t->shape[d]);
            rem /= (size_t)t->shape[d];
        }
        char where[200];
        format_shape(where, sizeof where, t->ndim, index);
        float v = 0.0f;
        st_tensor one = *t;
        one.data = t->data + first * st_dtype_size(t->dtype);
        one.numel = 1;
        st_tensor_to_f32(&one, &v);
        return SM_ERR("'%s': tensor '%s' holds %s at index %s (element %zu of %zu)",
                      a->files[t->file_index].path, t->name,
                      isnan(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity", where, first, n);
    }
    return 0;
}

/* ------------------------------------------------------- expected registry */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return m <= n && memcmp(s + n - m, suffix, m) == 0;
}

int st_check_expected(const st_archive *a, const st_expect *expected, int n,
                      const char *const *unknown_ok, int n_unknown_ok) {
    char want[200], got[200];
    for (int i = 0; i < n; i++) {
        const st_expect *e = &expected[i];
        format_shape(want, sizeof want, e->ndim, e->shape);
        const st_tensor *t = st_find(a, e->name);
        if (!t)
            return SM_ERR("'%s'%s: missing tensor '%s' (expected shape %s)",
                          a->nfiles ? a->files[0].path : "(empty archive)",
                          a->nfiles > 1 ? " and its other shards" : "", e->name, want);
        const char *file = a->files[t->file_index].path;
        if (e->int8 && t->dtype != ST_I8)
            return SM_ERR("'%s': tensor '%s' has dtype %s, expected I8 (int8 weights of a q8 "
                          "model)", file, e->name, st_dtype_name(t->dtype));
        if (!e->int8 && !dtype_is_float(t->dtype))
            return SM_ERR("'%s': tensor '%s' has dtype %s, expected a floating type "
                          "(F32/F16/BF16/F64)", file, e->name, st_dtype_name(t->dtype));
        bool same = t->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
        if (!same) {
            format_shape(got, sizeof got, t->ndim, t->shape);
            return SM_ERR("'%s': tensor '%s' has shape %s, expected %s (wrong shape)", file,
                          e->name, got, want);
        }
    }
    /* Unknown tensors: anything not expected and not matching an allowed suffix. */
    const char **names = sm_malloc(sizeof *names * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) names[i] = expected[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_cstr);
    int rc = 0;
    for (int i = 0; i < a->ntensors && rc == 0; i++) {
        const char *name = a->tensors[i].name;
        if (n && bsearch(&name, names, (size_t)n, sizeof *names, cmp_cstr)) continue;
        bool ok = false;
        for (int k = 0; k < n_unknown_ok && !ok; k++) ok = ends_with(name, unknown_ok[k]);
        if (!ok)
            rc = SM_ERR("'%s': unexpected tensor '%s' (not part of the model)",
                        a->files[a->tensors[i].file_index].path, name);
    }
    free(names);
    return rc;
}

/* ------------------------------------------------------------------ writer */

static void sb_json_string(sm_buf *b, const char *s) {
    sm_buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sm_buf_add(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sm_buf_add(b, esc, 6);
        } else {
            sm_buf_add(b, (const char *)p, 1);
        }
    }
    sm_buf_add(b, "\"", 1);
}

int st_write(const char *path, const st_write_entry *entries, int n,
             const char *const *metadata) {
    if (n < 0) return SM_ERR("'%s': negative tensor count", path);
    size_t *nbytes = sm_malloc(sizeof *nbytes * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        const st_write_entry *e = &entries[i];
        if (!e->name || !e->name[0]) {
            free(nbytes);
            return SM_ERR("'%s': tensor %d has an empty name", path, i);
        }
        if (strcmp(e->name, "__metadata__") == 0) {
            free(nbytes);
            return SM_ERR("'%s': '__metadata__' is not a valid tensor name", path);
        }
        if (!dtype_valid(e->dtype) || e->ndim < 0 || e->ndim > ST_MAX_DIMS) {
            free(nbytes);
            return SM_ERR("'%s': tensor '%s': invalid dtype or ndim", path, e->name);
        }
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0 || sm_mul_size(numel, (size_t)e->shape[d], &numel) != 0) {
                free(nbytes);
                return SM_ERR("'%s': tensor '%s': negative or overflowing shape", path, e->name);
            }
        }
        if (sm_mul_size(numel, st_dtype_size(e->dtype), &nbytes[i]) != 0) {
            free(nbytes);
            return SM_ERR("'%s': tensor '%s': byte size overflows", path, e->name);
        }
        if (nbytes[i] && !e->data) {
            free(nbytes);
            return SM_ERR("'%s': tensor '%s': no data", path, e->name);
        }
        for (int j = 0; j < i; j++)
            if (strcmp(entries[j].name, e->name) == 0) {
                free(nbytes);
                return SM_ERR("'%s': duplicate tensor name '%s'", path, e->name);
            }
    }

    sm_buf h = {0};
    char num[64];
    sm_buf_str(&h, "{");
    bool first = true;
    if (metadata && metadata[0]) {
        sm_buf_str(&h, "\"__metadata__\":{");
        for (int i = 0; metadata[i]; i += 2) {
            if (!metadata[i + 1]) {
                free(h.s);
                free(nbytes);
                return SM_ERR("'%s': metadata key '%s' has no value", path, metadata[i]);
            }
            if (i) sm_buf_str(&h, ",");
            sb_json_string(&h, metadata[i]);
            sm_buf_str(&h, ":");
            sb_json_string(&h, metadata[i + 1]);
        }
        sm_buf_str(&h, "}");
        first = false;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_write_entry *e = &entries[i];
        if (!first) sm_buf_str(&h, ",");
        first = false;
        sb_json_string(&h, e->name);
        sm_buf_str(&h, ":{\"dtype\":\"");
        sm_buf_str(&h, st_dtype_name(e->dtype));
        sm_buf_str(&h, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", e->shape[d]);
            sm_buf_str(&h, num);
        }
        size_t next;
        if (sm_add_size(off, nbytes[i], &next) != 0) {
            free(h.s);
            free(nbytes);
            return SM_ERR("'%s': total size overflows", path);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, next);
        sm_buf_str(&h, num);
        off = next;
    }
    sm_buf_str(&h, "}");
    while (h.len % 8) sm_buf_str(&h, " ");

    char *tmp = NULL;
    FILE *f = sm_atomic_open(path, &tmp);
    if (!f) {
        free(h.s);
        free(nbytes);
        return -1;
    }
    uint8_t lenbuf[8];
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)(hl >> (8 * i));
    int ok = fwrite(lenbuf, 1, 8, f) == 8 && fwrite(h.s, 1, h.len, f) == h.len;
    for (int i = 0; ok && i < n; i++)
        if (nbytes[i]) ok = fwrite(entries[i].data, 1, nbytes[i], f) == nbytes[i];
    if (!ok) SM_ERR("short write to '%s'", tmp);
    free(h.s);
    free(nbytes);
    return sm_atomic_commit(f, tmp, path, ok);
}

int st_bind_f32(const st_archive *a, const char *const *names, int n, const float **out,
                float **owned) {
    size_t convert = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_find(a, names[i]);
        SM_ASSERT(t);
        if (t->dtype != ST_F32 || ((uintptr_t)t->data & 3u)) convert += t->numel;
    }
    *owned = NULL;
    if (SM_CHECK_MEMORY(sm_size_mul(convert, sizeof(float)), "fp32 copies of %zu weights of '%s'",
                        convert, a->nfiles ? a->files[0].path : "(empty archive)"))
        return -1;
    if (convert) *owned = sm_aligned_alloc(convert * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_find(a, names[i]);
        if (t->dtype == ST_F32 && !((uintptr_t)t->data & 3u)) {
            out[i] = (const float *)(const void *)t->data;
            continue;
        }
        float *dst = *owned + off;
        off += t->numel;
        if (st_tensor_to_f32(t, dst)) return -1;
        out[i] = dst;
    }
    return 0;
}

int st_load_f32(const st_archive *a, const st_expect *expected, int n,
                const char *const *unknown_ok, int n_unknown_ok, const float **views,
                float **owned) {
    if (st_check_expected(a, expected, n, unknown_ok, n_unknown_ok)) return -1;
    const char **names = sm_malloc(sizeof *names * (size_t)n);
    for (int i = 0; i < n; i++) names[i] = expected[i].name;
    int rc = st_bind_f32(a, names, n, views, owned);
    free(names);
    return rc;
}
