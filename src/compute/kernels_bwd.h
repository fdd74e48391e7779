/* kernels_bwd.h — backward kernels of the DiT and of Dream/LLaDA (llm.c style). Every kernel
 * *accumulates* (+=) into the gradients it is given (dinp, dweight, ...), so callers zero them
 * once per step — except rope_backward (and rope_backward_qk in kernels.h), which rotate
 * their buffers in place, and
 * softmax_cross_entropy_row, which overwrites its row; gradient pointers a caller does not
 * need may be NULL. The forward results a kernel needs are passed as "saved" arguments.
 * Layouts are those of kernels.h. Reductions run in a fixed order per output element
 * (threads own disjoint outputs), so results are identical for the same thread count.
 */
#ifndef SMDLM_KERNELS_BWD_H
#define SMDLM_KERNELS_BWD_H

#include <stddef.h>
#include <stdint.h>

/* out[N,OC] = inp[N,IC]·wᵀ + bias: dinp += dout·w, dw += doutᵀ·inp, dbias += Σ_n dout.
 * Any of dinp, dw, dbias may be NULL (not needed). */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int IC, int OC);

/* Forward that also saves what the backward needs: xhat (B,T,D) = (x − mean)·rstd and
 * rstd (B,T). out = xhat·w·(1 + scale[b]) + shift[b] (as layernorm_modulate_forward). */
void layernorm_modulate_forward_train(float *out, float *xhat, float *rstd, const float *x,
                                      const float *w, const float *shift, const float *scale,
                                      int mod_stride, int B, int T, int D);
/* Given dout: dx += ..., dw += Σ dout·(1+scale)·xhat, dshift[b] += Σ_t dout,
 * dscale[b] += Σ_t dout·xhat·w (dshift/dscale advance by mod_stride per batch element). */
void layernorm_modulate_backward(float *dx, float *dw, float *dshift, float *dscale,
                                 const float *dout, const float *xhat, const float *rstd,
                                 const float *w, const float *scale, int mod_stride, int B,
                                 int T, int D);

/* Inverse rotation of the q and k parts of dqkv in place (the transpose of rope_forward). */
void rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                   int hd);

/* Attention forward that keeps the probabilities: att (B, H, T, T). */
void attention_forward_train(float *out, float *att, const float *qkv, int B, int T, int H,
                             int hd, int causal);
/* dqkv += gradient w.r.t. the (post-rotary) q, k, v given dout (B,T,H·hd); scratch holds
 * T·T floats per thread (attention_scratch_floats(T, kernels_get_threads())). Causal
 * attention needs no flag: its P is exactly 0 above the diagonal. */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int H, int hd);

/* One head of attention_head's backward (no causal mask) on strided views: given the saved
 * probabilities P [T, T] and dO, dv += Pᵀ·dO, dS = softmax'(dO·vᵀ), dq += dS·k/√hd,
 * dk += dSᵀ·q/√hd. dS is T·T floats of scratch; the gradients have the strides of their
 * inputs (dq: ldq, dk/dv: ldkv). Called from a parallel region, its products run
 * single-threaded (gemm.h). */
void attention_head_backward(float *dq, float *dk, float *dv, float *dS, const float *dO,
                             const float *q, const float *k, const float *v, const float *P,
                             int T, int hd, int ldq, int ldkv, int ldo);

/* RMSNorm y = w·x·r, r = 1/√(mean(x²) + eps), over rows of D: dx += r·(w⊙dy) −
 * x·r³·Σ(w⊙dy⊙x)/D (r recomputed from x in double). */
void rmsnorm_backward(float *dx, const float *dout, const float *x, const float *w, size_t N,
                      int D, float eps);

/* SwiGLU a = silu(gate)·up: dgate += da·up·silu'(gate), dup += da·silu(gate). */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n);

/* dinp += dout·gelu'(inp) (tanh approximation); inp is the pre-activation. */
void gelu_tanh_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* Forward x += gate·y: dx passes through (the caller keeps it), dy += dout·gate,
 * dgate[b] += Σ_t dout·y. */
void gated_residual_backward(float *dy, float *dgate, const float *dout, const float *y,
                             const float *gate, int mod_stride, int B, int T, int D);

/* SiLU: dinp += dout·silu'(inp). */
void silu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* Weighted softmax cross-entropy of one row of logits z[V] against `target`: returns
 * −w·log softmax(z)[target] and replaces z by its gradient w·(softmax(z) − onehot(target)). */
double softmax_cross_entropy_row(float *z, int V, int target, float w);

#endif
