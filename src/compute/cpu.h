/* cpu.h — what this processor and this operating system let us run, found with cpuid and
 * xgetbv rather than from any library's table of CPU models (a BLAS that does not know a new
 * model falls back to its oldest kernels). Kernels and providers pick their code path from
 * cpu_isa_active().
 *
 * A feature counts only when the OS also saves its register state: AVX/FMA/F16C/AVX2 need
 * XCR0's SSE and YMM bits, AVX-512 also the opmask and both ZMM bits, AMX the tile bits (and on
 * Linux a per-process permission, see cpu_amx_request). */
#ifndef SMDLM_CPU_H
#define SMDLM_CPU_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char vendor[13]; /* "GenuineIntel", "AuthenticAMD", ... ("" off x86) */
    char brand[49];  /* the processor's name string, trimmed */
    int family, model, stepping; /* with the extended family/model folded in */
    bool sse2, sse3, sse41, avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512dq, avx512vl, avx512cd, avx512_vnni, avx512_bf16,
        avx512_fp16;
    bool amx_tile, amx_bf16, amx_int8; /* hardware and XCR0; the Linux permission is separate */
} cpu_features;

/* Levels of the code paths, each implying the ones below it. */
typedef enum {
    CPU_ISA_GENERIC, /* x86-64 baseline (SSE2) or another architecture: portable C */
    CPU_ISA_AVX2,    /* AVX2 + FMA (Haswell, Zen 1 and later) */
    CPU_ISA_AVX512,  /* AVX-512 F/BW/DQ/VL (Skylake-SP, Zen 4 and later) */
} cpu_isa;

/* In a file built once per code path (-DSIMD_PATH=avx512|avx2|generic; compute/rows.h):
 * name_<path>, the symbol of that build's table. */
#define CPU_PATH_CAT2(a, b) a##b
#define CPU_PATH_CAT(a, b) CPU_PATH_CAT2(a, b)
#define CPU_PATH_SYMBOL(name) CPU_PATH_CAT(name##_, SIMD_PATH)
/* The build of such a table for the active level: &name_avx512, &name_avx2 or &name_generic. */
#define CPU_PATH_TABLE(name)                                                                     \
    (cpu_isa_active() == CPU_ISA_AVX512 ? &name##_avx512                                         \
     : cpu_isa_active() == CPU_ISA_AVX2 ? &name##_avx2                                           \
                                        : &name##_generic)

/* The features of this processor, detected once (thread-safe). */
const cpu_features *cpu_features_get(void);
/* The best level the processor and the OS support. */
cpu_isa cpu_isa_best(void);
/* The level code paths use: cpu_isa_best, lowered by the environment variable
 * SMDLM_ISA=avx512|avx2|generic (never raised above the best; an unknown value is ignored
 * with a warning). Lets the tests run every path on one machine. */
cpu_isa cpu_isa_active(void);
/* Makes `isa` the active level for every later call (tests and benchmarks that run each path
 * in one process); -1 when it is above cpu_isa_best(). Not thread-safe: call it between
 * computations. The matrix products' OpenBLAS core, chosen when OpenBLAS is loaded (the first
 * product), does not follow: SMDLM_ISA in the environment sets that. */
int cpu_isa_force(cpu_isa isa);
/* `best` capped by a SMDLM_ISA value (NULL or "" = no cap); *known = 0 for an unknown name. */
cpu_isa cpu_isa_capped(cpu_isa best, const char *request, int *known);
const char *cpu_isa_name(cpu_isa isa); /* "avx512", "avx2", "generic" */

/* "AuthenticAMD family 25 model 17 stepping 1 (AMD EPYC ...)" into buf; returns buf. */
char *cpu_describe(char *buf, size_t n);
/* The detected extensions as flag names separated by spaces ("sse4_1 avx avx2 fma ..."),
 * named as in /proc/cpuinfo; returns buf. */
char *cpu_feature_list(char *buf, size_t n);

/* Asks Linux for the AMX tile data permission (arch_prctl ARCH_REQ_XCOMP_PERM), which a
 * process needs before its first tile instruction; 1 when granted, 0 otherwise (no AMX, or
 * refused). It enlarges every signal frame of the process, so only an AMX kernel calls it. */
int cpu_amx_request(void);

#endif
