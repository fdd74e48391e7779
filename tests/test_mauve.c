/* test_mauve.c — MAUVE (src/eval/mauve.c) against numpy/scipy references
 * (tests/gen_mauve_fixtures.py): divergence curve, area and frontier integral on fixed
 * histograms, PCA ratios and projection, the k-means objective; MAUVE ≈ 1 for two samples
 * of one distribution and ≈ 0 for disjoint ones, determinism for a seed; the featurizers'
 * hidden states against PyTorch; `smdlm eval mauve` and its bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eval/featurizer.h"
#include "compute/kernels.h"
#include "eval/mauve.h"
#include "formats/npy.h"
#include "base/rng.h"
#include "testutil.h"
#include "base/util.h"

#define MDIR FIXTURES_DIR "/mauve"
#define GDIR FIXTURES_DIR "/gpt2-tiny"
#define CDIR FIXTURES_DIR "/tiny-causal"
static char g_tmp[64];

static double *load_f64(const char *name, size_t *n) {
    float *f = tu_load_f32(tu_fixture("mauve/%s", name), n);
    double *d = sm_malloc(sizeof(double) * (*n ? *n : 1));
    for (size_t i = 0; i < *n; i++) d[i] = f[i];
    free(f);
    return d;
}

static size_t close_f64(const char *what, const double *got, const double *ref, size_t n,
                        double atol) {
    size_t bad = 0, worst = 0;
    double wd = -1.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]);
        if (!(e <= atol)) bad++;
        if (!(e <= wd)) {
            wd = e;
            worst = i;
        }
    }
    if (bad)
        print_error("%s: %zu of %zu beyond %g; worst [%zu] got %.12g ref %.12g\n", what, bad, n,
                    atol, worst, got[worst], ref[worst]);
    return bad;
}

/* ---- divergence curve, area, frontier integral ---------------------------------------------- */

static void test_curve(void **state) {
    (void)state;
    size_t np_, nq, nc, nm, nf;
    double *P = load_f64("curve_p.npy", &np_), *Q = load_f64("curve_q.npy", &nq);
    double *C = load_f64("curve_points.npy", &nc), *M = load_f64("curve_mauve.npy", &nm);
    double *F = load_f64("curve_fi.npy", &nf);
    const int pairs = (int)nm, k = (int)(np_ / nm), len = 27;
    assert_int_equal(nc, (size_t)pairs * len * 2);
    double curve[27 * 2];
    size_t bad = 0;
    for (int i = 0; i < pairs; i++) {
        char what[64];
        mauve_divergence_curve(P + (size_t)i * k, Q + (size_t)i * k, k, 25, 5.0, curve);
        snprintf(what, sizeof what, "curve of pair %d", i);
        bad += close_f64(what, curve, C + (size_t)i * len * 2, len * 2, 1e-6);
        double a = mauve_area(curve, len);
        snprintf(what, sizeof what, "MAUVE of pair %d", i);
        bad += close_f64(what, &a, &M[i], 1, 1e-6);
        double fi = mauve_frontier_integral(P + (size_t)i * k, Q + (size_t)i * k, k);
        snprintf(what, sizeof what, "frontier integral of pair %d", i);
        bad += close_f64(what, &fi, &F[i], 1, 1e-6);
    }
    assert_int_equal(bad, 0);
    /* exact ties (p = q: every middle point is (1, 1)) are ordered along the monotone
     * frontier: the area is 1, not ½ */
    const double tied[] = {1, 0, 1, 1, 1, 1, 0, 1};
    assert_true(mauve_area(tied, 4) == 1.0);
    /* symmetry of the area in p and q: swapping swaps the coordinates */
    mauve_divergence_curve(P, Q, k, 25, 5.0, curve);
    double a = mauve_area(curve, len);
    mauve_divergence_curve(Q, P, k, 25, 5.0, curve);
    assert_true(fabs(mauve_area(curve, len) - a) < 1e-12);
    free(P);
    free(Q);
    free(C);
    free(M);
    free(F);
}

static void test_auto_clusters(void **state) {
    (void)state;
    /* max(2, round(min/10)), Python's round: halves to even */
    assert_int_equal(mauve_auto_clusters(5000, 5000), 500);
    assert_int_equal(mauve_auto_clusters(5000, 25), 2);   /* round(2.5) = 2 */
    assert_int_equal(mauve_auto_clusters(35, 9000), 4);   /* round(3.5) = 4 */
    assert_int_equal(mauve_auto_clusters(44, 46), 4);
    assert_int_equal(mauve_auto_clusters(5, 5), 2);
    assert_int_equal(mauve_auto_clusters(1234, 1236), 123);
}

