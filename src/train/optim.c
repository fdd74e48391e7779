/* optim.c — AdamW, learning-rate schedules, global grad-norm clipping and EMA (see optim.h).
 *
 * Numerics (what "matches PyTorch" means here; tests/gen_optim_fixtures.py is the reference):
 *   - Hyper-parameters are float fields, but PyTorch works with Python floats (float64): it
 *     computes 1 − β, 1 − lr·wd, βᵗ, lr/(1 − β₁ᵗ) in float64 and rounds each result to
 *     float32 only when it meets a tensor. A float32 field read as its exact value would
 *     differ from a training script's decimal: 1 − (double)0.9f = 0.100000024 while torch
 *     uses 1 − 0.9 → 0.1f; for EMA 0.9999 the weight 1 − decay would be off by 1.7e-5
 *     relative. So every field is read back as the *shortest decimal that rounds to it*
 *     (0.9f → 0.9, 3e-4f → 3e-4), which is the float64 a Python script would have used.
 *   - The element-wise update follows torch 1.13's _single_tensor_adamw op by op, each
 *     op rounded to float32 as torch's kernels do. Debian's torch runs its AVX2 kernels
 *     compiled with FMA contraction: exp_avg.add_(grad, alpha) is fma(grad, alpha, m·β₁) and
 *     exp_avg_sq.addcmul_(grad, grad, value) is fma(value·grad, grad, v·β₂) (checked against
 *     a numpy emulation on every element, vector body and scalar tail alike; the
 *     test_update_bitexact test holds it); we use fmaf there (correctly rounded on every
 *     code path, so the results do not depend on the CPU). Tensor ÷ Python scalar is a true
 *     division (not a multiplication by the reciprocal).
 *   - Clipping mirrors clip_grad_norm_: coef = (1/(norm + 1e-6)) · max_norm in float32 (the
 *     scalar-over-tensor division is Tensor.__rdiv__ = reciprocal() · other), clamped to 1
 *     with NaN kept, and always multiplied into the gradients, in place. torch takes the
 *     norm of per-tensor float32 norms, each accumulated in float32; we accumulate every
 *     group in double and round once. The two can differ by an ulp of the norm (so of the
 *     clip coefficient) — the only place where the trajectories are not identical by
 *     construction.
 *   - optim_grad_norm is deterministic whatever the thread count and the CPU: fixed chunks of
 *     NORM_CHUNK elements, each summed with 8 fixed accumulators, partial sums combined in
 *     chunk order.
 */
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "train/optim_simd.h"

#define NORM_CHUNK 32768
#define UPDATE_BLOCK 8192

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* see optim.h */
double optim_as_decimal(float x) {
    if (!isfinite(x) || x == 0.0f) return (double)x;
    char buf[40];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        double d = strtod(buf, NULL);
        if ((float)d == x) return d;
    }
    return (double)x;
}

static const sm_enum_entry k_schedules[] = {{"constant", SCHED_CONSTANT}, {"cosine", SCHED_COSINE}};

SM_ENUM_PARSER(sched_kind_parse, sched_kind, k_schedules, "schedule")
const char *sched_kind_name(sched_kind k) { return SM_ENUM_NAME(k_schedules, k); }

void optim_config_default(optim_config *c) {
    memset(c, 0, sizeof *c);
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->warmup_steps = 0;
    c->schedule = SCHED_CONSTANT;
    c->total_steps = 0;
    c->min_lr_ratio = 0.0f;
    c->grad_clip = 1.0f;
}

