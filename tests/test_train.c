/* test_train.c — the training math against PyTorch autograd (tests/gen_train_fixtures.py):
 * the loss and the gradient of every parameter and of the three soft-masking scalars, for
 * a plain pass, a two-pass soft-masking step and the causal variant, on two tiny models;
 * determinism; and learning (overfitting one batch). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compute/kernels.h"
#include "models/model.h"
#include "train/optim.h"
#include "formats/safetensors.h"
#include "testutil.h"
#include "train/train.h"
#include "base/util.h"

typedef struct {
    model_dir md;
    int32_t *xt, *x0;
    float *t;
    int B, T;
} batch_fixture;

static void load(batch_fixture *f, const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, FIXTURES_DIR "/%s", name);
    assert_int_equal(model_dir_load(&f->md, dir, 0), 0);
    size_t n;
    int64_t shape[2];
    int ndim;
    f->xt = tu_load_i32(tu_fixture("%s/train/xt.npy", name), &n, shape, &ndim);
    f->x0 = tu_load_i32(tu_fixture("%s/train/x0.npy", name), &n, NULL, NULL);
    f->t = tu_load_f32(tu_fixture("%s/train/t.npy", name), &n);
    f->B = (int)shape[0];
    f->T = (int)shape[1];
}

static void unload(batch_fixture *f) {
    model_dir_free(&f->md);
    free(f->xt), free(f->x0), free(f->t);
}

static float summary_number(const char *name, const char *key) {
    char *text;
    assert_int_equal(sm_read_file(tu_fixture("%s/train/summary.json", name), 1 << 20, &text, NULL), 0);
    char *p = strstr(text, key);
    assert_non_null(p);
    float v = strtof(strchr(p, ':') + 1, NULL);
    free(text);
    return v;
}

/* Every gradient tensor against the reference: |got − ref| ≤ 1e-5·max|ref| + 1e-4·|ref|.
 * A frozen trainer (--sm-only): the soft-masking scalars' gradients against the same reference,
 * every parameter gradient exactly zero (nothing accumulated). */
static void compare_grads(trainer *tr, const char *path) {
    st_archive ar;
    if (st_open_file(&ar, path)) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
    int n = dit_param_count(&tr->cfg);
    dit_param *tab = sm_malloc(sizeof *tab * (size_t)n);
    dit_weights gw = tr->grads.w;
    dit_param_table(&tr->cfg, &gw, tab);
    size_t bad = 0;
    for (int i = 0; i < n + 3; i++) {
        char name[128];
        const float *got;
        size_t numel;
        if (i < n) {
            snprintf(name, sizeof name, "%s%s", tr->model.prefix, tab[i].name);
            got = *tab[i].slot;
            numel = tab[i].numel;
        } else {
            static const char *sm[3] = {"softmask.raw_scale", "softmask.raw_centre", "softmask.raw_steepness"};
            snprintf(name, sizeof name, "%s", sm[i - n]);
            got = &tr->sm_grad[i - n];
            numel = 1;
        }
        const st_tensor *t = st_find(&ar, name);
        assert_non_null(t);
        assert_int_equal(t->numel, numel);
        if (tr->frozen && i < n) {
            size_t nonzero = 0;
            for (size_t j = 0; j < numel; j++) nonzero += got[j] != 0.0f;
            if (nonzero) printf("  %s: %zu nonzero gradients of a frozen parameter\n", name, nonzero);
            bad += nonzero;
            continue;
        }
        float *ref = sm_malloc(sizeof(float) * numel);
        assert_int_equal(st_tensor_to_f32(t, ref), 0);
        float mx = 0;
        for (size_t j = 0; j < numel; j++) mx = fmaxf(mx, fabsf(ref[j]));
        bad += tu_compare_f32(name, got, ref, numel, 1e-5f * mx + 1e-9f, 1e-4f);
        free(ref);
    }
    free(tab);
    st_close(&ar);
    assert_int_equal(bad, 0);
}

