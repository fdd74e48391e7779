/* linear.c — linear layers on weights kept in their checkpoint dtype (see linear.h).
 *
 * Two kinds of kernel (NOTES.md "Low-precision weights" has the measurements):
 *   - tile kernels: 4 rows of W × up to 4 rows of x, the dot products accumulate along `in`
 *     in vector registers and are summed horizontally at the end. W is read straight from
 *     the mapping (widened to fp32 in registers, or fed to vdpbf16ps as bf16), so at small N
 *     the weights stream through once; this is the memory-bound regime.
 *   - panels + sgemm: 64 rows of W widened to fp32 into a thread-local buffer, multiplied
 *     by gemm_f32 (single-threaded inside our OpenMP region, gemm.h). Exact, and as fast
 *     as sgemm when N is large enough to amortise the widening.
 * OpenMP distributes panels of output rows; the SIMD code lives in functions with target
 * attributes, chosen by the active code path of compute/cpu.h (SMDLM_ISA lowers it; the
 * project never builds with -march=native). */
#include <float.h>
#include <limits.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "compute/cpu.h"
#include "compute/gemm.h"
#include "compute/kernels.h"
#include "compute/linear.h"
#include "compute/linear_tiles.h"
#include "formats/safetensors.h"
#include "base/util.h"

#define KC 4096       /* `in` block: a panel's block of W (64·4096 bf16 = 512 KB) stays in L2 */

/* ---- element access (memcpy: mapped data need not be aligned) ----------------------------- */

static inline float ld_bf16(const unsigned char *p, size_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return st_bf16_to_f32(h);
}

static inline float ld_f16(const unsigned char *p, size_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return st_f16_to_f32(h);
}

static inline float w_elem(const linear_w *w, size_t i) {
    const unsigned char *p = w->data;
    switch (w->type) {
    case WT_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case WT_BF16: return ld_bf16(p, i);
    case WT_F16: return ld_f16(p, i);
    case WT_Q8: return (float)((const int8_t *)p)[i];
    }
    SM_ASSERT(0);
    return 0.0f;
}

static size_t elem_size(wtype t) { return t == WT_F32 ? 4 : t == WT_Q8 ? 1 : 2; }

static void check_w(const linear_w *w) {
    SM_ASSERT(w && w->data && w->out > 0 && w->in > 0);
    SM_ASSERT(w->type >= WT_F32 && w->type <= WT_Q8);
    SM_ASSERT((w->type == WT_Q8) == (w->scales != NULL));
    SM_ASSERT((w->type == WT_Q8) == (w->row_sums != NULL));
}

/* ---- tile kernels ----------------------------------------------------------------------
 * out[n·ldo + r] (+)= Σ_{k<kc} x[n·ldx + k] · W[r·ldw + k]  for r < TILE_R, n < NB.
 * Rows of a partial tile point at row 0 and are computed but not stored. x is fp32, or bf16
 * for the vdpbf16ps kernel. The bodies are always_inline with NB constant, so each
 * (type, NB) pair compiles to fully unrolled register tiles. */

typedef void (*tile_fn)(float *out, size_t ldo, const void *x, size_t ldx, int nb, const void *w,
                        size_t ldw, int nr, int kc, int acc);

static inline void store_tile(float *out, size_t ldo, const float s[TILE_R][4], int nb, int nr,
                              int acc) {
    for (int n = 0; n < nb; n++)
        for (int r = 0; r < nr; r++) out[n * ldo + r] = acc ? out[n * ldo + r] + s[r][n] : s[r][n];
}

/* Generic C: fp32 accumulation, one chain per (row, x row); any x86-64, sanitizer friendly. */
static void tile_generic(float *out, size_t ldo, const void *xv, size_t ldx, int nb, const void *wv,
                         size_t ldw, int nr, int kc, int acc, wtype t) {
    const float *x = xv;
    linear_w w = {.type = t, .data = wv};
    float s[TILE_R][4] = {{0}};
    for (int r = 0; r < nr; r++)
        for (int n = 0; n < nb; n++) {
            float a = 0.0f;
            for (int k = 0; k < kc; k++) a += x[n * ldx + k] * w_elem(&w, r * ldw + (size_t)k);
            s[r][n] = a;
        }
    store_tile(out, ldo, s, nb, nr, acc);
}
#define GENERIC_TILE(name, T)                                                                   \
    static void name(float *o, size_t ldo, const void *x, size_t ldx, int nb, const void *w,     \
                     size_t ldw, int nr, int kc, int acc) {                                      \
        tile_generic(o, ldo, x, ldx, nb, w, ldw, nr, kc, acc, T);                                \
    }
