/* cpu.c — cpuid/xgetbv feature detection (see cpu.h). */
#include "compute/cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

static cpu_features g_features;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if CPU_X86
typedef struct {
    unsigned a, b, c, d;
} regs;

static regs cpuid(unsigned leaf, unsigned sub) {
    regs r = {0, 0, 0, 0};
    __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
    return r;
}

/* XCR0: the register state the OS saves on a context switch (xgetbv without -mxsave) */
static unsigned long long xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (unsigned long long)hi << 32 | lo;
}

static bool bit(unsigned v, int n) { return (v >> n) & 1u; }

static void detect(void) {
    cpu_features *f = &g_features;
    unsigned max_leaf = (unsigned)__get_cpuid_max(0, NULL);
    regs r = cpuid(0, 0);
    memcpy(f->vendor, &r.b, 4), memcpy(f->vendor + 4, &r.d, 4), memcpy(f->vendor + 8, &r.c, 4);
    regs l1 = cpuid(1, 0);
    int base_family = (l1.a >> 8) & 0xf, base_model = (l1.a >> 4) & 0xf;
    f->family = base_family == 0xf ? base_family + (int)((l1.a >> 20) & 0xff) : base_family;
    f->model = base_family == 0x6 || base_family == 0xf ? base_model | (int)((l1.a >> 12) & 0xf0)
                                                        : base_model;
    f->stepping = l1.a & 0xf;
    if ((unsigned)__get_cpuid_max(0x80000000, NULL) >= 0x80000004) {
        unsigned words[12]; /* f->brand need not be 4-byte aligned: copy, do not cast */
        for (unsigned i = 0; i < 3; i++) {
            regs b = cpuid(0x80000002 + i, 0);
            words[4 * i] = b.a, words[4 * i + 1] = b.b, words[4 * i + 2] = b.c, words[4 * i + 3] = b.d;
        }
        memcpy(f->brand, words, 48);
        f->brand[48] = 0;
        char *s = f->brand;
        while (*s == ' ') s++;
        memmove(f->brand, s, strlen(s) + 1);
        for (size_t n = strlen(f->brand); n && f->brand[n - 1] == ' ';) f->brand[--n] = 0;
    }
    f->sse2 = bit(l1.d, 26);
    f->sse3 = bit(l1.c, 0);
    f->sse41 = bit(l1.c, 19);
    unsigned long long xcr = bit(l1.c, 27) ? xcr0() : 0; /* OSXSAVE: xgetbv is available */
    bool os_ymm = (xcr & 0x6) == 0x6;         /* SSE and AVX state */
    bool os_zmm = os_ymm && (xcr & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    bool os_tile = (xcr & 0x60000) == 0x60000;    /* XTILECFG, XTILEDATA */
    f->avx = os_ymm && bit(l1.c, 28);
    f->fma = f->avx && bit(l1.c, 12);
    f->f16c = f->avx && bit(l1.c, 29);
    if (max_leaf < 7) return;
    regs l7 = cpuid(7, 0), l71 = l7.a >= 1 ? cpuid(7, 1) : (regs){0, 0, 0, 0};
    f->avx2 = f->avx && bit(l7.b, 5);
    f->avx512f = os_zmm && bit(l7.b, 16);
    f->avx512dq = f->avx512f && bit(l7.b, 17);
    f->avx512cd = f->avx512f && bit(l7.b, 28);
    f->avx512bw = f->avx512f && bit(l7.b, 30);
    f->avx512vl = f->avx512f && bit(l7.b, 31);
    f->avx512_vnni = f->avx512f && bit(l7.c, 11);
    f->avx512_fp16 = f->avx512f && bit(l7.d, 23);
    f->avx512_bf16 = f->avx512f && bit(l71.a, 5);
    f->amx_tile = os_tile && bit(l7.d, 24);
    f->amx_bf16 = f->amx_tile && bit(l7.d, 22);
    f->amx_int8 = f->amx_tile && bit(l7.d, 25);
}

int cpu_amx_request(void) {
    if (!cpu_features_get()->amx_tile) return 0;
#if defined(__linux__) && defined(__x86_64__)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}
#else
static void detect(void) {}
int cpu_amx_request(void) { return 0; }
#endif

const cpu_features *cpu_features_get(void) {
    pthread_once(&g_once, detect);
    return &g_features;
}

cpu_isa cpu_isa_best(void) {
    const cpu_features *f = cpu_features_get();
    if (f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl && f->fma && f->avx2)
        return CPU_ISA_AVX512;
    if (f->avx2 && f->fma) return CPU_ISA_AVX2;
    return CPU_ISA_GENERIC;
}

const char *cpu_isa_name(cpu_isa isa) {
    return isa == CPU_ISA_AVX512 ? "avx512" : isa == CPU_ISA_AVX2 ? "avx2" : "generic";
}

cpu_isa cpu_isa_capped(cpu_isa best, const char *request, int *known) {
    *known = 1;
    if (!request || !*request) return best;
    for (cpu_isa i = CPU_ISA_GENERIC; i <= CPU_ISA_AVX512; i++)
        if (!strcmp(request, cpu_isa_name(i))) return i < best ? i : best;
    *known = 0;
    return best;
}

static cpu_isa g_active;
static pthread_once_t g_active_once = PTHREAD_ONCE_INIT;

static void choose_active(void) {
    const char *req = getenv("SMDLM_ISA");
    int known;
    g_active = cpu_isa_capped(cpu_isa_best(), req, &known);
    if (!known)
        fprintf(stderr, "smdlm: ignoring SMDLM_ISA=%s (avx512, avx2 or generic)\n", req);
}

cpu_isa cpu_isa_active(void) {
    pthread_once(&g_active_once, choose_active);
    return g_active;
}

int cpu_isa_force(cpu_isa isa) {
    cpu_isa_active(); /* the environment's choice is made once, before any override */
    if (isa < CPU_ISA_GENERIC || isa > cpu_isa_best()) return -1;
    g_active = isa;
    return 0;
}

char *cpu_describe(char *buf, size_t n) {
    const cpu_features *f = cpu_features_get();
    snprintf(buf, n, "%s family %d model %d stepping %d (%s)", *f->vendor ? f->vendor : "non-x86",
             f->family, f->model, f->stepping, *f->brand ? f->brand : "unnamed");
    return buf;
}

char *cpu_feature_list(char *buf, size_t n) {
    const cpu_features *f = cpu_features_get();
    const struct {
        bool on;
        const char *name;
    } k[] = {{f->sse2, "sse2"},         {f->sse3, "pni"},          {f->sse41, "sse4_1"},       {f->avx, "avx"},
             {f->avx2, "avx2"},         {f->fma, "fma"},            {f->f16c, "f16c"},
             {f->avx512f, "avx512f"},   {f->avx512bw, "avx512bw"},  {f->avx512dq, "avx512dq"},
             {f->avx512vl, "avx512vl"}, {f->avx512cd, "avx512cd"},  {f->avx512_vnni, "avx512_vnni"},
             {f->avx512_bf16, "avx512_bf16"}, {f->avx512_fp16, "avx512_fp16"},
             {f->amx_tile, "amx_tile"}, {f->amx_bf16, "amx_bf16"},  {f->amx_int8, "amx_int8"}};
    size_t used = 0;
    if (n) buf[0] = 0;
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        if (k[i].on && used < n)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? " " : "", k[i].name);
    return buf;
}
