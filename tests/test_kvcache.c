/* test_kvcache.c — the approximate key/value caches (src/models/kvcache.h): the windowed forward against
 * the full forward (exact on the canvas the cache was filled from, soft-masked inputs included;
 * on a changed canvas it is the full forward of the old one), the decoders with a refresh at
 * every forward against the uncached decoders token for token, the windows the decoders ask for,
 * and bad flag combinations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "generate/decoder.h"
#include "compute/kernels.h"
#include "models/lm_dit.h"
#include "models/model.h"
#include "base/rng.h"
#include "testutil.h"
#include "models/transformer.h"
#include "base/util.h"


static void load(model_dir *md, const char *name) {
    if (model_dir_load_any(md, tu_fixture("%s", name), 0)) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
    assert_true(md->arch == MODEL_DREAM || md->arch == MODEL_LLADA);
}

/* A canvas [B, T] with every third position masked, and feedback (λ > 0) at the masked ones. */
static void make_canvas(const tf_config *c, int B, int T, int32_t *x, sm_feedback *fb, uint64_t seed) {
    sm_rng g;
    rng_seed(&g, seed);
    memset(fb, 0, sizeof *fb * (size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        int32_t id = (int32_t)(rng_uniform(&g) * (c->vocab_size - 1));
        x[i] = id == c->mask_id ? id + 1 : id;
        if (i % 3 == 2) {
            x[i] = c->mask_id;
            fb[i].lambda = 0.3f + 0.4f * (float)rng_uniform(&g);
            fb[i].neg_h = -1.0f;
            for (int j = 0; j < SM_MAX_K; j++) {
                fb[i].idx[j] = (int32_t)(rng_uniform(&g) * (c->vocab_size - 1));
                fb[i].pi[j] = j < 2 ? 0.5f : 0.0f;
            }
        }
    }
}

/* Rows [lo, hi) of every canvas must match ref within tol (the others are unspecified). */
static void check_window(const char *what, const float *got, const float *ref, int B, int T,
                         int V, int lo, int hi, float tol) {
    const size_t row = (size_t)(hi - lo) * V;
    float *g = sm_malloc(sizeof(float) * row * B), *r = sm_malloc(sizeof(float) * row * B);
    for (int b = 0; b < B; b++) {
        memcpy(g + b * row, got + ((size_t)b * T + lo) * V, sizeof(float) * row);
        memcpy(r + b * row, ref + ((size_t)b * T + lo) * V, sizeof(float) * row);
    }
    char name[128];
    snprintf(name, sizeof name, "%s [%d, %d)", what, lo, hi);
    assert_int_equal(tu_compare_f32(name, g, r, row * B, tol, tol), 0);
    free(g);
    free(r);
}

static void window_vs_full(const char *name) {
    model_dir md;
    load(&md, name);
    transformer_model *m = &md.tf;
    const int B = 2, T = 20, V = m->cfg.vocab_size;
    const sm_params smk = {.enabled = 1, .k = 2};
    tf_state s;
    tf_state_init(&s, m);
    const size_t n = (size_t)B * T * V;
    int32_t x[40], x1[20];
    sm_feedback fb[40];
    float *full = sm_malloc(n * sizeof(float)), *got = sm_malloc(n * sizeof(float));
    float *full2 = sm_malloc(n * sizeof(float));
    make_canvas(&m->cfg, B, T, x, fb, 7);
    assert_int_equal(transformer_forward(&s, x, &smk, fb, NULL, B, T, full), 0);
    /* a refresh is the full forward, to the bit */
    assert_int_equal(transformer_forward_cached(&s, x, &smk, fb, NULL, B, T, 0, T, NULL, got), 0);
    assert_int_equal(tu_compare_f32("refresh", got, full, n, 0.0f, 0.0f), 0);
    /* windows over the canvas the cache holds: the full forward's rows (soft-masked inputs
     * inside the window included) */
    static const int win[][2] = {{5, 20}, {5, 12}, {0, 7}, {19, 20}};
    for (size_t w = 0; w < sizeof win / sizeof *win; w++) {
        assert_int_equal(transformer_forward_cached(&s, x, &smk, fb, NULL, B, T, win[w][0], win[w][1],
                                                    NULL, got), 0);
        check_window("window", got, full, B, T, V, win[w][0], win[w][1], 1e-4f);
    }
    /* a batch of canvas row 1 alone, reading cache row 1; need picks rows */
    uint8_t need[20] = {0};
    need[6] = need[9] = 1;
    memcpy(x1, x + T, sizeof x1);
    const int map = 1;
    assert_int_equal(transformer_forward_cached(&s, x1, &smk, fb + T, need, 1, T, 4, 11, &map, got), 0);
    for (int t = 0; t < T; t++) {
        const float *g = got + (size_t)t * V;
        if (need[t])
            assert_int_equal(tu_compare_f32("mapped row", g, full + ((size_t)T + t) * V, (size_t)V,
                                            1e-4f, 1e-4f), 0);
    }
    /* the approximation: change a cached position; the window computes the rows of the old
     * canvas (its keys/values are the old ones), not those of the new canvas */
    assert_int_equal(transformer_forward_cached(&s, x, &smk, fb, NULL, B, T, 0, T, NULL, got), 0);
    int32_t xn[40];
    memcpy(xn, x, sizeof xn);
    xn[1] = x[1] == 3 ? 4 : 3;
    xn[T + 2] = x[T + 2] == 3 ? 4 : 3;
    assert_int_equal(transformer_forward(&s, xn, &smk, fb, NULL, B, T, full2), 0);
    assert_int_equal(transformer_forward_cached(&s, xn, &smk, fb, NULL, B, T, 5, T, NULL, got), 0);
    check_window("stale cache = old canvas", got, full, B, T, V, 5, T, 1e-4f);
    float worst = 0.0f;
    for (int b = 0; b < B; b++)
        for (size_t i = ((size_t)b * T + 5) * V; i < ((size_t)b + 1) * T * V; i++)
            worst = fmaxf(worst, fabsf(got[i] - full2[i]));
    print_message("%s: stale cache vs the new canvas: max |Δlogit| = %g\n", name, worst);
    assert_true(worst > 1e-3f);
    /* bad calls */
    const char *const w1[] = {"window", NULL}, *const w2[] = {"cache row", NULL},
                      *const w3[] = {"no row map", NULL}, *const w4[] = {"refresh first", NULL};
    tu_expect_error(transformer_forward_cached(&s, x, &smk, NULL, NULL, B, T, 5, 5, NULL, got), "empty", w1);
    tu_expect_error(transformer_forward_cached(&s, x, &smk, NULL, NULL, B, T, 3, T + 1, NULL, got), "beyond", w1);
    const int bad_map = 2;
    tu_expect_error(transformer_forward_cached(&s, x, &smk, NULL, NULL, 1, T, 3, 9, &bad_map, got), "map", w2);
    tu_expect_error(transformer_forward_cached(&s, x, &smk, NULL, NULL, 1, T, 0, T, &map, got), "refresh map", w3);
    tu_expect_error(transformer_forward_cached(&s, x, &smk, NULL, NULL, 1, T - 1, 3, 9, NULL, got), "other T", w4);
    free(full), free(full2), free(got);
    tf_state_free(&s);
    model_dir_free(&md);
}

static void test_window_dream(void **state) {
    (void)state;
    window_vs_full("tiny-dream");
}

static void test_window_llada(void **state) {
    (void)state;
    window_vs_full("tiny-llada");
}

/* ---- decoders ---------------------------------------------------------------------------- */

typedef struct {
    lm_model inner;
    int calls, full, shift, T;
    int lo[256], hi[256];
    long positions;
} recorder;

static int rec_forward_cached(void *ctx, const int32_t *x, const sm_params *sm,
                              const sm_feedback *fb, const uint8_t *need, int B, int T, int lo,
                              int hi, const int *cache_rows, float *logits) {
    recorder *r = ctx;
    assert_true(r->calls < 256);
    r->lo[r->calls] = lo;
    r->hi[r->calls++] = hi;
    r->full += lo == 0 && hi == T;
    r->positions += (long)B * (hi - lo);
    for (int i = 0; i < B * T; i++)
        if (need[i]) assert_true(i % T >= lo && i % T < hi); /* only computed rows are read */
    return r->inner.forward_cached(r->inner.ctx, x, sm, fb, need, B, T, lo, hi, cache_rows, logits);
}

typedef struct {
    decoder_style style;
    decoder_alg alg;
    decoder_remask remask;
    int gen_len, steps, block, sm, P, eos;
    float temperature, top_p, threshold;
    kv_cache_mode cache;
} dcase;

static void params_of(const dcase *c, decoder_params *p) {
    decoder_params_default(p);
    p->style = c->style;
    p->alg = c->alg;
    p->remasking = c->remask;
    p->gen_len = c->gen_len;
    p->steps = c->steps;
    p->block_length = c->block;
    p->temperature = c->temperature;
    p->top_p = c->top_p;
    p->threshold = c->threshold;
    p->eos_id = c->eos;
    p->seed = 11;
    p->sm.enabled = c->sm;
    p->sm.k = 2;
    p->cache = KV_CACHE_OFF;
}

static void run(const lm_model *lm, const decoder_params *p, int B, int P, int32_t *x, int *gen,
                decoder_stats *st) {
    const int T = P + p->gen_len;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++) x[b * T + t] = 3 + (7 * t + b) % 40;
    if (decoder_run(lm, p, x, B, P, gen, st)) {
        print_error("%s\n", smdlm_last_error());
        fail();
    }
}

