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
        assert_int_equal(linear_q8_wrap(&f->w, d, s, OC, IC, "test weights"), 0);
        for (int o = 0; o < OC; o++) {
            int32_t sum = 0;
            for (int k = 0; k < IC; k++) sum += d[(size_t)o * IC + k];
            assert_int_equal(f->w.row_sums[o], sum);
        }
    }
}

static void free_weights(wfix *f) {
    free((void *)f->w.data);
    free((void *)f->w.scales);
    free(f->w.owned);
    free(f->exact);
    free(f->bias);
}

/* Half the q8 quantisation step of each row of x (max|x| / 254): the most a quantised x_k is
 * off by. */
static double *x_half_steps(const float *x, int N, int IC) {
    double *h = sm_malloc(sizeof(double) * (size_t)N);
    for (int n = 0; n < N; n++) {
        double m = 0;
        for (int k = 0; k < IC; k++) m = fmax(m, fabs(x[(size_t)n * IC + k]));
        h[n] = m / 254;
    }
    return h;
}

/* |got − exact| ≤ rel · Σ_k |x_k w_k| + xh[n] · Σ_k |w_k| + 1e-6 per output (xh: q8's int8 x,
 * x_half_steps; NULL for fp32 x), exact in float64; prints the worst. */
static size_t compare_exact(const char *what, const float *got, const float *x, const wfix *f,
                            const float *bias, int N, double rel, const double *xh) {
    int OC = f->w.out, IC = f->w.in;
    size_t bad = 0, worst = 0;
    double worst_ratio = -1, worst_ref = 0, worst_bound = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0, a = 0, wa = 0;
            for (int k = 0; k < IC; k++) {
                double p = (double)x[(size_t)n * IC + k] * f->exact[(size_t)o * IC + k];
                s += p, a += fabs(p), wa += fabs(f->exact[(size_t)o * IC + k]);
            }
            if (bias) s += bias[o], a += fabs(bias[o]);
            size_t i = (size_t)n * OC + o;
            double bound = rel * a + (xh ? xh[n] * wa * (1 + rel) : 0) + 1e-6, err = fabs((double)got[i] - s);
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

/* The first output where a and b differ in their bits (printed), or -1. */
static long first_difference(const char *what, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            printf("%s: [%zu] %.9g against the reference's %.9g\n", what, i, a[i], b[i]);
            return (long)i;
        }
    return -1;
}

/* One type on one path, every shape, bias or not: vs float64 of the exact weights and vs the
 * reference twin. The bf16 path is checked tightly against the float64 product of the
 * bf16-rounded x too, so that path is known to be the one that ran. q8 on its int8 kernels
 * quantises x: within half a step of x per term of float64, and bit for bit the reference's
 * result (the same integers); forced sgemm multiplies the dequantised weights by fp32 x. */
static void check_path(wtype t, linear_path path) {
    assert_int_equal(linear_force_path(path), 0);
    int bf = linear_path_for(t, 1) == LINEAR_AVX512BF16;
    int q8dot = t == WT_Q8 && linear_path_for(t, 1) != LINEAR_SGEMM;
    for (size_t s = 0; s < sizeof k_shapes / sizeof *k_shapes; s++) {
        int N = k_shapes[s][0], IC = k_shapes[s][1], OC = k_shapes[s][2];
        if (path == LINEAR_GENERIC && (size_t)N * IC * OC > 4000000) continue; /* slow under ASan */
        wfix f;
        make_weights(&f, t, OC, IC);
        float *x = rand_x(N, IC), *xr = sm_malloc(sizeof(float) * (size_t)N * IC);
        for (size_t i = 0; i < (size_t)N * IC; i++) xr[i] = round_bf16(x[i]);
        float *got = sm_malloc(sizeof(float) * (size_t)N * OC);
        float *ref = sm_malloc(sizeof(float) * (size_t)N * OC);
        double *xh = x_half_steps(x, N, IC);
        for (int b = 0; b < 2; b++) {
            const float *bias = b ? f.bias : NULL;
            char what[128];
            snprintf(what, sizeof what, "%s path %s N %d in %d out %d bias %d", type_name(t),
                     linear_path_name(linear_path_for(t, N)), N, IC, OC, b);
            linear_forward(got, x, &f.w, bias, N);
            linear_forward_ref(ref, x, &f.w, bias, N);
            assert_int_equal(compare_exact(what, got, x, &f, bias, N, bf ? BF16_REL : FP32_REL,
                                           q8dot ? xh : NULL), 0);
            if (bf) assert_int_equal(compare_exact(what, got, xr, &f, bias, N, FP32_REL, NULL), 0);
            if (q8dot) assert_int_equal(first_difference(what, got, ref, (size_t)N * OC), -1);
            assert_int_equal(compare_exact("reference twin", ref, x, &f, bias, N, FP32_REL,
                                           t == WT_Q8 ? xh : NULL), 0);
        }
        free(x), free(xr), free(got), free(ref), free(xh);
        free_weights(&f);
    }
    assert_int_equal(linear_force_path(LINEAR_AUTO), 0);
}

