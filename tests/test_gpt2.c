/* test_gpt2.c — the GPT-2 evaluator against PyTorch fixtures (tests/gen_gpt2_fixtures.py,
 * tools/ref_gpt2.py): logits, LayerNorm/Conv1D kernels against plain loops, genppl scores
 * (chunking, EOS handling, entropy), the `eval genppl` command and its bad input. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/evaluator.h"
#include "models/gpt2.h"
#include "compute/kernels.h"
#include "testutil.h"
#include "text/tokenizer.h"
#include "base/util.h"

#define GDIR FIXTURES_DIR "/gpt2-tiny"
static char g_tmp[64];

static void load(gpt2_model *m, const char *dir) {
    if (gpt2_load(m, dir)) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
}

#define CDIR FIXTURES_DIR "/tiny-causal"

static cJSON *load_ref_of(const char *dir) {
    char *text, path[512];
    size_t len;
    snprintf(path, sizeof path, "%s/ref/genppl.json", dir);
    assert_int_equal(sm_read_file(path, 1 << 20, &text, &len), 0);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static cJSON *load_ref(void) { return load_ref_of(GDIR); }

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) fail_msg("missing number %s", k);
    return v->valuedouble;
}

static int rel_close(const char *what, double got, double ref, double rtol) {
    if (fabs(got - ref) <= rtol * fabs(ref) + 1e-12) return 1;
    print_error("%s: got %.12g, reference %.12g\n", what, got, ref);
    return 0;
}

/* plain references of the two kernels gpt2.c adds */
static void layernorm_ref(float *out, const float *x, const float *w, const float *b, int N, int D,
                          float eps) {
    for (int r = 0; r < N; r++) {
        double mu = 0, var = 0;
        for (int i = 0; i < D; i++) mu += x[r * D + i];
        mu /= D;
        for (int i = 0; i < D; i++) var += (x[r * D + i] - mu) * (x[r * D + i] - mu);
        var /= D;
        for (int i = 0; i < D; i++)
            out[r * D + i] = (float)((x[r * D + i] - mu) / sqrt(var + eps) * w[i] + b[i]);
    }
}

static void test_kernels(void **state) {
    enum { N = 5, D = 48, OC = 20 };
    float x[N * D], w[D], b[D], o1[N * D], o2[N * D], cw[D * OC], cb[OC], c1[N * OC], c2[N * OC];
    srand(7);
    for (int i = 0; i < N * D; i++) x[i] = (float)rand() / RAND_MAX * 4 - 2 + (i % 7);
    for (int i = 0; i < D; i++) w[i] = (float)rand() / RAND_MAX + 0.5f, b[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < D * OC; i++) cw[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < OC; i++) cb[i] = (float)rand() / RAND_MAX - 0.5f;
    layernorm_forward(o1, x, w, b, N, D, 1e-5f);
    layernorm_ref(o2, x, w, b, N, D, 1e-5f);
    assert_int_equal(tu_compare_f32("layernorm", o1, o2, N * D, 1e-5f, 1e-5f), 0);
    matmul_forward_in_out(c1, x, cw, cb, N, D, OC);
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            double s = cb[o];
            for (int i = 0; i < D; i++) s += (double)x[r * D + i] * cw[i * OC + o]; /* [in, out] */
            c2[r * OC + o] = (float)s;
        }
    assert_int_equal(tu_compare_f32("conv1d", c1, c2, N * OC, 1e-4f, 1e-5f), 0);
}

static void check_logits(const char *dir) {
    gpt2_model m;
    load(&m, dir);
    size_t n, nl;
    int64_t shape[4];
    int nd;
    int32_t *ids = tu_load_i32(GDIR "/ref/ids.npy", &n, shape, &nd);
    float *ref = tu_load_f32(GDIR "/ref/logits.npy", &nl);
    int B = (int)shape[0], T = (int)shape[1], V = m.cfg.vocab_size;
    assert_int_equal(nl, (size_t)B * T * V);
    float *got = sm_malloc(sizeof(float) * nl);
    assert_int_equal(gpt2_forward(&m, ids, B, T, got), 0);
    assert_int_equal(tu_compare_f32(dir, got, ref, nl, 1e-4f, 1e-4f), 0);
    /* causal: the first 10 positions alone give the same logits */
    assert_int_equal(gpt2_forward(&m, ids, 1, 10, got), 0);
    assert_int_equal(tu_compare_f32("prefix", got, ref, (size_t)10 * V, 1e-4f, 1e-4f), 0);
    free(got);
    free(ref);
    free(ids);
    gpt2_free(&m);
}

