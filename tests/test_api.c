/* test_api.c — the public API (include/smdlm.h) as a library user calls it. */
#include <stdlib.h>
#include <string.h>

#include "smdlm.h"
#include "testutil.h"

static void test_forward_matches_reference(void **state) {
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = 2;
    smdlm_model *model = smdlm_model_load(FIXTURES_DIR "/tiny-tc", &lp);
    assert_non_null(model);
    smdlm_state *ctx = smdlm_state_new(model);
    assert_int_equal(smdlm_vocab_size(model), 67);
    assert_int_equal(smdlm_mask_id(model), 66);
    size_t n, nl;
    int64_t shape[2];
    int ndim;
    int32_t *ids = tu_load_i32(tu_fixture("tiny-tc/ref/ids.npy"), &n, shape, &ndim);
    float *t = tu_load_f32(tu_fixture("tiny-tc/ref/t.npy"), &nl);
    float *ref = tu_load_f32(tu_fixture("tiny-tc/ref/logits.npy"), &nl);
    float *got = malloc(sizeof(float) * nl);
    assert_int_equal(smdlm_forward(ctx, ids, (int)shape[0], (int)shape[1], t, got), 0);
    assert_int_equal(tu_compare_f32("api logits", got, ref, nl, 1e-4f, 1e-4f), 0);
    ids[3] = 67;
    assert_int_equal(smdlm_forward(ctx, ids, (int)shape[0], (int)shape[1], t, got), -1);
    assert_non_null(strstr(smdlm_last_error(), "outside"));
    free(ids), free(t), free(ref), free(got);
    smdlm_state_free(ctx);
    smdlm_model_free(model);
}

static void test_generate_ids(void **state) {
    smdlm_model *model = smdlm_model_load(FIXTURES_DIR "/tiny", NULL);
    assert_non_null(model);
    smdlm_state *ctx = smdlm_state_new(model);
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.steps = 8;
    gp.seed = 3;
    int32_t x[16];
    uint8_t fixed[16] = {1, 1};
    for (int i = 0; i < 16; i++) x[i] = i < 2 ? 5 + i : smdlm_mask_id(model);
    smdlm_result ra, rb, r;
    assert_int_equal(smdlm_generate_ids(ctx, x, fixed, 16, &gp, &ra), 0);
    assert_int_equal(smdlm_generate_ids(ctx, x, fixed, 16, &gp, &rb), 0);
    const int32_t *a = ra.ids, *b = rb.ids;
    assert_memory_equal(a, b, sizeof x);
    assert_int_equal(a[0], 5);
    assert_int_equal(a[1], 6);
    for (int i = 0; i < 16; i++) assert_true(a[i] >= 0 && a[i] < smdlm_mask_id(model));
    smdlm_result_free(&ra);
    smdlm_result_free(&rb);
    assert_int_equal(smdlm_generate(ctx, "hi", &gp, &r), -1); /* no tokenizer here */
    assert_non_null(strstr(smdlm_last_error(), "tokenizer"));
    gp.steps = 0;
    assert_int_equal(smdlm_generate_ids(ctx, x, fixed, 16, &gp, &r), -1);
    smdlm_state_free(ctx);
    smdlm_model_free(model);
}

static void test_load_errors(void **state) {
    assert_null(smdlm_model_load("tests/bad/does-not-exist", NULL));
    assert_non_null(strstr(smdlm_last_error(), "does-not-exist"));
    smdlm_load_params lp = {0};
    assert_null(smdlm_model_load(FIXTURES_DIR "/tiny", &lp));
    assert_non_null(strstr(smdlm_last_error(), "threads"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_generate_ids),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
