/* mauve.c — MAUVE: L2 normalisation, PCA (LAPACK dsyevr through gemm.h), k-means (sgemm assignments), histograms,
 * divergence curve and its area. See mauve.h for the steps and NOTES.md "MAUVE" for where
 * this differs from krishnap25/mauve (sklearn PCA + faiss k-means). */
#include "eval/mauve.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "compute/gemm.h"
#include "base/rng.h"
#include "base/util.h"

/* Rows per BLAS call: the scratch of a block stays under this many bytes. Few, large calls
 * matter on a loaded machine, where every parallel region waits for descheduled threads. */
#define MAUVE_BLOCK_BYTES ((size_t)32 << 20)

static int block_rows(int n, size_t row_bytes) {
    size_t r = MAUVE_BLOCK_BYTES / row_bytes;
    if (r < 64) r = 64;
    return r < (size_t)n ? (int)r : n;
}

void mauve_params_default(mauve_params *p) {
    memset(p, 0, sizeof *p);
    p->explained_var = 0.9;
    p->kmeans_redo = 5;
    p->kmeans_max_iter = 500;
    p->max_points_per_centroid = 256;
    p->curve_points = 25;
    p->scaling = 5.0;
    p->seed = 25;
}

int mauve_auto_clusters(int n_p, int n_q) {
    int m = n_p < n_q ? n_p : n_q;
    /* Python's round() rounds halves to even, as rint() does in the default mode. */
    int k = (int)rint((double)m / 10.0);
    return k < 2 ? 2 : k;
}

int mauve_check_finite(const float *x, size_t n, int d, const char *what) {
    for (size_t i = 0; i < n * (size_t)d; i++)
        if (!isfinite(x[i]))
            return SM_ERR("%s: non-finite value %g at row %zu, column %zu", what, (double)x[i],
                          i / (size_t)d, i % (size_t)d);
    return 0;
}

void mauve_l2_normalize(float *x, size_t n, int d) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < n; r++) {
        float *row = x + r * (size_t)d;
        double s = 0.0;
        for (int j = 0; j < d; j++) s += (double)row[j] * row[j];
        if (s == 0.0) continue; /* sklearn.preprocessing.normalize leaves zero rows alone */
        double inv = 1.0 / sqrt(s);
        for (int j = 0; j < d; j++) row[j] = (float)(row[j] * inv);
    }
}

/* ---- PCA --------------------------------------------------------------------------------- */

/* rows [r0, r0 + nb) of x, centred, into buf (double [nb, d]) */
static void centred_block(const float *x, const double *mean, size_t r0, int nb, int d,
                          double *buf) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < nb; i++) {
        const float *row = x + (r0 + (size_t)i) * (size_t)d;
        for (int j = 0; j < d; j++) buf[(size_t)i * d + j] = (double)row[j] - mean[j];
    }
}

/* Eigen-decomposition of the symmetric cov[d, d] (destroyed): eigenvalues descending into
 * w[d], eigenvectors into vecs[d, d] column-major (column j belongs to w[j]). */
static int sym_eigen_desc(double *cov, int d, double *w, double *vecs) {
    double *wa = sm_malloc(sizeof(double) * (size_t)d);
    double *za = sm_malloc(sizeof(double) * (size_t)d * d);
    int m = 0, info = eigh_f64_lower(d, cov, wa, za, &m);
    int rc = 0;
    if (info != 0 || m != d) {
        rc = SM_ERR("the eigendecomposition of the %d×%d covariance failed (LAPACK info %d)",
                    d, d, info);
    } else {
        for (int j = 0; j < d; j++) { /* dsyevr returns ascending order */
            w[j] = wa[d - 1 - j];
            memcpy(vecs + (size_t)j * d, za + (size_t)(d - 1 - j) * d, sizeof(double) * (size_t)d);
        }
    }
    free(wa);
    free(za);
    return rc;
}