static void test_forward_paths(void **state) {
    for (linear_path p = LINEAR_AUTO; p <= LINEAR_AVX512VNNI; p++) {
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
 * a zero row gives scale 0 and q = 0; the product then errs by at most Σ|x_k|·scale/2 for the
 * weights and max|x|/254 · Σ|q_k·scale| for x's own quantisation. */
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
            int32_t sum = 0;
            for (int k = 0; k < IC; k++) {
                int v = qd[(size_t)r * IC + k];
                sum += v;
                qmax = abs(v) > qmax ? abs(v) : qmax;
                double want = amax > 0 ? f.exact[(size_t)r * IC + k] / (amax / 127) : 0;
                if (fabs(v - want) > 0.5 + 1e-4) {
                    printf("q8 row %d col %d: q %d, w/scale %.6f\n", r, k, v, want);
                    fail();
                }
            }
            assert_int_equal(qmax, r == 7 ? 0 : 127);
            assert_int_equal(q.row_sums[r], sum);
        }
        /* forward on q against the float64 product of the original weights */
        float *x = rand_x(N, IC), *y = sm_malloc(sizeof(float) * (size_t)N * OC);
        double *xh = x_half_steps(x, N, IC);
        linear_forward(y, x, &q, f.bias, N);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double e = f.bias[o], sx = 0, sa = 0, sq = 0;
                for (int k = 0; k < IC; k++) {
                    double xv = x[(size_t)n * IC + k], p = xv * f.exact[(size_t)o * IC + k];
                    e += p, sa += fabs(p), sx += fabs(xv);
                    sq += fabs((double)qd[(size_t)o * IC + k] * q.scales[o]);
                }
                double bound = sx * q.scales[o] / 2 + xh[n] * sq +
                               FP32_REL * (sa + sx * q.scales[o] + xh[n] * sq) + 1e-6;
                double err = fabs(y[(size_t)n * OC + o] - e);
                if (err > bound) {
                    printf("q8 forward n %d o %d: got %.7g exact %.7g bound %.3g\n", n, o,
                           y[(size_t)n * OC + o], e, bound);
                    fail();
                }
            }
        free(x), free(y), free(xh);
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

/* q8 quantises each row of x to int8 on every int8 path: with x = (127, v) and q = (1, 1),
 * scale 1, the product is 127 + round-half-even(v); forced sgemm keeps fp32 x (127 + v). A
 * row with a NaN or an infinity gives NaN, a zero row the bias. */
