/* rows.h — the row, column and element-wise loops of the kernels (forward and backward),
 * compiled once per code path: rows_simd.c is built three times, with -mavx512f…, with
 * -mavx2 -mfma and with the x86-64 baseline (the Makefile's SIMD_SRC rule), and each build
 * defines one table of function pointers. kernels.c and kernels_bwd.c call through the
 * table of cpu_isa_active(), so SMDLM_ISA (or cpu_isa_force in the tests) reaches every one
 * of these loops, not only the matrix products.
 *
 * The three builds run the same C with -std=c11 (no FP contraction): element-wise loops give
 * the same bits on every path; a vectorised reduction (a row's sum, max, Σ e^x) sums in as
 * many lanes as the path's vectors hold, so its last bits differ between paths. */
#ifndef SMDLM_ROWS_H
#define SMDLM_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "compute/cpu.h"

#define ROWS_COLS 32   /* columns per column-reduction task of the backward kernels */
#define ROWS_ROWBLK 32 /* rows summed in an inner float block before joining the outer sum */

typedef struct {
    /* forward */
    void (*vexp)(float *out, const float *x, size_t n);
    void (*rmsnorm_row)(float *o, const float *x, const float *w, int D, float eps);
    void (*ln_modulate_row)(float *o, float *xhat, float *rstd_out, const float *x,
                            const float *w, const float *shift, const float *scale, int D);
    void (*rope_heads)(float *v, int nheads, int hd, const float *c, const float *s, float sign);
    void (*softmax_row)(float *x, int n);
    void (*gelu_chunk)(float *x, size_t n);
    void (*gated_add_row)(float *x, const float *y, const float *g, int D);
    void (*swiglu_chunk)(float *g, const float *u, size_t n);
    void (*add_chunk)(float *x, const float *y, size_t n);
    float (*row_max)(const float *x, int n, int *finite);
    float (*row_sum_exp)(const float *x, int n, float shift);
    void (*row_sub)(float *x, int n, float c);
    float (*copy_chunk)(float *dst, const float *src, int n);
    void (*row_exp_moments)(const float *x, int n, float m, double *s_out, double *sz_out);
    void (*row_topk)(const float *x, int n, int k, int32_t *idx, float *val);
    /* x[0..n) ≈ scale · q with q ∈ [−127, 127] (linear.h's q8 activations): returns the scale
     * max|x| / 127 (0 for a zero row, NaN when x holds a NaN or an infinity, q then 0);
     * q[n..ld) = 0. */
    float (*quantize_q8_row)(int8_t *q, const float *x, int n, int ld);
    /* backward */
    void (*colsum_block)(float *dbias, const float *dout, int N, int OC, int c0, int ncol);
    void (*ln_backward_row)(float *dx, const float *dout, const float *xhat, float rstd,
                            const float *w, const float *scale, int D);
    void (*ln_backward_cols)(float *dw, float *dshift, float *dscale, const float *dout,
                             const float *xhat, const float *w, const float *scale,
                             int mod_stride, int B, int T, int D, int c0, int ncol);
    void (*softmax_backward_row)(float *dp, const float *p, int n);
    void (*gelu_backward_chunk)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*silu_backward_chunk)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*gated_backward_cols)(float *dy, float *dgate, const float *dout, const float *y,
                                const float *gate, int T, int D, int c0, int ncol);
} row_kernels;

extern const row_kernels row_kernels_avx512, row_kernels_avx2, row_kernels_generic;

/* The table of the active code path (cpu_isa_active: chosen once, SMDLM_ISA applied). */
static inline const row_kernels *rows(void) { return CPU_PATH_TABLE(row_kernels); }

#endif
