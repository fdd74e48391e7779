/* sampler.c — MDLM samplers; see sampler.h and DESIGN §2 (ddpm_cache), §3 (SM feedback). */
#include "generate/sampler.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "compute/kernels.h"
#include "base/rng.h"
#include "models/noise.h"
#include "base/util.h"

#define SAMPLER_EPS 1e-5 /* timesteps = linspace(1, 1e-5, steps + 1) */

static const sm_enum_entry k_kinds[] = {{"ddpm", SAMPLER_DDPM},
                                        {"ddpm_cache", SAMPLER_DDPM_CACHE},
                                        {"remdm-cap", SAMPLER_REMDM_CAP},
                                        {"remdm-loop", SAMPLER_REMDM_LOOP}};

const char *sampler_kind_name(sampler_kind k) { return SM_ENUM_NAME(k_kinds, k); }

int sampler_kind_parse(const char *name, sampler_kind *out) {
    int v;
    if (SM_ENUM_PARSE(k_kinds, name, &v, "sampler")) return -1;
    *out = (sampler_kind)v;
    return 0;
}

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
    return 0;
}

typedef struct {
    const dit_model *m;
    const sampler_params *p;
    int B, T, V, D;
    dit_acts acts;
    float *logp;     /* (B·T, V) SUBS log-probs of the last real forward, compact rows */
    int32_t *row_of; /* (B·T) row of each position in logp, −1 if it was not masked */
    int32_t *prev_x; /* (B·T) the input of the last real forward */
    int32_t *rows;   /* (B·T) masked positions handed to the forward */
    float *sigma;    /* (B) */
    float *pbuf;     /* (nthreads, V) scratch for token draws */
    int32_t *order;  /* (nthreads, V) scratch for nucleus sorting */
    sm_rng *rng;     /* (B) */
    int have_prev;
} run_state;

static void build_input(run_state *st, const int32_t *x) {
    const dit_model *m = st->m;
    if (!st->p->sm.enabled || !st->have_prev) {
        dit_embed_ids(m, &st->acts, x, st->B, st->T);
        return;
    }
    sm_build_input(st->acts.x, m, &st->p->sm, x, (size_t)st->B * st->T, st->logp, st->row_of,
                   st->prev_x);
}

/* One network evaluation on x at time t; leaves SUBS log-probs of the masked rows. */
static void real_forward(run_state *st, const int32_t *x, double t, sampler_stats *stats) {
    const int BT = st->B * st->T, V = st->V, mask = st->m->cfg.mask_id;
    double t0 = sm_time_sec();
    build_input(st, x);
    double t1 = sm_time_sec();
    int n = 0;
    for (int i = 0; i < BT; i++) {
        st->row_of[i] = x[i] == mask ? n : -1;
        if (x[i] == mask) st->rows[n++] = i;
    }
    float sigma = mdlm_sigma(t);
    for (int b = 0; b < st->B; b++) st->sigma[b] = sigma;
    dit_forward_embedded(st->m, &st->acts, st->sigma, st->B, st->T, st->rows, n, st->logp);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++)
        dit_subs_row(st->logp + (size_t)r * V, V, mask);
    memcpy(st->prev_x, x, sizeof(int32_t) * (size_t)BT);
    st->have_prev = 1;
    stats->forwards++;
    stats->sm_seconds += t1 - t0;
    stats->forward_seconds += sm_time_sec() - t1;
}

static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *p = ctx;
    float x = p[*(const int32_t *)a], y = p[*(const int32_t *)b];
    return (x < y) - (x > y);
}

/* Draws a token from p_x0 = exp(row), nucleus-filtered when top_p < 1, by inverse CDF in
 * vocabulary order with a float64 running sum. */
static int32_t draw_token(run_state *st, const float *row, double u) {
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
    if (!remdm) {
        sp.stay_masked = s / t;
        return sp;
    }
    sp.remask = sigma;
    sp.stay_masked = (1.0 - a_s - sigma * a_t) / (1.0 - a_t);
    return sp;
}