/* ---- PCA ------------------------------------------------------------------------------------ */

static void test_pca(void **state) {
    (void)state;
    size_t nr, np_;
    npy_array a;
    assert_int_equal(npy_read(tu_fixture("mauve/pca_x.npy"), &a), 0);
    const int n = (int)a.shape[0], d = (int)a.shape[1];
    double *ratio_ref = load_f64("pca_ratio.npy", &nr);
    float *proj_ref = tu_load_f32(tu_fixture("mauve/pca_proj.npy"), &np_);
    assert_int_equal(nr, (size_t)d);
    double *ratio = sm_malloc(sizeof(double) * (size_t)d);
    float *proj = NULL;
    int k = 0;
    assert_int_equal(mauve_pca(a.data, n, d, 0.9, ratio, &k, &proj), 0);
    assert_int_equal((size_t)k * n, np_);
    assert_int_equal(close_f64("explained-variance ratios", ratio, ratio_ref, (size_t)d, 1e-6), 0);
    /* each component's sign is free: align with the reference's column */
    for (int c = 0; c < k; c++) {
        double dot = 0.0;
        for (int i = 0; i < n; i++) dot += (double)proj[(size_t)i * k + c] * proj_ref[(size_t)i * k + c];
        if (dot < 0)
            for (int i = 0; i < n; i++) proj[(size_t)i * k + c] = -proj[(size_t)i * k + c];
    }
    assert_int_equal(tu_compare_f32("PCA projection", proj, proj_ref, np_, 1e-5f, 1e-4f), 0);
    free(proj);
    /* more variance kept → more components; everything kept at 1 − tiny */
    int k2 = 0;
    assert_int_equal(mauve_pca(a.data, n, d, 0.99, NULL, &k2, &proj), 0);
    assert_true(k2 > k);
    free(proj);
    /* constant data: no variance, one component of zeros */
    float cst[6] = {1, 2, 1, 2, 1, 2};
    assert_int_equal(mauve_pca(cst, 3, 2, 0.9, NULL, &k2, &proj), 0);
    assert_int_equal(k2, 1);
    assert_true(proj[0] == 0.0f && proj[2] == 0.0f);
    free(proj);
    free(ratio);
    free(ratio_ref);
    free(proj_ref);
    npy_free(&a);
}

/* ---- k-means -------------------------------------------------------------------------------- */

static void test_kmeans(void **state) {
    (void)state;
    npy_array a;
    assert_int_equal(npy_read(tu_fixture("mauve/kmeans_x.npy"), &a), 0);
    const int n = (int)a.shape[0], d = (int)a.shape[1], k = 8;
    size_t no;
    double *ref = load_f64("kmeans_obj.npy", &no);
    float *cent = sm_malloc(sizeof(float) * k * d);
    int32_t *lab = sm_malloc(sizeof(int32_t) * n);
    double obj;
    int iters;
    assert_int_equal(mauve_kmeans(a.data, n, d, k, 500, 5, 256, 27, cent, lab, &obj, &iters), 0);
    print_message("k-means objective %.6f in %d iterations (reference procedure's median "
                  "%.6f, best seen %.6f)\n", obj, iters, ref[0], ref[1]);
    assert_true(obj <= ref[0] * (1.0 + 1e-6));
    assert_true(obj >= ref[1] * (1.0 - 1e-5)); /* nothing beats the optimum */
    /* the objective is what the labels and centroids say */
    double chk = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double e = (double)((float *)a.data)[i * d + j] - cent[lab[i] * d + j];
            chk += e * e;
        }
    assert_true(fabs(chk - obj) <= 1e-4 * obj);
    /* every label is a nearest centroid (up to float rounding of the distances) */
    for (int i = 0; i < n; i++) {
        double best = INFINITY, own = 0.0;
        for (int c = 0; c < k; c++) {
            double s = 0.0;
            for (int j = 0; j < d; j++) {
                double e = (double)((float *)a.data)[i * d + j] - cent[c * d + j];
                s += e * e;
            }
            if (s < best) best = s;
            if (c == lab[i]) own = s;
        }
        if (own > best * (1.0 + 1e-5) + 1e-5)
            fail_msg("point %d: its centroid at %g, the nearest at %g", i, own, best);
    }
    /* over seeds, at least as good as the reference procedure's median about half the time (a
     * deterministic count, expected 10 ± 2) */
    int good = 0;
    for (uint64_t s = 100; s < 120; s++) {
        double o;
        assert_int_equal(mauve_kmeans(a.data, n, d, k, 500, 5, 256, s, cent, lab, &o, NULL), 0);
        good += o <= ref[0] * (1.0 + 1e-6);
    }
    print_message("%d of 20 seeds reach the reference median\n", good);
    assert_true(good >= 8);
    /* subsampled training (faiss's max points per centroid) still labels every point */
    double obj_sub;
    assert_int_equal(mauve_kmeans(a.data, n, d, k, 500, 5, 20, 27, cent, lab, &obj_sub, NULL), 0);
    for (int i = 0; i < n; i++) assert_true(lab[i] >= 0 && lab[i] < k);
    assert_true(obj_sub < 1.5 * ref[0]);
    /* as many clusters as points: no distance left; fewer points: an error */
    assert_int_equal(mauve_kmeans(a.data, k, d, k, 10, 1, 256, 1, cent, lab, &obj, NULL), 0);
    double sq = 0.0; /* distances come from |x|² + |c|² − 2x·c in float: relative to |x|² */
    for (int i = 0; i < k * d; i++) sq += (double)((float *)a.data)[i] * ((float *)a.data)[i];
    assert_true(obj <= 1e-5 * sq);
    const char *w[] = {"clusters", NULL};
    tu_expect_error(mauve_kmeans(a.data, k - 1, d, k, 10, 1, 256, 1, cent, lab, &obj, NULL),
                    "k-means with fewer points than clusters", w);
    free(cent);
    free(lab);
    free(ref);
    npy_free(&a);
}

