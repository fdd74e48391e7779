/* peak.h — the machine's arithmetic limit, measured: register-only loops of one instruction
 * kind (fp32 FMA at 512 and 256 bits, the bf16 and int8 dot products), with enough
 * independent accumulators to hide the instruction latency and no memory traffic. This is
 * the denominator of every benchmark's "share of the machine's limit". */
#ifndef SMDLM_PEAK_H
#define SMDLM_PEAK_H

typedef enum {
    PEAK_FMA_AVX512, /* vfmadd231ps zmm: 32 fp32 FLOP per instruction */
    PEAK_FMA_AVX2,   /* vfmadd231ps ymm: 16 */
    PEAK_DP_BF16,    /* vdpbf16ps zmm (AVX512_BF16): 64 (32 bf16 pairs, multiply + add) */
    PEAK_DP_INT8,    /* vpdpbusd zmm (AVX512_VNNI): 128 int8 operations */
    PEAK_KINDS
} peak_kind;

const char *peak_kind_name(peak_kind k); /* "fp32 FMA avx512", ... */
/* Whether this processor (and OS) can run the loop of kind k. */
int peak_supported(peak_kind k);
/* G(FL)OP/s of kind k on `threads` threads (each running the loop for about `seconds`), the
 * best of three runs; 0 when the kind is not supported. */
double peak_measure(peak_kind k, int threads, double seconds);
/* The fp32 limit: the best of the FMA kinds the processor supports (a plain SSE2 loop's
 * figure when it has neither), on `threads` threads. */
double peak_fp32_gflops(int threads);

#endif
