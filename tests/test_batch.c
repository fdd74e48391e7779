/* test_batch.c — continuous batching through the public API (smdlm_batch_*; built like
 * test_api_public, against include/ and libsmdlm.a alone): generations that
 * join a batch at different steps, with different samplers, seeds, step counts, sample
 * counts, soft-masking on and off, nucleus filtering and infilling, give exactly what each
 * gives alone with smdlm_generate_ids: the same canvases, texts, forwards and steps, and the
 * same step callbacks (step, forwards, canvas, λ). A member stopped by its callback ends as it
 * would alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "smdlm.h"

#define T_LEN 40
#define MAX_CALLS 64

/* What a member's step callback saw: per call the step, forwards and a hash of canvas + λ. */
typedef struct {
    int calls;
    int step[MAX_CALLS], forwards[MAX_CALLS];
    uint64_t hash[MAX_CALLS];
    int stop_at; /* > 0: ask to stop at this step */
} trace;

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 1099511628211ULL; }

static int record(void *user, const smdlm_step *s) {
    trace *t = user;
    assert_true(t->calls < MAX_CALLS);
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < s->B * s->T; i++) {
        h = mix(h, (uint64_t)s->ids[i]);
        h = mix(h, s->masked[i]);
        if (s->lambda) {
            uint32_t bits;
            memcpy(&bits, &s->lambda[i], sizeof bits);
            h = mix(h, bits);
        }
    }
    t->step[t->calls] = s->step;
    t->forwards[t->calls] = s->forwards;
    t->hash[t->calls++] = h;
    return t->stop_at && s->step == t->stop_at;
}

typedef struct {
    const char *sampler;
    uint64_t seed;
    int steps, n, sm_off, infill, join_at, stop_at;
    float top_p;
} request;

static const request k_requests[] = {
    {"ddpm_cache", 1, 12, 1, 0, 0, 0, 0, 1.0f},
    {"ddpm", 2, 7, 2, 0, 0, 0, 0, 1.0f},
    {"remdm-cap", 3, 20, 1, 0, 1, 0, 0, 1.0f},
    {"ddpm_cache", 4, 16, 1, 1, 0, 2, 0, 0.9f},   /* soft-masking off */
    {"remdm-loop", 5, 10, 1, 0, 0, 3, 0, 1.0f},
    {"ddpm", 6, 30, 1, 0, 0, 5, 4, 1.0f},          /* stops itself at step 4 */
    {"ddpm_cache", 7, 9, 3, 0, 1, 9, 0, 1.0f},
};
#define N_REQ ((int)(sizeof k_requests / sizeof *k_requests))

/* Request i's canvas template (a prompt; with infill also fixed tokens in the middle). */
static void template_of(int i, int32_t *x, uint8_t *fixed, int mask) {
    for (int t = 0; t < T_LEN; t++) {
        const int prompt = t < 3 + i, middle = k_requests[i].infill && t >= 20 && t < 24;
        fixed[t] = (uint8_t)(prompt || middle);
        x[t] = fixed[t] ? 100 + 37 * i + t : mask;
    }
}

static smdlm_gen_params params_of(int i, trace *tr) {
    const request *q = &k_requests[i];
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.mdlm.sampler = q->sampler;
    gp.seed = q->seed;
    gp.steps = q->steps;
    gp.n = q->n;
    gp.top_p = q->top_p;
    if (q->sm_off) gp.sm.mode = SMDLM_SM_OFF;
    memset(tr, 0, sizeof *tr);
    tr->stop_at = q->stop_at;
    gp.on_step = record;
    gp.user = tr;
    return gp;
}

