/* simd_math.h — scalar math written so that loops over it vectorise in every code path
 * (AVX-512, AVX2, baseline; compute/rows.h): selects through integer masks, rounding by the 1.5·2²³
 * trick. Relies on round-to-nearest and no FP contraction (-std=c11; never -ffast-math). */
#ifndef SMDLM_SIMD_MATH_H
#define SMDLM_SIMD_MATH_H

#include <math.h>
#include <stdint.h>

/* a > b ? t : f, without a branch. */
static inline float sel_gt(float a, float b, float t, float f) {
    union {
        float f;
        int32_t i;
    } ut = {.f = t}, uf = {.f = f}, r;
    int32_t m = -(int32_t)(a > b);
    r.i = (ut.i & m) | (uf.i & ~m);
    return r.f;
}

/* exp(x) with every select through sel_gt so that every code path vectorises.
 * Cody-Waite range reduction and Cephes' degree-6 polynomial, ≈2 ulp; exact 0 below −87.3
 * and +inf above 88.7. */
static inline float expf_fast(float x) {
    const float hi = 88.72283905f, lo = -87.33654475f;
    float xc = sel_gt(x, hi, hi, x);
    xc = sel_gt(lo, xc, lo, xc);
    /* n = round(xc / ln 2) by the 1.5·2^23 trick (branch-free, vectorises) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23};
    float y = p * scale.f;
    y = sel_gt(lo, x, 0.0f, y);
    return sel_gt(x, hi, INFINITY, y);
}

#endif
