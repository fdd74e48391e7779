/* test_api_public.c — the library as an outside program sees it: compiled with include/ alone
 * (no src/ headers) and linked against the core library without MPI (Makefile). Step callback
 * and statistics, stopping a run, two generations on one loaded model from two threads,
 * infilling on MDLM and Dream. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smdlm.h"

#define DEFAULT_MODEL "models/default"
#define TINY_DREAM "tests/fixtures/tiny-dream"

static smdlm_model *load(const char *dir, int threads) {
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = threads;
    smdlm_model *model = smdlm_model_load(dir, &lp);
    if (!model) fprintf(stderr, "%s\n", smdlm_last_error());
    assert_non_null(model);
    return model;
}

static smdlm_gen_params mdlm_params(void) {
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.mdlm.len = 48;
    gp.steps = 12;
    gp.seed = 7;
    return gp;
}

/* What the step callback saw. */
typedef struct {
    int calls, last_step, last_forwards, stop_at;
    int lambda_seen;   /* some masked position carried λ > 0 */
    int bad;           /* an inconsistency between ids, masked and λ */
} step_log;

static int on_step(void *user, const smdlm_step *s) {
    step_log *log = user;
    log->calls++;
    log->bad |= s->step != log->last_step + 1 && s->step != s->steps;
    log->bad |= s->forwards < log->last_forwards;
    log->last_step = s->step;
    log->last_forwards = s->forwards;
    for (int i = 0; i < s->B * s->T; i++) {
        log->bad |= s->masked[i] != (s->ids[i] == s->mask_id);
        if (s->lambda) {
            log->bad |= !s->masked[i] && s->lambda[i] != 0.0f;
            log->lambda_seen |= s->masked[i] && s->lambda[i] > 0.0f;
        }
    }
    return log->stop_at && s->step == log->stop_at;
}

static int count_masked(const smdlm_model *model, const smdlm_result *r) {
    int n = 0;
    for (int i = 0; i < r->n * r->T; i++) n += r->ids[i] == smdlm_mask_id(model);
    return n;
}

static void test_callback_and_abort(void **unused) {
    (void)unused;
    smdlm_model *model = load(DEFAULT_MODEL, 2);
    smdlm_state *st = smdlm_state_new(model);
    assert_int_equal(smdlm_model_arch(model), SMDLM_ARCH_MDLM);
    assert_int_equal(smdlm_model_softmask(model).mode, SMDLM_SM_ON); /* the model's learnt values */

    /* ddpm without noise removal: one forward per step, one callback per step */
    smdlm_gen_params gp = mdlm_params();
    gp.mdlm.sampler = "ddpm";
    gp.mdlm.noise_removal = 0;
    gp.n = 2;
    step_log log = {0};
    gp.on_step = on_step;
    gp.user = &log;
    smdlm_result r;
    assert_int_equal(smdlm_generate(st, "The nation", &gp, &r), SMDLM_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.T, 48);
    assert_true(r.prompt_len > 0);
    assert_int_equal(log.calls, r.stats.forwards);
    assert_int_equal(log.calls, gp.steps);
    assert_int_equal(log.last_forwards, r.stats.forwards);
    assert_int_equal(log.bad, 0);
    assert_true(log.lambda_seen);
    assert_true(r.stats.soft_masking);
    assert_int_equal(r.stats.tokens, 2L * 48);
    assert_string_equal(r.stats.method, "ddpm");
    assert_non_null(strstr(r.text[0], "The nation"));
    smdlm_result_free(&r);

    /* the default sampler (ddpm_cache) with noise removal: one more callback, after it */
    gp = mdlm_params();
    log = (step_log){0};
    gp.on_step = on_step;
    gp.user = &log;
    assert_int_equal(smdlm_generate(st, NULL, &gp, &r), SMDLM_OK);
    assert_int_equal(log.calls, gp.steps + 1);
    assert_int_equal(log.last_forwards, r.stats.forwards);
    assert_true(r.stats.forwards <= gp.steps + 1);
    assert_int_equal(count_masked(model, &r), 0);
    smdlm_result_free(&r);

    /* stopped halfway: SMDLM_ABORTED, the canvas as it was, no error recorded */
    assert_int_equal(smdlm_generate_ids(st, NULL, NULL, 0, &gp, &r), SMDLM_ERROR);
    char before[512];
    snprintf(before, sizeof before, "%s", smdlm_last_error());
    log = (step_log){.stop_at = gp.steps / 2};
    assert_int_equal(smdlm_generate(st, NULL, &gp, &r), SMDLM_ABORTED);
    assert_string_equal(smdlm_last_error(), before);
    assert_int_equal(log.calls, gp.steps / 2);
    assert_int_equal(r.n, 1);
    assert_true(count_masked(model, &r) > 0);
    assert_null(r.text[0]);
    smdlm_result_free(&r);

    /* soft-masking off: no λ */
    gp.sm.mode = SMDLM_SM_OFF;
    log = (step_log){0};
    assert_int_equal(smdlm_generate(st, NULL, &gp, &r), SMDLM_OK);
    assert_false(log.lambda_seen);
    assert_false(r.stats.soft_masking);
    smdlm_result_free(&r);
    smdlm_state_free(st);
    smdlm_model_free(model);
}

