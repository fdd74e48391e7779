/* test_adapter.c — PEFT LoRA / DoRA adapters on the tiny Dream and LLaDA models against the
 * PyTorch reference (tests/gen_adapter_fixtures.py): merged at load (fp32 bases), applied on the
 * fly (bf16 base), merged == on the fly, `smdlm merge`, and adapters that are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "compute/kernels.h"
#include "models/adapter.h"
#include "models/model.h"
#include "testutil.h"

#define ATOL 1e-4f
#define RTOL 1e-4f

/* Raw logits of the base model's ids.npy canvas through md. */
static float *logits_of(const model_dir *md, const char *base, size_t *n) {
    int64_t shape[2];
    int ndim;
    size_t nids;
    int32_t *ids = tu_load_i32(tu_fixture("%s/ids.npy", base), &nids, shape, &ndim);
    const int B = (int)shape[0], T = (int)shape[1];
    *n = (size_t)B * T * md->tf.cfg.vocab_size;
    float *out = sm_malloc(sizeof(float) * *n);
    tf_state s;
    tf_state_init(&s, &md->tf);
    assert_int_equal(transformer_forward(&s, ids, NULL, NULL, NULL, B, T, out), 0);
    tf_state_free(&s);
    free(ids);
    return out;
}

static void load_ok(int rc) {
    if (rc) print_error("%s\n", smdlm_last_error());
    assert_int_equal(rc, 0);
}

/* The adapter directory alone (its base_model_name_or_path, relative to it) and with the base
 * given: logits as the reference's. */
static void check_adapter(const char *adapter, const char *base, wtype expect_type) {
    char dir[512], base_dir[512];
    snprintf(dir, sizeof dir, "%s", tu_fixture("%s", adapter));
    snprintf(base_dir, sizeof base_dir, "%s", tu_fixture("%s", base));
    size_t nref, n;
    float *ref = tu_load_f32(tu_fixture("%s/logits.npy", adapter), &nref);
    for (int how = 0; how < 2; how++) {
        model_dir md;
        load_ok(how ? model_dir_load_adapted(&md, base_dir, dir, 0, 0)
                    : model_dir_load_any(&md, dir, 0));
        assert_int_equal(md.tf.layers[1].q.type, expect_type);
        float *got = logits_of(&md, base, &n);
        assert_int_equal(n, nref);
        char what[160];
        snprintf(what, sizeof what, "%s on %s (%s)", adapter, base,
                 how ? "base given" : "base from adapter_config.json");
        assert_int_equal(tu_compare_f32(what, got, ref, n, ATOL, RTOL), 0);
        free(got);
        model_dir_free(&md);
    }
    free(ref);
}

static void test_reference(void **state) {
    (void)state;
    check_adapter("tiny-dream-lora", "tiny-dream", WT_F32);
    check_adapter("tiny-dream-dora", "tiny-dream", WT_F32);
    check_adapter("tiny-llada-dora", "tiny-llada", WT_F32);
    check_adapter("tiny-dream-bf16-dora", "tiny-dream-bf16", WT_BF16); /* on the fly */
}

/* A bf16 base: the adapter on the fly (weights stay bf16 and mapped) equals it merged into fp32. */
static void test_merged_equals_on_the_fly(void **state) {
    (void)state;
    const char *adapter = tu_fixture("tiny-dream-bf16-dora");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", adapter);
    model_dir fly, merged;
    load_ok(model_dir_load_adapted(&fly, NULL, dir, 0, 0));
    load_ok(model_dir_load_adapted(&merged, NULL, dir, 1, 0));
    assert_non_null(fly.tf.layers[0].q.lora);
    assert_int_equal(fly.tf.layers[0].q.type, WT_BF16);
    assert_null(merged.tf.layers[0].q.lora);
    assert_int_equal(merged.tf.layers[0].q.type, WT_F32);
    size_t n;
    float *a = logits_of(&fly, "tiny-dream-bf16", &n), *b = logits_of(&merged, "tiny-dream-bf16", &n);
    assert_int_equal(tu_compare_f32("on the fly vs merged (bf16 base, DoRA)", a, b, n, ATOL, RTOL),
                     0);
    /* q8 keeps the adapter */
    assert_int_equal(transformer_quantize_q8(&fly.tf), 0);
    assert_non_null(fly.tf.layers[0].q.lora);
    free(a), free(b);
    model_dir_free(&fly);
    model_dir_free(&merged);
}

/* smdlm merge writes a model directory that loads like base + adapter (fp32 base exactly; a bf16
 * base's merged targets are rounded to bf16). */