/* ---- end to end on Gaussian mixtures -------------------------------------------------------- */

static double gauss(sm_rng *r) {
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

/* n points of a mixture of m components in d dimensions; centres drawn from `cseed`,
 * shifted by `shift` in every coordinate; points from `seed`. */
static float *mixture(int n, int d, int m, uint64_t cseed, double shift, uint64_t seed) {
    sm_rng rc, rp;
    rng_seed(&rc, cseed);
    rng_seed(&rp, seed);
    double *centres = sm_malloc(sizeof(double) * (size_t)m * d);
    for (int i = 0; i < m * d; i++) centres[i] = 3.0 * gauss(&rc) + shift;
    float *x = sm_malloc(sizeof(float) * (size_t)n * d);
    for (int i = 0; i < n; i++) {
        int c = (int)(rng_uniform(&rp) * m);
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] = (float)(centres[c * d + j] + gauss(&rp));
    }
    free(centres);
    return x;
}

static void test_end_to_end(void **state) {
    (void)state;
    const int n = 600, d = 32;
    float *p = mixture(n, d, 6, 1, 0.0, 10), *q = mixture(n, d, 6, 1, 0.0, 11);
    float *far = mixture(n, d, 6, 2, 12.0, 12);
    mauve_params prm;
    mauve_params_default(&prm);
    mauve_result same, again, other, dis;
    assert_int_equal(mauve_compute(p, n, q, n, d, &prm, &same), 0);
    print_message("same distribution: MAUVE %.4f (k %d, PCA %d dims)\n", same.mauve,
                  same.num_clusters, same.pca_dims);
    assert_int_equal(same.num_clusters, 60);
    assert_int_equal(same.n_p, n);
    assert_int_equal(same.curve_len, 27);
    assert_true(same.mauve > 0.9);
    /* bit-identical for a seed */
    assert_int_equal(mauve_compute(p, n, q, n, d, &prm, &again), 0);
    assert_memory_equal(&same.mauve, &again.mauve, sizeof(double));
    assert_memory_equal(same.p_hist, again.p_hist, sizeof(double) * 60);
    assert_memory_equal(same.curve, again.curve, sizeof(double) * 2 * 27);
    /* another seed: another clustering, a close score */
    prm.seed = 7;
    assert_int_equal(mauve_compute(p, n, q, n, d, &prm, &other), 0);
    print_message("seed 7: MAUVE %.4f\n", other.mauve);
    assert_true(fabs(other.mauve - same.mauve) < 0.05);
    prm.seed = 25;
    assert_int_equal(mauve_compute(p, n, far, n, d, &prm, &dis), 0);
    print_message("disjoint: MAUVE %.4f\n", dis.mauve);
    assert_true(dis.mauve < 0.1);
    assert_true(dis.frontier_integral > same.frontier_integral);
    mauve_result_free(&same);
    mauve_result_free(&again);
    mauve_result_free(&other);
    mauve_result_free(&dis);
    /* histograms are distributions; a fixed cluster count is obeyed */
    prm.num_clusters = 7;
    assert_int_equal(mauve_compute(p, 50, q, 70, d, &prm, &same), 0);
    double sp = 0, sq = 0;
    for (int j = 0; j < 7; j++) {
        sp += same.p_hist[j];
        sq += same.q_hist[j];
    }
    assert_true(fabs(sp - 1) < 1e-12 && fabs(sq - 1) < 1e-12);
    assert_int_equal(same.n_q, 70);
    mauve_result_free(&same);
    free(p);
    free(q);
    free(far);
}

