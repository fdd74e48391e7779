/* trainloop.c — see trainloop.h. */
#include "train/trainloop.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "base/rng.h"
#include "base/progress.h"
#include "base/stop_signal.h"
#include "base/util.h"
#include "compute/kernels.h"
#include "generate/sampler.h"
#include "models/lm_dit.h"
#include "models/model.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/dataset_loss.h"
#include "train/dist.h"
#include "train/rundir.h"
#include "train/train.h"
#include "train/weight_init.h"

/* ---- run state ---------------------------------------------------------------------------- */

/* With soft-masking on, a scale whose logit (raw_scale) moved less than SM_STALL_MOVE in the
 * first SM_STALL_UPDATES updates of a run gets a warning: up or down by less than a factor
 * e^SM_STALL_MOVE in scale/(1 − scale) (docs/TRAINING.md, "The soft-masking scale"). */
enum { SM_STALL_UPDATES = 200 };
#define SM_STALL_MOVE 0.5

typedef struct {
    const train_config *c;
    trainer tr;
    adamw opt;
    shard_set train, val;
    char *tok_dir; /* tokenizer files copied into checkpoints (NULL if none) */
    smdlm_tokenizer *tok;
    uint32_t *perm;    /* block order of the current epoch */
    train_progress at; /* step, epoch, position in perm, RNG, tokens */
    int32_t *x0, *xt;
    float *t;
    FILE *log;
    double t_start;
    progress prog;  /* stderr: where the run stands (-q: nothing) */
    long step_start;       /* the step this process started (or resumed) at */
    float sm_raw_start;    /* raw_scale then */
    int stopped_by; /* the signal that stopped the loop, else 0 */
} run;

static void shuffle_epoch(run *r) {
    sm_rng g;
    rng_seed(&g, r->c->seed * 1000003u + (uint64_t)r->at.epoch);
    size_t n = r->train.nblocks;
    for (size_t i = 0; i < n; i++) r->perm[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) { /* Fisher–Yates */
        size_t j = (size_t)(rng_next(&g) % (i + 1));
        uint32_t x = r->perm[i];
        r->perm[i] = r->perm[j], r->perm[j] = x;
    }
}

/* The next block of the data order; read into out only when out != NULL (the blocks of
 * the other processes' shares are skipped). */
static int next_block(run *r, int32_t *out, int32_t *tmp) {
    if (r->at.pos == r->train.nblocks) {
        r->at.epoch++;
        r->at.pos = 0;
        shuffle_epoch(r);
    }
    uint32_t block = r->perm[r->at.pos++];
    if (!out) return 0;
    if (shards_read_block(&r->train, block, tmp)) return -1;
    memcpy(out, tmp, sizeof(int32_t) * (size_t)r->tr.T);
    return 0;
}

/* ---- validation and samples -------------------------------------------------------------- */

/* Validation NELBO with the EMA weights when there are any (fixed t and masks). */
static int validate(run *r, double *nats) {
    trainer *tr = &r->tr;
    float *saved = NULL;
    if (tr->ema.owned) {
        saved = sm_malloc(tr->nparams * sizeof(float));
        memcpy(saved, tr->model.owned, tr->nparams * sizeof(float));
        memcpy(tr->model.owned, tr->ema.owned, tr->nparams * sizeof(float));
    }
    long tokens;
    int rc = dataset_loss(tr, &r->val, (size_t)r->c->val_batches * tr->B,
                          r->c->seed ^ 0x5EED5EEDull, r->c->sm_prob > 0.0f, NULL, nats, &tokens);
    if (saved) {
        memcpy(tr->model.owned, saved, tr->nparams * sizeof(float));
        free(saved);
    }
    return rc;
}

