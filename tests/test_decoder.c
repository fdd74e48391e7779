/* test_decoder.c — Dream (single and Fast-dLLM blocks) / LLaDA / threshold decoders (src/generate/decoder.c) over the tiny DiT seen as
 * an lm_model (src/models/lm_dit.c, shift 0 and 1), against tools/ref_decoder.py
 * (tests/gen_decoder_fixtures.py): every step of every trajectory, the number of forwards and
 * steps, the generated length before EOS; plus the schedule, the `need` rows, step accounting
 * and bad parameters. */
#include <cjson/cJSON.h>
#include <string.h>

#include "generate/decoder.h"
#include "models/lm_dit.h"
#include "models/model.h"
#include "testutil.h"
#include "base/util.h"

typedef struct {
    int32_t *traj; /* (steps, B, T) */
    int n, cap;    /* steps recorded, capacity in steps */
} recorder;

static int record(void *user, const gen_step *s) {
    recorder *r = user;
    const size_t n = (size_t)s->B * s->T;
    if (r->n < r->cap) memcpy(r->traj + (size_t)r->n * n, s->x, sizeof(int32_t) * n);
    r->n++;
    return 0;
}

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }
static int inum(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valueint; }

static void params_from_case(decoder_params *p, const cJSON *cs) {
    decoder_params_default(p);
    p->style = strcmp(cJSON_GetObjectItem(cs, "style")->valuestring, "llada") == 0 ? DECODER_LLADA
                                                                                   : DECODER_DREAM;
    p->gen_len = inum(cs, "gen_len");
    p->steps = inum(cs, "steps");
    p->tokens_per_step = inum(cs, "tokens_per_step");
    p->temperature = (float)num(cs, "temperature");
    p->top_p = (float)num(cs, "top_p");
    p->top_k = inum(cs, "top_k");
    assert_int_equal(decoder_alg_parse(cJSON_GetObjectItem(cs, "alg")->valuestring, &p->alg), 0);
    p->alg_temp = (float)num(cs, "alg_temp");
    p->block_length = inum(cs, "block_length");
    assert_int_equal(decoder_remask_parse(cJSON_GetObjectItem(cs, "remasking")->valuestring,
                                          &p->remasking), 0);
    p->threshold = (float)num(cs, "threshold");
    p->eos_id = inum(cs, "eos_id");
    p->eos_penalty = (float)num(cs, "eos_penalty");
    p->seed = (uint64_t)num(cs, "seed");
    const cJSON *sm = cJSON_GetObjectItem(cs, "sm");
    if (cJSON_IsObject(sm)) {
        p->sm.enabled = 1;
        p->sm.scale = (float)num(sm, "scale");
        p->sm.centre = (float)num(sm, "centre");
        p->sm.steepness = (float)num(sm, "steepness");
        p->sm.k = inum(sm, "k");
    }
}

/* The prompt rows of a case at the start of a [B, T] canvas. */
static int32_t *case_canvas(const cJSON *cs, int *B, int *P, int *T) {
    const cJSON *prompt = cJSON_GetObjectItem(cs, "prompt");
    *B = cJSON_GetArraySize(prompt);
    *P = cJSON_GetArraySize(cJSON_GetArrayItem(prompt, 0));
    *T = *P + inum(cs, "gen_len");
    int32_t *x = sm_calloc((size_t)*B * *T, sizeof(int32_t));
    for (int b = 0; b < *B; b++)
        for (int t = 0; t < *P; t++)
            x[b * *T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(prompt, b), t)->valueint;
    return x;
}

