/* common.c — see common.h. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

int sm_flags_resolve(const cli_command *cmd, const sm_flags *f, const model_dir *md,
                     sm_params *out) {
    *out = md->sm; /* defaults with enabled = 0 unless the directory had a file */
    if (f->config) {
        if (sm_params_load_json(out, f->config)) return -1;
    }
    int any_flag = cli_seen(cmd, "sm-scale") || cli_seen(cmd, "sm-centre") ||
                   cli_seen(cmd, "sm-steepness") || cli_seen(cmd, "sm-k");
    if (cli_seen(cmd, "sm-scale")) out->scale = f->scale;
    if (cli_seen(cmd, "sm-centre")) out->centre = f->centre;
    if (cli_seen(cmd, "sm-steepness")) out->steepness = f->steepness;
    if (cli_seen(cmd, "sm-k")) out->k = f->k;
    if (any_flag) out->enabled = 1;
    if (f->off) out->enabled = 0;
    return out->enabled ? sm_params_validate(out) : 0;
}

int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int cli_fail(const char *cmd) {
    fprintf(stderr, "smdlm %s: %s\n", cmd, smdlm_last_error());
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

