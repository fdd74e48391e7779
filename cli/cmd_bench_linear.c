/* cmd_bench_linear.c — `smdlm bench linear`: GFLOP/s of each low-precision linear path
 * (bf16, f16, q8 weights) against sgemm on fp32 weights of the same shape, GB/s of weight
 * streaming, the error against the fp32 product, and the machine's read bandwidth. All
 * weight types hold the same matrix (random bf16 values, exact in f16 and f32; q8 is its
 * quantisation), so the error column is the cost of the path alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "compute/gemm.h"
#include "compute/kernels.h"
#include "compute/linear.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "base/util.h"

typedef struct {
    int in, out;
} lshape;

/* Qwen2.5-0.5B (D 896, kv 128, F 4864, V 151936) and Qwen2.5-7B (D 3584, F 18944). */
static const lshape k_small[] = {{896, 896}, {896, 128}, {896, 4864}, {4864, 896}, {896, 151936}};
static const lshape k_7b[] = {{3584, 3584}, {3584, 18944}, {18944, 3584}};

/* Comma-separated integers into v (at most max); -1 on a bad list. */
static int parse_ints(const char *s, int *v, int max, int lo, int hi) {
    int n = 0;
    while (*s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < lo || x > hi || n == max || (*end && *end != ',')) return -1;
        v[n++] = (int)x;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* "qwen0.5b", "7b", "all" or a list of INxOUT. */
static int parse_shapes(const char *s, lshape *v, int max) {
    int n = 0;
    if (!strcmp(s, "qwen0.5b") || !strcmp(s, "all"))
        for (size_t i = 0; i < sizeof k_small / sizeof *k_small; i++) v[n++] = k_small[i];
    if (!strcmp(s, "7b") || !strcmp(s, "all"))
        for (size_t i = 0; i < sizeof k_7b / sizeof *k_7b; i++) v[n++] = k_7b[i];
    if (n) return n;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b;
        if (end == s || *end != 'x' || a < 1 || a > (1 << 20)) return -1;
        s = end + 1;
        b = strtol(s, &end, 10);
        if (end == s || b < 1 || b > (1 << 22) || n == max || (*end && *end != ',')) return -1;
        v[n++] = (lshape){(int)a, (int)b};
        s = *end ? end + 1 : end;
    }
    return n;
}

/* Sum of a chunk, vectorised (omp simd lets the reduction be reordered); the baseline's
 * 128-bit loads outrun the memory by far, so no per-path build is needed. */
static float sum_chunk(const float *a, size_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += a[i];
    return s;
}

/* STREAM-like read: GB/s of summing a buffer of `mb` MiB with the current threads. */
static double read_bandwidth(size_t mb) {
    size_t n = mb * 1048576 / sizeof(float);
    float *a = sm_aligned_alloc(sizeof(float) * n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7);
    double best = INFINITY, sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = sm_time_sec(), s = 0;
        const size_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i += chunk) s += sum_chunk(a + i, n - i < chunk ? n - i : chunk);
        double dt = sm_time_sec() - t0;
        sink += s;
        if (dt < best) best = dt;
    }
    free(a);
    return sink < 0 ? 0 : (double)n * sizeof(float) / best / 1e9;
}

