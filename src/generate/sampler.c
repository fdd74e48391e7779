/* sampler.c — MDLM samplers; see sampler.h and docs/DESIGN.md §2 (ddpm_cache), §3 (SM feedback). */
#include "generate/sampler.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "compute/kernels.h"
#include "models/dit.h"
#include "base/rng.h"
#include "base/util.h"

#define SAMPLER_EPS 1e-5 /* timesteps = linspace(1, 1e-5, steps + 1) */

static const sm_enum_entry k_kinds[] = {{"ddpm", SAMPLER_DDPM},
                                        {"ddpm_cache", SAMPLER_DDPM_CACHE},
                                        {"remdm-cap", SAMPLER_REMDM_CAP},
                                        {"remdm-loop", SAMPLER_REMDM_LOOP}};

const char *sampler_kind_name(sampler_kind k) { return SM_ENUM_NAME(k_kinds, k); }

SM_ENUM_PARSER(sampler_kind_parse, sampler_kind, k_kinds, "sampler")

void sampler_params_default(sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->kind = SAMPLER_DDPM_CACHE;
    p->steps = 128;
    p->top_p = 1.0f;
    p->seed = 0;
    p->noise_removal = 1;
    p->eta = 0.02f;
    p->t_on = 0.55f;
    p->t_off = 0.05f;
    p->alpha_on = 0.9f;
    sm_params_default(&p->sm);
    p->sm.enabled = 0;
}

int sampler_params_validate(const sampler_params *p) {
    if (p->steps < 1 || p->steps > 1000000) return SM_ERR("steps %d must be in [1, 1000000]", p->steps);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return SM_ERR("top-p %g must be in (0, 1]", p->top_p);
    if (!(p->eta >= 0.0f && p->eta <= 1.0f)) return SM_ERR("eta %g must be in [0, 1]", p->eta);
    if (!(p->alpha_on > 0.0f && p->alpha_on < 1.0f))
        return SM_ERR("alpha-on %g must be in (0, 1)", p->alpha_on);
    if (!(p->t_off >= 0.0f && p->t_off < p->t_on && p->t_on <= 1.0f))
        return SM_ERR("ReMDM-loop needs 0 ≤ t-off (%g) < t-on (%g) ≤ 1", p->t_off, p->t_on);
    if (p->sm.enabled && sm_params_validate(&p->sm)) return -1;
    if (p->semi_ar_stride < 0 || (p->semi_ar_stride > 0 && (p->semi_ar_length < p->semi_ar_stride)))
        return SM_ERR("semi-autoregressive stride %d must be in [1, the round's canvas length %d]",
                      p->semi_ar_stride, p->semi_ar_length);
    if (p->semi_ar_stride > 0 && p->kind != SAMPLER_DDPM && p->kind != SAMPLER_DDPM_CACHE)
        return SM_ERR("semi-autoregressive sampling runs MDLM's ddpm or ddpm_cache update, not %s",
                      sampler_kind_name(p->kind));
    return 0;
}

int sampler_planned_steps(const sampler_params *p) {
    /* sample_subs_guidance: num_steps = int(1 / dt), updates i = 0..num_steps (int(1/(1/93))
     * is 92) */
    return p->semi_ar_stride > 0 ? (int)(1.0 / (1.0 / p->steps)) + 1 : p->steps;
}

/* The step size of the time grid: linspace(1, ε, steps + 1), or the semi-autoregressive 1/steps. */
static double step_dt(const sampler_params *p) {
    return p->semi_ar_stride > 0 ? 1.0 / p->steps : (1.0 - SAMPLER_EPS) / p->steps;
}

enum { PHASE_STEPS = 0, PHASE_NOISE_REMOVAL, PHASE_DONE };