/* ---- MDLM's semi-autoregressive sampler ------------------------------------------------- */

typedef struct {
    int calls, T, bad;
} round_log;

static int on_round_step(void *user, const smdlm_step *s) {
    round_log *log = user;
    log->calls++;
    log->bad |= log->T && s->T != log->T; /* every round's canvas is the same length */
    log->T = s->T;
    return 0;
}

/* A prompt, then three strides of 8 after a canvas of 24: 48 tokens, the prompt kept, nothing
 * masked; the callback sees rounds of 24 positions; a batch refuses it. */
static void test_semi_ar(void **unused) {
    (void)unused;
    smdlm_model *model = load(DEFAULT_MODEL, 2);
    smdlm_state *st = smdlm_state_new(model);
    smdlm_gen_params gp = mdlm_params();
    gp.mdlm.len = 24;
    gp.mdlm.num_strides = 3;
    gp.mdlm.stride_length = 8;
    gp.steps = 8;
    round_log log = {0};
    gp.on_step = on_round_step;
    gp.user = &log;
    smdlm_result r;
    assert_int_equal(smdlm_generate(st, "The nation", &gp, &r), SMDLM_OK);
    assert_int_equal(r.T, 24 + 3 * 8);
    assert_int_equal(count_masked(model, &r), 0);
    assert_non_null(strstr(r.text[0], "The nation"));
    assert_int_equal(log.T, 24);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.calls, 4 * (8 + 1 + 1)); /* 4 rounds of int(1/dt) + 1 updates + noise removal */
    smdlm_result_free(&r);
    gp.on_step = NULL;
    gp.mdlm.stride_length = 25;
    assert_int_equal(smdlm_generate(st, NULL, &gp, &r), SMDLM_ERROR);
    assert_non_null(strstr(smdlm_last_error(), "stride length 25"));
    smdlm_batch *batch = smdlm_batch_new(st);
    int32_t x[24];
    for (int i = 0; i < 24; i++) x[i] = smdlm_mask_id(model);
    gp.mdlm.stride_length = 8;
    assert_true(smdlm_batch_add(batch, x, NULL, 24, &gp) < 0);
    assert_non_null(strstr(smdlm_last_error(), "does not run in a batch"));
    smdlm_batch_free(batch);
    smdlm_state_free(st);
    smdlm_model_free(model);
}

/* ---- two states, one model, two threads ------------------------------------------------- */

typedef struct {
    smdlm_model *model;
    smdlm_gen_params gp;
    const char *prompt;
    smdlm_result r;
    int rc;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    smdlm_state *st = smdlm_state_new(j->model);
    j->rc = smdlm_generate(st, j->prompt, &j->gp, &j->r);
    smdlm_state_free(st);
    return NULL;
}

/* Each job run alone, then both at once on their own states: bit-identical canvases. */
static void check_concurrent(job *jobs) {
    smdlm_result alone[2];
    for (int k = 0; k < 2; k++) {
        run_job(&jobs[k]);
        assert_int_equal(jobs[k].rc, SMDLM_OK);
        alone[k] = jobs[k].r;
    }
    pthread_t th[2];
    for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&th[k], NULL, run_job, &jobs[k]), 0);
    for (int k = 0; k < 2; k++) assert_int_equal(pthread_join(th[k], NULL), 0);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(jobs[k].rc, SMDLM_OK);
        assert_int_equal(jobs[k].r.n * jobs[k].r.T, alone[k].n * alone[k].T);
        assert_memory_equal(jobs[k].r.ids, alone[k].ids,
                            sizeof(int32_t) * (size_t)alone[k].n * alone[k].T);
        smdlm_result_free(&jobs[k].r);
        smdlm_result_free(&alone[k]);
    }
}

static void test_two_threads_mdlm(void **unused) {
    (void)unused;
    smdlm_model *model = load(DEFAULT_MODEL, 2);
    job jobs[2] = {{.model = model, .gp = mdlm_params(), .prompt = "The nation"},
                   {.model = model, .gp = mdlm_params()}};
    jobs[1].gp.seed = 11;
    jobs[1].gp.n = 2;
    jobs[1].gp.mdlm.sampler = "remdm-cap";
    check_concurrent(jobs);
    smdlm_model_free(model);
}