/* threads > 1: the by-rows forward, whose split of the rows must not depend on the batch */
static void batched_equals_alone(int threads) {
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = threads;
    smdlm_model *model = smdlm_model_load("models/default", &lp);
    assert_non_null(model);
    const int mask = smdlm_mask_id(model);
    assert_int_equal(smdlm_model_softmask(model).mode, SMDLM_SM_ON);
    smdlm_state *alone = smdlm_state_new(model), *shared = smdlm_state_new(model);
    int32_t x[N_REQ][T_LEN];
    uint8_t fixed[N_REQ][T_LEN];
    smdlm_result ref[N_REQ];
    int ref_rc[N_REQ];
    trace ref_tr[N_REQ], tr[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        template_of(i, x[i], fixed[i], mask);
        smdlm_gen_params gp = params_of(i, &ref_tr[i]);
        ref_rc[i] = smdlm_generate_ids(alone, x[i], fixed[i], T_LEN, &gp, &ref[i]);
        assert_int_equal(ref_rc[i], k_requests[i].stop_at ? SMDLM_ABORTED : SMDLM_OK);
    }

    smdlm_batch *batch = smdlm_batch_new(shared);
    assert_non_null(batch);
    int ids[N_REQ], taken = 0, most = 0;
    long shared_forwards = 0, member_forwards = 0; /* steps in which a member forwarded; their sum */
    for (int i = 0; i < N_REQ; i++) ids[i] = -1;
    for (int step = 0; taken < N_REQ; step++) {
        for (int i = 0; i < N_REQ; i++)
            if (k_requests[i].join_at == step) {
                smdlm_gen_params gp = params_of(i, &tr[i]);
                assert_true(smdlm_batch_accepts(batch, T_LEN, &gp));
                if (smdlm_batch_count(batch)) assert_false(smdlm_batch_accepts(batch, T_LEN + 1, &gp));
                ids[i] = smdlm_batch_add(batch, x[i], fixed[i], T_LEN, &gp);
                assert_true(ids[i] >= 0);
            }
        if (smdlm_batch_count(batch) > most) most = smdlm_batch_count(batch);
        int before[N_REQ];
        for (int i = 0; i < N_REQ; i++)
            before[i] = ids[i] >= 0 && tr[i].calls ? tr[i].forwards[tr[i].calls - 1] : 0;
        assert_int_equal(smdlm_batch_step(batch), SMDLM_OK);
        int forwarded = 0;
        for (int i = 0; i < N_REQ; i++)
            if (ids[i] >= 0 && tr[i].calls && tr[i].forwards[tr[i].calls - 1] > before[i]) {
                assert_int_equal(tr[i].forwards[tr[i].calls - 1], before[i] + 1);
                forwarded = 1;
                member_forwards++;
            }
        shared_forwards += forwarded;
        for (int id; (id = smdlm_batch_ended(batch)) >= 0;) {
            int i = 0;
            while (ids[i] != id) i++;
            smdlm_result r;
            const int rc = smdlm_batch_take(batch, id, &r);
            ids[i] = -1;
            taken++;
            printf("  request %d (%s, %d steps, n %d): ended after batch step %d, %d forwards\n", i,
                   k_requests[i].sampler, k_requests[i].steps, k_requests[i].n, step + 1,
                   r.stats.forwards);
            assert_int_equal(rc, ref_rc[i]);
            assert_int_equal(r.n, ref[i].n);
            assert_int_equal(r.prompt_len, ref[i].prompt_len);
            for (int p = 0; p < r.n * T_LEN; p++)
                if (r.ids[p] != ref[i].ids[p])
                    fail_msg("request %d, sample %d, position %d: batched %d, alone %d", i,
                             p / T_LEN, p % T_LEN, r.ids[p], ref[i].ids[p]);
            assert_int_equal(r.stats.forwards, ref[i].stats.forwards);
            assert_int_equal(r.stats.steps, ref[i].stats.steps);
            for (int b = 0; b < r.n; b++)
                if (ref[i].text[b]) assert_string_equal(r.text[b], ref[i].text[b]);
                else assert_null(r.text[b]);
            assert_int_equal(tr[i].calls, ref_tr[i].calls);
            for (int c = 0; c < tr[i].calls; c++) {
                assert_int_equal(tr[i].step[c], ref_tr[i].step[c]);
                assert_int_equal(tr[i].forwards[c], ref_tr[i].forwards[c]);
                if (tr[i].hash[c] != ref_tr[i].hash[c])
                    fail_msg("request %d, callback %d: the canvas or λ differ", i, c);
            }
            smdlm_result_free(&r);
        }
        assert_true(step < 200);
    }
    assert_true(most >= 4); /* the requests did overlap */
    /* the batch ran one forward in each step in which any member needed one */
    printf("  %ld forwards for %ld member forwards\n", smdlm_batch_forwards(batch), member_forwards);
    assert_int_equal(smdlm_batch_forwards(batch), shared_forwards);
    assert_true(shared_forwards < member_forwards);
    assert_int_equal(smdlm_batch_count(batch), 0);
    smdlm_batch_free(batch);
    for (int i = 0; i < N_REQ; i++) smdlm_result_free(&ref[i]);
    smdlm_state_free(alone);
    smdlm_state_free(shared);
    smdlm_model_free(model);
}

static void test_batched_equals_alone(void **state) {
    (void)state;
    batched_equals_alone(1);
}

static void test_batched_equals_alone_2_threads(void **state) {
    (void)state;
    batched_equals_alone(2);
}

/* What cannot share a forward, and a member taken while running. */
static void test_batch_limits(void **state) {
    (void)state;
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = 1;
    smdlm_model *model = smdlm_model_load("models/default", &lp);
    assert_non_null(model);
    smdlm_state *st = smdlm_state_new(model);
    smdlm_batch *batch = smdlm_batch_new(st);
    const int mask = smdlm_mask_id(model);
    int32_t x[T_LEN];
    for (int t = 0; t < T_LEN; t++) x[t] = mask;
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.steps = 50;
    const int id = smdlm_batch_add(batch, x, NULL, T_LEN, &gp);
    assert_true(id >= 0);
    smdlm_gen_params k5 = gp;
    k5.sm.k = 5; /* another top-k cannot mix in the same forward */
    assert_false(smdlm_batch_accepts(batch, T_LEN, &k5));
    assert_int_equal(smdlm_batch_add(batch, x, NULL, T_LEN, &k5), SMDLM_ERROR);
    k5.sm.mode = SMDLM_SM_OFF; /* without soft-masking it can */
    assert_true(smdlm_batch_accepts(batch, T_LEN, &k5));
    smdlm_gen_params bad = gp;
    bad.mdlm.sampler = "nope";
    assert_int_equal(smdlm_batch_add(batch, x, NULL, T_LEN, &bad), SMDLM_ERROR);
    printf("  %s\n", smdlm_last_error());
    assert_non_null(strstr(smdlm_last_error(), "nope"));
    assert_int_equal(smdlm_batch_step(batch), SMDLM_OK);
    assert_int_equal(smdlm_batch_ended(batch), -1);
    smdlm_result r;
    assert_int_equal(smdlm_batch_take(batch, id, &r), SMDLM_ABORTED);
    assert_int_equal(r.stats.steps, 1);
    smdlm_result_free(&r);
    assert_int_equal(smdlm_batch_take(batch, id, &r), SMDLM_ERROR);
    smdlm_batch_free(batch);
    smdlm_state_free(st);
    smdlm_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_equals_alone),
        cmocka_unit_test(test_batched_equals_alone_2_threads),
        cmocka_unit_test(test_batch_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
