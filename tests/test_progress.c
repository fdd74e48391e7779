/* test_progress.c — the progress reporter (src/base/progress.c): in place on a terminal, plain
 * lines elsewhere, rate-limited, silent when quiet; and every long command reporting through
 * it: with stderr not a terminal each prints plain "smdlm CMD: ..." lines (no \r) at
 * SMDLM_PROGRESS_SECONDS=0, and none with -q. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/progress.h"
#include "base/util.h"
#include "testutil.h"

static char g_tmp[64];

/* What a reporter in the given mode and interval writes for three reports, a note and the end. */
static char *reports(progress_mode mode, double every) {
    progress p;
    progress_start(&p, "smdlm test", 0);
    p.mode = mode, p.every = every;
    char *text = NULL;
    size_t len = 0;
    p.out = open_memstream(&text, &len);
    for (int i = 1; i <= 3; i++) progress_report(&p, i, 3, "item %d", i);
    progress_note(&p, "a note\n");
    progress_report(&p, 0, 0, "no count");
    progress_clear(&p);
    fclose(p.out);
    return text;
}

static void test_reporter_modes(void **state) {
    char *lines = reports(PROGRESS_LINES, 0);
    printf("lines mode:\n%s", lines);
    assert_null(strchr(lines, '\r'));
    assert_non_null(strstr(lines, "smdlm test: item 1  1/3, 0 s\n"));
    assert_non_null(strstr(lines, "smdlm test: item 3  3/3, 0 s, ETA 0 s\n"));
    assert_non_null(strstr(lines, "a note\nsmdlm test: no count  0 s\n"));
    free(lines);
    char *tty = reports(PROGRESS_TTY, 0);
    /* each report rewrites the line; the note and the end clear it first */
    assert_non_null(strstr(tty, "\r\033[Ksmdlm test: item 1  1/3, 0 s\r\033[Ksmdlm test: item 2"));
    assert_non_null(strstr(tty, "\r\033[Ka note\n\r\033[Ksmdlm test: no count  0 s\r\033[K"));
    assert_null(strstr(tty, "0 s\n"));
    free(tty);
    char *limited = reports(PROGRESS_LINES, 3600); /* nothing is due within the hour */
    assert_string_equal(limited, "a note\n");
    free(limited);
    char *off = reports(PROGRESS_OFF, 0);
    assert_true(off == NULL || *off == 0);
    free(off);
}

/* One command: its output holds a line that starts with `want` and no \r; with quiet_flag
 * (unless NULL) no such line. */
static void expect_progress(const char *want, const char *quiet_flag, const char *fmt, ...) {
    char args[1500], *out;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int rc = tu_run(&out, "%s", args);
    const char *line = strstr(out, want);
    printf("  %.*s\n", line ? (int)strcspn(line, "\n") : 4, line ? line : "none");
    if (rc) printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(line);
    assert_null(strchr(out, '\r'));
    free(out);
    if (!quiet_flag) return;
    rc = tu_run(&out, "%s %s", args, quiet_flag);
    assert_int_equal(rc, 0);
    if (strstr(out, want)) printf("%s", out);
    for (const char *p = out; (p = strstr(p, want)); p++) /* only error-free -q runs: no line at all */
        fail_msg("%s printed '%.*s'", quiet_flag, (int)strcspn(p, "\n"), p);
    free(out);
}

static void test_commands_report(void **state) {
    setenv("SMDLM_PROGRESS_SECONDS", "0", 1);
    char docs[128];
    snprintf(docs, sizeof docs, "%s/docs", g_tmp);
    mkdir(docs, 0755);
    for (int i = 0; i < 12; i++) {
        char path[200];
        snprintf(path, sizeof path, "%s/doc%d.txt", docs, i);
        FILE *f = fopen(path, "w");
        fprintf(f, "the quick brown fox %d jumps over the lazy dog and runs far away again\n", i);
        fclose(f);
    }
    expect_progress("smdlm tokenizer train: counting: ", "-q", "tokenizer train --vocab 270 -o %s/tok %s", g_tmp, docs);
    expect_progress("smdlm data prepare: 0.0 MB read", "-q --force", "data prepare --tokenizer %s/byte-tokenizer -o %s/data "
                    "--block-len 16 --val-fraction 0.3 %s", FIXTURES_DIR, g_tmp, docs);
    const char *shape = "--hidden 16 --heads 2 --blocks 1 --cond-dim 8 --batch 2 --val-every 0 --samples 0 -t 1";
    expect_progress("smdlm train: step 1  loss", NULL, "train --data %s/data --out %s/run --steps 3 --ckpt-every 3 --log-every 1 %s",
                    g_tmp, g_tmp, shape);
    expect_progress("smdlm eval ppl: blocks  2/", "-q", "eval ppl -m %s/run/ckpt-00000003 --data %s/data --split train --batch 2",
                    g_tmp, g_tmp);
    expect_progress("smdlm generate: samples 1-2 of 2, step 1/4  2/8, ", "-q", "generate -m models/demo --len 32 --steps 4 -n 2 -o %s/samples.jsonl",
                    g_tmp);
    expect_progress("smdlm eval genppl: 1 samples scored", "-q", "eval genppl -m %s/tiny-causal --samples %s/samples.jsonl",
                    FIXTURES_DIR, g_tmp);
    expect_progress("smdlm eval mauve: featurized 1 texts", "-q", "eval mauve -m %s/tiny-causal --ref %s/samples.jsonl --samples "
                    "%s/samples.jsonl", FIXTURES_DIR, g_tmp, g_tmp);
    expect_progress("smdlm eval code: programs run  1/2, ", "-q", "eval code --canonical --limit 2 -j 2");
    expect_progress("smdlm eval sweep: demo sm steps 2 seed 0: 2 samples of 256 tokens  0/1, ", "-q", "eval sweep -e %s/tiny-causal -o %s/sw --steps 2 --seeds 0 -n 2 -b 2 "
                    "demo=models/demo", FIXTURES_DIR, g_tmp);
}

static int setup(void **state) { return tu_tmpdir_make(g_tmp, sizeof g_tmp, "progress"); }

static int teardown(void **state) { return tu_tmpdir_remove(g_tmp); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reporter_modes),
        cmocka_unit_test(test_commands_report),
    };
    return cmocka_run_group_tests_name("progress", tests, setup, teardown);
}
