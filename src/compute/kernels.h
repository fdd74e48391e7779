/* kernels.h — the compute core: forward kernels of the DiT, Dream/LLaDA and GPT-2 and the
 * row operations of the samplers; their matrix products go through gemm.h. A kernel with a
 * plain reference twin (suffix _ref, kernels_ref.c: same signature, written for clarity with
 * libm) is checked against it by the tests.
 *
 * Layout conventions (row-major, llm.c style): B batch, T positions, D hidden, H heads,
 * hd = D / H, V vocabulary. Linear weights are PyTorch's [out, in].
 * Modulation vectors (adaLN) are rows of length `mod_stride` per batch element; a kernel
 * receives pointers to the chunk it needs (shift/scale/gate) and the stride.
 */
#ifndef SMDLM_KERNELS_H
#define SMDLM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Sets the thread count of OpenMP and of the matrix products (gemm_set_threads; n ≥ 1). */
void kernels_set_threads(int n);
int kernels_get_threads(void); /* omp_get_max_threads(): size per-thread scratch with it */

/* Name of the SIMD level the optimised kernels run with ("avx512f", "avx2", "generic"). */
const char *kernels_simd_level(void);

/* out[N,OC] = inp[N,IC] · w[OC,IC]ᵀ + bias[OC] (bias may be NULL). */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                    int IC, int OC);
void matmul_forward_ref(float *out, const float *inp, const float *w, const float *bias, int N,
                        int IC, int OC);
/* out[N,OC] = inp[N,IC] · w[IC,OC] + bias[OC]: weights stored [in, out] (HF GPT-2's Conv1D),
 * used in place (no transpose). */
void matmul_forward_in_out(float *out, const float *inp, const float *w, const float *bias,
                           int N, int IC, int OC);

/* LayerNorm with weight and bias over rows of D: out = (x − μ)/√(var + eps)·w + b. */
void layernorm_forward(float *out, const float *x, const float *w, const float *b, size_t N,
                       int D, float eps);
/* RMSNorm over rows of D in fp32 (Qwen2RMSNorm, LLaDA's RMSLayerNorm):
 * out = w · (x · rsqrt(mean(x²) + eps)). */
void rmsnorm_forward(float *out, const float *x, const float *w, size_t N, int D, float eps);

/* out = LN(x)·w·(1 + scale[b]) + shift[b]; LayerNorm without bias, eps 1e-5, over D.
 * shift/scale point at [b=0] and advance by mod_stride per batch element. */
void layernorm_modulate_forward(float *out, const float *x, const float *w, const float *shift,
                                const float *scale, int mod_stride, int B, int T, int D);
void layernorm_modulate_forward_ref(float *out, const float *x, const float *w,
                                    const float *shift, const float *scale, int mod_stride,
                                    int B, int T, int D);

/* Rotary tables for positions [0,T): cos/sin [T, hd/2] (the two halves share a frequency). */
void rope_tables(float *cos_t, float *sin_t, int T, int hd, float base);
/* In place on the q and k parts of qkv [B,T,3,H,hd], half-split rotate_half convention. */
void rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                  int hd);
void rope_forward_ref(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                      int hd);
/* The same rotation in place on separate q [N, q_heads·hd] and k [N, k_heads·hd] rows; row n
 * is position lo + n mod Tq (canvases cut to the window of Tq positions starting at lo). */
void rope_forward_qk(float *q, float *k, const float *cos_t, const float *sin_t, size_t N,
                     int Tq, int lo, int q_heads, int k_heads, int hd);
/* Its transpose (the backward pass) on the gradients dq, dk of canvases of T positions. */
void rope_backward_qk(float *dq, float *dk, const float *cos_t, const float *sin_t, size_t N,
                      int T, int q_heads, int k_heads, int hd);

/* One head of scaled dot-product attention on strided views: S[Tq,T] = q·kᵀ/√hd, softmax
 * over each row of S, o = S·v. Row i of q is at q + i·ldq, rows of k and v at stride ldkv,
 * rows of o at stride ldo; S (Tq·T floats) keeps the probabilities. causal (Tq = T): query
 * i sees keys 0 … i (S is 0 above the diagonal). Called from a parallel region, its matrix
 * products run single-threaded (gemm.h). */
void attention_head(float *o, float *S, const float *q, const float *k, const float *v, int Tq,
                    int T, int hd, int ldq, int ldkv, int ldo, int causal);
/* Scaled dot-product attention over qkv [B,T,3,H,hd] → out [B,T,H,hd]; scale 1/√hd.
 * scratch holds T·T floats per thread (attention_scratch_floats). causal: j ≤ i only. */
size_t attention_scratch_floats(int T, int nthreads);
void attention_forward(float *out, const float *qkv, float *scratch, int B, int T, int H,
                       int hd, int causal);
/* The same inside a parallel region that every thread of it calls (an orphaned worksharing
 * loop over the B·H heads, ending with its barrier). */
void attention_heads(float *out, const float *qkv, float *scratch, int B, int T, int H, int hd,
                     int causal);
void attention_forward_ref(float *out, const float *qkv, int B, int T, int H, int hd,
                           int causal);

/* In place GELU with the tanh approximation. */
void gelu_tanh_forward(float *x, size_t n);
void gelu_tanh_forward_ref(float *x, size_t n);

/* x[b,t,:] += gate[b,:] · y[b,t,:] (gate advances by mod_stride per batch element). */
void gated_residual_forward(float *x, const float *y, const float *gate, int mod_stride, int B,
                            int T, int D);
void gated_residual_forward_ref(float *x, const float *y, const float *gate, int mod_stride,
                                int B, int T, int D);

/* SiLU in place. */
void silu_forward(float *x, size_t n);
/* SwiGLU in place: gate ← silu(gate) · up over n elements. */
void swiglu_forward(float *gate, const float *up, size_t n);
/* Residual connection: x += y over n elements. */
void residual_add_forward(float *x, const float *y, size_t n);

/* MDLM timestep embedding: out[256] = [cos(σ·f_i), sin(σ·f_i)], f_i = exp(−ln(1e4)·i/128). */
void timestep_embedding(float *out, float sigma);

/* Row softmax in place (max-subtracted, expf_fast): attention score rows. */
void softmax_row(float *x, int n);

/* Row log-softmax in place (SUBS, scoring). 0, or −1 when the row holds a NaN or an
 * infinity (the row is then left as it was): the check costs no pass of its own. */
int log_softmax_row(float *x, int n);
int log_softmax_row_ref(float *x, int n);
/* dst[0..n) = src[0..n); 0, or −1 when src holds a NaN or an infinity (in the same pass). */
int row_copy_finite(float *dst, const float *src, int n);

/* Statistics of softmax(x) over a row: returns negH = Σ p·log p with p = softmax(x),
 * computed as Σ e^{x−m}(x−m)/S − log S (m = max, S = Σ e^{x−m}). */
float row_neg_entropy(const float *x, int n);
float row_neg_entropy_ref(const float *x, int n);
/* The same given m, the row's maximum (the first value of row_topk): one pass fewer. */
float row_neg_entropy_max(const float *x, int n, float m);
/* Indices and values of the k largest entries, descending; ties keep the lower index. */
void row_topk(const float *x, int n, int k, int32_t *idx, float *val);

/* exp(x) for a vector, accurate to ~2 ulp for x in the float range (vectorised). */
void vexp(float *out, const float *x, size_t n);

#endif
