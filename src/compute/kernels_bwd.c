/* kernels_bwd.c — backward kernels of the DiT (see kernels_bwd.h). Every kernel accumulates
 * (+=) into its gradients. Matrix products go to gemm.h; row and column work is compiled
 * for AVX-512, AVX2 and baseline x86-64 (rows.h, the table of the active code path).
 *
 * Determinism: sums over rows (dbias, LayerNorm's dw/dshift/dscale, dgate) are split by
 * columns: one task owns a block of COLS output columns and adds the rows in their order
 * (in blocks of ROWS_ROWBLK rows, a two-level sum that keeps the float error small for long
 * sums). The result therefore depends neither on the thread count nor on the schedule.
 * Attention tasks (b, h) write disjoint strided slices of dqkv. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "compute/gemm.h"
#include "compute/kernels.h"
#include "compute/kernels_bwd.h"
#include "compute/rows.h"
#include "base/simd_math.h"
#include "base/util.h"

#define COLS ROWS_COLS /* columns per reduction task (blocks of ROWS_ROWBLK rows inside) */

static inline int n_col_tasks(int D) { return (D + COLS - 1) / COLS; }

/* ---- matmul ------------------------------------------------------------------------------ */

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int IC, int OC) {
    if (dinp) /* dinp[N,IC] += dout[N,OC] · w[OC,IC] */
        gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC);
    if (dw) /* dw[OC,IC] += dout[N,OC]ᵀ · inp[N,IC] */
        gemm_f32(GEMM_TRANS, GEMM_NOTRANS, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
    if (dbias) {
        int ntask = n_col_tasks(OC);
#pragma omp parallel for schedule(static)
        for (int c = 0; c < ntask; c++) {
            int c0 = c * COLS, ncol = OC - c0 < COLS ? OC - c0 : COLS;
            rows()->colsum_block(dbias, dout, N, OC, c0, ncol);
        }
    }
}

/* ---- LayerNorm + adaLN modulation --------------------------------------------------------- */

void layernorm_modulate_backward(float *dx, float *dw, float *dshift, float *dscale,
                                 const float *dout, const float *xhat, const float *rstd,
                                 const float *w, const float *scale, int mod_stride, int B,
                                 int T, int D) {
    int ntask = n_col_tasks(D);
#pragma omp parallel
    {
        if (dx) {
#pragma omp for schedule(static) collapse(2) nowait
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) {
                    size_t r = (size_t)b * T + t, row = r * D;
                    rows()->ln_backward_row(dx + row, dout + row, xhat + row, rstd[r], w,
                                    scale + (size_t)b * mod_stride, D);
                }
        }
        if (dw || dshift || dscale) {
#pragma omp for schedule(static)
            for (int c = 0; c < ntask; c++) {
                int c0 = c * COLS, ncol = D - c0 < COLS ? D - c0 : COLS;
                rows()->ln_backward_cols(dw, dshift, dscale, dout, xhat, w, scale, mod_stride, B, T, D,
                                 c0, ncol);
            }
        }
    }
}

/* ---- rotary --------------------------------------------------------------------------------- */


/* ---- attention -------------------------------------------------------------------------- */

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int H, int hd) {
    const int D = H * hd, ld = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
    /* (b, h) tasks write disjoint strided slices of dqkv; the products run single-threaded
     * inside the parallel region (gemm.h). */
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *dS = scratch + (size_t)omp_get_thread_num() * T * T;
        const float *P = att + (size_t)bh * T * T;
        size_t base = (size_t)b * T * ld + (size_t)h * hd;
        const float *q = qkv + base, *k = q + D, *v = q + 2 * D;
        float *dq = dqkv + base, *dk = dq + D, *dv = dq + 2 * D;
        const float *dO = dout + (size_t)b * T * D + (size_t)h * hd;
        /* dV += Pᵀ·dO */
        gemm_f32(GEMM_TRANS, GEMM_NOTRANS, T, hd, T, 1.0f, P, T, dO, D, 1.0f, dv, ld);
        /* dP = dO·Vᵀ */
        gemm_f32(GEMM_NOTRANS, GEMM_TRANS, T, T, hd, 1.0f, dO, D, v, ld, 0.0f, dS, T);
        for (int i = 0; i < T; i++) rows()->softmax_backward_row(dS + (size_t)i * T, P + (size_t)i * T, T);
        /* dQ += scale·dS·K, dK += scale·dSᵀ·Q */
        gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, T, hd, T, scale, dS, T, k, ld, 1.0f, dq, ld);
        gemm_f32(GEMM_TRANS, GEMM_NOTRANS, T, hd, T, scale, dS, T, q, ld, 1.0f, dk, ld);
    }
}

/* ---- elementwise ------------------------------------------------------------------------ */

typedef void (*activation_backward_chunk)(float *dinp, const float *inp, const float *dout, size_t n);

/* An activation's backward over n elements, in chunks of 16384 spread over the threads. */
static void activation_backward(activation_backward_chunk chunk_fn, float *dinp, const float *inp,
                                const float *dout, size_t n) {
    const size_t chunk = 16384;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        size_t a = c * chunk, len = n - a < chunk ? n - a : chunk;
        chunk_fn(dinp + a, inp + a, dout + a, len);
    }
}

void gelu_tanh_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    activation_backward(rows()->gelu_backward_chunk, dinp, inp, dout, n);
}

void silu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    activation_backward(rows()->silu_backward_chunk, dinp, inp, dout, n);
}

void gated_residual_backward(float *dy, float *dgate, const float *dout, const float *y,
                             const float *gate, int mod_stride, int B, int T, int D) {
    int nc = n_col_tasks(D);
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < nc; c++) {
            int c0 = c * COLS, ncol = D - c0 < COLS ? D - c0 : COLS;
            size_t off = (size_t)b * T * D;
            const float *gb = gate + (size_t)b * mod_stride + c0;
            rows()->gated_backward_cols(dy ? dy + off : NULL,
                                dgate ? dgate + (size_t)b * mod_stride + c0 : NULL, dout + off,
                                y + off, gb, T, D, c0, ncol);
        }
}

/* ---- loss --------------------------------------------------------------------------------- */

double softmax_cross_entropy_row(float *z, int V, int target, float w) {
    log_softmax_row(z, V);
    double loss = -(double)z[target] * w;
    vexp(z, z, (size_t)V); /* softmax */
    for (int v = 0; v < V; v++) z[v] *= w;
    z[target] -= w;
    return loss;
}
