/* rows_simd.c — the loops of the kernels (see rows.h), built once per code path: the
 * Makefile compiles this file with -DSIMD_PATH=avx512 and -mavx512f…, with avx2 and
 * -mavx2 -mfma, and with generic and no -m flag; each build exports one table,
 * row_kernels_<path>. Everything else is static, so the three builds link side by side.
 * Loops are written so that GCC vectorises them at every width (#pragma omp simd, selects
 * through base/simd_math.h). */
#include <math.h>
#include <stdint.h>

#include "compute/rows.h"
#include "base/simd_math.h"

#ifndef SIMD_PATH
#error "rows_simd.c is built once per code path with -DSIMD_PATH=avx512|avx2|generic"
#endif
#define COLS ROWS_COLS
#define ROWBLK ROWS_ROWBLK

/* ---- forward ------------------------------------------------------------------------------ */

static void vexp_chunk(float *out, const float *x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = expf_fast(x[i]);
}

static void rmsnorm_row(float *o, const float *x, const float *w, int D, float eps) {
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < D; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)D + eps);
#pragma omp simd
    for (int i = 0; i < D; i++) o[i] = w[i] * (x[i] * r);
}

/* One row; when xhat != NULL also saves xhat = (x − mean)·rstd and rstd for the backward
 * pass (same arithmetic either way, so training and inference agree bit for bit). */
static void ln_modulate_row(float *o, float *xhat, float *rstd_out, const float *x,
                                        const float *w, const float *shift, const float *scale,
                                        int D) {
    float mean = 0.0f, var = 0.0f;
#pragma omp simd reduction(+ : mean)
    for (int i = 0; i < D; i++) mean += x[i];
    mean /= (float)D;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < D; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (float)D;
    float rstd = 1.0f / sqrtf(var + 1e-5f);
    if (xhat) {
        *rstd_out = rstd;
#pragma omp simd
        for (int i = 0; i < D; i++) xhat[i] = (x[i] - mean) * rstd;
    }
#pragma omp simd
    for (int i = 0; i < D; i++) o[i] = ((x[i] - mean) * rstd * w[i]) * (1.0f + scale[i]) + shift[i];
}

/* Rotates the pairs (v[i], v[i + hd/2]) of nheads consecutive heads of size hd by +θ
 * (sign 1) or −θ (sign −1: the transpose, which is the backward pass). */
static void rope_heads(float *v, int nheads, int hd, const float *c, const float *s,
                                   float sign) {
    const int half = hd / 2;
    for (int h = 0; h < nheads; h++, v += hd) {
#pragma omp simd
        for (int i = 0; i < half; i++) {
            float a = v[i], b = v[i + half], sn = sign * s[i];
            v[i] = a * c[i] - b * sn;
            v[i + half] = b * c[i] + a * sn;
        }
    }
}

static void softmax_row(float *x, int n) {
    float mx = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) {
        x[i] = expf_fast(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static void gelu_chunk(float *x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
        /* 0.5·v·(1 + tanh u) = v·sigmoid(2u): no cancellation in the negative tail */
        x[i] = v / (1.0f + expf_fast(-2.0f * u));
    }
}

static void gated_add_row(float *x, const float *y, const float *g, int D) {
#pragma omp simd
    for (int i = 0; i < D; i++) x[i] += g[i] * y[i];
}

/* gate ← silu(gate) · up, silu(g) = g·sigmoid(g). */
static void swiglu_chunk(float *g, const float *u, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf_fast(-g[i])) * u[i];
}

static void add_chunk(float *x, const float *y, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* The row's maximum; with finite != NULL, *finite = 0 when the row holds a NaN or an
 * infinity. x − x is exactly 0 for a finite x and NaN otherwise, so the check rides on the
 * pass that finds the maximum. */
static float row_max(const float *x, int n, int *finite) {
    float mx = -INFINITY, z = 0.0f;
#pragma omp simd reduction(max : mx) reduction(+ : z)
    for (int i = 0; i < n; i++) {
        mx = x[i] > mx ? x[i] : mx;
        z += x[i] - x[i];
    }
    if (finite) *finite = z == 0.0f;
    return mx;
}

static float row_sum_exp(const float *x, int n, float shift) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) sum += expf_fast(x[i] - shift);
    return sum;
}

static void row_sub(float *x, int n, float c) {
#pragma omp simd
    for (int i = 0; i < n; i++) x[i] -= c;
}

static float copy_chunk(float *dst, const float *src, int n) {
    float z = 0.0f;
#pragma omp simd reduction(+ : z)
    for (int i = 0; i < n; i++) {
        dst[i] = src[i];
        z += src[i] - src[i]; /* 0, or NaN after a non-finite entry (see row_max) */
    }
    return z;
}

/* Symmetric int8 with one scale per row, as the q8 weights (linear.h). |x·127/max| ≤ 127 up
 * to two roundings, so adding and subtracting 1.5·2²³ rounds it half to even to an integer
 * in [−127, 127] (the same bits as nearbyintf on every path). */
static float quantize_q8_row(int8_t *q, const float *x, int n, int ld) {
    float mx = 0.0f, z = 0.0f;
#pragma omp simd reduction(max : mx) reduction(+ : z)
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        mx = a > mx ? a : mx;
        z += x[i] - x[i]; /* 0, or NaN after a non-finite entry (see row_max) */
    }
    const float inv = z == 0.0f && mx > 0.0f ? 127.0f / mx : 0.0f;
    if (z != 0.0f) n = 0; /* all zeros: x·0 would be NaN for an infinity */