int mauve_pca(const float *x, int n, int d, double explained_var, double *ratio, int *k,
              float **proj) {
    if (n < 1 || d < 1) return SM_ERR("PCA of an empty set (%d points of dimension %d)", n, d);
    if (!(explained_var > 0.0 && explained_var < 1.0))
        return SM_ERR("explained variance %g is not in (0, 1)", explained_var);
    double *mean = sm_calloc((size_t)d, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mean[j] += x[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mean[j] /= n;
    /* covariance = Σ (x − μ)ᵀ(x − μ) / (n − 1), accumulated over row blocks (dsyrk) */
    double *cov = sm_calloc((size_t)d * d, sizeof(double));
    const int blk = block_rows(n, sizeof(double) * (size_t)d);
    double *buf = sm_malloc(sizeof(double) * (size_t)blk * d);
    double scale = 1.0 / (n > 1 ? n - 1 : 1);
    for (int r0 = 0; r0 < n; r0 += blk) {
        int nb = n - r0 < blk ? n - r0 : blk;
        centred_block(x, mean, (size_t)r0, nb, d, buf);
        syrk_f64_lower(GEMM_TRANS, d, nb, scale, buf, d, 1.0, cov, d);
    }
    for (int i = 0; i < d; i++) /* mirror the lower triangle (row-major) to the upper */
        for (int j = i + 1; j < d; j++) cov[(size_t)i * d + j] = cov[(size_t)j * d + i];
    double *w = sm_malloc(sizeof(double) * (size_t)d);
    double *vecs = sm_malloc(sizeof(double) * (size_t)d * d);
    int rc = sym_eigen_desc(cov, d, w, vecs);
    free(cov);
    if (rc) goto done;
    /* Explained-variance ratios: rounding can leave tiny negative eigenvalues; they are
     * clipped to 0 as sklearn's covariance solver does. */
    double total = 0.0;
    for (int j = 0; j < d; j++) {
        if (w[j] < 0.0) w[j] = 0.0;
        total += w[j];
    }
    int kk = 1;
    if (total > 0.0) {
        double cum = 0.0;
        kk = d;
        for (int j = 0; j < d; j++) {
            cum += w[j] / total;
            if (cum >= explained_var) {
                kk = j + 1;
                break;
            }
        }
    }
    if (ratio)
        for (int j = 0; j < d; j++) ratio[j] = total > 0.0 ? w[j] / total : 0.0;
    /* components kept, as V[d, kk] row-major, signed like sklearn's svd_flip */
    float *V = sm_malloc(sizeof(float) * (size_t)d * kk);
    double *mv = sm_calloc((size_t)kk, sizeof(double)); /* mean·V */
    for (int c = 0; c < kk; c++) {
        const double *v = vecs + (size_t)c * d;
        int arg = 0;
        for (int i = 1; i < d; i++)
            if (fabs(v[i]) > fabs(v[arg])) arg = i;
        double s = v[arg] < 0.0 ? -1.0 : 1.0;
        for (int i = 0; i < d; i++) {
            V[(size_t)i * kk + c] = (float)(s * v[i]);
            mv[c] += mean[i] * (double)V[(size_t)i * kk + c];
        }
    }
    /* (x − mean)·V = x·V − mean·V: one float sgemm (the reference projects in float32) */
    float *out = sm_malloc(sizeof(float) * (size_t)n * kk);
    gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, n, kk, d, 1.0f, x, d, V, kk, 0.0f, out, kk);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int c = 0; c < kk; c++) out[(size_t)i * kk + c] = (float)(out[(size_t)i * kk + c] - mv[c]);
    free(mv);
    free(V);
    *k = kk;
    *proj = out;
done:
    free(mean);
    free(buf);
    free(w);
    free(vecs);
    return rc;
}

/* ---- k-means ----------------------------------------------------------------------------- */

/* Scratch of one k-means call. */
typedef struct {
    int n, d, k;
    int blk;         /* rows per sgemm */
    const float *x;  /* [n, d] training points */
    float *xnorm;    /* [n] |x|² */
    float *cnorm;    /* [k] |c|² */
    float *gram;     /* [blk, k] x·cᵀ */
    float *dist;     /* [n] squared distance to the assigned centroid */
    double *sums;    /* [k, d] */
    int64_t *counts; /* [k] */
} km_work;

/* Labels every point with its nearest centroid (lowest index on ties); distances from
 * |x|² − 2x·c + |c|², x·c by sgemm. Returns the number of labels that changed. */
