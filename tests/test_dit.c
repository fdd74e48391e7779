/* test_dit.c — the DiT forward, SUBS and soft-masking against PyTorch fixtures
 * (tests/gen_fixtures.py) on two tiny random models, the two thread schedules of the forward
 * against each other, plus config validation. */
#include <math.h>
#include <string.h>

#include "models/dit.h"
#include "compute/gemm.h"
#include "compute/kernels.h"
#include "models/model.h"
#include "softmask/softmask.h"
#include "testutil.h"
#include "base/util.h"

static const char *k_models[] = {"tiny", "tiny-tc"};

typedef struct {
    model_dir md;
    int32_t *ids;
    int B, T, V;
    float sigma[8];
} fixture;

static void load_fixture(fixture *f, const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, FIXTURES_DIR "/%s", name);
    if (model_dir_load(&f->md, dir, 0)) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
    size_t n;
    int64_t shape[4];
    int ndim;
    f->ids = tu_load_i32(tu_fixture("%s/ref/ids.npy", name), &n, shape, &ndim);
    f->B = (int)shape[0];
    f->T = (int)shape[1];
    f->V = f->md.net.cfg.vocab_size;
    float *sig = tu_load_f32(tu_fixture("%s/ref/sigma.npy", name), &n);
    memcpy(f->sigma, sig, sizeof(float) * n);
    free(sig);
}

static void free_fixture(fixture *f) {
    model_dir_free(&f->md);
    free(f->ids);
}

static void test_forward_logits(void **state) {
    for (int mi = 0; mi < 2; mi++) {
        fixture f;
        load_fixture(&f, k_models[mi]);
        dit_acts a;
        dit_acts_alloc(&a, &f.md.net.cfg, f.B, f.T, 2);
        size_t n, BT = (size_t)f.B * f.T;
        float *ref = tu_load_f32(tu_fixture("%s/ref/logits.npy", k_models[mi]), &n);
        assert_int_equal(n, BT * f.V);
        float *got = sm_malloc(sizeof(float) * n);
        dit_forward(&f.md.net, &a, f.ids, f.sigma, f.B, f.T, got);
        assert_int_equal(tu_compare_f32("logits", got, ref, n, 1e-4f, 1e-4f), 0);

        /* partial output layer: only the masked rows, in order */
        int32_t *rows = sm_malloc(sizeof(int32_t) * BT);
        int nrows = 0;
        for (size_t i = 0; i < BT; i++)
            if (f.ids[i] == f.md.net.cfg.mask_id) rows[nrows++] = (int32_t)i;
        float *part = sm_malloc(sizeof(float) * (size_t)nrows * f.V);
        dit_embed_ids(&f.md.net, &a, f.ids, f.B, f.T);
        dit_forward_embedded(&f.md.net, &a, f.sigma, f.B, f.T, rows, nrows, part);
        for (int r = 0; r < nrows; r++)
            assert_int_equal(tu_compare_f32("masked rows only", part + (size_t)r * f.V,
                                            got + (size_t)rows[r] * f.V, f.V, 1e-6f, 1e-6f), 0);

        /* SUBS on masked rows */
        float *subs = tu_load_f32(tu_fixture("%s/ref/subs.npy", k_models[mi]), &n);
        for (int r = 0; r < nrows; r++) {
            float *row = got + (size_t)rows[r] * f.V;
            dit_subs_row(row, f.V, f.md.net.cfg.mask_id);
            assert_int_equal(tu_compare_f32("SUBS log-probs", row, subs + (size_t)rows[r] * f.V,
                                            f.V, 1e-4f, 1e-5f), 0);
        }
        free(rows), free(part), free(subs), free(got), free(ref);
        dit_acts_free(&a);
        free_fixture(&f);
    }
}

/* The same weights stored as BF16 (converted at load) and as two shards with an index. */
static void test_bf16_and_sharded(void **state) {
    const char *dirs[] = {"tiny-bf16", "tiny-sharded"};
    const char *refs[] = {"tiny-bf16/ref/logits.npy", "tiny/ref/logits.npy"};
    fixture f;
    load_fixture(&f, "tiny"); /* ids and sigma */
    for (int i = 0; i < 2; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, FIXTURES_DIR "/%s", dirs[i]);
        model_dir md;
        if (model_dir_load(&md, dir, 0)) {
            print_error("%s\n", smdlm_last_error());
            fail();
        }
        assert_true(i == 0 ? md.net.owned != NULL : md.net.owned == NULL); /* converted / mapped */
        dit_acts a;
        dit_acts_alloc(&a, &md.net.cfg, f.B, f.T, 2);
        size_t n;
        float *ref = tu_load_f32(tu_fixture("%s", refs[i]), &n);
        float *got = sm_malloc(sizeof(float) * n);
        dit_forward(&md.net, &a, f.ids, f.sigma, f.B, f.T, got);
        assert_int_equal(tu_compare_f32(dirs[i], got, ref, n, 1e-4f, 1e-4f), 0);
        free(got), free(ref);
        dit_acts_free(&a);
        model_dir_free(&md);
    }
    free_fixture(&f);
}

