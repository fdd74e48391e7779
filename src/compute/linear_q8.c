/* linear_q8.c — q8 products with int8 activations (linear.h; NOTES.md "Low-precision
 * weights"). Each row of x is quantised like a weight row (rows.h's quantize_q8_row: one
 * scale, q ∈ [−127, 127]); the dot products Σ_k xq·q are exact in int32 and
 * out = (float)Σ · (sx·sw) + bias. Every path computes the same integers, so every path gives
 * the bits of linear_forward_ref.
 *
 * Tiles: 4 rows of W × up to 4 rows of x, with the vector lanes along `in`: W is read in
 * place, row-major as stored (no packed copy), and each accumulator is summed horizontally at
 * the end. x is quantised once per call into rows padded with zeros to a multiple of 64.
 *   - avx512vnni: vpdpbusd multiplies unsigned by signed bytes and adds groups of four into
 *     int32 lanes. x goes in as xq + 128 (xor 0x80) and 128·Σ_k q[r, k] (w->row_sums) is
 *     subtracted afterwards, in wrapping 32-bit arithmetic (the true sum fits in int32).
 *   - avx2: vpmaddubsw on |xq| and q·sign(xq) (a pair is at most 2·127² < 2¹⁵: no
 *     saturation), vpmaddwd by 1 into int32 lanes; the tail of `in` (< 32) in scalar code.
 *   - generic: int32 loops.
 * OpenMP distributes panels of W rows (linear_panel_rows), as for the fp32 tiles. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "base/util.h"
#include "compute/cpu.h"
#include "compute/linear_tiles.h"
#include "compute/rows.h"

#define XPAD 64 /* x rows are padded to a multiple of 64 bytes (one zmm) */

/* s[r][n] = Σ_{k<kc} xq[n·ldx + k] · q[r·ldw + k] for r < TILE_R, n < nb (rows ≥ nr may hold
 * anything), before the avx512vnni offset correction. */
typedef void (*q8_tile_fn)(int32_t s[TILE_R][4], const int8_t *x, size_t ldx, int nb,
                           const int8_t *w, size_t ldw, int nr, int kc);

static void tile_generic(int32_t s[TILE_R][4], const int8_t *x, size_t ldx, int nb,
                         const int8_t *w, size_t ldw, int nr, int kc) {
    for (int r = 0; r < nr; r++)
        for (int n = 0; n < nb; n++) {
            int32_t a = 0;
            for (int k = 0; k < kc; k++) a += x[n * ldx + k] * w[r * ldw + k];
            s[r][n] = a;
        }
}

/* Rows past nr read row 0 (computed, never stored). */
static inline void tile_rows(size_t wr[TILE_R], size_t ldw, int nr) {
    for (int r = 0; r < TILE_R; r++) wr[r] = r < nr ? r * ldw : 0;
}

/* ---- AVX2 ---- */
#define TQ256 __attribute__((target("avx2"), always_inline)) static inline

TQ256 int32_t hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}

TQ256 void tile256(int32_t s[TILE_R][4], const int8_t *x, size_t ldx, const int8_t *w,
                   size_t ldw, int nr, int kc, const int NB) {
    size_t wr[TILE_R];
    tile_rows(wr, ldw, nr);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a[TILE_R][2];
    #pragma GCC unroll 4
    for (int r = 0; r < TILE_R; r++)
        #pragma GCC unroll 4
        for (int n = 0; n < NB; n++) a[r][n] = _mm256_setzero_si256();
    int k = 0;
    for (; k + 32 <= kc; k += 32) {
        __m256i xv[2], ax[2];
        #pragma GCC unroll 4
        for (int n = 0; n < NB; n++) {
            xv[n] = _mm256_loadu_si256((const void *)(x + n * ldx + k));
            ax[n] = _mm256_abs_epi8(xv[n]);
        }
        #pragma GCC unroll 4
        for (int r = 0; r < TILE_R; r++) {
            __m256i wv = _mm256_loadu_si256((const void *)(w + wr[r] + k));
            #pragma GCC unroll 4
            for (int n = 0; n < NB; n++) {
                __m256i p = _mm256_maddubs_epi16(ax[n], _mm256_sign_epi8(wv, xv[n]));
                a[r][n] = _mm256_add_epi32(a[r][n], _mm256_madd_epi16(p, ones));
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < TILE_R; r++)
        #pragma GCC unroll 4
        for (int n = 0; n < NB; n++) {
            int32_t t = hsum256_epi32(a[r][n]);
            for (int j = k; j < kc; j++) t += x[n * ldx + j] * w[wr[r] + j];
            s[r][n] = t;
        }
}

__attribute__((target("avx2"))) static void tile_avx2(int32_t s[TILE_R][4], const int8_t *x,
                                                      size_t ldx, int nb, const int8_t *w,
                                                      size_t ldw, int nr, int kc) {
    if (nb == 1) tile256(s, x, ldx, w, ldw, nr, kc, 1);
    else tile256(s, x, ldx, w, ldw, nr, kc, 2); /* nb ≤ 2: 8 accumulators of 16 registers */
}

/* ---- AVX-512 VNNI ---- */
#define TVNNI                                                                                    \
    __attribute__((target("avx512vnni,avx512f,avx512bw,avx512vl"), always_inline)) static inline

TVNNI void vnni_step(__m512i a[TILE_R][4], const int8_t *x, size_t ldx, const int8_t *w,
                     const size_t wr[TILE_R], int k, __mmask64 m, const int NB) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i xv[4], wv[TILE_R];
    #pragma GCC unroll 4
    for (int n = 0; n < NB; n++)
        xv[n] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(x + n * ldx + k)), flip);
    #pragma GCC unroll 4
    for (int r = 0; r < TILE_R; r++) wv[r] = _mm512_maskz_loadu_epi8(m, w + wr[r] + k);
    #pragma GCC unroll 4
    for (int r = 0; r < TILE_R; r++)
        #pragma GCC unroll 4
        for (int n = 0; n < NB; n++) a[r][n] = _mm512_dpbusd_epi32(a[r][n], xv[n], wv[r]);
}

