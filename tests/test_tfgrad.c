/* test_tfgrad.c — the fine-tuning gradient of Dream / LLaDA (src/train/tfgrad.h) against
 * PyTorch autograd in float64 (tests/gen_tfgrad_fixtures.py): LoRA and DoRA adapters on fp32
 * and bf16 bases, Dream's shifted loss and LLaDA's, with and without two-pass soft-masking
 * (gradients of the three raw scalars). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "models/model.h"
#include "testutil.h"
#include "train/tfgrad.h"

/* |got − ref| ≤ 5e-5·max|ref| + 1e-4·|ref| per tensor (test_train's rule with a 5× wider
 * absolute part: the reference is float64, the engine fp32, and the loss rows' gradients,
 * up to 14 here, cancel in the sums; measured worst 2.5e-5·max on the LLaDA soft-masking
 * case). A wrong term is off by O(max|ref|). */
#define GRAD_RTOL 1e-4f
#define GRAD_ATOL_OF_MAX 5e-5f

static void load_ok(int rc) {
    if (rc) print_error("%s\n", smdlm_last_error());
    assert_int_equal(rc, 0);
}

/* Every tensor of ref (the fixture's gradients) against got (the trainer's, written to a
 * file), by name; both must hold the same names. */
static void compare_grads(const char *what, const char *got_path, const char *ref_path) {
    st_archive got, ref;
    load_ok(st_open_file(&got, got_path));
    load_ok(st_open_file(&ref, ref_path));
    assert_int_equal(got.ntensors, ref.ntensors);
    size_t bad = 0;
    for (int i = 0; i < ref.ntensors; i++) {
        const st_tensor *r = &ref.tensors[i], *g = st_find(&got, r->name);
        if (!g) print_error("%s: %s is missing\n", what, r->name);
        assert_non_null(g);
        assert_int_equal(g->numel, r->numel);
        float *a = sm_malloc(sizeof(float) * g->numel), *b = sm_malloc(sizeof(float) * r->numel);
        load_ok(st_tensor_to_f32(g, a));
        load_ok(st_tensor_to_f32(r, b));
        float mx = 0.0f;
        for (size_t j = 0; j < r->numel; j++) mx = fmaxf(mx, fabsf(b[j]));
        char name[320];
        snprintf(name, sizeof name, "%s %s", what, r->name);
        bad += tu_compare_f32(name, a, b, r->numel, GRAD_ATOL_OF_MAX * mx + 1e-9f, GRAD_RTOL);
        free(a), free(b);
    }
    st_close(&got);
    st_close(&ref);
    assert_int_equal(bad, 0);
}

/* One fixture case: base + adapter, the batch of tests/fixtures/tfgrad/CASE, soft-masking with
 * the raw scalars of sm_raw.npy and top-k sm_k (0: none). */
static void check_case(const char *name, const char *base, const char *adapter, int sm_k) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tu_fixture("%s", base));
    model_dir md;
    load_ok(model_dir_load_any(&md, dir, 0));
    peft_adapter ad;
    load_ok(adapter_open(&ad, tu_fixture("%s", adapter)));
    size_t n;
    int64_t shape[2];
    int ndim;
    int32_t *xt = tu_load_i32(tu_fixture("tfgrad/%s/xt.npy", name), &n, shape, &ndim);
    int32_t *x0 = tu_load_i32(tu_fixture("tfgrad/%s/x0.npy", name), &n, shape, &ndim);
    float *t = tu_load_f32(tu_fixture("tfgrad/%s/t.npy", name), &n);
    float *loss_ref = tu_load_f32(tu_fixture("tfgrad/%s/loss.npy", name), &n);
    tf_trainer tr;
    load_ok(tf_trainer_init(&tr, &md.tf, &ad, (int)shape[0], (int)shape[1]));
    if (sm_k) {
        float *raw = tu_load_f32(tu_fixture("tfgrad/%s/sm_raw.npy", name), &n);
        tr.sm = (sm_raw){raw[0], raw[1], raw[2], sm_k};
        free(raw);
    }
    tf_batch b = {xt, x0, t[0]};
    double loss;
    tf_trainer_zero_grads(&tr);
    load_ok(tf_trainer_accumulate(&tr, &b, sm_k > 0, 1.0f, &loss));
    print_message("%s: loss %.7g (reference %.7g)\n", name, loss, loss_ref[0]);
    assert_true(fabs(loss - loss_ref[0]) <= 1e-5 * fabs(loss_ref[0]));
    char tmp[256], out[512];
    assert_int_equal(tu_tmpdir_make(tmp, sizeof tmp, "tfgrad"), 0);
    snprintf(out, sizeof out, "%s/grads.safetensors", tmp);
    load_ok(tf_trainer_save_grads(&tr, out));
    compare_grads(name, out, tu_fixture("tfgrad/%s/grads.safetensors", name));
    tu_tmpdir_remove(tmp);
    tf_trainer_free(&tr);
    adapter_close(&ad);
    model_dir_free(&md);
    free(xt), free(x0), free(t), free(loss_ref);
}

static void test_dream_lora(void **state) {
    (void)state;
    check_case("dream-lora", "tiny-dream", "tiny-dream-lora", 0);
}

static void test_dream_dora(void **state) {
    (void)state;
    check_case("dream-dora", "tiny-dream", "tiny-dream-dora", 0);
}

static void test_dream_bf16_dora(void **state) {
    (void)state;
    check_case("dream-bf16-dora", "tiny-dream-bf16", "tiny-dream-bf16-dora", 0);
}

static void test_llada_dora(void **state) {
    (void)state;
    check_case("llada-dora", "tiny-llada", "tiny-llada-dora", 0);
}

static void test_dream_sm(void **state) {
    (void)state;
    check_case("dream-lora-sm", "tiny-dream", "tiny-dream-lora", 1);
}

static void test_llada_sm(void **state) {
    (void)state;
    check_case("llada-dora-sm", "tiny-llada", "tiny-llada-dora", 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dream_lora),      cmocka_unit_test(test_dream_dora),
        cmocka_unit_test(test_dream_bf16_dora), cmocka_unit_test(test_llada_dora),
        cmocka_unit_test(test_dream_sm),        cmocka_unit_test(test_llada_sm),
    };
    return cmocka_run_group_tests_name("tfgrad", tests, NULL, NULL);
}
