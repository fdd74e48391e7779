/* test_transformer.c — Dream and LLaDA against PyTorch fixtures (tests/gen_dream_fixtures.py,
 * tools/ref_dream.py): raw logits (fp32, bf16 weights), the shift, the soft-masked second
 * pass, output rows on demand, the lm.h view, the forward command and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute/kernels.h"
#include "models/model.h"
#include "testutil.h"
#include "models/transformer.h"
#include "base/util.h"

#define ATOL 1e-4f
#define RTOL 1e-4f

static void load(model_dir *md, const char *name) {
    if (model_dir_load_any(md, tu_fixture("%s", name), 0)) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
    assert_true(md->arch == MODEL_DREAM || md->arch == MODEL_LLADA);
}

typedef struct {
    int32_t *ids, *ids_sm;
    float *raw, *shifted, *sm;
    int B, T, V;
    size_t n;
} fixture;

static void fixture_load(fixture *f, const char *name, int V) {
    int64_t shape[2];
    int ndim;
    size_t n;
    f->ids = tu_load_i32(tu_fixture("%s/ids.npy", name), &n, shape, &ndim);
    assert_int_equal(ndim, 2);
    f->B = (int)shape[0];
    f->T = (int)shape[1];
    f->ids_sm = tu_load_i32(tu_fixture("%s/ids_sm.npy", name), &n, shape, &ndim);
    f->raw = tu_load_f32(tu_fixture("%s/logits.npy", name), &f->n);
    f->shifted = tu_load_f32(tu_fixture("%s/logits_shifted.npy", name), &n);
    f->sm = tu_load_f32(tu_fixture("%s/logits_sm.npy", name), &n);
    f->V = V;
    assert_int_equal(f->n, (size_t)f->B * f->T * V);
}

static void fixture_free(fixture *f) {
    free(f->ids);
    free(f->ids_sm);
    free(f->raw);
    free(f->shifted);
    free(f->sm);
}

/* transformer_forward without soft-masking on a generation state of its own */
static int forward_plain(const transformer_model *m, const int32_t *x, const uint8_t *need, int B,
                         int T, float *out) {
    tf_state s;
    tf_state_init(&s, m);
    int rc = transformer_forward(&s, x, NULL, NULL, need, B, T, out);
    tf_state_free(&s);
    return rc;
}

/* Plain forward, shift, and the soft-masked second pass from the reference's raw logits. */
static void check_model(const char *name, float atol) {
    model_dir md;
    load(&md, name);
    transformer_model *m = &md.tf;
    fixture f;
    fixture_load(&f, name, m->cfg.vocab_size);
    float *out = sm_malloc(sizeof(float) * f.n);
    assert_int_equal(forward_plain(m, f.ids, NULL, f.B, f.T, out), 0);
    char what[128];
    snprintf(what, sizeof what, "%s raw logits", name);
    assert_int_equal(tu_compare_f32(what, out, f.raw, f.n, atol, RTOL), 0);
    transformer_shift_logits(out, f.B, f.T, f.V);
    snprintf(what, sizeof what, "%s shifted logits", name);
    assert_int_equal(tu_compare_f32(what, out, f.shifted, f.n, atol, RTOL), 0);

    sm_params sm;
    assert_int_equal(sm_params_load_json(&sm, tu_fixture("%s/sm_config.json", name)), 0);
    sm_feedback *fb = sm_malloc(sizeof *fb * (size_t)f.B * f.T);
    sm_feedback_canvas(&sm, f.ids_sm, f.B, f.T, m->cfg.mask_id, f.raw, f.V, m->cfg.shift, fb,
                       NULL);
    int nmix = 0;
    for (int i = 0; i < f.B * f.T; i++) nmix += fb[i].lambda > 0.01f;
    assert_true(nmix >= 3); /* the fixture exercises the mix */
    tf_state s;
    tf_state_init(&s, m);
    assert_int_equal(transformer_forward(&s, f.ids_sm, &sm, fb, NULL, f.B, f.T, out), 0);
    tf_state_free(&s);
    snprintf(what, sizeof what, "%s soft-masked pass (k = %d)", name, sm.k);
    assert_int_equal(tu_compare_f32(what, out, f.sm, f.n, atol, RTOL), 0);
    free(fb);
    free(out);
    fixture_free(&f);
    model_dir_free(&md);
}

