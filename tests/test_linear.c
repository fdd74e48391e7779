/* test_linear.c — low-precision linear layers: every type against a float64 product of the
 * exact weight values (decoded here, independently of the library) and against
 * linear_forward_ref, on odd sizes, with and without bias. */
#include <math.h>
#include <string.h>

#include "compute/linear.h"
#include "base/rng.h"
#include "testutil.h"
#include "base/util.h"

static sm_rng g_rng;

static double urand(void) { return 2.0 * rng_uniform(&g_rng) - 1.0; }

/* Exact decoders written from the format definitions (not the library's). */
static double bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double f16_value(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (h & 0x8000) ? -v : v;
}

/* Random weights of type t with magnitudes around 2^-5..2^0 (q8: random ints and scales). */
typedef struct {
    linear_w w;
    double *exact; /* out·in exact values (q8: scale·q) */
    float *bias;
} wfix;

static void make_weights(wfix *f, wtype t, int OC, int IC) {
    size_t n = (size_t)OC * IC;
    f->exact = sm_malloc(sizeof(double) * n);
    f->bias = sm_malloc(sizeof(float) * (size_t)OC);
    for (int o = 0; o < OC; o++) f->bias[o] = (float)urand();
    memset(&f->w, 0, sizeof f->w);
    f->w.type = t, f->w.out = OC, f->w.in = IC;
    if (t == WT_F32) {
        float *d = sm_malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++) f->exact[i] = d[i] = (float)urand();
        f->w.data = d;
    } else if (t == WT_BF16 || t == WT_F16) {
        uint16_t *d = sm_malloc(2 * n);
        for (size_t i = 0; i < n; i++) {
            uint16_t sign = rng_uniform(&g_rng) < 0.5 ? 0x8000 : 0;
            uint16_t e = (uint16_t)(rng_uniform(&g_rng) * 6); /* 2^-5 .. 2^0 */
            uint16_t m = (uint16_t)(rng_uniform(&g_rng) * (t == WT_BF16 ? 128 : 1024));
            d[i] = t == WT_BF16 ? (uint16_t)(sign | (uint16_t)((122 + e) << 7) | m)
                                : (uint16_t)(sign | (uint16_t)((10 + e) << 10) | m);
            f->exact[i] = t == WT_BF16 ? bf16_value(d[i]) : f16_value(d[i]);
        }
        f->w.data = d;
    } else {
        int8_t *d = sm_malloc(n);
        float *s = sm_malloc(sizeof(float) * (size_t)OC);
        for (int o = 0; o < OC; o++) s[o] = (float)(0.01 * (1.5 + urand()));
        for (size_t i = 0; i < n; i++) {
            d[i] = (int8_t)lrint(127.0 * urand());
            f->exact[i] = (double)s[i / IC] * d[i];
        }
        f->w.data = d;
        f->w.scales = s;
    }
}

static void free_weights(wfix *f) {
    free((void *)f->w.data);
    free((void *)f->w.scales);
    free(f->exact);
    free(f->bias);
}

/* |got − exact| ≤ rel · Σ_k |x_k w_k| + 1e-6 per output, exact in float64; prints the worst. */
static size_t compare_exact(const char *what, const float *got, const float *x, const wfix *f,
                            const float *bias, int N, double rel) {
    int OC = f->w.out, IC = f->w.in;
    size_t bad = 0, worst = 0;
    double worst_ratio = -1, worst_ref = 0, worst_bound = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0, a = 0;
            for (int k = 0; k < IC; k++) {
                double p = (double)x[(size_t)n * IC + k] * f->exact[(size_t)o * IC + k];
                s += p, a += fabs(p);
            }
            if (bias) s += bias[o], a += fabs(bias[o]);
            size_t i = (size_t)n * OC + o;
            double bound = rel * a + 1e-6, err = fabs((double)got[i] - s);
            if (!(err <= bound)) bad++;
            double ratio = isnan(got[i]) ? INFINITY : err / bound;
            if (ratio > worst_ratio) worst_ratio = ratio, worst = i, worst_ref = s, worst_bound = bound;
        }
    if (bad)
        printf("%s: %zu of %zu outside the bound; worst [%zu] (n %zu, o %zu): got %.9g exact %.9g "
               "bound %.3g (%.2fx)\n",
               what, bad, (size_t)N * OC, worst, worst / OC, worst % OC, got[worst], worst_ref,
               worst_bound, worst_ratio);
    return bad;
}