static void log_sample(run *r) {
    if (!r->tok || r->c->samples <= 0 || r->tr.cfg.causal) return;
    trainer *tr = &r->tr;
    const dit_model *m = tr->ema.owned ? &tr->ema : &tr->model;
    int len = tr->T < 128 ? tr->T : 128;
    sampler_params sp;
    sampler_params_default(&sp);
    sp.steps = len / 2 > 0 ? len / 2 : 1;
    sp.seed = r->c->seed;
    if (r->c->sm_prob > 0.0f) sm_raw_to_params(&tr->sm, &sp.sm);
    int32_t *x = sm_malloc(sizeof(int32_t) * (size_t)len);
    lm_dit view;
    lm_model lm;
    lm_dit_init(&view, &lm, m, 0, tr->nthreads);
    for (int s = 0; s < r->c->samples; s++) {
        for (int i = 0; i < len; i++) x[i] = tr->cfg.mask_id;
        sp.seed = r->c->seed + (uint64_t)s;
        sampler_stats st;
        char *text = NULL;
        size_t tl;
        if (sampler_run(&lm, &sp, x, NULL, 1, len, &st) == 0 &&
            tok_decode(r->tok, x, (size_t)len, &text, &tl) == 0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", (double)r->at.step);
            cJSON_AddStringToObject(o, "sample", text);
            char *line = cJSON_PrintUnformatted(o);
            fprintf(r->log, "%s\n", line);
            free(line);
            cJSON_Delete(o);
        }
        free(text);
    }
    lm_dit_free(&view);
    free(x);
}

/* ---- stopping on a signal ------------------------------------------------------------------ */

/* written by the handler on the first SIGINT/SIGTERM (base/stop_signal.h) */
static const char k_stop_message[] = "\nsmdlm train: stopping after this update and writing a checkpoint "
                                     "(signal again to stop at once)\n";

/* ---- the loop ------------------------------------------------------------------------------ */

static int open_data(run *r, dit_config *cfg) {
    const train_config *c = r->c;
    if (shards_open(&r->train, c->data, "train") || shards_open(&r->val, c->data, "val")) return -1;
    if (r->train.nblocks == 0) return SM_ERR("%s: the training split is empty", c->data);
    int T = c->seq_len ? c->seq_len : r->train.block_len;
    if (T > r->train.block_len || T < 2)
        return SM_ERR("seq-len %d must be in [2, the data's block length %d]", T, r->train.block_len);
    char *meta_tok = sm_path_join(c->data, "tokenizer");
    if (c->init) { /* continue pretraining: the model's own tokenizer must fit the data */
        model_arch arch;
        if (c->sm_only && model_dir_arch(c->init, &arch)) return -1;
        if (c->sm_only && arch != MODEL_MDLM)
            return SM_ERR("%s is a Dream/LLaDA model: --sm-only needs their backward pass, which smdlm does "
                          "not have yet (MDLM models only for now)", c->init);
        if (model_dir_read_config(cfg, c->init) ||
            data_check_tokenizer(c->data, c->init, c->allow_mismatch, "smdlm train"))
            return -1;
        if (cfg->vocab_size < r->train.vocab_size)
            return SM_ERR("the data has %d token ids but the model at %s only %d", r->train.vocab_size,
                          c->init, cfg->vocab_size);
        r->tok_dir = sm_strdup(c->init);
    } else {
        r->tok_dir = meta_tok;
        meta_tok = NULL;
    }
    free(meta_tok);
    if (tok_load_dir(&r->tok, r->tok_dir)) { /* samples are optional: no tokenizer, no samples */
        r->tok = NULL;
        if (!c->init) {
            free(r->tok_dir);
            r->tok_dir = NULL;
        }
    }
    if (!c->init) {
        /* the mask id: the tokenizer's own <|mask|> when it is its last id, else one more id */
        int V = r->train.vocab_size, mask = V;
        if (r->tok && tok_str_to_id(r->tok, "<|mask|>") == tok_vocab_size(r->tok) - 1 &&
            tok_vocab_size(r->tok) >= V)
            V = tok_vocab_size(r->tok), mask = V - 1;
        else
            V = V + 1;
        *cfg = (dit_config){V, c->hidden, c->n_heads, c->n_blocks, c->cond_dim, T, mask, 0, 0};
    }
    cfg->causal = c->causal;
    if (cfg->model_length < T) return SM_ERR("seq-len %d exceeds the model's length %d", T, cfg->model_length);
    return dit_config_validate(cfg);
}