static void test_bad_input(void **state) {
    (void)state;
    mauve_params prm;
    mauve_params_default(&prm);
    mauve_result r;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const char *w_empty[] = {"non-empty", NULL};
    tu_expect_error(mauve_compute(x, 0, x, 2, 4, &prm, &r), "empty reference", w_empty);
    x[5] = NAN;
    const char *w_nan[] = {"sample features", "non-finite", "row 1", "column 1", NULL};
    tu_expect_error(mauve_compute(x, 1, x, 2, 4, &prm, &r), "NaN feature", w_nan);
    x[5] = 6;
    const char *w_dim[] = {"dimension 20000", NULL};
    tu_expect_error(mauve_compute(x, 1, x, 1, 20000, &prm, &r), "huge dimension", w_dim);
    prm.num_clusters = 5;
    const char *w_k[] = {"5 clusters", "4 feature vectors", NULL};
    tu_expect_error(mauve_compute(x, 2, x, 2, 2, &prm, &r), "too many clusters", w_k);
}

/* ---- featurizers against PyTorch ------------------------------------------------------------ */

/* The texts of the fixture, one per line (the generator writes simple JSON lines). */
static int fixture_texts(char texts[][256], int max) {
    int n = 0;
    FILE *f = fopen(MDIR "/texts.jsonl", "r");
    assert_non_null(f);
    char line[1024];
    while (n < max && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        snprintf(texts[n++], 256, "%s", cJSON_GetObjectItem(o, "text")->valuestring);
        cJSON_Delete(o);
    }
    fclose(f);
    return n;
}

static void check_featurizer(const char *dir, const char *ref_name) {
    char texts[8][256];
    int nt = fixture_texts(texts, 8);
    size_t nref;
    float *ref = tu_load_f32(tu_fixture("mauve/%s", ref_name), &nref);
    featurizer fz;
    if (featurizer_load(&fz, dir, 24, 2)) fail_msg("%s", smdlm_last_error());
    assert_int_equal(nref, (size_t)nt * fz.dim);
    float *got = sm_malloc(sizeof(float) * nref);
    for (int i = 0; i < nt; i++)
        assert_int_equal(featurize_text(&fz, texts[i], strlen(texts[i]), got + (size_t)i * fz.dim), 0);
    assert_int_equal(tu_compare_f32(ref_name, got, ref, nref, 1e-4f, 1e-4f), 0);
    /* an empty text has no tokens: reported, nothing written */
    assert_int_equal(featurize_text(&fz, "", 0, got), 1);
    featurizer_free(&fz);
    free(got);
    free(ref);
}

static void test_featurizers(void **state) {
    (void)state;
    check_featurizer(GDIR, "gpt2_features.npy");
    check_featurizer(CDIR, "dit_features.npy");
    featurizer fz;
    const char *w[] = {"must be causal", NULL};
    tu_expect_error(featurizer_load(&fz, FIXTURES_DIR "/tiny", 24, 1), "masked diffusion model", w);
}

/* ---- the command ---------------------------------------------------------------------------- */

static cJSON *read_json(const char *path) {
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(path, 1 << 24, &text, &len), 0);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) fail_msg("missing number %s", k);
    return v->valuedouble;
}

static void save_npy(const char *name, const float *x, int n, int d) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    int64_t shape[2] = {n, d};
    assert_int_equal(npy_write(path, NPY_F4, 2, shape, x), 0);
}