static void run_case(const dit_model *net, const cJSON *cs) {
    decoder_params p;
    params_from_case(&p, cs);
    int B, P, T;
    int32_t *x = case_canvas(cs, &B, &P, &T);
    const cJSON *traj = cJSON_GetObjectItem(cs, "traj");
    const int nref = cJSON_GetArraySize(traj);
    int32_t *ref = sm_malloc(sizeof(int32_t) * (size_t)nref * B * T);
    int k = 0;
    const cJSON *st, *row, *v;
    cJSON_ArrayForEach(st, traj) cJSON_ArrayForEach(row, st) cJSON_ArrayForEach(v, row) ref[k++] =
        v->valueint;
    recorder rec = {sm_malloc(sizeof(int32_t) * (size_t)(nref + 1) * B * T), 0, nref + 1};
    p.on_step = record;
    p.user = &rec;
    lm_dit d;
    lm_model lm;
    lm_dit_init(&d, &lm, net, inum(cs, "shift"), 2);
    decoder_stats stats;
    int gen[8];
    assert_int_equal(decoder_run(&lm, &p, x, B, P, gen, &stats), 0);
    printf("  case %2d %s shift %d %-14s sm %s T %.1f: forwards %d (ref %d) steps %d (ref %d), "
           "rows %ld\n", inum(cs, "case"), p.style == DECODER_LLADA ? "llada" : "dream",
           lm.shift, p.style == DECODER_LLADA ? decoder_remask_name(p.remasking) : decoder_alg_name(p.alg),
           p.sm.enabled ? "on " : "off", p.temperature, stats.forwards, inum(cs, "forwards"),
           stats.steps, inum(cs, "steps_run"), stats.rows_computed);
    assert_int_equal(rec.n, nref);
    assert_int_equal(tu_compare_i32("trajectory", rec.traj, ref, (size_t)nref * B * T), 0);
    assert_int_equal(stats.forwards, inum(cs, "forwards"));
    assert_int_equal(stats.steps, inum(cs, "steps_run"));
    for (int b = 0; b < B; b++) {
        assert_int_equal(gen[b], cJSON_GetArrayItem(cJSON_GetObjectItem(cs, "gen"), b)->valueint);
        for (int t = 0; t < P + gen[b]; t++) assert_int_not_equal(x[b * T + t], lm.mask_id);
        if (p.eos_id >= 0 && gen[b] < p.gen_len) assert_int_equal(x[b * T + P + gen[b]], p.eos_id);
    }
    lm_dit_free(&d);
    free(rec.traj), free(ref), free(x);
}

static cJSON *load_cases(char **text) {
    assert_int_equal(sm_read_file(tu_fixture("decoder/cases.json"), 1 << 24, text, NULL), 0);
    cJSON *root = cJSON_Parse(*text);
    assert_non_null(root);
    return root;
}

static void test_reference_trajectories(void **state) {
    model_dir md;
    assert_int_equal(model_dir_load(&md, FIXTURES_DIR "/tiny", 0), 0);
    char *text;
    cJSON *root = load_cases(&text);
    const cJSON *cs;
    int n = 0;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(root, "cases")) {
        run_case(&md.net, cs);
        n++;
    }
    assert_true(n >= 50);
    cJSON_Delete(root);
    free(text);
    model_dir_free(&md);
}

/* Dream's timesteps: torch.linspace(1, 1e-3, n + 1) bit for bit. */
static void test_linspace(void **state) {
    size_t n;
    float *ref = tu_load_f32(tu_fixture("decoder/linspace.npy"), &n);
    float buf[302];
    size_t off = 0;
    for (int steps = 1; steps <= 300; steps++) {
        decoder_linspace(buf, 1.0f, 1e-3f, steps + 1);
        assert_true(off + steps + 1 <= n);
        assert_int_equal(tu_compare_f32("linspace", buf, ref + off, (size_t)steps + 1, 0.0f, 0.0f), 0);
        off += (size_t)steps + 1;
    }
    assert_int_equal(off, n);
    /* the quotas of one run add up to the masked count */
    int left = 97, total = 0;
    decoder_linspace(buf, 1.0f, 1e-3f, 31);
    for (int i = 0; i < 30; i++) {
        int q = decoder_dream_quota(left, buf, i, 30);
        total += q;
        left -= q;
    }
    assert_int_equal(total, 97);
    free(ref);
}

/* A view that ignores `need` (computes every row): the decoder must not read other rows. */
typedef struct {
    lm_model inner;
    long rows;
} all_rows;

static int all_rows_forward(void *ctx, const int32_t *x, const double *t, const sm_params *sm,
                            const sm_feedback *fb, const uint8_t *need, int B, int T, float *logits) {
    all_rows *a = ctx;
    a->rows += (long)B * T;
    return a->inner.forward(a->inner.ctx, x, t, sm, fb, NULL, B, T, logits);
}

