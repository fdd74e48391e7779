/* trainloop.h — `smdlm train`: the loop around the training core (train.h) with data from
 * token shards (data.h), validation (dataset_loss.h), samples, JSON-lines logs and
 * checkpoints that lose nothing (checkpoint.h); --resume continues bit for bit.
 */
#ifndef SMDLM_TRAINLOOP_H
#define SMDLM_TRAINLOOP_H

#include "train/train_config.h"

/* Runs (or resumes) training; returns 0, or −1 with smdlm_last_error(). */
int train_run(const train_config *c);

#endif
