/* test_sweep.c — `smdlm eval sweep` and `smdlm data export` through the CLI: each sweep cell's
 * scores equal what `eval genppl` and `eval mauve` compute independently on the same kept
 * samples; the grid is complete, deterministic and the same for every arm; exported reference
 * blocks are pieces of the held-out document; bad arguments fail cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "base/util.h"

#define EVAL FIXTURES_DIR "/tiny-causal"
#define MODEL "models/demo"

static char g_tmp[64];

static double field(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    assert_non_null(p);
    return strtod(p + strlen(pat), NULL);
}

static char *read_text(const char *path) {
    char *t;
    size_t n;
    assert_int_equal(sm_read_file(path, 1 << 24, &t, &n), 0);
    return t;
}

static int count_lines(const char *text) {
    int n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n';
    return n;
}

static const char *DOC = "In the beginning was the word, and the word was with the reader. "
                         "Then the writer sat on the stone and wrote it all down again, line after line, "
                         "until the evening came and the lamps were lit along the river.";

/* data prepare → data export: one held-out document cut into blocks; every exported text is a
 * piece of that document (BOS/EOS dropped). */
static void test_data_export(void **state) {
    char path[128], *out = NULL;
    snprintf(path, sizeof path, "%s/doc.txt", g_tmp);
    assert_int_equal(sm_write_file_atomic(path, DOC, strlen(DOC)), 0);
    int rc = tu_run(&out, "data prepare -q --tokenizer " FIXTURES_DIR "/byte-tokenizer --out %s/data "
                          "--block-len 16 --val-docs 1 %s %s", g_tmp, path, path);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    rc = tu_run(&out, "data export --data %s/data -n 3 -o %s/ref.jsonl", g_tmp, g_tmp);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/ref.jsonl", g_tmp);
    char *text = read_text(path);
    assert_int_equal(count_lines(text), 3);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *b = strstr(line, "{\"text\":\"");
        assert_non_null(b);
        b += 9;
        char *e = strrchr(b, '"');
        assert_non_null(e);
        *e = 0;
        printf("  exported block: '%s'\n", b);
        assert_true(strlen(b) > 0);
        assert_non_null(strstr(DOC, b));
    }
    free(text);
}

/* The last line of a command's output. */
static const char *last_line(char *out) {
    size_t n = strlen(out);
    while (n && out[n - 1] == '\n') out[--n] = 0;
    char *p = strrchr(out, '\n');
    return p ? p + 1 : out;
}

static void test_sweep_scores(void **state) {
    char *out = NULL;
    int rc = tu_run(&out, "eval sweep -q -e " EVAL " -o %s/sw --ref %s/ref.jsonl --steps 2,4 --seeds 0,1 "
                          "-n 3 -b 2 --sm both -t 2 demo=" MODEL " again=" MODEL, g_tmp, g_tmp);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    char path[160];
    snprintf(path, sizeof path, "%s/sw/cells.jsonl", g_tmp);
    char *cells = read_text(path);
    /* 2 arms × SM on/off (the demo model carries SM values) × 2 steps × 2 seeds */
    assert_int_equal(count_lines(cells), 16);
    char *save = NULL;
    int k = 0;
    for (char *line = strtok_r(cells, "\n", &save); line; line = strtok_r(NULL, "\n", &save), k++) {
        char arm[16], sm[8];
        int steps = (int)field(line, "steps"), seed = (int)field(line, "seed");
        assert_int_equal(sscanf(line, "{\"arm\":\"%15[^\"]\",\"soft_masking\":%7[^,]", arm, sm), 2);
        char samples[200];
        snprintf(samples, sizeof samples, "%s/sw/samples/%s-%s-s%d-seed%d.jsonl", g_tmp, arm,
                 strcmp(sm, "true") ? "no-sm" : "sm", steps, seed);
        /* the same seeds for every arm: the second arm's samples equal the first's */
        if (!strcmp(arm, "again")) {
            char other[200];
            snprintf(other, sizeof other, "%s/sw/samples/demo-%s-s%d-seed%d.jsonl", g_tmp,
                     strcmp(sm, "true") ? "no-sm" : "sm", steps, seed);
            char *a = read_text(samples), *b = read_text(other);
            assert_string_equal(a, b);
            free(a);
            free(b);
        }
        if (k % 3) continue; /* every third cell is re-scored independently (time) */
        /* generative perplexity and entropy: the same numbers from eval genppl */
        char *g = NULL;
        assert_int_equal(tu_run(&g, "eval genppl -m " EVAL " --samples %s --json -t 2", samples), 0);
        const char *gl = last_line(g);
        double want = field(gl, "gen_ppl"), got = field(line, "gen_ppl");
        printf("  %s: gen_ppl %.9g (sweep) vs %.9g (genppl)\n", samples, got, want);
        assert_true(fabs(got - want) <= 1e-6 * want);
        assert_true(fabs(field(line, "entropy") - field(gl, "entropy")) <= 1e-6);
        free(g);
        /* MAUVE: the same number from eval mauve with the evaluator as featurizer */
        char *m = NULL;
        assert_int_equal(tu_run(&m, "eval mauve -q -m " EVAL " --ref %s/ref.jsonl --samples %s -t 2",
                                g_tmp, samples), 0);
        double mw = field(m, "mauve"), mg = field(line, "mauve");
        printf("  %s: mauve %.9g (sweep) vs %.9g (eval mauve)\n", samples, mg, mw);
        assert_true(fabs(mg - mw) <= 1e-9);
        free(m);
    }
    assert_int_equal(k, 16);
    free(cells);
    /* seeds differ → samples differ (SM on/off may coincide: the demo model's λ is ≈ 0) */
    char p0[200], p1[200];
    snprintf(p0, sizeof p0, "%s/sw/samples/demo-sm-s4-seed0.jsonl", g_tmp);
    snprintf(p1, sizeof p1, "%s/sw/samples/demo-sm-s4-seed1.jsonl", g_tmp);
    char *a = read_text(p0), *b = read_text(p1);
    assert_string_not_equal(a, b);
    free(a), free(b);
    /* summary: one row per arm × SM × steps, and the figure */
    snprintf(path, sizeof path, "%s/sw/sweep.md", g_tmp);
    char *md = read_text(path);
    assert_int_equal(count_lines(md), 2 + 8);
    free(md);
    snprintf(path, sizeof path, "%s/sw/sweep.png", g_tmp);
    assert_true(sm_file_exists(path));
}