static void run_plain(const lm_model *lm, decoder_params *p, int32_t *x, int B, int P, int *gen,
                      decoder_stats *st) {
    for (int i = 0; i < B * (P + p->gen_len); i++) x[i] = (i % (P + p->gen_len)) < P ? 5 + i % 7 : 0;
    assert_int_equal(decoder_run(lm, p, x, B, P, gen, st), 0);
}

static void test_need_rows_and_accounting(void **state) {
    model_dir md;
    assert_int_equal(model_dir_load(&md, FIXTURES_DIR "/tiny", 0), 0);
    lm_dit d;
    lm_model lm;
    lm_dit_init(&d, &lm, &md.net, 1, 2);
    all_rows a = {lm, 0};
    lm_model full = lm;
    full.forward = all_rows_forward;
    full.ctx = &a;
    const int B = 2, P = 3, G = 24, T = P + G;
    int32_t x1[2 * 27], x2[2 * 27];
    int g1[2], g2[2];
    decoder_stats s1, s2;
    decoder_params p;
    for (int sm = 0; sm < 2; sm++)
        for (int style = 0; style < 2; style++) {
            decoder_params_default(&p);
            p.style = (decoder_style)style;
            p.alg = DECODER_ALG_ENTROPY;
            p.gen_len = G;
            p.block_length = style ? 8 : 0;
            p.tokens_per_step = 4; /* 6 steps; LLaDA: 2 per block of 8 → exactly 4 per step */
            p.temperature = 0.6f;
            p.seed = 3;
            p.sm.enabled = sm;
            p.sm.scale = 0.6f;
            run_plain(&lm, &p, x1, B, P, g1, &s1);
            run_plain(&full, &p, x2, B, P, g2, &s2);
            assert_memory_equal(x1, x2, sizeof x1);
            printf("  need rows: %s sm %d: %ld rows asked of %ld, %d forwards, %d steps\n",
                   style ? "llada" : "dream", sm, s1.rows_computed, a.rows, s1.forwards, s1.steps);
            assert_true(s1.rows_computed < a.rows);
            a.rows = 0;
            assert_int_equal(s1.planned_steps, 6);
            assert_int_equal(s1.revealed, (long)B * G);
            if (style == DECODER_LLADA) assert_int_equal(s1.steps, 6);
        }
    /* LLaDA reveals exactly tokens_per_step per step */
    decoder_params_default(&p);
    p.style = DECODER_LLADA;
    p.gen_len = G;
    p.tokens_per_step = 3;
    recorder rec = {sm_malloc(sizeof(int32_t) * 9 * B * T), 0, 9};
    p.on_step = record;
    p.user = &rec;
    run_plain(&lm, &p, x1, B, P, g1, &s1);
    assert_int_equal(rec.n, 8);
    for (int s = 0; s < rec.n; s++)
        for (int b = 0; b < B; b++) {
            int masked = 0;
            for (int t = P; t < T; t++) masked += rec.traj[((size_t)s * B + b) * T + t] == lm.mask_id;
            assert_int_equal(masked, G - 3 * (s + 1));
        }
    free(rec.traj);
    /* a seed changes a tempered run; the same seed repeats it */
    decoder_params_default(&p);
    p.gen_len = G;
    p.steps = 8;
    p.temperature = 1.0f;
    p.seed = 11;
    run_plain(&lm, &p, x1, B, P, g1, &s1);
    run_plain(&lm, &p, x2, B, P, g2, &s2);
    assert_memory_equal(x1, x2, sizeof x1);
    p.seed = 12;
    run_plain(&lm, &p, x2, B, P, g2, &s2);
    assert_memory_not_equal(x1, x2, sizeof x1);
    /* LLaDA blocks with threshold decoding and no planned steps (a library caller's steps = 0)
     * decode until done, exactly as with steps given (threshold runs ignore the quotas) */
    decoder_params_default(&p);
    p.style = DECODER_LLADA;
    p.gen_len = G;
    p.block_length = 8;
    p.threshold = 0.9f;
    p.steps = 0;
    run_plain(&lm, &p, x1, B, P, g1, &s1);
    p.steps = 4;
    run_plain(&lm, &p, x2, B, P, g2, &s2);
    assert_memory_equal(x1, x2, sizeof x1);
    assert_int_equal(s1.revealed, (long)B * G);
    lm_dit_free(&d);
    model_dir_free(&md);
}

