/* test_backward.c — the backward kernels (kernels_bwd.h) against finite differences.
 *
 * Method: a random projection L = Σ r_i·out_i (r fixed) of a forward kernel's output; the
 * analytic gradient is the backward kernel run with dout = r into zeroed buffers, the
 * numerical one is the central difference (L(p+h) − L(p−h)) / (p₊ − p₋) for every input
 * element p, with the forward computed by the double-accumulating reference kernels
 * (kernels_ref.c) and L summed in double; p₊ − p₋ is the difference of the perturbed
 * floats, so the step is exact. Each check runs on a tiny odd shape and on one large
 * enough to cross the column blocks (32) and row blocks (32) of the reductions.
 * Also: every kernel accumulates (+=) and leaves the rest of strided buffers alone; the
 * training forwards match the inference forwards; reductions are run-to-run (and, as the
 * implementation splits them by columns, thread-count) deterministic. The Dream/LLaDA kernels
 * (RMSNorm, SwiGLU, rotary on q and k) the same way, and dX = dY·W over f32, bf16 and q8
 * weights against a double product. */
#include <math.h>
#include <string.h>

#include "compute/kernels.h"
#include "compute/kernels_bwd.h"
#include "compute/linear.h"
#include "formats/safetensors.h"
#include "base/rng.h"
#include "testutil.h"
#include "base/util.h"

/* Finite-difference tolerance: h = 1e-2 on O(1) inputs leaves a truncation error of
 * ~h²·f'''/6 ≲ 1e-4 relative and a rounding error (float outputs of the forward) of
 * ~1e-5 absolute; a real bug (a missing term, a wrong index) is off by O(1). */
#define FD_H 1e-2f
#define FD_ATOL 3e-4f
#define FD_RTOL 5e-3f
/* Accumulation checks: got = prefill + fresh up to the rounding of one addition. */
#define ACC_TOL 1e-6f

#ifndef TEST_SEED
#define TEST_SEED 7
#endif

static sm_rng g_rng;

static float *rand_buf(size_t n, float scale) {
    float *p = sm_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = scale * (float)(2.0 * rng_uniform(&g_rng) - 1.0);
    return p;
}

static float *zeros(size_t n) { return sm_calloc(n ? n : 1, sizeof(float)); }

static float *copy_buf(const float *a, size_t n) {
    float *p = sm_malloc(sizeof(float) * n);
    memcpy(p, a, sizeof(float) * n);
    return p;
}

static double proj(const float *out, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * out[i];
    return s;
}

typedef void (*fwd_fn)(void *ctx, float *out);

/* grad[i] = dL/dparam[i] by central differences of fwd (which reads param through ctx). */
static void fd_grad(float *grad, float *param, size_t np, fwd_fn fwd, void *ctx, float *out,
                    const float *r, size_t nout) {
    for (size_t i = 0; i < np; i++) {
        float save = param[i];
        param[i] = save + FD_H;
        float xp = param[i];
        fwd(ctx, out);
        double lp = proj(out, r, nout);
        param[i] = save - FD_H;
        float xm = param[i];
        fwd(ctx, out);
        double lm = proj(out, r, nout);
        param[i] = save;
        grad[i] = (float)((lp - lm) / ((double)xp - (double)xm));
    }
}

static void check_fd(const char *what, const float *analytic, const float *fd, size_t n) {
    assert_int_equal(tu_compare_f32(what, analytic, fd, n, FD_ATOL, FD_RTOL), 0);
}

/* got must be prefill + fresh (fresh: the kernel's result into zeroed buffers). */
static void check_accum(const char *what, const float *got, const float *prefill,
                        const float *fresh, size_t n) {
    float *want = sm_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) want[i] = prefill[i] + fresh[i];
    assert_int_equal(tu_compare_f32(what, got, want, n, ACC_TOL, ACC_TOL), 0);
    free(want);
}

static void check_same_bits(const char *what, const float *a, const float *b, size_t n) {
    size_t first = n;
    for (size_t i = 0; i < n && first == n; i++)
        if (memcmp(a + i, b + i, sizeof(float))) first = i;
    if (first < n)
        printf("  %s: not bit-identical at [%zu]: %.9g vs %.9g\n", what, first, a[first], b[first]);
    else
        printf("  %-28s n=%zu bit-identical\n", what, n);
    assert_true(first == n);
}

/* ---- matmul -------------------------------------------------------------------------------- */

typedef struct {
    float *inp, *w, *bias;
    int N, IC, OC;
} mm_ctx;

static void mm_fwd(void *c, float *out) {
    mm_ctx *m = c;
    matmul_forward_ref(out, m->inp, m->w, m->bias, m->N, m->IC, m->OC);
}

