/* test_signals.c — the smdlm program stopped by SIGTERM / SIGINT: `generate` keeps the samples
 * it finished in -o (complete JSON lines) and exits 143; `eval code` kills its sandboxed
 * program, removes the run's directory, keeps the records of the finished programs and exits
 * 130 / 143; killed by SIGKILL, it leaves neither sandbox processes nor directories. Every wait polls with a generous deadline (the machine may be loaded). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "base/util.h"

static char g_tmp[64];

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts $SMDLM with argv (NULL-terminated) in a child whose SIGINT/SIGTERM are the defaults,
 * TMPDIR set to tmpdir. */
static pid_t start_smdlm(const char *const *argv, const char *tmpdir) {
    const char *bin = getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm";
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        setenv("TMPDIR", tmpdir, 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* The exit status of pid, waited for at most `seconds` (then killed: -1). */
static int wait_exit(pid_t pid, double seconds) {
    const double deadline = sm_time_sec() + seconds;
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (sm_time_sec() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ms(20);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

/* Complete lines of a file, each a JSON object with `key`; -1 if one is not (or the file ends
 * in a partial line). */
static int complete_json_lines(const char *path, const char *key) {
    size_t len;
    char *text;
    if (sm_read_file(path, 1 << 24, &text, &len)) return 0;
    int n = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl) {
            n = -1; /* a partial last line */
            break;
        }
        *nl = 0;
        cJSON *j = cJSON_Parse(line);
        int ok = j && cJSON_GetObjectItem(j, key);
        cJSON_Delete(j);
        if (!ok) {
            n = -1;
            break;
        }
        n++;
        line = nl + 1;
    }
    free(text);
    return n;
}

static void test_generate_sigterm_keeps_finished_samples(void **state) {
    (void)state;
    char out[128];
    snprintf(out, sizeof out, "%s/gen.jsonl", g_tmp);
    const char *argv[] = {"smdlm", "generate", "-m", "models/default", "-n", "8", "--len", "128",
                          "--steps", "256", "--seed", "3", "-t", "1", "-q", "-o", out, NULL};
    pid_t pid = start_smdlm(argv, g_tmp);
    /* the first batch written (a complete line), or the program gone */
    const double deadline = sm_time_sec() + 300.0;
    int lines = 0, st;
    while ((lines = complete_json_lines(out, "text")) <= 0 && sm_time_sec() < deadline &&
           waitpid(pid, &st, WNOHANG) == 0)
        sleep_ms(50);
    assert_true(lines > 0);
    kill(pid, SIGTERM);
    assert_int_equal(wait_exit(pid, 120.0), 143);
    lines = complete_json_lines(out, "text");
    printf("  %d of 8 samples kept\n", lines);
    assert_true(lines >= 1 && lines < 8);
}

/* Live (not zombie) processes whose parent is `parent` (when > 0) and whose process group is
 * `group` (when > 0), from /proc: their number, the first `cap` pids in pids. */
static int live_processes(pid_t parent, pid_t group, pid_t *pids, int cap) {
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t r = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[r] = 0;
        const char *close_paren = strrchr(buf, ')'); /* after the command name */
        char state;
        int ppid, pgid;
        if (!close_paren || sscanf(close_paren + 2, "%c %d %d", &state, &ppid, &pgid) != 3 ||
            state == 'Z' || (parent > 0 && ppid != parent) || (group > 0 && pgid != group))
            continue;
        if (n < cap) pids[n] = atoi(e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static int dir_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* `eval code` running a sleeping program, stopped by sig: its exit status is want_exit, and
 * neither the sandbox's processes nor a directory of the run are left. SIGKILL gives smdlm
 * no chance to clean up: the keeper and the interpreter die with their parents
 * (PR_SET_PDEATHSIG) and the run's files lived in its own mount namespace. */
static void stop_eval_code(int sig, int want_exit) {
    char samples[128], records[128], sbx_tmp[128];
    snprintf(samples, sizeof samples, "%s/samples-%d.jsonl", g_tmp, sig);
    snprintf(records, sizeof records, "%s/records-%d.jsonl", g_tmp, sig);
    snprintf(sbx_tmp, sizeof sbx_tmp, "%s/sbx-%d", g_tmp, sig);
    /* the sandbox's unprivileged uid passes through both (mkdtemp made g_tmp 0700) */
    assert_int_equal(chmod(g_tmp, 0711), 0);
    assert_int_equal(mkdir(sbx_tmp, 0711), 0);
    assert_int_equal(chmod(sbx_tmp, 0711), 0); /* whatever the umask */
    /* a quick program first (it finishes: its record is kept), then one that sleeps */
    const char *text = "{\"task_id\": \"HumanEval/1\", \"completion\": \"    return []\\n\"}\n"
                       "{\"task_id\": \"HumanEval/0\", \"completion\": \"    import time; time.sleep(60)\\n\"}\n";
    assert_int_equal(sm_write_file_atomic(samples, text, strlen(text)), 0);
    const char *argv[] = {"smdlm", "eval", "code", "-s", samples, "-j", "1", "--timeout", "300",
                          "--records", records, "-q", NULL};
    pid_t pid = start_smdlm(argv, sbx_tmp);
    /* the sleeping program running: a keeper (child of smdlm) with a child of its own, after the
     * quick one's keeper is gone */
    const double deadline = sm_time_sec() + 120.0;
    pid_t keeper = 0, interpreter = 0;
    int st;
    for (;;) {
        assert_true(sm_time_sec() < deadline);
        assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
        pid_t k[4], c[4];
        if (live_processes(pid, 0, k, 4) == 1 && live_processes(k[0], 0, c, 4) == 1) {
            /* the same run 1.5 s later: the sleeping one (the quick one takes milliseconds) */
            if (keeper == k[0] && interpreter == c[0]) break;
            keeper = k[0];
            interpreter = c[0];
            sleep_ms(1500);
            continue;
        }
        keeper = interpreter = 0;
        sleep_ms(20);
    }
    kill(pid, sig);
    assert_int_equal(wait_exit(pid, 60.0), want_exit);
    /* the sandbox's process group (keeper, interpreter) is gone */
    pid_t left[4];
    const double gone_by = sm_time_sec() + 30.0;
    while (live_processes(0, keeper, left, 4) && sm_time_sec() < gone_by) sleep_ms(20);
    assert_int_equal(live_processes(0, keeper, left, 4), 0);
    assert_int_equal(live_processes(keeper, 0, left, 4), 0); /* the interpreter, by its parent */
    /* no /tmp/smdlm-sbx-* left (TMPDIR was sbx_tmp) */
    assert_int_equal(dir_entries(sbx_tmp), 0);
    /* the finished program's record, not the stopped one's */
    if (sig != SIGKILL) assert_int_equal(complete_json_lines(records, "task_id"), 1);
}

static void test_eval_code_sigint_kills_sandbox(void **state) {
    (void)state;
    stop_eval_code(SIGINT, 130);
}

static void test_eval_code_sigterm_kills_sandbox(void **state) {
    (void)state;
    stop_eval_code(SIGTERM, 143);
}

static void test_eval_code_sigkill_leaves_nothing(void **state) {
    (void)state;
    stop_eval_code(SIGKILL, 1000 + SIGKILL);
}

static int setup(void **state) {
    (void)state;
    return tu_tmpdir_make(g_tmp, sizeof g_tmp, "signals");
}
static int teardown(void **state) {
    (void)state;
    return tu_tmpdir_remove(g_tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_sigterm_keeps_finished_samples),
        cmocka_unit_test(test_eval_code_sigint_kills_sandbox),
        cmocka_unit_test(test_eval_code_sigterm_kills_sandbox),
        cmocka_unit_test(test_eval_code_sigkill_leaves_nothing),
    };
    return cmocka_run_group_tests_name("signals", tests, setup, teardown);
}
