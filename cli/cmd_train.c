/* cmd_train.c — `smdlm train`: flags and/or a JSON config (flags win) → train_run. With
 * --resume, the settings the run recorded (OUT/run.json) come first: --out alone resumes. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "train/dist.h"
#include "common.h"
#include "train/rundir.h"
#include "train/trainloop.h"
#include "base/util.h"

/* The value of flag NAME (--NAME V, --NAME=V or -S V) on the command line, or NULL. */
static const char *scan_flag(int argc, char **argv, const char *name, const char *short_name) {
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && (!strcmp(argv[i], name) || (short_name && !strcmp(argv[i], short_name))))
            return argv[i + 1];
        if (!strncmp(argv[i], name, n) && argv[i][n] == '=') return argv[i] + n + 1;
    }
    return NULL;
}

int cmd_train(int argc, char **argv) {
    train_config c;
    train_config_default(&c);
    c.threads = default_threads();
    c.code_version = cli_version();
    const char *objective = NULL, *schedule = NULL;
    /* before the flags, which override them: the run's recorded settings (--resume), then
       the config file */
    const char *config = scan_flag(argc, argv, "--config", NULL), *out = scan_flag(argc, argv, "--out", "-o");
    if (config) {
        train_config from_file;
        train_config_default(&from_file);
        if (train_config_load_json(&from_file, config)) return cli_fail("train");
        if (!out) out = from_file.out;
    }
    int resume = 0;
    for (int i = 1; i < argc; i++) resume |= !strcmp(argv[i], "--resume");
    if (resume && out && run_dir_load_settings(&c, out) < 0) return cli_fail("train");
    if (config && train_config_load_json(&c, config)) return cli_fail("train");
    int steps = (int)(c.steps > 2000000000 ? 2000000000 : c.steps);
    uint64_t tokens = (uint64_t)c.tokens;
    cli_opt opts[] = {
        {"config", 0, OPT_STR, &config, 0, 0, "FILE", "JSON config (keys as the flags, '-' → '_')"},
        {"data", 'd', OPT_STR, &c.data, 0, 0, "DIR", "token shards from `smdlm data prepare` (required)"},
        {"out", 'o', OPT_STR, &c.out, 0, 0, "DIR", "checkpoints and train_log.jsonl (required)"},
        {"init", 0, OPT_STR, &c.init, 0, 0, "DIR", "continue pretraining this model directory"},
        {"hidden", 0, OPT_INT, &c.hidden, 2, 65536, "D", "new model: hidden size (default 128)"},
        {"heads", 0, OPT_INT, &c.n_heads, 1, 4096, "H", "new model: attention heads (default 4)"},
        {"blocks", 0, OPT_INT, &c.n_blocks, 1, 1024, "L", "new model: blocks (default 4)"},
        {"cond-dim", 0, OPT_INT, &c.cond_dim, 1, 65536, "C", "new model: conditioning size (default 64)"},
        {"objective", 0, OPT_STR, &objective, 0, 0, "NAME", "mdlm (default) or ar (causal next-token)"},
        {"batch", 'b', OPT_INT, &c.batch, 1, 65536, "B", "sequences per micro-batch (default 16)"},
        {"accum", 0, OPT_INT, &c.accum, 1, 65536, "N", "micro-batches per update (default 1)"},
        {"seq-len", 0, OPT_INT, &c.seq_len, 2, 1 << 20, "T", "tokens per sequence (default: the data's blocks)"},
        {"steps", 0, OPT_INT, &steps, 1, 2000000000, "N", "updates (default 1000)"},
        {"tokens", 0, OPT_U64, &tokens, 0, 0, "N", "budget in training tokens instead of --steps"},
        {"lr", 0, OPT_FLOAT, &c.lr, 1e-9, 10, "X", "backbone learning rate (default 3e-4)"},
        {"sm-lr", 0, OPT_FLOAT, &c.sm_lr, 0, 10, "X", "soft-masking centre's and steepness's learning rate (default 1e-2)"},
        {"sm-scale-lr", 0, OPT_FLOAT, &c.sm_scale_lr, 0, 10, "X", "soft-masking scale's learning rate (default 5e-2; IBM: 1e-2 = --sm-lr)"},
        {"sm-eps", 0, OPT_FLOAT, &c.sm_eps, 1e-30, 1, "X", "Adam's epsilon of the soft-masking scalars (default 1e-16; IBM: 1e-8)"},
        {"weight-decay", 0, OPT_FLOAT, &c.weight_decay, 0, 10, "X", "backbone weight decay (default 0)"},
        {"warmup", 0, OPT_INT, &c.warmup, 0, 2000000000, "N", "linear warm-up updates (default 0)"},
        {"schedule", 0, OPT_STR, &schedule, 0, 0, "NAME", "constant (default) or cosine"},
        {"min-lr-ratio", 0, OPT_FLOAT, &c.min_lr_ratio, 0, 1, "X", "cosine floor (default 0)"},
        {"clip", 0, OPT_FLOAT, &c.clip, 0, 1e9, "X", "global grad-norm clip, 0 = off (default 1)"},
        {"ema", 0, OPT_FLOAT, &c.ema, 0, 0.999999, "X", "EMA decay of the weights, 0 = off (default 0.9999)"},
        {"sm-prob", 0, OPT_FLOAT, &c.sm_prob, 0, 1, "P", "share of two-pass soft-masking steps (default 0; 1 with --sm-only)"},
        {"sm-only", 0, OPT_FLAG, &c.sm_only, 0, 0, "", "learn only the soft-masking scalars (k fixed) on the frozen --init MDLM model"},
        {"sm-k", 0, OPT_INT, &c.sm_k, 1, SMDLM_SM_MAX_K, "K", "soft-masking top-k (default 3)"},
        {"sm-scale", 0, OPT_FLOAT, &c.sm_scale, 0, 1, "X", "initial scale (default 0)"},
        {"sm-centre", 0, OPT_FLOAT, &c.sm_centre, -1e6, 0, "X", "initial centre (default -0.75)"},
        {"sm-steepness", 0, OPT_FLOAT, &c.sm_steepness, 1e-6, 1e6, "X", "initial steepness (default 6.67)"},
        {"log-every", 0, OPT_INT, &c.log_every, 1, 2000000000, "N", "log every N updates (default 10)"},
        {"val-every", 0, OPT_INT, &c.val_every, 0, 2000000000, "N", "validate every N updates, 0 = never (default 200)"},
        {"val-batches", 0, OPT_INT, &c.val_batches, 1, 2000000000, "N", "validation batches (default 8)"},
        {"ckpt-every", 0, OPT_INT, &c.ckpt_every, 0, 2000000000, "N", "checkpoint every N updates (default 500)"},
        {"keep-last", 0, OPT_INT, &c.keep_last, 1, 1000000, "N", "checkpoints kept (default 3)"},
        {"milestone-every", 0, OPT_INT, &c.milestone_every, 0, 2000000000, "N", "also keep every N-th step's checkpoint"},
        {"samples", 0, OPT_INT, &c.samples, 0, 64, "N", "samples logged at each validation (default 1)"},
        {"seed", 0, OPT_U64, &c.seed, 0, 0, "N", "seed of data order, noise and coins (default 1)"},
        {"resume", 0, OPT_FLAG, &c.resume, 0, 0, "", "continue the run in --out (its settings from OUT/run.json)"},
        {"override", 0, OPT_FLAG, &c.override, 0, 0, "", "with --resume: allow other optimisation settings"},
        {"force", 0, OPT_FLAG, &c.force, 0, 0, "", "start a new run in a non-empty --out, replacing its run"},
        {"allow-mismatch", 0, OPT_FLAG, &c.allow_mismatch, 0, 0, "", "go on (with a warning) when the model's tokenizer is not the data's"},
        {"quiet", 'q', OPT_FLAG, &c.quiet, 0, 0, "", "no progress line"},
        THREADS_OPT(c.threads),
        {0},
    };
    cli_command cmd = {"train", "Trains an MDLM (optionally with soft-masking) or its causal baseline.",
                       "--data DIR --out DIR [--init DIR | --hidden D ...] [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    c.steps = steps;
    if (c.sm_only && !cli_seen(&cmd, "sm-prob")) c.sm_prob = 1.0f;
    /* a budget on the command line replaces a recorded one of the other kind */
    c.tokens = cli_seen(&cmd, "steps") && !cli_seen(&cmd, "tokens") ? 0 : (long)tokens;
    if ((objective && train_objective_parse(objective, &c.causal)) ||
        (schedule && sched_kind_parse(schedule, &c.schedule)))
        return cli_fail("train");
    if (dist_init(&argc, &argv)) return cli_fail("train");
    if (dist_size() > 1 && !c.quiet && dist_rank() == 0)
        fprintf(stderr, "smdlm train: %d processes, global batch %d × %d\n", dist_size(), dist_size(), c.batch);
    rc = train_run(&c);
    if (rc < 0) {
        cli_fail("train");
        dist_abort(1); /* the other processes would wait for this one forever */
    }
    dist_finalize();
    return rc > 0 ? 128 + rc : 0; /* stopped by SIGINT (130) or SIGTERM (143), checkpoint written */
}