GENERIC_TILE(tile_generic_bf16, WT_BF16)
GENERIC_TILE(tile_generic_f16, WT_F16)

/* -- AVX-512F: 16 weights widened to fp32 per load (bf16: zero-extend and shift by 16,
 *    exact; f16: vcvtph2ps, exact; q8 (panels for sgemm): sign-extend and convert, exact).
 *    16 accumulators. */
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline

T512 __m512 w16_512(const void *p, size_t i, wtype t, __mmask16 m) {
    const unsigned char *b = p;
    if (t == WT_Q8) return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, b + i)));
    __m256i h = _mm256_maskz_loadu_epi16(m, b + 2 * i);
    if (t == WT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The horizontal sums of a tile's accumulators, stored. */
T512 void store_tile512(float *out, size_t ldo, __m512 a[TILE_R][4], int NB, int nr, int acc) {
    float s[TILE_R][4];
    for (int r = 0; r < TILE_R; r++)
        for (int n = 0; n < NB; n++) s[r][n] = _mm512_reduce_add_ps(a[r][n]);
    store_tile(out, ldo, s, NB, nr, acc);
}

T512 void tile512(float *out, size_t ldo, const float *x, size_t ldx, const void *w, size_t ldw,
                  int nr, int kc, int acc, wtype t, const int NB) {
    size_t wr[TILE_R];
    for (int r = 0; r < TILE_R; r++) wr[r] = r < nr ? r * ldw : 0;
    __m512 a[TILE_R][4];
    for (int r = 0; r < TILE_R; r++)
        for (int n = 0; n < NB; n++) a[r][n] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k += 16) {
        __mmask16 m = kc - k >= 16 ? 0xffff : (__mmask16)((1u << (kc - k)) - 1);
        __m512 xv[4], wv[TILE_R];
        for (int n = 0; n < NB; n++) xv[n] = _mm512_maskz_loadu_ps(m, x + n * ldx + k);
        for (int r = 0; r < TILE_R; r++) wv[r] = w16_512(w, wr[r] + k, t, m);
        for (int r = 0; r < TILE_R; r++)
            for (int n = 0; n < NB; n++) a[r][n] = _mm512_fmadd_ps(wv[r], xv[n], a[r][n]);
    }
    store_tile512(out, ldo, a, NB, nr, acc);
}

#define TILE512(name, T)                                                                        \
    __attribute__((target("avx512f,avx512bw,avx512vl"))) static void name(                       \
        float *o, size_t ldo, const void *x, size_t ldx, int nb, const void *w, size_t ldw,      \
        int nr, int kc, int acc) {                                                               \
        NB_SWITCH(tile512, o, ldo, x, ldx, w, ldw, nr, kc, acc, T);                              \
    }
TILE512(tile512_f16, WT_F16)

/* -- AVX-512F, bf16 weights: one 64-byte load holds 32 bf16 = 16 lanes of (w[2i+1], w[2i]);
 *    lane << 16 is w[2i] as fp32 and lane & 0xffff0000 is w[2i+1] (both exact), so two FMAs
 *    take 32 weights for one load and two integer ops (half the work of zero-extending 16 at
 *    a time). x is split to match once per call: every 32-block of a row is stored as its 16
 *    even then its 16 odd elements, rows padded with zeros to a multiple of 32. */
T512 void tile512s(float *out, size_t ldo, const float *x, size_t ldx, const uint16_t *w,
                   size_t ldw, int nr, int kc, int acc, const int NB) {
    size_t wr[TILE_R];
    for (int r = 0; r < TILE_R; r++) wr[r] = r < nr ? r * ldw : 0;
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 a[TILE_R][4];
    for (int r = 0; r < TILE_R; r++)
        for (int n = 0; n < NB; n++) a[r][n] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k += 32) {
        __mmask32 m = kc - k >= 32 ? 0xffffffffu : (__mmask32)((1u << (kc - k)) - 1);
        __m512 xe[4], xo[4];
        for (int n = 0; n < NB; n++) {
            xe[n] = _mm512_loadu_ps(x + n * ldx + k);
            xo[n] = _mm512_loadu_ps(x + n * ldx + k + 16);
        }
        for (int r = 0; r < TILE_R; r++) {
            __m512i v = _mm512_maskz_loadu_epi16(m, w + wr[r] + k);
            __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
            for (int n = 0; n < NB; n++) {
                a[r][n] = _mm512_fmadd_ps(we, xe[n], a[r][n]);
                a[r][n] = _mm512_fmadd_ps(wo, xo[n], a[r][n]);
            }
        }
    }
    store_tile512(out, ldo, a, NB, nr, acc);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void tile512s_bf16(
    float *o, size_t ldo, const void *x, size_t ldx, int nb, const void *w, size_t ldw, int nr,
    int kc, int acc) {
    NB_SWITCH(tile512s, o, ldo, x, ldx, w, ldw, nr, kc, acc);
}

