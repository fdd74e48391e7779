/* train_config.h — the settings of `smdlm train`: defaults, the --config JSON file (keys: the
 * flags' names with '-' → '_', n_heads and n_blocks for --heads and --blocks; the command line
 * overrides it) and the checks train_run makes. */
#ifndef SMDLM_TRAIN_CONFIG_H
#define SMDLM_TRAIN_CONFIG_H

#include <stdint.h>

#include "train/optim.h"

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
    /* soft-masking (docs/DESIGN.md §3) */
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
/* Applies the keys present in a JSON config file; strings are copied for the process's life. */
int train_config_load_json(train_config *c, const char *path);
/* The training objective by name: "mdlm" (causal = 0) or "ar" (causal = 1). */
int train_objective_parse(const char *name, int *causal);

#endif
