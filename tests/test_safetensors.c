/* test_safetensors.c — writer→reader round trips (every dtype, metadata, 0-element and
 * scalar tensors, sharded directories), bf16/f16 conversions against PyTorch, the
 * expected-tensor registry, and one hand-made broken file per failure class (tests/bad/,
 * written by tests/make_bad_files.py). Each bad file must give an error whose message
 * names the reason. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_CLOEXEC, mkdtemp, fileno with -std=c11 */
#endif
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/npy.h"
#include "formats/safetensors.h"
#include "base/util.h"

#define BAD_DIR "tests/bad"

/* ------------------------------------------------------------------ helpers */

static char *make_tmpdir(void) {
    char tmpl[] = "/tmp/smdlm_st_XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return sm_strdup(d);
}

static void rm_tmpdir(char *dir, const char *const *files) {
    for (int i = 0; files && files[i]; i++) {
        char *p = sm_path_join(dir, files[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
    free(dir);
}

static void write_text(const char *path, const char *text) {
    assert_int_equal(sm_write_file_atomic(path, text, strlen(text)), 0);
}

static uint64_t header_len_of(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t b[8];
    assert_int_equal(fread(b, 1, 8, f), 8);
    fclose(f);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    return n;
}


/* ---------------------------------------------------------------- round trip */

static void test_roundtrip_all_dtypes(void **state) {
    (void)state;
    char *dir = make_tmpdir();
    char *path = sm_path_join(dir, "all.safetensors");

    float f32[6] = {1.5f, -2.25f, 0.0f, 3e-3f, 1e20f, -7.0f};
    uint16_t f16[3] = {0x3c00, 0xc000, 0x0001};     /* 1, -2, smallest subnormal */
    uint16_t bf16[4] = {0x3f80, 0xbf80, 0x4049, 0x7f80}; /* 1, -1, 3.140625, inf */
    double f64[2] = {3.141592653589793, -1e-300};
    int64_t i64[2] = {INT64_MIN, INT64_MAX};
    int32_t i32[3] = {-1, 0, 2147483647};
    int16_t i16[2] = {-32768, 12345};
    int8_t i8[5] = {-128, -1, 0, 1, 127};
    uint8_t u8[1] = {255};
    uint8_t bl[3] = {1, 0, 1};
    float scalar = 42.0f;

    const st_write_entry e[] = {
        {"layer.0.weight", ST_F32, 2, {2, 3}, f32},
        {"half", ST_F16, 1, {3}, f16},
        {"brain", ST_BF16, 2, {2, 2}, bf16},
        {"double", ST_F64, 1, {2}, f64},
        {"i64", ST_I64, 2, {1, 2}, i64},
        {"i32", ST_I32, 1, {3}, i32},
        {"i16", ST_I16, 1, {2}, i16},
        {"i8", ST_I8, 3, {5, 1, 1}, i8},
        {"u8", ST_U8, 1, {1}, u8},
        {"flags", ST_BOOL, 1, {3}, bl},
        {"empty", ST_F32, 2, {0, 7}, NULL},
        {"scalar", ST_F32, 0, {0}, &scalar},
    };
    const int n = (int)(sizeof e / sizeof e[0]);
    const char *meta[] = {"format", "pt", "note", "quote \" and \\ and \n", NULL};
    assert_int_equal(st_write(path, e, n, meta), 0);
    assert_int_equal(header_len_of(path) % 8, 0);

    st_archive a;
    if (st_open_file(&a, path) != 0) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
    assert_int_equal(a.ntensors, n);
    assert_int_equal(a.nfiles, 1);
    for (int i = 1; i < a.ntensors; i++)
        assert_true(strcmp(a.tensors[i - 1].name, a.tensors[i].name) < 0); /* sorted */
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_find(&a, e[i].name);
        assert_non_null(t);
        assert_string_equal(t->name, e[i].name);
        assert_int_equal(t->dtype, e[i].dtype);
        assert_int_equal(t->ndim, e[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) {
            assert_int_equal(t->shape[d], e[i].shape[d]);
            numel *= (size_t)e[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->nbytes, numel * st_dtype_size(e[i].dtype));
        assert_int_equal(t->file_index, 0);
        if (t->nbytes) assert_memory_equal(t->data, e[i].data, t->nbytes);
        /* data lies inside the mapping */
        const uint8_t *base = a.files[0].map;
        assert_true(t->data >= base + 8 && t->data + t->nbytes <= base + a.files[0].map_size);
    }
    assert_null(st_find(&a, "nope"));
    assert_null(st_find(&a, "layer.0"));
    assert_string_equal(st_dtype_name(ST_BF16), "BF16");
    assert_int_equal(st_dtype_size(ST_F64), 8);
    assert_int_equal(st_dtype_size(ST_BOOL), 1);

    /* metadata made it into the header, correctly escaped (the reader validated it) */
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(path, 1 << 20, &text, &len), 0);
    assert_non_null(strstr(text + 8, "\"__metadata__\":{\"format\":\"pt\""));
    assert_non_null(strstr(text + 8, "quote \\\" and \\\\ and \\u000a"));
    free(text);

    st_close(&a);
    st_close(&a); /* idempotent on a closed archive */
    const char *files[] = {"all.safetensors", NULL};
    free(path);
    rm_tmpdir(dir, files);
}

static void test_empty_archive_and_zero_tensor(void **state) {
    (void)state;
    char *dir = make_tmpdir();
    char *p1 = sm_path_join(dir, "none.safetensors");
    char *p2 = sm_path_join(dir, "zero.safetensors");
    st_archive a;
    assert_int_equal(st_write(p1, NULL, 0, NULL), 0);
    assert_int_equal(st_open_file(&a, p1), 0);
    assert_int_equal(a.ntensors, 0);
    assert_null(st_find(&a, "x"));
    st_close(&a);

    /* only 0-element tensors: empty data section, data pointer at the end of the file */
    const st_write_entry e[] = {{"z1", ST_BF16, 1, {0}, NULL}, {"z2", ST_I8, 2, {3, 0}, NULL}};
    assert_int_equal(st_write(p2, e, 2, NULL), 0);
    assert_int_equal(header_len_of(p1) % 8, 0);
    assert_int_equal(header_len_of(p2) % 8, 0);
    assert_int_equal(st_open_file(&a, p2), 0);
    assert_int_equal(a.ntensors, 2);
    const st_tensor *t = st_find(&a, "z2");
    assert_non_null(t);
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->nbytes, 0);
    float dummy = 1.0f;
    assert_int_equal(st_tensor_to_f32(st_find(&a, "z1"), &dummy), 0);
    assert_true(dummy == 1.0f);
    st_close(&a);

    st_archive z;
    memset(&z, 0, sizeof z);
    st_close(&z); /* zeroed archive */
    const char *files[] = {"none.safetensors", "zero.safetensors", NULL};
    free(p1);
    free(p2);
    rm_tmpdir(dir, files);
}

static void test_writer_rejects_bad_entries(void **state) {
    (void)state;
    char *dir = make_tmpdir();
    char *p = sm_path_join(dir, "w.safetensors");
    float x[2] = {1, 2};
    const st_write_entry dup[] = {{"a", ST_F32, 1, {1}, x}, {"a", ST_F32, 1, {1}, x + 1}};
    tu_expect_error(st_write(p, dup, 2, NULL), "writer duplicate", (const char *[]){"duplicate", NULL});
    const st_write_entry neg[] = {{"a", ST_F32, 1, {-2}, x}};
    tu_expect_error(st_write(p, neg, 1, NULL), "writer negative", (const char *[]){"negative", NULL});
    const st_write_entry empty[] = {{"", ST_F32, 1, {1}, x}};
    tu_expect_error(st_write(p, empty, 1, NULL), "writer empty name", (const char *[]){"empty", NULL});
    assert_false(sm_file_exists(p)); /* nothing written */
    free(p);
    rm_tmpdir(dir, NULL);
}

/* ------------------------------------------------------------- conversions */

static void test_to_f32(void **state) {
    (void)state;
    char *dir = make_tmpdir();
    char *path = sm_path_join(dir, "conv.safetensors");
    /* a 3-byte U8 tensor first makes the following tensors unaligned in the mapping */
    uint8_t pad[3] = {7, 8, 9};
    float f32[4] = {1.0f, -0.5f, 1e-40f, INFINITY};
    uint16_t f16[4] = {0x3c00, 0xbc00, 0x7bff, 0x8001};
    uint16_t bf16[4] = {0x3f80, 0xc0a0, 0x0001, 0xff80};
    double f64[4] = {0.1, -2.5, 1e300, 5e-324};
    /* rounding at the top of the float range: FLT_MAX stays, the half-way point goes to inf */
    double f64b[4] = {0x1.fffffep127, 0x1.ffffffp127, 0x1.fffffefffffffp127, -0x1.ffffffp127};
    const st_write_entry e[] = {
        {"pad", ST_U8, 1, {3}, pad},   {"f32", ST_F32, 1, {4}, f32}, {"f16", ST_F16, 1, {4}, f16},
        {"bf16", ST_BF16, 1, {4}, bf16}, {"f64", ST_F64, 1, {4}, f64},
        {"f64b", ST_F64, 1, {4}, f64b},
    };
    assert_int_equal(st_write(path, e, 6, NULL), 0);
    assert_int_equal(header_len_of(path) % 8, 0);
    st_archive a;
    assert_int_equal(st_open_file(&a, path), 0);
    float out[4];
    const float want_f16[4] = {1.0f, -1.0f, 65504.0f, -5.9604644775390625e-8f};
    const float want_bf16[4] = {1.0f, -5.0f, 9.18354961579912e-41f, -INFINITY};
    const float want_f64[4] = {0.1f, -2.5f, INFINITY, 0.0f};

    assert_int_equal(st_tensor_to_f32(st_find(&a, "f32"), out), 0);
    assert_memory_equal(out, f32, sizeof f32);
    assert_int_equal(st_tensor_to_f32(st_find(&a, "f16"), out), 0);
    assert_memory_equal(out, want_f16, sizeof out);
    assert_int_equal(st_tensor_to_f32(st_find(&a, "bf16"), out), 0);
    assert_memory_equal(out, want_bf16, sizeof out);
    assert_int_equal(st_tensor_to_f32(st_find(&a, "f64"), out), 0);
    assert_memory_equal(out, want_f64, sizeof out);
    const float want_f64b[4] = {0x1.fffffep127f, INFINITY, 0x1.fffffep127f, -INFINITY};
    assert_int_equal(st_tensor_to_f32(st_find(&a, "f64b"), out), 0);
    assert_memory_equal(out, want_f64b, sizeof out);
    tu_expect_error(st_tensor_to_f32(st_find(&a, "pad"), out), "to_f32 of U8",
                 (const char *[]){"pad", "U8", NULL});
    st_close(&a);
    const char *files[] = {"conv.safetensors", NULL};
    free(path);
    rm_tmpdir(dir, files);
}

static void test_to_f32_large_parallel(void **state) {
    (void)state;
    /* big enough to take the OpenMP path */
    const size_t n = 300000;
    uint16_t *h = sm_malloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = (uint16_t)(i * 2654435761u >> 16);
    st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "big";
    t.dtype = ST_BF16;
    t.numel = n;
    t.nbytes = 2 * n;
    t.data = (const uint8_t *)h;
    float *out = sm_malloc(n * sizeof *out);
    assert_int_equal(st_tensor_to_f32(&t, out), 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &out[i], 4);
        bad += u != (uint32_t)h[i] << 16;
    }
    assert_int_equal(bad, 0);
    t.dtype = ST_F16;
    assert_int_equal(st_tensor_to_f32(&t, out), 0);
    for (size_t i = 0; i < n; i += 997) {
        float v = st_f16_to_f32(h[i]);
        assert_true(memcmp(&v, &out[i], 4) == 0);
    }
    free(out);
    free(h);
}

static void test_bf16_against_torch(void **state) {
    (void)state;
    size_t n, nb;
    float *x = tu_load_f32(tu_fixture("conv_bf16_in.npy"), &n);
    int32_t *bits = tu_load_i32(tu_fixture("conv_bf16_bits.npy"), &nb, NULL, NULL);
    assert_int_equal(n, nb);
    assert_true(n > 1000);
    size_t bad = 0, nans = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t got = st_f32_to_bf16(x[i]);
        uint16_t want = (uint16_t)bits[i];
        bool want_nan = (want & 0x7fff) > 0x7f80, got_nan = (got & 0x7fff) > 0x7f80;
        if (want_nan || got_nan) { /* torch canonicalises NaN; we keep the sign: NaN stays NaN */
            nans++;
            if (want_nan != got_nan) bad++;
            continue;
        }
        if (got != want) {
            if (!bad)
                printf("  first bf16 mismatch at [%zu]: x=%.9g got 0x%04x torch 0x%04x\n", i,
                       (double)x[i], got, want);
            bad++;
        }
        /* bf16 -> f32 is exact: the round trip gives back torch's value */
        float back = st_bf16_to_f32(want);
        uint32_t u;
        memcpy(&u, &back, 4);
        if (u != (uint32_t)want << 16) bad++;
    }
    printf("  bf16: %zu values (%zu NaN), %zu mismatches\n", n, nans, bad);
    assert_true(nans >= 3);
    assert_int_equal(bad, 0);
    free(x);
    free(bits);
}

