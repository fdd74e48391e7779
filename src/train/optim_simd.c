/* optim_simd.c — the optimiser's loops (see optim_simd.h), built once per code path with
 * -DSIMD_PATH=avx512|avx2|generic and that path's -m flags; exports optim_kernels_<path>. */
#include <math.h>

#include "train/optim_simd.h"

#ifndef SIMD_PATH
#error "optim_simd.c is built once per code path with -DSIMD_PATH=avx512|avx2|generic"
#endif

/* Σ x² of one chunk with 8 accumulators in a fixed pattern: the same order whichever path
 * runs (no reassociation is allowed, so vectorising keeps the lanes as written). */
static double sumsq_chunk(const float *x, size_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void scale_row(float *x, size_t n, float c) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] *= c;
}

static void adamw_row(float *restrict p, const float *restrict g, float *restrict m,
                      float *restrict v, size_t n, adamw_coefs k) {
    /* element-wise, so `omp simd` changes no result; sqrtf's errno path keeps this loop
     * scalar unless the file is built with -fno-math-errno */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * k.decay_mul;                               /* param.mul_(1 − lr·wd) */
        float mi = fmaf(g[i], k.one_minus_beta1, m[i] * k.beta1);    /* exp_avg */
        float vi = fmaf(k.one_minus_beta2 * g[i], g[i], v[i] * k.beta2); /* exp_avg_sq */
        float denom = sqrtf(vi) / k.bc2_sqrt + k.eps;
        p[i] = pi + (k.neg_step_size * mi) / denom;                 /* addcdiv_ */
        m[i] = mi;
        v[i] = vi;
    }
}

static void ema_row(float *restrict ema, const float *restrict p, size_t n, float decay,
                    float one_minus) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) ema[i] = fmaf(p[i], one_minus, ema[i] * decay);
}

const optim_kernels CPU_PATH_SYMBOL(optim_kernels) = {
    .sumsq_chunk = sumsq_chunk, .scale_row = scale_row, .adamw_row = adamw_row, .ema_row = ema_row};