static double time_forward(float *y, const float *x, const linear_w *w, int N, int reps) {
    linear_forward(y, x, w, NULL, N); /* warm-up */
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = sm_time_sec();
        linear_forward(y, x, w, NULL, N);
        double dt = sm_time_sec() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

/* ‖y − ref‖ / ‖ref‖ */
static double rel_err(const float *y, const float *ref, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)y[i] - ref[i];
        e += d * d, r += (double)ref[i] * ref[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

int bench_linear(int argc, char **argv) {
    const char *shapes_s = "all", *ns_s = "1,16,512", *types_s = "bf16", *paths_s = NULL;
    int reps = 3, threads = default_threads(), stream_mb = 1024;
    uint64_t seed = 1;
    cli_opt opts[] = {
        {"shapes", 0, OPT_STR, &shapes_s, 0, 0, "LIST", "qwen0.5b, 7b, all (default) or INxOUT,..."},
        {"n", 'n', OPT_STR, &ns_s, 0, 0, "LIST", "rows of x (default 1,16,512)"},
        {"types", 0, OPT_STR, &types_s, 0, 0, "LIST", "weight types: bf16,f16,q8 (default bf16)"},
        {"paths", 0, OPT_STR, &paths_s, 0, 0, "LIST", "kernel paths (default: auto and every tile/sgemm path but generic)"},
        {"reps", 0, OPT_INT, &reps, 1, 1000, "R", "timed calls, best kept (default 3)"},
        {"stream-mb", 0, OPT_INT, &stream_mb, 0, 65536, "MB", "read-bandwidth buffer, 0 skips (default 1024)"},
        {"seed", 0, OPT_U64, &seed, 0, 0, "N", "seed of the random weights"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"bench linear",
                       "GFLOP/s and GB/s of the low-precision linear kernels vs sgemm on fp32 weights.",
                       "[--shapes LIST] [-n LIST] [--types LIST] [--paths LIST] [-t N]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    lshape shapes[64];
    int ns[16], nshapes = parse_shapes(shapes_s, shapes, 64), nn = parse_ints(ns_s, ns, 16, 1, 1 << 16);
    if (nshapes < 0) {
        fprintf(stderr, "smdlm bench linear: bad --shapes '%s' (qwen0.5b, 7b, all or INxOUT,...)\n", shapes_s);
        return 1;
    }
    if (nn < 0) {
        fprintf(stderr, "smdlm bench linear: bad -n '%s' (comma-separated integers 1..65536)\n", ns_s);
        return 1;
    }
    wtype types[3];
    int ntypes = 0;
    for (const char *s = types_s; *s;) {
        size_t len = strcspn(s, ",");
        wtype t = len == 4 && !strncmp(s, "bf16", 4) ? WT_BF16 : len == 3 && !strncmp(s, "f16", 3) ? WT_F16
                  : len == 2 && !strncmp(s, "q8", 2) ? WT_Q8 : WT_F32;
        if (t == WT_F32 || ntypes == 3) {
            fprintf(stderr, "smdlm bench linear: bad --types '%s' (bf16, f16, q8)\n", types_s);
            return 1;
        }
        types[ntypes++] = t;
        s += len + (s[len] == ',');
    }
    linear_path paths[8];
    int npaths = 0;
    if (paths_s) {
        char buf[64];
        for (const char *s = paths_s; *s;) {
            size_t len = strcspn(s, ",");
            snprintf(buf, sizeof buf, "%.*s", (int)(len < 63 ? len : 63), s);
            if (npaths == 8 || linear_path_parse(buf, &paths[npaths])) return cli_fail("bench linear");
            if (!linear_path_available(paths[npaths])) {
                fprintf(stderr, "smdlm bench linear: this processor cannot run the %s path\n", buf);
                return 1;
            }
            npaths++;
            s += len + (s[len] == ',');
        }
    } else {
        for (linear_path p = LINEAR_AUTO; p <= LINEAR_SGEMM; p++)
            if (p != LINEAR_GENERIC && linear_path_available(p)) paths[npaths++] = p;
    }
    kernels_set_threads(threads);
    const char *core = gemm_provider_core(), *hint = gemm_provider_core_hint();
    printf("threads %d, %s core %s%s%s%s, SIMD %s, avx512bf16 %s\n", threads, gemm_provider_name(),
           core ? core : "?",
           hint ? " (set by OPENBLAS_CORETYPE; smdlm would choose " : "", hint ? hint : "", hint ? ")" : "",
           kernels_simd_level(), linear_path_available(LINEAR_AVX512BF16) ? "yes" : "no");
    printf("auto paths: bf16 %s; f16 %s; q8 %s\n", linear_kernel_name(WT_BF16),
           linear_kernel_name(WT_F16), linear_kernel_name(WT_Q8));
    if (stream_mb > 0) printf("read bandwidth (%d MiB, %d threads): %.1f GB/s\n", stream_mb, threads, read_bandwidth((size_t)stream_mb));
    printf("%6s %6s %5s %5s %-10s %10s %9s %8s %9s %9s\n", "in", "out", "N", "type", "path", "ms", "GFLOP/s",
           "GB/s", "x sgemm", "rel err");
    int nmax = 0;
    for (int i = 0; i < nn; i++) nmax = ns[i] > nmax ? ns[i] : nmax;
    sm_rng r;
    rng_seed(&r, seed);
    for (int s = 0; s < nshapes; s++) {
        const int IC = shapes[s].in, OC = shapes[s].out;
        const size_t nw = (size_t)IC * OC;
        float *wf = sm_aligned_alloc(sizeof(float) * nw);
        uint16_t *wb = sm_aligned_alloc(2 * nw), *wh = sm_aligned_alloc(2 * nw);
        const float a = 1.0f / sqrtf((float)IC);
        for (size_t i = 0; i < nw; i++) {
            wb[i] = st_f32_to_bf16(a * (float)(2.0 * rng_uniform(&r) - 1.0));
            wf[i] = st_bf16_to_f32(wb[i]);
        }
        /* the same values as f16: exact for normal f16 (8 of its 11 bits used), subnormals
         * rounded (|w| < 2^-14, a few in a million) */
        for (size_t i = 0; i < nw; i++) {
            float v = fabsf(wf[i]);
            int e;
            double m = frexp(v, &e); /* v = m·2^e, m in [0.5, 1) */
            uint16_t h = 0;
            if (v >= 0x1p-14f) h = (uint16_t)(((e + 14) << 10) | ((int)(m * 2048.0) & 0x3ff));
            else h = (uint16_t)lrint(v * 0x1p24);
            wh[i] = (uint16_t)(h | (wf[i] < 0 ? 0x8000 : 0));
        }
        linear_w w32 = {WT_F32, OC, IC, wf, NULL, NULL}, wbf = {WT_BF16, OC, IC, wb, NULL, NULL};
        linear_w wf16 = {WT_F16, OC, IC, wh, NULL, NULL}, wq;
        if (linear_quantize_q8(&wq, &wbf)) return cli_fail("bench linear");
        float *x = sm_aligned_alloc(sizeof(float) * (size_t)nmax * IC);
        for (size_t i = 0; i < (size_t)nmax * IC; i++) x[i] = (float)(2.0 * rng_uniform(&r) - 1.0);
        float *ref = sm_aligned_alloc(sizeof(float) * (size_t)nmax * OC);
        float *y = sm_aligned_alloc(sizeof(float) * (size_t)nmax * OC);
        for (int i = 0; i < nn; i++) {
            const int N = ns[i];
            const double flop = 2.0 * N * (double)nw;
            double t32 = time_forward(ref, x, &w32, N, reps);
            printf("%6d %6d %5d %5s %-10s %10.3f %9.1f %8.1f %9s %9s\n", IC, OC, N, "f32", "sgemm", t32 * 1e3,
                   flop / t32 / 1e9, 4.0 * nw / t32 / 1e9, "1.00", "-");
            for (int ti = 0; ti < ntypes; ti++) {
                const linear_w *w = types[ti] == WT_BF16 ? &wbf : types[ti] == WT_F16 ? &wf16 : &wq;
                double bytes = (double)nw * (types[ti] == WT_Q8 ? 1 : 2);
                for (int pi = 0; pi < npaths; pi++) {
                    if (paths[pi] == LINEAR_AVX512BF16 && types[ti] != WT_BF16) continue;
                    linear_force_path(paths[pi]);
                    double t = time_forward(y, x, w, N, reps);
                    char name[32];
                    snprintf(name, sizeof name, "%s%s%s", linear_path_name(paths[pi]),
                             paths[pi] == LINEAR_AUTO ? ":" : "",
                             paths[pi] == LINEAR_AUTO ? linear_path_name(linear_path_for(types[ti], N)) : "");
                    printf("%6d %6d %5d %5s %-10s %10.3f %9.1f %8.1f %9.2f %9.2e\n", IC, OC, N,
                           types[ti] == WT_BF16 ? "bf16" : types[ti] == WT_F16 ? "f16" : "q8", name,
                           t * 1e3, flop / t / 1e9, bytes / t / 1e9, t32 / t,
                           rel_err(y, ref, (size_t)N * OC));
                    fflush(stdout);
                }
                linear_force_path(LINEAR_AUTO);
            }
        }
        free(wf), free(wb), free(wh), free(x), free(ref), free(y);
        linear_free(&wq);
    }
    return 0;
}