static void test_causal(void **state) {
    fixture f;
    load_fixture(&f, "tiny");
    f.md.net.cfg.causal = 1;
    dit_acts a;
    dit_acts_alloc(&a, &f.md.net.cfg, f.B, f.T, 2);
    size_t n;
    float *ref = tu_load_f32(tu_fixture("tiny/ref/logits_causal.npy"), &n);
    float *got = sm_malloc(sizeof(float) * n);
    dit_forward(&f.md.net, &a, f.ids, f.sigma, f.B, f.T, got);
    assert_int_equal(tu_compare_f32("causal logits", got, ref, n, 1e-4f, 1e-4f), 0);
    free(got), free(ref);
    dit_acts_free(&a);
    free_fixture(&f);
}

/* The forward with schedule s on `threads` threads: the logits of every row, then (at
 * out + B·T·V) those of the odd rows only, in order. */
static float *forward_with(fixture *f, dit_schedule s, int threads) {
    kernels_set_threads(threads);
    dit_acts a;
    assert_int_equal(dit_acts_alloc(&a, &f->md.net.cfg, f->B, f->T, threads), 0);
    a.schedule = s;
    const int BT = f->B * f->T, nodd = BT / 2;
    float *out = sm_malloc(sizeof(float) * (size_t)(BT + nodd) * f->V);
    dit_forward(&f->md.net, &a, f->ids, f->sigma, f->B, f->T, out);
    int32_t *odd = sm_malloc(sizeof(int32_t) * (size_t)nodd);
    for (int i = 0; i < nodd; i++) odd[i] = 2 * i + 1;
    dit_embed_ids(&f->md.net, &a, f->ids, f->B, f->T);
    dit_forward_embedded(&f->md.net, &a, f->sigma, f->B, f->T, odd, nodd, out + (size_t)BT * f->V);
    free(odd);
    dit_acts_free(&a);
    kernels_set_threads(2);
    return out;
}

/* By rows (each thread its share of the positions; 3 threads split a canvas) and per
 * operation give the same logits within float rounding, and with OpenBLAS's AVX-512 kernels
 * bit for bit on 1 and 2 threads (on 3, calls of 8 rows take other kernels: last bits).
 * Both match PyTorch. The tiny shapes take the rows schedule by default, a large one not. */
static void test_schedules(void **state) {
    const char *core = gemm_provider_core();
    const int exact = core && (!strcmp(core, "SkylakeX") || !strcmp(core, "Cooperlake"));
    for (int mi = 0; mi < 2; mi++)
        for (int causal = 0; causal < 2; causal++) {
            fixture f;
            load_fixture(&f, k_models[mi]);
            f.md.net.cfg.causal = causal;
            assert_true(dit_forward_by_rows(&f.md.net.cfg, f.B, f.T));
            const size_t n = (size_t)f.B * f.T * f.V, n_all = n + (size_t)(f.B * f.T / 2) * f.V;
            float *per_op = forward_with(&f, DIT_SCHEDULE_PER_OP, 2);
            for (int i = 0; i < f.B * f.T / 2; i++) /* the odd rows alone = those of the whole */
                assert_int_equal(tu_compare_f32("odd rows", per_op + n + (size_t)i * f.V,
                                                per_op + (size_t)(2 * i + 1) * f.V, f.V, 1e-6f, 1e-6f), 0);
            for (int threads = 1; threads <= 3; threads++) {
                float *by_rows = forward_with(&f, DIT_SCHEDULE_ROWS, threads);
                printf("%s%s, %d threads by rows: %s\n", k_models[mi], causal ? " causal" : "",
                       threads, memcmp(by_rows, per_op, sizeof(float) * n_all) ? "differs" : "same bits");
                assert_int_equal(tu_compare_f32("rows vs per-op", by_rows, per_op, n_all, 1e-6f, 1e-5f), 0);
                if (exact && threads <= 2) assert_memory_equal(by_rows, per_op, sizeof(float) * n_all);
                free(by_rows);
            }
            size_t nref;
            float *ref = tu_load_f32(tu_fixture("%s/ref/logits%s.npy", k_models[mi],
                                                causal ? "_causal" : ""), &nref);
            assert_int_equal(nref, n);
            assert_int_equal(tu_compare_f32("per-op vs PyTorch", per_op, ref, n, 1e-4f, 1e-4f), 0);
            free(ref), free(per_op);
            free_fixture(&f);
        }
    dit_config big = {.hidden = 768};
    assert_false(dit_forward_by_rows(&big, 1, 1024));
}