int optim_config_validate(const optim_config *c) {
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
        return SM_ERR("beta1 must be in [0, 1), got %g", (double)c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return SM_ERR("beta2 must be in [0, 1), got %g", (double)c->beta2);
    if (!(c->eps > 0.0f && isfinite(c->eps)))
        return SM_ERR("eps must be a finite number > 0, got %g", (double)c->eps);
    if (c->warmup_steps < 0)
        return SM_ERR("warmup_steps must be >= 0, got %d", c->warmup_steps);
    if (c->schedule != SCHED_CONSTANT && c->schedule != SCHED_COSINE)
        return SM_ERR("schedule must be constant or cosine, got %d", (int)c->schedule);
    if (c->total_steps < 0)
        return SM_ERR("total_steps must be >= 0, got %ld", c->total_steps);
    if (c->schedule == SCHED_COSINE && c->total_steps <= c->warmup_steps)
        return SM_ERR("total_steps (%ld) must exceed warmup_steps (%d) for the cosine schedule",
                      c->total_steps, c->warmup_steps);
    if (!(c->min_lr_ratio >= 0.0f && c->min_lr_ratio <= 1.0f))
        return SM_ERR("min_lr_ratio must be in [0, 1], got %g", (double)c->min_lr_ratio);
    if (!isfinite(c->grad_clip))
        return SM_ERR("grad_clip must be finite (<= 0 disables clipping), got %g",
                      (double)c->grad_clip);
    return 0;
}

void adamw_init(adamw *o, const optim_config *cfg, const optim_group *groups, int ngroups) {
    SM_ASSERT(ngroups >= 1 && ngroups <= OPTIM_MAX_GROUPS);
    SM_ASSERT(optim_config_validate(cfg) == 0); /* callers validate untrusted configs first */
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->ngroups = ngroups;
    size_t total = 0;
    for (int i = 0; i < ngroups; i++) {
        const optim_group *g = &groups[i];
        SM_ASSERT(g->n == 0 || (g->params && g->grads));
        /* torch.optim.AdamW refuses a negative lr or weight decay */
        SM_ASSERT(g->lr >= 0.0f && isfinite(g->lr));
        SM_ASSERT(g->weight_decay >= 0.0f && isfinite(g->weight_decay));
        o->groups[i] = *g;
        SM_ASSERT(sm_add_size(total, g->n, &total) == 0);
    }
    o->nm = total;
    size_t bytes;
    SM_ASSERT(sm_mul_size(total, 2 * sizeof(float), &bytes) == 0);
    /* m and v share one allocation: v = m + total */
    o->m = sm_calloc(total ? 2 * total : 1, sizeof(float));
    o->v = o->m + total;
    o->step = 0;
}

void adamw_free(adamw *o) {
    free(o->m);
    o->m = o->v = NULL;
}

static double lr_factor(const optim_config *c, long step) {
    long warmup = c->warmup_steps;
    if (step < warmup) return (double)step / (double)(warmup > 1 ? warmup : 1);
    if (c->schedule == SCHED_CONSTANT) return 1.0;
    long span = c->total_steps - warmup;
    double progress = (double)(step - warmup) / (double)(span > 1 ? span : 1);
    double f = 0.5 * (1.0 + cos(M_PI * progress));
    double lo = optim_as_decimal(c->min_lr_ratio);
    return f > lo ? f : lo;
}

float optim_lr_factor(const optim_config *c, long step) { return (float)lr_factor(c, step); }

double optim_grad_norm(const adamw *o) {
    size_t nchunks[OPTIM_MAX_GROUPS], total = 0;
    for (int gi = 0; gi < o->ngroups; gi++) {
        nchunks[gi] = (o->groups[gi].n + NORM_CHUNK - 1) / NORM_CHUNK;
        total += nchunks[gi];
    }
    if (total == 0) return 0.0;
    double *part = sm_malloc(total * sizeof *part);
    size_t base = 0;
    for (int gi = 0; gi < o->ngroups; gi++) {
        const float *g = o->groups[gi].grads;
        size_t n = o->groups[gi].n;
        long nc = (long)nchunks[gi];
#pragma omp parallel for schedule(static)
        for (long c = 0; c < nc; c++) {
            size_t lo = (size_t)c * NORM_CHUNK, len = n - lo < NORM_CHUNK ? n - lo : NORM_CHUNK;
            part[base + (size_t)c] = optim_kernels_active()->sumsq_chunk(g + lo, len);
        }
        base += nchunks[gi];
    }
    double s = 0.0;
    for (size_t c = 0; c < total; c++) s += part[c];
    free(part);
    return sqrt(s);
}

double adamw_step(adamw *o) {
    const optim_config *c = &o->cfg;
    double norm = optim_grad_norm(o);
    if (c->grad_clip > 0.0f) {
        float tn = (float)norm;
        float coef = (1.0f / (tn + 1e-6f)) * c->grad_clip;
        if (coef > 1.0f) coef = 1.0f; /* torch.clamp(max=1): NaN stays NaN */
        for (int gi = 0; gi < o->ngroups; gi++) {
            float *g = o->groups[gi].grads;
            long n = (long)o->groups[gi].n, nb = (n + UPDATE_BLOCK - 1) / UPDATE_BLOCK;
#pragma omp parallel for schedule(static)
            for (long b = 0; b < nb; b++) {
                long lo = b * UPDATE_BLOCK, len = n - lo < UPDATE_BLOCK ? n - lo : UPDATE_BLOCK;
                optim_kernels_active()->scale_row(g + lo, (size_t)len, coef);
            }
        }
    }

    double factor = lr_factor(c, o->step);
    o->step++;
    double t = (double)o->step;
    double beta1 = optim_as_decimal(c->beta1), beta2 = optim_as_decimal(c->beta2);
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    size_t off = 0;
    for (int gi = 0; gi < o->ngroups; gi++) {
        optim_group *gr = &o->groups[gi];
        double lr = optim_as_decimal(gr->lr) * factor;
        adamw_coefs k = {
            .decay_mul = (float)(1.0 - lr * optim_as_decimal(gr->weight_decay)),
            .beta1 = (float)beta1,
            .one_minus_beta1 = (float)(1.0 - beta1),
            .beta2 = (float)beta2,
            .one_minus_beta2 = (float)(1.0 - beta2),
            .bc2_sqrt = (float)sqrt(bc2),
            .eps = (float)optim_as_decimal(gr->eps > 0.0f ? gr->eps : c->eps),
            .neg_step_size = (float)(-(lr / bc1)),
        };
        float *m = o->m + off, *v = o->v + off;
        long n = (long)gr->n, nb = (n + UPDATE_BLOCK - 1) / UPDATE_BLOCK;
#pragma omp parallel for schedule(static)
        for (long b = 0; b < nb; b++) {
            long lo = b * UPDATE_BLOCK, len = n - lo < UPDATE_BLOCK ? n - lo : UPDATE_BLOCK;
            optim_kernels_active()->adamw_row(gr->params + lo, gr->grads + lo, m + lo, v + lo, (size_t)len, k);
        }
        off += gr->n;
    }
    return norm;
}

void ema_update(float *ema, const float *params, size_t n, float decay) {
    /* torch: ema.mul_(decay).add_(p, alpha=1 − decay), the add fused as in AdamW's exp_avg */
    double d = optim_as_decimal(decay);
    float df = (float)d, om = (float)(1.0 - d);
    long nl = (long)n, nb = (nl + UPDATE_BLOCK - 1) / UPDATE_BLOCK;
#pragma omp parallel for schedule(static)
    for (long b = 0; b < nb; b++) {
        long lo = b * UPDATE_BLOCK, len = nl - lo < UPDATE_BLOCK ? nl - lo : UPDATE_BLOCK;
        optim_kernels_active()->ema_row(ema + lo, params + lo, (size_t)len, df, om);
    }
}