static float *rand_x(int N, int IC) {
    float *x = sm_malloc(sizeof(float) * (size_t)N * IC);
    for (size_t i = 0; i < (size_t)N * IC; i++) x[i] = (float)urand();
    return x;
}

static const char *type_name(wtype t) {
    return t == WT_F32 ? "f32" : t == WT_BF16 ? "bf16" : t == WT_F16 ? "f16" : "q8";
}

/* fp32 accumulation over IC terms: a few ulps of Σ|x w| (blocked sums grow like √IC at
 * most for the sizes here; 2^-24·IC is the worst case and too loose to catch bugs). */
#define FP32_REL 2e-6
/* vdpbf16ps: x rounded to bf16 (8 significant bits, ≤ 2^-8 relative), products exact. */
#define BF16_REL (0x1p-8 + FP32_REL)

/* The test's own bf16 rounding (nearest, ties to even) of finite floats. */
static float round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static const int k_shapes[][3] = {
    {1, 33, 17}, {3, 904, 65}, {17, 913, 129}, {2, 96, 1}, {513, 136, 35},
    {16, 4133, 9}, /* in > the 4096 block: partial sums accumulate into out */
    {1, 4133, 6},  {4, 7, 3},
};

/* One type on one path, every shape, bias or not: vs float64 of the exact weights and vs the
 * reference twin. The bf16 path is checked tightly against the float64 product of the
 * bf16-rounded x too, so that path is known to be the one that ran. */
static void check_path(wtype t, linear_path path) {
    assert_int_equal(linear_force_path(path), 0);
    int bf = linear_path_for(t, 1) == LINEAR_AVX512BF16;
    for (size_t s = 0; s < sizeof k_shapes / sizeof *k_shapes; s++) {
        int N = k_shapes[s][0], IC = k_shapes[s][1], OC = k_shapes[s][2];
        if (path == LINEAR_GENERIC && (size_t)N * IC * OC > 4000000) continue; /* slow under ASan */
        wfix f;
        make_weights(&f, t, OC, IC);
        float *x = rand_x(N, IC), *xr = sm_malloc(sizeof(float) * (size_t)N * IC);
        for (size_t i = 0; i < (size_t)N * IC; i++) xr[i] = round_bf16(x[i]);
        float *got = sm_malloc(sizeof(float) * (size_t)N * OC);
        float *ref = sm_malloc(sizeof(float) * (size_t)N * OC);
        for (int b = 0; b < 2; b++) {
            const float *bias = b ? f.bias : NULL;
            char what[128];
            snprintf(what, sizeof what, "%s path %s N %d in %d out %d bias %d", type_name(t),
                     linear_path_name(linear_path_for(t, N)), N, IC, OC, b);
            linear_forward(got, x, &f.w, bias, N);
            linear_forward_ref(ref, x, &f.w, bias, N);
            assert_int_equal(compare_exact(what, got, x, &f, bias, N, bf ? BF16_REL : FP32_REL), 0);
            if (bf) assert_int_equal(compare_exact(what, got, xr, &f, bias, N, FP32_REL), 0);
            assert_int_equal(compare_exact("reference twin", ref, x, &f, bias, N, FP32_REL), 0);
        }
        free(x), free(xr), free(got), free(ref);
        free_weights(&f);
    }
    assert_int_equal(linear_force_path(LINEAR_AUTO), 0);
}

static void test_forward_paths(void **state) {
    for (linear_path p = LINEAR_AUTO; p <= LINEAR_SGEMM; p++) {
        if (!linear_path_available(p)) {
            printf("skipping the %s path: not on this processor\n", linear_path_name(p));
            continue;
        }
        for (wtype t = WT_F32; t <= WT_Q8; t++) check_path(t, p);
    }
}

/* The bf16 path really rounds x: with x = 1 + 2^-10 (not a bf16 value) and w = 1, the exact
 * path gives 1 + 2^-10 and the bf16 path 1. */