static void test_f16_against_torch(void **state) {
    (void)state;
    size_t n, nv;
    int32_t *bits = tu_load_i32(tu_fixture("conv_f16_bits.npy"), &n, NULL, NULL);
    float *vals = tu_load_f32(tu_fixture("conv_f16_vals.npy"), &nv);
    assert_int_equal(n, nv);
    size_t bad = 0, sub = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)bits[i];
        float got = st_f16_to_f32(h);
        if ((h & 0x7c00) == 0 && (h & 0x3ff)) sub++;
        if (isnan(vals[i])) {
            if (!isnan(got)) bad++;
            continue;
        }
        if (memcmp(&got, &vals[i], 4) != 0) { /* bitwise: keeps -0 and subnormals honest */
            if (!bad)
                printf("  first f16 mismatch: 0x%04x got %.9g torch %.9g\n", h, (double)got,
                       (double)vals[i]);
            bad++;
        }
    }
    printf("  f16: %zu patterns (%zu subnormal), %zu mismatches\n", n, sub, bad);
    assert_true(sub >= 2000);
    assert_int_equal(bad, 0);
    free(bits);
    free(vals);
}

static void test_bf16_rounding_cases(void **state) {
    (void)state;
    /* ties to even, NaN kept NaN even when only low mantissa bits are set */
    const struct {
        uint32_t in;
        uint16_t out;
    } c[] = {
        {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81}, {0x3f807fff, 0x3f80},
        {0x7f7fffff, 0x7f80}, {0x80000000, 0x8000}, {0xff800000, 0xff80},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        float f;
        memcpy(&f, &c[i].in, 4);
        assert_int_equal(st_f32_to_bf16(f), c[i].out);
    }
    const uint32_t nans[] = {0x7f800001, 0xff800001, 0x7fc00000, 0x7fffffff};
    for (size_t i = 0; i < 4; i++) {
        float f;
        memcpy(&f, &nans[i], 4);
        assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(f))));
    }
}

