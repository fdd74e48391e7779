/* peak.c — register-only instruction loops (see peak.h). Each loop runs ACC independent
 * accumulator chains: an FMA has a latency of 4–5 cycles and up to two issue per cycle, so at
 * least ~10 chains are in flight to reach the throughput. */
#include "compute/peak.h"

#include <immintrin.h>
#include <omp.h>

#include "base/util.h"
#include "compute/cpu.h"

#define ACC 12

/* Each function runs `iters` rounds of ACC instructions and returns a value that depends on
 * every accumulator, so the compiler keeps them all. */
__attribute__((target("avx512f"))) static float loop_fma512(long iters) {
    __m512 acc[ACC], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
#pragma GCC unroll 12
    for (int j = 0; j < ACC; j++) acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; j++) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    }
#pragma GCC unroll 12
    for (int j = 1; j < ACC; j++) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"))) static float loop_fma256(long iters) {
    __m256 acc[ACC], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
#pragma GCC unroll 12
    for (int j = 0; j < ACC; j++) acc[j] = _mm256_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; j++) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    }
#pragma GCC unroll 12
    for (int j = 1; j < ACC; j++) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    float out[8];
    _mm256_storeu_ps(out, acc[0]);
    return out[0] + out[7];
}

/* SSE2 has no FMA: one multiply and one add per 4 lanes, the baseline's limit */
static float loop_sse2(long iters) {
    __m128 acc[ACC], a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-7f);
#pragma GCC unroll 12
    for (int j = 0; j < ACC; j++) acc[j] = _mm_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; j++) acc[j] = _mm_add_ps(_mm_mul_ps(acc[j], a), b);
    }
#pragma GCC unroll 12
    for (int j = 1; j < ACC; j++) acc[0] = _mm_add_ps(acc[0], acc[j]);
    return _mm_cvtss_f32(acc[0]);
}

__attribute__((target("avx512f,avx512bf16"))) static float loop_bf16(long iters) {
    __m512 acc[ACC];
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
#pragma GCC unroll 12
    for (int j = 0; j < ACC; j++) acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; j++) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
    }
#pragma GCC unroll 12
    for (int j = 1; j < ACC; j++) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx512f,avx512vnni"))) static float loop_int8(long iters) {
    __m512i acc[ACC], a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(-1);
#pragma GCC unroll 12
    for (int j = 0; j < ACC; j++) acc[j] = _mm512_set1_epi32(j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; j++) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
    }
#pragma GCC unroll 12
    for (int j = 1; j < ACC; j++) acc[0] = _mm512_add_epi32(acc[0], acc[j]);
    return (float)_mm512_reduce_add_epi32(acc[0]);
}

typedef float (*loop_fn)(long);
static const struct {
    const char *name;
    double ops_per_instr;
} k_kinds[PEAK_KINDS] = {
    [PEAK_FMA_AVX512] = {"fp32 FMA avx512", 32},
    [PEAK_FMA_AVX2] = {"fp32 FMA avx2", 16},
    [PEAK_DP_BF16] = {"bf16 dot avx512_bf16", 64},
    [PEAK_DP_INT8] = {"int8 dot avx512_vnni", 128},
};

const char *peak_kind_name(peak_kind k) { return k_kinds[k].name; }

int peak_supported(peak_kind k) {
    const cpu_features *f = cpu_features_get();
    switch (k) {
    case PEAK_FMA_AVX512: return f->avx512f;
    case PEAK_FMA_AVX2: return f->avx2 && f->fma;
    case PEAK_DP_BF16: return f->avx512_bf16;
    case PEAK_DP_INT8: return f->avx512_vnni;
    default: return 0;
    }
}

static loop_fn kind_loop(peak_kind k) {
    static const loop_fn fns[PEAK_KINDS] = {loop_fma512, loop_fma256, loop_bf16, loop_int8};
    return fns[k];
}

volatile float g_peak_sink; /* keeps the loops' results alive */

/* ops/s of `fn` (ops_per_round operations a round) on `threads` threads for ~seconds */
static double measure(loop_fn fn, double ops_per_round, int threads, double seconds) {
    long iters = 1 << 16;
    double dt = 0;
    for (;;) { /* calibrate on one thread */
        double t0 = sm_time_sec();
        g_peak_sink = fn(iters);
        dt = sm_time_sec() - t0;
        if (dt > 0.02) break;
        iters *= 4;
    }
    iters = (long)(iters * (seconds / dt)) + 1;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = sm_time_sec();
#pragma omp parallel num_threads(threads)
        {
            float v = fn(iters);
#pragma omp atomic
            g_peak_sink += v;
        }
        double rate = ops_per_round * (double)iters * threads / (sm_time_sec() - t0);
        if (rate > best) best = rate;
    }
    return best;
}

double peak_measure(peak_kind k, int threads, double seconds) {
    if (!peak_supported(k)) return 0;
    return measure(kind_loop(k), ACC * k_kinds[k].ops_per_instr, threads, seconds) / 1e9;
}

double peak_fp32_gflops(int threads) {
    double best = 0;
    for (peak_kind k = PEAK_FMA_AVX512; k <= PEAK_FMA_AVX2; k++) {
        double g = peak_measure(k, threads, 0.1);
        if (g > best) best = g;
    }
    return best > 0 ? best : measure(loop_sse2, ACC * 8.0, threads, 0.1) / 1e9;
}