static void test_cli_features(void **state) {
    (void)state;
    const int n = 300, d = 16;
    float *p = mixture(n, d, 4, 3, 0.0, 20), *q = mixture(n, d, 4, 3, 0.0, 21);
    save_npy("p.npy", p, n, d);
    save_npy("q.npy", q, n, d);
    char *out = NULL, path[128];
    int rc = tu_run(&out, "eval mauve --ref-features %s/p.npy --samples-features %s/q.npy -q "
                    "-o %s/r.json --curve %s/c.json -t 2", g_tmp, g_tmp, g_tmp, g_tmp);
    if (rc) fail_msg("exit %d: %s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/r.json", g_tmp);
    cJSON *r = read_json(path);
    /* the library on the same features gives the same numbers */
    mauve_params prm;
    mauve_params_default(&prm);
    mauve_result lib;
    assert_int_equal(mauve_compute(p, n, q, n, d, &prm, &lib), 0);
    if (jnum(r, "mauve") != lib.mauve)
        fail_msg("command: MAUVE %.17g, library %.17g", jnum(r, "mauve"), lib.mauve);
    assert_true(lib.mauve > 0.9);
    assert_int_equal((int)jnum(r, "num_clusters"), 30);
    assert_int_equal((int)jnum(r, "pca_dims"), lib.pca_dims);
    assert_int_equal((int)jnum(r, "n_p"), n);
    assert_int_equal((int)jnum(r, "n_q"), n);
    snprintf(path, sizeof path, "%s/c.json", g_tmp);
    cJSON *c = read_json(path);
    const cJSON *curve = cJSON_GetObjectItem(c, "divergence_curve");
    assert_int_equal(cJSON_GetArraySize(curve), 27);
    assert_true(cJSON_GetArrayItem(cJSON_GetArrayItem(curve, 5), 1)->valuedouble == lib.curve[11]);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "p_hist")), 30);
    cJSON_Delete(c);
    cJSON_Delete(r);
    mauve_result_free(&lib);
    /* stdout, another seed and a fixed number of clusters */
    rc = tu_run(&out, "eval mauve --ref-features %s/p.npy --samples-features %s/q.npy -q "
                "--seed 3 --clusters 12 2>/dev/null", g_tmp, g_tmp);
    assert_int_equal(rc, 0);
    r = cJSON_Parse(out);
    assert_non_null(r);
    assert_int_equal((int)jnum(r, "num_clusters"), 12);
    assert_true(jnum(r, "mauve") > 0.9);
    cJSON_Delete(r);
    free(out);
    free(p);
    free(q);
}

static void test_cli_texts(void **state) {
    (void)state;
    /* the fixture's texts as the reference, with a malformed line, a line without the
     * field and an empty text in between; the samples are the texts themselves */
    char texts[8][256], path[128];
    int nt = fixture_texts(texts, 8);
    snprintf(path, sizeof path, "%s/ref.jsonl", g_tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"text\": \"%s\"}\n{\"text\": oops}\n{\"text\": \"\"}\n\n", texts[0]);
    for (int i = 1; i < nt; i++) fprintf(f, "{\"text\": \"%s\"}\n", texts[i]);
    fprintf(f, "{\"other\": \"x\"}\n");
    fclose(f);
    char *out = NULL;
    int rc = tu_run(&out, "eval mauve -m %s --ref %s/ref.jsonl --samples %s/texts.jsonl "
                    "--max-len 24 --clusters 2 --save-ref-features %s/rf.npy "
                    "--save-samples-features %s/sf.npy -o %s/r.json -t 2",
                    GDIR, g_tmp, MDIR, g_tmp, g_tmp, g_tmp);
    if (rc) fail_msg("exit %d: %s", rc, out);
    /* malformed lines are reported with their line numbers */
    assert_non_null(strstr(out, "ref.jsonl:2"));
    assert_non_null(strstr(out, "ref.jsonl:3: empty text"));
    assert_non_null(strstr(out, "missing string field"));
    free(out);
    snprintf(path, sizeof path, "%s/r.json", g_tmp);
    cJSON *r = read_json(path);
    assert_int_equal((int)jnum(r, "n_p"), nt);
    assert_int_equal((int)jnum(r, "n_q"), nt);
    assert_int_equal((int)jnum(r, "p_malformed"), 2);
    assert_int_equal((int)jnum(r, "p_empty"), 1);
    assert_int_equal((int)jnum(r, "q_malformed"), 0);
    assert_int_equal((int)jnum(r, "feature_dim"), 32);
    /* one set against itself: identical histograms */
    assert_true(fabs(jnum(r, "mauve") - 1.0) < 1e-9);
    cJSON_Delete(r);
    size_t nref, ngot;
    float *ref = tu_load_f32(tu_fixture("mauve/gpt2_features.npy"), &nref);
    snprintf(path, sizeof path, "%s/rf.npy", g_tmp);
    float *got = tu_load_f32(path, &ngot);
    assert_int_equal(ngot, nref);
    assert_int_equal(tu_compare_f32("saved reference features", got, ref, nref, 1e-4f, 1e-4f), 0);
    free(got);
    free(ref);
}