static void test_matmul_grad(void **state) {
    int shapes[][3] = {{7, 5, 6}, {45, 9, 70}};
    for (int s = 0; s < 2; s++) {
        int N = shapes[s][0], IC = shapes[s][1], OC = shapes[s][2];
        size_t ni = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
        mm_ctx m = {rand_buf(ni, 1), rand_buf(nw, 1), rand_buf(OC, 1), N, IC, OC};
        float *r = rand_buf(no, 1), *out = sm_malloc(sizeof(float) * no);
        float *di = zeros(ni), *dw = zeros(nw), *db = zeros(OC);
        matmul_backward(di, dw, db, r, m.inp, m.w, N, IC, OC);
        float *fi = sm_malloc(sizeof(float) * ni), *fw = sm_malloc(sizeof(float) * nw),
              *fb = sm_malloc(sizeof(float) * OC);
        fd_grad(fi, m.inp, ni, mm_fwd, &m, out, r, no);
        fd_grad(fw, m.w, nw, mm_fwd, &m, out, r, no);
        fd_grad(fb, m.bias, OC, mm_fwd, &m, out, r, no);
        check_fd("matmul dinp", di, fi, ni);
        check_fd("matmul dw", dw, fw, nw);
        check_fd("matmul dbias", db, fb, OC);
        /* each gradient alone (the others NULL) is the same */
        float *di2 = zeros(ni), *dw2 = zeros(nw), *db2 = zeros(OC);
        matmul_backward(di2, NULL, NULL, r, m.inp, m.w, N, IC, OC);
        matmul_backward(NULL, dw2, NULL, r, m.inp, m.w, N, IC, OC);
        matmul_backward(NULL, NULL, db2, r, m.inp, m.w, N, IC, OC);
        check_same_bits("matmul dinp alone", di2, di, ni);
        check_same_bits("matmul dw alone", dw2, dw, nw);
        check_same_bits("matmul dbias alone", db2, db, OC);
        free(m.inp), free(m.w), free(m.bias), free(r), free(out), free(di), free(dw), free(db);
        free(fi), free(fw), free(fb), free(di2), free(dw2), free(db2);
    }
}

/* ---- LayerNorm + modulation ------------------------------------------------------------------ */

/* shift and scale are the 2nd and 3rd chunks of a mod row of 4 chunks (stride 4D), so the
 * gradient of the 1st and 4th chunks must stay 0. */
typedef struct {
    float *x, *w, *mod;
    int B, T, D;
} ln_ctx;

static void ln_fwd(void *c, float *out) {
    ln_ctx *l = c;
    layernorm_modulate_forward_ref(out, l->x, l->w, l->mod + l->D, l->mod + 2 * l->D, 4 * l->D,
                                   l->B, l->T, l->D);
}

