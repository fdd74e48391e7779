/* optim_simd.h — AdamW's, clipping's and EMA's loops compiled once per code path
 * (optim_simd.c is built three times, as compute/rows_simd.c; see compute/rows.h), chosen by
 * cpu_isa_active(). Every loop is element-wise or sums in a fixed pattern, so all paths give
 * the same bits. */
#ifndef SMDLM_OPTIM_SIMD_H
#define SMDLM_OPTIM_SIMD_H

#include <stddef.h>

#include "compute/cpu.h"

/* Per-step scalars of one group, each rounded to float32 where torch's kernels do. */
typedef struct {
    float decay_mul; /* 1 − lr·wd */
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float bc2_sqrt, eps, neg_step_size;
} adamw_coefs;

typedef struct {
    double (*sumsq_chunk)(const float *x, size_t n);
    void (*scale_row)(float *x, size_t n, float c);
    void (*adamw_row)(float *restrict p, const float *restrict g, float *restrict m,
                      float *restrict v, size_t n, adamw_coefs k);
    void (*ema_row)(float *restrict ema, const float *restrict p, size_t n, float decay,
                    float one_minus);
} optim_kernels;

extern const optim_kernels optim_kernels_avx512, optim_kernels_avx2, optim_kernels_generic;

static inline const optim_kernels *optim_kernels_active(void) { return CPU_PATH_TABLE(optim_kernels); }

#endif