struct sampler_job {
    const lm_model *m;
    sampler_params params;
    const sampler_params *p; /* &params */
    int B, T, V;
    int32_t *x;              /* the caller's canvases [B, T] and fixed flags (may be NULL); the
                                round's [B, semi_ar_length] for the semi-autoregressive sampler */
    const uint8_t *fixed;
    /* semi-autoregressive rounds: the caller's canvases [B, T_out] and flags; the round's own */
    int32_t *out;
    const uint8_t *out_fixed;
    int T_out, round, rounds;
    uint8_t *round_fixed;
    float *logp;     /* (B·T, V) SUBS log-probs of the last real forward at its masked positions */
    int32_t *prev_x; /* (B·T) the input of the last real forward */
    uint8_t *need;   /* (B·T) masked positions handed to the forward */
    int32_t *rows;   /* (B·T) the same as a list */
    uint8_t *bad;    /* (B·T) per entry of rows: its raw prediction was not finite */
    sm_feedback *fb; /* (B·T) soft-masking feedback of the still-masked positions; NULL: off */
    float *probs;    /* (B·T, V) the tempered distributions fb points to (SM_ALG_TEMP) */
    int *masked0;    /* (B) masked positions of each canvas at the start (the λ schedule) */
    int have_fb;     /* fb is set (there was a real forward) */
    float *lambda;   /* (B·T) λ of fb for the step hook; NULL without a hook or soft-masking */
    float *pbuf;     /* (nthreads, V) scratch for token draws */
    int32_t *order;  /* (nthreads, V) scratch for nucleus sorting */
    sm_rng *rng;     /* (B) */
    double *times;   /* (B) the diffusion time of the forward asked for */
    /* where the loop stands */
    int phase;       /* PHASE_* */
    int i;           /* steps done */
    int cached;      /* the next step reuses the last forward (nothing changed, ddpm_cache) */
    int asked;       /* sampler_job_input asked for a forward this step */
    double t_start;
    sampler_stats stats;
};

/* The inputs of a network evaluation on x at time t: the masked positions (need, rows). */
static void prepare_forward(sampler_job *st, const int32_t *x, double t) {
    const int BT = st->B * st->T, mask = st->m->mask_id;
    int n = 0;
    for (int i = 0; i < BT; i++) {
        st->need[i] = x[i] == mask;
        if (st->need[i]) st->rows[n++] = i;
    }
    for (int b = 0; b < st->B; b++) st->times[b] = t;
}

/* After the forward prepared by prepare_forward wrote st->logp: SUBS log-probs of the masked
 * rows. `when` names the step in the error of a prediction that is not finite. */
static int finish_forward(sampler_job *st, const int32_t *x, const char *when, double seconds,
                          sampler_stats *stats) {
    const int BT = st->B * st->T, V = st->V, mask = st->m->mask_id;
    double t0 = sm_time_sec();
    int n = 0;
    for (int i = 0; i < BT; i++) n += st->need[i];
    int nbad = 0;
    double sm_cpu = 0.0; /* thread-seconds of soft-masking feedback */
    /* without a λ schedule the feedback does not depend on the step's reveals (compute_feedback) */
    const sm_params *smp = st->fb && st->p->sm.schedule == SM_SCHEDULE_NONE ? &st->p->sm : NULL;
#pragma omp parallel for schedule(static) reduction(+ : nbad, sm_cpu)
    for (int r = 0; r < n; r++) {
        float *row = st->logp + (size_t)st->rows[r] * V;
        st->bad[r] = dit_subs_row(row, V, mask) != 0;
        nbad += st->bad[r];
        if (smp && !st->bad[r]) { /* the row's feedback (compute_feedback) while it is in cache */
            double t1 = sm_time_sec();
            sm_feedback_from_row(smp, row, V, &st->fb[st->rows[r]],
                                 st->probs ? st->probs + (size_t)st->rows[r] * V : NULL);
            sm_cpu += sm_time_sec() - t1;
        }
    }
    const double sm_share = sm_cpu / omp_get_max_threads(); /* counted as soft-masking time */
    stats->sm_seconds += sm_share;
    if (nbad) {
        int k = 0;
        for (int r = 0; r < n; r++)
            if (st->bad[r]) st->rows[k++] = st->rows[r];
        return gen_position_error(st->m, when, NULL, st->rows, k, st->T);
    }
    memcpy(st->prev_x, x, sizeof(int32_t) * (size_t)BT);
    stats->forwards++;
    stats->forward_seconds += seconds + sm_time_sec() - t0 - sm_share;
    return 0;
}

static int count_masked(const int32_t *x, int n, int32_t mask) {
    int c = 0;
    for (int i = 0; i < n; i++) c += x[i] == mask;
    return c;
}

/* The feedback each still-masked position's next input carries (softmask.h's protocol): its
 * SUBS row of the last real forward, or — when it was unmasked then (remasked by ReMDM) — the
 * one-hot of its token there. Without a λ schedule finish_forward has written the first kind
 * for every position it predicted (a position unmasked since keeps an entry that no input
 * reads); with one, λ's scale follows the positions still masked after the step, so both kinds
 * are computed here, with each canvas's scale. */
