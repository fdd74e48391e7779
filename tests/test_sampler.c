/* test_sampler.c — MDLM samplers against the PyTorch mirror in tests/gen_fixtures.py: whole
 * trajectories (every step) and the number of real forwards (the ddpm_cache skips), for
 * ddpm, ddpm_cache (with top-p, prompts, soft-masking), ReMDM-cap and ReMDM-loop. */
#include <cjson/cJSON.h>
#include <string.h>

#include "compute/kernels.h"
#include "models/model.h"
#include "generate/sampler.h"
#include "testutil.h"
#include "base/util.h"

typedef struct {
    int32_t *traj; /* (steps + 1, B, T) */
    int n;
} recorder;

static int record(void *user, const gen_step *s) {
    recorder *r = user;
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

static void run_case(const model_dir *md, const char *name, const cJSON *cs) {
    int ci = cJSON_GetObjectItem(cs, "case")->valueint;
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
    recorder rec = {sm_malloc(sizeof(int32_t) * (nt + (size_t)B * T)), 0};
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
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
