/* test_kernels.c — every optimised kernel against its plain reference twin, on odd sizes,
 * with sentinel floats around each output to catch out-of-bounds writes. */
#include <math.h>
#include <string.h>

#include "compute/kernels.h"
#include "base/rng.h"
#include "testutil.h"
#include "base/util.h"

#define GUARD 16
#define SENTINEL 12345.678f

static sm_rng g_rng;

static float *rand_buf(size_t n, float scale) {
    float *p = sm_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = scale * (float)(2.0 * rng_uniform(&g_rng) - 1.0);
    return p;
}

/* Output buffer with GUARD sentinels on both sides; returns a pointer to the payload. */
static float *guarded(size_t n) {
    float *p = sm_malloc(sizeof(float) * (n + 2 * GUARD));
    for (size_t i = 0; i < n + 2 * GUARD; i++) p[i] = SENTINEL;
    return p + GUARD;
}

static void check_guards(const float *payload, size_t n) {
    for (int i = 1; i <= GUARD; i++) {
        assert_true(payload[-i] == SENTINEL);
        assert_true(payload[n - 1 + i] == SENTINEL);
    }
}

static void free_guarded(float *payload) { free(payload - GUARD); }

static void test_matmul(void **state) {
    int shapes[][3] = {{1, 7, 5}, {13, 33, 65}, {64, 64, 192}, {5, 256, 3}};
    for (size_t s = 0; s < 4; s++) {
        int N = shapes[s][0], IC = shapes[s][1], OC = shapes[s][2];
        float *x = rand_buf((size_t)N * IC, 1), *w = rand_buf((size_t)OC * IC, 1), *b = rand_buf(OC, 1);
        float *o = guarded((size_t)N * OC), *r = sm_malloc(sizeof(float) * N * OC);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            matmul_forward(o, x, w, with_bias ? b : NULL, N, IC, OC);
            matmul_forward_ref(r, x, w, with_bias ? b : NULL, N, IC, OC);
            assert_int_equal(tu_compare_f32("matmul", o, r, (size_t)N * OC, 1e-5f, 1e-5f), 0);
            check_guards(o, (size_t)N * OC);
        }
        free(x), free(w), free(b), free(r), free_guarded(o);
    }
}

static void test_layernorm_modulate(void **state) {
    int B = 3, T = 5, D = 67, stride = 6 * D;
    float *x = rand_buf((size_t)B * T * D, 3), *w = rand_buf(D, 1), *mod = rand_buf((size_t)B * stride, 1);
    for (int i = 0; i < D * B * T; i += 7) x[i] += 10.0f; /* non-zero mean */
    float *o = guarded((size_t)B * T * D), *r = sm_malloc(sizeof(float) * B * T * D);
    layernorm_modulate_forward(o, x, w, mod + D, mod + 2 * D, stride, B, T, D);
    layernorm_modulate_forward_ref(r, x, w, mod + D, mod + 2 * D, stride, B, T, D);
    assert_int_equal(tu_compare_f32("layernorm_modulate", o, r, (size_t)B * T * D, 2e-5f, 2e-5f), 0);
    check_guards(o, (size_t)B * T * D);
    free(x), free(w), free(mod), free(r), free_guarded(o);
}

static void test_rope(void **state) {
    int B = 2, T = 9, H = 3, hd = 10;
    size_t n = (size_t)B * T * 3 * H * hd;
    float *a = rand_buf(n, 2), *b = sm_malloc(sizeof(float) * n);
    memcpy(b, a, sizeof(float) * n);
    float *c = sm_malloc(sizeof(float) * T * hd / 2), *s = sm_malloc(sizeof(float) * T * hd / 2);
    rope_tables(c, s, T, hd, 10000.0f);
    /* the tables themselves: cos/sin of t / 10000^(2i/hd) */
    assert_true(fabsf(c[(size_t)5 * hd / 2 + 1] - cosf(5.0f / powf(10000.0f, 2.0f / hd))) < 1e-6f);
    rope_forward(a, c, s, B, T, H, hd);
    rope_forward_ref(b, c, s, B, T, H, hd);
    assert_int_equal(tu_compare_f32("rope", a, b, n, 1e-6f, 1e-6f), 0);
    free(a), free(b), free(c), free(s);
}