static long km_assign(km_work *w, const float *x, int n, const float *xnorm, const float *c,
                      int32_t *labels, float *dist) {
    const int d = w->d, k = w->k;
    for (int j = 0; j < k; j++) {
        double s = 0.0;
        for (int i = 0; i < d; i++) s += (double)c[(size_t)j * d + i] * c[(size_t)j * d + i];
        w->cnorm[j] = (float)s;
    }
    long changed = 0;
    for (int r0 = 0; r0 < n; r0 += w->blk) {
        int nb = n - r0 < w->blk ? n - r0 : w->blk;
        gemm_f32(GEMM_NOTRANS, GEMM_TRANS, nb, k, d, 1.0f, x + (size_t)r0 * d, d, c, d, 0.0f,
                 w->gram, k);
#pragma omp parallel for schedule(static) reduction(+ : changed)
        for (int i = 0; i < nb; i++) {
            const float *g = w->gram + (size_t)i * k;
            int best = 0;
            float bd = w->cnorm[0] - 2.0f * g[0];
            for (int j = 1; j < k; j++) {
                float dj = w->cnorm[j] - 2.0f * g[j];
                if (dj < bd) {
                    bd = dj;
                    best = j;
                }
            }
            float dd = xnorm[r0 + i] + bd;
            dist[r0 + i] = dd > 0.0f ? dd : 0.0f;
            changed += labels[r0 + i] != best;
            labels[r0 + i] = best;
        }
    }
    return changed;
}

/* Centroids as the means of their points; an empty cluster takes half of a cluster chosen
 * with probability ∝ (size − 1), both copies pushed apart by ±1/1024 per coordinate
 * (faiss Clustering's split_clusters). Returns the number of splits. */
static int km_update(km_work *w, const int32_t *labels, float *c, sm_rng *rng) {
    const int n = w->n, d = w->d, k = w->k;
    memset(w->sums, 0, sizeof(double) * (size_t)k * d);
    memset(w->counts, 0, sizeof(int64_t) * (size_t)k);
    for (int i = 0; i < n; i++) {
        double *s = w->sums + (size_t)labels[i] * d;
        const float *xi = w->x + (size_t)i * d;
        for (int j = 0; j < d; j++) s[j] += xi[j];
        w->counts[labels[i]]++;
    }
    for (int j = 0; j < k; j++) {
        if (!w->counts[j]) continue;
        double inv = 1.0 / (double)w->counts[j];
        for (int i = 0; i < d; i++) c[(size_t)j * d + i] = (float)(w->sums[(size_t)j * d + i] * inv);
    }
    const float eps = 1.0f / 1024.0f;
    int splits = 0;
    for (int ci = 0; ci < k; ci++) {
        if (w->counts[ci]) continue;
        int cj = 0; /* n > k, so some cluster holds ≥ 2 points and the walk ends */
        for (;; cj = (cj + 1) % k)
            if (rng_uniform(rng) < (double)(w->counts[cj] - 1) / (double)(n - k)) break;
        float *a = c + (size_t)ci * d, *b = c + (size_t)cj * d;
        memcpy(a, b, sizeof(float) * (size_t)d);
        for (int i = 0; i < d; i++) {
            a[i] *= i % 2 == 0 ? 1.0f + eps : 1.0f - eps;
            b[i] *= i % 2 == 0 ? 1.0f - eps : 1.0f + eps;
        }
        w->counts[ci] = w->counts[cj] / 2;
        w->counts[cj] -= w->counts[ci];
        splits++;
    }
    return splits;
}

/* k distinct indices of [0, n) into idx (partial Fisher–Yates over perm[n]). */
static void sample_distinct(sm_rng *rng, int n, int k, int32_t *perm, int32_t *idx) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)(rng_uniform(rng) * (double)(n - i));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        idx[i] = perm[i];
    }
}

static void row_norms(const float *x, int n, int d, float *out) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++) s += (double)x[(size_t)i * d + j] * x[(size_t)i * d + j];
        out[i] = (float)s;
    }
}

static double sum_dist(const float *dist, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += dist[i];
    return s;
}

