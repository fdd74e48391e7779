/* gemm_openblas.c — the OpenBLAS provider of gemm.h, for OpenBLAS's OpenMP build (Makefile
 * BLASDIR): that build runs a product single-threaded when it is called inside an active
 * OpenMP parallel region (it checks omp_in_parallel), which is the contract of gemm.h.
 * The only file that includes <cblas.h> or calls OpenBLAS (also its LAPACK).
 *
 * OpenBLAS picks its kernels ("core") in its library constructor from a table of CPU models;
 * a model it does not know gets its oldest kernels (Debian's 0.3.21 runs SSE3 kernels on an
 * Emerald Rapids Xeon, a fifth of the speed). So the library is not linked: the first call
 * here chooses the core from cpuid features (compute/cpu.h, SMDLM_ISA included), puts it in
 * OPENBLAS_CORETYPE, then loads OpenBLAS with dlopen, so its constructor reads our choice.
 * A OPENBLAS_CORETYPE the user set wins. See NOTES.md "Compute". */
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compute/cpu.h"
#include "compute/gemm.h"
#include "base/util.h"

#ifndef SMDLM_OPENBLAS_LIB /* the Makefile passes $(BLASDIR)/libopenblas.so.0 */
#define SMDLM_OPENBLAS_LIB "libopenblas.so.0"
#endif

/* OpenBLAS entry points, not in every cblas.h, and LAPACK's dsyevr (Fortran calling
 * convention, hidden string lengths last; Debian ships no LAPACKE header with OpenBLAS). */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
             const int *lda, const double *vl, const double *vu, const int *il, const int *iu,
             const double *abstol, int *m, double *w, double *z, const int *ldz, int *isuppz,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t l1, size_t l2, size_t l3);

/* The library's functions, resolved once. */
static struct {
    __typeof__(cblas_sgemm) *sgemm;
    __typeof__(cblas_dsyrk) *dsyrk;
    __typeof__(dsyevr_) *dsyevr;
    __typeof__(openblas_set_num_threads) *set_num_threads;
    __typeof__(openblas_get_num_threads) *get_num_threads;
    __typeof__(openblas_get_corename) *get_corename;
} g_blas;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static const char *g_core_chosen; /* ours, or NULL when the user's OPENBLAS_CORETYPE won */

/* OpenBLAS's core for a level (names as OPENBLAS_CORETYPE takes them) */
static const char *core_for(const cpu_features *f, cpu_isa isa) {
    if (isa == CPU_ISA_AVX512) return f->avx512_bf16 ? "Cooperlake" : "SkylakeX";
    if (isa == CPU_ISA_AVX2) return "Haswell";
    /* generic: the oldest x86-64 kernels OpenBLAS has (SSE3; Opteron's are SSE2) */
    return f->sse3 ? "Prescott" : "Opteron";
}

/* Without its BLAS the program cannot compute anything: a broken installation, not a bug */
static void die(const char *what, const char *detail) {
    fprintf(stderr, "smdlm: OpenBLAS (%s): %s%s\n", SMDLM_OPENBLAS_LIB, what, detail);
    exit(1);
}

static void *resolve(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) die("no symbol ", name);
    return p;
}

static void load(void) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (!user || !*user) {
        g_core_chosen = core_for(cpu_features_get(), cpu_isa_active());
        setenv("OPENBLAS_CORETYPE", g_core_chosen, 1);
    }
    void *lib = dlopen(SMDLM_OPENBLAS_LIB, RTLD_NOW | RTLD_LOCAL);
    if (g_core_chosen) unsetenv("OPENBLAS_CORETYPE"); /* read; child processes do not inherit it */
    if (!lib) die("cannot load: ", dlerror());
    *(void **)&g_blas.sgemm = resolve(lib, "cblas_sgemm");
    *(void **)&g_blas.dsyrk = resolve(lib, "cblas_dsyrk");
    *(void **)&g_blas.dsyevr = resolve(lib, "dsyevr_");
    *(void **)&g_blas.set_num_threads = resolve(lib, "openblas_set_num_threads");
    *(void **)&g_blas.get_num_threads = resolve(lib, "openblas_get_num_threads");
    *(void **)&g_blas.get_corename = resolve(lib, "openblas_get_corename");
}

static inline void blas(void) { pthread_once(&g_once, load); }

static CBLAS_TRANSPOSE cblas_op(gemm_op t) { return t == GEMM_TRANS ? CblasTrans : CblasNoTrans; }

void gemm_f32(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    blas();
    g_blas.sgemm(CblasRowMajor, cblas_op(ta), cblas_op(tb), M, N, K, alpha, A, lda, B, ldb, beta,
                 C, ldc);
}

void gemm_f32_batched(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A,
                      int lda, size_t stride_a, const float *B, int ldb, size_t stride_b,
                      float beta, float *C, int ldc, size_t stride_c, int batch) {
    blas(); /* once, before the threads start */
    /* inside a parallel region: a team of one, the items in order in the calling thread */
#pragma omp parallel for schedule(dynamic, 1) if (!omp_in_parallel())
    for (int i = 0; i < batch; i++)
        gemm_f32(ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                 C + i * stride_c, ldc);
}

void syrk_f64_lower(gemm_op ta, int N, int K, double alpha, const double *A, int lda,
                    double beta, double *C, int ldc) {
    blas();
    g_blas.dsyrk(CblasRowMajor, CblasLower, cblas_op(ta), N, K, alpha, A, lda, beta, C, ldc);
}

int eigh_f64_lower(int n, double *a, double *w, double *z, int *found) {
    blas();
    int m = 0, info = 0, lwork = -1, liwork = -1, iwq = 0, one = 1;
    double vl = 0.0, vu = 0.0, abstol = 0.0, wq = 0.0;
    int *isuppz = sm_malloc(sizeof(int) * 2 * (size_t)n);
    g_blas.dsyevr("V", "A", "L", &n, a, &n, &vl, &vu, &one, &n, &abstol, &m, w, z, &n, isuppz,
                  &wq, &lwork, &iwq, &liwork, &info, 1, 1, 1);
    if (info == 0) { /* the first call asked for the workspace sizes */
        lwork = (int)wq;
        liwork = iwq;
        double *work = sm_malloc(sizeof(double) * (size_t)lwork);
        int *iwork = sm_malloc(sizeof(int) * (size_t)liwork);
        g_blas.dsyevr("V", "A", "L", &n, a, &n, &vl, &vu, &one, &n, &abstol, &m, w, z, &n,
                      isuppz, work, &lwork, iwork, &liwork, &info, 1, 1, 1);
        free(work);
        free(iwork);
    }
    free(isuppz);
    *found = m;
    return info;
}

void gemm_set_threads(int n) {
    SM_ASSERT(n >= 1);
    blas();
    g_blas.set_num_threads(n);
}

int gemm_get_threads(void) {
    blas();
    return g_blas.get_num_threads();
}

const char *gemm_provider_name(void) { return "OpenBLAS"; }

const char *gemm_provider_core(void) {
    blas();
    return g_blas.get_corename();
}

const char *gemm_provider_core_hint(void) {
    blas();
    const char *mine = core_for(cpu_features_get(), cpu_isa_active());
    return g_core_chosen || !strcasecmp(gemm_provider_core(), mine) ? NULL : mine;
}