/* One row of x in the even/odd layout of tile512s (dst: IC rounded up to 32). */
static void split_row(float *dst, const float *src, int IC) {
    for (int b = 0; b < IC; b += 32)
        for (int i = 0; i < 32; i++) {
            int k = b + i;
            dst[b + (i & 1) * 16 + i / 2] = k < IC ? src[k] : 0.0f;
        }
}

/* -- AVX2 + FMA + F16C: 8 lanes, 4 rows × up to 2 x rows (16 ymm registers); the tail of
 *    `in` (< 8) is finished in scalar code. */
#define T256 __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

T256 __m256 w8_256(const void *p, size_t i, wtype t) {
    const unsigned char *b = p;
    if (t == WT_Q8) return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const void *)(b + i))));
    __m128i h = _mm_loadu_si128((const void *)(b + 2 * i));
    if (t == WT_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

T256 float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

T256 void tile256(float *out, size_t ldo, const float *x, size_t ldx, const void *w, size_t ldw,
                  int nr, int kc, int acc, wtype t, const int NB) {
    size_t wr[TILE_R];
    for (int r = 0; r < TILE_R; r++) wr[r] = r < nr ? r * ldw : 0;
    __m256 a[TILE_R][2];
    for (int r = 0; r < TILE_R; r++)
        for (int n = 0; n < NB; n++) a[r][n] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 xv[2], wv[TILE_R];
        for (int n = 0; n < NB; n++) xv[n] = _mm256_loadu_ps(x + n * ldx + k);
        for (int r = 0; r < TILE_R; r++) wv[r] = w8_256(w, wr[r] + k, t);
        for (int r = 0; r < TILE_R; r++)
            for (int n = 0; n < NB; n++) a[r][n] = _mm256_fmadd_ps(wv[r], xv[n], a[r][n]);
    }
    float s[TILE_R][4];
    linear_w wt = {.type = t, .data = w};
    for (int r = 0; r < TILE_R; r++)
        for (int n = 0; n < NB; n++) {
            float v = hsum256(a[r][n]);
            for (int j = k; j < kc; j++) v += x[n * ldx + j] * w_elem(&wt, wr[r] + j);
            s[r][n] = v;
        }
    store_tile(out, ldo, s, NB, nr, acc);
}

#define TILE256(name, T)                                                                        \
    __attribute__((target("avx2,fma,f16c"))) static void name(                                   \
        float *o, size_t ldo, const void *x, size_t ldx, int nb, const void *w, size_t ldw,      \
        int nr, int kc, int acc) {                                                               \
        if (nb == 1) tile256(o, ldo, x, ldx, w, ldw, nr, kc, acc, T, 1);                         \
        else tile256(o, ldo, x, ldx, w, ldw, nr, kc, acc, T, 2);                                 \
    }
TILE256(tile256_bf16, WT_BF16)
TILE256(tile256_f16, WT_F16)

/* -- AVX-512 BF16: x rounded to bf16 once per call (RNE), then vdpbf16ps multiplies 32 bf16
 *    pairs per instruction into 16 fp32 lanes. Each product of two bf16 values is exact in
 *    fp32; the only error beyond fp32 accumulation is the rounding of x (8 significant bits:
 *    ≤ 2^-8 relative), so |err| ≤ 2^-8·Σ|x_k w_k| + fp32 accumulation. */
#define TBF __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"), always_inline)) static inline

