/* common.c — see common.h and model_flags.h. */
#include "common.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "model_flags.h"
#include "base/util.h"

int sm_flags_softmask(const cli_command *cmd, const sm_flags *f, smdlm_softmask *out) {
    *out = smdlm_softmask_default();
    if (f->config && smdlm_softmask_load(f->config, out)) return -1;
    int any_flag = cli_seen(cmd, "sm-scale") || cli_seen(cmd, "sm-centre") ||
                   cli_seen(cmd, "sm-steepness") || cli_seen(cmd, "sm-k");
    if (cli_seen(cmd, "sm-scale")) out->scale = f->scale;
    if (cli_seen(cmd, "sm-centre")) out->centre = f->centre;
    if (cli_seen(cmd, "sm-steepness")) out->steepness = f->steepness;
    if (cli_seen(cmd, "sm-k")) out->k = f->k;
    if (any_flag) out->mode = SMDLM_SM_ON;
    if (f->off) out->mode = SMDLM_SM_OFF;
    return 0;
}

int sm_flags_resolve(const cli_command *cmd, const sm_flags *f, const model_dir *md,
                     sm_params *out) {
    smdlm_softmask sm;
    return sm_flags_softmask(cmd, f, &sm) ? -1 : api_softmask_resolve(&sm, &md->sm, out);
}

int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int cli_fail(const char *cmd) {
    fprintf(stderr, "smdlm %s: %s\n", cmd, smdlm_last_error());
    return 1;
}

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "smdlm %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_run_gnuplot(const char *script) {
    char command[1100];
    snprintf(command, sizeof command, "gnuplot '%s' 2>&1", script);
    int st = system(command);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return SM_ERR("gnuplot failed on %s (exit %d): is gnuplot installed (apt-get install "
                      "gnuplot-nox)?", script, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

#ifndef SMDLM_DEFAULT_MODEL
#define SMDLM_DEFAULT_MODEL "models/default"
#endif

const char *cli_default_model(void) {
    const char *env = getenv("SMDLM_MODEL");
    const char *dir = env && *env ? env : SMDLM_DEFAULT_MODEL;
    char *cfg = sm_path_join(dir, "config.json");
    int ok = sm_file_exists(cfg);
    free(cfg);
    if (!ok) {
        SM_ERR("no -m given and %s '%s' holds no config.json (pass -m DIR)",
               env && *env ? "$SMDLM_MODEL" : "the default model", dir);
        return NULL;
    }
    return dir;
}


#ifndef SMDLM_SOURCE_DATADIR
#define SMDLM_SOURCE_DATADIR "data"
#endif

const char *cli_data_dir(void) {
    const char *env = getenv("SMDLM_DATA_DIR");
    if (env && *env) return env;
#ifdef SMDLM_DATADIR
    return SMDLM_DATADIR;
#else
    return SMDLM_SOURCE_DATADIR;
#endif
}

char *cli_data_path(const char *rel) {
    const char *dirs[] = {cli_data_dir(), SMDLM_SOURCE_DATADIR, "data"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char *path = sm_path_join(dirs[i], rel);
        if (sm_file_exists(path)) return path;
        free(path);
    }
    return sm_path_join(dirs[0], rel);
}

static volatile sig_atomic_t g_stop_signal;

static void on_stop_signal(int sig) {
    if (g_stop_signal) { /* the second: at once, as without a handler */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop_signal = sig;
}

void cli_catch_stop_signals(void) {
    static const int sigs[2] = {SIGINT, SIGTERM};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 2; i++) {
        struct sigaction old;
        sigaction(sigs[i], NULL, &old);
        if (old.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
    }
}

int cli_stop_signal(void) { return g_stop_signal; }
