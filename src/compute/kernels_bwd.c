/* kernels_bwd.c — backward kernels of the DiT (see kernels_bwd.h). Every kernel accumulates
 * (+=) into its gradients. Matrix products go to gemm.h; row and column work is compiled
 * for AVX-512, AVX2 and baseline x86-64 (target_clones) in separate functions, because the
 * bodies OpenMP outlines do not inherit the clones (as in kernels.c).
 *
 * Determinism: sums over rows (dbias, LayerNorm's dw/dshift/dscale, dgate) are split by
 * columns: one task owns a block of COLS output columns and adds the rows in their order
 * (in blocks of ROWBLK rows, a two-level sum that keeps the float error small for long
 * sums). The result therefore depends neither on the thread count nor on the schedule.
 * Attention tasks (b, h) write disjoint strided slices of dqkv. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "compute/gemm.h"
#include "compute/kernels.h"
#include "compute/kernels_bwd.h"
#include "base/simd_math.h"
#include "base/util.h"

#define SIMD_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))

#define COLS 32   /* columns per reduction task */
#define ROWBLK 32 /* rows summed in an inner float block before joining the outer sum */

/* a > b ? t : f through an integer mask: branch-free in GIMPLE. Written as a plain ?:,
 * GCC's PRE folds the constant arm of a clamp into the arithmetic that follows and leaves a
 * branch, and the avx2 and default clones do not vectorise ("control flow in loop"; only
 * AVX-512 if-converts it with masks, and -fno-trapping-math would also do). */
static inline int n_col_tasks(int D) { return (D + COLS - 1) / COLS; }

/* ---- matmul ------------------------------------------------------------------------------ */

/* dbias[c0 + i] += Σ_n dout[n, c0 + i], i < ncol ≤ COLS. */
SIMD_CLONES static void colsum_block(float *dbias, const float *dout, int N, int OC, int c0,
                                     int ncol) {
    float acc[COLS] = {0};
    for (int n0 = 0; n0 < N; n0 += ROWBLK) {
        int n1 = n0 + ROWBLK < N ? n0 + ROWBLK : N;
        float blk[COLS] = {0};
        for (int n = n0; n < n1; n++) {
            const float *g = dout + (size_t)n * OC + c0;
#pragma omp simd
            for (int i = 0; i < ncol; i++) blk[i] += g[i];
        }
#pragma omp simd
        for (int i = 0; i < ncol; i++) acc[i] += blk[i];
    }
#pragma omp simd
    for (int i = 0; i < ncol; i++) dbias[c0 + i] += acc[i];
}

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
            colsum_block(dbias, dout, N, OC, c0, ncol);
        }
    }
}

/* ---- LayerNorm + adaLN modulation --------------------------------------------------------- */

/* dx += rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)), dxhat = dout·(1 + scale)·w. */
SIMD_CLONES static void ln_backward_row(float *dx, const float *dout, const float *xhat,
                                        float rstd, const float *w, const float *scale, int D) {
    float m1 = 0.0f, m2 = 0.0f;
#pragma omp simd reduction(+ : m1, m2)
    for (int i = 0; i < D; i++) {
        float dxh = dout[i] * (1.0f + scale[i]) * w[i];
        m1 += dxh;
        m2 += dxh * xhat[i];
    }
    m1 /= (float)D;
    m2 /= (float)D;
#pragma omp simd
    for (int i = 0; i < D; i++) {
        float dxh = dout[i] * (1.0f + scale[i]) * w[i];
        dx[i] += rstd * (dxh - m1 - xhat[i] * m2);
    }
}

/* Columns [c0, c0 + ncol): dw += Σ_{b,t} dout·(1+scale)·xhat, dshift[b] += Σ_t dout,
 * dscale[b] += Σ_t dout·xhat·w. */
SIMD_CLONES static void ln_backward_cols(float *dw, float *dshift, float *dscale,
                                         const float *dout, const float *xhat, const float *w,
                                         const float *scale, int mod_stride, int B, int T,
                                         int D, int c0, int ncol) {
    float aw[COLS] = {0};
    for (int b = 0; b < B; b++) {
        const float *sc = scale + (size_t)b * mod_stride + c0, *wc = w + c0;
        float ash[COLS] = {0}, asc[COLS] = {0}, bw[COLS] = {0};
        for (int t0 = 0; t0 < T; t0 += ROWBLK) {
            int t1 = t0 + ROWBLK < T ? t0 + ROWBLK : T;
            float kw[COLS] = {0}, ksh[COLS] = {0}, ksc[COLS] = {0};
            for (int t = t0; t < t1; t++) {
                size_t row = ((size_t)b * T + t) * D + c0;
                const float *g = dout + row, *xh = xhat + row;
#pragma omp simd
                for (int i = 0; i < ncol; i++) {
                    kw[i] += g[i] * (1.0f + sc[i]) * xh[i];
                    ksh[i] += g[i];
                    ksc[i] += g[i] * xh[i] * wc[i];
                }
            }
#pragma omp simd
            for (int i = 0; i < ncol; i++) {
                bw[i] += kw[i];
                ash[i] += ksh[i];
                asc[i] += ksc[i];
            }
        }
#pragma omp simd
        for (int i = 0; i < ncol; i++) aw[i] += bw[i];
        if (dshift) {
            float *p = dshift + (size_t)b * mod_stride + c0;
#pragma omp simd
            for (int i = 0; i < ncol; i++) p[i] += ash[i];
        }
        if (dscale) {
            float *p = dscale + (size_t)b * mod_stride + c0;
#pragma omp simd
            for (int i = 0; i < ncol; i++) p[i] += asc[i];
        }
    }
    if (dw) {
#pragma omp simd
        for (int i = 0; i < ncol; i++) dw[c0 + i] += aw[i];
    }
}

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
                    ln_backward_row(dx + row, dout + row, xhat + row, rstd[r], w,
                                    scale + (size_t)b * mod_stride, D);
                }
        }
        if (dw || dshift || dscale) {
#pragma omp for schedule(static)
            for (int c = 0; c < ntask; c++) {
                int c0 = c * COLS, ncol = D - c0 < COLS ? D - c0 : COLS;
                ln_backward_cols(dw, dshift, dscale, dout, xhat, w, scale, mod_stride, B, T, D,
                                 c0, ncol);
            }
        }
    }
}

