/* train_config.h — the settings of `smdlm train`: defaults, the --config JSON file (keys: the
 * flags' names with '-' → '_', n_heads and n_blocks for --heads and --blocks; the command line
 * overrides it; an unknown key is an error), the checks train_run makes, and the settings a
 * run directory records (run.json, see rundir.h) with what a resumed run may change. */
#ifndef SMDLM_TRAIN_CONFIG_H
#define SMDLM_TRAIN_CONFIG_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/util.h"
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
    float sm_scale_lr, sm_eps; /* raw_scale's learning rate; Adam's ε of the soft-masking scalars */
    int warmup;
    sched_kind schedule;
    float min_lr_ratio;
    long steps;
    long tokens; /* when > 0: the budget in training tokens, overriding steps */
    /* soft-masking (docs/DESIGN.md §3) */
    int sm_only; /* learn the three soft-masking scalars alone on the frozen --init model */
    float sm_prob;
    int sm_k;
    float sm_scale, sm_centre, sm_steepness;
    /* cadence */
    int log_every, val_every, val_batches, ckpt_every, keep_last, milestone_every;
    int samples; /* generated at each validation (0: none) */
    uint64_t seed;
    int threads;
    const char *code_version; /* recorded in run.json: smdlm's version and commit */
    int resume;
    int force;    /* a new run may replace the previous run in a non-empty --out */
    int override; /* a resumed run may change the optimisation settings */
    int allow_mismatch; /* a model tokenizer other than the data's: a warning, not an error */
    int quiet;
} train_config;

void train_config_default(train_config *c);
int train_config_validate(const train_config *c);
/* Applies the keys present in a JSON config file; strings are copied for the process's life.
 * Keys that are no setting are errors. */
int train_config_load_json(train_config *c, const char *path);
/* The same for a parsed object (what: its name in errors). */
int train_config_from_json(train_config *c, const cJSON *obj, const char *what);
/* Every recorded setting (not out, resume, force, override, allow_mismatch, quiet) as a JSON object. */
cJSON *train_config_to_json(const train_config *c);
/* Compares the settings a run recorded with those of its resumption. Each difference is one
 * line in *report ("  lr: 0.001 → 0.0003"); changes of the budget, cadence and threads are
 * allowed, of the optimisation (batch, learning rates, schedule, EMA, soft-masking
 * probability) only with now->override, of the model, data, objective and seed never.
 * Returns the number of refused differences; *changed counts all of them. */
int train_config_diff(const train_config *rec, const train_config *now, sm_buf *report, int *changed);
/* The training objective by name: "mdlm" (causal = 0) or "ar" (causal = 1). */
int train_objective_parse(const char *name, int *causal);

#endif
