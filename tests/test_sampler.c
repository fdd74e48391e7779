/* test_sampler.c — MDLM samplers against the PyTorch mirror in tests/gen_fixtures.py: whole
 * trajectories (every step) and the number of real forwards (the ddpm_cache skips), for
 * ddpm, ddpm_cache (with top-p, prompts, soft-masking), ReMDM-cap and ReMDM-loop; the
 * semi-autoregressive sampler against tests/gen_semiar_fixtures.py (every round's steps). */
#include <cjson/cJSON.h>
#include <string.h>

#include "compute/kernels.h"
#include "models/model.h"
#include "generate/sampler.h"
#include "testutil.h"
#include "base/util.h"

typedef struct {
    int32_t *traj; /* (cap, B, T) */
    int n, cap;    /* steps seen (recorded up to cap) */
} recorder;

static int record(void *user, const gen_step *s) {
    recorder *r = user;
    if (r->n < r->cap)
        memcpy(r->traj + (size_t)r->n * s->B * s->T, s->x, sizeof(int32_t) * (size_t)s->B * s->T);
    r->n++;
    return 0;
}

/* sampler_run on a generation state of md */
static int run_sampler(const model_dir *md, const sampler_params *p, int32_t *x,
                       const uint8_t *fixed, int B, int T, int threads, sampler_stats *st) {
    model_state s;
    model_state_init(&s, md, threads);
    int rc = sampler_run(&s.lm, p, x, fixed, B, T, st);
    model_state_free(&s);
    return rc;
}

/* A case's sampler, steps, top-p, seed and soft-masking. */
static void params_of_case(const cJSON *cs, sampler_params *pp) {
    sampler_params p;
    sampler_params_default(&p);
    assert_int_equal(sampler_kind_parse(cJSON_GetObjectItem(cs, "sampler")->valuestring, &p.kind), 0);
    p.steps = cJSON_GetObjectItem(cs, "steps")->valueint;
    p.top_p = (float)cJSON_GetObjectItem(cs, "top_p")->valuedouble;
    p.seed = (uint64_t)cJSON_GetObjectItem(cs, "seed")->valuedouble;
    const cJSON *sm = cJSON_GetObjectItem(cs, "sm");
    if (cJSON_IsObject(sm)) {
        p.sm.enabled = 1;
        p.sm.scale = (float)cJSON_GetObjectItem(sm, "scale")->valuedouble;
        p.sm.centre = (float)cJSON_GetObjectItem(sm, "centre")->valuedouble;
        p.sm.steepness = (float)cJSON_GetObjectItem(sm, "steepness")->valuedouble;
        p.sm.k = cJSON_GetObjectItem(sm, "k")->valueint;
        const cJSON *sched = cJSON_GetObjectItem(sm, "schedule");
        if (cJSON_IsString(sched))
            p.sm.schedule = !strcmp(sched->valuestring, "linear") ? SM_SCHEDULE_LINEAR
                                                                  : SM_SCHEDULE_STEPWISE;
    }
    *pp = p;
}