/* ----------------------------------------------------------------- sharding */

static void test_sharded_dir(void **state) {
    (void)state;
    char *dir = make_tmpdir();
    float a[3] = {1, 2, 3}, b[2] = {4, 5}, c[4] = {6, 7, 8, 9};
    const st_write_entry s1[] = {{"model.a", ST_F32, 1, {3}, a}, {"model.c", ST_F32, 2, {2, 2}, c}};
    const st_write_entry s2[] = {{"model.b", ST_F32, 1, {2}, b}};
    char *p1 = sm_path_join(dir, "model-00001-of-00002.safetensors");
    char *p2 = sm_path_join(dir, "model-00002-of-00002.safetensors");
    char *pi = sm_path_join(dir, "model.safetensors.index.json");
    assert_int_equal(st_write(p1, s1, 2, NULL), 0);
    assert_int_equal(st_write(p2, s2, 1, NULL), 0);
    write_text(pi, "{\n  \"metadata\": {\"total_size\": 36},\n  \"weight_map\": {\n"
                   "    \"model.a\": \"model-00001-of-00002.safetensors\",\n"
                   "    \"model.b\": \"model-00002-of-00002.safetensors\",\n"
                   "    \"model.c\": \"model-00001-of-00002.safetensors\"\n  }\n}\n");
    st_archive ar;
    if (st_open_dir(&ar, dir) != 0) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
    assert_int_equal(ar.nfiles, 2);
    assert_int_equal(ar.ntensors, 3);
    const st_tensor *ta = st_find(&ar, "model.a"), *tb = st_find(&ar, "model.b"),
                    *tc = st_find(&ar, "model.c");
    assert_non_null(ta);
    assert_non_null(tb);
    assert_non_null(tc);
    assert_int_equal(ta->file_index, tc->file_index);
    assert_int_not_equal(ta->file_index, tb->file_index);
    assert_non_null(strstr(ar.files[tb->file_index].path, "model-00002-of-00002"));
    assert_memory_equal(tb->data, b, sizeof b);
    assert_memory_equal(tc->data, c, sizeof c);
    st_close(&ar);

    /* without the index, a plain model.safetensors is used */
    unlink(pi);
    tu_expect_error(st_open_dir(&ar, dir), "dir without model files",
                 (const char *[]){"model.safetensors", NULL});
    char *ps = sm_path_join(dir, "model.safetensors");
    assert_int_equal(st_write(ps, s2, 1, NULL), 0);
    assert_int_equal(st_open_dir(&ar, dir), 0);
    assert_int_equal(ar.ntensors, 1);
    assert_non_null(st_find(&ar, "model.b"));
    st_close(&ar);

    const char *files[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                           "model.safetensors", NULL};
    free(p1);
    free(p2);
    free(pi);
    free(ps);
    rm_tmpdir(dir, files);
}