static void test_bf16_rounds_x(void **state) {
    if (!linear_path_available(LINEAR_AVX512BF16)) skip();
    uint16_t w1 = 0x3f80; /* 1.0 */
    linear_w w = {.type = WT_BF16, .out = 1, .in = 1, .data = &w1};
    float x = 1.0f + 0x1p-10f, y;
    assert_int_equal(linear_force_path(LINEAR_AVX512BF16), 0);
    linear_forward(&y, &x, &w, NULL, 1);
    assert_true(y == 1.0f);
    assert_int_equal(linear_force_path(LINEAR_AVX512), 0);
    linear_forward(&y, &x, &w, NULL, 1);
    assert_true(y == x);
    assert_int_equal(linear_force_path(LINEAR_AUTO), 0);
}

static void test_path_names(void **state) {
    linear_path p;
    assert_int_equal(linear_path_parse("avx512bf16", &p), 0);
    assert_int_equal(p, LINEAR_AVX512BF16);
    tu_expect_error(linear_path_parse("avx9000", &p), "path name", (const char *const[]){"avx9000", NULL});
    for (wtype t = WT_F32; t <= WT_Q8; t++) printf("%s: %s\n", type_name(t), linear_kernel_name(t));
}

static void test_rows(void **state) {
    for (wtype t = WT_F32; t <= WT_Q8; t++) {
        int OC = 37, IC = 75;
        wfix f;
        make_weights(&f, t, OC, IC);
        int32_t rows[5] = {36, 0, 5, 5, 17};
        float *got = sm_malloc(sizeof(float) * 5 * IC);
        linear_rows_f32(got, &f.w, rows, 5);
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < IC; k++) {
                double e = f.exact[(size_t)rows[i] * IC + k];
                /* bf16/f16/f32 rows are exact; q8 rows are the fp32 product scale·q */
                if (t == WT_Q8) e = (float)e;
                if ((double)got[(size_t)i * IC + k] != e) {
                    printf("%s row %d col %d: got %.9g expected %.9g\n", type_name(t), rows[i], k,
                           got[(size_t)i * IC + k], e);
                    fail();
                }
            }
        /* bf16 rows round-trip: back to bf16 they are the stored bits */
        if (t == WT_BF16)
            for (int k = 0; k < IC; k++) {
                float v = got[k];
                uint32_t u;
                memcpy(&u, &v, 4);
                assert_int_equal(u & 0xffff, 0);
                assert_int_equal(u >> 16, ((const uint16_t *)f.w.data)[(size_t)rows[0] * IC + k]);
            }
        free(got);
        free_weights(&f);
    }
}

/* Symmetric per-row int8: scale = max|row|/127, q = round(w/scale) (so max |q| = 127),
 * a zero row gives scale 0 and q = 0; the product then errs by at most Σ|x_k|·scale/2. */
static void test_quantize_q8(void **state) {
    for (wtype t = WT_F32; t <= WT_BF16; t++) {
        int OC = 23, IC = 301, N = 3;
        wfix f;
        make_weights(&f, t, OC, IC);
        size_t es = t == WT_F32 ? 4 : 2;
        memset((unsigned char *)f.w.data + es * 7 * IC, 0, es * IC); /* row 7 is zero */
        for (int k = 0; k < IC; k++) f.exact[7 * IC + k] = 0;
        linear_w q;
        assert_int_equal(linear_quantize_q8(&q, &f.w), 0);
        assert_int_equal(q.type, WT_Q8);
        const int8_t *qd = q.data;
        for (int r = 0; r < OC; r++) {
            double amax = 0;
            for (int k = 0; k < IC; k++) amax = fmax(amax, fabs(f.exact[(size_t)r * IC + k]));
            assert_float_equal(q.scales[r], (float)(amax / 127), 1e-7 * amax);
            int qmax = 0;
            for (int k = 0; k < IC; k++) {
                int v = qd[(size_t)r * IC + k];
                qmax = abs(v) > qmax ? abs(v) : qmax;
                double want = amax > 0 ? f.exact[(size_t)r * IC + k] / (amax / 127) : 0;
                if (fabs(v - want) > 0.5 + 1e-4) {
                    printf("q8 row %d col %d: q %d, w/scale %.6f\n", r, k, v, want);
                    fail();
                }
            }
            assert_int_equal(qmax, r == 7 ? 0 : 127);
        }
        /* forward on q against the float64 product of the original weights */
        float *x = rand_x(N, IC), *y = sm_malloc(sizeof(float) * (size_t)N * OC);
        linear_forward(y, x, &q, f.bias, N);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double e = f.bias[o], sx = 0, sa = 0;
                for (int k = 0; k < IC; k++) {
                    double xv = x[(size_t)n * IC + k], p = xv * f.exact[(size_t)o * IC + k];
                    e += p, sa += fabs(p), sx += fabs(xv);
                }
                double bound = sx * q.scales[o] / 2 + FP32_REL * (sa + sx * q.scales[o]) + 1e-6;
                double err = fabs(y[(size_t)n * OC + o] - e);
                if (err > bound) {
                    printf("q8 forward n %d o %d: got %.7g exact %.7g bound %.3g\n", n, o,
                           y[(size_t)n * OC + o], e, bound);
                    fail();
                }
            }
        free(x), free(y);
        linear_w again;
        tu_expect_error(linear_quantize_q8(&again, &q), "q8 source", (const char *const[]){"already", NULL});
        linear_free(&q);
        assert_null(q.data);
        free_weights(&f);
    }
}

