/* kernels.c — optimised forward kernels (see kernels.h). Matrix products go to gemm.h;
 * OpenMP distributes rows, and the loops over a row run from the table of the active code
 * path (rows.h: AVX-512, AVX2 or portable, chosen once from smdlm's own CPU detection). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "compute/gemm.h"
#include "compute/kernels.h"
#include "compute/kernels_bwd.h"
#include "compute/rows.h"
#include "base/simd_math.h"
#include "base/util.h"

void kernels_set_threads(int n) {
    SM_ASSERT(n >= 1);
    omp_set_num_threads(n);
    gemm_set_threads(n);
}

/* The threads OpenMP parallel regions will use — per-thread scratch must be sized by this,
 * whether or not kernels_set_threads was called. */
int kernels_get_threads(void) { return omp_get_max_threads(); }

const char *kernels_simd_level(void) { return cpu_isa_name(cpu_isa_active()); }

void vexp(float *out, const float *x, size_t n) { rows()->vexp(out, x, n); }

void softmax_row(float *x, int n) { rows()->softmax_row(x, n); }

/* ---- matrix products --------------------------------------------------------------------- */

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                    int IC, int OC) {
    gemm_f32(GEMM_NOTRANS, GEMM_TRANS, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
    if (!bias) return;
    const row_kernels *k = rows();
#pragma omp parallel for schedule(static) if ((size_t)N * OC > 65536)
    for (int n = 0; n < N; n++) k->add_chunk(out + (size_t)n * OC, bias, (size_t)OC);
}

void matmul_forward_in_out(float *out, const float *inp, const float *w, const float *bias,
                           int N, int IC, int OC) {
    float beta = 0.0f;
    if (bias) {
        for (int r = 0; r < N; r++) memcpy(out + (size_t)r * OC, bias, sizeof(float) * (size_t)OC);
        beta = 1.0f;
    }
    gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, N, OC, IC, 1.0f, inp, IC, w, OC, beta, out, OC);
}

/* ---- LayerNorm, RMSNorm ------------------------------------------------------------------ */

void layernorm_forward(float *out, const float *x, const float *w, const float *b, size_t N,
                       int D, float eps) {
#pragma omp parallel for schedule(static) if (N * (size_t)D > 65536)
    for (size_t r = 0; r < N; r++) {
        const float *xr = x + r * (size_t)D;
        float *o = out + r * (size_t)D;
        float mean = 0.0f;
        for (int i = 0; i < D; i++) mean += xr[i];
        mean /= (float)D;
        float var = 0.0f;
        for (int i = 0; i < D; i++) {
            float d = xr[i] - mean;
            var += d * d;
        }
        var /= (float)D;
        float rstd = 1.0f / sqrtf(var + eps);
        for (int i = 0; i < D; i++) o[i] = (xr[i] - mean) * rstd * w[i] + b[i];
    }
}

void rmsnorm_forward(float *out, const float *x, const float *w, size_t N, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) rows()->rmsnorm_row(out + n * D, x + n * D, w, D, eps);
}

/* ---- LayerNorm + adaLN modulation --------------------------------------------------------- */

static void ln_modulate_rows(float *out, float *xhat, float *rstd, const float *x, const float *w,
                             const float *shift, const float *scale, int mod_stride, int B, int T,
                             int D) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t, row = r * D;
            rows()->ln_modulate_row(out + row, xhat ? xhat + row : NULL, rstd ? rstd + r : NULL, x + row, w,
                            shift + (size_t)b * mod_stride, scale + (size_t)b * mod_stride, D);
        }
}

void layernorm_modulate_forward(float *out, const float *x, const float *w, const float *shift,
                                const float *scale, int mod_stride, int B, int T, int D) {
    ln_modulate_rows(out, NULL, NULL, x, w, shift, scale, mod_stride, B, T, D);
}

void layernorm_modulate_forward_train(float *out, float *xhat, float *rstd, const float *x,
                                      const float *w, const float *shift, const float *scale,
                                      int mod_stride, int B, int T, int D) {
    ln_modulate_rows(out, xhat, rstd, x, w, shift, scale, mod_stride, B, T, D);
}

/* ---- rotary --------------------------------------------------------------------------------- */

