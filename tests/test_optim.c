/* test_optim.c — AdamW + clipping + LambdaLR + EMA against torch's trajectory
 * (tests/gen_optim_fixtures.py), the schedules against HF's lambdas, the grad norm's
 * determinism, and config validation. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "formats/npy.h"
#include "train/optim.h"
#include "base/rng.h"
#include "testutil.h"
#include "base/util.h"

/* must match tests/gen_optim_fixtures.py */
#define N0 37
#define N1 5
#define NP (N0 + N1)
#define STEPS 12
#define LR_TABLE_STEPS 16

static double *load_f64bits(const char *path, size_t *n) {
    npy_array a;
    if (npy_read(path, &a) != 0) {
        print_error("cannot load fixture: %s\n", smdlm_last_error());
        fail();
    }
    assert_int_equal(a.dtype, NPY_I8);
    double *out = sm_malloc(a.numel * sizeof *out);
    memcpy(out, a.data, a.numel * sizeof *out);
    *n = a.numel;
    npy_free(&a);
    return out;
}

static size_t count_identical(const float *a, const float *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += memcmp(&a[i], &b[i], sizeof(float)) == 0;
    return k;
}

/* The whole 12-step trajectory: returned norms, clipped grads, params and EMA after every
 * step. Our norm and torch's float32 norm differ by an ulp on half the steps, so do the clip
 * coefficients on two clipped steps, and that ulp then travels through Adam's normalisation
 * into the parameters (observed: ≤ 3.7e-9 absolute, ~2 ulps of values near 1e-3).
 * Tolerance: 1e-6 relative, plus 1e-8 absolute for the parameters and EMA, which start at
 * std 0.02 and cross zero (a parameter at 7.6e-4 moved by 4e-10 is 5e-7 relative). The
 * counts of bit-identical values are printed. */
