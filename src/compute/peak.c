/* peak.c — register-only instruction loops (see peak.h). Each loop runs ACC independent
 * accumulator chains: an FMA has a latency of 4–5 cycles and up to two issue per cycle, so at
 * least ~10 chains are in flight to reach the throughput. */
#include "compute/peak.h"

#include <immintrin.h>
#include <omp.h>

#include "base/util.h"
#include "compute/cpu.h"

#define ACC 12

/* LOOP defines `static float NAME(long iters)` under the target attribute ATTR: ACC
 * accumulators of type VEC start at INIT(j) and take `iters` rounds of acc[j] = STEP(acc[j]),
 * with the operands CONSTS declared first; the result is ADD over the accumulators, then
 * REDUCE, so it depends on every accumulator and the compiler keeps them all. */
#define LOOP(ATTR, NAME, VEC, CONSTS, INIT, STEP, ADD, REDUCE)                               \
    ATTR static float NAME(long iters) {                                                      \
        VEC acc[ACC];                                                                         \
        CONSTS;                                                                               \
        _Pragma("GCC unroll 12") for (int j = 0; j < ACC; j++) acc[j] = INIT(j);              \
        for (long i = 0; i < iters; i++) {                                                    \
            _Pragma("GCC unroll 12") for (int j = 0; j < ACC; j++) acc[j] = STEP(acc[j]);     \
        }                                                                                     \
        _Pragma("GCC unroll 12") for (int j = 1; j < ACC; j++) acc[0] = ADD(acc[0], acc[j]);  \
        return REDUCE(acc[0]);                                                                \
    }

#define TARGET(isa) __attribute__((target(isa)))

TARGET("avx2") static inline float first_plus_last_256(__m256 v) {
    float out[8];
    _mm256_storeu_ps(out, v);
    return out[0] + out[7];
}

#define SET512(j) _mm512_set1_ps((float)(j))
#define FMA512(x) _mm512_fmadd_ps(x, a, b)
LOOP(TARGET("avx512f"), loop_fma512, __m512, __m512 a = _mm512_set1_ps(0.999999f); __m512 b = _mm512_set1_ps(1e-7f),
     SET512, FMA512, _mm512_add_ps, _mm512_reduce_add_ps)

#define SET256(j) _mm256_set1_ps((float)(j))
#define FMA256(x) _mm256_fmadd_ps(x, a, b)
LOOP(TARGET("avx2,fma"), loop_fma256, __m256, __m256 a = _mm256_set1_ps(0.999999f); __m256 b = _mm256_set1_ps(1e-7f),
     SET256, FMA256, _mm256_add_ps, first_plus_last_256)

/* SSE2 has no FMA: one multiply and one add per 4 lanes, the baseline's limit */
#define SET128(j) _mm_set1_ps((float)(j))
#define MULADD128(x) _mm_add_ps(_mm_mul_ps(x, a), b)
LOOP(, loop_sse2, __m128, __m128 a = _mm_set1_ps(0.999999f); __m128 b = _mm_set1_ps(1e-7f), SET128, MULADD128,
     _mm_add_ps, _mm_cvtss_f32)

#define DPBF16(x) _mm512_dpbf16_ps(x, a, b)
LOOP(TARGET("avx512f,avx512bf16"), loop_bf16, __m512,
     __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80); __m512bh b = (__m512bh)_mm512_set1_epi16(0x3380), SET512,
     DPBF16, _mm512_add_ps, _mm512_reduce_add_ps)

#define SETI512(j) _mm512_set1_epi32(j)
#define DPBUSD(x) _mm512_dpbusd_epi32(x, a, b)
#define REDUCE_I512(x) ((float)_mm512_reduce_add_epi32(x))
LOOP(TARGET("avx512f,avx512vnni"), loop_int8, __m512i, __m512i a = _mm512_set1_epi8(1); __m512i b = _mm512_set1_epi8(-1),
     SETI512, DPBUSD, _mm512_add_epi32, REDUCE_I512)

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