static void test_attention(void **state) {
    int B = 2, T = 17, H = 3, hd = 8, D = H * hd;
    float *qkv = rand_buf((size_t)B * T * 3 * D, 2);
    for (int causal = 0; causal < 2; causal++) {
        float *o = guarded((size_t)B * T * D), *r = sm_malloc(sizeof(float) * B * T * D);
        int nt = kernels_get_threads();
        float *scratch = sm_malloc(sizeof(float) * attention_scratch_floats(T, nt));
        attention_forward(o, qkv, scratch, B, T, H, hd, causal);
        attention_forward_ref(r, qkv, B, T, H, hd, causal);
        assert_int_equal(tu_compare_f32(causal ? "attention causal" : "attention", o, r,
                                        (size_t)B * T * D, 1e-5f, 1e-5f), 0);
        check_guards(o, (size_t)B * T * D);
        free(r), free(scratch), free_guarded(o);
    }
    free(qkv);
}

static void test_gelu_residual(void **state) {
    size_t n = 3 * 4 * 50;
    float *a = rand_buf(n, 8), *b = sm_malloc(sizeof(float) * n);
    a[0] = 0.0f, a[1] = -30.0f, a[2] = 30.0f, a[3] = 1e-4f;
    memcpy(b, a, sizeof(float) * n);
    gelu_tanh_forward(a, n);
    gelu_tanh_forward_ref(b, n);
    assert_int_equal(tu_compare_f32("gelu_tanh", a, b, n, 1e-6f, 1e-6f), 0);
    float *y = rand_buf(n, 1), *g = rand_buf(2 * 50 * 3, 1);
    memcpy(b, a, sizeof(float) * n);
    gated_residual_forward(a, y, g + 7, 100, 3, 4, 50);
    gated_residual_forward_ref(b, y, g + 7, 100, 3, 4, 50);
    assert_int_equal(tu_compare_f32("gated_residual", a, b, n, 1e-6f, 1e-6f), 0);
    free(a), free(b), free(y), free(g);
}

static void test_exp_softmax(void **state) {
    size_t n = 4001;
    float *x = sm_malloc(sizeof(float) * n), *e = sm_malloc(sizeof(float) * n), *r = sm_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = -100.0f + 188.0f * (float)i / (float)(n - 1);
    x[0] = -1e6f;
    vexp(e, x, n);
    for (size_t i = 0; i < n; i++) r[i] = expf(x[i]);
    assert_int_equal(tu_compare_f32("vexp", e, r, n, 1e-37f, 3e-7f), 0);
    assert_true(e[0] == 0.0f);
    float *a = rand_buf(1000, 20), *b = sm_malloc(sizeof(float) * 1000);
    a[5] = -1e6f; /* SUBS's mask logit */
    memcpy(b, a, sizeof(float) * 1000);
    log_softmax_row(a, 1000);
    log_softmax_row_ref(b, 1000);
    assert_int_equal(tu_compare_f32("log_softmax", a, b, 1000, 2e-5f, 1e-6f), 0);
    free(x), free(e), free(r), free(a), free(b);
}

static void test_softmask_rows(void **state) {
    const int n = 5000;
    float *x = rand_buf(n, 6);
    x[17] = -1e6f; /* SUBS's mask entry */
    x[4000] = 9.0f, x[12] = 9.0f, x[4999] = 8.5f; /* a tie at the top: lower index first */
    float got = row_neg_entropy(x, n), ref = row_neg_entropy_ref(x, n);
    assert_int_equal(tu_compare_f32("row_neg_entropy", &got, &ref, 1, 1e-5f, 1e-5f), 0);
    int32_t idx[3];
    float val[3];
    row_topk(x, n, 3, idx, val);
    int32_t want[3] = {12, 4000, 4999};
    assert_int_equal(tu_compare_i32("row_topk", idx, want, 3), 0);
    /* the soft-masking input passes the top value as the maximum: the same bits */
    float with_max = row_neg_entropy_max(x, n, val[0]);
    assert_memory_equal(&with_max, &got, sizeof got);
    for (int i = 0; i < 4; i++) x[i] = 0.0f;
    for (int i = 4; i < n; i++) x[i] = -1e6f; /* a SUBS carry-over row: one-hot */
    x[2] = 0.0f;
    got = row_neg_entropy(x + 2, 1), ref = row_neg_entropy_ref(x + 2, 1);
    assert_true(fabsf(got) < 1e-6f && fabsf(ref) < 1e-6f);
    free(x);
}

int main(void) {
    rng_seed(&g_rng, 42);
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),       cmocka_unit_test(test_layernorm_modulate),
        cmocka_unit_test(test_rope),         cmocka_unit_test(test_attention),
        cmocka_unit_test(test_gelu_residual), cmocka_unit_test(test_exp_softmax),
        cmocka_unit_test(test_softmask_rows),
    };
    return TU_RUN_PER_ISA("kernels", tests);
}