static void test_trajectory(void **state) {
    size_t n;
    float *p0 = tu_load_f32(tu_fixture("optim/params0.npy"), &n);
    assert_int_equal(n, NP);
    float *grads = tu_load_f32(tu_fixture("optim/grads.npy"), &n);
    assert_int_equal(n, (size_t)STEPS * NP);
    float *clipped = tu_load_f32(tu_fixture("optim/clipped.npy"), &n);
    assert_int_equal(n, (size_t)STEPS * NP);
    float *ref_p = tu_load_f32(tu_fixture("optim/params.npy"), &n);
    assert_int_equal(n, (size_t)STEPS * NP);
    float *ref_ema = tu_load_f32(tu_fixture("optim/ema.npy"), &n);
    assert_int_equal(n, (size_t)STEPS * NP);
    float *norms = tu_load_f32(tu_fixture("optim/norms.npy"), &n);
    assert_int_equal(n, STEPS);
    double *norms64 = load_f64bits(tu_fixture("optim/norms_f64bits.npy"), &n);
    assert_int_equal(n, STEPS);

    float params[NP], g[NP], ema[NP];
    memcpy(params, p0, sizeof params);
    memcpy(ema, p0, sizeof ema);
    optim_group groups[2] = {
        {.params = params, .grads = g, .n = N0, .lr = 3e-3f, .weight_decay = 0.1f},
        {.params = params + N0, .grads = g + N0, .n = N1, .lr = 1e-2f, .weight_decay = 0.0f},
    };
    optim_config cfg;
    optim_config_default(&cfg);
    cfg.warmup_steps = 3;
    cfg.schedule = SCHED_COSINE;
    cfg.total_steps = 12;
    cfg.min_lr_ratio = 0.1f;
    cfg.grad_clip = 0.5f;
    assert_int_equal(optim_config_validate(&cfg), 0);
    adamw o;
    adamw_init(&o, &cfg, groups, 2);

    size_t bad = 0, same_p = 0, same_g = 0, same_e = 0, same_norm = 0, nclipped = 0;
    double worst_norm = 0;
    for (int k = 0; k < STEPS; k++) {
        memcpy(g, grads + (size_t)k * NP, sizeof g);
        double norm = adamw_step(&o);
        assert_int_equal(o.step, k + 1);
        double rel64 = fabs(norm - norms64[k]) / norms64[k];
        double relt = fabs(norm - norms[k]) / norms[k];
        if (relt > worst_norm) worst_norm = relt;
        same_norm += (float)norm == norms[k];
        nclipped += norms[k] > 0.5f;
        if (!(rel64 <= 1e-13) || !(relt <= 1e-6)) {
            printf("  step %d: norm %.17g, numpy f64 %.17g, torch %.9g\n", k, norm, norms64[k],
                   (double)norms[k]);
            bad++;
        }
        char what[64];
        snprintf(what, sizeof what, "clipped grads step %d", k);
        bad += tu_compare_f32(what, g, clipped + (size_t)k * NP, NP, 0.0f, 1e-6f);
        snprintf(what, sizeof what, "params step %d", k);
        bad += tu_compare_f32(what, params, ref_p + (size_t)k * NP, NP, 1e-8f, 1e-6f);
        ema_update(ema, params, NP, 0.9f);
        snprintf(what, sizeof what, "ema step %d", k);
        bad += tu_compare_f32(what, ema, ref_ema + (size_t)k * NP, NP, 1e-8f, 1e-6f);
        /* with the same float32 norm, the clip coefficient, hence the gradients, are torch's */
        if ((float)norm == norms[k] && count_identical(g, clipped + (size_t)k * NP, NP) != NP) {
            printf("  step %d: same norm as torch but different clipped gradients\n", k);
            bad++;
        }
        same_g += count_identical(g, clipped + (size_t)k * NP, NP);
        same_p += count_identical(params, ref_p + (size_t)k * NP, NP);
        same_e += count_identical(ema, ref_ema + (size_t)k * NP, NP);
    }
    printf("  norms: worst rel diff to torch's float32 norm %.3g, %zu/%d identical as float32;"
           " clipping on %zu steps\n", worst_norm, same_norm, STEPS, nclipped);
    printf("  bit-identical: clipped grads %zu/%d, params %zu/%d, ema %zu/%d\n", same_g,
           STEPS * NP, same_p, STEPS * NP, same_e, STEPS * NP);
    assert_true(nclipped >= 3 && nclipped <= STEPS - 3);
    assert_int_equal(bad, 0);
    adamw_free(&o);
    free(p0), free(grads), free(clipped), free(ref_p), free(ref_ema), free(norms), free(norms64);
}

/* The update alone, fed torch's clipped gradients (clipping off): every parameter and EMA
 * value must be bit-identical to torch's, every step. This is what catches a change in the
 * order of operations (a lost fma, 1 − β taken in float32, a reciprocal instead of a
 * division), which moves values by an ulp or two and hides under the 1e-6 tolerance. */