/* --------------------------------------------------------- expected registry */

static const st_expect k_expect[] = {{"a", 1, {4}}, {"b", 2, {2, 3}}};
static const char *const k_unknown_ok[] = {"rotary_emb.inv_freq"};

static void test_expected_ok(void **state) {
    (void)state;
    char *dir = make_tmpdir();
    char *p = sm_path_join(dir, "m.safetensors");
    float a[4] = {0}, b[6] = {0}, r[2] = {0};
    const st_write_entry e[] = {{"a", ST_F32, 1, {4}, a},
                                {"b", ST_BF16, 2, {2, 3}, b},
                                {"backbone.rotary_emb.inv_freq", ST_F32, 1, {2}, r}};
    assert_int_equal(st_write(p, e, 3, NULL), 0);
    st_archive ar;
    assert_int_equal(st_open_file(&ar, p), 0);
    assert_int_equal(st_check_expected(&ar, k_expect, 2, k_unknown_ok, 1), 0);
    /* the same file without the allowance: the buffer is an unexpected tensor */
    tu_expect_error(st_check_expected(&ar, k_expect, 2, NULL, 0), "registry without allowance",
                 (const char *[]){"unexpected", "backbone.rotary_emb.inv_freq", NULL});
    st_close(&ar);
    const char *files[] = {"m.safetensors", NULL};
    free(p);
    rm_tmpdir(dir, files);
}