static void check_model(const char *name) {
    batch_fixture f;
    load(&f, name);
    static const char *kinds[3] = {"plain", "sm", "causal"};
    for (int k = 0; k < 3; k++) {
        trainer tr;
        trainer_init(&tr, &f.md.net, f.B, f.T, 2);
        sm_params p;
        sm_params_default(&p);
        p.scale = 0.6f, p.centre = -1.5f, p.steepness = 3.0f, p.k = 3;
        sm_raw_from_params(&tr.sm, &p);
        tr.cfg.causal = k == 2;
        train_batch b = {k == 2 ? f.x0 : f.xt, f.x0, f.t};
        double loss = trainer_step(&tr, &b, k == 1);
        char key[32];
        snprintf(key, sizeof key, "\"loss_%s\"", kinds[k]);
        float ref = summary_number(name, key);
        printf("  %s %s: loss %.7f (PyTorch %.7f)\n", name, kinds[k], loss, ref);
        assert_true(fabs(loss - ref) <= 1e-5 * fabs(ref));
        compare_grads(&tr, tu_fixture("%s/train/grads_%s.safetensors", name, kinds[k]));
        if (k == 1) { /* --sm-only: the same soft-masking gradients from the frozen model */
            tr.frozen = 1;
            double frozen_loss = trainer_step(&tr, &b, 1);
            printf("  %s sm, frozen: loss %.7f, SM gradients %g %g %g\n", name, frozen_loss, tr.sm_grad[0],
                   tr.sm_grad[1], tr.sm_grad[2]);
            assert_true(frozen_loss == loss);
            compare_grads(&tr, tu_fixture("%s/train/grads_%s.safetensors", name, kinds[k]));
        }
        trainer_free(&tr);
    }
    unload(&f);
}

static void test_gradients_tiny(void **state) { check_model("tiny"); }
static void test_gradients_time_conditioned(void **state) { check_model("tiny-tc"); }

/* 10 AdamW steps on the fixture batch (lr 1e-3, wd 0.01; soft-masking scalars lr 1e-2,
 * wd 0; clip 1.0): the losses PyTorch saw before each step. */
static void adam_run(const char *name, int sm) {
    batch_fixture f;
    load(&f, name);
    trainer tr;
    trainer_init(&tr, &f.md.net, f.B, f.T, 2);
    sm_params p;
    sm_params_default(&p);
    p.scale = 0.6f, p.centre = -1.5f, p.steepness = 3.0f, p.k = 3;
    sm_raw_from_params(&tr.sm, &p);
    optim_config oc;
    optim_config_default(&oc);
    optim_group g[2] = {{tr.model.owned, tr.grads.owned, tr.nparams, 1e-3f, 0.01f},
                        {&tr.sm.raw_scale, tr.sm_grad, 3, 1e-2f, 0.0f}};
    adamw opt;
    adamw_init(&opt, &oc, g, sm ? 2 : 1);
    size_t n;
    float *ref = tu_load_f32(tu_fixture("%s/train/adam_losses_%s.npy", name, sm ? "sm" : "plain"), &n);
    float *ref_norm = tu_load_f32(tu_fixture("%s/train/adam_norms_%s.npy", name, sm ? "sm" : "plain"), &n);
    float got[10], got_norm[10];
    train_batch b = {f.xt, f.x0, f.t};
    for (int i = 0; i < 10; i++) {
        got[i] = (float)trainer_step(&tr, &b, sm);
        got_norm[i] = (float)adamw_step(&opt);
    }
    assert_int_equal(tu_compare_f32(sm ? "AdamW losses (SM)" : "AdamW losses", got, ref, 10, 1e-6f, 2e-5f), 0);
    assert_int_equal(tu_compare_f32("grad norms", got_norm, ref_norm, 10, 1e-6f, 1e-4f), 0);
    free(ref), free(ref_norm);
    adamw_free(&opt);
    trainer_free(&tr);
    unload(&f);
}

static void test_adamw_steps(void **state) {
    adam_run("tiny", 0);
    adam_run("tiny", 1);
    adam_run("tiny-tc", 1);
}

/* The loop can learn: one fixed batch is memorised. */
static void test_overfit(void **state) {
    batch_fixture f;
    load(&f, "tiny");
    trainer tr;
    trainer_init(&tr, &f.md.net, f.B, f.T, 2);
    optim_config oc;
    optim_config_default(&oc);
    optim_group g = {tr.model.owned, tr.grads.owned, tr.nparams, 3e-3f, 0.0f};
    adamw opt;
    adamw_init(&opt, &oc, &g, 1);
    train_batch b = {f.xt, f.x0, f.t};
    double first = 0, loss = 0;
    for (int i = 0; i < 150; i++) {
        loss = trainer_step(&tr, &b, 0);
        if (i == 0) first = loss;
        adamw_step(&opt);
    }
    printf("  overfitting one batch: loss %.4f -> %.4f after 150 steps\n", first, loss);
    assert_true(loss < 0.02 * first);
    adamw_free(&opt);
    trainer_free(&tr);
    unload(&f);
}