static void test_dream(void **state) {
    (void)state;
    model_dir md;
    load(&md, "tiny-dream");
    const tf_config *c = &md.tf.cfg;
    assert_int_equal(md.arch, MODEL_DREAM);
    assert_int_equal(c->vocab_size, 300);
    assert_int_equal(c->n_kv_heads, 2);
    assert_int_equal(c->head_dim, 16);
    assert_int_equal(c->mask_id, 297);
    assert_int_equal(c->max_len, 64);
    assert_int_equal(c->shift, 1);
    assert_int_equal(md.sm.k, 1); /* Dream's default top-k */
    assert_int_equal(md.tf.layers[0].q.type, WT_F32);
    model_dir_free(&md);
    check_model("tiny-dream", ATOL);
}

static void test_dream_bf16(void **state) {
    (void)state;
    model_dir md;
    load(&md, "tiny-dream-bf16");
    assert_int_equal(md.tf.layers[1].down.type, WT_BF16); /* used in place, not widened */
    assert_int_equal(md.tf.lm_head.type, WT_BF16);
    model_dir_free(&md);
    /* reference: the same bf16 values, fp32 arithmetic */
    check_model("tiny-dream-bf16", ATOL);
}

static void test_llada(void **state) {
    (void)state;
    model_dir md;
    load(&md, "tiny-llada");
    assert_int_equal(md.arch, MODEL_LLADA);
    assert_int_equal(md.tf.cfg.vocab_size, 320); /* embedding_size */
    assert_int_equal(md.tf.cfg.shift, 0);
    assert_int_equal(md.tf.cfg.tie_embeddings, 1);
    model_dir_free(&md);
    check_model("tiny-llada", ATOL);
}

/* Only the needed rows are computed; they equal the full output's rows. Also the lm.h view
 * with B = 1 and T smaller than before (workspace reuse). */
static void test_need_rows_and_lm(void **state) {
    (void)state;
    model_dir md;
    load(&md, "tiny-dream");
    fixture f;
    fixture_load(&f, "tiny-dream", md.tf.cfg.vocab_size);
    uint8_t *need = sm_calloc((size_t)f.B * f.T, 1);
    for (int i = 0; i < f.B * f.T; i++) need[i] = f.ids[i] == md.tf.cfg.mask_id;
    float *out = sm_malloc(sizeof(float) * f.n);
    assert_int_equal(forward_plain(&md.tf, f.ids, need, f.B, f.T, out), 0);
    size_t V = f.V;
    int checked = 0;
    for (int i = 0; i < f.B * f.T; i++) {
        if (!need[i]) continue; /* unspecified */
        char what[64];
        snprintf(what, sizeof what, "needed row %d", i);
        assert_int_equal(tu_compare_f32(what, out + i * V, f.raw + i * V, V, ATOL, RTOL), 0);
        checked++;
    }
    assert_true(checked > 2 && checked < f.B * f.T);

    lm_model lm;
    tf_state s;
    tf_state_init(&s, &md.tf);
    transformer_as_lm(&s, &lm);
    assert_int_equal(lm.vocab_size, 300);
    assert_int_equal(lm.shift, 1);
    assert_int_equal(lm.mask_id, 297);
    assert_int_equal(lm.forward(lm.ctx, f.ids + f.T, NULL, NULL, NULL, NULL, 1, f.T, out), 0);
    assert_int_equal(tu_compare_f32("lm view, second row", out, f.raw + (size_t)f.T * V,
                                    (size_t)f.T * V, ATOL, RTOL), 0);
    /* feedback with λ = 0 everywhere is the plain input */
    sm_feedback *fb = sm_calloc((size_t)f.T, sizeof *fb);
    const sm_params k1 = {.enabled = 1, .k = 1};
    assert_int_equal(lm.forward(lm.ctx, f.ids, NULL, &k1, fb, NULL, 1, f.T, out), 0);
    assert_int_equal(tu_compare_f32("λ = 0 feedback", out, f.raw, (size_t)f.T * V, ATOL, RTOL), 0);
    free(fb);
    tf_state_free(&s);
    free(need);
    free(out);
    fixture_free(&f);
    model_dir_free(&md);
}