static void test_softmask(void **state) {
    for (int mi = 0; mi < 2; mi++) {
        const char *name = k_models[mi];
        fixture f;
        load_fixture(&f, name);
        const dit_config *c = &f.md.net.cfg;
        sm_params p;
        sm_params_default(&p);
        if (sm_params_load_json(&p, tu_fixture("%s/ref/sm_config.json", name))) {
            print_error("%s\n", smdlm_last_error());
            fail();
        }
        size_t n, BT = (size_t)f.B * f.T;
        int32_t *ids2 = tu_load_i32(tu_fixture("%s/ref/ids2.npy", name), &n, NULL, NULL);
        float *subs = tu_load_f32(tu_fixture("%s/ref/subs.npy", name), &n);
        float *lam = tu_load_f32(tu_fixture("%s/ref/sm_lambda.npy", name), &n);
        float *negh = tu_load_f32(tu_fixture("%s/ref/sm_neg_entropy.npy", name), &n);
        int32_t *topi = tu_load_i32(tu_fixture("%s/ref/sm_topk_idx.npy", name), &n, NULL, NULL);
        float *pi = tu_load_f32(tu_fixture("%s/ref/sm_topk_pi.npy", name), &n);
        float *soft = tu_load_f32(tu_fixture("%s/ref/sm_soft_input.npy", name), &n);
        float *ref2 = tu_load_f32(tu_fixture("%s/ref/logits_pass2.npy", name), &n);
        float *got_l = sm_calloc(BT, sizeof(float)), *got_h = sm_calloc(BT, sizeof(float));
        float *got_pi = sm_calloc(BT * 3, sizeof(float));
        int32_t *got_i = sm_calloc(BT * 3, sizeof(int32_t));
        for (size_t i = 0; i < BT; i++) {
            if (ids2[i] != c->mask_id) {
                got_h[i] = negh[i]; /* the reference computes negH everywhere; λ = 0 here */
                continue;
            }
            sm_feedback fb;
            sm_feedback_from_row(&p, subs + i * f.V, f.V, &fb, NULL);
            got_l[i] = fb.lambda;
            got_h[i] = fb.neg_h;
            for (int j = 0; j < 3; j++) {
                got_i[i * 3 + j] = fb.idx[j];
                got_pi[i * 3 + j] = fb.pi[j];
            }
        }
        assert_int_equal(tu_compare_f32("SM negative entropy", got_h, negh, BT, 1e-5f, 1e-5f), 0);
        assert_int_equal(tu_compare_f32("SM lambda", got_l, lam, BT, 1e-6f, 1e-5f), 0);
        assert_int_equal(tu_compare_i32("SM top-k indices", got_i, topi, BT * 3), 0);
        assert_int_equal(tu_compare_f32("SM top-k weights", got_pi, pi, BT * 3, 1e-6f, 1e-5f), 0);

        dit_acts a;
        dit_acts_alloc(&a, c, f.B, f.T, 2);
        sm_feedback *fbs = sm_malloc(sizeof(sm_feedback) * BT);
        sm_feedback_canvas(&p, ids2, f.B, f.T, c->mask_id, subs, f.V, 0, fbs, NULL);
        dit_embed_ids(&f.md.net, &a, ids2, f.B, f.T);
        sm_mix_inputs(a.x, c->hidden, BT, ids2, c->mask_id, f.V, &p, fbs, dit_embed_rows,
                      &f.md.net);
        free(fbs);
        assert_int_equal(tu_compare_f32("SM soft input", a.x, soft, BT * c->hidden, 1e-5f, 1e-5f), 0);
        float *got2 = sm_malloc(sizeof(float) * BT * f.V);
        dit_forward_embedded(&f.md.net, &a, f.sigma, f.B, f.T, NULL, 0, got2);
        assert_int_equal(tu_compare_f32("pass-2 logits", got2, ref2, BT * f.V, 1e-4f, 1e-4f), 0);
        dit_acts_free(&a);
        free(ids2), free(subs), free(lam), free(negh), free(topi), free(pi), free(soft), free(ref2);
        free(got_l), free(got_h), free(got_pi), free(got_i), free(got2);
        free_fixture(&f);
    }
}