/* An exported model directory loads back with the same weights and soft-masking values. */
static void test_export(void **state) {
    batch_fixture f;
    load(&f, "tiny");
    trainer tr;
    trainer_init(&tr, &f.md.net, f.B, f.T, 2);
    sm_params p;
    sm_params_default(&p);
    p.scale = 0.25f, p.centre = -1.0f, p.steepness = 5.0f, p.k = 3;
    sm_raw_from_params(&tr.sm, &p);
    trainer_ema_update(&tr, 0.9f); /* copies */
    tr.model.owned[0] += 1.0f;     /* the EMA export must not see this */
    char dir[] = "/tmp/smdlm-export-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(trainer_export(&tr, dir, 1, 1), 0);
    model_dir md;
    assert_int_equal(model_dir_load(&md, dir, 0), 0);
    assert_true(md.has_sm_config);
    assert_true(fabsf(md.sm.scale - 0.25f) < 1e-6f && fabsf(md.sm.centre + 1.0f) < 1e-5f &&
                fabsf(md.sm.steepness - 5.0f) < 1e-5f);
    assert_memory_equal(md.net.w.embed, tr.ema.owned, tr.nparams * sizeof(float));
    assert_true(md.net.w.embed[0] != tr.model.owned[0]);
    model_dir_free(&md);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    trainer_free(&tr);
    unload(&f);
}

/* Antithetic times cover (ε, 1] evenly; masks follow t. */
static void test_noise_batch(void **state) {
    const int B = 8, T = 4000;
    int32_t *x0 = sm_malloc(sizeof(int32_t) * B * T), *xt = sm_malloc(sizeof(int32_t) * B * T);
    float t[8];
    for (int i = 0; i < B * T; i++) x0[i] = i % 50;
    sm_rng r;
    rng_seed(&r, 11);
    mdlm_noise_batch(&r, x0, xt, t, B, T, 99);
    float sorted[8];
    memcpy(sorted, t, sizeof t);
    for (int i = 0; i < B; i++)
        for (int j = i + 1; j < B; j++)
            if (sorted[j] < sorted[i]) {
                float x = sorted[i];
                sorted[i] = sorted[j], sorted[j] = x;
            }
    for (int i = 1; i < B; i++) assert_true(fabsf(sorted[i] - sorted[i - 1] - 0.999f / B) < 1e-5f);
    for (int b = 0; b < B; b++) {
        assert_true(t[b] >= 1e-3f && t[b] <= 1.0f);
        int masked = 0;
        for (int i = b * T; i < (b + 1) * T; i++) {
            if (xt[i] == 99) masked++;
            else assert_int_equal(xt[i], x0[i]);
        }
        double frac = (double)masked / T, want = 0.999 * t[b];
        assert_true(fabs(frac - want) < 4.0 * sqrt(want * (1 - want) / T) + 1e-3);
    }
    free(x0), free(xt);
}

static void test_deterministic(void **state) {
    batch_fixture f;
    load(&f, "tiny");
    trainer a, b;
    trainer_init(&a, &f.md.net, f.B, f.T, 2);
    trainer_init(&b, &f.md.net, f.B, f.T, 2);
    train_batch bt = {f.xt, f.x0, f.t};
    double la = trainer_step(&a, &bt, 1), lb = trainer_step(&b, &bt, 1);
    assert_true(la == lb);
    assert_memory_equal(a.grads.owned, b.grads.owned, a.nparams * sizeof(float));
    trainer_free(&a), trainer_free(&b);
    unload(&f);
}

int main(void) {
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_tiny),
        cmocka_unit_test(test_gradients_time_conditioned),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_adamw_steps),
        cmocka_unit_test(test_overfit),
        cmocka_unit_test(test_noise_batch),
        cmocka_unit_test(test_export),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