TBF void tilebf(float *out, size_t ldo, const uint16_t *x, size_t ldx, const uint16_t *w,
                size_t ldw, int nr, int kc, int acc, const int NB) {
    size_t wr[TILE_R];
    for (int r = 0; r < TILE_R; r++) wr[r] = r < nr ? r * ldw : 0;
    __m512 a[TILE_R][4];
    for (int r = 0; r < TILE_R; r++)
        for (int n = 0; n < NB; n++) a[r][n] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k += 32) {
        __mmask32 m = kc - k >= 32 ? 0xffffffffu : (__mmask32)((1u << (kc - k)) - 1);
        __m512i xv[4], wv[TILE_R];
        for (int n = 0; n < NB; n++) xv[n] = _mm512_maskz_loadu_epi16(m, x + n * ldx + k);
        for (int r = 0; r < TILE_R; r++) wv[r] = _mm512_maskz_loadu_epi16(m, w + wr[r] + k);
        for (int r = 0; r < TILE_R; r++)
            for (int n = 0; n < NB; n++)
                a[r][n] = _mm512_dpbf16_ps(a[r][n], (__m512bh)wv[r], (__m512bh)xv[n]);
    }
    store_tile512(out, ldo, a, NB, nr, acc);
}

__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) static void tilebf_bf16(
    float *o, size_t ldo, const void *x, size_t ldx, int nb, const void *w, size_t ldw, int nr,
    int kc, int acc) {
    NB_SWITCH(tilebf, o, ldo, x, ldx, w, ldw, nr, kc, acc);
}

/* x rows → bf16, round to nearest even (vcvtne2ps2bf16; NaN stays NaN). */
__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) static void
to_bf16_avx512(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512(dst + i, (__m512i)v);
    }
    for (; i < n; i++) dst[i] = st_f32_to_bf16(src[i]);
}

/* ---- widening rows into fp32 panels (for sgemm) ----------------------------------------- */

typedef void (*widen_fn)(float *dst, const void *src, size_t n);

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void widen512(float *dst,
                                                                         const void *src,
                                                                         size_t n, wtype t) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, w16_512(src, i, t, m));
    }
}

__attribute__((target("avx2,fma,f16c"))) static void widen256(float *dst, const void *src,
                                                              size_t n, wtype t) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, w8_256(src, i, t));
    linear_w w = {.type = t, .data = src};
    for (; i < n; i++) dst[i] = w_elem(&w, i);
}

static void widen_generic(float *dst, const void *src, size_t n, wtype t) {
    linear_w w = {.type = t, .data = src};
    for (size_t i = 0; i < n; i++) dst[i] = w_elem(&w, i);
}

/* ---- paths and dispatch --------------------------------------------------------------- */

static const sm_enum_entry k_paths[] = {
    {"auto", LINEAR_AUTO},     {"generic", LINEAR_GENERIC},        {"avx2", LINEAR_AVX2},
    {"avx512", LINEAR_AVX512}, {"avx512bf16", LINEAR_AVX512BF16}, {"sgemm", LINEAR_SGEMM},
    {"avx512vnni", LINEAR_AVX512VNNI}};

const char *linear_path_name(linear_path p) { return SM_ENUM_NAME(k_paths, p); }

/* Whether the active code path (cpu_isa_active: smdlm's detection, lowered by SMDLM_ISA)
 * runs p. F16C comes with every AVX2 processor; the bf16 and int8 dot products need their own
 * bits. */
static int cpu_has(linear_path p) {
    cpu_isa isa = cpu_isa_active();
    switch (p) {
    case LINEAR_AUTO:
    case LINEAR_GENERIC:
    case LINEAR_SGEMM: return 1;
    case LINEAR_AVX2: return isa >= CPU_ISA_AVX2 && cpu_features_get()->f16c;
    case LINEAR_AVX512: return isa >= CPU_ISA_AVX512;
    case LINEAR_AVX512BF16: return isa >= CPU_ISA_AVX512 && cpu_features_get()->avx512_bf16;
    case LINEAR_AVX512VNNI: return isa >= CPU_ISA_AVX512 && cpu_features_get()->avx512_vnni;
    }
    return 0;
}

int linear_path_available(linear_path p) { return cpu_has(p); }

static linear_path g_forced = LINEAR_AUTO;

int linear_force_path(linear_path p) {
    if (p < LINEAR_AUTO || p > LINEAR_AVX512VNNI) return SM_ERR("unknown linear kernel path %d", (int)p);
    if (!cpu_has(p)) return SM_ERR("this processor cannot run the %s linear kernels", linear_path_name(p));
    g_forced = p;
    return 0;
}

int linear_path_parse(const char *name, linear_path *p) {
    int v;
    if (!sm_enum_find(k_paths, SM_ENUM_COUNT(k_paths), name, &v)) {
        *p = (linear_path)v;
        return 0;
    }
    return SM_ERR("unknown linear kernel path '%s' (auto, generic, avx2, avx512, avx512bf16, sgemm, avx512vnni)", name);
}