static void test_q8_quantises_x(void **state) {
    int8_t q[2] = {1, 1};
    float one = 1.0f, bias = 0.25f;
    linear_w w;
    assert_int_equal(linear_q8_wrap(&w, q, &one, 1, 2, "test"), 0);
    const float v[] = {1.4f, 2.5f, 3.5f, -2.5f, 126.6f};
    const float want[] = {128, 129, 131, 125, 254};
    for (linear_path p = LINEAR_AUTO; p <= LINEAR_AVX512VNNI; p++) {
        if (!linear_path_available(p)) continue;
        assert_int_equal(linear_force_path(p), 0);
        const int sg = linear_path_for(WT_Q8, 1) == LINEAR_SGEMM;
        for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
            float x[2] = {127.0f, v[i]}, y;
            linear_forward(&y, x, &w, NULL, 1);
            float expect = sg ? 127.0f + v[i] : want[i];
            if (y != expect) {
                printf("path %s, x = (127, %g): got %.9g, expected %.9g\n",
                       linear_path_name(linear_path_for(WT_Q8, 1)), v[i], y, expect);
                fail();
            }
        }
        float bad[6] = {1, NAN, INFINITY, 1, 0, 0}, y[3];
        linear_forward(y, bad, &w, &bias, 3);
        assert_true(isnan(y[0]) && (sg ? isinf(y[1]) : isnan(y[1])) && y[2] == bias);
    }
    assert_int_equal(linear_force_path(LINEAR_AUTO), 0);
    linear_free(&w);
}

/* The longest q8 row with every product at 127·127: Σ = 131072·16129 fits in int32, while the
 * VNNI kernel's unsigned x (255) makes its raw sum wrap around; the result is exact anyway. */
static void test_q8_longest_row(void **state) {
    const int IC = LINEAR_Q8_MAX_IN;
    int8_t *q = sm_malloc((size_t)IC);
    float *x = sm_malloc(sizeof(float) * (size_t)IC), one = 1.0f, y;
    for (int k = 0; k < IC; k++) q[k] = (k % 3) ? 127 : -127, x[k] = (k % 3) ? 127.0f : -127.0f;
    linear_w w;
    assert_int_equal(linear_q8_wrap(&w, q, &one, 1, IC, "test"), 0);
    for (linear_path p = LINEAR_AUTO; p <= LINEAR_AVX512VNNI; p++) {
        if (!linear_path_available(p) || p == LINEAR_SGEMM) continue;
        assert_int_equal(linear_force_path(p), 0);
        linear_forward(&y, x, &w, NULL, 1);
        if (y != (float)(16129.0 * IC)) {
            printf("path %s: got %.9g, expected %.9g\n", linear_path_name(linear_path_for(WT_Q8, 1)),
                   y, 16129.0 * IC);
            fail();
        }
    }
    assert_int_equal(linear_force_path(LINEAR_AUTO), 0);
    linear_free(&w);
    linear_w bad;
    tu_expect_error(linear_q8_wrap(&bad, q, &one, 1, IC + 1, "long.weight"), "row too long",
                    (const char *const[]){"long.weight", "131072", NULL});
    free(q), free(x);
}

/* Saved q8 weights are checked when wrapped: −128, and scales that are negative or not
 * finite, are errors naming the tensor and the first bad row. */
static void test_q8_wrap_checks(void **state) {
    int8_t q[3 * 2] = {1, 2, 3, 4, 5, 6};
    float s[3] = {1, 1, 1};
    linear_w w;
    q[3] = -128, q[5] = -128;
    tu_expect_error(linear_q8_wrap(&w, q, s, 3, 2, "layers.0.q"), "-128",
                    (const char *const[]){"layers.0.q", "row 1", "-128", NULL});
    q[3] = 4, q[5] = 6;
    s[2] = -1.0f;
    tu_expect_error(linear_q8_wrap(&w, q, s, 3, 2, "layers.0.q"), "negative scale",
                    (const char *const[]){"row 2", "scale", NULL});
    s[2] = NAN;
    tu_expect_error(linear_q8_wrap(&w, q, s, 3, 2, "layers.0.q"), "NaN scale",
                    (const char *const[]){"row 2", NULL});
    s[2] = 0.0f;
    assert_int_equal(linear_q8_wrap(&w, q, s, 3, 2, "layers.0.q"), 0);
    assert_true(w.row_sums[0] == 3 && w.row_sums[1] == 7 && w.row_sums[2] == 11);
    linear_free(&w);
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
        cmocka_unit_test(test_q8_quantises_x),
        cmocka_unit_test(test_q8_longest_row),
        cmocka_unit_test(test_q8_wrap_checks),
        cmocka_unit_test(test_torch_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