static void test_layernorm_grad(void **state) {
    int shapes[][3] = {{2, 5, 8}, {2, 35, 67}};
    for (int s = 0; s < 2; s++) {
        int B = shapes[s][0], T = shapes[s][1], D = shapes[s][2], stride = 4 * D;
        size_t nx = (size_t)B * T * D, nm = (size_t)B * stride;
        ln_ctx l = {rand_buf(nx, 1), rand_buf(D, 1), rand_buf(nm, 0.5f), B, T, D};
        for (size_t i = 0; i < nx; i += 3) l.x[i] += 2.0f; /* non-zero mean */
        float *out = sm_malloc(sizeof(float) * nx), *out_inf = sm_malloc(sizeof(float) * nx);
        float *xhat = sm_malloc(sizeof(float) * nx), *rstd = sm_malloc(sizeof(float) * B * T);

        /* the training forward is the inference forward, bit for bit, plus xhat and rstd */
        layernorm_modulate_forward_train(out, xhat, rstd, l.x, l.w, l.mod + D, l.mod + 2 * D,
                                         stride, B, T, D);
        layernorm_modulate_forward(out_inf, l.x, l.w, l.mod + D, l.mod + 2 * D, stride, B, T, D);
        check_same_bits("ln_train out", out, out_inf, nx);
        float *xh_ref = sm_malloc(sizeof(float) * nx), *rs_ref = sm_malloc(sizeof(float) * B * T);
        for (int bt = 0; bt < B * T; bt++) {
            const float *xr = l.x + (size_t)bt * D;
            double mean = 0, var = 0;
            for (int i = 0; i < D; i++) mean += xr[i];
            mean /= D;
            for (int i = 0; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
            double rs = 1.0 / sqrt(var / D + 1e-5);
            rs_ref[bt] = (float)rs;
            for (int i = 0; i < D; i++) xh_ref[(size_t)bt * D + i] = (float)((xr[i] - mean) * rs);
        }
        assert_int_equal(tu_compare_f32("ln_train xhat", xhat, xh_ref, nx, 2e-6f, 2e-6f), 0);
        assert_int_equal(tu_compare_f32("ln_train rstd", rstd, rs_ref, B * T, 0, 2e-6f), 0);

        float *r = rand_buf(nx, 1);
        float *dx = zeros(nx), *dw = zeros(D), *dmod = zeros(nm);
        layernorm_modulate_backward(dx, dw, dmod + D, dmod + 2 * D, r, xhat, rstd, l.w,
                                    l.mod + 2 * D, stride, B, T, D);
        float *fx = sm_malloc(sizeof(float) * nx), *fw = sm_malloc(sizeof(float) * D),
              *fm = sm_malloc(sizeof(float) * nm);
        fd_grad(fx, l.x, nx, ln_fwd, &l, out, r, nx);
        fd_grad(fw, l.w, D, ln_fwd, &l, out, r, nx);
        fd_grad(fm, l.mod, nm, ln_fwd, &l, out, r, nx); /* all 4 chunks: 1st, 4th must be 0 */
        check_fd("layernorm dx", dx, fx, nx);
        check_fd("layernorm dw", dw, fw, D);
        check_fd("layernorm dmod (shift,scale)", dmod, fm, nm);
        free(l.x), free(l.w), free(l.mod), free(out), free(out_inf), free(xhat), free(rstd);
        free(xh_ref), free(rs_ref), free(r), free(dx), free(dw), free(dmod), free(fx), free(fw);
        free(fm);
    }
}

/* ---- rotary ---------------------------------------------------------------------------------- */

typedef struct {
    float *qkv, *c, *s;
    int B, T, H, hd;
} rope_ctx;

static void rope_fwd(void *ctx, float *out) {
    rope_ctx *p = ctx;
    memcpy(out, p->qkv, sizeof(float) * (size_t)p->B * p->T * 3 * p->H * p->hd);
    rope_forward_ref(out, p->c, p->s, p->B, p->T, p->H, p->hd);
}

static void test_rope_grad(void **state) {
    int B = 2, T = 5, H = 2, hd = 6;
    size_t n = (size_t)B * T * 3 * H * hd;
    rope_ctx p = {rand_buf(n, 1), sm_malloc(sizeof(float) * T * hd / 2),
                  sm_malloc(sizeof(float) * T * hd / 2), B, T, H, hd};
    rope_tables(p.c, p.s, T, hd, 10000.0f);
    float *r = rand_buf(n, 1), *out = sm_malloc(sizeof(float) * n), *f = sm_malloc(sizeof(float) * n);
    float *g = copy_buf(r, n);
    rope_backward(g, p.c, p.s, B, T, H, hd); /* in place: the v part stays r */
    fd_grad(f, p.qkv, n, rope_fwd, &p, out, r, n);
    check_fd("rope dqkv", g, f, n);
    /* the rotation is orthogonal: backward ∘ forward = identity */
    float *x = copy_buf(p.qkv, n);
    rope_forward(x, p.c, p.s, B, T, H, hd);
    rope_backward(x, p.c, p.s, B, T, H, hd);
    assert_int_equal(tu_compare_f32("rope bwd(fwd(x)) = x", x, p.qkv, n, 1e-6f, 1e-6f), 0);
    free(p.qkv), free(p.c), free(p.s), free(r), free(out), free(f), free(g), free(x);
}

/* ---- attention ------------------------------------------------------------------------------- */

typedef struct {
    float *qkv;
    int B, T, H, hd, causal;
} att_ctx;

static void att_fwd(void *ctx, float *out) {
    att_ctx *a = ctx;
    attention_forward_ref(out, a->qkv, a->B, a->T, a->H, a->hd, a->causal);
}

static void test_attention_grad(void **state) {
    int shapes[][4] = {{2, 5, 2, 4}, {1, 9, 3, 6}};
    for (int s = 0; s < 2; s++)
        for (int causal = 0; causal < 2; causal++) {
            int B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], hd = shapes[s][3];
            int D = H * hd;
            size_t nq = (size_t)B * T * 3 * D, no = (size_t)B * T * D,
                   na = (size_t)B * H * T * T;
            att_ctx a = {rand_buf(nq, 1.5f), B, T, H, hd, causal};
            int nt = kernels_get_threads();
            float *scratch = sm_malloc(sizeof(float) * attention_scratch_floats(T, nt));
            float *out = sm_malloc(sizeof(float) * no), *out_inf = sm_malloc(sizeof(float) * no);
            float *att = sm_malloc(sizeof(float) * na);
            attention_forward_train(out, att, a.qkv, B, T, H, hd, causal);
            attention_forward(out_inf, a.qkv, scratch, B, T, H, hd, causal);
            check_same_bits(causal ? "att_train out (causal)" : "att_train out", out, out_inf, no);
            /* P: rows sum to 1, exact zeros above the diagonal when causal */
            float *rowsum = sm_malloc(sizeof(float) * B * H * T), *ones = sm_malloc(sizeof(float) * B * H * T);
            int above = 0;
            for (size_t row = 0; row < (size_t)B * H * T; row++) {
                double sum = 0;
                int i = (int)(row % T);
                for (int j = 0; j < T; j++) {
                    float pv = att[row * T + j];
                    sum += pv;
                    if (causal && j > i && pv != 0.0f) above++;
                    if (!(pv >= 0.0f)) above++;
                }
                rowsum[row] = (float)sum, ones[row] = 1.0f;
            }
            assert_int_equal(tu_compare_f32("att P row sums", rowsum, ones, B * H * T, 2e-6f, 0), 0);
            assert_int_equal(above, 0);

            float *r = rand_buf(no, 1), *dqkv = zeros(nq), *f = sm_malloc(sizeof(float) * nq);
            attention_backward(dqkv, scratch, r, a.qkv, att, B, T, H, hd);
            fd_grad(f, a.qkv, nq, att_fwd, &a, out, r, no);
            check_fd(causal ? "attention dqkv (causal)" : "attention dqkv", dqkv, f, nq);
            free(a.qkv), free(scratch), free(out), free(out_inf), free(att), free(rowsum);
            free(ones), free(r), free(dqkv), free(f);
        }
    /* Large logits: scores that differ by more than 87 give exact zeros in P (expf_fast
     * underflows to 0), still the inference forward bit for bit; the gradient is finite. */
    int B = 2, T = 7, H = 2, hd = 4;
    size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
    float *qkv = rand_buf(nq, 12), *out = sm_malloc(sizeof(float) * no),
          *out_inf = sm_malloc(sizeof(float) * no), *att = sm_malloc(sizeof(float) * B * H * T * T);
    float *scratch = sm_malloc(sizeof(float) * attention_scratch_floats(T, kernels_get_threads()));
    attention_forward_train(out, att, qkv, B, T, H, hd, 0);
    attention_forward(out_inf, qkv, scratch, B, T, H, hd, 0);
    check_same_bits("att_train out (large logits)", out, out_inf, no);
    int zeros_in_p = 0;
    for (size_t i = 0; i < (size_t)B * H * T * T; i++) zeros_in_p += att[i] == 0.0f;
    assert_true(zeros_in_p > 0);
    float *r = rand_buf(no, 1), *dqkv = zeros(nq);
    attention_backward(dqkv, scratch, r, qkv, att, B, T, H, hd);
    for (size_t i = 0; i < nq; i++) assert_true(isfinite(dqkv[i]));
    free(qkv), free(out), free(out_inf), free(att), free(scratch), free(r), free(dqkv);
}