void rope_tables(float *cos_t, float *sin_t, int T, int hd, float base) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        /* inv_freq computed in float like the reference: 1 / base^(2i/hd) */
        float inv_freq = 1.0f / powf(base, (float)(2 * i) / (float)hd);
        for (int t = 0; t < T; t++) {
            float f = (float)t * inv_freq;
            cos_t[(size_t)t * half + i] = cosf(f);
            sin_t[(size_t)t * half + i] = sinf(f);
        }
    }
}

static void rope_rotate(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                        int hd, float sign) {
    int half = hd / 2;
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) /* q and k: the row's first 2·H heads; v is not rotated */
            rows()->rope_heads(qkv + ((size_t)b * T + t) * 3 * H * hd, 2 * H, hd,
                       cos_t + (size_t)t * half, sin_t + (size_t)t * half, sign);
}

static void rope_qk(float *q, float *k, const float *cos_t, const float *sin_t, size_t N, int Tq,
                    int lo, int q_heads, int k_heads, int hd, float sign) {
    const int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const size_t t = (size_t)lo + n % Tq;
        const float *c = cos_t + t * half, *s = sin_t + t * half;
        rows()->rope_heads(q + n * q_heads * hd, q_heads, hd, c, s, sign);
        rows()->rope_heads(k + n * k_heads * hd, k_heads, hd, c, s, sign);
    }
}

void rope_forward_qk(float *q, float *k, const float *cos_t, const float *sin_t, size_t N,
                     int Tq, int lo, int q_heads, int k_heads, int hd) {
    rope_qk(q, k, cos_t, sin_t, N, Tq, lo, q_heads, k_heads, hd, 1.0f);
}

void rope_backward_qk(float *dq, float *dk, const float *cos_t, const float *sin_t, size_t N,
                      int T, int q_heads, int k_heads, int hd) {
    rope_qk(dq, dk, cos_t, sin_t, N, T, 0, q_heads, k_heads, hd, -1.0f);
}

void rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                  int hd) {
    rope_rotate(qkv, cos_t, sin_t, B, T, H, hd, 1.0f);
}

void rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                   int hd) {
    rope_rotate(dqkv, cos_t, sin_t, B, T, H, hd, -1.0f);
}

/* ---- attention -------------------------------------------------------------------------- */

size_t attention_scratch_floats(int T, int nthreads) {
    return sm_size_mul(sm_size_mul((size_t)T, (size_t)T), (size_t)nthreads); /* saturating */
}

/* Softmax over the Tq rows of T scores in S; causal: row i over its first i + 1 entries, the
 * rest set to 0. */
static void attention_softmax(float *S, int Tq, int T, int causal) {
    for (int i = 0; i < Tq; i++) {
        float *row = S + (size_t)i * T;
        if (causal) {
            softmax_row(row, i + 1);
            memset(row + i + 1, 0, sizeof(float) * (size_t)(T - i - 1));
        } else {
            softmax_row(row, T);
        }
    }
}

void attention_head(float *o, float *S, const float *q, const float *k, const float *v, int Tq,
                    int T, int hd, int ldq, int ldkv, int ldo, int causal) {
    const float scale = 1.0f / sqrtf((float)hd);
    gemm_f32(GEMM_NOTRANS, GEMM_TRANS, Tq, T, hd, scale, q, ldq, k, ldkv, 0.0f, S, T);
    attention_softmax(S, Tq, T, causal);
    gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, Tq, hd, T, 1.0f, S, T, v, ldkv, 0.0f, o, ldo);
}

void attention_heads(float *out, const float *qkv, float *scratch, int B, int T, int H, int hd,
                     int causal) {
    const int D = H * hd, ld = 3 * D;
    /* One (b, h) pair per task, its scores in the thread's T·T slot of scratch; the products
     * inside the parallel region run single-threaded (gemm.h). An orphaned `omp for`: it
     * shares the tasks among the threads of the region it is called from. */
#pragma omp for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *S = scratch + (size_t)omp_get_thread_num() * T * T;
        const float *q = qkv + (size_t)b * T * ld + (size_t)h * hd;
        attention_head(out + (size_t)b * T * D + (size_t)h * hd, S, q, q + D, q + 2 * D, T, T, hd,
                       ld, ld, D, causal);
    }
}

void attention_forward(float *out, const float *qkv, float *scratch, int B, int T, int H,
                       int hd, int causal) {
#pragma omp parallel
    attention_heads(out, qkv, scratch, B, T, H, hd, causal);
}

