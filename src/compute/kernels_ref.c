/* kernels_ref.c — plain reference twins of the kernels in kernels.c: naive loops, libm,
 * double accumulators. Test oracles only; see kernels.h for the contracts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compute/kernels.h"
#include "base/util.h"

void matmul_forward_ref(float *out, const float *inp, const float *w, const float *bias, int N,
                        int IC, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < IC; i++) acc += (double)inp[(size_t)n * IC + i] * w[(size_t)o * IC + i];
            out[(size_t)n * OC + o] = (float)acc;
        }
}

void layernorm_modulate_forward_ref(float *out, const float *x, const float *w,
                                    const float *shift, const float *scale, int mod_stride,
                                    int B, int T, int D) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *xr = x + ((size_t)b * T + t) * D;
            float *o = out + ((size_t)b * T + t) * D;
            double mean = 0, var = 0;
            for (int i = 0; i < D; i++) mean += xr[i];
            mean /= D;
            for (int i = 0; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
            var /= D;
            double rstd = 1.0 / sqrt(var + 1e-5);
            const float *sh = shift + (size_t)b * mod_stride, *sc = scale + (size_t)b * mod_stride;
            for (int i = 0; i < D; i++)
                o[i] = (float)(((xr[i] - mean) * rstd * w[i]) * (1.0 + sc[i]) + sh[i]);
        }
}

void rope_forward_ref(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                      int hd) {
    int half = hd / 2;
    float *tmp = sm_malloc(sizeof(float) * (size_t)hd);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int part = 0; part < 2; part++) /* q, k; v is untouched */
                for (int h = 0; h < H; h++) {
                    float *v = qkv + ((((size_t)b * T + t) * 3 + part) * H + h) * hd;
                    for (int i = 0; i < hd; i++) {
                        float c = cos_t[(size_t)t * half + i % half];
                        float s = sin_t[(size_t)t * half + i % half];
                        float rot = i < half ? -v[i + half] : v[i - half];
                        tmp[i] = v[i] * c + rot * s;
                    }
                    memcpy(v, tmp, sizeof(float) * (size_t)hd);
                }
    free(tmp);
}

void attention_forward_ref(float *out, const float *qkv, int B, int T, int H, int hd,
                           int causal) {
    double *p = sm_malloc(sizeof(double) * (size_t)T);
    double scale = 1.0 / sqrt((double)hd);
    size_t D = (size_t)H * hd;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * 3 * D + (size_t)h * hd;
                int jmax = causal ? i + 1 : T;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < jmax; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * 3 * D + D + (size_t)h * hd;
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += (double)q[d] * k[d];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j < jmax; j++) sum += (p[j] = exp(p[j] - mx));
                float *o = out + ((size_t)b * T + i) * D + (size_t)h * hd;
                for (int d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int j = 0; j < jmax; j++)
                        acc += p[j] * qkv[((size_t)b * T + j) * 3 * D + 2 * D + (size_t)h * hd + d];
                    o[d] = (float)(acc / sum);
                }
            }
    free(p);
}

void gelu_tanh_forward_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))));
    }
}

void gated_residual_forward_ref(float *x, const float *y, const float *gate, int mod_stride,
                                int B, int T, int D) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < D; i++) {
                size_t at = ((size_t)b * T + t) * D + i;
                x[at] += gate[(size_t)b * mod_stride + i] * y[at];
            }
}

int log_softmax_row_ref(float *x, int n) {
    double mx = -INFINITY, sum = 0;
    int finite = 1;
    for (int i = 0; i < n; i++) {
        if (x[i] > mx) mx = x[i];
        finite &= isfinite(x[i]) != 0;
    }
    if (!finite) return -1;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < n; i++) x[i] = (float)(x[i] - lse);
    return 0;
}

float row_neg_entropy_ref(const float *x, int n) {
    double mx = -INFINITY, s = 0, acc = 0;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) {
        double p = exp((double)x[i] - mx) / s;
        acc += p * log(p + 1e-10); /* the reference formula of docs/DESIGN.md §3 */
    }
    return (float)acc;
}
