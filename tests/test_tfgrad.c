/* test_tfgrad.c — the fine-tuning gradient of Dream / LLaDA (src/train/tfgrad.h) against
 * PyTorch autograd in float64 (tests/gen_tfgrad_fixtures.py): LoRA and DoRA adapters on fp32
 * and bf16 bases, Dream's shifted loss and LLaDA's, with and without two-pass soft-masking
 * (gradients of the three raw scalars). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/util.h"
#include "models/model.h"
#include "testutil.h"
#include "train/tfgrad.h"

/* |got − ref| ≤ 5e-5·max|ref| + 1e-4·|ref| per tensor (test_train's rule with a 5× wider
 * absolute part: the reference is float64, the engine fp32, and the loss rows' gradients,
 * up to 14 here, cancel in the sums; measured worst 3.3e-5·max on the LLaDA soft-masking
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

/* `smdlm grad --adapter` writes the same gradients (soft-masking values given by flags, as
 * transformed values: their raw parameters round back within a few ulp). */
static void test_grad_command(void **state) {
    (void)state;
    static const struct {
        const char *name, *base, *adapter;
        int sm_k;
    } cases[] = {{"dream-bf16-dora", "tiny-dream-bf16", "tiny-dream-bf16-dora", 0},
                 {"llada-dora-sm", "tiny-llada", "tiny-llada-dora", 2}};
    char tmp[256], out[512], sm[256] = "", base[512], adapter[512], fix[512];
    assert_int_equal(tu_tmpdir_make(tmp, sizeof tmp, "tfgrad-cli"), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(base, sizeof base, "%s", tu_fixture("%s", cases[i].base));
        snprintf(adapter, sizeof adapter, "%s", tu_fixture("%s", cases[i].adapter));
        snprintf(fix, sizeof fix, "%s", tu_fixture("tfgrad/%s", cases[i].name));
        if (cases[i].sm_k) {
            size_t n;
            float *raw = tu_load_f32(tu_fixture("tfgrad/%s/sm_raw.npy", cases[i].name), &n);
            sm_params p;
            sm_params_from_raw(&p, raw[0], raw[1], raw[2]);
            snprintf(sm, sizeof sm, "--sm --sm-scale %.9g --sm-centre %.9g --sm-steepness %.9g "
                     "--sm-k %d", p.scale, p.centre, p.steepness, cases[i].sm_k);
            free(raw);
        }
        snprintf(out, sizeof out, "%s/%s.safetensors", tmp, cases[i].name);
        char *log;
        int rc = tu_run(&log, "grad -m %s --adapter %s --ids %s/xt.npy --targets %s/x0.npy "
                        "--t %s/t.npy %s -o %s", base, adapter, fix, fix, fix, sm, out);
        print_message("%s", log);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(log, "loss "));
        free(log);
        compare_grads(cases[i].name, out, tu_fixture("tfgrad/%s/grads.safetensors", cases[i].name));
    }
    tu_tmpdir_remove(tmp);
}

/* Wrong combinations and inputs end with a message, never a crash. */
static void test_grad_command_errors(void **state) {
    (void)state;
    char d[256], l[256], a[256], m[256], fx[256];
    snprintf(d, sizeof d, "%s", tu_fixture("tiny-dream"));
    snprintf(l, sizeof l, "%s", tu_fixture("tiny-llada"));
    snprintf(a, sizeof a, "%s", tu_fixture("tiny-dream-lora"));
    snprintf(m, sizeof m, "%s", tu_fixture("tiny"));
    snprintf(fx, sizeof fx, "%s", tu_fixture("tfgrad/dream-lora"));
    enum { N = 7 };
    char args[N][1536];
    const char *word[N] = {"needs --adapter", "needs a Dream or LLaDA", "is missing",
                           "--causal is for MDLM", "one for the batch", "is the mask id",
                           "out of range"};
#define BATCH "--ids %s/xt.npy --targets %s/x0.npy --t %s/t.npy -o /dev/null"
    snprintf(args[0], sizeof args[0], "grad -m %s " BATCH, d, fx, fx, fx);
    snprintf(args[1], sizeof args[1], "grad -m %s --adapter %s " BATCH, m, a, fx, fx, fx);
    snprintf(args[2], sizeof args[2], "grad -m %s --adapter %s " BATCH, l, a, fx, fx, fx);
    snprintf(args[3], sizeof args[3], "grad -m %s --adapter %s --causal " BATCH, d, a, fx, fx, fx);
    snprintf(args[4], sizeof args[4],
             "grad -m %s --adapter %s --ids %s/xt.npy --targets %s/x0.npy --t %s/xt.npy -o "
             "/dev/null", d, a, fx, fx, fx);
    snprintf(args[5], sizeof args[5],
             "grad -m %s --adapter %s --ids %s/xt.npy --targets %s/ids.npy --t %s/t.npy -o "
             "/dev/null", d, a, fx, d, fx);
    snprintf(args[6], sizeof args[6],
             "grad -m %s --adapter %s --ids %s/xt.npy --targets %s/ids.npy --t %s/t.npy -o "
             "/dev/null", d, a, fx, l, fx);
#undef BATCH
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, N);
}

/* Accumulation: two micro-batches at scale ½ give the gradient of one at scale 1 (exactly:
 * the same products, halved), and the loss is reported unscaled. */
