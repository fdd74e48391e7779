/* test_gemm.c — the matrix-product interface (compute/gemm.h) against plain double-precision
 * loops: gemm_f32 and gemm_f32_batched for every transpose combination, odd sizes, leading
 * dimensions wider than the rows, alpha ≠ 1, beta 0 (C holding NaN, which must not leak in)
 * and 1; the columns between a row's width and its leading dimension must stay untouched.
 * The tolerance is relative to Σ|a·b| per element: (K + 4)·2⁻²⁴ bounds the rounding of any
 * fp32 summation order. Calls from inside an OpenMP parallel region must give the same bits
 * as calls from outside (gemm.h's threading contract). OpenBLAS's kernels follow the ISA level
 * (SMDLM_ISA). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/cpu.h"
#include "compute/gemm.h"
#include "compute/kernels.h"
#include "base/rng.h"
#include "testutil.h"
#include "base/util.h"

#define SENTINEL 12345.678f
#define PAD 3 /* leading dimensions exceed the row width by this much */

static sm_rng g_rng;

static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (float)(2.0 * rng_uniform(&g_rng) - 1.0);
}

/* op(X)[r, c] of a row-major X with row stride ld */
static double at(const float *X, int ld, gemm_op t, int r, int c) {
    return t == GEMM_TRANS ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

/* One product's shape and strides. */
typedef struct {
    gemm_op ta, tb;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
} shape;

static shape make_shape(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, float beta) {
    shape s = {ta, tb, M, N, K, 0, 0, 0, alpha, beta};
    s.lda = (ta == GEMM_TRANS ? M : K) + PAD;
    s.ldb = (tb == GEMM_TRANS ? K : N) + PAD;
    s.ldc = N + PAD;
    return s;
}

/* elements of A, B and C as stored (rows × leading dimension) */
static size_t a_size(const shape *s) {
    return (size_t)(s->ta == GEMM_TRANS ? s->K : s->M) * s->lda;
}
static size_t b_size(const shape *s) {
    return (size_t)(s->tb == GEMM_TRANS ? s->N : s->K) * s->ldb;
}
static size_t c_size(const shape *s) { return (size_t)s->M * s->ldc; }

/* C as it is before a product: random for beta ≠ 0, NaN for beta = 0; the padding columns
 * hold a sentinel. */
static void init_c(float *C, const shape *s) {
    for (int i = 0; i < s->M; i++)
        for (int j = 0; j < s->ldc; j++)
            C[(size_t)i * s->ldc + j] =
                j >= s->N ? SENTINEL
                          : s->beta == 0.0f ? NAN : (float)(2.0 * rng_uniform(&g_rng) - 1.0);
}

/* The worst element seen so far (error over its bound) and where. */
static double g_worst;
static char g_worst_at[256];

/* got (after the product) against alpha·op(A)·op(B) + beta·C0 in double; records the worst
 * element, prints it on a mismatch and returns 1 then. */
static int check(const char *what, const shape *s, const float *A, const float *B,
                 const float *C0, const float *got) {
    const double u = ldexp(1.0, -24);
    double worst = 0.0, worst_err = 0.0, worst_ref = 0.0;
    int wi = 0, wj = 0, bad_pad = 0;
    for (int i = 0; i < s->M; i++) {
        for (int j = 0; j < s->N; j++) {
            double dot = 0.0, mag = 0.0;
            for (int k = 0; k < s->K; k++) {
                double p = at(A, s->lda, s->ta, i, k) * at(B, s->ldb, s->tb, k, j);
                dot += p;
                mag += fabs(p);
            }
            double c0 = s->beta == 0.0f ? 0.0 : C0[(size_t)i * s->ldc + j];
            double ref = s->alpha * dot + s->beta * c0;
            double bound = (s->K + 4) * u * (fabs(s->alpha) * mag + fabs(s->beta * c0)) + 1e-30;
            double err = fabs(got[(size_t)i * s->ldc + j] - ref);
            double ratio = isnan(err) ? INFINITY : err / bound;
            if (ratio >= worst) worst = ratio, worst_err = err, worst_ref = ref, wi = i, wj = j;
        }
        for (int j = s->N; j < s->ldc; j++) bad_pad += got[(size_t)i * s->ldc + j] != SENTINEL;
    }
    char at_text[256];
    snprintf(at_text, sizeof at_text,
             "%s: C[%d,%d] = %.9g, reference %.9g (|err| %.3g = %.3f × the bound)", what, wi, wj,
             got[(size_t)wi * s->ldc + wj], worst_ref, worst_err, worst);
    if (worst >= g_worst) {
        g_worst = worst;
        snprintf(g_worst_at, sizeof g_worst_at, "%s", at_text);
    }
    if (worst > 1.0 || bad_pad) {
        print_error("%s%s\n", at_text, bad_pad ? ", padding columns written" : "");
        return 1;
    }
    return 0;
}

static void report_worst(const char *what, int cases, int failures) {
    printf("%s: %d cases, %d mismatches; worst element: %s\n", what, cases, failures, g_worst_at);
    g_worst = 0.0;
}

static const char *op_name(gemm_op t) { return t == GEMM_TRANS ? "T" : "N"; }

static void test_gemm_f32(void **state) {
    const int sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 33, 65}, {64, 17, 129}, {3, 1, 200},
                            {1, 40, 9}, {130, 70, 257}};
    const float betas[] = {0.0f, 1.0f}, alphas[] = {1.0f, -0.37f};
    int failures = 0, cases = 0;
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bi = 0; bi < 2; bi++)
                    for (int ai = 0; ai < 2; ai++) {
                        shape s = make_shape((gemm_op)ta, (gemm_op)tb, sizes[z][0], sizes[z][1],
                                             sizes[z][2], alphas[ai], betas[bi]);
                        float *A = sm_malloc(sizeof(float) * a_size(&s));
                        float *B = sm_malloc(sizeof(float) * b_size(&s));
                        float *C0 = sm_malloc(sizeof(float) * c_size(&s));
                        float *C = sm_malloc(sizeof(float) * c_size(&s));
                        fill(A, a_size(&s));
                        fill(B, b_size(&s));
                        init_c(C0, &s);
                        memcpy(C, C0, sizeof(float) * c_size(&s));
                        gemm_f32(s.ta, s.tb, s.M, s.N, s.K, s.alpha, A, s.lda, B, s.ldb, s.beta,
                                 C, s.ldc);
                        char what[96];
                        snprintf(what, sizeof what, "gemm_f32 %s%s M=%d N=%d K=%d alpha=%g beta=%g",
                                 op_name(s.ta), op_name(s.tb), s.M, s.N, s.K, s.alpha, s.beta);
                        failures += check(what, &s, A, B, C0, C);
                        cases++;
                        free(A), free(B), free(C0), free(C);
                    }
    report_worst("gemm_f32", cases, failures);
    assert_int_equal(failures, 0);
}