/* ---- elementwise ------------------------------------------------------------------------------ */

typedef struct {
    float *x;
    size_t n;
    int which; /* 0 gelu (reference), 1 silu */
} ew_ctx;

static void ew_fwd(void *ctx, float *out) {
    ew_ctx *e = ctx;
    memcpy(out, e->x, sizeof(float) * e->n);
    if (e->which == 0)
        gelu_tanh_forward_ref(out, e->n);
    else
        for (size_t i = 0; i < e->n; i++) out[i] = (float)(e->x[i] / (1.0 + exp(-(double)e->x[i])));
}

static double gelu_grad_f64(double x) {
    double k = 0.7978845608028654, u = k * (x + 0.044715 * x * x * x), th = tanh(u);
    return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * 0.044715 * x * x);
}

static double silu_grad_f64(double x) {
    double s = 1.0 / (1.0 + exp(-x));
    return s * (1 + x * (1 - s));
}

static void elementwise_check(int which) {
    const char *name = which ? "silu" : "gelu";
    void (*bwd)(float *, const float *, const float *, size_t) =
        which ? silu_backward : gelu_tanh_backward;
    /* finite differences on random inputs */
    size_t n = 61;
    ew_ctx e = {rand_buf(n, 4), n, which};
    float *r = rand_buf(n, 1), *out = sm_malloc(sizeof(float) * n), *f = sm_malloc(sizeof(float) * n);
    float *g = zeros(n);
    bwd(g, e.x, r, n);
    fd_grad(f, e.x, n, ew_fwd, &e, out, r, n);
    char what[64];
    snprintf(what, sizeof what, "%s dinp (FD)", name);
    check_fd(what, g, f, n);
    /* the derivative itself on a dense grid and at extremes, against fp64 */
    size_t m = 8001, extra = 12;
    float *x = sm_malloc(sizeof(float) * (m + extra)), *one = sm_malloc(sizeof(float) * (m + extra));
    float *d = zeros(m + extra), *ref = sm_malloc(sizeof(float) * (m + extra));
    for (size_t i = 0; i < m; i++) x[i] = -12.0f + 24.0f * (float)i / (float)(m - 1);
    const float ext[12] = {0.0f, 1e-4f, -1e-4f, 30.0f, -30.0f, 1e3f, -1e3f, 1e20f, -1e20f,
                           3e38f, -3e38f, -9.5f};
    memcpy(x + m, ext, sizeof ext);
    for (size_t i = 0; i < m + extra; i++) {
        one[i] = 1.0f;
        ref[i] = (float)(which ? silu_grad_f64(x[i]) : gelu_grad_f64(x[i]));
    }
    bwd(d, x, one, m + extra);
    snprintf(what, sizeof what, "%s' vs fp64", name);
    assert_int_equal(tu_compare_f32(what, d, ref, m + extra, 1e-6f, 2e-6f), 0);
    free(e.x), free(r), free(out), free(f), free(g), free(x), free(one), free(d), free(ref);
}

static void test_gelu_grad(void **state) { elementwise_check(0); }
static void test_silu_grad(void **state) { elementwise_check(1); }

/* ---- gated residual ---------------------------------------------------------------------------- */

/* gate is the 2nd chunk of a mod row of 3 (stride 3D). */
typedef struct {
    float *x0, *y, *mod;
    int B, T, D;
} gr_ctx;

static void gr_fwd(void *ctx, float *out) {
    gr_ctx *g = ctx;
    memcpy(out, g->x0, sizeof(float) * (size_t)g->B * g->T * g->D);
    gated_residual_forward_ref(out, g->y, g->mod + g->D, 3 * g->D, g->B, g->T, g->D);
}

