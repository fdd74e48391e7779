/* linear.h — linear layers whose weights stay in their checkpoint dtype (f32, bf16, f16,
 * mmapped from the safetensors shards, never copied) or are int8 with one scale per output
 * row (q8: quantised at load time with --quant q8, or mapped from a saved q8 model).
 * Activations are fp32, except that q8 products quantise each row of x to int8 the same way
 * (one scale per row) and multiply integers: out = (Σ_k xq·q) · (sx·sw) + bias, the sum
 * exact in int32, so every kernel path gives the same bits.
 *
 * Layout: PyTorch's [out, in] (row r holds the `in` weights of output r).
 */
#ifndef SMDLM_LINEAR_H
#define SMDLM_LINEAR_H

#include <stddef.h>
#include <stdint.h>

typedef enum { WT_F32 = 0, WT_BF16, WT_F16, WT_Q8 } wtype;

/* A low-rank adapter applied on the fly (PEFT LoRA / DoRA, src/models/adapter.h): the product
 * becomes f ⊙ (x·Wᵀ + scale·(x·Aᵀ)·Bᵀ) + bias, with f = 1 for LoRA and the DoRA factor
 * m / ‖W + scale·B·A‖_row otherwise. */
typedef struct {
    int r;
    float scale;
    float *a;    /* [r, in] */
    float *b;    /* [out, r] */
    float *dora; /* [out] f, NULL for LoRA */
} linear_lora;

typedef struct {
    wtype type;
    int out, in;          /* rows, columns */
    const void *data;     /* out·in elements of `type` (mmapped or owned) */
    const float *scales;  /* WT_Q8: out row scales (w ≈ scale·q); NULL otherwise */
    const int32_t *row_sums; /* WT_Q8: Σ_k q[r, k] per row (the VNNI kernel's offset) */
    void *owned;          /* memory this struct owns (quantised copies), else NULL */
    linear_lora *lora;    /* owned; NULL without an adapter */
} linear_w;

/* out[N, w->out] = inp[N, w->in] · Wᵀ + bias (bias: fp32 [w->out], may be NULL), with w's
 * adapter when it has one. */
void linear_forward(float *out, const float *inp, const linear_w *w, const float *bias, int N);
/* Plain reference twin (fp32 accumulation of the exact weight values, libm only; q8: x
 * quantised per row with nearbyintf and the integer sums in int64). */
void linear_forward_ref(float *out, const float *inp, const linear_w *w, const float *bias, int N);

/* The backward of linear_forward's base product with respect to its input:
 * dinp[N, w->in] += dout[N, w->out]·W, W read in its dtype in place (never widened as a
 * whole; the adapter, if any, is not included). */
void linear_backward_input(float *dinp, const float *dout, const linear_w *w, int N);

/* Rows of the matrix as fp32 (an embedding lookup): out[n, w->in] = W[rows[n], :]. */
void linear_rows_f32(float *out, const linear_w *w, const int32_t *rows, int n);

/* The longest q8 row: Σ_k xq·q of |xq|, |q| ≤ 127 stays within int32. */
#define LINEAR_Q8_MAX_IN 131072

/* dst = int8 copy of src with per-row scales (symmetric, scale = max|row| / 127); the adapter
 * stays with src. */
int linear_quantize_q8(linear_w *dst, const linear_w *src);
/* w = q8 weights q [out, in] with row scales, both borrowed (a saved q8 model's mapping):
 * checks them (q ≠ −128, scales finite and ≥ 0, in ≤ LINEAR_Q8_MAX_IN; errors name the row)
 * and computes the row sums (owned). `what` names the tensor in errors. */
int linear_q8_wrap(linear_w *w, const int8_t *q, const float *scales, int out, int in,
                   const char *what);
/* Frees what w owns (the adapter included). */
void linear_free(linear_w *w);

/* Name of the kernel path linear_forward takes for this type on this CPU. */
const char *linear_kernel_name(wtype t);

/* Kernel paths. The default (LINEAR_AUTO) picks per type and N; tests and benchmarks force
 * one. Tile kernels read W in place (4 rows × up to 4 rows of x in registers); sgemm widens
 * panels of W to fp32 and calls OpenBLAS. f32 weights always go to sgemm. q8 weights take
 * the int8 kernels (linear_q8.c) of generic, avx2 (also for avx512 and avx512bf16) and
 * avx512vnni, by default the best one; forced sgemm multiplies the dequantised weights by
 * fp32 x instead (the weights' share of the q8 error alone). */
typedef enum {
    LINEAR_AUTO = 0,
    LINEAR_GENERIC,    /* plain C tile kernel, any x86-64 */
    LINEAR_AVX2,       /* AVX2 + FMA + F16C: W widened to fp32 in registers (exact) */
    LINEAR_AVX512,     /* AVX-512F/BW/VL: same, 16 lanes (exact) */
    LINEAR_AVX512BF16, /* bf16 W only (others: avx512): x rounded to bf16, vdpbf16ps */
    LINEAR_SGEMM,      /* fp32 panels of W + sgemm (exact) */
    LINEAR_AVX512VNNI, /* q8 W only (others: avx512): int8 x, vpdpbusd */
} linear_path;

/* Force a path for every later call (LINEAR_AUTO restores the default); -1 with an error
 * when this processor lacks it. Not thread-safe: set it before running models. */
int linear_force_path(linear_path p);
int linear_path_available(linear_path p);
/* The path linear_forward takes for this type and N. */
linear_path linear_path_for(wtype t, int N);
const char *linear_path_name(linear_path p);
/* "auto", "generic", "avx2", "avx512", "avx512bf16", "sgemm", "avx512vnni" → path; -1 with an
 * error. */
int linear_path_parse(const char *name, linear_path *p);

#endif