/* Items of a strided batch: A_i = A + i·sa etc.; stride_b 0 shares B between the items. */
static void test_gemm_f32_batched(void **state) {
    const int sizes[][3] = {{7, 5, 3}, {13, 33, 65}, {1, 9, 17}, {40, 24, 130}};
    const int batch = 5;
    int failures = 0, cases = 0;
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bi = 0; bi < 2; bi++)
                    for (int shared_b = 0; shared_b < 2; shared_b++) {
                        shape s = make_shape((gemm_op)ta, (gemm_op)tb, sizes[z][0], sizes[z][1],
                                             sizes[z][2], 0.75f, bi ? 1.0f : 0.0f);
                        /* strides leave a gap of 5 elements between the items */
                        size_t sa = a_size(&s) + 5, sb = shared_b ? 0 : b_size(&s) + 5,
                               sc = c_size(&s) + 5;
                        float *A = sm_malloc(sizeof(float) * sa * batch);
                        float *B = sm_malloc(sizeof(float) * (sb ? sb * batch : b_size(&s)));
                        float *C0 = sm_malloc(sizeof(float) * sc * batch);
                        float *C = sm_malloc(sizeof(float) * sc * batch);
                        fill(A, sa * batch);
                        fill(B, sb ? sb * batch : b_size(&s));
                        for (int i = 0; i < batch; i++) {
                            init_c(C0 + i * sc, &s);
                            for (int g = 0; g < 5; g++) C0[i * sc + c_size(&s) + g] = SENTINEL;
                        }
                        memcpy(C, C0, sizeof(float) * sc * batch);
                        gemm_f32_batched(s.ta, s.tb, s.M, s.N, s.K, s.alpha, A, s.lda, sa, B,
                                         s.ldb, sb, s.beta, C, s.ldc, sc, batch);
                        for (int i = 0; i < batch; i++) {
                            char what[112];
                            snprintf(what, sizeof what,
                                     "gemm_f32_batched %s%s M=%d N=%d K=%d beta=%g%s item %d",
                                     op_name(s.ta), op_name(s.tb), s.M, s.N, s.K, s.beta,
                                     shared_b ? " shared B" : "", i);
                            failures += check(what, &s, A + i * sa, B + i * sb, C0 + i * sc,
                                              C + i * sc);
                            for (int g = 0; g < 5; g++)
                                failures += C[i * sc + c_size(&s) + g] != SENTINEL;
                            cases++;
                        }
                        free(A), free(B), free(C0), free(C);
                    }
    report_worst("gemm_f32_batched", cases, failures);
    assert_int_equal(failures, 0);
}

