/* gemm_options.c — the GEMM options of docs/PERFORMANCE.md side by side: OpenBLAS (whatever
 * core OPENBLAS_CORETYPE or its own table picks), oneDNN's dnnl_sgemm (built with -DWITH_DNNL)
 * and a plain packed, register-blocked AVX-512 prototype (12×32 block, no prefetch) that was
 * measured and not adopted. C = A·Bᵀ (row-major, A[M,K], B[N,K], the layout of a linear
 * layer) at the model shapes; best GFLOP/s of several calls. Built and run by
 * bench/gemm_options.sh; not part of smdlm. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#ifdef WITH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

char *openblas_get_corename(void);
void openblas_set_num_threads(int n);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the prototype: B packed in strips of NR columns, A in strips of MR rows ------------ */
enum { MR = 12, NR = 32, KC = 384, MC = 192, NC = 3072 };

static void pack_b(float *dst, const float *B, int ldb, int n0, int nc, int k0, int kc) {
    for (int j = 0; j < nc; j += NR)
        for (int k = 0; k < kc; k++) {
            float *d = dst + (size_t)j * kc + (size_t)k * NR;
            for (int c = 0; c < NR; c++)
                d[c] = j + c < nc ? B[(size_t)(n0 + j + c) * ldb + k0 + k] : 0.0f;
        }
}

static void pack_a(float *dst, const float *A, int lda, int m0, int mc, int k0, int kc) {
    for (int i = 0; i < mc; i += MR)
        for (int k = 0; k < kc; k++) {
            float *d = dst + (size_t)i * kc + (size_t)k * MR;
            for (int r = 0; r < MR; r++)
                d[r] = i + r < mc ? A[(size_t)(m0 + i + r) * lda + k0 + k] : 0.0f;
        }
}

/* C[h, w] (+)= the MR×NR block of packed a·b over kc */
__attribute__((target("avx512f"))) static void block(int kc, const float *a, const float *b,
                                                      float *c, int ldc, int first, int h, int w) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b + k * NR), b1 = _mm512_load_ps(b + k * NR + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 av = _mm512_set1_ps(a[k * MR + i]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    float tmp[MR][NR] __attribute__((aligned(64)));
    for (int i = 0; i < MR; i++) {
        _mm512_store_ps(tmp[i], acc[i][0]);
        _mm512_store_ps(tmp[i] + 16, acc[i][1]);
    }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            c[(size_t)i * ldc + j] = first ? tmp[i][j] : c[(size_t)i * ldc + j] + tmp[i][j];
}

static void own_sgemm_nt(int M, int N, int K, const float *A, const float *B, float *C) {
    float *bp = aligned_alloc(64, sizeof(float) * KC * NC);
    for (int n0 = 0; n0 < N; n0 += NC) {
        int nc = N - n0 < NC ? N - n0 : NC;
        for (int k0 = 0; k0 < K; k0 += KC) {
            int kc = K - k0 < KC ? K - k0 : KC;
            pack_b(bp, B, K, n0, nc, k0, kc);
#pragma omp parallel
            {
                float *ap = aligned_alloc(64, sizeof(float) * KC * MC);
#pragma omp for schedule(static)
                for (int m0 = 0; m0 < M; m0 += MC) {
                    int mc = M - m0 < MC ? M - m0 : MC;
                    pack_a(ap, A, K, m0, mc, k0, kc);
                    for (int j = 0; j < nc; j += NR)
                        for (int i = 0; i < mc; i += MR)
                            block(kc, ap + (size_t)i * kc, bp + (size_t)j * kc,
                                  C + (size_t)(m0 + i) * N + n0 + j, N, k0 == 0,
                                  mc - i < MR ? mc - i : MR, nc - j < NR ? nc - j : NR);
                }
                free(ap);
            }
        }
    }
    free(bp);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: gemm_options THREADS openblas|onednn|own\n");
        return 1;
    }
    const int threads = atoi(argv[1]);
    const char *opt = argv[2];
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    static const int shapes[][3] = {{1024, 768, 768},  {1024, 3072, 768},   {1024, 768, 3072},
                                    {1024, 1024, 64},  {1024, 50258, 768},  {2048, 2048, 2048}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = aligned_alloc(64, 4ul * M * K), *B = aligned_alloc(64, 4ul * N * K);
        float *C = aligned_alloc(64, 4ul * M * N), *R = aligned_alloc(64, 4ul * M * N);
        for (long i = 0; i < (long)M * K; i++) A[i] = (float)(i % 97) * 1e-3f - 0.04f;
        for (long i = 0; i < (long)N * K; i++) B[i] = (float)(i % 89) * 1e-3f - 0.04f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, B, K, 0, R, N);
        const double flop = 2.0 * M * N * (double)K;
        double best = 0;
        for (int r = 0; r < (flop > 4e10 ? 2 : 6); r++) {
            double t0 = now();
            if (!strcmp(opt, "own"))
                own_sgemm_nt(M, N, K, A, B, C);
#ifdef WITH_DNNL
            else if (!strcmp(opt, "onednn"))
                dnnl_sgemm('N', 'T', M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
#endif
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, B, K, 0, C, N);
            double g = flop / (now() - t0) / 1e9;
            if (g > best) best = g;
        }
        double diff = 0; /* against OpenBLAS, as a sanity check */
        for (long i = 0; i < (long)M * N; i++) diff = fmax(diff, fabs((double)C[i] - R[i]));
        printf("%s %s %d M=%d N=%d K=%d %.1f GFLOP/s (max |diff| vs OpenBLAS %.1e)\n", opt,
               strcmp(opt, "openblas") ? "-" : openblas_get_corename(), threads, M, N, K, best,
               diff);
        free(A), free(B), free(C), free(R);
    }
    return 0;
}