/* Default per regime, from bench/bench_linear.sh (NOTES.md): at N ≤ LINEAR_SMALL_N the
 * weights stream once through the tile kernels (memory bound); above it the widened panels
 * run at sgemm speed and stay exact. */
#define LINEAR_SMALL_N 8

/* q8: the int8 kernels (generic, avx2, avx512vnni) whatever N; the avx512 level without VNNI
 * runs the avx2 one. */
static linear_path q8_path(linear_path p) {
    if (p == LINEAR_AUTO)
        return cpu_has(LINEAR_AVX512VNNI) ? LINEAR_AVX512VNNI
               : cpu_has(LINEAR_AVX2)     ? LINEAR_AVX2
                                          : LINEAR_GENERIC;
    return p == LINEAR_AVX512 || p == LINEAR_AVX512BF16 ? LINEAR_AVX2 : p;
}

linear_path linear_path_for(wtype t, int N) {
    if (t == WT_F32) return LINEAR_SGEMM;
    linear_path p = g_forced;
    if (t == WT_Q8) return q8_path(p);
    if ((p == LINEAR_AVX512BF16 && t != WT_BF16) || p == LINEAR_AVX512VNNI)
        p = LINEAR_AVX512; /* bf16 weights only; q8 only */
    if (p != LINEAR_AUTO) return p;
    if (N > LINEAR_SMALL_N) return LINEAR_SGEMM;
    if (cpu_has(LINEAR_AVX512)) return LINEAR_AVX512;
    return cpu_has(LINEAR_AVX2) ? LINEAR_AVX2 : LINEAR_GENERIC;
}

/* The fp32 tile of a bf16 or f16 path (q8 has its own, linear_q8.c). */
static tile_fn tile_for(linear_path p, wtype t, int *nbmax) {
    *nbmax = 4;
    switch (p) {
    case LINEAR_AVX512BF16: return tilebf_bf16;
    case LINEAR_AVX512: return t == WT_BF16 ? tile512s_bf16 : tile512_f16;
    case LINEAR_AVX2:
        *nbmax = 2;
        return t == WT_BF16 ? tile256_bf16 : tile256_f16;
    default: return t == WT_BF16 ? tile_generic_bf16 : tile_generic_f16;
    }
}

static void widen(float *dst, const void *src, size_t n, wtype t) {
    if (t == WT_F32) memcpy(dst, src, sizeof(float) * n);
    else if (cpu_has(LINEAR_AVX512)) widen512(dst, src, n, t);
    else if (cpu_has(LINEAR_AVX2)) widen256(dst, src, n, t);
    else widen_generic(dst, src, n, t);
}

/* ---- forward ------------------------------------------------------------------------- */

/* q8 row scales and bias on out[:, r0 : r0 + nr]. */
static void epilogue(float *out, const linear_w *w, const float *bias, int N, int r0, int nr) {
    if (w->type != WT_Q8 && !bias) return;
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * w->out + r0;
        for (int r = 0; r < nr; r++) {
            float v = o[r];
            if (w->type == WT_Q8) v *= w->scales[r0 + r];
            o[r] = bias ? v + bias[r0 + r] : v;
        }
    }
}

static void forward_sgemm(float *out, const float *inp, const linear_w *w, const float *bias, int N) {
    const int IC = w->in, OC = w->out, npanels = (OC + PANEL_ROWS - 1) / PANEL_ROWS;
    const size_t es = elem_size(w->type);
#pragma omp parallel
    {
        float *panel = sm_aligned_alloc(sizeof(float) * PANEL_ROWS * (size_t)IC);
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < npanels; p++) {
            int r0 = p * PANEL_ROWS, nr = OC - r0 < PANEL_ROWS ? OC - r0 : PANEL_ROWS;
            widen(panel, (const unsigned char *)w->data + es * r0 * IC, (size_t)nr * IC, w->type);
            gemm_f32(GEMM_NOTRANS, GEMM_TRANS, N, nr, IC, 1.0f, inp, IC, panel, IC, 0.0f, out + r0,
                     OC);
            epilogue(out, w, bias, N, r0, nr);
        }
        free(panel);
    }
}

int linear_panel_rows(int OC) {
    int prow = PANEL_ROWS, nth = omp_get_max_threads();
    while (prow > TILE_R && (OC + prow - 1) / prow < 4 * nth) prow /= 2;
    return prow;
}

