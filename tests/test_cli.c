/* test_cli.c — the smdlm program as a user runs it: the `forward` contract against the
 * PyTorch fixtures, generate's reproducibility and outputs, and the bad-input matrix (each
 * case must exit with status 1 and a message naming the problem — never crash). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <math.h>

#include "formats/npy.h"
#include "formats/safetensors.h"
#include "testutil.h"
#include "base/util.h"

static char g_tmp[64];

#define run tu_run

static void test_forward_contract(void **state) {
    const char *fx = FIXTURES_DIR "/tiny-tc";
    assert_int_equal(run(NULL, "forward -m %s --ids %s/ref/ids.npy --t %s/ref/t.npy -o %s/l.npy",
                         fx, fx, fx, g_tmp), 0);
    size_t n, nr;
    char path[128];
    snprintf(path, sizeof path, "%s/l.npy", g_tmp);
    float *got = tu_load_f32(path, &n), *ref = tu_load_f32(tu_fixture("tiny-tc/ref/logits.npy"), &nr);
    assert_int_equal(n, nr);
    assert_int_equal(tu_compare_f32("forward logits", got, ref, n, 1e-4f, 1e-4f), 0);
    free(got), free(ref);
    /* --feedback: SUBS + soft-masking from the raw logits of the first pass */
    assert_int_equal(run(NULL, "forward -m %s --ids %s/ref/ids2.npy --t %s/ref/t.npy --feedback "
                               "%s/ref/logits.npy --sm-config %s/ref/sm_config.json -o %s/l2.npy",
                         fx, fx, fx, fx, fx, g_tmp), 0);
    snprintf(path, sizeof path, "%s/l2.npy", g_tmp);
    got = tu_load_f32(path, &n), ref = tu_load_f32(tu_fixture("tiny-tc/ref/logits_pass2.npy"), &nr);
    assert_int_equal(tu_compare_f32("forward --feedback", got, ref, n, 1e-4f, 1e-4f), 0);
    free(got), free(ref);
    /* the same values given as flags instead of a file */
    assert_int_equal(run(NULL, "forward -m %s --ids %s/ref/ids2.npy --t %s/ref/t.npy --feedback "
                               "%s/ref/logits.npy --sm-scale 0.7 --sm-centre -1.2 --sm-steepness 4 "
                               "--sm-k 3 -o %s/l3.npy", fx, fx, fx, fx, g_tmp), 0);
    snprintf(path, sizeof path, "%s/l3.npy", g_tmp);
    got = tu_load_f32(path, &n), ref = tu_load_f32(tu_fixture("tiny-tc/ref/logits_pass2.npy"), &nr);
    assert_int_equal(tu_compare_f32("forward --sm-* flags", got, ref, n, 1e-4f, 1e-4f), 0);
    free(got), free(ref);
}