static void test_gated_residual_grad(void **state) {
    int shapes[][3] = {{2, 5, 8}, {2, 35, 67}};
    for (int s = 0; s < 2; s++) {
        int B = shapes[s][0], T = shapes[s][1], D = shapes[s][2];
        size_t n = (size_t)B * T * D, nm = (size_t)B * 3 * D;
        gr_ctx g = {rand_buf(n, 1), rand_buf(n, 1), rand_buf(nm, 1), B, T, D};
        float *r = rand_buf(n, 1), *out = sm_malloc(sizeof(float) * n);
        float *dy = zeros(n), *dmod = zeros(nm), *fy = sm_malloc(sizeof(float) * n),
              *fm = sm_malloc(sizeof(float) * nm);
        gated_residual_backward(dy, dmod + D, r, g.y, g.mod + D, 3 * D, B, T, D);
        fd_grad(fy, g.y, n, gr_fwd, &g, out, r, n);
        fd_grad(fm, g.mod, nm, gr_fwd, &g, out, r, n);
        check_fd("gated_residual dy", dy, fy, n);
        check_fd("gated_residual dmod (gate)", dmod, fm, nm);
        free(g.x0), free(g.y), free(g.mod), free(r), free(out), free(dy), free(dmod), free(fy);
        free(fm);
    }
}

/* ---- Dream / LLaDA: RMSNorm, SwiGLU, rotary on q and k, dX = dY·W in W's dtype -------------- */

typedef struct {
    float *x, *w, *gate, *up;
    size_t N;
    int D;
} tf_ctx;

static void rms_fwd(void *ctx, float *out) {
    tf_ctx *c = ctx;
    rmsnorm_forward(out, c->x, c->w, c->N, c->D, 1e-5f);
}

static void swiglu_fwd(void *ctx, float *out) {
    tf_ctx *c = ctx;
    memcpy(out, c->gate, sizeof(float) * c->N);
    swiglu_forward(out, c->up, c->N);
}

static void test_rmsnorm_swiglu_grad(void **state) {
    int shapes[][2] = {{5, 8}, {35, 67}};
    for (int s = 0; s < 2; s++) {
        const size_t N = (size_t)shapes[s][0], D = (size_t)shapes[s][1], n = N * D;
        tf_ctx c = {rand_buf(n, 1), rand_buf(D, 1), NULL, NULL, N, (int)D};
        float *r = rand_buf(n, 1), *out = sm_malloc(sizeof(float) * n);
        float *dx = zeros(n), *f = sm_malloc(sizeof(float) * n);
        rmsnorm_backward(dx, r, c.x, c.w, N, (int)D, 1e-5f);
        fd_grad(f, c.x, n, rms_fwd, &c, out, r, n);
        check_fd("rmsnorm dx", dx, f, n);
        /* accumulates */
        float *pre = rand_buf(n, 1), *acc = copy_buf(pre, n);
        rmsnorm_backward(acc, r, c.x, c.w, N, (int)D, 1e-5f);
        check_accum("rmsnorm accumulates", acc, pre, dx, n);
        /* SwiGLU over the same n elements */
        tf_ctx g = {NULL, NULL, rand_buf(n, 4), rand_buf(n, 2), n, 0};
        float *dg = zeros(n), *du = zeros(n), *fg = sm_malloc(sizeof(float) * n),
              *fu = sm_malloc(sizeof(float) * n);
        swiglu_backward(dg, du, r, g.gate, g.up, n);
        fd_grad(fg, g.gate, n, swiglu_fwd, &g, out, r, n);
        fd_grad(fu, g.up, n, swiglu_fwd, &g, out, r, n);
        check_fd("swiglu dgate", dg, fg, n);
        check_fd("swiglu dup", du, fu, n);
        free(c.x), free(c.w), free(r), free(out), free(dx), free(f), free(pre), free(acc);
        free(g.gate), free(g.up), free(dg), free(du), free(fg), free(fu);
    }
}

typedef struct {
    float *q, *k, *c, *s;
    int N, T, H, KVH, hd;
} rqk_ctx;

/* out = [rope(q) | rope(k)] */
static void rope_qk_fwd(void *ctx, float *out) {
    rqk_ctx *p = ctx;
    const size_t nq = (size_t)p->N * p->H * p->hd, nk = (size_t)p->N * p->KVH * p->hd;
    memcpy(out, p->q, sizeof(float) * nq);
    memcpy(out + nq, p->k, sizeof(float) * nk);
    rope_forward_qk(out, out + nq, p->c, p->s, (size_t)p->N, p->T, 0, p->H, p->KVH, p->hd);
}

