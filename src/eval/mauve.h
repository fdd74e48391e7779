/* mauve.h — MAUVE (Pillutla et al., NeurIPS 2021) between two sets of feature vectors, as
 * krishnap25/mauve compute_mauve computes it:
 *
 *   1. rows L2-normalised; P (reference, "p_features") and Q (samples) stacked [Q; P];
 *   2. PCA on the union (centred, no whitening), keeping the fewest leading components whose
 *      cumulative explained-variance ratio reaches explained_var (0.9);
 *   3. k-means on the projection (num_clusters; 0 = max(2, round(min(n_p, n_q)/10)), Python's
 *      round-half-to-even), kmeans_redo restarts keeping the lowest objective, at most
 *      kmeans_max_iter Lloyd iterations each;
 *   4. histograms of the cluster labels of P and of Q (normalised counts);
 *   5. divergence curve: for w in linspace(1e-6, 1−1e-6, curve_points), r = w·p + (1−w)·q,
 *      the point (exp(−c·KL(q‖r)), exp(−c·KL(p‖r))), plus the end points (1, 0) and (0, 1);
 *   6. MAUVE = ½(area of y over x + area of x over y), trapezoids over the points sorted.
 *
 * MAUVE* (Krichevsky–Trofimov smoothed histograms, counts + ½) and the frontier integral
 * come with it. Where this differs from the reference (k-means initialisation and random
 * streams, float precision, tie order of the sort) is in NOTES.md "MAUVE".
 * Not thread-safe against itself only through the OpenMP/BLAS thread count (kernels.h).
 */
#ifndef SMDLM_MAUVE_H
#define SMDLM_MAUVE_H

#include <stddef.h>
#include <stdint.h>

#define MAUVE_MAX_DIM 16384 /* largest feature dimension (the covariance is d×d doubles) */

typedef struct {
    int num_clusters;            /* 0: auto (see above) */
    double explained_var;        /* in (0, 1): PCA variance kept (0.9) */
    int kmeans_redo;             /* restarts (5) */
    int kmeans_max_iter;         /* Lloyd iterations per restart at most (500) */
    int max_points_per_centroid; /* train on a sample of k·this points when more (faiss: 256) */
    int curve_points;            /* mixture weights on the divergence curve (25) */
    double scaling;              /* c, mauve_scaling_factor (5) */
    uint64_t seed;               /* 25 */
    int verbose;                 /* stage timings to stderr */
} mauve_params;

void mauve_params_default(mauve_params *p);

typedef struct {
    double mauve, mauve_star, frontier_integral, frontier_integral_star;
    int n_p, n_q, dim;      /* inputs */
    int num_clusters;       /* k used */
    int pca_dims;           /* components kept */
    double pca_var_kept;    /* their cumulative explained-variance ratio */
    double kmeans_objective; /* Σ squared distance to the nearest centroid, best restart */
    int kmeans_iters;       /* Lloyd iterations of the best restart */
    double *p_hist, *q_hist; /* [num_clusters] */
    double *curve;          /* [curve_len][2]: (x, y) before sorting, end points included */
    int curve_len;          /* curve_points + 2 */
    double seconds_pca, seconds_kmeans;
} mauve_result;

/* The whole computation on features p[n_p, d] (reference) and q[n_q, d] (samples); the
 * inputs are not modified. Errors (empty sets, non-finite values, fewer points than
 * clusters) name what is wrong. */
int mauve_compute(const float *p, int n_p, const float *q, int n_q, int d,
                  const mauve_params *prm, mauve_result *out);
void mauve_result_free(mauve_result *r);

/* max(2, round-half-even(min(n_p, n_q) / 10)) */
int mauve_auto_clusters(int n_p, int n_q);

/* 0 when every value is finite, else an error naming `what`, the row and the column. */
int mauve_check_finite(const float *x, size_t n, int d, const char *what);
/* Each row divided by its Euclidean norm (rows of zeros stay zero), norms in double. */
void mauve_l2_normalize(float *x, size_t n, int d);

/* PCA of x[n, d]: components are the eigenvectors of the covariance (LAPACK dsyevr, double),
 * in decreasing variance, each signed so that its largest-magnitude entry is positive.
 * ratio[d] (may be NULL) receives every explained-variance ratio; *k the number kept (the
 * first index where the cumulative ratio ≥ explained_var, plus one); *proj a malloc'ed
 * float [n, *k] = (x − mean)·components. */
int mauve_pca(const float *x, int n, int d, double explained_var, double *ratio, int *k,
              float **proj);

/* k-means of x[n, d] into k clusters (n ≥ k): restarts from k distinct random points, Lloyd
 * iterations until no label changes (or max_iter), empty clusters re-seeded by splitting a
 * large one (as faiss does), the restart with the lowest objective kept. With
 * n > k·max_ppc (max_ppc > 0) it trains on k·max_ppc sampled points, then labels all.
 * centroids[k, d], labels[n]; *objective the summed squared distance over all n points;
 * *iters the Lloyd iterations of the kept restart (may be NULL). */
int mauve_kmeans(const float *x, int n, int d, int k, int max_iter, int nredo, int max_ppc,
                 uint64_t seed, float *centroids, int32_t *labels, double *objective,
                 int *iters);

/* curve[(m + 2)·2] as in step 5 for histograms p, q of k bins. */
void mauve_divergence_curve(const double *p, const double *q, int k, int m, double c,
                            double *curve);
/* ½(∫y dx + ∫x dy) over the curve's points (trapezoids; sklearn.metrics.auc on the points
 * sorted by x, resp. y; ties ordered by the other coordinate descending). */
double mauve_area(const double *curve, int len);
/* Frontier integral (Pillutla et al., JMLR 2023), the reference's get_fronter_integral. */
double mauve_frontier_integral(const double *p, const double *q, int k);

#endif