static void check_expected_bad(const char *file, const char *const *words) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", BAD_DIR, file);
    st_archive ar;
    if (st_open_file(&ar, path) != 0) {
        print_error("%s should be a valid file: %s\n", path, smdlm_last_error());
        fail();
    }
    int rc = st_check_expected(&ar, k_expect, 2, k_unknown_ok, 1);
    st_close(&ar);
    tu_expect_file_error(rc, file, words);
}

static void test_expect_missing(void **s) {
    (void)s;
    check_expected_bad("st_expect_missing.safetensors",
                       (const char *[]){"missing", "'b'", "[2, 3]", NULL});
}
static void test_expect_wrong_shape(void **s) {
    (void)s;
    check_expected_bad("st_expect_wrong_shape.safetensors",
                       (const char *[]){"'b'", "[3, 2]", "expected [2, 3]", NULL});
}
static void test_expect_extra(void **s) {
    (void)s;
    check_expected_bad("st_expect_extra.safetensors",
                       (const char *[]){"unexpected", "c.weight", NULL});
}
static void test_expect_int_dtype(void **s) {
    (void)s;
    check_expected_bad("st_expect_int_dtype.safetensors",
                       (const char *[]){"'b'", "I32", "floating", NULL});
}

/* ------------------------------------------------------------ bad-file matrix */

static void check_bad_file(const char *file, const char *const *words) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", BAD_DIR, file);
    assert_true(sm_file_exists(path)); /* run tests/make_bad_files.py */
    st_archive ar;
    memset(&ar, 0x5a, sizeof ar); /* the reader must initialise it */
    int rc = st_open_file(&ar, path);
    tu_expect_file_error(rc, file, words);
    assert_int_equal(ar.ntensors, 0); /* failed open leaves an empty archive */
    assert_null(ar.tensors);
    assert_null(ar.files);
    st_close(&ar);
}

static void check_bad_dir(const char *name, const char *const *words) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", BAD_DIR, name);
    st_archive ar;
    int rc = st_open_dir(&ar, path);
    tu_expect_file_error(rc, name, words);
    assert_int_equal(ar.ntensors, 0);
    assert_int_equal(ar.nfiles, 0);
    st_close(&ar);
}

