/* test_npy.c — .npy writer→reader round trips, v2/v3 headers and header-syntax variants,
 * files written by NumPy, token-id loading, and one hand-made broken file per failure
 * class (tests/bad/npy_*.npy, written by tests/make_bad_files.py). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_CLOEXEC, mkdtemp, fileno with -std=c11 */
#endif
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/npy.h"
#include "base/util.h"

#define BAD_DIR "tests/bad"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/smdlm_npy_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}


static void write_bytes(const char *path, const void *data, size_t n) {
    assert_int_equal(sm_write_file_atomic(path, data, n), 0);
}

/* ---------------------------------------------------------------- round trip */

static void roundtrip(npy_dtype dt, int ndim, const int64_t *shape, const void *data,
                      size_t elem) {
    const char *p = tmp_path("rt.npy");
    assert_int_equal(npy_write(p, dt, ndim, shape, data), 0);
    npy_array a;
    if (npy_read(p, &a) != 0) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
    assert_int_equal(a.dtype, dt);
    assert_int_equal(a.ndim, ndim);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        assert_int_equal(a.shape[d], shape[d]);
        numel *= (size_t)shape[d];
    }
    assert_int_equal(a.numel, numel);
    if (numel) assert_memory_equal(a.data, data, numel * elem);
    /* data starts at a multiple of 64 */
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(((size_t)sb.st_size - numel * elem) % 64, 0);
    npy_free(&a);
    assert_null(a.data);
}

static void test_roundtrip(void **state) {
    (void)state;
    int32_t i4[6] = {0, -1, 2147483647, -2147483647 - 1, 5, 6};
    int64_t i8[4] = {INT64_MIN, -1, 0, INT64_MAX};
    float f4[6] = {1.5f, -0.0f, 3e38f, 1e-45f, -2.0f, 0.25f};
    float scalar = 3.25f;
    roundtrip(NPY_I4, 2, (const int64_t[]){2, 3}, i4, 4);
    roundtrip(NPY_I8, 1, (const int64_t[]){4}, i8, 8);
    roundtrip(NPY_F4, 3, (const int64_t[]){3, 1, 2}, f4, 4);
    roundtrip(NPY_F4, 0, NULL, &scalar, 4);
    roundtrip(NPY_F4, 2, (const int64_t[]){0, 5}, NULL, 4);
    roundtrip(NPY_I4, 8, (const int64_t[]){1, 1, 1, 1, 1, 1, 2, 3}, i4, 4);
}

static void test_writer_header_text(void **state) {
    (void)state;
    const char *p = tmp_path("h.npy");
    int32_t v[3] = {1, 2, 3};
    assert_int_equal(npy_write(p, NPY_I4, 1, (const int64_t[]){3}, v), 0);
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(p, 4096, &text, &len), 0);
    static const char dict[] = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }";
    size_t hl = (size_t)((uint8_t)text[8] | (uint8_t)text[9] << 8);
    assert_int_equal((10 + hl) % 64, 0);
    assert_int_equal(len, 10 + hl + 12);
    assert_memory_equal(text, "\x93NUMPY\x01\x00", 8);
    assert_memory_equal(text + 10, dict, strlen(dict));
    for (size_t i = 10 + strlen(dict); i < 10 + hl - 1; i++) assert_int_equal(text[i], ' ');
    assert_int_equal(text[10 + hl - 1], '\n');
    free(text);
    tu_expect_error(npy_write(p, NPY_I4, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, v),
                 "write 9 dims", (const char *[]){"ndim 9", NULL});
    tu_expect_error(npy_write(p, NPY_I4, 1, (const int64_t[]){-3}, v), "write negative",
                 (const char *[]){"negative", NULL});
}

static void test_reads_numpy_files(void **state) {
    (void)state;
    /* written by numpy.save in tests/gen_float_fixtures.py */
    npy_array a;
    assert_int_equal(npy_read(tu_fixture("conv_f16_bits.npy"), &a), 0);
    assert_int_equal(a.dtype, NPY_I4);
    assert_int_equal(a.ndim, 1);
    assert_true(a.numel > 1000);
    assert_int_equal(((int32_t *)a.data)[1], 1); /* patterns start 0x0000, 0x0001, ... */
    npy_free(&a);
    assert_int_equal(npy_read(tu_fixture("conv_bf16_in.npy"), &a), 0);
    assert_int_equal(a.dtype, NPY_F4);
    npy_free(&a);
}

/* hand-built headers: v2 / v3 length fields and accepted syntax variants */
static void write_npy_raw(const char *path, int major, const char *header, const void *data,
                          size_t nbytes) {
    size_t hl = strlen(header);
    size_t pre = major == 1 ? 10 : 12;
    uint8_t *buf = sm_malloc(pre + hl + nbytes);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)major;
    buf[7] = 0;
    if (major == 1) {
        buf[8] = (uint8_t)hl;
        buf[9] = (uint8_t)(hl >> 8);
    } else {
        for (int i = 0; i < 4; i++) buf[8 + i] = (uint8_t)(hl >> (8 * i));
    }
    memcpy(buf + pre, header, hl);
    if (nbytes) memcpy(buf + pre + hl, data, nbytes);
    write_bytes(path, buf, pre + hl + nbytes);
    free(buf);
}