static void test_decoders(void **state) {
    (void)state;
    static const dcase cases[] = {
        {DECODER_DREAM, DECODER_ALG_ORIGIN, 0, 24, 12, 0, 0, 5, -1, 0.7f, 0.9f, 0, KV_CACHE_PREFIX},
        {DECODER_DREAM, DECODER_ALG_ENTROPY, 0, 24, 8, 0, 1, 5, -1, 0.0f, 1.0f, 0, KV_CACHE_PREFIX},
        {DECODER_DREAM, DECODER_ALG_MASKGIT_PLUS, 0, 24, 0, 0, 1, 4, 40, 0.5f, 1.0f, 0.2f, KV_CACHE_PREFIX},
        {DECODER_LLADA, 0, DECODER_REMASK_LOW_CONFIDENCE, 24, 12, 8, 1, 5, -1, 0.0f, 1.0f, 0, KV_CACHE_DUAL},
        {DECODER_LLADA, 0, DECODER_REMASK_LOW_CONFIDENCE, 24, 12, 8, 0, 5, -1, 0.8f, 1.0f, 0, KV_CACHE_PREFIX},
        {DECODER_LLADA, 0, DECODER_REMASK_RANDOM, 24, 24, 8, 1, 3, 17, 0.5f, 1.0f, 0, KV_CACHE_DUAL},
        {DECODER_LLADA, 0, DECODER_REMASK_LOW_CONFIDENCE, 24, 4, 6, 0, 5, -1, 0.0f, 1.0f, 0.3f, KV_CACHE_DUAL},
        /* Fast-dLLM's block-wise Dream */
        {DECODER_DREAM, DECODER_ALG_ENTROPY, 0, 24, 12, 8, 1, 5, -1, 0.0f, 1.0f, 0, KV_CACHE_DUAL},
        {DECODER_DREAM, DECODER_ALG_TOPK_MARGIN, 0, 24, 12, 6, 0, 4, 40, 0.7f, 0.9f, 0, KV_CACHE_PREFIX},
        {DECODER_DREAM, DECODER_ALG_MASKGIT_PLUS, 0, 24, 0, 8, 1, 5, -1, 0.5f, 1.0f, 0.2f, KV_CACHE_DUAL},
    };
    model_dir dream, llada;
    load(&dream, "tiny-dream");
    load(&llada, "tiny-llada");
    enum { B = 2, TMAX = 32 };
    int32_t x0[B * TMAX], x1[B * TMAX], x2[B * TMAX];
    int g0[B], g1[B], g2[B];
    decoder_stats s0, s1, s2;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const dcase *c = &cases[i];
        model_dir *md = c->style == DECODER_DREAM ? &dream : &llada;
        tf_state st;
        tf_state_init(&st, &md->tf);
        recorder rec;
        memset(&rec, 0, sizeof rec);
        transformer_as_lm(&st, &rec.inner);
        lm_model lm = rec.inner;
        lm.forward_cached = rec_forward_cached;
        lm.ctx = &rec;
        lm.forward = NULL; /* the cached runs must not call it */
        decoder_params p;
        params_of(c, &p);
        run(&rec.inner, &p, B, c->P, x0, g0, &s0);
        /* a refresh at every forward: the uncached decoder, token for token */
        p.cache = c->cache;
        p.cache_refresh = 1;
        run(&lm, &p, B, c->P, x1, g1, &s1);
        const int T = c->P + c->gen_len;
        assert_int_equal(tu_compare_i32("refresh every forward", x1, x0, (size_t)B * T), 0);
        assert_memory_equal(g1, g0, sizeof g0);
        assert_int_equal(s1.forwards, s0.forwards);
        assert_int_equal(s1.refreshes, s1.forwards);
        assert_int_equal(rec.full, rec.calls);
        assert_int_equal(s0.positions_computed, s1.positions_computed);
        /* reused: windows as kvcache.h says, a refresh at every block start */
        memset(&rec, 0, sizeof rec);
        transformer_as_lm(&st, &rec.inner);
        p.cache_refresh = 0;
        run(&lm, &p, B, c->P, x2, g2, &s2);
        const int L = c->block ? c->block : c->gen_len, nblocks = c->gen_len / L;
        assert_int_equal(s2.refreshes, nblocks);
        assert_int_equal(rec.calls, s2.forwards);
        assert_int_equal(rec.positions, s2.positions_computed);
        int block = -1, windows = 0;
        for (int f = 0; f < rec.calls; f++) {
            if (rec.lo[f] == 0 && rec.hi[f] == T) {
                block++;
                continue;
            }
            windows++;
            /* Dream's shift reads the row before the block, except in blocks (their refresh
             * reveals the block's first position) */
            const int start = c->P + block * L,
                      want_lo = start - (c->style == DECODER_DREAM && !c->block);
            assert_int_equal(rec.lo[f], want_lo);
            assert_int_equal(rec.hi[f], c->cache == KV_CACHE_DUAL ? start + L : T);
        }
        assert_int_equal(block, nblocks - 1);
        assert_true(windows > 0);
        assert_true(s2.positions_computed < s0.positions_computed);
        int diff = 0;
        for (int j = 0; j < B * T; j++) diff += x2[j] != x0[j];
        print_message("case %zu (%s, %s cache): %d forwards, %d refreshes, positions %ld → %ld, "
                      "%d of %d tokens differ from the uncached run\n",
                      i, c->style == DECODER_DREAM ? "dream" : "llada", kv_cache_mode_name(c->cache),
                      s2.forwards, s2.refreshes, s0.positions_computed, s2.positions_computed, diff,
                      B * c->gen_len);
        tf_state_free(&st);
    }
    model_dir_free(&dream);
    model_dir_free(&llada);
}