static void forward_tiles(float *out, const float *inp, const linear_w *w, const float *bias, int N,
                          linear_path path) {
    const int IC = w->in, OC = w->out;
    int nbmax;
    tile_fn tile = tile_for(path, w->type, &nbmax);
    const void *x = inp;
    void *xbuf = NULL;
    size_t ldx = (size_t)IC, xs = 4; /* row stride and element size of x as the tiles read it */
    if (path == LINEAR_AVX512BF16) {
        uint16_t *xb = xbuf = sm_aligned_alloc(sizeof(uint16_t) * (size_t)N * IC);
#pragma omp parallel for schedule(static) if ((size_t)N * IC > 65536)
        for (int n = 0; n < N; n++) to_bf16_avx512(xb + (size_t)n * IC, inp + (size_t)n * IC, IC);
        x = xb, xs = 2;
    } else if (path == LINEAR_AVX512 && w->type == WT_BF16) {
        ldx = ((size_t)IC + 31) & ~(size_t)31;
        float *xp = xbuf = sm_aligned_alloc(sizeof(float) * (size_t)N * ldx);
#pragma omp parallel for schedule(static) if ((size_t)N * IC > 65536)
        for (int n = 0; n < N; n++) split_row(xp + (size_t)n * ldx, inp + (size_t)n * IC, IC);
        x = xp;
    }
    const size_t es = path == LINEAR_AVX512BF16 ? 2 : elem_size(w->type);
    const int prow = linear_panel_rows(OC), npanels = (OC + prow - 1) / prow;
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < npanels; p++) {
        int r0 = p * prow, pr = OC - r0 < prow ? OC - r0 : prow;
        for (int k0 = 0; k0 < IC; k0 += KC) {
            int kc = IC - k0 < KC ? IC - k0 : KC;
            for (int n0 = 0; n0 < N; n0 += nbmax) {
                int nb = N - n0 < nbmax ? N - n0 : nbmax;
                const unsigned char *xp = (const unsigned char *)x + xs * ((size_t)n0 * ldx + k0);
                for (int r = 0; r < pr; r += TILE_R) {
                    const unsigned char *wp =
                        (const unsigned char *)w->data + es * ((size_t)(r0 + r) * IC + k0);
                    tile(out + (size_t)n0 * OC + r0 + r, OC, xp, ldx, nb, wp, IC,
                         pr - r < TILE_R ? pr - r : TILE_R, kc, k0 > 0);
                }
            }
        }
        epilogue(out, w, bias, N, r0, pr);
    }
    free(xbuf);
}

/* out += scale·(inp·Aᵀ)·Bᵀ, then out ⊙= f (DoRA), then the bias. */
static void lora_forward(float *out, const float *inp, const linear_w *w, const float *bias,
                         int N) {
    const linear_lora *l = w->lora;
    float *t = sm_malloc(sizeof(float) * (size_t)N * l->r);
    gemm_f32(GEMM_NOTRANS, GEMM_TRANS, N, l->r, w->in, 1.0f, inp, w->in, l->a, w->in, 0.0f, t,
             l->r);
    gemm_f32(GEMM_NOTRANS, GEMM_TRANS, N, w->out, l->r, l->scale, t, l->r, l->b, l->r, 1.0f, out,
             w->out);
    free(t);
    for (int n = 0; n < N; n++) {
        float *row = out + (size_t)n * w->out;
        if (l->dora)
            for (int o = 0; o < w->out; o++) row[o] *= l->dora[o];
        if (bias)
            for (int o = 0; o < w->out; o++) row[o] += bias[o];
    }
}

void linear_forward(float *out, const float *inp, const linear_w *w, const float *bias, int N) {
    check_w(w);
    SM_ASSERT(N >= 0);
    if (N == 0) return;
    if (w->lora) {
        linear_w base = *w;
        base.lora = NULL;
        linear_forward(out, inp, &base, NULL, N);
        lora_forward(out, inp, w, bias, N);
        return;
    }
    if (w->type == WT_F32) {
        matmul_forward(out, inp, w->data, bias, N, w->in, w->out);
        return;
    }
    linear_path p = linear_path_for(w->type, N);
    if (p == LINEAR_SGEMM) forward_sgemm(out, inp, w, bias, N);
    else if (w->type == WT_Q8) linear_q8_forward(out, inp, w, bias, N, p);
    else forward_tiles(out, inp, w, bias, N, p);
}

/* dinp += dout·W by blocks of BWD_COLS columns of W: each task widens its columns of every
 * row (all `out` of them) into a thread-local fp32 panel and adds dout·panel into its own
 * columns of dinp, so no two threads write the same element and the result does not depend on
 * the thread count. */