static void test_rope_qk_grad(void **state) {
    rqk_ctx p = {NULL, NULL, NULL, NULL, 2 * 5, 5, 4, 2, 6};
    const size_t nq = (size_t)p.N * p.H * p.hd, nk = (size_t)p.N * p.KVH * p.hd, n = nq + nk;
    p.q = rand_buf(nq, 1), p.k = rand_buf(nk, 1);
    p.c = sm_malloc(sizeof(float) * p.T * p.hd / 2), p.s = sm_malloc(sizeof(float) * p.T * p.hd / 2);
    rope_tables(p.c, p.s, p.T, p.hd, 1e6f);
    float *r = rand_buf(n, 1), *out = sm_malloc(sizeof(float) * n), *f = sm_malloc(sizeof(float) * n);
    float *g = copy_buf(r, n);
    rope_backward_qk(g, g + nq, p.c, p.s, (size_t)p.N, p.T, p.H, p.KVH, p.hd);
    fd_grad(f, p.q, nq, rope_qk_fwd, &p, out, r, n);
    fd_grad(f + nq, p.k, nk, rope_qk_fwd, &p, out, r, n);
    check_fd("rope_qk dq, dk", g, f, n);
    free(p.q), free(p.k), free(p.c), free(p.s), free(r), free(out), free(f), free(g);
}

/* linear_backward_input on f32, bf16 and q8 weights (in = 150 crosses the 64-column blocks)
 * against a double product of the exactly decoded weights; it adds to dinp. */
static void test_linear_backward_input(void **state) {
    const int N = 7, OC = 37, IC = 150;
    float *w32 = rand_buf((size_t)OC * IC, 1), *dy = rand_buf((size_t)N * OC, 1);
    uint16_t *wb = sm_malloc(sizeof(uint16_t) * OC * IC);
    for (int i = 0; i < OC * IC; i++) wb[i] = st_f32_to_bf16(w32[i]);
    linear_w ws[3] = {{.type = WT_F32, .out = OC, .in = IC, .data = w32},
                      {.type = WT_BF16, .out = OC, .in = IC, .data = wb}};
    assert_int_equal(linear_quantize_q8(&ws[2], &ws[0]), 0);
    const char *names[3] = {"dX = dY·W f32", "dX = dY·W bf16", "dX = dY·W q8"};
    float *rows = sm_malloc(sizeof(float) * OC * IC), *ref = sm_malloc(sizeof(float) * N * IC),
          *tol = sm_malloc(sizeof(float) * N * IC);
    int32_t ids[37];
    for (int o = 0; o < OC; o++) ids[o] = o;
    for (int k = 0; k < 3; k++) {
        linear_rows_f32(rows, &ws[k], ids, OC); /* exact values of W */
        float *pre = rand_buf((size_t)N * IC, 1), *got = copy_buf(pre, (size_t)N * IC);
        linear_backward_input(got, dy, &ws[k], N);
        size_t bad = 0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IC; i++) {
                double s = pre[n * IC + i], a = 0.0;
                for (int o = 0; o < OC; o++) {
                    s += (double)dy[n * OC + o] * rows[o * IC + i];
                    a += fabs((double)dy[n * OC + o] * rows[o * IC + i]);
                }
                ref[n * IC + i] = (float)s;
                tol[n * IC + i] = (float)(2e-6 * (a + fabs(pre[n * IC + i])));
                bad += fabs(got[n * IC + i] - s) > tol[n * IC + i];
            }
        size_t worst = 0;
        for (size_t i = 1; i < (size_t)N * IC; i++)
            if (fabsf(got[i] - ref[i]) - tol[i] > fabsf(got[worst] - ref[worst]) - tol[worst])
                worst = i;
        printf("  %-18s worst [%zu]: %.9g vs %.9g (bound %.3g)\n", names[k], worst, got[worst],
               ref[worst], tol[worst]);
        assert_int_equal(bad, 0);
        free(pre), free(got);
    }
    linear_free(&ws[2]);
    free(w32), free(wb), free(dy), free(rows), free(ref), free(tol);
}

/* ---- accumulation ------------------------------------------------------------------------------ */

/* Every kernel adds to its gradients: run once into zeros (fresh), once into random values
 * (prefill); the second must be prefill + fresh everywhere, including the parts of strided
 * buffers (mod rows, dqkv) that a kernel must not touch. */