/* A weight that is inf or NaN cannot be quantised: an error naming the row. */
static void test_quantize_q8_nonfinite(void **state) {
    float w[3 * 4] = {1, 2, 3, 4, 0, 0, 0, 0, 1, NAN, 1, 1};
    linear_w src = {.type = WT_F32, .out = 3, .in = 4, .data = w}, q;
    tu_expect_error(linear_quantize_q8(&q, &src), "NaN weight", (const char *const[]){"row 2", "non-finite", NULL});
    assert_null(q.owned);
    w[9] = 1, w[1] = INFINITY;
    tu_expect_error(linear_quantize_q8(&q, &src), "inf weight", (const char *const[]){"row 0", NULL});
    w[1] = 2;
    assert_int_equal(linear_quantize_q8(&q, &src), 0);
    assert_true(q.scales[1] == 0.0f && q.scales[0] == 4.0f / 127.0f);
    linear_free(&q);
}

/* PyTorch: F.linear(x, W_bf16.float(), bias) (tests/gen_linear_fixtures.py), every path. */
static void test_torch_fixture(void **state) {
    size_t nx, nw, nb, ny;
    int64_t shape[2];
    int nd;
    float *x = tu_load_f32(tu_fixture("linear/x.npy"), &nx), *b = tu_load_f32(tu_fixture("linear/bias.npy"), &nb);
    float *yref = tu_load_f32(tu_fixture("linear/y.npy"), &ny);
    int32_t *bits = tu_load_i32(tu_fixture("linear/w_bits.npy"), &nw, shape, &nd);
    assert_int_equal(nd, 2);
    int OC = (int)shape[0], IC = (int)shape[1], N = (int)(nx / (size_t)IC);
    uint16_t *wb = sm_malloc(2 * nw);
    for (size_t i = 0; i < nw; i++) wb[i] = (uint16_t)bits[i];
    linear_w w = {.type = WT_BF16, .out = OC, .in = IC, .data = wb};
    float *y = sm_malloc(sizeof(float) * ny);
    for (linear_path p = LINEAR_AUTO; p <= LINEAR_SGEMM; p++) {
        if (!linear_path_available(p)) continue;
        assert_int_equal(linear_force_path(p), 0);
        linear_forward(y, x, &w, b, N);
        /* |y| ~ 1.5; x ~ N(0,1) so bf16 rounding of x gives ~2^-9·√IC·0.05 ≈ 3e-3 */
        float tol = p == LINEAR_AVX512BF16 ? 1e-2f : 1e-5f;
        assert_int_equal(tu_compare_f32(linear_path_name(p), y, yref, ny, tol, tol), 0);
    }
    assert_int_equal(linear_force_path(LINEAR_AUTO), 0);
    free(x), free(b), free(yref), free(bits), free(wb), free(y);
}

int main(void) {
    rng_seed(&g_rng, 20240611);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_paths),
        cmocka_unit_test(test_bf16_rounds_x),
        cmocka_unit_test(test_path_names),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_quantize_q8),
        cmocka_unit_test(test_quantize_q8_nonfinite),
        cmocka_unit_test(test_torch_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
