/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "compute/cpu.h"
#include "formats/npy.h"
#include "base/util.h"

size_t tu_compare_f32(const char *what, const float *got, const float *ref, size_t n,
                      float atol, float rtol) {
    size_t bad = 0, worst = 0;
    double worst_excess = -INFINITY, max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double bound = atol + rtol * fabs((double)ref[i]);
        double excess = d - bound;
        if (!(d <= bound)) bad++; /* NaN counts as bad */
        if (d > max_abs || isnan(d)) max_abs = isnan(d) ? INFINITY : d;
        if (excess > worst_excess || isnan(excess)) {
            worst_excess = isnan(excess) ? INFINITY : excess;
            worst = i;
        }
    }
    if (n)
        printf("  %-28s n=%zu max|diff|=%.3g worst[%zu]: got %.8g ref %.8g (atol %.1g rtol %.1g)%s\n",
               what, n, max_abs, worst, got[worst], ref[worst], atol, rtol,
               bad ? "  MISMATCH" : "");
    if (bad) printf("  %s: %zu of %zu elements out of tolerance\n", what, bad, n);
    return bad;
}

size_t tu_compare_i32(const char *what, const int32_t *got, const int32_t *ref, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != ref[i]) {
            if (!bad) printf("  %s: first mismatch at [%zu]: got %d ref %d\n", what, i, got[i], ref[i]);
            bad++;
        }
    }
    printf("  %-28s n=%zu mismatches=%zu%s\n", what, n, bad, bad ? "  MISMATCH" : "");
    return bad;
}

float *tu_load_f32(const char *path, size_t *n) {
    npy_array a;
    if (npy_read(path, &a) != 0) {
        print_error("cannot load fixture: %s\n", smdlm_last_error());
        fail();
    }
    if (a.dtype != NPY_F4) {
        print_error("fixture %s is not float32\n", path);
        fail();
    }
    *n = a.numel;
    return a.data;
}

int32_t *tu_load_i32(const char *path, size_t *n, int64_t *shape, int *ndim) {
    npy_array a;
    if (npy_read(path, &a) != 0) {
        print_error("cannot load fixture: %s\n", smdlm_last_error());
        fail();
    }
    int32_t *out = sm_malloc(a.numel * sizeof *out);
    for (size_t i = 0; i < a.numel; i++)
        out[i] = a.dtype == NPY_I8 ? (int32_t)((int64_t *)a.data)[i]
                 : a.dtype == NPY_I4 ? ((int32_t *)a.data)[i]
                                     : (int32_t)((float *)a.data)[i];
    *n = a.numel;
    if (shape) memcpy(shape, a.shape, sizeof(int64_t) * (size_t)a.ndim);
    if (ndim) *ndim = a.ndim;
    npy_free(&a);
    return out;
}

const char *tu_fixture(const char *fmt, ...) {
    static char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s/", FIXTURES_DIR);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

void tu_expect_error(int rc, const char *what, const char *const *words) {
    const char *msg = smdlm_last_error();
    printf("  %-40s -> %s\n", what, msg);
    if (rc == 0) {
        print_error("%s: expected an error, got success\n", what);
        fail();
    }
    for (int i = 0; words[i]; i++)
        if (!strstr(msg, words[i])) {
            print_error("%s: error message lacks '%s': %s\n", what, words[i], msg);
            fail();
        }
}

void tu_expect_file_error(int rc, const char *file, const char *const *words) {
    const char *msg = smdlm_last_error();
    char scrubbed[1024];
    printf("  %-40s -> %s\n", file, msg);
    if (rc == 0) {
        print_error("%s: expected an error, got success\n", file);
        fail();
    }
    if (!strstr(msg, file)) {
        print_error("%s: error message does not name the file: %s\n", file, msg);
        fail();
    }
    size_t n = 0, flen = strlen(file);
    for (const char *p = msg; *p && n + 2 < sizeof scrubbed;) {
        if (strncmp(p, file, flen) == 0) {
            scrubbed[n++] = '#';
            p += flen;
        } else {
            scrubbed[n++] = *p++;
        }
    }
    scrubbed[n] = 0;
    for (int i = 0; words[i]; i++)
        if (!strstr(scrubbed, words[i])) {
            print_error("%s: error message lacks '%s': %s\n", file, words[i], msg);
            fail();
        }
}

int tu_run(char **out, const char *fmt, ...) {
    char args[2048], cmd[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *bin = getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm";
    /* standard input from /dev/null unless ARGS redirect it: commands that read a prompt from
     * a redirected standard input never wait on the test's */
    snprintf(cmd, sizeof cmd, "%s </dev/null %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 4096, len = 0, r;
    char *buf = sm_malloc(cap);
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 2) buf = sm_realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    if (WIFSIGNALED(st)) return 1000 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

void tu_expect_cli_errors(const char *args, size_t stride, const char *const *word, int n) {
    for (int i = 0; i < n; i++) {
        char *out;
        const char *a = args + (size_t)i * stride;
        int st = tu_run(&out, "%s", a);
        printf("  [%d] smdlm %s\n      -> exit %d: %s", i, a, st, out);
        if (st != 1 || !strstr(out, word[i])) {
            print_error("expected exit 1 and a message with '%s'\n", word[i]);
            free(out);
            fail();
        }
        free(out);
    }
}

int tu_tmpdir_make(char *dir, size_t n, const char *tag) {
    snprintf(dir, n, "/tmp/smdlm-%s-XXXXXX", tag);
    return mkdtemp(dir) ? 0 : -1;
}

int tu_tmpdir_remove(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}


int tu_run_group_per_isa(const char *name, const struct CMUnitTest *tests, size_t n) {
    int failed = 0;
    const cpu_isa top = cpu_isa_active(); /* SMDLM_ISA, when set, caps the paths run */
    for (cpu_isa isa = top;; isa--) {
        char label[96];
        snprintf(label, sizeof label, "%s %s", name, cpu_isa_name(isa));
        if (cpu_isa_force(isa)) {
            fprintf(stderr, "cannot force the %s path\n", cpu_isa_name(isa));
            return failed + 1;
        }
        printf("code path: %s\n", label);
        fflush(stdout);
        failed += _cmocka_run_group_tests(label, tests, n, NULL, NULL);
        if (isa == CPU_ISA_GENERIC) break;
    }
    cpu_isa_force(top);
    return failed;
}

void tu_link_model_dir(const char *dir, const char *model, const char *tokenizer) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && for f in '" FIXTURES_DIR "/%s'/*.json '" FIXTURES_DIR "/%s'/*.safetensors '"
             FIXTURES_DIR "/%s'/*; do ln -sf \"$(realpath \"$f\")\" '%s'/; done", dir, model, model, tokenizer, dir);
    assert_int_equal(system(cmd), 0);
}