static void log_step(run *r, double loss, double norm, int sm_passes, double dt) {
    const trainer *tr = &r->tr;
    const train_progress *at = &r->at;
    sm_params p;
    sm_raw_to_params(&tr->sm, &p);
    double lr = r->c->lr * optim_lr_factor(&r->opt.cfg, at->step - 1);
    double elapsed = sm_time_sec() - r->t_start;
    fprintf(r->log,
            "{\"step\":%ld,\"loss\":%.17g,\"grad_norm\":%.6g,\"lr\":%.6g,\"tokens\":%ld,"
            "\"step_s\":%.4f,\"elapsed_s\":%.2f,\"sm_passes\":%d,\"sm_scale\":%.6g,"
            "\"sm_centre\":%.6g,\"sm_steepness\":%.6g}\n",
            at->step, loss, norm, lr, at->tokens, dt, elapsed, sm_passes, p.scale, p.centre, p.steepness);
    fflush(r->log);
    double tps = (double)tr->B * tr->T * r->c->accum / dt;
    progress_report(&r->prog, (double)at->step, (double)r->c->steps,
                    "step %ld  loss %.4f  %.0f tok/s  lr %.2e  λ: scale %.3g centre %.3g steep %.3g", at->step,
                    loss, tps, lr, p.scale, p.centre, p.steepness);
}

static void warn_if_sm_stalled(run *r) {
    if (fabsf(r->tr.sm.raw_scale - r->sm_raw_start) >= SM_STALL_MOVE) return;
    sm_params p;
    sm_raw_to_params(&r->tr.sm, &p);
    progress_clear(&r->prog);
    fprintf(stderr, "smdlm train: warning: the soft-masking scale has not moved in %d updates (%.3g → %.3g): "
                    "its gradient is scaled by scale·(1 − scale); raise --sm-scale-lr, lower --sm-eps or start "
                    "from a larger --sm-scale (docs/TRAINING.md)\n",
            SM_STALL_UPDATES, 1.0 / (1.0 + exp(-(double)r->sm_raw_start)), p.scale);
    fprintf(r->log, "{\"step\":%ld,\"warning\":\"soft-masking scale unchanged after %d updates\"}\n", r->at.step,
            SM_STALL_UPDATES);
}