/* The same products called from every thread of a parallel region (each thread its own C)
 * and from inside a region by gemm_f32_batched: the same bits as the calls from outside,
 * which may use several threads. Every transpose pair, at a size OpenBLAS splits over
 * threads when it may. */
static void test_inside_parallel_region(void **state) {
    enum { NT = 2, M = 190, N = 230, K = 170, BATCH = 3 };
    const size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    float *A = sm_malloc(sizeof(float) * na * BATCH), *B = sm_malloc(sizeof(float) * nb * BATCH);
    float *out = sm_malloc(sizeof(float) * nc * BATCH), *in = sm_malloc(sizeof(float) * nc * NT);
    float *bout = sm_malloc(sizeof(float) * nc * BATCH);
    float *bin = sm_malloc(sizeof(float) * nc * BATCH);
    fill(A, na * BATCH);
    fill(B, nb * BATCH);
    for (int op = 0; op < 4; op++) {
        const gemm_op ta = (gemm_op)(op >> 1), tb = (gemm_op)(op & 1);
        const int lda = ta == GEMM_TRANS ? M : K, ldb = tb == GEMM_TRANS ? K : N;
        /* the contract: inside a region (and per batch item) the product is the one-thread
         * product, which on some cores differs in the last bits from a multi-threaded one */
        const int threads = gemm_get_threads();
        gemm_set_threads(1);
        for (int i = 0; i < BATCH; i++)
            gemm_f32(ta, tb, M, N, K, 1.0f, A + i * na, lda, B + i * nb, ldb, 0.0f, out + i * nc,
                     N);
        gemm_set_threads(threads);
        gemm_f32_batched(ta, tb, M, N, K, 1.0f, A, lda, na, B, ldb, nb, 0.0f, bout, N, nc, BATCH);
        int active = 0;
#pragma omp parallel num_threads(NT)
        {
            int t = omp_get_thread_num();
            gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, in + t * nc, N);
            if (t == 0) {
                active = omp_in_parallel() && omp_get_num_threads() == NT;
                gemm_f32_batched(ta, tb, M, N, K, 1.0f, A, lda, na, B, ldb, nb, 0.0f, bin, N, nc,
                                 BATCH);
            }
        }
        assert_true(active);
        printf("%s%s:\n", op_name(ta), op_name(tb));
        for (int t = 0; t < NT; t++)
            assert_int_equal(tu_compare_f32("gemm_f32 inside a region", in + t * nc, out, nc, 0, 0),
                             0);
        assert_int_equal(tu_compare_f32("gemm_f32_batched outside", bout, out, nc * BATCH, 0, 0), 0);
        assert_int_equal(tu_compare_f32("gemm_f32_batched inside", bin, out, nc * BATCH, 0, 0), 0);
    }
    free(A), free(B), free(out), free(in), free(bout), free(bin);
}

