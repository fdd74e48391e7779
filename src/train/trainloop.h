/* trainloop.h — `smdlm train`: the loop around the training core (train.h) with data from
 * token shards (data.h), validation, JSON-lines logs, and checkpoints that lose nothing.
 *
 * A checkpoint is OUT/ckpt-NNNNNNNN/: a model directory (config.json, model.safetensors with
 * the EMA weights and the raw soft-masking scalars, transparency_config.json, tokenizer
 * files) plus train_state.safetensors (raw weights, AdamW moments, step, RNG state, data
 * position) and the marker COMPLETE, written last. It is assembled under a temporary name,
 * every file fsync'ed, then renamed; --resume takes the newest complete checkpoint that
 * loads and falls back to older ones.
 */
#ifndef SMDLM_TRAINLOOP_H
#define SMDLM_TRAINLOOP_H

#include <stdint.h>

#include "train/data.h"
#include "train/optim.h"
#include "train/train.h"

typedef struct {
    /* model: a new one of this shape, or --init DIR */
    const char *init;
    int hidden, n_heads, n_blocks, cond_dim;
    int causal; /* objective "ar" */
    /* data and output */
    const char *data, *out;
    int batch, accum, seq_len; /* seq_len 0: the data's block length */
    /* optimisation */
    float lr, sm_lr, weight_decay, clip, ema;
    int warmup;
    sched_kind schedule;
    float min_lr_ratio;
    long steps;
    long tokens; /* when > 0: the budget in training tokens, overriding steps */
    /* soft-masking (DESIGN §3) */
    float sm_prob;
    int sm_k;
    float sm_scale, sm_centre, sm_steepness;
    /* cadence */
    int log_every, val_every, val_batches, ckpt_every, keep_last, milestone_every;
    int samples; /* generated at each validation (0: none) */
    uint64_t seed;
    int threads;
    int resume;
    int quiet;
} train_config;

void train_config_default(train_config *c);
int train_config_validate(const train_config *c);
/* Applies the keys of a JSON config file (same names as the flags, '-' → '_'). */
int train_config_load_json(train_config *c, const char *path);

/* Mean loss per token (nats) over the first max_blocks blocks of `data` (0: all, rounded
 * down to whole batches of the trainer's B): the NELBO with t and masks drawn from `seed`
 * (two-pass soft-masking when sm), or the causal model's exact next-token loss. */
int eval_loss(trainer *tr, const shard_set *data, size_t max_blocks, uint64_t seed, int sm,
              double *nats, long *tokens);

/* Runs (or resumes) training; returns 0, or −1 with smdlm_last_error(). */
int train_run(const train_config *c);

#endif