static void test_update_bitexact(void **state) {
    size_t n;
    float *p0 = tu_load_f32(tu_fixture("optim/params0.npy"), &n);
    assert_int_equal(n, NP);
    float *clipped = tu_load_f32(tu_fixture("optim/clipped.npy"), &n);
    assert_int_equal(n, (size_t)STEPS * NP);
    float *ref_p = tu_load_f32(tu_fixture("optim/params.npy"), &n);
    assert_int_equal(n, (size_t)STEPS * NP);
    float *ref_ema = tu_load_f32(tu_fixture("optim/ema.npy"), &n);
    assert_int_equal(n, (size_t)STEPS * NP);

    float params[NP], g[NP], ema[NP];
    memcpy(params, p0, sizeof params);
    memcpy(ema, p0, sizeof ema);
    optim_group groups[2] = {
        {.params = params, .grads = g, .n = N0, .lr = 3e-3f, .weight_decay = 0.1f},
        {.params = params + N0, .grads = g + N0, .n = N1, .lr = 1e-2f, .weight_decay = 0.0f},
    };
    optim_config cfg;
    optim_config_default(&cfg);
    cfg.warmup_steps = 3, cfg.schedule = SCHED_COSINE, cfg.total_steps = 12, cfg.min_lr_ratio = 0.1f;
    cfg.grad_clip = 0.0f;
    adamw o;
    adamw_init(&o, &cfg, groups, 2);
    size_t bad = 0;
    for (int k = 0; k < STEPS; k++) {
        memcpy(g, clipped + (size_t)k * NP, sizeof g);
        adamw_step(&o);
        ema_update(ema, params, NP, 0.9f);
        size_t bp = NP - count_identical(params, ref_p + (size_t)k * NP, NP);
        size_t be = NP - count_identical(ema, ref_ema + (size_t)k * NP, NP);
        if (bp || be) {
            char what[64];
            snprintf(what, sizeof what, "params step %d (exact)", k);
            tu_compare_f32(what, params, ref_p + (size_t)k * NP, NP, 0.0f, 0.0f);
            snprintf(what, sizeof what, "ema step %d (exact)", k);
            tu_compare_f32(what, ema, ref_ema + (size_t)k * NP, NP, 0.0f, 0.0f);
        }
        bad += bp + be;
    }
    printf("  %zu of %d params + ema values differ from torch's bits\n", bad, 2 * STEPS * NP);
    assert_int_equal(bad, 0);
    adamw_free(&o);
    free(p0), free(clipped), free(ref_p), free(ref_ema);
}

/* clip_grad_norm_ alone, max_norm 0.7: where our float32-rounded norm equals torch's (torch
 * accumulates each tensor's norm in float32, we in double), the clipped gradients must be
 * torch's bits — coef = (1/(norm + 1e-6))·0.7, which differs from 0.7/(norm + 1e-6). */
#define CLIP_CASES 64
#define CLIP_N 9
static void test_clip_exact(void **state) {
    size_t n;
    float *raw = tu_load_f32(tu_fixture("optim/clip_raw.npy"), &n);
    assert_int_equal(n, CLIP_CASES * CLIP_N);
    float *ref = tu_load_f32(tu_fixture("optim/clip_clipped.npy"), &n);
    assert_int_equal(n, CLIP_CASES * CLIP_N);
    float *norms = tu_load_f32(tu_fixture("optim/clip_norms.npy"), &n);
    assert_int_equal(n, CLIP_CASES);
    optim_config cfg;
    optim_config_default(&cfg);
    cfg.grad_clip = 0.7f;
    size_t same_norm = 0, bad = 0;
    for (int k = 0; k < CLIP_CASES; k++) {
        float p[CLIP_N] = {0}, g[CLIP_N];
        memcpy(g, raw + k * CLIP_N, sizeof g);
        optim_group grp = {.params = p, .grads = g, .n = CLIP_N, .lr = 1e-3f};
        adamw o;
        adamw_init(&o, &cfg, &grp, 1);
        double norm = adamw_step(&o);
        adamw_free(&o);
        if (!(fabs(norm - norms[k]) <= 2e-7 * norms[k])) {
            printf("  case %d: norm %.9g, torch %.9g\n", k, norm, (double)norms[k]);
            bad++;
        }
        if ((float)norm != norms[k]) continue;
        same_norm++;
        if (count_identical(g, ref + k * CLIP_N, CLIP_N) != CLIP_N) {
            tu_compare_f32("clipped (same norm)", g, ref + k * CLIP_N, CLIP_N, 0.0f, 0.0f);
            bad++;
        }
    }
    printf("  %zu of %d cases with torch's float32 norm; %zu mismatches\n", same_norm,
           CLIP_CASES, bad);
    assert_true(same_norm >= CLIP_CASES / 2); /* the comparison must have something to see */
    assert_int_equal(bad, 0);
    free(raw), free(ref), free(norms);
}