static void test_merge_command(void **state) {
    (void)state;
    char tmp[256], out[512];
    assert_int_equal(tu_tmpdir_make(tmp, sizeof tmp, "merge"), 0);
    static const struct {
        const char *adapter, *base, *ref;
        float tol;
    } cases[] = {{"tiny-dream-dora", "tiny-dream", "logits.npy", ATOL},
                 {"tiny-llada-dora", "tiny-llada", "logits.npy", ATOL},
                 /* 2 of the 24576 merged weights round to the other bf16 neighbour of PyTorch's */
                 {"tiny-dream-bf16-dora", "tiny-dream-bf16", "logits_merged_bf16.npy", 5e-3f}};
    for (int i = 0; i < 3; i++) {
        snprintf(out, sizeof out, "%s/%s", tmp, cases[i].adapter);
        char *log;
        int rc = tu_run(&log, "merge --adapter %s -o %s", tu_fixture("%s", cases[i].adapter), out);
        if (rc) print_error("%s\n", log);
        assert_int_equal(rc, 0);
        free(log);
        model_dir md;
        load_ok(model_dir_load_any(&md, out, 0));
        size_t n, nref;
        float *got = logits_of(&md, cases[i].base, &n);
        float *ref = tu_load_f32(tu_fixture("%s/%s", cases[i].adapter, cases[i].ref), &nref);
        char what[160];
        snprintf(what, sizeof what, "merged directory of %s", cases[i].adapter);
        assert_int_equal(tu_compare_f32(what, got, ref, n, cases[i].tol, cases[i].tol), 0);
        free(got), free(ref);
        model_dir_free(&md);
    }
    assert_int_equal(tu_tmpdir_remove(tmp), 0);
}

/* Adapters that are refused, each with an error naming the option or the tensor. */
static void test_refused(void **state) {
    (void)state;
    char tmp[256], cmd[2048];
    assert_int_equal(tu_tmpdir_make(tmp, sizeof tmp, "badadapter"), 0);
    static const struct {
        const char *edit, *word;
    } cases[] = {
        {"s/\"bias\": \"none\"/\"bias\": \"lora_only\"/", "bias"},
        {"s/\"modules_to_save\": null/\"modules_to_save\": [\"lm_head\"]/", "modules_to_save"},
        {"s/\"rank_pattern\": {}/\"rank_pattern\": {\"q_proj\": 8}/", "rank_pattern"},
        {"s/\"peft_type\": \"LORA\"/\"peft_type\": \"IA3\"/", "IA3"},
        {"s/\"r\": 4/\"r\": 8/", "lora_A"},
        {"s/\"o_proj\"/\"up_proj\"/", "up_proj"},
        {"s/\"use_dora\": false/\"use_dora\": true/", "lora_magnitude_vector"},
        {"/\"target_modules\"/,/]/c\\  \"target_modules\": \".*proj\",", "regular expression"},
        {"s/\"target_modules\": \\[/\"target_modules\": [\"nothing\"], \"x\": [/", "match no"},
    };
    char src[256];
    snprintf(src, sizeof src, "%s", tu_fixture("tiny-dream-lora"));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(cmd, sizeof cmd,
                 "rm -rf %s/a && mkdir %s/a && cp %s/adapter_model.safetensors %s/a && "
                 "sed '%s' %s/adapter_config.json > %s/a/adapter_config.json",
                 tmp, tmp, src, tmp, cases[i].edit, src, tmp);
        assert_int_equal(system(cmd), 0);
        char dir[512];
        snprintf(dir, sizeof dir, "%s/a", tmp);
        model_dir md;
        const char *words[] = {cases[i].word, NULL};
        tu_expect_error(model_dir_load_adapted(&md, tu_fixture("tiny-dream"), dir, 0, 0),
                        cases[i].word, words);
    }
    /* an adapter for LLaDA on Dream: tensors that belong to no module of the model */
    model_dir md;
    const char *words[] = {"missing", NULL};
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tu_fixture("tiny-llada-dora"));
    tu_expect_error(model_dir_load_adapted(&md, tu_fixture("tiny-dream"), dir, 0, 0), "family",
                    words);
    assert_int_equal(tu_tmpdir_remove(tmp), 0);

    static const char args[][256] = {
        "generate -m tests/fixtures/tiny --adapter tests/fixtures/tiny-dream-dora",
        "merge --adapter tests/fixtures/tiny-dream -o /tmp/smdlm-never-written",
        "merge -o /tmp/smdlm-never-written",
        "forward -m tests/fixtures/tiny-llada --adapter tests/fixtures/tiny-dream-lora --ids "
        "tests/fixtures/tiny-llada/ids.npy -o /tmp/smdlm-never-written.npy",
    };
    static const char *const word[] = {"MDLM", "adapter_config.json", "--adapter", "missing"};
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, (int)(sizeof word / sizeof *word));
}

int main(void) {
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_merged_equals_on_the_fly),
        cmocka_unit_test(test_merge_command),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