static void test_accumulation(void **state) {
    (void)state;
    model_dir md;
    load_ok(model_dir_load_any(&md, tu_fixture("tiny-dream"), 0));
    peft_adapter ad;
    load_ok(adapter_open(&ad, tu_fixture("tiny-dream-dora")));
    size_t n;
    int64_t shape[2];
    int ndim;
    int32_t *xt = tu_load_i32(tu_fixture("tfgrad/dream-dora/xt.npy"), &n, shape, &ndim);
    int32_t *x0 = tu_load_i32(tu_fixture("tfgrad/dream-dora/x0.npy"), &n, shape, &ndim);
    tf_trainer tr;
    load_ok(tf_trainer_init(&tr, &md.tf, &ad, (int)shape[0], (int)shape[1]));
    tf_batch b = {xt, x0, 0.5f};
    double once, half1, half2;
    tf_trainer_zero_grads(&tr);
    load_ok(tf_trainer_accumulate(&tr, &b, 1, 1.0f, &once));
    const tf_adapted *t = &tr.targets[0];
    const size_t na = (size_t)t->r * t->w->in, nm = (size_t)t->w->out;
    float *da = sm_malloc(sizeof(float) * na), *dm = sm_malloc(sizeof(float) * nm), sg[3];
    memcpy(da, t->da, sizeof(float) * na);
    memcpy(dm, t->dmag, sizeof(float) * nm);
    memcpy(sg, tr.sm_grad, sizeof sg);
    tf_trainer_zero_grads(&tr);
    load_ok(tf_trainer_accumulate(&tr, &b, 1, 0.5f, &half1));
    load_ok(tf_trainer_accumulate(&tr, &b, 1, 0.5f, &half2));
    assert_true(once == half1 && once == half2);
    assert_int_equal(memcmp(da, t->da, sizeof(float) * na), 0);
    assert_int_equal(memcmp(dm, t->dmag, sizeof(float) * nm), 0);
    assert_int_equal(memcmp(sg, tr.sm_grad, sizeof sg), 0);
    /* a clean id that is the mask id is refused */
    x0[3] = md.tf.cfg.mask_id;
    const char *words[] = {"mask id", NULL};
    tu_expect_error(tf_trainer_accumulate(&tr, &b, 0, 1.0f, &once), "mask id as a target", words);
    free(da), free(dm);
    tf_trainer_free(&tr);
    adapter_close(&ad);
    model_dir_free(&md);
    free(xt), free(x0);
}

/* The collator's noise: the prompt is never masked, every row has a mask, the response is
 * masked at the rate (1 − 1e-3)·t + 1e-3, t stays in its range and is uniform over it, and a
 * seed gives the same batch again. */
static void test_noise(void **state) {
    (void)state;
    enum { B = 64, T = 40, DRAWS = 400 };
    int32_t *x0 = sm_malloc(sizeof(int32_t) * B * T), *xt = sm_malloc(sizeof(int32_t) * B * T),
            *again = sm_malloc(sizeof(int32_t) * B * T);
    int prompt[B];
    for (int b = 0; b < B; b++) prompt[b] = b % 2 ? 39 : b % 30; /* 39: one response position */
    for (int i = 0; i < B * T; i++) x0[i] = i % 250;
    sm_rng r, r2;
    double tsum = 0.0;
    for (int d = 0; d < DRAWS; d++) {
        float t, t2;
        rng_seed(&r, 1000 + d);
        assert_int_equal(tf_noise_batch(&r, x0, prompt, xt, &t, B, T, 297, 0.2f, 0.8f), 0);
        assert_true(t >= 0.2f && t <= 0.8f);
        tsum += t;
        long masked = 0, response = 0;
        for (int b = 0; b < B; b++) {
            int any = 0;
            for (int i = 0; i < T; i++) {
                const int32_t v = xt[b * T + i];
                assert_true(v == x0[b * T + i] || (v == 297 && i >= prompt[b]));
                any |= v == 297;
                if (i >= prompt[b] && b % 2 == 0) masked += v == 297, response++;
            }
            assert_true(any);
        }
        /* the rows with long responses: the rate within 5 standard deviations */
        const double p = (1 - 1e-3) * t + 1e-3, sd = sqrt(p * (1 - p) / response);
        assert_true(fabs((double)masked / response - p) < 5 * sd + 1.0 / response);
        if (d == 0) {
            rng_seed(&r2, 1000);
            assert_int_equal(tf_noise_batch(&r2, x0, prompt, again, &t2, B, T, 297, 0.2f, 0.8f), 0);
            assert_true(t2 == t);
            assert_int_equal(memcmp(again, xt, sizeof(int32_t) * B * T), 0);
        }
    }
    /* uniform on [0.2, 0.8]: mean 0.5, sd of the mean 0.6/√12/√DRAWS */
    assert_true(fabs(tsum / DRAWS - 0.5) < 5 * 0.6 / sqrt(12.0 * DRAWS));
    prompt[3] = T;
    float t;
    const char *words[] = {"row 3", "no position", NULL};
    tu_expect_error(tf_noise_batch(&r, x0, prompt, xt, &t, B, T, 297, 0.2f, 0.8f), "prompt = T",
                    words);
    free(x0), free(xt), free(again);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dream_lora),      cmocka_unit_test(test_dream_dora),
        cmocka_unit_test(test_dream_bf16_dora), cmocka_unit_test(test_llada_dora),
        cmocka_unit_test(test_dream_sm),        cmocka_unit_test(test_llada_sm),
        cmocka_unit_test(test_grad_command),    cmocka_unit_test(test_grad_command_errors),
        cmocka_unit_test(test_accumulation),    cmocka_unit_test(test_noise),
    };
    return cmocka_run_group_tests_name("tfgrad", tests, NULL, NULL);
}