static void compute_feedback(sampler_job *st, const int32_t *x, sampler_stats *stats) {
    const int B = st->B, T = st->T, V = st->V, mask = st->m->mask_id;
    const int scheduled = st->p->sm.schedule != SM_SCHEDULE_NONE;
    double t0 = sm_time_sec();
    sm_params *row_p = NULL; /* with a schedule: λ's scale now, per canvas */
    if (scheduled) {
        row_p = sm_malloc(sizeof(sm_params) * (size_t)B);
        for (int b = 0; b < B; b++)
            row_p[b] = sm_params_at(&st->p->sm, count_masked(x + (size_t)b * T, T, mask),
                                    st->masked0[b]);
    }
#pragma omp parallel for schedule(dynamic, 16) if (scheduled)
    for (int i = 0; i < B * T; i++) {
        if (x[i] != mask) continue;
        const sm_params *p = scheduled ? &row_p[i / T] : &st->p->sm;
        if (st->prev_x[i] != mask)
            sm_feedback_from_token(p, st->prev_x[i], &st->fb[i]);
        else if (scheduled)
            sm_feedback_from_row(p, st->logp + (size_t)i * V, V, &st->fb[i],
                                 st->probs ? st->probs + (size_t)i * V : NULL);
    }
    free(row_p);
    st->have_fb = 1;
    stats->sm_seconds += sm_time_sec() - t0;
}

/* The step hook; 1 when it asks to stop. */
static int report_step(sampler_job *st, const int32_t *x, int step, const sampler_stats *stats) {
    const sampler_params *p = st->p;
    if (!p->on_step) return 0;
    const int BT = st->B * st->T, mask = st->m->mask_id;
    if (st->lambda)
        for (int i = 0; i < BT; i++) st->lambda[i] = x[i] == mask ? st->fb[i].lambda : 0.0f;
    gen_step s = {.step = step, .steps = sampler_planned_steps(p), .B = st->B, .T = st->T, .mask_id = mask,
                  .forwards = stats->forwards, .x = x, .lambda = st->lambda};
    return p->on_step(p->user, &s) != 0;
}

static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *p = ctx;
    float x = p[*(const int32_t *)a], y = p[*(const int32_t *)b];
    return (x < y) - (x > y);
}

/* Draws a token from p_x0 = exp(row), nucleus-filtered when top_p < 1, by inverse CDF in
 * vocabulary order with a float64 running sum. */
static int32_t draw_token(sampler_job *st, const float *row, double u) {
    const int V = st->V, tid = omp_get_thread_num();
    float *p = st->pbuf + (size_t)tid * V;
    vexp(p, row, (size_t)V);
    if (st->p->top_p < 1.0f) {
        /* keep the largest probabilities while their running sum ≤ top_p (always the first) */
        int32_t *order = st->order + (size_t)tid * V;
        for (int v = 0; v < V; v++) order[v] = v;
        qsort_r(order, (size_t)V, sizeof *order, cmp_desc, p);
        float cum = 0.0f;
        int keep = 0;
        for (; keep < V; keep++) {
            cum += p[order[keep]];
            if (keep > 0 && cum > st->p->top_p) break;
        }
        for (int i = keep; i < V; i++) p[order[i]] = 0.0f;
    }
    return rng_inverse_cdf(p, V, u);
}

/* Probabilities of one step for a masked position (stay) and an unmasked one (remask). */
typedef struct {
    double stay_masked;
    double remask;
} step_probs;