static void test_generate(void **state) {
    char *a, *b, *v;
    const char *fx = FIXTURES_DIR "/tiny";
    assert_int_equal(run(&a, "generate -m %s --len 20 --steps 8 --seed 5 -n 2 -o - -q", fx), 0);
    assert_int_equal(run(&b, "generate -m %s --len 20 --steps 8 --seed 5 -n 2 -o - -q", fx), 0);
    assert_string_equal(a, b);
    /* two JSON lines with 20 ids each */
    assert_non_null(strstr(a, "\"ids\":["));
    assert_non_null(strchr(strchr(a, '\n') + 1, '\n'));
    free(b);
    assert_int_equal(run(&b, "generate -m %s --len 20 --steps 8 --seed 6 -n 2 -o - -q", fx), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(run(&v, "generate -m %s --len 20 --steps 4 --visual --delay 0 -q "
                             "--sampler remdm-loop --sm-scale 0.5", fx), 0);
    assert_non_null(strstr(v, "step 1/4"));
    assert_non_null(strstr(v, "step 4/4"));
    assert_non_null(strstr(v, "\xe2\x96\x91")); /* masked positions shown in early frames */
    free(v);
    /* -n 5 (two batches): every sample's canvas is shown; the last frame of each batch holds
       the samples' final texts */
    free(b);
    assert_int_equal(run(&b, "generate -m %s --len 20 --steps 4 --seed 5 -n 5 -q", fx), 0);
    assert_int_equal(run(&v, "generate -m %s --len 20 --steps 4 --seed 5 -n 5 --visual --delay 0 -q", fx), 0);
    for (int i = 0; i < 5; i++) {
        char head[32], want[32];
        snprintf(head, sizeof head, "=== sample %d ===\n", i);
        snprintf(want, sizeof want, "--- sample %d ---\n", i);
        char *text = strstr(b, head), *frame = strstr(v, want);
        assert_non_null(text);
        assert_non_null(frame); /* sample i is drawn */
        text += strlen(head);
        for (char *next; (next = strstr(frame + 1, want));) frame = next; /* its last frame */
        frame += strlen(want);
        const size_t len = (size_t)(strchr(text, '\n') - text + 1);
        if (strncmp(frame, text, len))
            fail_msg("sample %d: last frame %.60s, generated %.60s", i, frame, text);
    }
    free(a), free(b), free(v);
}

/* `smdlm grad` writes what PyTorch autograd computed (tests/gen_train_fixtures.py). */
static void test_grad_contract(void **state) {
    const char *fx = FIXTURES_DIR "/tiny-tc";
    char *out, path[128];
    snprintf(path, sizeof path, "%s/g.safetensors", g_tmp);
    assert_int_equal(run(&out, "grad -m %s --ids %s/train/xt.npy --targets %s/train/x0.npy --t "
                               "%s/train/t.npy --sm --sm-scale 0.6 --sm-centre -1.5 --sm-steepness 3 "
                               "--sm-k 3 -o %s", fx, fx, fx, fx, path), 0);
    printf("  %s", out);
    double loss = strtod(strstr(out, "loss ") + 5, NULL);
    free(out);
    assert_true(fabs(loss - 5.3982015) < 1e-4);
    st_archive got, ref;
    assert_int_equal(st_open_file(&got, path), 0);
    assert_int_equal(st_open_file(&ref, tu_fixture("tiny-tc/train/grads_sm.safetensors")), 0);
    assert_int_equal(got.ntensors, ref.ntensors);
    size_t bad = 0;
    for (int i = 0; i < ref.ntensors; i++) {
        const st_tensor *r = &ref.tensors[i], *g = st_find(&got, r->name);
        assert_non_null(g);
        assert_int_equal(g->numel, r->numel);
        float *a = sm_malloc(sizeof(float) * r->numel), *b = sm_malloc(sizeof(float) * r->numel);
        st_tensor_to_f32(g, a);
        st_tensor_to_f32(r, b);
        float mx = 0;
        for (size_t j = 0; j < r->numel; j++) mx = fmaxf(mx, fabsf(b[j]));
        bad += tu_compare_f32(r->name, a, b, r->numel, 1e-5f * mx + 1e-9f, 1e-4f);
        free(a), free(b);
    }
    st_close(&got);
    st_close(&ref);
    assert_int_equal(bad, 0);
}

/* A model directory with a tokenizer: prompts stay fixed, text round-trips. */
static void test_demo_model(void **state) {
    char *out;
    assert_int_equal(run(&out, "generate -m models/demo -p \"And God said\" --len 48 --steps 12 "
                               "--seed 3 -q"), 0);
    printf("  %s", out);
    assert_true(strncmp(out, "And God said", 12) == 0);
    free(out);
    assert_int_equal(run(&out, "tokenize -m models/demo --text \"In the beginning\""), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tokenize -m models/demo --decode --text \"%.*s\"",
             (int)strcspn(out, "\n"), out);
    free(out);
    assert_int_equal(run(&out, "%s", cmd), 0);
    assert_string_equal(out, "In the beginning\n");
    free(out);
    assert_int_equal(run(&out, "generate -m models/demo -p \"%s\" --len 16",
                         "a prompt that is far longer than sixteen tokens of canvas"), 1);
    assert_non_null(strstr(out, "raise --len"));
    free(out);
}

/* Where soft-masking is on, the message says whether its scale ever learnt: models/demo's
 * transparency_config.json holds 1.17e-6 (below the 1e-3 threshold), so generate and chat
 * (through the one shared description) name it untrained; a trained scale, the threshold
 * itself and --no-sm keep the plain words. */
static void test_softmask_words(void **state) {
    const char *untrained = "soft-masking on (k=3, λ scale 1.2e-06: untrained, the feedback barely changes the input)";
    const struct {
        const char *flags, *want;
    } cases[] = {
        {"", untrained},
        {"--sm-scale 0.0009", "soft-masking on (k=3, λ scale 9.0e-04: untrained, the feedback barely changes the input)"},
        {"--sm-scale 0.001", "soft-masking on, "},
        {"--sm-scale 0.5 --sm-k 2", "soft-masking on, "},
        {"--no-sm", "soft-masking off, "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out;
        assert_int_equal(run(&out, "generate -m models/demo --len 16 --steps 2 --seed 1 -t 1 %s", cases[i].flags), 0);
        printf("  %s: %s", cases[i].flags, strstr(out, "smdlm generate:") ? strstr(out, "smdlm generate:") : out);
        assert_non_null(strstr(out, cases[i].want));
        if (i >= 2) assert_null(strstr(out, "untrained"));
        free(out);
    }
    /* chat (a Dream model, k = 1) says it once before the conversation */
    char dir[128], *out;
    snprintf(dir, sizeof dir, "%s/dream", g_tmp);
    tu_link_model_dir(dir, "tiny-dream", "tiny-dream-tokenizer");
    assert_int_equal(run(&out, "chat -m %s --sm-scale 1e-6 --max-new-tokens 4 --steps 2 -t 1 < /dev/null", dir), 0);
    printf("  chat: %s", out);
    assert_non_null(strstr(out, "smdlm chat: soft-masking on (k=1, λ scale 1.0e-06: untrained, the feedback "
                                "barely changes the input)\n"));
    free(out);
    assert_int_equal(run(&out, "chat -m %s --sm-scale 0.5 --max-new-tokens 4 --steps 2 -t 1 < /dev/null", dir), 0);
    assert_null(strstr(out, "soft-masking"));
    free(out);
}

static void test_bad_input(void **state) {
    char ids_bad[128], prev_bad[128];
    snprintf(ids_bad, sizeof ids_bad, "%s/ids_bad.npy", g_tmp);
    int32_t bad_ids[4] = {1, 2, 67, 3};
    int64_t shape[2] = {1, 4};
    assert_int_equal(npy_write(ids_bad, NPY_I4, 2, shape, bad_ids), 0);
    char ids_small[128];
    snprintf(ids_small, sizeof ids_small, "%s/ids_small.npy", g_tmp);
    int32_t small_ids[4] = {1, 2, 3, 4};
    assert_int_equal(npy_write(ids_small, NPY_I4, 2, shape, small_ids), 0);
    snprintf(prev_bad, sizeof prev_bad, "%s/prev_bad.npy", g_tmp);
    float prev[8] = {0};
    int64_t pshape[3] = {1, 4, 2};
    assert_int_equal(npy_write(prev_bad, NPY_F4, 3, pshape, prev), 0);
    const char *T = FIXTURES_DIR "/tiny";
    static char args[64][512];
    const char *word[64];
    int n = 0;
#define CASE(w, ...) (snprintf(args[n], sizeof args[n], __VA_ARGS__), word[n++] = (w))
    CASE("unknown option", "generate -m %s --bogus", T);
    CASE("--steps", "generate -m %s --steps 0", T);
    CASE("--steps", "generate -m %s --steps abc", T);
    CASE("needs a value", "generate -m %s --steps", T);
    CASE("--top-p", "generate -m %s --top-p 1.5", T);
    CASE("--threads", "generate -m %s --threads 0", T);
    CASE("--seed", "generate -m %s --seed -5", T);
    CASE("unknown sampler", "generate -m %s --sampler gumbel", T);
    CASE("exceeds", "generate -m %s --len 33", T);
    CASE("no -m given", "generate --len 8"); /* $SMDLM_MODEL points nowhere (below) */
    CASE("--sm-scale", "generate -m %s --sm-scale 2", T);
    CASE("tokenizer", "generate -m %s -p hello --len 8", T);
    CASE("out of range", "forward -m %s --ids %s -o %s/x.npy", T, ids_bad, g_tmp);
    CASE("expected float32 logits", "forward -m %s --ids %s/ref/ids.npy --feedback %s "
                                    "--sm-scale 0.5 -o %s/x.npy", T, T, prev_bad, g_tmp);
    CASE("outside (0, 1]", "forward -m %s --ids %s/ref/ids.npy --t 1.5 -o %s/x.npy", T, T, g_tmp);
    CASE("required", "forward -m %s -o %s/x.npy", T, g_tmp);
    CASE("model.safetensors", "forward -m tests/bad/model-truncated --ids %s/ref/ids.npy -o %s/x.npy", T, g_tmp);
    CASE("invalid JSON", "forward -m tests/bad/model-bad-json --ids %s/ref/ids.npy -o %s/x.npy", T, g_tmp);
    CASE("missing tensor", "generate -m tests/bad/model-missing-tensor --len 8");
    CASE("wrong shape", "generate -m tests/bad/model-wrong-shape --len 8");
    CASE("n_heads", "generate -m tests/bad/model-bad-config --len 8");
    CASE("cannot open", "generate -m tests/bad/no-such-dir --len 8");
    CASE("unknown command", "frobnicate");
    CASE("exclude each other", "grad -m %s --ids %s/ref/ids.npy --targets %s/ref/ids.npy --sm --causal -o %s/g", T, T, T, g_tmp);
    CASE("are required", "grad -m %s --ids %s/ref/ids.npy --targets %s/ref/ids.npy -o %s/g", T, T, T, g_tmp);
    CASE("but", "grad -m %s --ids %s/ref/ids.npy --targets %s --causal -o %s/g", T, T, ids_small, g_tmp);
    CASE("float32 times", "grad -m %s --ids %s/ref/ids.npy --targets %s/ref/ids.npy --t %s -o %s/g", T, T, T, ids_bad, g_tmp);
    CASE("exactly one", "tokenize -m %s", T);
    CASE("shape", "bench forward --shape huge");
#undef CASE
    setenv("SMDLM_MODEL", "/nonexistent-model-dir", 1);
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, n);
    unsetenv("SMDLM_MODEL");
}

/* generate without -m runs the bundled default model (a soft-masked MDLM with a tokenizer),
 * or the model $SMDLM_MODEL names. */
static void test_default_model(void **state) {
    char *a = NULL, *b = NULL;
    int rc = tu_run(&a, "generate --len 16 --steps 4 --seed 5 -q -t 1");
    printf("  default model: %s", a);
    assert_int_equal(rc, 0);
    assert_true(strlen(a) > 0);
    rc = tu_run(&b, "generate -m models/default --len 16 --steps 4 --seed 5 -q -t 1");
    assert_int_equal(rc, 0);
    assert_string_equal(a, b);
    free(b);
    setenv("SMDLM_MODEL", "models/demo", 1);
    rc = tu_run(&b, "generate --len 16 --steps 4 --seed 5 -q -t 1");
    unsetenv("SMDLM_MODEL");
    assert_int_equal(rc, 0);
    assert_string_not_equal(a, b); /* another model, another text */
    free(a);
    free(b);
}

static int setup(void **state) { return tu_tmpdir_make(g_tmp, sizeof g_tmp, "cli"); }

static int teardown(void **state) { return tu_tmpdir_remove(g_tmp); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_contract),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_demo_model),
        cmocka_unit_test(test_softmask_words),
        cmocka_unit_test(test_grad_contract),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_default_model),
    };
    return cmocka_run_group_tests_name("cli", tests, setup, teardown);
}