static void test_versions_and_syntax(void **state) {
    (void)state;
    const char *p = tmp_path("v.npy");
    int64_t v[6] = {1, 2, 3, 4, 5, 6};
    const struct {
        int major;
        const char *hdr;
        int ndim;
        int64_t d0, d1;
    } cases[] = {
        {2, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }\n", 2, 2, 3},
        {3, "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }       \n", 1, 6, 0},
        {1, "{\"descr\": \"<i8\", \"shape\": (3,2), \"fortran_order\": False}", 2, 3, 2},
        {1, "{'shape':(2L, 3L),'fortran_order':False,'descr':'<i8'}\n", 2, 2, 3},
        {1, "{'descr': '<i8', 'fortran_order': False, 'shape': ( 6 , ), }", 1, 6, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_npy_raw(p, cases[i].major, cases[i].hdr, v, sizeof v);
        npy_array a;
        if (npy_read(p, &a) != 0) {
            print_error("case %zu: %s\n", i, smdlm_last_error());
            fail();
        }
        assert_int_equal(a.dtype, NPY_I8);
        assert_int_equal(a.ndim, cases[i].ndim);
        assert_int_equal(a.shape[0], cases[i].d0);
        if (a.ndim == 2) assert_int_equal(a.shape[1], cases[i].d1);
        assert_memory_equal(a.data, v, sizeof v);
        npy_free(&a);
    }
    /* a v2 header longer than 65535 bytes (what v2's 4-byte length field exists for) */
    {
        const char *d = "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }";
        size_t hl = 70000;
        char *big = sm_malloc(hl + 1);
        memset(big, ' ', hl);
        memcpy(big, d, strlen(d));
        big[hl - 1] = '\n';
        big[hl] = 0;
        write_npy_raw(p, 2, big, v, sizeof v);
        free(big);
        npy_array b;
        if (npy_read(p, &b) != 0) {
            print_error("long v2 header: %s\n", smdlm_last_error());
            fail();
        }
        assert_int_equal(b.shape[0], 3);
        assert_memory_equal(b.data, v, sizeof v);
        npy_free(&b);
    }
    /* scalar */
    float s = 7.0f;
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", &s, 4);
    npy_array a;
    assert_int_equal(npy_read(p, &a), 0);
    assert_int_equal(a.ndim, 0);
    assert_int_equal(a.numel, 1);
    assert_true(((float *)a.data)[0] == 7.0f);
    npy_free(&a);
    /* syntax errors */
    const struct {
        const char *hdr;
        const char *word;
    } bad[] = {
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,), 'x': 1}", "unexpected key"},
        {"{'descr': '<i8', 'descr': '<i8', 'fortran_order': False, 'shape': (6,)}", "duplicate"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,)} junk", "after the dict"},
        {"{'descr': '<i8', 'fortran_order': Fals, 'shape': (6,)}", "True or False"},
        {"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (6,)}", "structured"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,,)}", "expected an integer"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,6)}",
         "more than 8"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999999999999,)}",
         "too large"},
        {"{'descr': '<i8 ", "unterminated"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_npy_raw(p, 1, bad[i].hdr, v, sizeof v);
        tu_expect_error(npy_read(p, &a), bad[i].hdr, (const char *[]){bad[i].word, NULL});
        assert_null(a.data);
    }
}

static void test_read_ids(void **state) {
    (void)state;
    const char *p = tmp_path("ids.npy");
    int32_t i4[6] = {0, 1, 2, 47, 48, 49};
    assert_int_equal(npy_write(p, NPY_I4, 2, (const int64_t[]){2, 3}, i4), 0);
    int32_t *ids;
    int B, T;
    assert_int_equal(npy_read_ids(p, 50, &ids, &B, &T), 0);
    assert_int_equal(B, 2);
    assert_int_equal(T, 3);
    assert_memory_equal(ids, i4, sizeof i4);
    free(ids);
    /* the same file with a smaller vocabulary: 49 is out of range at (1, 2) */
    tu_expect_error(npy_read_ids(p, 49, &ids, &B, &T), "vocab 49",
                 (const char *[]){"49", "b=1, t=2", "[0, 49)", NULL});
    assert_null(ids);

    int64_t i8[4] = {3, 1, 4, 1};
    assert_int_equal(npy_write(p, NPY_I8, 1, (const int64_t[]){4}, i8), 0);
    assert_int_equal(npy_read_ids(p, 5, &ids, &B, &T), 0);
    assert_int_equal(B, 1);
    assert_int_equal(T, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(ids[i], i8[i]);
    free(ids);
    tu_expect_error(npy_read_ids(p, 0, &ids, &B, &T), "vocab 0", (const char *[]){"positive", NULL});
    /* an i8 id beyond int32 is out of range, not truncated */
    int64_t big[1] = {(int64_t)1 << 32};
    assert_int_equal(npy_write(p, NPY_I8, 1, (const int64_t[]){1}, big), 0);
    tu_expect_error(npy_read_ids(p, 50, &ids, &B, &T), "id 2^32",
                 (const char *[]){"4294967296", "out of range", NULL});
}

/* ------------------------------------------------------------ bad-file matrix */

static void check_bad(const char *file, const char *const *words) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", BAD_DIR, file);
    assert_true(sm_file_exists(path)); /* run tests/make_bad_files.py */
    npy_array a;
    memset(&a, 0x5a, sizeof a);
    tu_expect_file_error(npy_read(path, &a), file, words);
    assert_null(a.data);
    assert_int_equal(a.numel, 0);
}