#define BWD_COLS 64

void linear_backward_input(float *dinp, const float *dout, const linear_w *w, int N) {
    check_w(w);
    SM_ASSERT(N >= 0);
    const int IC = w->in, OC = w->out;
    if (N == 0) return;
    if (w->type == WT_F32) {
        gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, N, IC, OC, 1.0f, dout, OC, w->data, IC, 1.0f, dinp,
                 IC);
        return;
    }
    const int nblocks = (IC + BWD_COLS - 1) / BWD_COLS;
    const size_t es = elem_size(w->type);
#pragma omp parallel
    {
        float *panel = sm_aligned_alloc(sizeof(float) * BWD_COLS * (size_t)OC);
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < nblocks; c++) {
            const int c0 = c * BWD_COLS, nc = IC - c0 < BWD_COLS ? IC - c0 : BWD_COLS;
            for (int o = 0; o < OC; o++) {
                float *dst = panel + (size_t)o * nc;
                widen(dst, (const unsigned char *)w->data + es * ((size_t)o * IC + c0), (size_t)nc,
                      w->type);
                if (w->type == WT_Q8)
                    for (int j = 0; j < nc; j++) dst[j] *= w->scales[o];
            }
            gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, N, nc, OC, 1.0f, dout, OC, panel, nc, 1.0f,
                     dinp + c0, IC);
        }
        free(panel);
    }
}

/* q8 reference: x quantised per row like a weight row (nearbyintf, round half to even),
 * integer dot products, (Σ xq·q) · (sx·sw) + bias. */
static void forward_q8_ref(float *out, const float *inp, const linear_w *w, const float *bias,
                           int N) {
    const int IC = w->in, OC = w->out;
    const int8_t *q = w->data;
    int8_t *xq = sm_malloc((size_t)IC);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * IC;
        float amax = 0.0f;
        int finite = 1;
        for (int k = 0; k < IC; k++) {
            finite &= isfinite(x[k]) != 0;
            amax = fabsf(x[k]) > amax ? fabsf(x[k]) : amax;
        }
        float sx = finite ? amax / 127.0f : NAN, inv = finite && amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int k = 0; k < IC; k++) xq[k] = finite ? (int8_t)nearbyintf(x[k] * inv) : 0;
        for (int o = 0; o < OC; o++) {
            int64_t dot = 0;
            for (int k = 0; k < IC; k++) dot += (int64_t)xq[k] * q[(size_t)o * IC + k];
            float v = (float)dot * (sx * w->scales[o]);
            out[(size_t)n * OC + o] = bias ? v + bias[o] : v;
        }
    }
    free(xq);
}

/* Reference: fp32 accumulation in index order (q8: forward_q8_ref). */
void linear_forward_ref(float *out, const float *inp, const linear_w *w, const float *bias, int N) {
    check_w(w);
    if (w->type == WT_Q8) {
        forward_q8_ref(out, inp, w, bias, N);
        return;
    }
    const int IC = w->in, OC = w->out;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float acc = 0.0f;
            for (int k = 0; k < IC; k++)
                acc += inp[(size_t)n * IC + k] * w_elem(w, (size_t)o * IC + k);
            out[(size_t)n * OC + o] = bias ? acc + bias[o] : acc;
        }
}

/* ---- rows, quantisation -------------------------------------------------------------- */

void linear_rows_f32(float *out, const linear_w *w, const int32_t *rows, int n) {
    check_w(w);
    const size_t es = elem_size(w->type);
    for (int i = 0; i < n; i++) {
        SM_ASSERT(rows[i] >= 0 && rows[i] < w->out);
        float *dst = out + (size_t)i * w->in;
        widen(dst, (const unsigned char *)w->data + es * (size_t)rows[i] * w->in, (size_t)w->in, w->type);
        if (w->type == WT_Q8)
            for (int k = 0; k < w->in; k++) dst[k] *= w->scales[rows[i]];
    }
}

static void set_q8(linear_w *w, int out, int in, const int8_t *q, const float *scales,
                   const int32_t *sums, void *owned) {
    w->type = WT_Q8;
    w->out = out;
    w->in = in;
    w->data = q;
    w->scales = scales;
    w->row_sums = sums;
    w->owned = owned;
}

