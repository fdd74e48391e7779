/* common.h — pieces shared by the subcommands: soft-masking flags, threads, errors. Only the
 * public API (include/smdlm.h) is seen here; model_flags.h adds what the commands that work
 * on model directories directly need. */
#ifndef SMDLM_CLI_COMMON_H
#define SMDLM_CLI_COMMON_H

#include "args.h"
#include "smdlm.h"

typedef struct {
    const char *config;
    float scale, centre, steepness;
    int k;
    int off;
} sm_flags;

#define SM_FLAG_OPTS(f)                                                                         \
    {"sm-config", 0, OPT_STR, &(f).config, 0, 0, "FILE",                                      \
     "soft-masking values (transparency_config.json format)"},                                \
    {"sm-scale", 0, OPT_FLOAT, &(f).scale, 0, 1, "X", "soft-masking scale in [0, 1]"},        \
    {"sm-centre", 0, OPT_FLOAT, &(f).centre, -1e6, 0, "X", "soft-masking centre (≤ 0)"},      \
    {"sm-steepness", 0, OPT_FLOAT, &(f).steepness, 1e-6, 1e6, "X", "soft-masking steepness"}, \
    {"sm-k", 0, OPT_INT, &(f).k, 1, SMDLM_SM_MAX_K, "K", "top-k tokens mixed into a masked input"}, \
    {"no-sm", 0, OPT_FLAG, &(f).off, 0, 0, "", "switch soft-masking off"}

/* The soft-masking the flags ask for, over the model directory's transparency_config.json:
 * --sm-config's values, then single flags; any of them switches it on, --no-sm off. */
int sm_flags_softmask(const cli_command *cmd, const sm_flags *f, smdlm_softmask *out);

#define THREADS_OPT(var)                                                                  \
    {"threads", 't', OPT_INT, &(var), 1, 1024, "N", "threads (default: all cores)"}
int default_threads(void);

/* The model `generate` uses without -m: $SMDLM_MODEL, else the bundled default
 * (SMDLM_DEFAULT_MODEL, set at build time to the source tree's models/ directory). NULL with
 * an error when neither names a model directory. */
const char *cli_default_model(void);

/* The data file REL (e.g. "codebench/HumanEval.jsonl.gz") from the first data directory
 * that holds it: $SMDLM_DATA_DIR, the installed one (SMDLM_DATADIR, PREFIX/share/smdlm, in
 * the binary `make install` installs), the source tree's data/ (SMDLM_SOURCE_DATADIR), data/
 * under the current directory. When none holds it: the path in the first of those (the
 * error will name it). The caller frees the result. */
char *cli_data_path(const char *rel);
/* The data directory cli_data_path tries first ($SMDLM_DATA_DIR or the installed one), for
 * `smdlm --version`. */
const char *cli_data_dir(void);

/* Runs gnuplot on a script file; a clear error when gnuplot is missing or fails. */
int cli_run_gnuplot(const char *script);

/* Stopping on SIGINT/SIGTERM: after cli_catch_stop_signals(), the first of them only sets
 * cli_stop_signal() (the command finishes what it can, keeps what is done and exits with
 * 128 + the signal); a second ends the process at once. A signal ignored at the call stays
 * ignored. */
void cli_catch_stop_signals(void);
int cli_stop_signal(void); /* the first SIGINT/SIGTERM received since, else 0 */

/* Reports smdlm_last_error() as "smdlm CMD: ..." and returns exit status 1. */
int cli_fail(const char *cmd);
/* Reports a message of the front end itself the same way. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