/* Training keeps every head's probabilities, so the heads run as strided batches of the
 * same products as attention_head's: per head h, the B sequences' scores (one batch), the
 * softmax of every row, then per head the products with v. */
void attention_forward_train(float *out, float *att, const float *qkv, int B, int T, int H,
                             int hd, int causal) {
    const int D = H * hd, ld = 3 * D;
    const size_t TT = (size_t)T * T, seq = (size_t)T * ld; /* one sequence of qkv */
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) /* att[b, h] = scale·q[b, h]·k[b, h]ᵀ */
        gemm_f32_batched(GEMM_NOTRANS, GEMM_TRANS, T, T, hd, scale, qkv + (size_t)h * hd, ld, seq,
                         qkv + D + (size_t)h * hd, ld, seq, 0.0f, att + h * TT, T, H * TT, B);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) attention_softmax(att + bh * TT, T, T, causal);
    for (int h = 0; h < H; h++) /* out[b, :, h] = att[b, h]·v[b, h] */
        gemm_f32_batched(GEMM_NOTRANS, GEMM_NOTRANS, T, hd, T, 1.0f, att + h * TT, T, H * TT,
                         qkv + 2 * D + (size_t)h * hd, ld, seq, 0.0f, out + (size_t)h * hd, D,
                         (size_t)T * D, B);
}

/* ---- elementwise ------------------------------------------------------------------------ */

void gelu_tanh_forward(float *x, size_t n) {
    const size_t chunk = 16384;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        size_t a = c * chunk, len = n - a < chunk ? n - a : chunk;
        rows()->gelu_chunk(x + a, len);
    }
}

void gated_residual_forward(float *x, const float *y, const float *gate, int mod_stride, int B,
                            int T, int D) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t row = ((size_t)b * T + t) * D;
            rows()->gated_add_row(x + row, y + row, gate + (size_t)b * mod_stride, D);
        }
}

/* fn(a + i, b + i, len) over chunks of CHUNK elements, the chunks spread over the threads. */
#define CHUNK 16384
#define CHUNKED(fn, a, b, n)                                                                  \
    do {                                                                                      \
        size_t n_ = (n), nc_ = (n_ + CHUNK - 1) / CHUNK;                                      \
        _Pragma("omp parallel for schedule(static)") for (size_t c_ = 0; c_ < nc_; c_++) {    \
            size_t a_ = c_ * CHUNK;                                                           \
            fn((a) + a_, (b) + a_, n_ - a_ < CHUNK ? n_ - a_ : CHUNK);                        \
        }                                                                                     \
    } while (0)

void swiglu_forward(float *gate, const float *up, size_t n) { CHUNKED(rows()->swiglu_chunk, gate, up, n); }

void residual_add_forward(float *x, const float *y, size_t n) { CHUNKED(rows()->add_chunk, x, y, n); }

void silu_forward(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void timestep_embedding(float *out, float sigma) {
    const int half = 128;
    for (int i = 0; i < half; i++) {
        float f = expf(-logf(10000.0f) * (float)i / (float)half);
        float a = sigma * f;
        out[i] = cosf(a);
        out[half + i] = sinf(a);
    }
}

/* ---- log-softmax (SUBS) ----------------------------------------------------------------- */

int log_softmax_row(float *x, int n) {
    int finite;
    float mx = rows()->row_max(x, n, &finite);
    if (!finite) return -1; /* expf_fast has no meaning (nor defined behaviour) for NaN */
    float lse = mx + logf(rows()->row_sum_exp(x, n, mx));
    rows()->row_sub(x, n, lse);
    return 0;
}

int row_copy_finite(float *dst, const float *src, int n) {
    return rows()->copy_chunk(dst, src, n) == 0.0f ? 0 : -1;
}

/* ---- soft-masking row statistics ------------------------------------------------------- */

float row_neg_entropy_max(const float *x, int n, float m) {
    double s, sz;
    rows()->row_exp_moments(x, n, m, &s, &sz);
    return (float)(sz / s - log(s));
}

float row_neg_entropy(const float *x, int n) {
    return row_neg_entropy_max(x, n, rows()->row_max(x, n, NULL));
}

void row_topk(const float *x, int n, int k, int32_t *idx, float *val) {
    rows()->row_topk(x, n, k, idx, val);
}