static void test_accumulates(void **state) {
    int B = 2, T = 37, H = 2, hd = 4, D = 40, N = 37, IC = 5, OC = 38;
    /* matmul */
    {
        size_t ni = (size_t)N * IC, nw = (size_t)OC * IC;
        float *inp = rand_buf(ni, 1), *w = rand_buf(nw, 1), *r = rand_buf((size_t)N * OC, 1);
        float *di0 = zeros(ni), *dw0 = zeros(nw), *db0 = zeros(OC);
        float *pi = rand_buf(ni, 1), *pw = rand_buf(nw, 1), *pb = rand_buf(OC, 1);
        float *di = copy_buf(pi, ni), *dw = copy_buf(pw, nw), *db = copy_buf(pb, OC);
        matmul_backward(di0, dw0, db0, r, inp, w, N, IC, OC);
        matmul_backward(di, dw, db, r, inp, w, N, IC, OC);
        check_accum("acc matmul dinp", di, pi, di0, ni);
        check_accum("acc matmul dw", dw, pw, dw0, nw);
        check_accum("acc matmul dbias", db, pb, db0, OC);
        free(inp), free(w), free(r), free(di0), free(dw0), free(db0), free(pi), free(pw);
        free(pb), free(di), free(dw), free(db);
    }
    /* layernorm: shift/scale are chunks 1 and 2 of a mod row of 4 */
    {
        size_t nx = (size_t)B * T * D, nm = (size_t)B * 4 * D;
        float *x = rand_buf(nx, 1), *w = rand_buf(D, 1), *mod = rand_buf(nm, 0.5f);
        float *out = sm_malloc(sizeof(float) * nx), *xhat = sm_malloc(sizeof(float) * nx),
              *rstd = sm_malloc(sizeof(float) * B * T), *r = rand_buf(nx, 1);
        layernorm_modulate_forward_train(out, xhat, rstd, x, w, mod + D, mod + 2 * D, 4 * D, B, T, D);
        float *dx0 = zeros(nx), *dw0 = zeros(D), *dm0 = zeros(nm);
        float *px = rand_buf(nx, 1), *pw = rand_buf(D, 1), *pm = rand_buf(nm, 1);
        float *dx = copy_buf(px, nx), *dw = copy_buf(pw, D), *dm = copy_buf(pm, nm);
        layernorm_modulate_backward(dx0, dw0, dm0 + D, dm0 + 2 * D, r, xhat, rstd, w, mod + 2 * D,
                                    4 * D, B, T, D);
        layernorm_modulate_backward(dx, dw, dm + D, dm + 2 * D, r, xhat, rstd, w, mod + 2 * D,
                                    4 * D, B, T, D);
        check_accum("acc layernorm dx", dx, px, dx0, nx);
        check_accum("acc layernorm dw", dw, pw, dw0, D);
        check_accum("acc layernorm dmod", dm, pm, dm0, nm);
        free(x), free(w), free(mod), free(out), free(xhat), free(rstd), free(r), free(dx0);
        free(dw0), free(dm0), free(px), free(pw), free(pm), free(dx), free(dw), free(dm);
    }
    /* attention (causal: the zero half of P must add exactly nothing) */
    for (int causal = 0; causal < 2; causal++) {
        size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
        float *qkv = rand_buf(nq, 1.5f), *r = rand_buf(no, 1), *out = sm_malloc(sizeof(float) * no);
        float *att = sm_malloc(sizeof(float) * B * H * T * T);
        float *scratch = sm_malloc(sizeof(float) * attention_scratch_floats(T, kernels_get_threads()));
        attention_forward_train(out, att, qkv, B, T, H, hd, causal);
        float *d0 = zeros(nq), *pq = rand_buf(nq, 1), *d = copy_buf(pq, nq);
        attention_backward(d0, scratch, r, qkv, att, B, T, H, hd);
        attention_backward(d, scratch, r, qkv, att, B, T, H, hd);
        check_accum(causal ? "acc attention dqkv (causal)" : "acc attention dqkv", d, pq, d0, nq);
        free(qkv), free(r), free(out), free(att), free(scratch), free(d0), free(pq), free(d);
    }
    /* gelu, silu */
    for (int which = 0; which < 2; which++) {
        size_t n = 1000;
        void (*bwd)(float *, const float *, const float *, size_t) =
            which ? silu_backward : gelu_tanh_backward;
        float *x = rand_buf(n, 5), *r = rand_buf(n, 1), *d0 = zeros(n), *p = rand_buf(n, 1);
        float *d = copy_buf(p, n);
        bwd(d0, x, r, n);
        bwd(d, x, r, n);
        check_accum(which ? "acc silu" : "acc gelu", d, p, d0, n);
        free(x), free(r), free(d0), free(p), free(d);
    }
    /* gated residual: gate is chunk 1 of a mod row of 3 */
    {
        size_t n = (size_t)B * T * D, nm = (size_t)B * 3 * D;
        float *y = rand_buf(n, 1), *mod = rand_buf(nm, 1), *r = rand_buf(n, 1);
        float *dy0 = zeros(n), *dm0 = zeros(nm), *py = rand_buf(n, 1), *pm = rand_buf(nm, 1);
        float *dy = copy_buf(py, n), *dm = copy_buf(pm, nm);
        gated_residual_backward(dy0, dm0 + D, r, y, mod + D, 3 * D, B, T, D);
        gated_residual_backward(dy, dm + D, r, y, mod + D, 3 * D, B, T, D);
        check_accum("acc gated dy", dy, py, dy0, n);
        check_accum("acc gated dmod", dm, pm, dm0, nm);
        free(y), free(mod), free(r), free(dy0), free(dm0), free(py), free(pm), free(dy), free(dm);
    }
}

/* ---- determinism -------------------------------------------------------------------------------- */

typedef struct {
    float *ln_dx, *ln_dw, *ln_dm, *mm_db, *gr_dy, *gr_dm, *att_d;
} det_out;

typedef struct {
    int B, T, D, H, hd, N, OC;
    float *x, *w, *mod, *xhat, *rstd, *r, *qkv, *att, *ra, *y;
} det_in;