/* q8 projections against the reference with the same per-row int8 rounding. */
static void check_quant(const char *name) {
    model_dir md;
    load(&md, name);
    fixture f;
    fixture_load(&f, name, md.tf.cfg.vocab_size);
    assert_int_equal(transformer_quantize_q8(&md.tf), 0);
    assert_int_equal(md.tf.layers[0].gate.type, WT_Q8);
    assert_int_equal(md.tf.lm_head.type, WT_Q8);
    float *out = sm_malloc(sizeof(float) * f.n);
    assert_int_equal(forward_plain(&md.tf, f.ids, NULL, f.B, f.T, out), 0);
    size_t n;
    float *ref = tu_load_f32(tu_fixture("%s/logits_q8.npy", name), &n);
    assert_int_equal(n, f.n);
    assert_int_equal(tu_compare_f32("q8 logits", out, ref, f.n, ATOL, RTOL), 0);
    free(ref);
    free(out);
    fixture_free(&f);
    model_dir_free(&md);
}

static void test_quant(void **state) {
    (void)state;
    /* fp32 weights only: bf16 weights land on exact .5 ties of w·127/max|row| (a few per
     * matrix), where the last bit of the product decides the integer */
    check_quant("tiny-dream");
}

/* `smdlm quantize`'s directory (model_dir_quantize): loaded, its projections are q8 without
 * quantising, and the logits are bit for bit those of --quant q8 on the original (Dream
 * untied, LLaDA tied: its output projection is saved on its own). */
static void test_quantized_dir(void **state) {
    static const char *const names[] = {"tiny-dream", "tiny-llada", "tiny-dream-bf16"};
    char dir[256];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "quantized"), 0);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char out[512];
        snprintf(out, sizeof out, "%s/%s", dir, names[i]);
        assert_int_equal(model_dir_quantize(tu_fixture("%s", names[i]), "q8", out), 0);
        model_dir a, b;
        load(&a, names[i]);
        assert_int_equal(transformer_quantize_q8(&a.tf), 0);
        if (model_dir_load_any(&b, out, 0)) {
            print_error("%s\n", smdlm_last_error());
            fail();
        }
        assert_int_equal(b.tf.cfg.q8, 1);
        assert_int_equal(b.tf.layers[0].q.type, WT_Q8);
        assert_int_equal(b.tf.lm_head.type, WT_Q8);
        assert_true(b.tf.lm_head.data != b.tf.embed.data);
        fixture f;
        fixture_load(&f, names[i], a.tf.cfg.vocab_size);
        float *ya = sm_malloc(sizeof(float) * f.n), *yb = sm_malloc(sizeof(float) * f.n);
        assert_int_equal(forward_plain(&a.tf, f.ids, NULL, f.B, f.T, ya), 0);
        assert_int_equal(forward_plain(&b.tf, f.ids, NULL, f.B, f.T, yb), 0);
        for (size_t k = 0; k < f.n; k++)
            if (memcmp(&ya[k], &yb[k], sizeof(float))) {
                printf("%s: logit %zu: saved q8 %.9g, --quant q8 %.9g\n", names[i], k, yb[k], ya[k]);
                fail();
            }
        /* quantising again, or quantising an MDLM, is refused */
        char again[600];
        snprintf(again, sizeof again, "%s-again", out);
        tu_expect_error(model_dir_quantize(out, "q8", again), "quantised twice",
                        (const char *const[]){"quantised already", NULL});
        free(ya), free(yb);
        fixture_free(&f);
        model_dir_free(&a);
        model_dir_free(&b);
    }
    tu_expect_error(model_dir_quantize(tu_fixture("tiny"), "q8", dir), "MDLM",
                    (const char *const[]){"MDLM", NULL});
    tu_expect_error(model_dir_quantize(tu_fixture("tiny-dream"), "q4", dir), "q4",
                    (const char *const[]){"q4", NULL});
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

