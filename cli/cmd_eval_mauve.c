/* cmd_eval_mauve.c — `smdlm eval mauve`: MAUVE between reference texts and samples
 * (krishnap25/mauve compute_mauve defaults), from JSON lines through a featurizer model or
 * from precomputed features (.npy float32 [n, d]). One JSON object on stdout (or -o). */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "eval/featurizer.h"
#include "compute/kernels.h"
#include "eval/mauve.h"
#include "formats/npy.h"
#include "base/util.h"

/* One side (reference or samples): its features, from a .npy or featurized texts. */
typedef struct {
    const char *name, *texts, *npy, *save;
    float *x;
    int n, d;
    jsonl_stats st;
} mauve_side;

static int read_features(mauve_side *s) {
    npy_array a;
    if (npy_read(s->npy, &a)) return -1;
    int rc = 0;
    if (a.dtype != NPY_F4 || a.ndim != 2)
        rc = SM_ERR("%s: features must be float32 [n, d] (got %s with %d dimensions)", s->npy,
                    a.dtype == NPY_F4 ? "float32" : "integers", a.ndim);
    else if (a.shape[0] < 1 || a.shape[1] < 1)
        rc = SM_ERR("%s: empty feature set [%lld, %lld]", s->npy, (long long)a.shape[0],
                    (long long)a.shape[1]);
    else if (a.shape[0] > 100000000 || a.shape[1] > MAUVE_MAX_DIM)
        rc = SM_ERR("%s: [%lld, %lld] features are more than MAUVE takes", s->npy,
                    (long long)a.shape[0], (long long)a.shape[1]);
    else if (mauve_check_finite(a.data, (size_t)a.shape[0], (int)a.shape[1], s->npy))
        rc = -1;
    if (rc) {
        npy_free(&a);
        return -1;
    }
    s->x = a.data;
    s->n = (int)a.shape[0];
    s->d = (int)a.shape[1];
    return 0;
}

static int featurize_side(featurizer *fz, mauve_side *s, const char *field, int quiet) {
    progress prog;
    progress_start(&prog, "smdlm eval mauve", quiet);
    progress_note(&prog, "smdlm eval mauve: featurizing %s texts of %s\n", s->name, s->texts);
    if (featurize_jsonl(fz, s->texts, field, stderr, &prog, &s->x, &s->n, &s->st)) return -1;
    s->d = fz->dim;
    if (s->st.malformed || s->st.empty)
        fprintf(stderr, "smdlm eval mauve: %s: %ld malformed line(s) and %ld empty text(s) skipped\n",
                s->texts, s->st.malformed, s->st.empty);
    if (s->n == 0) return SM_ERR("'%s' holds no usable text", s->texts);
    if (s->save) {
        int64_t shape[2] = {s->n, s->d};
        if (npy_write(s->save, NPY_F4, 2, shape, s->x)) return -1;
    }
    return 0;
}

/* A number printed with 17 significant digits, so that it reads back as the same double
 * (cJSON's own printing settles for 15 digits within a relative DBL_EPSILON). */
static cJSON *num(double v) {
    char buf[40];
    if (isfinite(v)) snprintf(buf, sizeof buf, "%.17g", v);
    else snprintf(buf, sizeof buf, "null");
    return cJSON_CreateRaw(buf);
}

static void add_num(cJSON *o, const char *key, double v) { cJSON_AddItemToObject(o, key, num(v)); }

static cJSON *num_array(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, num(v[i]));
    return a;
}

/* {"mauve":..., ...} with the divergence curve and histograms when `full` */
static cJSON *result_json(const mauve_result *r, const mauve_side *p, const mauve_side *q,
                          int full) {
    cJSON *o = cJSON_CreateObject();
    add_num(o, "mauve", r->mauve);
    add_num(o, "mauve_star", r->mauve_star);
    add_num(o, "frontier_integral", r->frontier_integral);
    add_num(o, "frontier_integral_star", r->frontier_integral_star);
    add_num(o, "num_clusters", r->num_clusters);
    add_num(o, "pca_dims", r->pca_dims);
    add_num(o, "pca_explained_var", r->pca_var_kept);
    add_num(o, "feature_dim", r->dim);
    add_num(o, "n_p", r->n_p);
    add_num(o, "n_q", r->n_q);
    add_num(o, "kmeans_objective", r->kmeans_objective);
    add_num(o, "kmeans_iters", r->kmeans_iters);
    const mauve_side *sides[2] = {p, q};
    const char *skip_keys[2][2] = {{"p_malformed", "p_empty"}, {"q_malformed", "q_empty"}};
    for (int i = 0; i < 2; i++)
        if (sides[i]->texts) {
            add_num(o, skip_keys[i][0], (double)sides[i]->st.malformed);
            add_num(o, skip_keys[i][1], (double)sides[i]->st.empty);
        }
    add_num(o, "seconds_pca", r->seconds_pca);
    add_num(o, "seconds_kmeans", r->seconds_kmeans);
    if (full) {
        cJSON *c = cJSON_AddArrayToObject(o, "divergence_curve");
        for (int i = 0; i < r->curve_len; i++) {
            double xy[2] = {r->curve[2 * i], r->curve[2 * i + 1]};
            cJSON_AddItemToArray(c, num_array(xy, 2));
        }
        cJSON_AddItemToObject(o, "p_hist", num_array(r->p_hist, r->num_clusters));
        cJSON_AddItemToObject(o, "q_hist", num_array(r->q_hist, r->num_clusters));
    }
    return o;
}