static det_out det_run(const det_in *in) {
    int B = in->B, T = in->T, D = in->D;
    size_t nx = (size_t)B * T * D, nm = (size_t)B * 4 * D, nq = (size_t)B * T * 3 * in->H * in->hd;
    det_out o = {zeros(nx), zeros(D), zeros(nm), zeros(in->OC), zeros(nx), zeros(nm), zeros(nq)};
    layernorm_modulate_backward(o.ln_dx, o.ln_dw, o.ln_dm + D, o.ln_dm + 2 * D, in->r, in->xhat,
                                in->rstd, in->w, in->mod + 2 * D, 4 * D, B, T, D);
    matmul_backward(NULL, NULL, o.mm_db, in->r, NULL, NULL, in->N, 0, in->OC);
    gated_residual_backward(o.gr_dy, o.gr_dm + D, in->r, in->y, in->mod + D, 4 * D, B, T, D);
    float *scratch = sm_malloc(sizeof(float) * attention_scratch_floats(T, kernels_get_threads()));
    attention_backward(o.att_d, scratch, in->ra, in->qkv, in->att, B, T, in->H, in->hd);
    free(scratch);
    return o;
}

/* att_exact: attention bit for bit, else (across thread counts, where sgemm may differ)
 * within 1e-6 — which still catches a race on the scratch rows. */
static void det_compare(const char *tag, const det_out *a, const det_out *b, const det_in *in,
                        int att_exact) {
    size_t nx = (size_t)in->B * in->T * in->D, nm = (size_t)in->B * 4 * in->D;
    size_t nq = (size_t)in->B * in->T * 3 * in->H * in->hd;
    char what[96];
#define DET(field, n, name)                                  \
    snprintf(what, sizeof what, "%s %s", tag, name);         \
    check_same_bits(what, a->field, b->field, n)
    DET(ln_dx, nx, "layernorm dx");
    DET(ln_dw, in->D, "layernorm dw");
    DET(ln_dm, nm, "layernorm dmod");
    DET(mm_db, in->OC, "matmul dbias");
    DET(gr_dy, nx, "gated dy");
    DET(gr_dm, nm, "gated dmod");
    if (att_exact) {
        DET(att_d, nq, "attention dqkv");
    } else {
        snprintf(what, sizeof what, "%s attention dqkv", tag);
        assert_int_equal(tu_compare_f32(what, a->att_d, b->att_d, nq, 1e-6f, 1e-6f), 0);
    }
#undef DET
}

static void det_free(det_out *o) {
    free(o->ln_dx), free(o->ln_dw), free(o->ln_dm), free(o->mm_db), free(o->gr_dy);
    free(o->gr_dm), free(o->att_d);
}

static void test_determinism(void **state) {
    det_in in = {.B = 4, .T = 256, .D = 130, .H = 4, .hd = 32};
    in.N = in.B * in.T, in.OC = in.D;
    size_t nx = (size_t)in.B * in.T * in.D, nm = (size_t)in.B * 4 * in.D;
    int Da = in.H * in.hd;
    size_t nq = (size_t)in.B * in.T * 3 * Da;
    in.x = rand_buf(nx, 1), in.w = rand_buf(in.D, 1), in.mod = rand_buf(nm, 0.5f);
    in.xhat = sm_malloc(sizeof(float) * nx), in.rstd = sm_malloc(sizeof(float) * in.B * in.T);
    in.r = rand_buf(nx, 1), in.y = rand_buf(nx, 1), in.qkv = rand_buf(nq, 1.5f);
    in.ra = rand_buf((size_t)in.B * in.T * Da, 1);
    in.att = sm_malloc(sizeof(float) * in.B * in.H * in.T * in.T);
    float *out = sm_malloc(sizeof(float) * nx);
    layernorm_modulate_forward_train(out, in.xhat, in.rstd, in.x, in.w, in.mod + in.D,
                                     in.mod + 2 * in.D, 4 * in.D, in.B, in.T, in.D);
    attention_forward_train(out, in.att, in.qkv, in.B, in.T, in.H, in.hd, 0);

    int saved = kernels_get_threads();
    kernels_set_threads(2);
    det_out a = det_run(&in), b = det_run(&in);
    det_compare("2 threads, twice:", &a, &b, &in, 1);
    /* the column-split reductions do not even depend on the thread count */
    kernels_set_threads(1);
    det_out c = det_run(&in);
    det_compare("1 vs 2 threads:", &a, &c, &in, 0);
    kernels_set_threads(saved);
    det_free(&a), det_free(&b), det_free(&c);
    free(in.x), free(in.w), free(in.mod), free(in.xhat), free(in.rstd), free(in.r), free(in.y);
    free(in.qkv), free(in.ra), free(in.att), free(out);
}

int main(void) {
    rng_seed(&g_rng, TEST_SEED);
    kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_grad),     cmocka_unit_test(test_layernorm_grad),
        cmocka_unit_test(test_rope_grad),       cmocka_unit_test(test_attention_grad),
        cmocka_unit_test(test_gelu_grad),       cmocka_unit_test(test_silu_grad),
        cmocka_unit_test(test_gated_residual_grad), cmocka_unit_test(test_accumulates),
        cmocka_unit_test(test_determinism),     cmocka_unit_test(test_rmsnorm_swiglu_grad),
        cmocka_unit_test(test_rope_qk_grad),    cmocka_unit_test(test_linear_backward_input),
    };
    return TU_RUN_PER_ISA("backward", tests);
}