int mauve_kmeans(const float *x, int n, int d, int k, int max_iter, int nredo, int max_ppc,
                 uint64_t seed, float *centroids, int32_t *labels, double *objective,
                 int *iters) {
    if (k < 1 || d < 1 || n < k)
        return SM_ERR("k-means of %d points into %d clusters: need at least as many points "
                      "as clusters", n, k);
    if (max_iter < 1 || nredo < 1)
        return SM_ERR("k-means needs ≥ 1 iteration and ≥ 1 restart (got %d, %d)", max_iter, nredo);
    sm_rng rng;
    rng_seed(&rng, seed);
    int32_t *perm = sm_malloc(sizeof(int32_t) * (size_t)n);
    /* The training set: every point, or a sample of k·max_ppc as faiss takes. */
    int nt = n;
    float *sub = NULL;
    if (max_ppc > 0 && (int64_t)n > (int64_t)k * max_ppc) {
        nt = k * max_ppc;
        int32_t *pick = sm_malloc(sizeof(int32_t) * (size_t)nt);
        sample_distinct(&rng, n, nt, perm, pick);
        sub = sm_malloc(sizeof(float) * (size_t)nt * d);
        for (int i = 0; i < nt; i++)
            memcpy(sub + (size_t)i * d, x + (size_t)pick[i] * d, sizeof(float) * (size_t)d);
        free(pick);
    }
    km_work w = {.n = nt, .d = d, .k = k, .x = sub ? sub : x};
    w.xnorm = sm_malloc(sizeof(float) * (size_t)(n > nt ? n : nt));
    w.cnorm = sm_malloc(sizeof(float) * (size_t)k);
    w.blk = block_rows(n, sizeof(float) * (size_t)k);
    w.gram = sm_malloc(sizeof(float) * (size_t)w.blk * k);
    w.dist = sm_malloc(sizeof(float) * (size_t)n);
    w.sums = sm_malloc(sizeof(double) * (size_t)k * d);
    w.counts = sm_malloc(sizeof(int64_t) * (size_t)k);
    int32_t *lab = sm_malloc(sizeof(int32_t) * (size_t)nt);
    int32_t *init = sm_malloc(sizeof(int32_t) * (size_t)k);
    float *c = sm_malloc(sizeof(float) * (size_t)k * d);
    row_norms(w.x, nt, d, w.xnorm);
    double best = INFINITY;
    for (int r = 0; r < nredo; r++) {
        sample_distinct(&rng, nt, k, perm, init);
        for (int j = 0; j < k; j++)
            memcpy(c + (size_t)j * d, w.x + (size_t)init[j] * d, sizeof(float) * (size_t)d);
        for (int i = 0; i < nt; i++) lab[i] = -1;
        /* Lloyd: once an assignment changes no label (and no cluster was re-seeded), the
         * centroids are a fixed point and later iterations would repeat it exactly. */
        int it = 0, splits = 1;
        while (it < max_iter) {
            long changed = km_assign(&w, w.x, nt, w.xnorm, c, lab, w.dist);
            if (changed == 0 && splits == 0) break;
            splits = km_update(&w, lab, c, &rng);
            it++;
        }
        if (it == max_iter) km_assign(&w, w.x, nt, w.xnorm, c, lab, w.dist);
        double obj = sum_dist(w.dist, nt);
        if (obj < best) { /* strictly lower: the first of equal restarts is kept */
            best = obj;
            memcpy(centroids, c, sizeof(float) * (size_t)k * d);
            if (iters) *iters = it;
        }
    }
    /* labels of every point under the kept centroids */
    if (sub) row_norms(x, n, d, w.xnorm);
    for (int i = 0; i < n; i++) labels[i] = -1;
    km_assign(&w, x, n, w.xnorm, centroids, labels, w.dist);
    *objective = sum_dist(w.dist, n);
    free(perm);
    free(sub);
    free(w.xnorm);
    free(w.cnorm);
    free(w.gram);
    free(w.dist);
    free(w.sums);
    free(w.counts);
    free(lab);
    free(init);
    free(c);
    return 0;
}

/* ---- histograms, divergence curve, area ------------------------------------------------- */

/* KL(a‖b) over bins where both are non-zero; +∞ when some a > 0 meets b = 0. */
static double kl_multinomial(const double *a, const double *b, int k) {
    double s = 0.0;
    for (int i = 0; i < k; i++) {
        if (a[i] != 0.0 && b[i] == 0.0) return INFINITY;
        if (a[i] != 0.0) s += a[i] * log(a[i] / b[i]);
    }
    return s;
}

