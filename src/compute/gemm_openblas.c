/* gemm_openblas.c — the OpenBLAS provider of gemm.h, for OpenBLAS's OpenMP build (Makefile
 * BLASDIR): that build runs a product single-threaded when it is called inside an active
 * OpenMP parallel region (it checks omp_in_parallel), which is the contract of gemm.h.
 * The only file that includes <cblas.h> or calls OpenBLAS. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "compute/gemm.h"
#include "base/util.h"

/* OpenBLAS entry points, not in every cblas.h. */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);

static CBLAS_TRANSPOSE cblas_op(gemm_op t) { return t == GEMM_TRANS ? CblasTrans : CblasNoTrans; }

void gemm_f32(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, cblas_op(ta), cblas_op(tb), M, N, K, alpha, A, lda, B, ldb, beta,
                C, ldc);
}

void gemm_f32_batched(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A,
                      int lda, size_t stride_a, const float *B, int ldb, size_t stride_b,
                      float beta, float *C, int ldc, size_t stride_c, int batch) {
    /* inside a parallel region: a team of one, the items in order in the calling thread */
#pragma omp parallel for schedule(dynamic, 1) if (!omp_in_parallel())
    for (int i = 0; i < batch; i++)
        gemm_f32(ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                 C + i * stride_c, ldc);
}

void syrk_f64_lower(gemm_op ta, int N, int K, double alpha, const double *A, int lda,
                    double beta, double *C, int ldc) {
    cblas_dsyrk(CblasRowMajor, CblasLower, cblas_op(ta), N, K, alpha, A, lda, beta, C, ldc);
}

void gemm_set_threads(int n) {
    SM_ASSERT(n >= 1);
    openblas_set_num_threads(n);
}

int gemm_get_threads(void) { return openblas_get_num_threads(); }

const char *gemm_provider_name(void) { return "OpenBLAS"; }

const char *gemm_provider_core(void) { return openblas_get_corename(); }

const char *gemm_provider_core_hint(void) {
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512cd");
    const char *core = openblas_get_corename();
    if (avx512 && core && (!strcmp(core, "Haswell") || !strcmp(core, "Zen"))) return "SkylakeX";
    return NULL;
}