static void test_cli_bad_input(void **state) {
    (void)state;
    float x[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    save_npy("d4.npy", x, 3, 4);
    save_npy("d3.npy", x, 4, 3);
    save_npy("empty.npy", x, 0, 4);
    x[6] = NAN;
    save_npy("nan.npy", x, 3, 4);
    char path[128];
    snprintf(path, sizeof path, "%s/ids.npy", g_tmp);
    int32_t ids[4] = {1, 2, 3, 4};
    int64_t shape[2] = {2, 2};
    assert_int_equal(npy_write(path, NPY_I4, 2, shape, ids), 0);
    snprintf(path, sizeof path, "%s/one.npy", g_tmp);
    assert_int_equal(npy_write(path, NPY_F4, 1, shape, x), 0);
    static const char *files[][2] = {
        {"bad.jsonl", "{\"text\": \"the cat\"\n[1, 2]\n{\"text\": 5}\n\n"},
        {"ok.jsonl", "{\"text\": \"the cat sat\"}\n{\"text\": \"on the mat\"}\n"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", g_tmp, files[i][0]);
        FILE *f = fopen(path, "w");
        fputs(files[i][1], f);
        fclose(f);
    }
    char args[14][320];
    const char *word[14];
    int n = 0;
#define CASE(w, ...) (snprintf(args[n], sizeof args[n], __VA_ARGS__), word[n++] = (w))
#define FEAT(a, b) "eval mauve -q --ref-features %s/" a " --samples-features %s/" b, g_tmp, g_tmp
    CASE("dimension 4, sample features 3", FEAT("d4.npy", "d3.npy"));
    CASE("empty feature set", FEAT("empty.npy", "d4.npy"));
    CASE("non-finite value nan at row 1, column 2", FEAT("d4.npy", "nan.npy"));
    CASE("float32 [n, d]", FEAT("ids.npy", "d4.npy"));
    CASE("float32 [n, d]", FEAT("d4.npy", "one.npy"));
    CASE("absent.npy", FEAT("absent.npy", "d4.npy"));
    CASE("7 clusters for 6 feature vectors", "eval mauve -q --ref-features %s/d4.npy "
         "--samples-features %s/d4.npy --clusters 7", g_tmp, g_tmp);
    CASE("exactly one of --ref", "eval mauve --samples-features %s/d4.npy", g_tmp);
    CASE("exactly one of --samples", "eval mauve --ref-features %s/d4.npy --samples %s/ok.jsonl "
         "--samples-features %s/d4.npy", g_tmp, g_tmp, g_tmp);
    CASE("need a featurizer", "eval mauve --ref-features %s/d4.npy --samples %s/ok.jsonl", g_tmp, g_tmp);
    CASE("holds no usable text", "eval mauve -q -m " GDIR " --ref %s/bad.jsonl --samples %s/ok.jsonl",
         g_tmp, g_tmp);
    CASE("dimension 4, sample features 32", "eval mauve -q -m " GDIR " --ref-features %s/d4.npy "
         "--samples %s/ok.jsonl", g_tmp, g_tmp);
    CASE("must be causal", "eval mauve -m " FIXTURES_DIR "/tiny --ref %s/ok.jsonl --samples %s/ok.jsonl",
         g_tmp, g_tmp);
    CASE("cannot open", "eval mauve -m " GDIR " --ref %s/absent.jsonl --samples %s/ok.jsonl", g_tmp, g_tmp);
#undef FEAT
#undef CASE
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, n);
}

static int setup(void **state) { return tu_tmpdir_make(g_tmp, sizeof g_tmp, "mauve"); }

static int teardown(void **state) { return tu_tmpdir_remove(g_tmp); }

int main(void) {
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curve),      cmocka_unit_test(test_auto_clusters),
        cmocka_unit_test(test_pca),        cmocka_unit_test(test_kmeans),
        cmocka_unit_test(test_end_to_end), cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_featurizers), cmocka_unit_test(test_cli_features),
        cmocka_unit_test(test_cli_texts),  cmocka_unit_test(test_cli_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
