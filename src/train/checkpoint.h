/* checkpoint.h — the checkpoints of `smdlm train`, written so that a crash or a full disk
 * never loses the previous ones.
 *
 * A checkpoint is OUT/ckpt-NNNNNNNN/: a model directory (config.json, model.safetensors with
 * the EMA weights and the raw soft-masking scalars, transparency_config.json, tokenizer
 * files) plus train_state.safetensors (raw weights, AdamW moments, step, RNG state, data
 * position) and the marker COMPLETE, written last: a manifest of every other file with its
 * size and CRC-32 (formats/manifest.h), checked whenever the directory is loaded. It is
 * assembled in OUT/.tmp-ckpt-NNNNNNNN, every file fsync'ed, then renamed; resuming takes the
 * newest checkpoint that loads and verifies, and falls back to older ones. Deleting one
 * (pruning) renames it to OUT/.old-ckpt-NNNNNNNN first and removes its marker before any
 * other file, so no directory with a COMPLETE marker ever lacks a file it had.
 */
#ifndef SMDLM_CHECKPOINT_H
#define SMDLM_CHECKPOINT_H

#include <stddef.h>

#include "base/rng.h"
#include "train/optim.h"
#include "train/train.h"
#include "train/train_config.h"

/* Where a run stands, besides its weights and optimizer moments. */
typedef struct {
    long step;   /* updates done */
    long epoch;
    size_t pos;  /* next index into the epoch's block order */
    sm_rng rng;  /* noise, masks and soft-masking coins */
    long tokens; /* training tokens so far, over every process */
} train_progress;

/* Writes the checkpoint of step at->step into c->out (with the tokenizer files of tok_dir
 * unless NULL; transparency_config.json when c->sm_prob > 0), then removes all but the
 * newest c->keep_last and the multiples of c->milestone_every. */
int checkpoint_save(const train_config *c, const trainer *tr, const adamw *opt,
                    const train_progress *at, const char *tok_dir);

/* Removes what an interrupted run left in out: .tmp-ckpt-* (a checkpoint being written),
 * .old-ckpt-* (one being deleted) and *.tmp.* files (atomic writes). Returns their number. */
int checkpoint_remove_stale(const char *out);
/* Removes every checkpoint in out (each renamed away before its files are deleted, as
 * pruning does). Returns their number. */
int checkpoint_remove_all(const char *out);

/* Restores tr, opt (both sized already) and at from the newest checkpoint in c->out that
 * loads, skipping damaged ones (a data position beyond nblocks counts as damage). Returns 0,
 * 1 when c->out holds none (a fresh start), −1 when none loads. */
int checkpoint_resume(const train_config *c, trainer *tr, adamw *opt, train_progress *at,
                      size_t nblocks);

#endif