TVNNI void tile512(int32_t s[TILE_R][4], const int8_t *x, size_t ldx, const int8_t *w,
                   size_t ldw, int nr, int kc, const int NB) {
    size_t wr[TILE_R];
    tile_rows(wr, ldw, nr);
    __m512i a[TILE_R][4];
    #pragma GCC unroll 4
    for (int r = 0; r < TILE_R; r++)
        #pragma GCC unroll 4
        for (int n = 0; n < NB; n++) a[r][n] = _mm512_setzero_si512();
    int k = 0;
    for (; k + 64 <= kc; k += 64) vnni_step(a, x, ldx, w, wr, k, ~(__mmask64)0, NB);
    if (k < kc) vnni_step(a, x, ldx, w, wr, k, ((__mmask64)1 << (kc - k)) - 1, NB);
    #pragma GCC unroll 4
    for (int r = 0; r < TILE_R; r++)
        #pragma GCC unroll 4
        for (int n = 0; n < NB; n++) s[r][n] = _mm512_reduce_add_epi32(a[r][n]);
}

__attribute__((target("avx512vnni,avx512f,avx512bw,avx512vl"))) static void tile_vnni(
    int32_t s[TILE_R][4], const int8_t *x, size_t ldx, int nb, const int8_t *w, size_t ldw,
    int nr, int kc) {
    NB_SWITCH(tile512, s, x, ldx, w, ldw, nr, kc);
}

/* ---- driver ---- */

/* out[n·ldo + r] = Σ · (sx[n]·sw[r]) (+ bias[r]); sums != NULL: Σ = s − 128·sums[r] mod 2³². */
static void store_q8(float *out, size_t ldo, const int32_t s[TILE_R][4], int nb, int nr,
                     const float *sx, const float *sw, const int32_t *sums, const float *bias) {
    for (int n = 0; n < nb; n++)
        for (int r = 0; r < nr; r++) {
            int32_t d = sums ? (int32_t)((uint32_t)s[r][n] - ((uint32_t)sums[r] << 7)) : s[r][n];
            float v = (float)d * (sx[n] * sw[r]);
            out[n * ldo + r] = bias ? v + bias[r] : v;
        }
}

void linear_q8_forward(float *out, const float *inp, const linear_w *w, const float *bias, int N,
                       linear_path path) {
    const int IC = w->in, OC = w->out;
    const size_t ldx = ((size_t)IC + XPAD - 1) / XPAD * XPAD;
    q8_tile_fn tile = path == LINEAR_AVX512VNNI ? tile_vnni
                      : path == LINEAR_AVX2     ? tile_avx2
                                                : tile_generic;
    const int nbmax = path == LINEAR_AVX2 ? 2 : 4;
    const int32_t *sums = path == LINEAR_AVX512VNNI ? w->row_sums : NULL;
    int8_t *xq = sm_aligned_alloc(ldx * (size_t)N);
    float *sx = sm_malloc(sizeof(float) * (size_t)N);
    const row_kernels *rk = rows();
#pragma omp parallel for schedule(static) if ((size_t)N * IC > 65536)
    for (int n = 0; n < N; n++)
        sx[n] = rk->quantize_q8_row(xq + (size_t)n * ldx, inp + (size_t)n * IC, IC, (int)ldx);
    const int8_t *q = w->data;
    const int prow = linear_panel_rows(OC), npanels = (OC + prow - 1) / prow;
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < npanels; p++) {
        int r0 = p * prow, pr = OC - r0 < prow ? OC - r0 : prow;
        for (int n0 = 0; n0 < N; n0 += nbmax) {
            int nb = N - n0 < nbmax ? N - n0 : nbmax;
            for (int r = r0; r < r0 + pr; r += TILE_R) {
                int nr = r0 + pr - r < TILE_R ? r0 + pr - r : TILE_R;
                int32_t s[TILE_R][4];
                tile(s, xq + (size_t)n0 * ldx, ldx, nb, q + (size_t)r * IC, (size_t)IC, nr, IC);
                store_q8(out + (size_t)n0 * OC + r, (size_t)OC, s, nb, nr, sx + n0,
                         w->scales + r, sums ? sums + r : NULL, bias ? bias + r : NULL);
            }
        }
    }
    free(xq);
    free(sx);
}