static void test_sm_parameterisation(void **state) {
    /* IBM's initial values survive the raw round trip; raw(scale 0) is logit(1e-6) */
    sm_params p, q;
    sm_params_default(&p);
    float rs, rc, rst;
    sm_params_to_raw(&p, &rs, &rc, &rst);
    assert_true(fabsf(rs - logf(1e-6f / (1 - 1e-6f))) < 1e-4f);
    sm_params_from_raw(&q, rs, rc, rst);
    assert_true(fabsf(q.scale - 1e-6f) < 1e-9f);
    assert_true(fabsf(q.centre - p.centre) < 1e-5f);
    assert_true(fabsf(q.steepness - p.steepness) < 1e-5f);
    /* λ: confident rows (negH → 0) get ≈ scale, uncertain rows ≈ 0 */
    p.scale = 0.5f;
    assert_true(fabsf(sm_lambda(&p, 0.0f) - 0.5f / (1 + expf(-p.steepness * 0.75f))) < 1e-7f);
    assert_true(sm_lambda(&p, -10.0f) < 1e-6f);
}

static void expect_config_error(const char *json, const char *word) {
    dit_config c;
    assert_int_equal(dit_config_parse(&c, json, "config.json"), -1);
    if (!strstr(smdlm_last_error(), word)) {
        print_error("error '%s' lacks '%s'\n", smdlm_last_error(), word);
        fail();
    }
}

#define CFG(extra) "{\"model_type\":\"mdlm\",\"vocab_size\":67,\"hidden_dim\":64,\"n_blocks\":2," \
                   "\"cond_dim\":32" extra "}"

static void test_config_validation(void **state) {
    dit_config c;
    assert_int_equal(dit_config_parse(&c, CFG(",\"n_heads\":4"), "x"), 0);
    assert_int_equal(c.mask_id, 66);
    assert_int_equal(c.model_length, 1024);
    expect_config_error(CFG(",\"n_heads\":5"), "divide");
    expect_config_error(CFG(",\"n_heads\":4,\"mask_token_id\":67"), "mask_token_id");
    expect_config_error(CFG(",\"n_heads\":4.5"), "integer");
    expect_config_error(CFG(",\"n_heads\":\"4\""), "integer");
    expect_config_error(CFG(""), "n_heads");
    expect_config_error(CFG(",\"n_heads\":4,\"time_conditioning\":1"), "true or false");
    expect_config_error(CFG(",\"n_heads\":4,\"n_blocks\":100000"), "duplicate");
    expect_config_error("{\"model_type\":\"mdlm\",\"vocab_size\":67,\"hidden_dim\":64,"
                        "\"n_blocks\":2000,\"cond_dim\":32,\"n_heads\":4}", "n_blocks");
    expect_config_error("{\"model_type\":\"Dream\"}", "not supported");
    expect_config_error("[1,2]", "JSON object");
    expect_config_error("{\"model_type\":\"mdlm\",", "invalid JSON at byte");
    expect_config_error(CFG(",\"n_heads\":64"), "even"); /* head dim 1 */
}

static void test_bad_model_dirs(void **state) {
    static const struct {
        const char *dir, *word;
    } cases[] = {
        {"tests/bad/model-missing-tensor", "blocks.1.mlp.2.bias"},
        {"tests/bad/model-wrong-shape", "shape"},
        {"tests/bad/model-bad-config", "n_heads"},
        {"tests/bad/model-no-weights", "model.safetensors"},
        {"tests/bad/model-bad-sm-config", "transparency_scale"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        model_dir md;
        assert_int_equal(model_dir_load(&md, cases[i].dir, 0), -1);
        printf("  %s -> %s\n", cases[i].dir, smdlm_last_error());
        if (!strstr(smdlm_last_error(), cases[i].word)) {
            print_error("error lacks '%s'\n", cases[i].word);
            fail();
        }
    }
}

int main(void) {
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_logits),    cmocka_unit_test(test_causal),
        cmocka_unit_test(test_bf16_and_sharded), cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_softmask),          cmocka_unit_test(test_sm_parameterisation),
        cmocka_unit_test(test_config_validation), cmocka_unit_test(test_bad_model_dirs),
    };
    return cmocka_run_group_tests_name("dit", tests, NULL, NULL);
}