static void run_case(const model_dir *md, const char *name, const cJSON *cs) {
    int ci = cJSON_GetObjectItem(cs, "case")->valueint;
    sampler_params p;
    params_of_case(cs, &p);
    int prompt = cJSON_GetObjectItem(cs, "prompt")->valueint;
    size_t n, nt;
    int64_t shape[3];
    int ndim;
    int32_t *x = tu_load_i32(tu_fixture("%s/ref/sample%d_x0.npy", name, ci), &n, shape, &ndim);
    int B = (int)shape[0], T = (int)shape[1];
    int32_t *ref = tu_load_i32(tu_fixture("%s/ref/sample%d_traj.npy", name, ci), &nt, NULL, NULL);
    uint8_t *fixed = sm_calloc(n, 1);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < prompt; t++) fixed[b * T + t] = 1;
    recorder rec = {sm_malloc(sizeof(int32_t) * (nt + (size_t)B * T)), 0, (int)(nt / ((size_t)B * T)) + 1};
    p.on_step = record;
    p.user = &rec;
    sampler_stats st;
    assert_int_equal(run_sampler(md, &p, x, fixed, B, T, 2, &st), 0);
    printf("  %s case %d: %s steps %d top-p %.2f sm %s prompt %d -> forwards %d (ref %d)\n", name,
           ci, sampler_kind_name(p.kind), p.steps, p.top_p, p.sm.enabled ? "on" : "off", prompt,
           st.forwards, cJSON_GetObjectItem(cs, "forwards")->valueint);
    assert_int_equal((size_t)rec.n * B * T, nt);
    assert_int_equal(tu_compare_i32("trajectory", rec.traj, ref, nt), 0);
    assert_int_equal(st.forwards, cJSON_GetObjectItem(cs, "forwards")->valueint);
    for (int b = 0; b < B; b++) /* prompt tokens never change */
        for (int t = 0; t < prompt; t++) assert_int_equal(x[b * T + t], ref[b * T + t]);
    free(rec.traj), free(x), free(ref), free(fixed);
}

static void test_reference_trajectories(void **state) {
    const char *models[] = {"tiny", "tiny-tc"};
    for (int mi = 0; mi < 2; mi++) {
        char dir[256], *text;
        snprintf(dir, sizeof dir, FIXTURES_DIR "/%s", models[mi]);
        model_dir md;
        assert_int_equal(model_dir_load(&md, dir, 0), 0);
        assert_int_equal(sm_read_file(tu_fixture("%s/ref/samplers.json", models[mi]), 1 << 20, &text, NULL), 0);
        cJSON *root = cJSON_Parse(text);
        const cJSON *cs;
        cJSON_ArrayForEach(cs, cJSON_GetObjectItem(root, "cases")) run_case(&md, models[mi], cs);
        cJSON_Delete(root);
        free(text);
        model_dir_free(&md);
    }
}

/* The integers of a nested JSON array in order (*n of them). */
static size_t json_count(const cJSON *a) {
    if (!cJSON_IsArray(a)) return 1;
    size_t n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) n += json_count(v);
    return n;
}

static void json_fill(const cJSON *a, int32_t *out, size_t *k) {
    if (!cJSON_IsArray(a)) {
        out[(*k)++] = a->valueint;
        return;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, a) json_fill(v, out, k);
}

static int32_t *json_i32(const cJSON *a, size_t *n) {
    int32_t *out = sm_malloc(sizeof(int32_t) * (json_count(a) + 1));
    *n = 0;
    json_fill(a, out, n);
    return out;
}

/* MDLM's semi-autoregressive sampler (sample_subs_guidance): every round's steps, the canvas of
 * L + k·stride tokens and the forwards against tests/fixtures/semiar/cases.json. */