int linear_quantize_q8(linear_w *dst, const linear_w *src) {
    check_w(src);
    memset(dst, 0, sizeof *dst);
    if (src->type == WT_Q8) return SM_ERR("weights are already q8");
    const int IC = src->in, OC = src->out;
    if (IC > LINEAR_Q8_MAX_IN)
        return SM_ERR("a [%d, %d] weight has rows of more than %d inputs, too long for q8", OC,
                      IC, LINEAR_Q8_MAX_IN);
    const size_t es = elem_size(src->type);
    size_t nq = (size_t)OC * (size_t)IC, qbytes = (nq + 63) & ~(size_t)63;
    unsigned char *buf = sm_aligned_alloc(qbytes + (sizeof(float) + sizeof(int32_t)) * (size_t)OC);
    int8_t *q = (int8_t *)buf;
    float *scales = (float *)(buf + qbytes);
    int32_t *sums = (int32_t *)(scales + OC);
    int bad_row = -1;
#pragma omp parallel
    {
        float *row = sm_malloc(sizeof(float) * (size_t)IC);
#pragma omp for schedule(static)
        for (int r = 0; r < OC; r++) {
            widen(row, (const unsigned char *)src->data + es * (size_t)r * IC, (size_t)IC, src->type);
            float amax = 0.0f;
            int finite = 1;
            for (int k = 0; k < IC; k++) {
                float a = fabsf(row[k]);
                finite &= a <= FLT_MAX; /* false for inf and NaN */
                amax = a > amax ? a : amax;
            }
            if (!finite) {
#pragma omp critical(linear_q8_bad)
                if (bad_row < 0 || r < bad_row) bad_row = r;
                amax = 0.0f;
            }
            /* symmetric: w ≈ scale · q, q ∈ [−127, 127]; a zero row has scale 0, q = 0 */
            float scale = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            scales[r] = scale;
            int8_t *qr = q + (size_t)r * IC;
            int32_t sum = 0;
            for (int k = 0; k < IC; k++) {
                float v = nearbyintf(row[k] * inv);
                qr[k] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
                sum += qr[k];
            }
            sums[r] = sum;
        }
        free(row);
    }
    if (bad_row >= 0) {
        free(buf);
        return SM_ERR("row %d of a [%d, %d] weight has a non-finite value", bad_row, OC, IC);
    }
    set_q8(dst, OC, IC, q, scales, sums, buf);
    return 0;
}

int linear_q8_wrap(linear_w *w, const int8_t *q, const float *scales, int out, int in,
                   const char *what) {
    memset(w, 0, sizeof *w);
    if (in > LINEAR_Q8_MAX_IN)
        return SM_ERR("%s: rows of %d inputs are too long for q8 (at most %d)", what, in,
                      LINEAR_Q8_MAX_IN);
    int32_t *sums = sm_malloc(sizeof(int32_t) * (size_t)out);
    int bad_q = INT_MAX, bad_scale = INT_MAX; /* the first bad rows */
#pragma omp parallel for schedule(static) reduction(min : bad_q, bad_scale)
    for (int r = 0; r < out; r++) {
        const int8_t *qr = q + (size_t)r * in;
        int32_t sum = 0, low = 0;
        for (int k = 0; k < in; k++) sum += qr[k], low |= qr[k] == -128;
        sums[r] = sum;
        if (low) bad_q = r < bad_q ? r : bad_q;
        if (!(scales[r] >= 0.0f && scales[r] <= FLT_MAX)) bad_scale = r < bad_scale ? r : bad_scale;
    }
    if (bad_q < INT_MAX || bad_scale < INT_MAX) {
        free(sums);
        return bad_q < INT_MAX ? SM_ERR("%s: row %d holds -128 (q8 values are -127..127)", what, bad_q)
                          : SM_ERR("%s: row %d has the scale %g (q8 scales are finite and >= 0)",
                                   what, bad_scale, (double)scales[bad_scale]);
    }
    set_q8(w, out, in, q, scales, sums, sums);
    return 0;
}

void linear_free(linear_w *w) {
    if (!w) return;
    free(w->owned);
    if (w->lora) free(w->lora->a), free(w->lora->b), free(w->lora->dora), free(w->lora);
    memset(w, 0, sizeof *w);
}

const char *linear_kernel_name(wtype t) {
    static char names[4][96];
    if (t < WT_F32 || t > WT_Q8) return "unknown";
    if (t == WT_F32) return "sgemm";
    linear_path small = linear_path_for(t, 1), large = linear_path_for(t, LINEAR_SMALL_N + 1);
    snprintf(names[t], sizeof names[t], "%s (N <= %d), %s (N > %d)", linear_path_name(small),
             LINEAR_SMALL_N, linear_path_name(large), LINEAR_SMALL_N);
    return names[t];
}