static step_probs step_probabilities(const sampler_params *p, double t, double dt) {
    step_probs sp = {0.0, 0.0};
    double s = t - dt;
    int remdm = 0;
    double sigma = 0.0, a_t = 1.0 - t, a_s = 1.0 - s;
    if (p->kind == SAMPLER_REMDM_CAP) {
        remdm = 1;
        sigma = a_t > 0 ? fmin(p->eta, (1.0 - a_s) / a_t) : p->eta;
    } else if (p->kind == SAMPLER_REMDM_LOOP) {
        double ton = p->t_on, toff = p->t_off, aon = p->alpha_on;
        if (t > ton) { /* MDLM phase on a remapped schedule down to alpha_on */
            double mt = 1.0 - (1.0 - t) * aon / (1.0 - ton), ms = 1.0 - (1.0 - t + dt) * aon / (1.0 - ton);
            sp.stay_masked = ms / mt;
            return sp;
        }
        if (t <= toff) {
            double mt = t * (1.0 - aon) / toff, ms = (t - dt) * (1.0 - aon) / toff;
            sp.stay_masked = mt > 0 ? ms / mt : 0.0;
            return sp;
        }
        /* loop phase: α stays at alpha_on, tokens are remasked and redrawn */
        sp.remask = p->eta;
        sp.stay_masked = (1.0 - aon - aon * p->eta) / (1.0 - aon);
        return sp;
    }
    if (!remdm) { /* the semi-autoregressive grid's last update has s < 0: everything reveals */
        sp.stay_masked = s > 0.0 ? s / t : 0.0;
        return sp;
    }
    sp.remask = sigma;
    sp.stay_masked = (1.0 - a_s - sigma * a_t) / (1.0 - a_t);
    return sp;
}

/* Updates x in place; returns the number of positions that changed. */
static int update_step(sampler_job *st, int32_t *x, const uint8_t *fixed, double t, double dt) {
    const int T = st->T, mask = st->m->mask_id;
    step_probs sp = step_probabilities(st->p, t, dt);
    int changed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : changed) if (st->B > 1)
    for (int b = 0; b < st->B; b++) {
        sm_rng *r = &st->rng[b];
        for (int i = b * T; i < (b + 1) * T; i++) {
            if (fixed && fixed[i]) continue;
            if (x[i] == mask) {
                if (rng_uniform(r) < sp.stay_masked) continue;
                SM_ASSERT(st->prev_x[i] == mask);
                x[i] = draw_token(st, st->logp + (size_t)i * st->V, rng_uniform(r));
                changed++;
            } else if (sp.remask > 0.0) {
                if (rng_uniform(r) < sp.remask) {
                    x[i] = mask;
                    changed++;
                }
            }
        }
    }
    return changed;
}

static void argmax_fill(sampler_job *st, int32_t *x) {
    const int V = st->V;
    for (int i = 0; i < st->B * st->T; i++) {
        if (!st->need[i]) continue;
        const float *row = st->logp + (size_t)i * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        x[i] = best;
    }
}

/* The round's canvas from the caller's: positions [round·stride, round·stride + length), the
 * first length − stride fixed after round 0 (the previous round's tail), and the loop at its
 * start. */
static void load_round(sampler_job *st) {
    const int L = st->T, S = st->p->semi_ar_stride, keep = st->round ? L - S : 0;
    const size_t off = (size_t)st->round * S;
    for (int b = 0; b < st->B; b++)
        for (int j = 0; j < L; j++) {
            const size_t src = (size_t)b * st->T_out + off + j, dst = (size_t)b * L + j;
            st->x[dst] = st->out[src];
            st->round_fixed[dst] = j < keep || (st->out_fixed && st->out_fixed[src]);
        }
    if (st->masked0)
        for (int b = 0; b < st->B; b++)
            st->masked0[b] = count_masked(st->x + (size_t)b * L, L, st->m->mask_id);
    st->phase = PHASE_STEPS;
    st->i = 0;
    st->cached = 0;
    st->have_fb = 0;
}

static void store_round(sampler_job *st) {
    const int L = st->T;
    const size_t off = (size_t)st->round * st->p->semi_ar_stride;
    for (int b = 0; b < st->B; b++)
        memcpy(st->out + (size_t)b * st->T_out + off, st->x + (size_t)b * L, sizeof(int32_t) * L);
}

/* After a round: its canvas back into the caller's and the next one loaded; 1 when another
 * round follows. */
static int next_round(sampler_job *st) {
    if (!st->out) return 0;
    store_round(st);
    if (++st->round == st->rounds) return 0;
    load_round(st);
    return 1;
}

static void job_free_buffers(sampler_job *st) {
    if (st->out) free(st->x);
    free(st->round_fixed);
    free(st->logp);
    free(st->prev_x);
    free(st->need);
    free(st->rows);
    free(st->bad);
    free(st->fb);
    free(st->probs);
    free(st->masked0);
    free(st->lambda);
    free(st->pbuf);
    free(st->order);
    free(st->rng);
    free(st->times);
}