static void test_logits(void **state) {
    check_logits(GDIR);         /* transformer. prefix + attn.bias buffers */
    check_logits(GDIR "/bare"); /* bare names */
}

/* MDLM's genppl scoring through the evaluator, for GPT-2 and for the causal DiT (both
 * against tools/ref_gpt2.py's score on the same samples). */
static void check_scores(const char *dir, evaluator_kind kind) {
    evaluator ev;
    assert_int_equal(evaluator_load(&ev, dir, 2), 0);
    assert_int_equal(ev.kind, kind);
    smdlm_tokenizer *tok = ev.tok;
    int eos = tok_str_to_id(tok, "<|endoftext|>");
    assert_int_equal(eos, ev.eos_id);
    cJSON *ref = load_ref_of(dir);
    const cJSON *s;
    int k = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(ref, "samples")) {
        const char *text = cJSON_GetObjectItemCaseSensitive(s, "text")->valuestring;
        int32_t *ids;
        size_t n;
        assert_int_equal(tok_encode(tok, text, strlen(text), &ids, &n), 0);
        const cJSON *rids = cJSON_GetObjectItemCaseSensitive(s, "ids");
        assert_int_equal((int)n, cJSON_GetArraySize(rids));
        for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], cJSON_GetArrayItem(rids, (int)i)->valueint);
        static const int ctxs[] = {32, 16};
        for (int c = 0; c < 2; c++) {
            char key[32], what[64];
            double nll = 0;
            long cnt = 0;
            assert_int_equal(evaluator_score(&ev, ids, n, ctxs[c] == 32 ? 0 : ctxs[c], eos, &nll, &cnt), 0);
            snprintf(key, sizeof key, "count_ctx%d", ctxs[c]);
            assert_int_equal(cnt, (long)num(s, key));
            snprintf(key, sizeof key, "nll_ctx%d", ctxs[c]);
            snprintf(what, sizeof what, "sample %d nll at ctx %d", k, ctxs[c]);
            assert_true(rel_close(what, nll, num(s, key), 1e-5));
        }
        assert_true(rel_close("entropy", unigram_entropy(ids, n), num(s, "entropy"), 1e-9));
        free(ids);
        k++;
    }
    assert_int_equal(k, 5);
    cJSON_Delete(ref);
    evaluator_free(&ev);
}

/* The causal DiT evaluator's logits against tools/ref_dit.py (causal mask, σ = 0). */
static void check_causal_dit_logits(void) {
    evaluator ev;
    assert_int_equal(evaluator_load(&ev, CDIR, 2), 0);
    size_t n, nl;
    int64_t shape[4];
    int nd;
    int32_t *ids = tu_load_i32(CDIR "/ref/ids.npy", &n, shape, &nd);
    float *ref = tu_load_f32(CDIR "/ref/logits.npy", &nl);
    const int T = (int)shape[1], V = ev.vocab_size;
    assert_int_equal(nl, n * (size_t)V);
    float *got = malloc(sizeof(float) * nl);
    for (int b = 0; b < (int)shape[0]; b++)
        assert_int_equal(evaluator_logits(&ev, ids + (size_t)b * T, T, got + (size_t)b * T * V), 0);
    assert_int_equal(tu_compare_f32("causal DiT logits", got, ref, nl, 1e-4f, 1e-4f), 0);
    assert_int_not_equal(evaluator_logits(&ev, ids, T + 1, got), 0); /* longer than the context */
    free(got);
    free(ref);
    free(ids);
    evaluator_free(&ev);
}

static void test_scores(void **state) {
    check_scores(GDIR, EVALUATOR_GPT2);
    check_scores(CDIR, EVALUATOR_DIT);
    check_causal_dit_logits();
}

/* value of "key": in the last line of out that contains it */
static double last_field(const char *out, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = NULL, *q = out;
    while ((q = strstr(q, pat))) p = q++;
    if (!p) fail_msg("no %s in output: %s", key, out);
    return strtod(p + strlen(pat), NULL);
}

static void test_cli(void **state) {
    cJSON *ref = load_ref();
    char *out;
    int rc = tu_run(&out, "eval genppl -m " GDIR " --samples " GDIR "/ref/samples.jsonl --json -t 2");
    if (rc) print_error("%s\n", out);
    assert_int_equal(rc, 0);
    assert_true(rel_close("gen_ppl", last_field(out, "gen_ppl"), num(ref, "gen_ppl"), 1e-5));
    assert_true(rel_close("entropy", last_field(out, "entropy"), num(ref, "entropy"), 1e-6));
    assert_int_equal((long)last_field(out, "scored"), (long)num(ref, "tokens"));
    /* one JSON line per sample plus the overall line */
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 6);
    free(out);
    /* plain output and a custom field name */
    char path[128];
    snprintf(path, sizeof path, "%s/s.jsonl", g_tmp);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"sample\": \"the cat sat on the mat.\"}\n\n");
    fclose(f);
    rc = tu_run(&out, "eval genppl -m " GDIR " --samples %s --text-field sample", path);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "generative perplexity"));
    free(out);
    cJSON_Delete(ref);
}