static int train_loop(run *r) {
    const train_config *c = r->c;
    trainer *tr = &r->tr;
    train_progress *at = &r->at;
    const int B = tr->B, T = tr->T;
    int32_t *tmp = sm_malloc(sizeof(int32_t) * (size_t)r->train.block_len);
    int rc = 0;
    while (at->step < c->steps && !rc) {
        double t0 = sm_time_sec(), loss = 0;
        int sm_passes = 0;
        trainer_zero_grads(tr);
        /* the global batch is world·B rows; this process owns rows [rank·B, rank·B + B) */
        const int world = dist_size(), b0 = dist_rank() * B;
        for (int a = 0; a < c->accum && !rc; a++) {
            for (int g = 0; g < world * B && !rc; g++)
                rc = next_block(r, g >= b0 && g < b0 + B ? r->x0 + (size_t)(g - b0) * T : NULL, tmp);
            if (rc) break;
            int sm = 0;
            if (tr->cfg.causal) {
                memcpy(r->xt, r->x0, sizeof(int32_t) * (size_t)B * T);
            } else {
                mdlm_noise_rows(&at->rng, r->x0, r->xt, r->t, world * B, b0, B, T, tr->cfg.mask_id);
                sm = c->sm_prob > 0.0f && rng_uniform(&at->rng) < c->sm_prob;
            }
            train_batch bt = {r->xt, r->x0, r->t};
            loss += trainer_accumulate(tr, &bt, sm, 1.0f / (c->accum * world)) / c->accum;
            sm_passes += sm;
            at->tokens += (long)world * B * T;
        }
        if (rc) break;
        if (world > 1) { /* average: every process then makes the same update */
            if (!tr->frozen) dist_allreduce_sum(tr->grads.owned, tr->nparams);
            dist_allreduce_sum(tr->sm_grad, 3);
            loss = dist_allreduce_sum_double(loss) / world;
        }
        double norm = adamw_step(&r->opt);
        /* MDLM's warm-up: decay min(ema, (1 + n)/(10 + n)) after n updates; frozen weights
           have no average (the exported weights are the --init ones, bit for bit) */
        if (c->ema > 0.0f && !tr->frozen)
            trainer_ema_update(tr, fminf(c->ema, (float)(1 + at->step) / (float)(10 + at->step)));
        at->step++;
        if (!isfinite(loss)) {
            rc = SM_ERR("the loss is %g at step %ld; stopping (lower the learning rate?)", loss, at->step);
            break;
        }
        /* every process stops after the same update (mpirun forwards the signal to each) */
        int stop = world > 1 ? dist_allreduce_sum_double(stop_signal() != 0) > 0 : stop_signal() != 0;
        if (stop) r->stopped_by = stop_signal() ? stop_signal() : SIGTERM;
        if (dist_rank() != 0) {
            if (stop) break;
            continue; /* process 0 logs, validates and writes checkpoints */
        }
        if (at->step % c->log_every == 0 || at->step == c->steps || stop)
            log_step(r, loss, norm, sm_passes, sm_time_sec() - t0);
        if (c->sm_prob > 0.0f && at->step == r->step_start + SM_STALL_UPDATES) warn_if_sm_stalled(r);
        if (c->val_every && (at->step % c->val_every == 0 || at->step == c->steps)) {
            double nats = 0;
            if ((rc = validate(r, &nats))) break;
            fprintf(r->log, "{\"step\":%ld,\"tokens\":%ld,\"val_nats\":%.9g,\"val_ppl\":%.6g}\n",
                    at->step, at->tokens, nats, exp(nats));
            progress_note(&r->prog, "smdlm train: step %ld: validation %.4f nats/token, perplexity %s %.3f\n",
                          at->step, nats, r->tr.cfg.causal ? "=" : "≤", exp(nats));
            log_sample(r);
            fflush(r->log);
        }
        if (stop || (c->ckpt_every && (at->step % c->ckpt_every == 0 || at->step == c->steps))) {
            double t1 = sm_time_sec();
            if ((rc = checkpoint_save(c, &r->tr, &r->opt, at, r->tok_dir))) break;
            /* bytes: the EMA model, and raw weights + two moments in the training state */
            double mb = (double)r->tr.nparams * 4.0 * 4 / 1048576.0;
            fprintf(r->log, "{\"step\":%ld,\"checkpoint_s\":%.3f,\"checkpoint_mib\":%.1f}\n", at->step,
                    sm_time_sec() - t1, mb);
            fflush(r->log);
        }
        if (stop) {
            progress_clear(&r->prog);
            fprintf(stderr, "smdlm train: stopped by signal %d at step %ld/%ld; checkpoint %s/ckpt-%08ld "
                            "(continue with: smdlm train --out %s --resume)\n",
                    r->stopped_by, at->step, c->steps, c->out, at->step, c->out);
            break;
        }
    }
    progress_clear(&r->prog);
    free(tmp);
    return rc;
}

