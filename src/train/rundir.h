/* rundir.h — the run directory of `smdlm train` (--out) as the run's own: created with its
 * parents, locked for the whole run, its settings recorded so that a resumption needs only
 * --out.
 *
 *   OUT/.lock       flock'ed (exclusive) by the process that trains, holding its pid; a
 *                   second process on the same directory is refused while the first runs
 *   OUT/run.json    {"format": "smdlm-run", "code_version", "data_fingerprint", "config":
 *                   every setting (train_config_to_json; data and init as absolute paths)}
 *
 * Only process 0 of a data-parallel run manages the directory.
 */
#ifndef SMDLM_RUNDIR_H
#define SMDLM_RUNDIR_H

#include "base/util.h"
#include "train/train_config.h"

typedef struct {
    int lock_fd; /* −1: not held */
} run_dir;

/* Before anything else of a run: creates c->out and its parents, takes the lock, removes
 * stale temporaries (checkpoint_remove_stale). A new run (no c->resume) in a directory that
 * holds anything is refused unless c->force, which removes the previous run's checkpoints,
 * train_log.jsonl and run.json first. */
int run_dir_open(run_dir *rd, const train_config *c);
/* Releases the lock (rd may be one that run_dir_open never opened: lock_fd −1). */
void run_dir_close(run_dir *rd);

/* The settings OUT/run.json recorded, applied to c (before the command line's). Returns 0,
 * 1 when OUT holds no run.json, −1 on a damaged one. */
int run_dir_load_settings(train_config *c, const char *out);

/* Records c in OUT/run.json (atomically). Resuming (c->resume) compares c first with the
 * recorded settings and data fingerprint (train_config_diff): a refused difference is an
 * error that lists every difference; allowed ones are listed in *changes (malloc'ed, NULL
 * when none) for the log. */
int run_dir_record(const train_config *c, char **changes);

/* A resumption at `step` drops the lines of OUT/train_log.jsonl that a lost stretch of the
 * previous run wrote (a "step" above it) and any line that is not a JSON object (one cut by a
 * kill), so the log reads as one run (atomically rewritten; no log: nothing to do). */
int run_dir_truncate_log(const char *out, long step);

#endif