static void test_bad_input(void **state) {
    static const char *files[][2] = {
        {"badjson.jsonl", "{\"text\": \"the cat\"}\n{\"text\": \"oops\"\n"},
        {"nofield.jsonl", "{\"text\": \"the cat\"}\n{\"txt\": \"x\"}\n"},
        {"empty.jsonl", "{\"text\": \"\"}\n"},
        {"none.jsonl", "\n\n"},
        {"number.jsonl", "{\"text\": 5}\n"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", g_tmp, files[i][0]);
        FILE *f = fopen(path, "w");
        fputs(files[i][1], f);
        fclose(f);
    }
    char args[9][256];
    const char *word[9];
    int n = 0;
#define CASE(w, ...) (snprintf(args[n], sizeof args[n], __VA_ARGS__), word[n++] = (w))
    CASE("badjson.jsonl:2", "eval genppl -m " GDIR " --samples %s/badjson.jsonl", g_tmp);
    CASE("nofield.jsonl:2", "eval genppl -m " GDIR " --samples %s/nofield.jsonl", g_tmp);
    CASE("empty sample", "eval genppl -m " GDIR " --samples %s/empty.jsonl", g_tmp);
    CASE("no samples", "eval genppl -m " GDIR " --samples %s/none.jsonl", g_tmp);
    CASE("missing string field", "eval genppl -m " GDIR " --samples %s/number.jsonl", g_tmp);
    CASE("cannot open", "eval genppl -m " GDIR " --samples %s/absent.jsonl", g_tmp);
    CASE("must be causal", "eval genppl -m " FIXTURES_DIR "/tiny --samples %s/empty.jsonl", g_tmp);
    CASE("required", "eval genppl -m " GDIR);
    CASE("config.json", "eval genppl -m %s --samples %s/empty.jsonl", g_tmp, g_tmp);
#undef CASE
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, n);
}

static void test_config(void **state) {
    gpt2_config c;
    static const char *bad[][2] = {
        {"{\"model_type\":\"mdlm\",\"vocab_size\":10,\"n_embd\":8,\"n_head\":2,\"n_layer\":1}", "not a GPT-2"},
        {"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_head\":3,\"n_layer\":1}", "divide"},
        {"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_head\":2,\"n_layer\":0}", "n_layer"},
        {"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_head\":2}", "n_layer"},
        {"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_head\":2,\"n_layer\":1,\"layer_norm_epsilon\":-1}", "layer_norm_epsilon"},
        {"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_head\":2,\"n_layer\":1,\"activation_function\":\"relu\"}", "activation_function"},
        {"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_head\":2,\"n_layer\":1,\"n_inner\":7}", "n_inner"},
        {"{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,\"n_head\":2,\"n_layer\":1,\"eos_token_id\":10}", "eos_token_id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *words[] = {bad[i][1], NULL};
        tu_expect_error(gpt2_config_parse(&c, bad[i][0], "cfg"), "config", words);
    }
    assert_int_equal(gpt2_config_parse(&c, "{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_embd\":8,"
                                           "\"n_head\":2,\"n_layer\":1,\"n_inner\":null}", "cfg"), 0);
    assert_int_equal(c.n_positions, 1024);
    assert_true(c.eps == 1e-5f);
    assert_int_equal(c.eos_id, -1);
    /* out-of-range ids are an error, not a read past the table */
    gpt2_model m;
    load(&m, GDIR);
    int32_t ids[2] = {3, 282};
    float logits[2 * 282];
    const char *w[] = {"out of range", NULL};
    tu_expect_error(gpt2_forward(&m, ids, 1, 2, logits), "bad id", w);
    gpt2_free(&m);
}

static int setup(void **state) { return tu_tmpdir_make(g_tmp, sizeof g_tmp, "gpt2"); }

static int teardown(void **state) { return tu_tmpdir_remove(g_tmp); }

int main(void) {
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels), cmocka_unit_test(test_logits),
        cmocka_unit_test(test_scores),  cmocka_unit_test(test_cli),
        cmocka_unit_test(test_bad_input), cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests_name("gpt2", tests, setup, teardown);
}
