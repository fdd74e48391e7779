/* gemm.h — the one interface for matrix products: fp32 GEMM, strided-batched fp32 GEMM and
 * the fp64 symmetric rank-k update of the MAUVE covariance, with their threading contract.
 * Every call into a BLAS or LAPACK library goes through here (linear.c's tile kernels for bf16/f16/q8
 * weights are smdlm's own code).
 *
 * Provider: one implementation of this header is linked. Today that is gemm_openblas.c
 * (OpenBLAS's OpenMP build, BLASDIR in the Makefile), the only file that includes <cblas.h>
 * or calls cblas_* / openblas_* / LAPACK functions; it loads OpenBLAS itself (dlopen) after
 * choosing OpenBLAS's kernels from cpuid (compute/cpu.h), so nothing links -lopenblas.
 * docs/PERFORMANCE.md has the measurements behind this choice. Another provider (an own microkernel, a GPU
 * library) is one more file implementing these functions, chosen at build time (the Makefile
 * compiles one provider file) or at run time (a dispatching provider that forwards each call);
 * callers do not change. None is written.
 *
 * Layout: row-major; op(X) is X or Xᵀ. For gemm_f32, op(A) is M×K, op(B) is K×N and C is
 * M×N; lda, ldb, ldc are the row strides (in elements) of A, B and C as stored, so
 * lda ≥ K for A untransposed and lda ≥ M transposed (likewise ldb ≥ N or K, ldc ≥ N).
 * With beta = 0, C is only written (its old contents, even NaN, do not matter).
 *
 * Threading contract:
 *   - gemm_set_threads(n) sets the threads one product may use when it is called outside an
 *     OpenMP parallel region. Callers use kernels_set_threads, which sets OpenMP's thread
 *     count and this one together (in OpenBLAS's OpenMP build they are one: its
 *     openblas_set_num_threads sets OpenMP's too, and a product follows omp_get_max_threads).
 *   - Called inside an active OpenMP parallel region (omp_in_parallel()), a product runs
 *     single-threaded in the calling thread: per-task products (per-head attention tasks,
 *     linear.c's weight panels) neither oversubscribe the cores nor wait for each other.
 *   - Products on disjoint outputs may run concurrently from different threads.
 *   - Results are bit-identical for the same arguments and the same thread count.
 */
#ifndef SMDLM_GEMM_H
#define SMDLM_GEMM_H

#include <stddef.h>

typedef enum { GEMM_NOTRANS = 0, GEMM_TRANS = 1 } gemm_op;

/* C = alpha·op(A)·op(B) + beta·C (see the layout above). */
void gemm_f32(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* `batch` independent products C_i = alpha·op(A_i)·op(B_i) + beta·C_i, i = 0 … batch − 1,
 * with X_i = X + i·stride_x (strides in elements; 0 reuses one operand for every item; the
 * C_i must not overlap). Each item is exactly the gemm_f32 call on its operands. Outside a
 * parallel region the items are spread over the OpenMP threads, each item single-threaded;
 * inside one, the calling thread runs them in order. */
void gemm_f32_batched(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A,
                      int lda, size_t stride_a, const float *B, int ldb, size_t stride_b,
                      float beta, float *C, int ldc, size_t stride_c, int batch);

/* Lower triangle of C[N, N] = alpha·op(A)·op(A)ᵀ + beta·C in double precision; op(A) is
 * N×K (ta = GEMM_TRANS: A is stored K×N and the product is AᵀA). The strict upper triangle
 * of C is not touched. */
void syrk_f64_lower(gemm_op ta, int N, int K, double alpha, const double *A, int lda,
                    double beta, double *C, int ldc);

/* Eigenvalues (ascending, w[n]) and eigenvectors (z[n, n], column j for w[j]; column-major)
 * of the symmetric a[n, n], whose lower triangle in column-major order is read (a is
 * destroyed): LAPACK's dsyevr. Returns LAPACK's info (0 = success); *found = eigenvalues
 * found (n on success). */
int eigh_f64_lower(int n, double *a, double *w, double *z, int *found);

/* Threads of a product called outside a parallel region (n ≥ 1), see the contract above. */
void gemm_set_threads(int n);
int gemm_get_threads(void);

/* The provider ("OpenBLAS"), for benchmark reports. */
const char *gemm_provider_name(void);
/* The provider's kernel variant on this processor (OpenBLAS's core type: "Haswell",
 * "SkylakeX", ...), or NULL when it has none. */
const char *gemm_provider_core(void);
/* The core type smdlm would choose for this processor when the user's OPENBLAS_CORETYPE made
 * OpenBLAS run another one (e.g. Haswell on an AVX-512 machine), else NULL. */
const char *gemm_provider_core_hint(void);

#endif