int sampler_job_input(sampler_job *st, sampler_forward *f) {
    const int BT = st->B * st->T, mask = st->m->mask_id;
    st->asked = 0;
    if (st->phase == PHASE_STEPS && !st->cached) {
        prepare_forward(st, st->x, 1.0 - st->i * step_dt(st->p));
        st->asked = 1;
    } else if (st->phase == PHASE_NOISE_REMOVAL) {
        /* with nothing masked, the argmax of SUBS one-hot rows is x itself */
        int any_masked = 0;
        for (int i = 0; i < BT; i++) any_masked |= st->x[i] == mask;
        if (any_masked) prepare_forward(st, st->x, st->out ? 0.0 : SAMPLER_EPS);
        st->asked = any_masked;
    }
    const int sm = st->have_fb;
    *f = (sampler_forward){st->x, st->times, sm ? &st->p->sm : NULL, sm ? st->fb : NULL, st->need,
                           st->B, st->T, st->logp};
    return st->asked;
}

int sampler_job_step(sampler_job *st, double forward_seconds) {
    const sampler_params *p = st->p;
    sampler_stats *stats = &st->stats;
    char when[64];
    const int planned = sampler_planned_steps(p);
    if (st->phase == PHASE_STEPS) {
        const double dt = step_dt(p), t = 1.0 - st->i * dt;
        snprintf(when, sizeof when, "step %d of %d", st->i + 1, planned);
        if (st->asked && finish_forward(st, st->x, when, forward_seconds, stats)) return -1;
        int changed = update_step(st, st->x, st->fixed, t, dt);
        if (st->fb && (st->asked || changed)) compute_feedback(st, st->x, stats);
        st->cached = p->kind != SAMPLER_DDPM && !st->m->uses_time && changed == 0;
        stats->steps++;
        st->i++;
        if (st->i == planned) st->phase = p->noise_removal ? PHASE_NOISE_REMOVAL : PHASE_DONE;
        if (report_step(st, st->x, st->i, stats)) return GEN_STOPPED;
        return st->phase == PHASE_DONE && !next_round(st) ? SAMPLER_JOB_DONE : 0;
    }
    if (st->asked) {
        if (finish_forward(st, st->x, "the final noise-removal forward", forward_seconds, stats))
            return -1;
        argmax_fill(st, st->x);
    }
    st->phase = PHASE_DONE;
    if (report_step(st, st->x, planned, stats)) return GEN_STOPPED;
    return next_round(st) ? 0 : SAMPLER_JOB_DONE;
}

int sampler_job_run(sampler_job *job) {
    const lm_model *m = job->m;
    for (;;) {
        sampler_forward f;
        double seconds = 0.0;
        if (sampler_job_input(job, &f)) {
            const double t0 = sm_time_sec();
            if (m->forward(m->ctx, f.x, f.t, f.sm, f.fb, f.need, f.B, f.T, f.logits)) return -1;
            seconds = sm_time_sec() - t0;
        }
        const int rc = sampler_job_step(job, seconds);
        if (rc) return rc == SAMPLER_JOB_DONE ? 0 : rc;
    }
}

size_t sampler_run_bytes(const sampler_params *p, int B, int T, int V) {
    const int semi_ar = p->semi_ar_stride > 0;
    if (semi_ar) T = p->semi_ar_length; /* the buffers are the round's, plus its canvas */
    const size_t BT = (size_t)B * (size_t)T, threads = (size_t)omp_get_max_threads();
    /* logp; prev_x, rows, need, bad (and fb, lambda) per position; pbuf, order per thread */
    const size_t per_position = 2 * sizeof(int32_t) + 2 +
                                (p->sm.enabled ? sizeof(sm_feedback) + sizeof(float) : 0);
    size_t bytes = sm_size_mul(sm_size_mul(BT, (size_t)V), sizeof(float));
    bytes = sm_size_add(bytes, sm_size_mul(BT, per_position));
    if (p->sm.enabled)
        bytes = sm_size_add(bytes, sm_size_mul(sm_feedback_probs_floats(&p->sm, BT, V), sizeof(float)));
    if (semi_ar) bytes = sm_size_add(bytes, sm_size_mul(BT, sizeof(int32_t) + 1));
    return sm_size_add(bytes, sm_size_mul(threads * (size_t)V, sizeof(float) + sizeof(int32_t)));
}