static void test_two_threads_dream(void **unused) {
    (void)unused;
    smdlm_model *model = load(TINY_DREAM, 1);
    job jobs[2] = {{.model = model, .gp = smdlm_gen_default_params()},
                   {.model = model, .gp = smdlm_gen_default_params()}};
    for (int k = 0; k < 2; k++) {
        jobs[k].gp.decoder.max_new_tokens = 24;
        jobs[k].gp.steps = 12;
        jobs[k].gp.seed = 3 + (uint64_t)k;
    }
    jobs[0].gp.decoder.alg = "entropy";
    jobs[1].gp.decoder.temperature = 0.7f;
    jobs[1].gp.sm = (smdlm_softmask){SMDLM_SM_ON, 0.5f, -8.0f, 4.0f, 2};
    check_concurrent(jobs);
    smdlm_model_free(model);
}

/* ---- infilling ----------------------------------------------------------------------------- */

/* A canvas of T with fixed tokens at [0, 4) and [mid, mid + 4): they stay, the rest is filled. */
static void check_infill(smdlm_model *model, smdlm_gen_params *gp, int T, int mid) {
    smdlm_state *st = smdlm_state_new(model);
    int32_t *x = malloc(sizeof(int32_t) * (size_t)T);
    uint8_t *fixed = calloc((size_t)T, 1);
    for (int i = 0; i < T; i++) {
        fixed[i] = i < 4 || (i >= mid && i < mid + 4);
        x[i] = fixed[i] ? 10 + i : smdlm_mask_id(model);
    }
    smdlm_result r;
    assert_int_equal(smdlm_generate_ids(st, x, fixed, T, gp, &r), SMDLM_OK);
    assert_int_equal(r.prompt_len, 4);
    for (int b = 0; b < r.n; b++)
        for (int i = 0; i < T; i++) {
            const int32_t id = r.ids[(size_t)b * T + i];
            if (fixed[i]) assert_int_equal(id, x[i]);
            else assert_true(id >= 0 && id < smdlm_vocab_size(model) && id != smdlm_mask_id(model));
        }
    smdlm_result_free(&r);
    free(x);
    free(fixed);
    smdlm_state_free(st);
}

static void test_infill_mdlm(void **unused) {
    (void)unused;
    smdlm_model *model = load(DEFAULT_MODEL, 2);
    smdlm_gen_params gp = mdlm_params();
    gp.n = 2;
    check_infill(model, &gp, 40, 20);

    /* from text: prefix and suffix stay, the middle comes back as text */
    smdlm_state *st = smdlm_state_new(model);
    smdlm_result r;
    assert_int_equal(smdlm_infill(st, "The nation", 12, "of the world.", &gp, &r), SMDLM_OK);
    int32_t *pre, *suf;
    size_t np, ns;
    assert_int_equal(smdlm_tokenize(model, "The nation", 0, &pre, &np), 0);
    assert_int_equal(smdlm_tokenize(model, "of the world.", 0, &suf, &ns), 0);
    assert_int_equal(r.T, (int)(np + 12 + ns));
    for (int b = 0; b < r.n; b++) {
        const int32_t *c = r.ids + (size_t)b * r.T;
        assert_memory_equal(c, pre, sizeof(int32_t) * np);
        assert_memory_equal(c + np + 12, suf, sizeof(int32_t) * ns);
        char *mid;
        assert_int_equal(smdlm_detokenize(model, c + np, 12, &mid), 0);
        assert_string_equal(r.text[b], mid);
        free(mid);
    }
    printf("  infilled: \"The nation|%s|of the world.\"\n", r.text[0]);
    smdlm_result_free(&r);
    free(pre);
    free(suf);
    assert_int_equal(smdlm_infill(st, "The nation", 0, "x", &gp, &r), SMDLM_ERROR);
    smdlm_state_free(st);
    smdlm_model_free(model);
}

static void test_infill_dream(void **unused) {
    (void)unused;
    smdlm_model *model = load(TINY_DREAM, 1);
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.steps = 8;
    gp.n = 2;
    gp.decoder.alg = "entropy";
    gp.decoder.eos_penalty = 1e6f; /* no EOS: every masked position is generated */
    check_infill(model, &gp, 32, 16);
    smdlm_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callback_and_abort),
        cmocka_unit_test(test_two_threads_mdlm),
        cmocka_unit_test(test_semi_ar),
        cmocka_unit_test(test_two_threads_dream),
        cmocka_unit_test(test_infill_mdlm),
        cmocka_unit_test(test_infill_dream),
    };
    return cmocka_run_group_tests_name("api_public", tests, NULL, NULL);
}