/* A group's own ε: the first update is lr·ĝ/(|ĝ| + ε) (bias-corrected moments: ĝ = g), so a
 * gradient of 1e-10 moves a parameter by lr·1e-10/(1e-10 + 1e-8) ≈ lr/101 under torch's ε and
 * by ≈ lr under ε = 1e-16; a group with ε 0 takes the config's. */
static void test_group_eps(void **state) {
    optim_config cfg;
    optim_config_default(&cfg);
    cfg.grad_clip = 0.0f;
    float p[2] = {0, 0}, g[2] = {1e-10f, 1e-10f};
    optim_group grp[2] = {{.params = p, .grads = g, .n = 1, .lr = 1e-2f},
                          {.params = p + 1, .grads = g + 1, .n = 1, .lr = 1e-2f, .eps = 1e-16f}};
    adamw o;
    adamw_init(&o, &cfg, grp, 2);
    adamw_step(&o);
    adamw_free(&o);
    double want[2] = {-1e-2 * 1e-10 / (1e-10 + 1e-8), -1e-2 * 1e-10 / (1e-10 + 1e-16)};
    printf("  ε 1e-8: %.6g (want %.6g); ε 1e-16: %.6g (want %.6g)\n", p[0], want[0], p[1], want[1]);
    for (int i = 0; i < 2; i++) assert_true(fabs(p[i] - want[i]) <= 1e-5 * fabs(want[i]));
}

/* optim_lr_factor against HF's lambdas (float64 in Python, rounded to float32): exact. */
static void test_lr_factors(void **state) {
    static const struct {
        int warmup;
        sched_kind kind;
        long total;
        float min_ratio;
    } cfgs[] = {
        {3, SCHED_COSINE, 12, 0.1f}, {0, SCHED_CONSTANT, 0, 0.0f}, {5, SCHED_CONSTANT, 0, 0.0f},
        {1, SCHED_CONSTANT, 0, 0.0f}, {0, SCHED_COSINE, 7, 0.0f},  {4, SCHED_COSINE, 10, 0.0f},
        {2, SCHED_COSINE, 3, 0.25f},
    };
    size_t ncfg = sizeof cfgs / sizeof cfgs[0], n;
    float *table = tu_load_f32(tu_fixture("optim/lr_tables.npy"), &n);
    assert_int_equal(n, ncfg * LR_TABLE_STEPS);
    size_t bad = 0;
    for (size_t c = 0; c < ncfg; c++) {
        optim_config cfg;
        optim_config_default(&cfg);
        cfg.warmup_steps = cfgs[c].warmup;
        cfg.schedule = cfgs[c].kind;
        cfg.total_steps = cfgs[c].total;
        cfg.min_lr_ratio = cfgs[c].min_ratio;
        assert_int_equal(optim_config_validate(&cfg), 0);
        float got[LR_TABLE_STEPS];
        for (long s = 0; s < LR_TABLE_STEPS; s++) got[s] = optim_lr_factor(&cfg, s);
        char what[64];
        snprintf(what, sizeof what, "lr factors config %zu", c);
        bad += tu_compare_f32(what, got, table + c * LR_TABLE_STEPS, LR_TABLE_STEPS, 0.0f, 0.0f);
    }
    /* the factors LambdaLR applied during the trajectory */
    float *used = tu_load_f32(tu_fixture("optim/lr_used.npy"), &n);
    assert_int_equal(n, STEPS);
    optim_config cfg;
    optim_config_default(&cfg);
    cfg.warmup_steps = 3, cfg.schedule = SCHED_COSINE, cfg.total_steps = 12, cfg.min_lr_ratio = 0.1f;
    float got[STEPS];
    for (long s = 0; s < STEPS; s++) got[s] = optim_lr_factor(&cfg, s);
    bad += tu_compare_f32("lr factors used", got, used, STEPS, 0.0f, 0.0f);
    assert_int_equal(bad, 0);
    free(table), free(used);
}