/* A saved q8 directory whose model.safetensors was altered: each loads with an error naming
 * the tensor (and the row where values are bad). */
static void test_quantized_dir_bad(void **state) {
    char dir[256], good[512];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "quantbad"), 0);
    snprintf(good, sizeof good, "%s/good", dir);
    assert_int_equal(model_dir_quantize(tu_fixture("tiny-dream"), "q8", good), 0);
    static const struct {
        const char *tensor, *edit, *words[4];
    } cases[] = {
        {"model.layers.0.self_attn.q_proj.weight_scale", "short",
         {"q_proj.weight_scale", "wrong shape", NULL}},
        {"model.layers.1.mlp.up_proj.weight_scale", "drop", {"missing tensor", "up_proj.weight_scale", NULL}},
        {"model.layers.0.mlp.down_proj.weight", "f32", {"down_proj.weight", "expected I8", NULL}},
        {"lm_head.weight", "min", {"lm_head.weight", "row 0", "-128"}},
        {"model.layers.1.self_attn.o_proj.weight_scale", "nan", {"o_proj.weight", "row 0", "scale"}},
        {"config.json", "q4", {"smdlm_quantization", "q8", NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char bad[600], path[700], cmd[1600];
        snprintf(bad, sizeof bad, "%s/bad%zu", dir, c);
        snprintf(cmd, sizeof cmd, "cp -r %s %s", good, bad);
        assert_int_equal(system(cmd), 0);
        if (!strcmp(cases[c].edit, "q4")) {
            snprintf(cmd, sizeof cmd, "sed -i 's/\"smdlm_quantization\":\t\"q8\"/\"smdlm_quantization\": \"q4\"/' %s/config.json", bad);
            assert_int_equal(system(cmd), 0);
        } else {
            st_archive ar;
            snprintf(path, sizeof path, "%s/model.safetensors", good);
            assert_int_equal(st_open_file(&ar, path), 0);
            st_write_entry *e = sm_calloc((size_t)ar.ntensors, sizeof *e);
            void *owned = NULL;
            int n = 0;
            for (int i = 0; i < ar.ntensors; i++) {
                const st_tensor *t = &ar.tensors[i];
                st_write_entry w = {.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
                memcpy(w.shape, t->shape, sizeof w.shape);
                if (!strcmp(t->name, cases[c].tensor)) {
                    const char *ed = cases[c].edit;
                    if (!strcmp(ed, "drop")) continue;
                    if (!strcmp(ed, "short")) w.shape[0]--;
                    unsigned char *d = owned = sm_malloc(t->nbytes * 4);
                    memcpy(d, t->data, t->nbytes);
                    if (!strcmp(ed, "f32")) {
                        for (size_t k = 0; k < t->numel; k++) ((float *)(void *)d)[k] = ((const int8_t *)t->data)[k];
                        w.dtype = ST_F32;
                    }
                    if (!strcmp(ed, "min")) d[3] = 0x80;
                    if (!strcmp(ed, "nan")) ((float *)(void *)d)[0] = NAN;
                    w.data = d;
                }
                e[n++] = w;
            }
            snprintf(path, sizeof path, "%s/model.safetensors", bad);
            assert_int_equal(st_write(path, e, n, NULL), 0);
            free(owned), free(e);
            st_close(&ar);
        }
        model_dir md;
        tu_expect_error(model_dir_load_any(&md, bad, 0), cases[c].edit, cases[c].words);
    }
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

static void test_bad_models(void **state) {
    (void)state;
    static const struct {
        const char *dir;
        const char *words[4];
    } cases[] = {
        {"dream-shard-missing", {"model-00002-of-00002.safetensors", NULL}},
        {"dream-shard-listed-twice", {"model.norm.weight", "twice", NULL}},
        {"dream-wrong-shape", {"gate_proj.weight", "shape", NULL}},
        {"dream-missing-tensor", {"model.layers.1.self_attn.k_proj.bias", NULL}},
        {"dream-unknown-type", {"model_type", "qwen2", NULL}},
        {"dream-bad-heads", {"key/value heads", NULL}},
        {"dream-mask-ge-vocab", {"mask", "300", NULL}},
        {"dream-rope-scaling", {"rope_scaling", NULL}},
        {"llada-bad-block", {"block_type", "llama", NULL}},
        {"llada-negative-layers", {"n_layers", "range", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/bad/%s", cases[i].dir);
        model_dir md;
        tu_expect_error(model_dir_load_any(&md, dir, 0), dir, cases[i].words);
    }
    /* MDLM-only commands name the architecture */
    model_dir md;
    static const char *const mdlm_only[] = {"Dream", "MDLM models only", NULL};
    tu_expect_error(model_dir_load(&md, FIXTURES_DIR "/tiny-dream", 0), "MDLM-only load",
                    mdlm_only);
    /* runtime: ids outside the vocabulary, canvas longer than the context */
    load(&md, "tiny-dream");
    int32_t ids[65] = {0};
    float *out = sm_malloc(sizeof(float) * 65 * 300);
    ids[3] = 300;
    static const char *const vocab_words[] = {"300", "vocabulary", NULL};
    tu_expect_error(forward_plain(&md.tf, ids, NULL, 1, 4, out), "id ≥ V",
                    vocab_words);
    ids[3] = 0;
    static const char *const long_words[] = {"65", "context", "64", NULL};
    tu_expect_error(forward_plain(&md.tf, ids, NULL, 1, 65, out), "T > context",
                    long_words);
    free(out);
    model_dir_free(&md);

    tf_config c;
    static const struct {
        const char *json, *word;
    } cfgs[] = {
        {"{\"model_type\":\"Dream\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":3,\"mask_token_id\":9}", "divide"},
        {"{\"model_type\":\"Dream\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"mask_token_id\":9,"
         "\"hidden_act\":\"gelu\"}", "hidden_act"},
        {"{\"model_type\":\"Dream\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":2}", "mask_token_id"},
        {"{\"model_type\":\"Dream\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"mask_token_id\":9,"
         "\"rms_norm_eps\":-1}", "rms_norm_eps"},
        {"{\"model_type\":\"llada\",\"d_model\":8,\"n_heads\":2,\"n_layers\":1,\"vocab_size\":10,"
         "\"embedding_size\":8}", "embedding_size"},
        {"{\"model_type\":\"llada\",\"d_model\":8,\"n_heads\":2,\"n_layers\":1,\"vocab_size\":10,"
         "\"include_bias\":true}", "include_bias"},
        {"{\"model_type\":\"llada\",\"d_model\":6,\"n_heads\":2,\"n_layers\":1,\"vocab_size\":10}",
         "odd"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        const char *words[] = {cfgs[i].word, NULL};
        tu_expect_error(tf_config_parse(&c, cfgs[i].json, "config.json"), "config", words);
    }
}

static void test_cli(void **state) {
    (void)state;
    char path[64], path2[64], *out = NULL;
    snprintf(path, sizeof path, "/tmp/smdlm_tf_%d.npy", (int)getpid());
    snprintf(path2, sizeof path2, "/tmp/smdlm_tf_sm_%d.npy", (int)getpid());
    const char *names[] = {"tiny-dream", "tiny-llada"};
    for (int k = 0; k < 2; k++) {
        const char *d = tu_fixture("%s", names[k]);
        char dir[256];
        snprintf(dir, sizeof dir, "%s", d);
        int rc = tu_run(&out, "forward -m %s --ids %s/ids.npy -o %s -t 2", dir, dir, path);
        if (rc) print_error("%s\n", out);
        assert_int_equal(rc, 0);
        free(out);
        size_t n, nref;
        float *got = tu_load_f32(path, &n), *ref = tu_load_f32(tu_fixture("%s/logits.npy", names[k]), &nref);
        assert_int_equal(n, nref);
        assert_int_equal(tu_compare_f32("CLI raw logits", got, ref, n, ATOL, RTOL), 0);
        free(got);
        free(ref);
        /* --feedback: the raw output of the first pass; Dream shifts it internally */
        rc = tu_run(&out, "forward -m %s --ids %s/ids_sm.npy --feedback %s/logits.npy "
                          "--sm-config %s/sm_config.json -o %s -t 2",
                    dir, dir, dir, dir, path2);
        if (rc) print_error("%s\n", out);
        assert_int_equal(rc, 0);
        free(out);
        got = tu_load_f32(path2, &n);
        ref = tu_load_f32(tu_fixture("%s/logits_sm.npy", names[k]), &nref);
        assert_int_equal(tu_compare_f32("CLI soft-masked pass", got, ref, n, ATOL, RTOL), 0);
        free(got);
        free(ref);
    }
    unlink(path);
    unlink(path2);

    static const char args[][256] = {
        "forward -m tests/bad/dream-shard-missing --ids tests/fixtures/tiny-dream/ids.npy -o /tmp/x.npy",
        "forward -m tests/bad/dream-wrong-shape --ids tests/fixtures/tiny-dream/ids.npy -o /tmp/x.npy",
        "forward -m tests/bad/dream-unknown-type --ids tests/fixtures/tiny-dream/ids.npy -o /tmp/x.npy",
        "forward -m tests/fixtures/tiny-dream --ids tests/bad/dream_ids_ge_vocab.npy -o /tmp/x.npy",
        "forward -m tests/fixtures/tiny-dream --ids tests/bad/dream_ids_too_long.npy -o /tmp/x.npy",
        "forward -m tests/fixtures/tiny-dream --ids tests/fixtures/tiny-dream/ids.npy --feedback "
        "tests/fixtures/tiny-llada/logits.npy --sm-scale 0.5 -o /tmp/x.npy",
        "forward -m tests/fixtures/tiny-dream --ids tests/fixtures/tiny-dream/ids.npy --quant q4 -o /tmp/x.npy",
        "generate -m tests/fixtures/tiny-dream-bf16 --len 8 --steps 2",
        "quantize -m tests/fixtures/tiny-dream",
        "quantize -m tests/fixtures/tiny -o /tmp/x",
        "quantize -m tests/fixtures/tiny-dream -o /tmp/x --quant q4",
        "quantize -m tests/bad/dream-wrong-shape -o /tmp/x",
        "bench q8 -m tests/fixtures/tiny",
    };
    static const char *const word[] = {"model-00002-of-00002", "shape", "qwen2", "300",
                                       "context", "shape", "q4", "MDLM", "-o", "MDLM", "q4",
                                       "shape", "MDLM"};
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, (int)(sizeof word / sizeof *word));
}

static transformer_model *load_with_fixture(model_dir *md, fixture *f, const char *name) {
    load(md, name);
    fixture_load(f, name, md->tf.cfg.vocab_size);
    return &md->tf;
}

/* λ of the canvas ids_sm from the first pass's rows, as the fixtures store it (0 off the mask). */
static float *canvas_lambda(const transformer_model *m, const fixture *f, const sm_params *sm,
                            sm_feedback *fb, float *probs) {
    sm_feedback_canvas(sm, f->ids_sm, f->B, f->T, m->cfg.mask_id, f->raw, f->V, m->cfg.shift, fb,
                       probs);
    float *lam = sm_malloc(sizeof(float) * (size_t)f->B * f->T);
    for (int i = 0; i < f->B * f->T; i++)
        lam[i] = f->ids_sm[i] == m->cfg.mask_id ? fb[i].lambda : 0.0f;
    return lam;
}

/* mixinputs_with_temp (tests/gen_softmask_fixtures.py): λ from the tempered entropy and the
 * second pass on the tempered mix over the whole vocabulary. */
static void check_temp(const char *name) {
    model_dir md;
    fixture f;
    transformer_model *m = load_with_fixture(&md, &f, name);
    sm_params sm;
    sm_params_default(&sm);
    assert_int_equal(sm_params_load_json(&sm, tu_fixture("%s/sm_config_temp.json", name)), 0);
    assert_int_equal(sm.alg, SM_ALG_TEMP);
    const size_t BT = (size_t)f.B * f.T;
    sm_feedback *fb = sm_malloc(sizeof *fb * BT);
    float *probs = sm_feedback_probs_alloc(&sm, BT, f.V);
    float *lam = canvas_lambda(m, &f, &sm, fb, probs);
    size_t n;
    float *ref_lam = tu_load_f32(tu_fixture("%s/lambda_temp.npy", name), &n);
    assert_int_equal(n, BT);
    char what[128];
    snprintf(what, sizeof what, "%s λ (mixinputs_with_temp)", name);
    assert_int_equal(tu_compare_f32(what, lam, ref_lam, BT, 1e-5f, 1e-5f), 0);
    float *out = sm_malloc(sizeof(float) * f.n), *ref = tu_load_f32(
        tu_fixture("%s/logits_sm_temp.npy", name), &n);
    tf_state s;
    tf_state_init(&s, m);
    assert_int_equal(transformer_forward(&s, f.ids_sm, &sm, fb, NULL, f.B, f.T, out), 0);
    tf_state_free(&s);
    snprintf(what, sizeof what, "%s soft-masked pass (mixinputs_with_temp)", name);
    assert_int_equal(tu_compare_f32(what, out, ref, f.n, ATOL, RTOL), 0);
    free(out), free(ref), free(lam), free(ref_lam), free(probs), free(fb);
    fixture_free(&f);
    model_dir_free(&md);
}

/* λ under the none, linear and stepwise schedules for decoding that started from several mask
 * counts (the patch's max_gen_length; t on both sides of the stepwise threshold). */
static void check_schedules(const char *name) {
    model_dir md;
    fixture f;
    transformer_model *m = load_with_fixture(&md, &f, name);
    const size_t BT = (size_t)f.B * f.T;
    size_t n, nmax;
    float *ref = tu_load_f32(tu_fixture("%s/lambda_schedules.npy", name), &n);
    int64_t shape[2];
    int ndim;
    int32_t *maxgen = tu_load_i32(tu_fixture("%s/lambda_schedules_maxgen.npy", name), &nmax,
                                  shape, &ndim);
    assert_int_equal(n, 3 * nmax * BT);
    int masked = 0;
    for (size_t i = 0; i < BT; i++) masked += f.ids_sm[i] == m->cfg.mask_id;
    sm_feedback *fb = sm_malloc(sizeof *fb * BT);
    static const sm_schedule schedules[] = {SM_SCHEDULE_NONE, SM_SCHEDULE_LINEAR,
                                            SM_SCHEDULE_STEPWISE};
    for (int k = 0; k < 3; k++)
        for (size_t j = 0; j < nmax; j++) {
            sm_params p = {.enabled = 1, .scale = 0.7f, .centre = -4.5f, .steepness = 4.0f,
                           .k = 2, .schedule = schedules[k]};
            const sm_params q = sm_params_at(&p, masked, maxgen[j]);
            float *lam = canvas_lambda(m, &f, &q, fb, NULL);
            char what[128];
            snprintf(what, sizeof what, "%s λ, schedule %d, %d of %d masked", name, k, masked,
                     maxgen[j]);
            assert_int_equal(
                tu_compare_f32(what, lam, ref + (k * nmax + j) * BT, BT, 1e-6f, 1e-5f), 0);
            free(lam);
        }
    free(fb), free(ref), free(maxgen);
    fixture_free(&f);
    model_dir_free(&md);
}

static void test_sm_variants(void **state) {
    (void)state;
    check_temp("tiny-dream");
    check_temp("tiny-llada");
    check_schedules("tiny-dream");
    check_schedules("tiny-llada");
}

/* transparency_config.json: "none" loads with soft-masking off; unknown names and a
 * temperature ≤ 0 are errors naming the file and the key. */
static void test_sm_config_values(void **state) {
    (void)state;
    char dir[256], path[512];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "smcfg"), 0);
    snprintf(path, sizeof path, "%s/transparency_config.json", dir);
    static const char *const texts[] = {
        "{\"transparency_alg\": \"mixinputs\", \"transparency_scale\": 0.5, "
        "\"transparency_centre\": -1, \"transparency_steepness\": 2}",
        "{\"transparency_alg\": \"mixinputs_with_topk\", \"transparency_scale\": 0.5, "
        "\"transparency_centre\": -1, \"transparency_steepness\": 2, "
        "\"transparency_scheduling\": \"cosine\"}",
        "{\"transparency_alg\": \"mixinputs_with_temp\", \"transparency_scale\": 0.5, "
        "\"transparency_centre\": -1, \"transparency_steepness\": 2, \"mixture_temp\": 0}",
        "{\"transparency_alg\": 3}",
    };
    static const char *const words[][3] = {{"transparency_alg", "mixinputs", NULL},
                                           {"transparency_scheduling", "cosine", NULL},
                                           {"mixture_temp", NULL, NULL},
                                           {"transparency_alg", "string", NULL}};
    for (int i = 0; i < 4; i++) {
        FILE *fp = fopen(path, "w");
        fputs(texts[i], fp);
        fclose(fp);
        sm_params p;
        sm_params_default(&p);
        tu_expect_file_error(sm_params_load_json(&p, path), path, words[i]);
    }
    FILE *fp = fopen(path, "w");
    fputs("{\"transparency_alg\": \"none\"}", fp);
    fclose(fp);
    sm_params p;
    sm_params_default(&p);
    assert_int_equal(sm_params_load_json(&p, path), 0);
    assert_int_equal(p.enabled, 0);
    /* a model directory with it loads, soft-masking off */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/model.safetensors %s",
             tu_fixture("tiny-llada"), tu_fixture("tiny-llada"), dir);
    assert_int_equal(system(cmd), 0);
    model_dir md;
    assert_int_equal(model_dir_load_any(&md, dir, 0), 0);
    assert_int_equal(md.sm.enabled, 0);
    model_dir_free(&md);
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

int main(void) {
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dream),          cmocka_unit_test(test_dream_bf16),
        cmocka_unit_test(test_llada),          cmocka_unit_test(test_need_rows_and_lm),
        cmocka_unit_test(test_quant),          cmocka_unit_test(test_bad_models),
        cmocka_unit_test(test_cli),            cmocka_unit_test(test_sm_variants),
        cmocka_unit_test(test_sm_config_values), cmocka_unit_test(test_quantized_dir),
        cmocka_unit_test(test_quantized_dir_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