int sampler_job_begin(sampler_job **out, const lm_model *m, const sampler_params *p, int32_t *x,
                      const uint8_t *fixed, int B, int T) {
    *out = NULL;
    if (sampler_params_validate(p)) return -1;
    if (B < 1 || T < 1) return SM_ERR("canvas [%d, %d] must have B, T ≥ 1", B, T);
    const int L = p->semi_ar_stride > 0 ? p->semi_ar_length : T; /* the canvas a forward sees */
    if (L > m->max_len) return SM_ERR("canvas length %d exceeds the model's length %d", L, m->max_len);
    if (p->semi_ar_stride > 0 && (T < L || (T - L) % p->semi_ar_stride != 0))
        return SM_ERR("semi-autoregressive length %d is not the round's canvas %d plus a whole "
                      "number of strides of %d", T, L, p->semi_ar_stride);
    if ((int64_t)B * T > INT32_MAX)
        return SM_ERR("canvas [%d, %d] has more than 2^31 positions", B, T);
    for (int i = 0; i < B * T; i++)
        if (x[i] < 0 || x[i] >= m->vocab_size)
            return SM_ERR("token id %d at position %d is outside [0, %d)", x[i], i, m->vocab_size);
    const int V = m->vocab_size;
    if (SM_CHECK_MEMORY(sampler_run_bytes(p, B, T, V), "sampling %d × %d positions over %d "
                        "tokens", B, T, V))
        return -1;
    sampler_job *st = sm_calloc(1, sizeof *st);
    const int nthreads = omp_get_max_threads();
    st->t_start = sm_time_sec();
    st->m = m;
    st->params = *p;
    st->p = &st->params;
    st->B = B;
    st->T = T;
    st->V = V;
    st->x = x;
    st->fixed = fixed;
    if (p->semi_ar_stride > 0) { /* rounds on a canvas of their own (load_round) */
        st->out = x;
        st->out_fixed = fixed;
        st->T_out = T;
        st->rounds = 1 + (T - L) / p->semi_ar_stride;
        st->T = T = L;
        st->x = sm_malloc(sizeof(int32_t) * (size_t)B * L);
        st->round_fixed = sm_malloc((size_t)B * L);
        st->fixed = st->round_fixed;
    }
    const size_t BT = (size_t)B * T;
    st->logp = sm_aligned_alloc(BT * (size_t)V * sizeof(float));
    st->prev_x = sm_malloc(BT * sizeof(int32_t));
    st->need = sm_malloc(BT);
    st->rows = sm_malloc(BT * sizeof(int32_t));
    st->bad = sm_malloc(BT);
    if (p->sm.enabled) {
        st->fb = sm_malloc(BT * sizeof(sm_feedback));
        st->probs = sm_feedback_probs_alloc(&p->sm, BT, V);
        st->masked0 = sm_malloc(sizeof(int) * (size_t)B);
        for (int b = 0; b < B && !st->out; b++)
            st->masked0[b] = count_masked(x + (size_t)b * T, T, m->mask_id);
    }
    if (p->sm.enabled && p->on_step) st->lambda = sm_malloc(BT * sizeof(float));
    st->pbuf = sm_malloc((size_t)nthreads * V * sizeof(float));
    st->order = sm_malloc((size_t)nthreads * V * sizeof(int32_t));
    st->rng = sm_malloc((size_t)B * sizeof(sm_rng));
    st->times = sm_malloc((size_t)B * sizeof(double));
    for (int b = 0; b < B; b++) rng_seed(&st->rng[b], p->seed + (uint64_t)b);
    if (st->out) load_round(st);
    *out = st;
    return 0;
}

void sampler_job_shape(const sampler_job *job, int *T, int *sm_k) {
    *T = job->T;
    *sm_k = job->p->sm.enabled ? job->p->sm.k : 0;
}

void sampler_job_finish(sampler_job *job, sampler_stats *stats) {
    if (!job) return;
    if (job->out && job->round < job->rounds) store_round(job); /* stopped within a round */
    if (stats) {
        *stats = job->stats;
        stats->seconds = sm_time_sec() - job->t_start;
    }
    job_free_buffers(job);
    free(job);
}

int sampler_run(const lm_model *m, const sampler_params *p, int32_t *x, const uint8_t *fixed,
                int B, int T, sampler_stats *stats) {
    memset(stats, 0, sizeof *stats);
    sampler_job *job;
    if (sampler_job_begin(&job, m, p, x, fixed, B, T)) return -1;
    const int rc = sampler_job_run(job);
    sampler_job_finish(job, stats);
    return rc;
}