#define BAD(fn, file, ...)                                                                \
    static void fn(void **s) {                                                           \
        (void)s;                                                                         \
        check_bad_file(file, (const char *[]){__VA_ARGS__, NULL});                        \
    }
#define BAD_DIR_CASE(fn, name, ...)                                                       \
    static void fn(void **s) {                                                           \
        (void)s;                                                                         \
        check_bad_dir(name, (const char *[]){__VA_ARGS__, NULL});                         \
    }

BAD(bad_truncated_short, "st_truncated_short.safetensors", "5 bytes",
    "too short for the 8-byte header length")
BAD(bad_truncated_data, "st_truncated_data.safetensors", "'w'", "out of range", "truncated")
BAD(bad_header_len_beyond, "st_header_len_beyond_file.safetensors", "header length 1000",
    "beyond the end")
BAD(bad_header_too_large, "st_header_len_too_large.safetensors", "200000000", "100 MB")
BAD(bad_header_not_json, "st_header_not_json.safetensors", "not valid JSON")
BAD(bad_header_not_object, "st_header_not_object.safetensors", "not an object")
BAD(bad_header_trailing, "st_header_trailing_garbage.safetensors", "trailing garbage")
BAD(bad_trailing_bytes, "st_trailing_bytes.safetensors", "4 trailing bytes")
BAD(bad_hole, "st_hole.safetensors", "hole", "[8, 12)", "'b'")
BAD(bad_overlap, "st_overlap.safetensors", "overlaps", "'b'", "'a'")
BAD(bad_offsets_range, "st_offsets_out_of_range.safetensors", "'w'", "out of range")
BAD(bad_offsets_reversed, "st_offsets_reversed.safetensors", "'w'", "begin after end")
BAD(bad_nbytes, "st_nbytes_mismatch.safetensors", "'w'", "nbytes mismatch", "needs 16")
BAD(bad_dtype, "st_unknown_dtype.safetensors", "'w'", "unknown dtype 'Q4'")
BAD(bad_negative_shape, "st_negative_shape.safetensors", "'w'", "shape[0]", "negative")
BAD(bad_non_integer_shape, "st_non_integer_shape.safetensors", "'w'", "not an integer")
BAD(bad_float_form_shape, "st_float_form_shape.safetensors", "not a plain integer",
    "header offset")
BAD(bad_shape_overflow, "st_shape_overflow.safetensors", "'w'", "overflows")
BAD(bad_shape_too_large, "st_shape_too_large.safetensors", "'w'", "too large")
BAD(bad_too_many_dims, "st_too_many_dims.safetensors", "'w'", "10 dims")
BAD(bad_duplicate, "st_duplicate_name.safetensors", "duplicate", "'w'")
BAD(bad_metadata, "st_bad_metadata.safetensors", "__metadata__", "'step'", "not a string")
BAD(bad_metadata_dup, "st_metadata_duplicate_key.safetensors", "__metadata__",
    "duplicate key 'k'")
BAD(bad_empty_name, "st_empty_name.safetensors", "empty name")
BAD(bad_missing_field, "st_missing_field.safetensors", "'w'", "missing field 'data_offsets'")
BAD(bad_utf8, "st_invalid_utf8.safetensors", "UTF-8")
BAD(bad_control_char, "st_control_char.safetensors", "control character 0x09")

BAD_DIR_CASE(bad_shard_missing_file, "st_shard_missing_file", "model-00002-of-00002",
             "cannot open")
BAD_DIR_CASE(bad_shard_dotdot, "st_shard_dotdot", "'../model-00002-of-00002.safetensors'",
             "contains '..'", "'b'")
BAD_DIR_CASE(bad_shard_dotdot_only, "st_shard_dotdot_only", "'..'", "contains '..'")
BAD_DIR_CASE(bad_shard_slash, "st_shard_slash", "'sub/model-00002-of-00002.safetensors'",
             "contains a path separator")
BAD_DIR_CASE(bad_shard_empty_name, "st_shard_empty_name", "'b'", "empty shard file name")
BAD_DIR_CASE(bad_shard_absent, "st_shard_absent_tensor", "'c'", "absent",
             "model-00001-of-00002")
