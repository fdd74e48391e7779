/* test_train.c — the training math against PyTorch autograd (tests/gen_train_fixtures.py):
 * the loss and the gradient of every parameter and of the three soft-masking scalars, for
 * a plain pass, a two-pass soft-masking step and the causal variant, on two tiny models;
 * determinism; and learning (overfitting one batch). */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
#include "safetensors.h"
#include "testutil.h"
#include "train.h"
#include "util.h"

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

/* Every gradient tensor against the reference: |got − ref| ≤ 1e-5·max|ref| + 1e-4·|ref|. */
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
        trainer_free(&tr);
    }
    unload(&f);
}

static void test_gradients_tiny(void **state) { check_model("tiny"); }
static void test_gradients_time_conditioned(void **state) { check_model("tiny-tc"); }

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
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