#pragma omp simd
    for (int i = 0; i < n; i++) q[i] = (int8_t)(int)((x[i] * inv + 0x1.8p23f) - 0x1.8p23f);
    for (int i = n; i < ld; i++) q[i] = 0;
    return z == 0.0f ? mx / 127.0f : NAN;
}

/* Σ e^{x−m} and Σ e^{x−m}(x−m): float sums over blocks of 256, blocks summed in double
 * (V ≈ 50k-150k terms). */
static void row_exp_moments(const float *x, int n, float m, double *s_out,
                                        double *sz_out) {
    double s = 0.0, sz = 0.0;
    for (int b0 = 0; b0 < n; b0 += 256) {
        int b1 = b0 + 256 < n ? b0 + 256 : n;
        float bs = 0.0f, bz = 0.0f;
#pragma omp simd reduction(+ : bs, bz)
        for (int i = b0; i < b1; i++) {
            float d = x[i] - m;
            float e = expf_fast(d);
            bs += e;
            bz += e * d;
        }
        s += bs;
        sz += bz;
    }
    *s_out = s;
    *sz_out = sz;
}

/* Any of x[0..n) greater than thr? (vectorised scan, n small) */
static inline int any_greater(const float *x, int n, float thr) {
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int i = 0; i < n; i++) any |= x[i] > thr;
    return any;
}

/* Indices and values of the k largest entries, descending, ties to the lower index: blocks
 * of 64 are skipped with one vector comparison unless an entry beats the k-th value. */
static void row_topk(const float *x, int n, int k, int32_t *idx, float *val) {
    for (int j = 0; j < k; j++) {
        idx[j] = 0;
        val[j] = -INFINITY;
    }
    const int block = 64;
    for (int b0 = 0; b0 < n; b0 += block) {
        int b1 = b0 + block < n ? b0 + block : n;
        if (!any_greater(x + b0, b1 - b0, val[k - 1])) continue; /* nothing enters the list */
        for (int v = b0; v < b1; v++) {
            float z = x[v];
            if (!(z > val[k - 1])) continue;
            int j = k - 1;
            while (j > 0 && z > val[j - 1]) {
                val[j] = val[j - 1];
                idx[j] = idx[j - 1];
                j--;
            }
            val[j] = z;
            idx[j] = v;
        }
    }
}


/* ---- backward ----------------------------------------------------------------------------- */

/* dbias[c0 + i] += Σ_n dout[n, c0 + i], i < ncol ≤ COLS. */
static void colsum_block(float *dbias, const float *dout, int N, int OC, int c0,
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

/* dx += rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)), dxhat = dout·(1 + scale)·w. */
static void ln_backward_row(float *dx, const float *dout, const float *xhat,
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
static void ln_backward_cols(float *dw, float *dshift, float *dscale,
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

/* dS = P ⊙ (dP − Σ_j dP·P) for one row, in place on dP. Entries with P = 0 (causal) get 0. */
static void softmax_backward_row(float *dp, const float *p, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += dp[i] * p[i];
#pragma omp simd
    for (int i = 0; i < n; i++) dp[i] = p[i] * (dp[i] - s);
}

/* gelu'(v) = σ(2u) + 2·v·u'·σ(2u)(1 − σ(2u)), u = √(2/π)(v + 0.044715v³), which is
 * 0.5(1 + tanh u) + 0.5·v·(1 − tanh²u)·u'. With a = e^{−|2u|} ∈ [0, 1]: σ(2u) = 1/(1+a) for
 * u ≥ 0 and a/(1+a) below, σ(1−σ) = a/(1+a)²; no overflow and no cancellation. v is clamped
 * to ±1e4 (where gelu' is exactly 0 or 1 in float) so that v·u' stays finite. */
static void gelu_backward_chunk(float *dinp, const float *inp, const float *dout,
                                            size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = inp[i];
        /* the clamp through sel_gt's integer mask: written as ?:, GCC's PRE folds the
         * constant arm into the arithmetic that follows and leaves a branch, and the avx2
         * and generic builds do not vectorise ("control flow in loop") */
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

/* silu'(x) = σ(x)(1 + x(1 − σ(x))) = σ + x·σ(1−σ), with a = e^{−|x|} as for GELU. */
static void silu_backward_chunk(float *dinp, const float *inp, const float *dout,
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

/* Columns [c0, c0 + ncol) of batch element b: dy += dout·gate, dgate += Σ_t dout·y. */
static void gated_backward_cols(float *dy, float *dgate, const float *dout,
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

const row_kernels CPU_PATH_SYMBOL(row_kernels) = {
    .vexp = vexp_chunk,
    .rmsnorm_row = rmsnorm_row,
    .ln_modulate_row = ln_modulate_row,
    .rope_heads = rope_heads,
    .softmax_row = softmax_row,
    .gelu_chunk = gelu_chunk,
    .gated_add_row = gated_add_row,
    .swiglu_chunk = swiglu_chunk,
    .add_chunk = add_chunk,
    .row_max = row_max,
    .row_sum_exp = row_sum_exp,
    .row_sub = row_sub,
    .copy_chunk = copy_chunk,
    .row_exp_moments = row_exp_moments,
    .row_topk = row_topk,
    .quantize_q8_row = quantize_q8_row,
    .colsum_block = colsum_block,
    .ln_backward_row = ln_backward_row,
    .ln_backward_cols = ln_backward_cols,
    .softmax_backward_row = softmax_backward_row,
    .gelu_backward_chunk = gelu_backward_chunk,
    .silu_backward_chunk = silu_backward_chunk,
    .gated_backward_cols = gated_backward_cols,
};