static void check_bad_ids(const char *file, const char *const *words) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", BAD_DIR, file);
    assert_true(sm_file_exists(path));
    int32_t *ids = (int32_t *)(uintptr_t)1;
    int B = -1, T = -1;
    tu_expect_file_error(npy_read_ids(path, 50, &ids, &B, &T), file, words);
    assert_null(ids);
}

#define BAD(fn, file, ...)                                                                \
    static void fn(void **s) {                                                           \
        (void)s;                                                                         \
        check_bad(file, (const char *[]){__VA_ARGS__, NULL});                             \
    }
#define BAD_IDS(fn, file, ...)                                                            \
    static void fn(void **s) {                                                           \
        (void)s;                                                                         \
        check_bad_ids(file, (const char *[]){__VA_ARGS__, NULL});                         \
    }

BAD(bad_magic, "npy_bad_magic.npy", "bad magic")
BAD(bad_version, "npy_bad_version.npy", "version 4.0")
BAD(bad_big_endian, "npy_big_endian.npy", "'>i4'", "big-endian")
BAD(bad_fortran, "npy_fortran_order.npy", "fortran_order", "C-order")
BAD(bad_descr, "npy_bad_descr.npy", "unsupported descr '<f8'")
BAD(bad_truncated_data, "npy_truncated_data.npy", "truncated", "20 bytes present",
    "needs 24")
BAD(bad_extra_data, "npy_extra_data.npy", "4 extra bytes")
BAD(bad_header_len, "npy_header_len_beyond.npy", "header length 5000", "beyond the end")
BAD(bad_truncated_header, "npy_truncated_header.npy", "beyond the end", "truncated")
BAD(bad_shape_not_tuple, "npy_shape_not_tuple.npy", "not a tuple")
BAD(bad_negative_dim, "npy_negative_dim.npy", "negative dimension")
BAD(bad_missing_key, "npy_missing_key.npy", "lacks key 'fortran_order'")
BAD(bad_shape_overflow, "npy_shape_overflow.npy", "overflows")
BAD_IDS(bad_ids_ge_vocab, "npy_ids_ge_vocab.npy", "token id 50", "b=1, t=2",
        "out of range [0, 50)")
BAD_IDS(bad_ids_negative, "npy_ids_negative.npy", "token id -3", "b=0, t=2", "out of range")
BAD_IDS(bad_ids_3d, "npy_ids_3d.npy", "1-D", "3-D")
BAD_IDS(bad_ids_float, "npy_ids_float.npy", "integers", "float32")
BAD_IDS(bad_ids_empty, "npy_ids_empty.npy", "T=0", "must be in [1")

static void test_missing_file(void **s) {
    (void)s;
    npy_array a;
    tu_expect_error(npy_read("tests/bad/nope.npy", &a), "missing",
                 (const char *[]){"cannot open", "nope.npy", NULL});
    tu_expect_error(npy_read("tests/bad", &a), "directory",
                 (const char *[]){"not a regular file", NULL});
}

/* Writing "atomically" to a device (-o /dev/null) writes in place: the temp-file-and-rename
 * route would replace the device node with a regular file. */
static void test_write_to_device(void **state) {
    (void)state;
    static const char data[] = "{\"x\": 1}\n";
    assert_int_equal(sm_write_file_atomic("/dev/null", data, sizeof data - 1), 0);
    struct stat st;
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_writer_header_text),
        cmocka_unit_test(test_reads_numpy_files),
        cmocka_unit_test(test_versions_and_syntax),
        cmocka_unit_test(test_read_ids),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_write_to_device),
        cmocka_unit_test(bad_magic),
        cmocka_unit_test(bad_version),
        cmocka_unit_test(bad_big_endian),
        cmocka_unit_test(bad_fortran),
        cmocka_unit_test(bad_descr),
        cmocka_unit_test(bad_truncated_data),
        cmocka_unit_test(bad_extra_data),
        cmocka_unit_test(bad_header_len),
        cmocka_unit_test(bad_truncated_header),
        cmocka_unit_test(bad_shape_not_tuple),
        cmocka_unit_test(bad_negative_dim),
        cmocka_unit_test(bad_missing_key),
        cmocka_unit_test(bad_shape_overflow),
        cmocka_unit_test(bad_ids_ge_vocab),
        cmocka_unit_test(bad_ids_negative),
        cmocka_unit_test(bad_ids_3d),
        cmocka_unit_test(bad_ids_float),
        cmocka_unit_test(bad_ids_empty),
    };
    return cmocka_run_group_tests_name("npy", tests, setup, teardown);
}