/* optim_grad_norm: the same bits with 1..4 threads, and within 1e-13 of a long double sum;
 * groups of odd sizes spanning several chunks, and an empty group. */
static void test_grad_norm_deterministic(void **state) {
    sm_rng rng;
    rng_seed(&rng, 7);
    size_t sizes[3] = {1000003, 0, 700001}; /* 53 chunks of 32768 */
    float *bufs[3];
    optim_group groups[3];
    long double ref = 0;
    for (int i = 0; i < 3; i++) {
        bufs[i] = sm_malloc(sizeof(float) * (sizes[i] + 1));
        for (size_t j = 0; j < sizes[i]; j++) {
            /* magnitudes over 6 decades, so that the order of the sums shows in the bits */
            bufs[i][j] = (float)((2.0 * rng_uniform(&rng) - 1.0) * exp(-14 * rng_uniform(&rng)));
            ref += (long double)bufs[i][j] * bufs[i][j];
        }
        groups[i] = (optim_group){.params = bufs[i], .grads = bufs[i], .n = sizes[i], .lr = 1e-3f};
    }
    double want = (double)sqrtl(ref);
    optim_config cfg;
    optim_config_default(&cfg);
    adamw o;
    adamw_init(&o, &cfg, groups, 3);
    int saved = omp_get_max_threads();
    double first = 0;
    for (int t = 1; t <= 4; t++) {
        omp_set_num_threads(t);
        double got = optim_grad_norm(&o);
        printf("  %d thread(s): norm %.17g (long double %.17g, rel %.2g)\n", t, got, want,
               fabs(got - want) / want);
        if (t == 1) first = got;
        assert_memory_equal(&got, &first, sizeof got);
        assert_true(fabs(got - want) <= 1e-13 * want);
    }
    omp_set_num_threads(saved);
    adamw_free(&o);
    for (int i = 0; i < 3; i++) free(bufs[i]);

    /* nothing at all to sum */
    float dummy = 0;
    optim_group empty = {.params = &dummy, .grads = &dummy, .n = 0, .lr = 1e-3f};
    adamw_init(&o, &cfg, &empty, 1);
    assert_true(optim_grad_norm(&o) == 0.0);
    adamw_free(&o);
}

/* grad_clip ≤ 0 leaves the gradients alone; a NaN gradient poisons every gradient as it does
 * in torch (coef NaN survives the clamp); below max_norm the gradients are unchanged. */
static void test_clip_edges(void **state) {
    float p[6] = {1, 2, 3, 4, 5, 6}, g[6] = {3, 4, 0, 0, 0, 0}, g0[6];
    memcpy(g0, g, sizeof g);
    optim_group grp = {.params = p, .grads = g, .n = 6, .lr = 1e-3f, .weight_decay = 0.0f};
    optim_config cfg;
    optim_config_default(&cfg);
    cfg.grad_clip = 0.0f;
    adamw o;
    adamw_init(&o, &cfg, &grp, 1);
    assert_true(adamw_step(&o) == 5.0);
    assert_memory_equal(g, g0, sizeof g);
    adamw_free(&o);

    cfg.grad_clip = 10.0f; /* norm 5 < 10: coef clamped to 1 */
    adamw_init(&o, &cfg, &grp, 1);
    assert_true(adamw_step(&o) == 5.0);
    assert_memory_equal(g, g0, sizeof g);
    adamw_free(&o);

    cfg.grad_clip = 1.0f; /* norm 5: coef (1/(5 + 1e-6))·1 */
    adamw_init(&o, &cfg, &grp, 1);
    assert_true(adamw_step(&o) == 5.0);
    float coef = 1.0f / (5.0f + 1e-6f);
    assert_true(g[0] == 3.0f * coef && g[1] == 4.0f * coef && g[2] == 0.0f);
    adamw_free(&o);

    memcpy(g, g0, sizeof g);
    g[2] = NAN;
    adamw_init(&o, &cfg, &grp, 1);
    assert_true(isnan(adamw_step(&o)));
    for (int i = 0; i < 6; i++) assert_true(isnan(g[i]));
    adamw_free(&o);
}

