/* trainloop.h — `smdlm train`: the loop around the training core (train.h) with data from
 * token shards (data.h), validation (dataset_loss.h), samples, JSON-lines logs and
 * checkpoints that lose nothing (checkpoint.h); --resume continues bit for bit.
 */
#ifndef SMDLM_TRAINLOOP_H
#define SMDLM_TRAINLOOP_H

#include "train/train_config.h"

/* Runs (or resumes) training; returns 0, or −1 with smdlm_last_error(), or the signal
 * number when SIGINT or SIGTERM stopped it: the update under way is finished, a checkpoint
 * written and its place printed (`smdlm train` then exits with 128 + the signal: 130, 143).
 * A second signal ends the process at once (a half-written checkpoint stays a temporary
 * that the next start removes). A signal ignored when training starts stays ignored. */
int train_run(const train_config *c);

#endif