int train_run(const train_config *config) {
    if (train_config_validate(config)) return -1;
    train_config cc = *config; /* steps may follow from a token budget */
    const train_config *c = &cc;
    run r = {.c = c};
    dit_config cfg;
    int rc = -1;
    run_dir rd = {-1};
    char *changes = NULL; /* settings a resumption changed */
    if (dist_rank() == 0 && run_dir_open(&rd, c)) goto done;
    if (open_data(&r, &cfg)) goto done;
    if (dist_rank() == 0 && run_dir_record(c, &changes)) goto done;
    kernels_set_threads(c->threads);
    if (c->tokens > 0) { /* a token budget: whole updates of world × batch × accum × T tokens */
        long per = (long)dist_size() * c->batch * c->accum * (c->seq_len ? c->seq_len : r.train.block_len);
        cc.steps = (c->tokens + per - 1) / per;
    }
    const size_t nparams = dit_param_numel(&cfg); /* the model's shape comes from flags */
    if (SM_CHECK_MEMORY(sm_size_mul(nparams, 6 * sizeof(float)), "training a model of %zu "
                        "parameters (initial weights, weights, gradients, two AdamW moments, EMA)",
                        nparams))
        goto done;
    {
        dit_model init;
        if (c->init) {
            if (dit_model_load(&init, &cfg, c->init)) goto done;
        } else {
            dit_model_alloc(&init, &cfg);
            mdlm_init_weights(&init, c->seed ^ 0x1417ull);
        }
        int ok = trainer_init(&r.tr, &init, c->batch, c->seq_len ? c->seq_len : r.train.block_len,
                              c->threads) == 0;
        dit_model_free(&init);
        if (!ok) goto done;
    }
    r.tr.cfg.causal = c->causal;
    r.tr.frozen = c->sm_only;
    sm_params smp = {1, c->sm_scale, c->sm_centre, c->sm_steepness, c->sm_k};
    sm_raw_from_params(&r.tr.sm, &smp);
    optim_config oc;
    optim_config_default(&oc);
    oc.warmup_steps = c->warmup, oc.schedule = c->schedule, oc.total_steps = c->steps;
    oc.min_lr_ratio = c->min_lr_ratio, oc.grad_clip = c->clip;
    if (optim_config_validate(&oc)) goto done;
    /* raw_scale, raw_centre, raw_steepness are contiguous (trainer.sm), as their gradients and
       moments: the groups lie back to back in the checkpoint's adam_m / adam_v */
    optim_group g[3] = {{r.tr.model.owned, r.tr.grads.owned, r.tr.nparams, c->lr, c->weight_decay, 0.0f},
                        {&r.tr.sm.raw_scale, r.tr.sm_grad, 1, c->sm_scale_lr, 0.0f, c->sm_eps},
                        {&r.tr.sm.raw_centre, r.tr.sm_grad + 1, 2, c->sm_lr, 0.0f, c->sm_eps}};
    /* --sm-only: the scalars' groups alone (no moments for the frozen parameters) */
    adamw_init(&r.opt, &oc, c->sm_only ? g + 1 : g, c->sm_only ? 2 : 3);
    if (SM_CHECK_MEMORY(sm_size_mul(sizeof(uint32_t), r.train.nblocks),
                        "the block order of %zu training blocks", r.train.nblocks))
        goto done;
    r.perm = sm_malloc(sizeof(uint32_t) * r.train.nblocks);
    rng_seed(&r.at.rng, c->seed);
    shuffle_epoch(&r);
    if (c->resume) {
        int resumed = checkpoint_resume(c, &r.tr, &r.opt, &r.at, r.train.nblocks);
        if (resumed < 0 || (dist_rank() == 0 && run_dir_truncate_log(c->out, r.at.step)))
            goto done;
        if (resumed == 0) shuffle_epoch(&r); /* the block order of the restored epoch */
    }
    r.x0 = sm_malloc(sizeof(int32_t) * (size_t)r.tr.B * r.tr.T);
    r.xt = sm_malloc(sizeof(int32_t) * (size_t)r.tr.B * r.tr.T);
    r.t = sm_malloc(sizeof(float) * (size_t)r.tr.B);
    char *log_path = dist_rank() == 0 ? sm_path_join(c->out, "train_log.jsonl") : sm_strdup("/dev/null");
    r.log = fopen(log_path, "a");
    if (!r.log) SM_ERR("cannot open '%s'", log_path);
    free(log_path);
    if (!r.log) goto done;
    if (changes) { /* a resumption with other budget, cadence or (--override) optimisation */
        fprintf(stderr, "smdlm train: resuming at step %ld with changed settings:\n%s", r.at.step, changes);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)r.at.step);
        cJSON_AddStringToObject(o, "resumed_with_changes", changes);
        char *line = cJSON_PrintUnformatted(o);
        fprintf(r.log, "%s\n", line);
        free(line);
        cJSON_Delete(o);
    }
    r.t_start = sm_time_sec();
    progress_start(&r.prog, "smdlm train", c->quiet);
    r.step_start = r.at.step;
    r.sm_raw_start = r.tr.sm.raw_scale;
    stop_signals_saved saved;
    stop_signal_reset();
    stop_signals_catch(k_stop_message, 1, &saved);
    rc = train_loop(&r);
    stop_signals_restore(&saved);
    if (!rc && r.stopped_by) rc = r.stopped_by;
done:
    run_dir_close(&rd);
    free(changes);
    if (r.log) fclose(r.log);
    if (r.opt.m) adamw_free(&r.opt);
    if (r.tr.acts) trainer_free(&r.tr);
    shards_close(&r.train);
    shards_close(&r.val);
    if (r.tok) tok_free(r.tok);
    free(r.tok_dir);
    free(r.perm), free(r.x0), free(r.xt), free(r.t);
    return rc;
}