void mauve_divergence_curve(const double *p, const double *q, int k, int m, double c,
                            double *curve) {
    SM_ASSERT(m >= 2);
    double *r = sm_malloc(sizeof(double) * (size_t)k);
    curve[0] = 1.0; /* exp(−c·[0, ∞]) */
    curve[1] = 0.0;
    /* np.linspace(1e-6, 1 − 1e-6, m): start + i·step, the last set to the stop exactly */
    const double lo = 1e-6, hi = 1.0 - 1e-6, step = (hi - lo) / (m - 1);
    for (int t = 0; t < m; t++) {
        double w = t == m - 1 ? hi : lo + t * step;
        for (int i = 0; i < k; i++) r[i] = w * p[i] + (1.0 - w) * q[i];
        curve[2 * (t + 1)] = exp(-c * kl_multinomial(q, r, k));
        curve[2 * (t + 1) + 1] = exp(-c * kl_multinomial(p, r, k));
    }
    curve[2 * (m + 1)] = 0.0; /* exp(−c·[∞, 0]) */
    curve[2 * (m + 1) + 1] = 1.0;
    free(r);
}

typedef struct {
    double key, other;
    int index;
} sort_pt;

/* ascending key; ties by the other coordinate descending (the frontier is monotone), then
 * input order */
static int cmp_pt(const void *a, const void *b) {
    const sort_pt *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->other != y->other) return x->other > y->other ? -1 : 1;
    return x->index - y->index;
}

/* ∫ other d(key) by trapezoids over the points sorted by key (sklearn.metrics.auc) */
static double trapezoid_area(const double *curve, int len, int key) {
    sort_pt *pt = sm_malloc(sizeof(sort_pt) * (size_t)len);
    for (int i = 0; i < len; i++)
        pt[i] = (sort_pt){curve[2 * i + key], curve[2 * i + 1 - key], i};
    qsort(pt, (size_t)len, sizeof(sort_pt), cmp_pt);
    double a = 0.0;
    for (int i = 0; i + 1 < len; i++)
        a += (pt[i + 1].key - pt[i].key) * (pt[i].other + pt[i + 1].other) / 2.0;
    free(pt);
    return a;
}

double mauve_area(const double *curve, int len) {
    return 0.5 * (trapezoid_area(curve, len, 0) + trapezoid_area(curve, len, 1));
}

double mauve_frontier_integral(const double *p, const double *q, int k) {
    double total = 0.0;
    for (int i = 0; i < k; i++) {
        double a = p[i], b = q[i];
        if (a == 0.0 && b == 0.0) continue;
        if (a == 0.0) total += b / 4.0;
        else if (b == 0.0) total += a / 4.0;
        else if (fabs(a - b) > 1e-8)
            total += 0.25 * (a + b) - 0.5 * (a * b * (log(a) - log(b)) / (a - b));
    }
    return total * 2.0;
}

/* ---- the whole computation --------------------------------------------------------------- */

static void histogram(const int32_t *labels, int n, int k, double add, double *h) {
    double total = 0.0;
    for (int j = 0; j < k; j++) h[j] = add;
    for (int i = 0; i < n; i++) h[labels[i]] += 1.0;
    for (int j = 0; j < k; j++) total += h[j];
    for (int j = 0; j < k; j++) h[j] /= total;
}

static double mauve_of(const double *p, const double *q, int k, const mauve_params *prm,
                       double *curve) {
    mauve_divergence_curve(p, q, k, prm->curve_points, prm->scaling, curve);
    return mauve_area(curve, prm->curve_points + 2);
}