static void expect_invalid(const optim_config *c, const char *what, const char *field) {
    const char *words[] = {field, NULL};
    tu_expect_error(optim_config_validate(c), what, words);
}

static void test_config_validate(void **state) {
    optim_config d, c;
    optim_config_default(&d);
    assert_true(d.beta1 == 0.9f && d.beta2 == 0.999f && d.eps == 1e-8f);
    assert_true(d.warmup_steps == 0 && d.schedule == SCHED_CONSTANT && d.total_steps == 0);
    assert_true(d.min_lr_ratio == 0.0f && d.grad_clip == 1.0f);
    assert_int_equal(optim_config_validate(&d), 0);
    c = d, c.grad_clip = 0.0f; /* disabled */
    assert_int_equal(optim_config_validate(&c), 0);
    c = d, c.grad_clip = -1.0f;
    assert_int_equal(optim_config_validate(&c), 0);
    c = d, c.beta1 = 0.0f; /* [0, 1) includes 0 */
    assert_int_equal(optim_config_validate(&c), 0);
    c = d, c.schedule = SCHED_COSINE, c.warmup_steps = 10, c.total_steps = 11;
    assert_int_equal(optim_config_validate(&c), 0);

    c = d, c.beta1 = 1.0f;
    expect_invalid(&c, "beta1 = 1", "beta1");
    c = d, c.beta1 = -0.1f;
    expect_invalid(&c, "beta1 = -0.1", "beta1");
    c = d, c.beta1 = NAN;
    expect_invalid(&c, "beta1 = nan", "beta1");
    c = d, c.beta2 = 1.0f;
    expect_invalid(&c, "beta2 = 1", "beta2");
    c = d, c.eps = 0.0f;
    expect_invalid(&c, "eps = 0", "eps");
    c = d, c.eps = INFINITY;
    expect_invalid(&c, "eps = inf", "eps");
    c = d, c.warmup_steps = -1;
    expect_invalid(&c, "warmup_steps = -1", "warmup_steps");
    c = d, c.schedule = (sched_kind)7;
    expect_invalid(&c, "schedule = 7", "schedule");
    c = d, c.total_steps = -5;
    expect_invalid(&c, "total_steps = -5", "total_steps");
    c = d, c.schedule = SCHED_COSINE, c.warmup_steps = 10, c.total_steps = 10;
    expect_invalid(&c, "cosine total = warmup", "total_steps");
    c = d, c.schedule = SCHED_COSINE, c.total_steps = 0;
    expect_invalid(&c, "cosine total 0", "total_steps");
    c = d, c.min_lr_ratio = 1.5f;
    expect_invalid(&c, "min_lr_ratio = 1.5", "min_lr_ratio");
    c = d, c.min_lr_ratio = -0.1f;
    expect_invalid(&c, "min_lr_ratio = -0.1", "min_lr_ratio");
    c = d, c.grad_clip = INFINITY;
    expect_invalid(&c, "grad_clip = inf", "grad_clip");
    c = d, c.grad_clip = NAN;
    expect_invalid(&c, "grad_clip = nan", "grad_clip");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trajectory),
        cmocka_unit_test(test_update_bitexact),
        cmocka_unit_test(test_clip_exact),
        cmocka_unit_test(test_group_eps),
        cmocka_unit_test(test_lr_factors),
        cmocka_unit_test(test_grad_norm_deterministic),
        cmocka_unit_test(test_clip_edges),
        cmocka_unit_test(test_config_validate),
    };
    return TU_RUN_PER_ISA("optim", tests);
}
