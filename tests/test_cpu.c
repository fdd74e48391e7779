/* test_cpu.c — cpuid/xgetbv feature detection (compute/cpu.h): the implications that hold
 * on every real processor, agreement with the kernel's view in /proc/cpuinfo, the
 * SMDLM_ISA cap, and that forcing a level moves every kernel table to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/cpu.h"
#include "compute/kernels.h"
#include "compute/linear.h"
#include "compute/rows.h"
#include "train/optim_simd.h"
#include "testutil.h"

static void test_implications(void **state) {
    const cpu_features *f = cpu_features_get();
    char desc[160], list[512];
    printf("%s\n%s\nbest %s, active %s\n", cpu_describe(desc, sizeof desc),
           cpu_feature_list(list, sizeof list), cpu_isa_name(cpu_isa_best()),
           cpu_isa_name(cpu_isa_active()));
#if defined(__x86_64__)
    assert_true(f->sse2); /* the x86-64 baseline */
    assert_true(strlen(f->vendor) == 12);
#endif
    if (f->avx2) assert_true(f->avx);
    if (f->fma || f->f16c) assert_true(f->avx);
    if (f->avx512f) assert_true(f->avx2 && f->fma && f->f16c && f->sse41);
    if (f->avx) assert_true(f->sse3 && f->sse41);
    if (f->avx512bw || f->avx512dq || f->avx512vl || f->avx512_vnni || f->avx512_bf16 ||
        f->avx512_fp16)
        assert_true(f->avx512f);
    if (f->amx_bf16 || f->amx_int8) assert_true(f->amx_tile);
    cpu_isa best = cpu_isa_best();
    if (best >= CPU_ISA_AVX2) assert_true(f->avx2 && f->fma);
    if (best == CPU_ISA_AVX512) assert_true(f->avx512bw && f->avx512dq && f->avx512vl);
    assert_true(cpu_isa_active() <= best);
}

/* Every flag we name must be in /proc/cpuinfo exactly when we detect it (Linux clears the
 * flags whose state the kernel does not save, as our xgetbv check does). */
static void test_matches_proc_cpuinfo(void **state) {
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) skip();
    char *line = NULL, *flags = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0)
        if (!strncmp(line, "flags", 5)) {
            flags = strchr(line, ':');
            break;
        }
    fclose(fp);
    if (!flags) {
        free(line);
        skip();
    }
    char *nl = strchr(flags, '\n'); /* " flag " matches the last flag too */
    if (nl) *nl = ' ';
    char ours[512];
    cpu_feature_list(ours, sizeof ours);
    static const char *const names[] = {
        "sse2",     "pni",      "sse4_1",   "avx",      "avx2",        "fma",         "f16c",
        "avx512f",  "avx512bw", "avx512dq", "avx512vl",    "avx512cd",    "avx512_vnni",
        "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"};
    int bad = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char word[40];
        snprintf(word, sizeof word, " %s ", names[i]);
        char padded_ours[520];
        snprintf(padded_ours, sizeof padded_ours, " %s ", ours);
        int in_proc = strstr(flags, word) != NULL, in_ours = strstr(padded_ours, word) != NULL;
        if (in_proc != in_ours) {
            printf("%s: /proc/cpuinfo %d, detected %d\n", names[i], in_proc, in_ours);
            bad++;
        }
    }
    free(line);
    assert_int_equal(bad, 0);
}

static void test_isa_cap(void **state) {
    int known;
    assert_int_equal(cpu_isa_capped(CPU_ISA_AVX512, NULL, &known), CPU_ISA_AVX512);
    assert_int_equal(cpu_isa_capped(CPU_ISA_AVX512, "", &known), CPU_ISA_AVX512);
    assert_int_equal(cpu_isa_capped(CPU_ISA_AVX512, "avx2", &known), CPU_ISA_AVX2);
    assert_true(known);
    assert_int_equal(cpu_isa_capped(CPU_ISA_AVX512, "generic", &known), CPU_ISA_GENERIC);
    /* never above what the machine has */
    assert_int_equal(cpu_isa_capped(CPU_ISA_AVX2, "avx512", &known), CPU_ISA_AVX2);
    assert_int_equal(cpu_isa_capped(CPU_ISA_AVX2, "sse9", &known), CPU_ISA_AVX2);
    assert_false(known);
    const char *env = getenv("SMDLM_ISA");
    assert_int_equal(cpu_isa_active(), cpu_isa_capped(cpu_isa_best(), env, &known));
}

/* cpu_isa_force: each level up to the best becomes the active one, and the row loops, the
 * optimiser's loops and the linear layers' tile kernels follow it; above the best it fails. */
static void test_isa_force(void **state) {
    const cpu_isa top = cpu_isa_active();
    const row_kernels *rk[] = {&row_kernels_generic, &row_kernels_avx2, &row_kernels_avx512};
    const optim_kernels *ok[] = {&optim_kernels_generic, &optim_kernels_avx2, &optim_kernels_avx512};
    const linear_path small_bf16[] = {LINEAR_GENERIC, LINEAR_AVX2, LINEAR_AVX512};
    assert_true(rk[0] != rk[1] && rk[1] != rk[2] && ok[0] != ok[1] && ok[1] != ok[2]);
    for (cpu_isa isa = CPU_ISA_GENERIC; isa <= CPU_ISA_AVX512; isa++) {
        if (isa > cpu_isa_best()) {
            assert_int_equal(cpu_isa_force(isa), -1);
            continue;
        }
        assert_int_equal(cpu_isa_force(isa), 0);
        printf("forced %s\n", cpu_isa_name(isa));
        assert_int_equal(cpu_isa_active(), isa);
        assert_string_equal(kernels_simd_level(), cpu_isa_name(isa));
        assert_ptr_equal(rows(), rk[isa]);
        assert_ptr_equal(optim_kernels_active(), ok[isa]);
        assert_int_equal(linear_path_for(WT_BF16, 1), small_bf16[isa]);
        assert_int_equal(linear_path_available(LINEAR_AVX512), isa >= CPU_ISA_AVX512);
        assert_int_equal(linear_path_available(LINEAR_AVX512BF16),
                         isa >= CPU_ISA_AVX512 && cpu_features_get()->avx512_bf16);
    }
    assert_int_equal(cpu_isa_force((cpu_isa)7), -1);
    assert_int_equal(cpu_isa_force(top), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_implications),
        cmocka_unit_test(test_matches_proc_cpuinfo),
        cmocka_unit_test(test_isa_cap),
        cmocka_unit_test(test_isa_force),
    };
    return cmocka_run_group_tests_name("cpu", tests, NULL, NULL);
}
