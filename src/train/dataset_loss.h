/* dataset_loss.h — the loss of a model over token shards, in nats per token: for an MDLM
 * the NELBO (docs/DESIGN.md §2.4; with the two-pass soft-masking denoiser when sm), whose
 * exponential bounds the perplexity from above; for a causal model its exact next-token
 * loss. Used by `smdlm eval ppl` and by the validation during training. */
#ifndef SMDLM_DATASET_LOSS_H
#define SMDLM_DATASET_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "base/progress.h"
#include "train/data.h"
#include "train/train.h"

/* Mean loss per token (nats) over the first max_blocks blocks of `data` (0: all, rounded
 * down to whole batches of the trainer's B): the NELBO with t and masks drawn from `seed`
 * (two-pass soft-masking when sm), or the causal model's exact next-token loss. Each batch
 * is reported to prog (NULL: none). */
int dataset_loss(trainer *tr, const shard_set *data, size_t max_blocks, uint64_t seed, int sm,
                 progress *prog, double *nats, long *tokens);

#endif