/* ---- bad parameters and flags ------------------------------------------------------------ */

static void test_bad_params(void **state) {
    (void)state;
    model_dir md;
    load(&md, "tiny-dream");
    lm_model lm;
    tf_state st;
    tf_state_init(&st, &md.tf);
    transformer_as_lm(&st, &lm);
    decoder_params p;
    decoder_params_default(&p);
    p.gen_len = p.steps = 16;
    p.cache = KV_CACHE_DUAL;
    const char *const w1[] = {"dual cache needs block decoding", NULL};
    tu_expect_error(decoder_params_validate(&p, &lm, 4), "dual on Dream", w1);
    p.style = DECODER_LLADA;
    p.block_length = 16;
    tu_expect_error(decoder_params_validate(&p, &lm, 4), "dual, one block", w1);
    p.block_length = 8;
    assert_int_equal(decoder_params_validate(&p, &lm, 4), 0);
    p.cache = KV_CACHE_OFF;
    p.cache_refresh = 2;
    const char *const w2[] = {"needs a cache", NULL};
    tu_expect_error(decoder_params_validate(&p, &lm, 4), "refresh without cache", w2);
    p.cache = KV_CACHE_PREFIX;
    p.cache_refresh = -1;
    const char *const w3[] = {"must be ≥ 0", NULL};
    tu_expect_error(decoder_params_validate(&p, &lm, 4), "negative refresh", w3);
    p.cache_refresh = 0;
    lm.forward_cached = NULL; /* e.g. the MDLM DiT's view */
    const char *const w4[] = {"needs a Dream or LLaDA model", NULL};
    tu_expect_error(decoder_params_validate(&p, &lm, 4), "no cache in the model", w4);
    kv_cache_mode mode;
    const char *const w5[] = {"unknown cache", "pre", NULL};
    tu_expect_error(kv_cache_mode_parse("pre", &mode), "mode", w5);
    tf_state_free(&st);
    model_dir_free(&md);
}

