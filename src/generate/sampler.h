/* sampler.h — MDLM samplers (docs/DESIGN.md §2): ddpm, ddpm_cache, ReMDM-cap, ReMDM-loop, with
 * nucleus top-p, soft-masking feedback and final noise removal.
 *
 * Draws use an explicit RNG per sequence (seed + b), positions in order; a masked position
 * first draws "stay masked" against its exact probability, then — only when it reveals — a
 * token by inverse CDF over p_x0 in vocabulary order. This is the same distribution as the
 * reference's Gumbel draw over q (see NOTES.md) at two uniforms per position instead of V.
 */
#ifndef SMDLM_SAMPLER_H
#define SMDLM_SAMPLER_H

#include <stdint.h>

#include "generate/step.h"
#include "models/lm.h"
#include "softmask/softmask.h"

typedef enum {
    SAMPLER_DDPM = 0,
    SAMPLER_DDPM_CACHE,
    SAMPLER_REMDM_CAP,
    SAMPLER_REMDM_LOOP,
} sampler_kind;

typedef struct {
    sampler_kind kind;
    int steps;         /* ≥ 1 */
    float top_p;       /* (0, 1]; 1 = no nucleus filtering */
    uint64_t seed;
    int noise_removal; /* final argmax forward (default on) */
    float eta;         /* ReMDM remasking strength */
    float t_on, t_off, alpha_on; /* ReMDM-loop schedule */
    sm_params sm;      /* sm.enabled = 0 switches soft-masking off */
    /* MDLM's semi-autoregressive sampler (diffusion.py sample_subs_guidance; docs/DESIGN.md
     * §2.6) when semi_ar_stride > 0: the canvas x holds T = semi_ar_length + k·semi_ar_stride
     * positions, sampled in rounds on canvases of semi_ar_length: round 0 the first
     * semi_ar_length, round r the next semi_ar_stride after the previous round's last
     * semi_ar_length − semi_ar_stride positions (kept fixed). Each round runs int(1/dt) + 1
     * updates at t = 1 − i·dt, dt = 1/steps (no ε: the last reveals everything), then noise
     * removal at t = 0; ddpm or ddpm_cache only. The RNGs run on across rounds. */
    int semi_ar_length, semi_ar_stride;
    /* Called after every step (and once after noise removal with step == steps). */
    gen_step_fn on_step;
    void *user;
} sampler_params;

typedef struct {
    int forwards;      /* real network evaluations (cache hits skipped) */
    int steps;
    double seconds;
    double forward_seconds;
    double sm_seconds; /* computing soft-masking feedback (the mixing is inside the forwards) */
} sampler_stats;

void sampler_params_default(sampler_params *p);
int sampler_params_validate(const sampler_params *p);
int sampler_kind_parse(const char *name, sampler_kind *out);
const char *sampler_kind_name(sampler_kind k);

/* Updates of one run (of one round for the semi-autoregressive sampler), as the step hook
 * counts them. */
int sampler_planned_steps(const sampler_params *p);

/* x [B, T]: fixed tokens where fixed[b·T + t] != 0 (anywhere: a prompt, a suffix, an
 * infilling template), the mask id elsewhere (fixed may be NULL: nothing fixed). The model's
 * forward gets the diffusion time of each step. On return x holds the samples; GEN_STOPPED
 * when the step hook stopped the run (x as it was then). The semi-autoregressive sampler's
 * step hook sees the round's canvas [B, semi_ar_length]. */
int sampler_run(const lm_model *m, const sampler_params *p, int32_t *x, const uint8_t *fixed,
                int B, int T, sampler_stats *stats);
/* ---- the same run one step at a time --------------------------------------------------------
 * A job is sampler_run's loop turned inside out, so that a driver can run the forwards of
 * several jobs as one batched forward (sampler_batch.h): per step, sampler_job_input says
 * whether the step needs a forward and on what; the driver runs lm_model.forward on it (or on
 * a batch holding its rows), which leaves the raw rows in f->logits; then sampler_job_step
 * finishes the step. sampler_run is exactly begin, that loop alone, finish. */
typedef struct sampler_job sampler_job;

/* One forward's arguments (lm_model.forward), logits [B·T, V] where its output goes. */
typedef struct {
    const int32_t *x;
    const double *t;
    const sm_params *sm;   /* NULL: no soft-masking in this forward */
    const sm_feedback *fb;
    const uint8_t *need;
    int B, T;
    float *logits;
} sampler_forward;

/* Checks the arguments as sampler_run does and starts a job on x (kept by the caller until
 * sampler_job_finish; fixed may be NULL). p is copied. */
int sampler_job_begin(sampler_job **job, const lm_model *m, const sampler_params *p, int32_t *x,
                      const uint8_t *fixed, int B, int T);
/* 1 and *f when the next step needs a forward, else 0 (a cached step, or nothing left masked
 * for noise removal). */
int sampler_job_input(sampler_job *job, sampler_forward *f);
/* Finishes the step (forward_seconds: the time of its forward, 0 without): 0 to go on,
 * SAMPLER_JOB_DONE when the run is complete, GEN_STOPPED when the hook stopped it, −1 on an
 * error. */
#define SAMPLER_JOB_DONE 2
int sampler_job_step(sampler_job *job, double forward_seconds);
/* Runs the job to its end alone: 0, GEN_STOPPED or −1. */
int sampler_job_run(sampler_job *job);
/* What a batched forward must share: the canvas length (the round's for the semi-autoregressive
 * sampler) and the soft-masking top-k (0: off). */
void sampler_job_shape(const sampler_job *job, int *T, int *sm_k);
/* The statistics (may be NULL) and the job freed; job may be NULL. */
void sampler_job_finish(sampler_job *job, sampler_stats *stats);

/* The bytes sampler_run allocates for [B, T] canvases over V tokens (saturating), the model's
 * scratch not included; sampler_run checks them against the available memory first. */
size_t sampler_run_bytes(const sampler_params *p, int B, int T, int V);

#endif