static void test_syrk_f64(void **state) {
    const int N = 37, K = 53, ld = N + PAD;
    double *A = sm_malloc(sizeof(double) * K * ld), *C = sm_malloc(sizeof(double) * N * ld);
    double *C0 = sm_malloc(sizeof(double) * N * ld);
    for (int i = 0; i < K * ld; i++) A[i] = 2.0 * rng_uniform(&g_rng) - 1.0;
    for (int i = 0; i < N * ld; i++) C0[i] = 2.0 * rng_uniform(&g_rng) - 1.0;
    memcpy(C, C0, sizeof(double) * N * ld);
    syrk_f64_lower(GEMM_TRANS, N, K, 0.5, A, ld, 1.0, C, ld);
    double worst = 0.0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < ld; j++) {
            double want = C0[(size_t)i * ld + j], mag = fabs(want);
            if (j <= i) /* lower triangle: C0 + 0.5·AᵀA; the rest untouched */
                for (int k = 0; k < K; k++) {
                    double p = 0.5 * A[(size_t)k * ld + i] * A[(size_t)k * ld + j];
                    want += p;
                    mag += fabs(p);
                }
            double bound = (K + 4) * ldexp(1.0, -53) * mag + 1e-300;
            double ratio = fabs(C[(size_t)i * ld + j] - want) / bound;
            if (j > i && C[(size_t)i * ld + j] != C0[(size_t)i * ld + j]) ratio = INFINITY;
            if (ratio > worst) worst = ratio;
        }
    printf("syrk_f64_lower: worst error %.2f × the bound\n", worst);
    assert_true(worst <= 1.0);
    free(A), free(C), free(C0);
}

static void test_threads_and_provider(void **state) {
    gemm_set_threads(1);
    assert_int_equal(gemm_get_threads(), 1);
    kernels_set_threads(2);
    assert_int_equal(gemm_get_threads(), 2);
    assert_int_equal(kernels_get_threads(), 2);
    assert_non_null(gemm_provider_name());
    printf("provider %s, core %s\n", gemm_provider_name(),
           gemm_provider_core() ? gemm_provider_core() : "(none)");
}

/* Unless the user chose one, OpenBLAS runs the kernels of the level smdlm detected (or that
 * SMDLM_ISA forced): the test suite run under SMDLM_ISA=avx2 and =generic covers each path. */
static void test_core_follows_isa(void **state) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user && *user) skip();
    const char *core = gemm_provider_core(), *want[2] = {"Prescott", "Opteron"};
    if (cpu_isa_active() == CPU_ISA_AVX512) want[0] = "Cooperlake", want[1] = "SkylakeX";
    if (cpu_isa_active() == CPU_ISA_AVX2) want[0] = want[1] = "Haswell";
    printf("isa %s, core %s\n", cpu_isa_name(cpu_isa_active()), core);
    assert_true(!strcmp(core, want[0]) || !strcmp(core, want[1]));
    assert_null(gemm_provider_core_hint());
    assert_null(getenv("OPENBLAS_CORETYPE")); /* not left behind for child processes */
}

int main(void) {
    rng_seed(&g_rng, 7);
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_f32),
        cmocka_unit_test(test_gemm_f32_batched),
        cmocka_unit_test(test_inside_parallel_region),
        cmocka_unit_test(test_syrk_f64),
        cmocka_unit_test(test_threads_and_provider),
        cmocka_unit_test(test_core_follows_isa),
    };
    return cmocka_run_group_tests_name("gemm", tests, NULL, NULL);
}