static void test_semi_ar(void **state) {
    char *text;
    assert_int_equal(sm_read_file(tu_fixture("semiar/cases.json"), 1 << 24, &text, NULL), 0);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    const cJSON *cs;
    int ncases = 0;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(root, "cases")) {
        model_dir md;
        assert_int_equal(model_dir_load(&md, tu_fixture("%s", cJSON_GetObjectItem(cs, "model")->valuestring), 0), 0);
        sampler_params p;
        params_of_case(cs, &p);
        p.semi_ar_length = cJSON_GetObjectItem(cs, "length")->valueint;
        p.semi_ar_stride = cJSON_GetObjectItem(cs, "stride")->valueint;
        size_t n, nf, no, nt;
        const cJSON *x0 = cJSON_GetObjectItem(cs, "x0");
        const int B = cJSON_GetArraySize(x0), N = cJSON_GetArraySize(cJSON_GetArrayItem(x0, 0));
        int32_t *x = json_i32(x0, &n), *fx = json_i32(cJSON_GetObjectItem(cs, "fixed"), &nf);
        int32_t *out = json_i32(cJSON_GetObjectItem(cs, "out"), &no);
        int32_t *ref = json_i32(cJSON_GetObjectItem(cs, "traj"), &nt); /* [steps][B] rows of L */
        uint8_t *fixed = sm_malloc(nf);
        for (size_t i = 0; i < nf; i++) fixed[i] = (uint8_t)fx[i];
        const size_t canvas = (size_t)B * p.semi_ar_length;
        recorder rec = {sm_malloc(sizeof(int32_t) * (nt + canvas)), 0, (int)(nt / canvas) + 1};
        p.on_step = record;
        p.user = &rec;
        sampler_stats st;
        assert_int_equal(run_sampler(&md, &p, x, fixed, B, N, 2, &st), 0);
        printf("  semi-AR case %d: L %d stride %d, %d tokens, %s steps %d (%d updates a round): "
               "%d recorded steps, forwards %d (ref %d)\n", cJSON_GetObjectItem(cs, "case")->valueint,
               p.semi_ar_length, p.semi_ar_stride, N, sampler_kind_name(p.kind), p.steps,
               sampler_planned_steps(&p), rec.n, st.forwards,
               cJSON_GetObjectItem(cs, "forwards")->valueint);
        assert_int_equal((size_t)rec.n * B * p.semi_ar_length, nt);
        assert_int_equal(tu_compare_i32("round trajectories", rec.traj, ref, nt), 0);
        assert_int_equal(no, (size_t)B * N);
        assert_int_equal(tu_compare_i32("semi-autoregressive canvas", x, out, no), 0);
        assert_int_equal(st.forwards, cJSON_GetObjectItem(cs, "forwards")->valueint);
        free(rec.traj), free(x), free(fx), free(out), free(ref), free(fixed);
        model_dir_free(&md);
        ncases++;
    }
    assert_int_equal(ncases, 4);
    cJSON_Delete(root);
    free(text);
}

/* `generate --num-strides K --stride-length S` prints the reference's canvases (case 0 of the
 * fixture: tiny, length 32, two strides of 16, no prompt); bad combinations are errors. */
static void test_semi_ar_cli(void **state) {
    char *text, *out;
    assert_int_equal(sm_read_file(tu_fixture("semiar/cases.json"), 1 << 24, &text, NULL), 0);
    cJSON *root = cJSON_Parse(text);
    const cJSON *cs = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), 0);
    assert_int_equal(cJSON_GetObjectItem(cs, "stride")->valueint, 16);
    assert_int_equal(tu_run(&out, "generate -m %s --num-strides 2 --stride-length 16 --steps 8 "
                                  "--seed 700 -n 2 -o - -q -t 2", tu_fixture("tiny")), 0);
    const cJSON *ref = cJSON_GetObjectItem(cs, "out");
    char *line = strstr(out, "{\"text\""); /* after the note that tiny has no tokenizer */
    for (int b = 0; b < cJSON_GetArraySize(ref); b++) {
        assert_non_null(line);
        char *end = strchr(line, '\n');
        assert_non_null(end);
        *end = 0;
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        size_t n, nr;
        int32_t *got = json_i32(cJSON_GetObjectItem(j, "ids"), &n);
        int32_t *want = json_i32(cJSON_GetArrayItem(ref, b), &nr);
        assert_int_equal(n, 64);
        assert_int_equal(tu_compare_i32("generate --num-strides", got, want, nr), 0);
        assert_int_equal(cJSON_GetObjectItem(j, "num_strides")->valueint, 2);
        assert_int_equal(cJSON_GetObjectItem(j, "stride_length")->valueint, 16);
        free(got), free(want);
        cJSON_Delete(j);
        line = end + 1;
    }
    free(out);
    cJSON_Delete(root);
    free(text);
    static char args[3][256];
    const char *words[3];
    int n = 0;