static int write_json(const char *path, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (!s) return SM_ERR("out of memory printing JSON");
    int rc = 0;
    if (path) {
        size_t n = strlen(s);
        s[n] = '\n'; /* replaces the terminator; the length is passed */
        rc = sm_write_file_atomic(path, s, n + 1);
    } else {
        printf("%s\n", s);
    }
    free(s);
    return rc;
}

int cmd_eval_mauve(int argc, char **argv) {
    mauve_params prm;
    mauve_params_default(&prm);
    const char *model = NULL, *field = "text", *out = NULL, *curve = NULL;
    mauve_side p = {.name = "reference"}, q = {.name = "sample"};
    int max_len = 1024, threads = default_threads(), quiet = 0;
    float evar = (float)prm.explained_var, scaling = (float)prm.scaling;
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "featurizer: a GPT-2 directory (the reference uses gpt2-large) or a causal DiT"},
        {"ref", 'r', OPT_STR, &p.texts, 0, 0, "FILE", "reference texts (JSON lines, human text: P)"},
        {"samples", 's', OPT_STR, &q.texts, 0, 0, "FILE", "sample texts (JSON lines: Q)"},
        {"ref-features", 0, OPT_STR, &p.npy, 0, 0, "NPY", "reference features instead of texts (float32 [n, d])"},
        {"samples-features", 0, OPT_STR, &q.npy, 0, 0, "NPY", "sample features instead of texts"},
        {"save-ref-features", 0, OPT_STR, &p.save, 0, 0, "NPY", "write the reference texts' features"},
        {"save-samples-features", 0, OPT_STR, &q.save, 0, 0, "NPY", "write the samples' features"},
        {"text-field", 0, OPT_STR, &field, 0, 0, "NAME", "field holding the text (default text)"},
        {"max-len", 0, OPT_INT, &max_len, 1, 1 << 20, "N", "tokens kept per text (default 1024, capped at the model's context)"},
        {"clusters", 'k', OPT_INT, &prm.num_clusters, 0, 1 << 24, "N", "k-means clusters (default 0: max(2, round(min(n_p, n_q)/10)))"},
        {"explained-var", 0, OPT_FLOAT, &evar, 1e-6, 0.999999, "X", "PCA variance kept (default 0.9)"},
        {"kmeans-redo", 0, OPT_INT, &prm.kmeans_redo, 1, 1000, "N", "k-means restarts, best objective kept (default 5)"},
        {"kmeans-iter", 0, OPT_INT, &prm.kmeans_max_iter, 1, 100000, "N", "k-means iterations at most (default 500)"},
        {"curve-points", 0, OPT_INT, &prm.curve_points, 2, 100000, "N", "divergence-curve mixture weights (default 25)"},
        {"scaling", 0, OPT_FLOAT, &scaling, 1e-6, 1e6, "C", "MAUVE scaling factor c (default 5)"},
        {"seed", 0, OPT_U64, &prm.seed, 0, 0, "N", "k-means seed (default 25)"},
        {"curve", 0, OPT_STR, &curve, 0, 0, "FILE", "write the result with the divergence curve and histograms (JSON)"},
        {"output", 'o', OPT_STR, &out, 0, 0, "FILE", "write the result here instead of stdout"},
        {"quiet", 'q', OPT_FLAG, &quiet, 0, 0, "", "no timings on stderr"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"eval mauve",
                       "MAUVE between reference texts (P) and samples (Q), as krishnap25/mauve.",
                       "(-m FEATURIZER --ref R.jsonl --samples S.jsonl | --ref-features R.npy "
                       "--samples-features S.npy) [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    mauve_side *sides[2] = {&p, &q};
    for (int i = 0; i < 2; i++) {
        const char *flag = i ? "--samples" : "--ref";
        if (!sides[i]->texts == !sides[i]->npy) {
            fprintf(stderr, "smdlm eval mauve: give exactly one of %s and %s-features\n", flag, flag);
            return 1;
        }
        if (sides[i]->texts && !model) {
            fprintf(stderr, "smdlm eval mauve: %s texts need a featurizer (-m DIR)\n", flag);
            return 1;
        }
        if (sides[i]->save && !sides[i]->texts) {
            fprintf(stderr, "smdlm eval mauve: --save-%s-features needs %s texts\n",
                    i ? "samples" : "ref", flag);
            return 1;
        }
    }
    prm.explained_var = evar;
    prm.scaling = scaling;
    prm.verbose = !quiet;
    kernels_set_threads(threads);
    featurizer fz = {0};
    int have_fz = 0, status = 1;
    mauve_result res = {0};
    if (model && (p.texts || q.texts)) {
        if (featurizer_load(&fz, model, max_len, threads)) goto done;
        have_fz = 1;
    }
    for (int i = 0; i < 2; i++)
        if (sides[i]->npy ? read_features(sides[i]) : featurize_side(&fz, sides[i], field, quiet))
            goto done;
    if (p.d != q.d) {
        SM_ERR("reference features have dimension %d, sample features %d", p.d, q.d);
        goto done;
    }
    if (mauve_compute(p.x, p.n, q.x, q.n, p.d, &prm, &res)) goto done;
    cJSON *o = result_json(&res, &p, &q, 0);
    rc = write_json(out, o);
    cJSON_Delete(o);
    if (!rc && curve) {
        o = result_json(&res, &p, &q, 1);
        rc = write_json(curve, o);
        cJSON_Delete(o);
    }
    if (rc) goto done;
    status = 0;
done:
    if (status) cli_fail("eval mauve");
    mauve_result_free(&res);
    free(p.x);
    free(q.x);
    if (have_fz) featurizer_free(&fz);
    return status;
}