/* text without its lines' "seconds" fields (the last field of a cell line) */
static char *drop_seconds(char *text) {
    for (char *at = text, *end; (at = strstr(at, ",\"seconds\":")) && (end = strchr(at, '}'));)
        memmove(at, end, strlen(end) + 1);
    return text;
}

/* A sweep stopped after some cells resumes with --resume: the cells in cells.jsonl are kept
 * (their samples not regenerated), the others run, and the result equals the uninterrupted
 * sweep's; other settings are refused; arms that do not fit together are refused before any
 * work (here: before the missing --ref file is read). */
static void test_sweep_resume(void **state) {
    const char *grid = "--steps 2 --seeds 0,1 -n 2 -b 2 -t 2 demo=" MODEL;
    char *out = NULL, cmd[512], path[200];
    assert_int_equal(tu_run(&out, "eval sweep -q -e " EVAL " -o %s/r1 %s", g_tmp, grid), 0);
    free(out);
    snprintf(cmd, sizeof cmd, "cp -r %s/r1 %s/r2 && head -1 %s/r1/cells.jsonl > %s/r2/cells.jsonl && "
             "touch -d 2001-01-01 %s/r2/samples/demo-sm-s2-seed0.jsonl", g_tmp, g_tmp, g_tmp, g_tmp, g_tmp);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "eval sweep -e " EVAL " -o %s/r2 --resume %s", g_tmp, grid), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "resuming: 1 of 2 cells already scored"));
    free(out);
    struct stat st; /* the kept cell's samples were not written again */
    snprintf(path, sizeof path, "%s/r2/samples/demo-sm-s2-seed0.jsonl", g_tmp);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_mtime < 1000000000 + 86400 * 366);
    char *cells[2];
    for (int r = 0; r < 2; r++) { /* the cells without their timings */
        snprintf(path, sizeof path, "%s/r%d/cells.jsonl", g_tmp, r + 1);
        cells[r] = drop_seconds(read_text(path));
    }
    printf("  uninterrupted:\n%s  resumed:\n%s", cells[0], cells[1]);
    assert_int_equal(count_lines(cells[1]), 2);
    assert_string_equal(cells[0], cells[1]);
    free(cells[0]), free(cells[1]);
    assert_int_equal(tu_run(&out, "eval sweep -e " EVAL " -o %s/r2 --resume -n 3 --steps 2 demo=" MODEL, g_tmp), 1);
    assert_non_null(strstr(out, "other settings"));
    free(out);
    snprintf(cmd, sizeof cmd, "cp -r " MODEL " %s/m128 && sed -i 's/\"model_length\": *256/\"model_length\": 128/' "
             "%s/m128/config.json", g_tmp, g_tmp);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "eval sweep -e " EVAL " -o %s/r3 --ref %s/missing.jsonl a=" MODEL " b=%s/m128",
                            g_tmp, g_tmp, g_tmp), 1);
    printf("%s", out);
    assert_non_null(strstr(out, "model length 128 differs"));
    /* models/demo's scale (1.17e-6) never learnt: its arm says so before any work */
    assert_non_null(strstr(out, "smdlm eval sweep: arm a: soft-masking on (k=3, λ scale 1.2e-06: untrained, the "
                                "feedback barely changes the input)\n"));
    free(out);
    snprintf(path, sizeof path, "%s/r3/cells.jsonl", g_tmp);
    assert_false(sm_file_exists(path));
}

static void test_bad_args(void **state) {
    char args[8][300];
    const char *word[8];
    int n = 0;
#define CASE(w, ...) (snprintf(args[n], sizeof args[n], __VA_ARGS__), word[n++] = (w))
    CASE("NAME=MODEL_DIR", "eval sweep -e " EVAL " -o %s/x " MODEL, g_tmp);
    CASE("given twice", "eval sweep -e " EVAL " -o %s/x a=" MODEL " a=" MODEL, g_tmp);
    CASE("--steps", "eval sweep -e " EVAL " -o %s/x --steps 8,x a=" MODEL, g_tmp);
    CASE("--sm", "eval sweep -e " EVAL " -o %s/x --sm maybe a=" MODEL, g_tmp);
    CASE("must be causal", "eval sweep -e " MODEL " -o %s/x a=" MODEL, g_tmp);
    CASE("required", "eval sweep -o %s/x a=" MODEL, g_tmp);
    CASE("meta.json", "data export --data %s -o %s/y.jsonl", g_tmp, g_tmp);
#undef CASE
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, n);
}

static int setup(void **state) { return tu_tmpdir_make(g_tmp, sizeof g_tmp, "sweep"); }

static int teardown(void **state) { return tu_tmpdir_remove(g_tmp); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_export),
        cmocka_unit_test(test_sweep_scores),
        cmocka_unit_test(test_sweep_resume),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