static void expect_bad(const lm_model *lm, const decoder_params *p, int P, const char *word) {
    int32_t x[64];
    for (int i = 0; i < 64; i++) x[i] = 1;
    decoder_stats st;
    int rc = decoder_run(lm, p, x, 1, P, NULL, &st);
    const char *const words[] = {word, NULL};
    tu_expect_error(rc, word, words);
}

static void test_bad_params(void **state) {
    model_dir md;
    assert_int_equal(model_dir_load(&md, FIXTURES_DIR "/tiny", 0), 0);
    lm_dit d;
    lm_model lm;
    lm_dit_init(&d, &lm, &md.net, 1, 1);
    decoder_params p;
#define BAD(field_stmt, P, word)                                                                   \
    do {                                                                                           \
        decoder_params_default(&p);                                                                \
        p.gen_len = 16;                                                                            \
        p.steps = 8;                                                                               \
        field_stmt;                                                                                \
        expect_bad(&lm, &p, P, word);                                                              \
    } while (0)
    BAD(p.steps = 0, 4, "steps");
    BAD(p.tokens_per_step = -1, 4, "tokens per step");
    BAD(p.gen_len = 0, 4, "generation length");
    BAD(p.gen_len = 30, 4, "exceeds"); /* 4 + 30 > 32 */
    BAD((p.style = DECODER_LLADA, p.block_length = 5), 4, "divide");
    BAD((p.style = DECODER_LLADA, p.block_length = 4, p.steps = 6), 4, "multiple");
    BAD(p.block_length = 8, 4, "confidence algorithm"); /* Dream blocks: not origin */
    BAD((p.block_length = 5, p.alg = DECODER_ALG_ENTROPY), 4, "divide");
    BAD((p.block_length = 4, p.alg = DECODER_ALG_ENTROPY, p.steps = 6), 4, "multiple");
    BAD((p.block_length = 4, p.alg = DECODER_ALG_ENTROPY, p.steps = 4), 4, "at least 2 steps");
    BAD(p.top_p = 0.0f, 4, "top-p");
    BAD(p.top_p = 1.5f, 4, "top-p");
    BAD(p.top_k = -2, 4, "top-k");
    BAD(p.temperature = -1.0f, 4, "temperature");
    BAD(p.alg_temp = -1.0f, 4, "alg-temp");
    BAD(p.threshold = 1.5f, 4, "threshold");
    BAD(p.threshold = -0.5f, 4, "threshold");
    BAD((p.threshold = 0.9f, p.alg = DECODER_ALG_ENTROPY), 4, "confidence");
    BAD((p.style = DECODER_LLADA, p.threshold = 0.9f, p.remasking = DECODER_REMASK_RANDOM), 4,
        "low_confidence");
    BAD(p.eos_penalty = 2.0f, 4, "EOS");
    BAD(p.eos_id = 66, 4, "EOS"); /* the mask id */
    BAD(p.eos_id = 67, 4, "EOS");
    BAD((p.sm.enabled = 1, p.sm.k = 0), 4, "k");
    decoder_params_default(&p);
    p.gen_len = 8;
    p.steps = 4;
    int32_t x[2 * 12];
    for (int i = 0; i < 24; i++) x[i] = 66; /* a prompt holding the mask id */
    decoder_stats st;
    const char *const w[] = {"prompt", NULL};
    tu_expect_error(decoder_run(&lm, &p, x, 2, 4, NULL, &st), "prompt", w);
    decoder_alg a;
    decoder_remask r;
    const char *const wa[] = {"algorithm", NULL}, *const wr[] = {"remasking", NULL};
    tu_expect_error(decoder_alg_parse("greedy", &a), "alg", wa);
    tu_expect_error(decoder_remask_parse("lowest", &r), "remasking", wr);
    lm_dit_free(&d);
    model_dir_free(&md);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linspace),
        cmocka_unit_test(test_reference_trajectories),
        cmocka_unit_test(test_need_rows_and_accounting),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