#define CASE(word, ...) (snprintf(args[n], sizeof args[n], __VA_ARGS__), words[n++] = (word))
    CASE("stride length 40 must be in [1, the canvas length 32]",
         "generate -m %s --num-strides 1 --stride-length 40", tu_fixture("tiny"));
    CASE("ddpm or ddpm_cache", "generate -m %s --num-strides 1 --sampler remdm-cap", tu_fixture("tiny"));
    CASE("invalid value '0' for --num-strides", "generate -m %s --num-strides 0", tu_fixture("tiny"));
#undef CASE
    tu_expect_cli_errors(args[0], sizeof args[0], words, n);
}

static void sample(const model_dir *md, sampler_params *p, int32_t *x, int B, int T, sampler_stats *st) {
    for (int i = 0; i < B * T; i++) x[i] = md->net.cfg.mask_id;
    assert_int_equal(run_sampler(md, p, x, NULL, B, T, 2, st), 0);
}

static void test_determinism_and_cache(void **state) {
    model_dir md;
    assert_int_equal(model_dir_load(&md, FIXTURES_DIR "/tiny", 0), 0);
    const int B = 3, T = 20;
    int32_t a[60], b[60];
    sampler_params p;
    sampler_params_default(&p);
    p.steps = 64;
    p.seed = 7;
    sampler_stats s1, s2;
    sample(&md, &p, a, B, T, &s1);
    sample(&md, &p, b, B, T, &s2);
    assert_memory_equal(a, b, sizeof a);
    for (int i = 0; i < B * T; i++) assert_true(a[i] != md.net.cfg.mask_id);
    /* 64 steps over 20 positions: most steps reveal nothing, so the cache must skip */
    printf("  ddpm_cache: %d forwards for %d steps\n", s1.forwards, s1.steps);
    assert_true(s1.forwards < p.steps);
    p.kind = SAMPLER_DDPM;
    sample(&md, &p, b, B, T, &s2);
    assert_true(s2.forwards >= p.steps);
    assert_memory_equal(a, b, sizeof a); /* the cache changes cost, not results */
    p.kind = SAMPLER_DDPM_CACHE;
    p.seed = 8;
    sample(&md, &p, b, B, T, &s2);
    assert_memory_not_equal(a, b, sizeof a);
    model_dir_free(&md);
}

static void test_bad_params(void **state) {
    model_dir md;
    assert_int_equal(model_dir_load(&md, FIXTURES_DIR "/tiny", 0), 0);
    int32_t x[8];
    sampler_stats st;
    sampler_params p;
    sampler_params_default(&p);
    p.steps = 0;
    assert_int_equal(run_sampler(&md, &p, x, NULL, 1, 8, 1, &st), -1);
    assert_non_null(strstr(smdlm_last_error(), "steps"));
    sampler_params_default(&p);
    p.top_p = 1.5f;
    assert_int_equal(run_sampler(&md, &p, x, NULL, 1, 8, 1, &st), -1);
    assert_non_null(strstr(smdlm_last_error(), "top-p"));
    sampler_params_default(&p);
    for (int i = 0; i < 8; i++) x[i] = 67; /* = V */
    assert_int_equal(run_sampler(&md, &p, x, NULL, 1, 8, 1, &st), -1);
    assert_non_null(strstr(smdlm_last_error(), "outside"));
    for (int i = 0; i < 8; i++) x[i] = 66;
    assert_int_equal(run_sampler(&md, &p, x, NULL, 1, 33, 1, &st), -1); /* > model_length 32 */
    assert_non_null(strstr(smdlm_last_error(), "length"));
    model_dir_free(&md);
}

int main(void) {
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_trajectories),
        cmocka_unit_test(test_determinism_and_cache),
        cmocka_unit_test(test_semi_ar),
        cmocka_unit_test(test_semi_ar_cli),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