int mauve_compute(const float *p, int n_p, const float *q, int n_q, int d,
                  const mauve_params *prm, mauve_result *out) {
    memset(out, 0, sizeof *out);
    if (n_p < 1 || n_q < 1)
        return SM_ERR("MAUVE needs a non-empty reference and sample set (got %d and %d "
                      "feature vectors)", n_p, n_q);
    if (d < 1 || d > MAUVE_MAX_DIM)
        return SM_ERR("features of dimension %d (1 to %d: PCA holds a d×d covariance)", d,
                      MAUVE_MAX_DIM);
    if (prm->curve_points < 2) return SM_ERR("the divergence curve needs ≥ 2 points");
    if (mauve_check_finite(p, (size_t)n_p, d, "reference features") ||
        mauve_check_finite(q, (size_t)n_q, d, "sample features"))
        return -1;
    const int n = n_p + n_q;
    const int k = prm->num_clusters > 0 ? prm->num_clusters : mauve_auto_clusters(n_p, n_q);
    if (k > n)
        return SM_ERR("%d clusters for %d feature vectors: need at least one per cluster", k, n);
    out->n_p = n_p;
    out->n_q = n_q;
    out->dim = d;
    out->num_clusters = k;
    /* [Q; P] as the reference stacks them */
    float *x = sm_malloc(sizeof(float) * (size_t)n * d);
    memcpy(x, q, sizeof(float) * (size_t)n_q * d);
    memcpy(x + (size_t)n_q * d, p, sizeof(float) * (size_t)n_p * d);
    mauve_l2_normalize(x, (size_t)n, d);
    double t0 = sm_time_sec();
    double *ratio = sm_malloc(sizeof(double) * (size_t)d);
    float *proj = NULL;
    int kp = 0, rc = mauve_pca(x, n, d, prm->explained_var, ratio, &kp, &proj);
    free(x);
    if (rc) {
        free(ratio);
        return rc;
    }
    out->pca_dims = kp;
    for (int j = 0; j < kp; j++) out->pca_var_kept += ratio[j];
    free(ratio);
    out->seconds_pca = sm_time_sec() - t0;
    if (prm->verbose)
        fprintf(stderr, "mauve: PCA %d → %d dimensions (%.4f of the variance) in %.2f s; "
                "k-means into %d clusters\n", d, kp, out->pca_var_kept, out->seconds_pca, k);
    t0 = sm_time_sec();
    float *cent = sm_malloc(sizeof(float) * (size_t)k * kp);
    int32_t *labels = sm_malloc(sizeof(int32_t) * (size_t)n);
    rc = mauve_kmeans(proj, n, kp, k, prm->kmeans_max_iter, prm->kmeans_redo,
                      prm->max_points_per_centroid, prm->seed + 2, cent, labels,
                      &out->kmeans_objective, &out->kmeans_iters);
    free(proj);
    free(cent);
    if (rc) {
        free(labels);
        return rc;
    }
    out->seconds_kmeans = sm_time_sec() - t0;
    if (prm->verbose)
        fprintf(stderr, "mauve: k-means objective %.6g (%d iterations) in %.2f s\n",
                out->kmeans_objective, out->kmeans_iters, out->seconds_kmeans);
    out->p_hist = sm_malloc(sizeof(double) * (size_t)k);
    out->q_hist = sm_malloc(sizeof(double) * (size_t)k);
    double *ps = sm_malloc(sizeof(double) * (size_t)k), *qs = sm_malloc(sizeof(double) * (size_t)k);
    histogram(labels + n_q, n_p, k, 0.0, out->p_hist);
    histogram(labels, n_q, k, 0.0, out->q_hist);
    histogram(labels + n_q, n_p, k, 0.5, ps); /* Krichevsky–Trofimov */
    histogram(labels, n_q, k, 0.5, qs);
    free(labels);
    out->curve_len = prm->curve_points + 2;
    out->curve = sm_malloc(sizeof(double) * 2 * (size_t)out->curve_len);
    double *curve_s = sm_malloc(sizeof(double) * 2 * (size_t)out->curve_len);
    out->mauve = mauve_of(out->p_hist, out->q_hist, k, prm, out->curve);
    out->mauve_star = mauve_of(ps, qs, k, prm, curve_s);
    out->frontier_integral = mauve_frontier_integral(out->p_hist, out->q_hist, k);
    out->frontier_integral_star = mauve_frontier_integral(ps, qs, k);
    free(curve_s);
    free(ps);
    free(qs);
    return 0;
}

void mauve_result_free(mauve_result *r) {
    free(r->p_hist);
    free(r->q_hist);
    free(r->curve);
    memset(r, 0, sizeof *r);
}