BAD_DIR_CASE(bad_shard_wrong, "st_shard_wrong_shard", "'b'", "absent", "found in")
BAD_DIR_CASE(bad_shard_unlisted, "st_shard_unlisted_tensor", "'d'", "not listed")
BAD_DIR_CASE(bad_shard_duplicate, "st_shard_duplicate", "duplicate", "'a'")
BAD_DIR_CASE(bad_shard_bad_shard, "st_shard_bad_shard", "overlaps", "'e'",
             "model-00002-of-00002")
BAD_DIR_CASE(bad_index_not_json, "st_shard_index_not_json", "not valid JSON")
BAD_DIR_CASE(bad_index_no_weight_map, "st_shard_index_no_weight_map", "weight_map")
BAD_DIR_CASE(bad_index_two_weight_maps, "st_shard_index_two_weight_maps",
             "duplicate 'weight_map'")
BAD_DIR_CASE(bad_index_duplicate, "st_shard_index_duplicate", "'a'", "listed twice")

static void test_open_missing_file(void **s) {
    (void)s;
    st_archive ar;
    tu_expect_error(st_open_file(&ar, "tests/bad/does-not-exist.safetensors"), "missing file",
                 (const char *[]){"does-not-exist", "cannot open", NULL});
    tu_expect_error(st_open_file(&ar, "tests/bad"), "a directory",
                 (const char *[]){"not a regular file", NULL});
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_dtypes),
        cmocka_unit_test(test_empty_archive_and_zero_tensor),
        cmocka_unit_test(test_writer_rejects_bad_entries),
        cmocka_unit_test(test_to_f32),
        cmocka_unit_test(test_to_f32_large_parallel),
        cmocka_unit_test(test_bf16_against_torch),
        cmocka_unit_test(test_f16_against_torch),
        cmocka_unit_test(test_bf16_rounding_cases),
        cmocka_unit_test(test_sharded_dir),
        cmocka_unit_test(test_expected_ok),
        cmocka_unit_test(test_expect_missing),
        cmocka_unit_test(test_expect_wrong_shape),
        cmocka_unit_test(test_expect_extra),
        cmocka_unit_test(test_expect_int_dtype),
        cmocka_unit_test(test_open_missing_file),
        cmocka_unit_test(bad_truncated_short),
        cmocka_unit_test(bad_truncated_data),
        cmocka_unit_test(bad_header_len_beyond),
        cmocka_unit_test(bad_header_too_large),
        cmocka_unit_test(bad_header_not_json),
        cmocka_unit_test(bad_header_not_object),
        cmocka_unit_test(bad_header_trailing),
        cmocka_unit_test(bad_trailing_bytes),
        cmocka_unit_test(bad_hole),
        cmocka_unit_test(bad_overlap),
        cmocka_unit_test(bad_offsets_range),
        cmocka_unit_test(bad_offsets_reversed),
        cmocka_unit_test(bad_nbytes),
        cmocka_unit_test(bad_dtype),
        cmocka_unit_test(bad_negative_shape),
        cmocka_unit_test(bad_non_integer_shape),
        cmocka_unit_test(bad_float_form_shape),
        cmocka_unit_test(bad_shape_overflow),
        cmocka_unit_test(bad_shape_too_large),
        cmocka_unit_test(bad_too_many_dims),
        cmocka_unit_test(bad_duplicate),
        cmocka_unit_test(bad_metadata),
        cmocka_unit_test(bad_metadata_dup),
        cmocka_unit_test(bad_empty_name),
        cmocka_unit_test(bad_missing_field),
        cmocka_unit_test(bad_utf8),
        cmocka_unit_test(bad_control_char),
        cmocka_unit_test(bad_shard_missing_file),
        cmocka_unit_test(bad_shard_dotdot),
        cmocka_unit_test(bad_shard_dotdot_only),
        cmocka_unit_test(bad_shard_slash),
        cmocka_unit_test(bad_shard_empty_name),
        cmocka_unit_test(bad_shard_absent),
        cmocka_unit_test(bad_shard_wrong),
        cmocka_unit_test(bad_shard_unlisted),
        cmocka_unit_test(bad_shard_duplicate),
        cmocka_unit_test(bad_shard_bad_shard),
        cmocka_unit_test(bad_index_not_json),
        cmocka_unit_test(bad_index_no_weight_map),
        cmocka_unit_test(bad_index_two_weight_maps),
        cmocka_unit_test(bad_index_duplicate),
    };
    return cmocka_run_group_tests_name("safetensors", tests, NULL, NULL);
}