/* Updates x in place; returns the number of positions that changed. */
static int update_step(run_state *st, int32_t *x, const uint8_t *fixed, double t, double dt) {
    const int T = st->T, mask = st->m->cfg.mask_id;
    step_probs sp = step_probabilities(st->p, t, dt);
    int changed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : changed)
    for (int b = 0; b < st->B; b++) {
        sm_rng *r = &st->rng[b];
        for (int i = b * T; i < (b + 1) * T; i++) {
            if (fixed && fixed[i]) continue;
            if (x[i] == mask) {
                if (rng_uniform(r) < sp.stay_masked) continue;
                SM_ASSERT(st->row_of[i] >= 0);
                x[i] = draw_token(st, st->logp + (size_t)st->row_of[i] * st->V, rng_uniform(r));
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

static void argmax_fill(run_state *st, int32_t *x) {
    const int V = st->V;
    for (int i = 0; i < st->B * st->T; i++) {
        if (st->row_of[i] < 0) continue;
        const float *row = st->logp + (size_t)st->row_of[i] * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        x[i] = best;
    }
}

int sampler_run(const dit_model *m, const sampler_params *p, int32_t *x, const uint8_t *fixed,
                int B, int T, int nthreads, sampler_stats *stats) {
    if (sampler_params_validate(p)) return -1;
    if (T > m->cfg.model_length)
        return SM_ERR("canvas length %d exceeds the model's length %d", T, m->cfg.model_length);
    for (int i = 0; i < B * T; i++)
        if (x[i] < 0 || x[i] >= m->cfg.vocab_size)
            return SM_ERR("token id %d at position %d is outside [0, %d)", x[i], i, m->cfg.vocab_size);
    memset(stats, 0, sizeof *stats);
    double t_start = sm_time_sec();
    run_state st = {.m = m, .p = p, .B = B, .T = T, .V = m->cfg.vocab_size, .D = m->cfg.hidden};
    const size_t BT = (size_t)B * T;
    dit_acts_alloc(&st.acts, &m->cfg, B, T, nthreads);
    st.logp = sm_aligned_alloc(BT * (size_t)st.V * sizeof(float));
    st.row_of = sm_malloc(BT * sizeof(int32_t));
    st.prev_x = sm_malloc(BT * sizeof(int32_t));
    st.rows = sm_malloc(BT * sizeof(int32_t));
    st.sigma = sm_malloc((size_t)B * sizeof(float));
    st.pbuf = sm_malloc((size_t)nthreads * st.V * sizeof(float));
    st.order = sm_malloc((size_t)nthreads * st.V * sizeof(int32_t));
    st.rng = sm_malloc((size_t)B * sizeof(sm_rng));
    for (int b = 0; b < B; b++) rng_seed(&st.rng[b], p->seed + (uint64_t)b);

    const int cache_ok = p->kind != SAMPLER_DDPM && !m->cfg.time_conditioning;
    const double dt = (1.0 - SAMPLER_EPS) / p->steps;
    int cached = 0;
    for (int i = 0; i < p->steps; i++) {
        double t = 1.0 - i * dt;
        if (!cached) real_forward(&st, x, t, stats);
        int changed = update_step(&st, x, fixed, t, dt);
        cached = cache_ok && changed == 0;
        stats->steps++;
        if (p->on_step) p->on_step(p->user, i + 1, p->steps, x, B, T);
    }
    if (p->noise_removal) {
        int any_masked = 0;
        for (size_t i = 0; i < BT; i++) any_masked |= x[i] == m->cfg.mask_id;
        if (any_masked) { /* with nothing masked, the argmax of SUBS one-hot rows is x itself */
            real_forward(&st, x, SAMPLER_EPS, stats);
            argmax_fill(&st, x);
        }
        if (p->on_step) p->on_step(p->user, p->steps, p->steps, x, B, T);
    }
    stats->seconds = sm_time_sec() - t_start;
    dit_acts_free(&st.acts);
    free(st.logp);
    free(st.row_of);
    free(st.prev_x);
    free(st.rows);
    free(st.sigma);
    free(st.pbuf);
    free(st.order);
    free(st.rng);
    return 0;
}
