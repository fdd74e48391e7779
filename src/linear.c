/* linear.c — linear layers on weights kept in their checkpoint dtype (see linear.h).
 *
 * bf16, f16 and q8 weights are widened to fp32 a panel of rows at a time into a thread-local
 * buffer and multiplied with sgemm (single-threaded inside our OpenMP region, NOTES.md). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels.h"
#include "linear.h"
#include "safetensors.h"
#include "util.h"

/* ---- element access (memcpy: mmapped data need not be aligned for UBSan's taste) ------- */

static inline float w_elem(const linear_w *w, size_t i) {
    const unsigned char *p = w->data;
    uint16_t h;
    switch (w->type) {
    case WT_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case WT_BF16: memcpy(&h, p + 2 * i, 2); return st_bf16_to_f32(h);
    case WT_F16: memcpy(&h, p + 2 * i, 2); return st_f16_to_f32(h);
    case WT_Q8: return (float)((const int8_t *)p)[i];
    }
    SM_ASSERT(0);
    return 0.0f;
}

/* Row r of W as fp32 (q8: the integer values, unscaled). */
static void widen_row(float *dst, const linear_w *w, int r) {
    size_t base = (size_t)r * (size_t)w->in;
    for (int k = 0; k < w->in; k++) dst[k] = w_elem(w, base + (size_t)k);
}

static void check_w(const linear_w *w) {
    SM_ASSERT(w && w->data && w->out > 0 && w->in > 0);
    SM_ASSERT(w->type >= WT_F32 && w->type <= WT_Q8);
    SM_ASSERT((w->type == WT_Q8) == (w->scales != NULL));
}

/* ---- forward ------------------------------------------------------------------------- */

#define PANEL_ROWS 64

void linear_forward(float *out, const float *inp, const linear_w *w, const float *bias, int N) {
    check_w(w);
    SM_ASSERT(N >= 0);
    if (N == 0) return;
    const int IC = w->in, OC = w->out;
    if (w->type == WT_F32) {
        matmul_forward(out, inp, w->data, bias, N, IC, OC);
        return;
    }
    int npanels = (OC + PANEL_ROWS - 1) / PANEL_ROWS;
#pragma omp parallel
    {
        float *panel = sm_aligned_alloc(sizeof(float) * PANEL_ROWS * (size_t)IC);
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < npanels; p++) {
            int r0 = p * PANEL_ROWS, nr = OC - r0 < PANEL_ROWS ? OC - r0 : PANEL_ROWS;
            for (int r = 0; r < nr; r++) widen_row(panel + (size_t)r * IC, w, r0 + r);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, nr, IC, 1.0f, inp, IC, panel,
                        IC, 0.0f, out + r0, OC);
            for (int n = 0; n < N; n++) {
                float *o = out + (size_t)n * OC + r0;
                for (int r = 0; r < nr; r++) {
                    float v = o[r];
                    if (w->type == WT_Q8) v *= w->scales[r0 + r];
                    o[r] = bias ? v + bias[r0 + r] : v;
                }
            }
        }
        free(panel);
    }
}

/* Reference: fp32 accumulation in index order; q8 is scale · Σ q·x. */
void linear_forward_ref(float *out, const float *inp, const linear_w *w, const float *bias, int N) {
    check_w(w);
    const int IC = w->in, OC = w->out;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float acc = 0.0f;
            for (int k = 0; k < IC; k++)
                acc += inp[(size_t)n * IC + k] * w_elem(w, (size_t)o * IC + k);
            if (w->type == WT_Q8) acc *= w->scales[o];
            out[(size_t)n * OC + o] = bias ? acc + bias[o] : acc;
        }
}

/* ---- rows, quantisation -------------------------------------------------------------- */

void linear_rows_f32(float *out, const linear_w *w, const int32_t *rows, int n) {
    check_w(w);
    for (int i = 0; i < n; i++) {
        SM_ASSERT(rows[i] >= 0 && rows[i] < w->out);
        float *dst = out + (size_t)i * w->in;
        widen_row(dst, w, rows[i]);
        if (w->type == WT_Q8)
            for (int k = 0; k < w->in; k++) dst[k] *= w->scales[rows[i]];
    }
}

int linear_quantize_q8(linear_w *dst, const linear_w *src) {
    check_w(src);
    memset(dst, 0, sizeof *dst);
    if (src->type == WT_Q8) return SM_ERR("weights are already q8");
    const int IC = src->in, OC = src->out;
    size_t nq = (size_t)OC * (size_t)IC, qbytes = (nq + 63) & ~(size_t)63;
    unsigned char *buf = sm_aligned_alloc(qbytes + sizeof(float) * (size_t)OC);
    int8_t *q = (int8_t *)buf;
    float *scales = (float *)(buf + qbytes);
    int bad_row = -1;
#pragma omp parallel
    {
        float *row = sm_malloc(sizeof(float) * (size_t)IC);
#pragma omp for schedule(static)
        for (int r = 0; r < OC; r++) {
            widen_row(row, src, r);
            float amax = 0.0f;
            for (int k = 0; k < IC; k++) amax = fmaxf(amax, fabsf(row[k]));
            if (!isfinite(amax)) {
#pragma omp critical(linear_q8_bad)
                if (bad_row < 0 || r < bad_row) bad_row = r;
                amax = 0.0f;
            }
            /* symmetric: w ≈ scale · q, q ∈ [−127, 127]; a zero row has scale 0, q = 0 */
            float scale = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            scales[r] = scale;
            int8_t *qr = q + (size_t)r * IC;
            for (int k = 0; k < IC; k++) {
                float v = nearbyintf(row[k] * inv);
                qr[k] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
            }
        }
        free(row);
    }
    if (bad_row >= 0) {
        free(buf);
        return SM_ERR("row %d of a [%d, %d] weight has a non-finite value", bad_row, OC, IC);
    }
    dst->type = WT_Q8;
    dst->out = OC;
    dst->in = IC;
    dst->data = q;
    dst->scales = scales;
    dst->owned = buf;
    return 0;
}

void linear_free(linear_w *w) {
    if (!w) return;
    free(w->owned);
    memset(w, 0, sizeof *w);
}

const char *linear_kernel_name(wtype t) {
    switch (t) {
    case WT_F32: return "f32: sgemm";
    case WT_BF16: return "bf16: fp32 panels + sgemm";
    case WT_F16: return "f16: fp32 panels + sgemm";
    case WT_Q8: return "q8: fp32 panels + sgemm";
    }
    return "unknown";
}