static char g_tmp[64], g_dream[128], g_llada[128];

static void link_dir(char *out, const char *name, const char *model, const char *tok) {
    snprintf(out, 128, "%s/%s", g_tmp, name);
    assert_int_equal(mkdir(out, 0755), 0);
    const char *srcs[] = {model, tok};
    static const char *const files[][4] = {
        {"config.json", "model.safetensors", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"},
        {"tokenizer.json", "tokenizer_config.json", NULL, NULL}};
    for (int s = 0; s < 2; s++)
        for (int f = 0; f < 4 && files[s][f]; f++) {
            char from[4096], to[512], rel[256];
            snprintf(rel, sizeof rel, "%s/%s", srcs[s], files[s][f]);
            if (!realpath(tu_fixture("%s", rel), from)) continue;
            snprintf(to, sizeof to, "%s/%s", out, files[s][f]);
            assert_int_equal(symlink(from, to), 0);
        }
    char from[4096], to[512];
    snprintf(to, sizeof to, "%s/model.safetensors.index.json", out);
    if (realpath(tu_fixture("%s/model.safetensors.index.json", model), from))
        assert_int_equal(symlink(from, to), 0);
}

static void test_cli(void **state) {
    (void)state;
    strcpy(g_tmp, "/tmp/smdlm-kv-XXXXXX");
    assert_non_null(mkdtemp(g_tmp));
    link_dir(g_dream, "dream", "tiny-dream", "tiny-dream-tokenizer");
    link_dir(g_llada, "llada", "tiny-llada", "tiny-llada-tokenizer");
    /* the CLI with --cache-refresh 1 prints what the uncached run prints */
    char *a = NULL, *b = NULL, *c = NULL;
    const char *common = "-p 'Hello there' --max-new-tokens 16 --block-length 4 --temperature 0.5 "
                         "--seed 3 -o - -q -t 1";
    assert_int_equal(tu_run(&a, "generate -m %s %s", g_llada, common), 0);
    assert_int_equal(tu_run(&b, "generate -m %s %s --cache dual --cache-refresh 1", g_llada, common), 0);
    assert_int_equal(tu_run(&c, "generate -m %s %s --cache dual", g_llada, common), 0);
    assert_non_null(strstr(b, "\"cache\":\"dual\""));
    char *ids_a = strstr(a, "\"ids\""), *ids_b = strstr(b, "\"ids\"");
    assert_non_null(ids_a);
    assert_non_null(ids_b);
    assert_int_equal(strncmp(ids_a, ids_b, (size_t)(strstr(ids_a, "]") - ids_a)), 0);
    free(a), free(b), free(c);
    enum { N = 6 };
    static char args[N][320];
    const char *words[N];
    int n = 0;
#define CASE(word, ...) (snprintf(args[n], sizeof args[n], __VA_ARGS__), words[n++] = (word))
    CASE("--cache dual needs block decoding", "generate -m %s --cache dual --max-new-tokens 16", g_dream);
    CASE("--cache dual needs block decoding", "generate -m %s --cache dual --max-new-tokens 16 --block-length 16", g_llada);
    CASE("unknown cache", "generate -m %s --cache full --max-new-tokens 16", g_dream);
    CASE("needs a cache", "generate -m %s --cache-refresh 2 --max-new-tokens 16", g_dream);
    CASE("--cache-refresh", "generate -m %s --cache prefix --cache-refresh -1 --max-new-tokens 16", g_dream);
    CASE("--cache applies to Dream/LLaDA", "generate -m %s --cache prefix", tu_fixture("tiny"));
#undef CASE
    assert_int_equal(n, N);
    tu_expect_cli_errors(args[0], sizeof args[0], words, n);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp); /* our own mkdtemp directory */
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    kernels_set_threads(1); /* no OpenMP barriers on a loaded machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_dream),
        cmocka_unit_test(test_window_llada),
        cmocka_unit_test(test_decoders),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