/* ---- rotary --------------------------------------------------------------------------------- */


/* ---- attention -------------------------------------------------------------------------- */

/* dS = P ⊙ (dP − Σ_j dP·P) for one row, in place on dP. Entries with P = 0 (causal) get 0. */
SIMD_CLONES static void softmax_backward_row(float *dp, const float *p, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += dp[i] * p[i];
#pragma omp simd
    for (int i = 0; i < n; i++) dp[i] = p[i] * (dp[i] - s);
}

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
        for (int i = 0; i < T; i++) softmax_backward_row(dS + (size_t)i * T, P + (size_t)i * T, T);
        /* dQ += scale·dS·K, dK += scale·dSᵀ·Q */
        gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, T, hd, T, scale, dS, T, k, ld, 1.0f, dq, ld);
        gemm_f32(GEMM_TRANS, GEMM_NOTRANS, T, hd, T, scale, dS, T, q, ld, 1.0f, dk, ld);
    }
}

/* ---- elementwise ------------------------------------------------------------------------ */

/* gelu'(v) = σ(2u) + 2·v·u'·σ(2u)(1 − σ(2u)), u = √(2/π)(v + 0.044715v³), which is
 * 0.5(1 + tanh u) + 0.5·v·(1 − tanh²u)·u'. With a = e^{−|2u|} ∈ [0, 1]: σ(2u) = 1/(1+a) for
 * u ≥ 0 and a/(1+a) below, σ(1−σ) = a/(1+a)²; no overflow and no cancellation. v is clamped
 * to ±1e4 (where gelu' is exactly 0 or 1 in float) so that v·u' stays finite. */
SIMD_CLONES static void gelu_backward_chunk(float *dinp, const float *inp, const float *dout,
                                            size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = inp[i];
        v = sel_gt(v, 1e4f, 1e4f, v);
        v = sel_gt(-1e4f, v, -1e4f, v);
        float v2 = v * v;
        float z = 1.5957691216057308f * (v + 0.044715f * v2 * v); /* 2u */
        float du = 1.5957691216057308f * (1.0f + 0.134145f * v2);  /* 2u' */
        float a = expf_fast(-fabsf(z));
        float inv = 1.0f / (1.0f + a), ainv = a * inv;
        float sig = z >= 0.0f ? inv : ainv;
        float d = sig + v * du * (ainv * inv);
        dinp[i] += dout[i] * d;
    }
}

void gelu_tanh_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    const size_t chunk = 16384;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        size_t a = c * chunk, len = n - a < chunk ? n - a : chunk;
        gelu_backward_chunk(dinp + a, inp + a, dout + a, len);
    }
}

/* silu'(x) = σ(x)(1 + x(1 − σ(x))) = σ + x·σ(1−σ), with a = e^{−|x|} as for GELU. */
SIMD_CLONES static void silu_backward_chunk(float *dinp, const float *inp, const float *dout,
                                            size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float a = expf_fast(-fabsf(x));
        float inv = 1.0f / (1.0f + a), ainv = a * inv;
        float sig = x >= 0.0f ? inv : ainv;
        dinp[i] += dout[i] * (sig + x * (ainv * inv));
    }
}

void silu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    const size_t chunk = 16384;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        size_t a = c * chunk, len = n - a < chunk ? n - a : chunk;
        silu_backward_chunk(dinp + a, inp + a, dout + a, len);
    }
}

/* Columns [c0, c0 + ncol) of batch element b: dy += dout·gate, dgate += Σ_t dout·y. */
SIMD_CLONES static void gated_backward_cols(float *dy, float *dgate, const float *dout,
                                            const float *y, const float *gate, int T, int D,
                                            int c0, int ncol) {
    float acc[COLS] = {0};
    for (int t0 = 0; t0 < T; t0 += ROWBLK) {
        int t1 = t0 + ROWBLK < T ? t0 + ROWBLK : T;
        float blk[COLS] = {0};
        for (int t = t0; t < t1; t++) {
            size_t row = (size_t)t * D + c0;
            const float *g = dout + row, *yr = y + row;
            if (dy) {
                float *d = dy + row;
#pragma omp simd
                for (int i = 0; i < ncol; i++) d[i] += g[i] * gate[i];
            }
#pragma omp simd
            for (int i = 0; i < ncol; i++) blk[i] += g[i] * yr[i];
        }
#pragma omp simd
        for (int i = 0; i < ncol; i++) acc[i] += blk[i];
    }
    if (dgate) {
#pragma omp simd
        for (int i = 0; i < ncol; i++) dgate[i] += acc[i];
    }
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
            gated_backward_cols(dy ? dy + off : NULL,
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
