/* kernels_bwd.c — backward kernels of the DiT and of Dream/LLaDA (see kernels_bwd.h). Every
 * kernel accumulates (+=) into its gradients. Matrix products go to gemm.h; row and column
 * work is compiled for AVX-512, AVX2 and baseline x86-64 (rows.h, the table of the active
 * code path).
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
    /* (b, h) tasks write disjoint strided slices of dqkv; the products run single-threaded
     * inside the parallel region (gemm.h). */
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        size_t base = (size_t)b * T * ld + (size_t)h * hd;
        const float *q = qkv + base;
        float *dq = dqkv + base;
        float *dS = scratch + (size_t)omp_get_thread_num() * T * T;
        attention_head_backward(dq, dq + D, dq + 2 * D, dS,
                                dout + (size_t)b * T * D + (size_t)h * hd, q, q + D, q + 2 * D,
                                att + (size_t)bh * T * T, T, hd, ld, ld, D);
    }
}

void attention_head_backward(float *dq, float *dk, float *dv, float *dS, const float *dO,
                             const float *q, const float *k, const float *v, const float *P,
                             int T, int hd, int ldq, int ldkv, int ldo) {
    const float scale = 1.0f / sqrtf((float)hd);
    /* dV += Pᵀ·dO */
    gemm_f32(GEMM_TRANS, GEMM_NOTRANS, T, hd, T, 1.0f, P, T, dO, ldo, 1.0f, dv, ldkv);
    /* dP = dO·Vᵀ */
    gemm_f32(GEMM_NOTRANS, GEMM_TRANS, T, T, hd, 1.0f, dO, ldo, v, ldkv, 0.0f, dS, T);
    for (int i = 0; i < T; i++) rows()->softmax_backward_row(dS + (size_t)i * T, P + (size_t)i * T, T);
    /* dQ += scale·dS·K, dK += scale·dSᵀ·Q */
    gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, T, hd, T, scale, dS, T, k, ldkv, 1.0f, dq, ldq);
    gemm_f32(GEMM_TRANS, GEMM_NOTRANS, T, hd, T, scale, dS, T, q, ldq, 1.0f, dk, ldkv);
}

/* ---- RMSNorm, SwiGLU ---------------------------------------------------------------------- */

void rmsnorm_backward(float *dx, const float *dout, const float *x, const float *w, size_t N,
                      int D, float eps) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *xr = x + n * D, *dy = dout + n * D;
        double ss = 0.0, dot = 0.0;
        for (int j = 0; j < D; j++) {
            ss += (double)xr[j] * xr[j];
            dot += (double)w[j] * dy[j] * xr[j];
        }
        const double r = 1.0 / sqrt(ss / D + (double)eps);
        const float a = (float)r, b = (float)(r * r * r * dot / D);
        float *d = dx + n * D;
        for (int j = 0; j < D; j++) d[j] += a * w[j] * dy[j] - b * xr[j];
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i], sg = 1.0f / (1.0f + expf(-g)), silu = g * sg;
        dgate[i] += dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
        dup[i] += dout[i] * silu;
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
