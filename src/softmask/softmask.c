/* softmask.c — see softmask.h and docs/DESIGN.md §3. */
#include "softmask/softmask.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "base/jsonutil.h"
#include "compute/kernels.h"
#include "base/util.h"

void sm_params_default(sm_params *p) {
    p->enabled = 1;
    p->scale = 0.0f;
    p->centre = -0.75f;
    p->steepness = 10.0f / 1.5f;
    p->k = 3;
}

int sm_params_validate(const sm_params *p) {
    if (!(p->scale >= 0.0f && p->scale <= 1.0f))
        return SM_ERR("soft-masking scale %g must be in [0, 1]", p->scale);
    if (!(isfinite(p->centre) && p->centre <= 0.0f))
        return SM_ERR("soft-masking centre %g must be a finite number ≤ 0", p->centre);
    if (!(isfinite(p->steepness) && p->steepness > 0.0f))
        return SM_ERR("soft-masking steepness %g must be a finite number > 0", p->steepness);
    if (p->k < 1 || p->k > SM_MAX_K)
        return SM_ERR("soft-masking k %d must be in [1, %d]", p->k, SM_MAX_K);
    return 0;
}

int sm_params_load_json(sm_params *p, const char *path) {
    char *text;
    if (sm_read_file(path, 1 << 20, &text, NULL)) return -1;
    cJSON *root = json_parse_object(text, path);
    free(text);
    if (!root) return -1;
    int rc = -1;
    double scale, centre, steep, temp;
    int k;
    const char *alg = json_get_string(root, "transparency_alg");
    if (alg && strcmp(alg, "mixinputs_with_topk") != 0) {
        SM_ERR("%s: transparency_alg \"%s\" is not supported (only mixinputs_with_topk)", path, alg);
        goto done;
    }
    if (json_get_double(root, "transparency_scale", 0, 1, 0, 1, &scale, path) ||
        json_get_double(root, "transparency_centre", -1e6, 0, 0, 1, &centre, path) ||
        json_get_double(root, "transparency_steepness", 1e-12, 1e6, 0, 1, &steep, path) ||
        json_get_int(root, "mixinputs_k", 1, SM_MAX_K, p->k, &k, path) ||
        json_get_double(root, "mixture_temp", 0, 1e6, 1.0, 0, &temp, path))
        goto done;
    if (temp != 1.0) {
        SM_ERR("%s: mixture_temp %g is not supported (only 1.0)", path, temp);
        goto done;
    }
    p->scale = (float)scale;
    p->centre = (float)centre;
    p->steepness = (float)steep;
    p->k = k;
    p->enabled = 1;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int sm_params_save_json(const sm_params *p, const char *path) {
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"transparency_alg\": \"mixinputs_with_topk\", \"transparency_scale\": %.9g, "
                     "\"transparency_centre\": %.9g, \"transparency_steepness\": %.9g, "
                     "\"mixinputs_k\": %d, \"mixture_temp\": 1.0, "
                     "\"transparency_scheduling\": \"none\"}\n",
                     p->scale, p->centre, p->steepness, p->k);
    return sm_write_file_atomic(path, buf, (size_t)n);
}

static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
static float softplus_inv(float y) { return y > 20.0f ? y : logf(expm1f(y)); }

void sm_params_from_raw(sm_params *p, float raw_scale, float raw_centre, float raw_steep) {
    p->scale = 1.0f / (1.0f + expf(-raw_scale));
    p->centre = -softplus(raw_centre) - 1e-6f;
    p->steepness = softplus(raw_steep) + 1e-6f;
}

void sm_params_to_raw(const sm_params *p, float *raw_scale, float *raw_centre, float *raw_steep) {
    /* torch.logit(x, eps=1e-6) clamps x to [eps, 1 − eps] */
    float s = fminf(fmaxf(p->scale, 1e-6f), 1.0f - 1e-6f);
    *raw_scale = logf(s / (1.0f - s));
    *raw_centre = softplus_inv(-p->centre);
    *raw_steep = softplus_inv(p->steepness);
}

float sm_lambda(const sm_params *p, float neg_h) {
    return p->scale / (1.0f + expf(-p->steepness * (neg_h - p->centre)));
}

void sm_feedback_from_row(const sm_params *p, const float *row, int V, sm_feedback *f) {
    float top[SM_MAX_K];
    row_topk(row, V, p->k, f->idx, top);
    f->neg_h = row_neg_entropy_max(row, V, top[0]);
    double ps = 0.0; /* π = softmax over the k largest entries */
    for (int i = 0; i < p->k; i++) ps += exp((double)top[i] - top[0]);
    for (int i = 0; i < p->k; i++) f->pi[i] = (float)(exp((double)top[i] - top[0]) / ps);
    f->lambda = sm_lambda(p, f->neg_h);
}

void sm_feedback_from_token(const sm_params *p, int32_t token, sm_feedback *f) {
    for (int i = 0; i < p->k; i++) {
        f->idx[i] = token;
        f->pi[i] = i == 0 ? 1.0f : 0.0f;
    }
    f->neg_h = 0.0f;
    f->lambda = sm_lambda(p, 0.0f);
}

void sm_feedback_canvas(const sm_params *p, const int32_t *x, int B, int T, int32_t mask_id,
                        const float *rows, int V, int shift, sm_feedback *fb) {
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < (size_t)B * T; i++) {
        memset(&fb[i], 0, sizeof fb[i]);
        if (x[i] != mask_id) continue;
        const size_t row = shift && i % T > 0 ? i - 1 : i;
        sm_feedback_from_row(p, rows + row * V, V, &fb[i]);
    }
}

/* out[D] = (1−λ)·e_mask + λ·Σ_j π_j·e_j over the k rows of e_top. */
static void mix_row(float *out, int D, const float *e_mask, const float *e_top, int k,
                    const sm_feedback *f) {
    const float w0 = 1.0f - f->lambda;
    for (int d = 0; d < D; d++) out[d] = e_mask[d] * w0;
    for (int j = 0; j < k; j++) {
        const float w = f->lambda * f->pi[j], *e = e_top + (size_t)j * D;
        for (int d = 0; d < D; d++) out[d] += e[d] * w;
    }
}

void sm_mix_inputs(float *out, int D, size_t n, const int32_t *ids, int32_t mask_id,
                   const sm_params *p, const sm_feedback *fb, sm_embed_fn embed, void *ctx) {
    const int k = p->k;
    /* a few hundred rows of a small model mix in microseconds: less than starting threads */
    const int parallel = (double)n * D * (k + 1) >= (double)(1 << 20);
#pragma omp parallel if (parallel)
    {
        float *e_mask = NULL, *e_top = NULL; /* looked up by a thread when it meets a mix */
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++) {
            if (ids[i] != mask_id || fb[i].lambda == 0.0f) continue;
            if (!e_mask) {
                e_mask = sm_malloc(sizeof(float) * (size_t)(k + 1) * D);
                e_top = e_mask + D;
                embed(ctx, &mask_id, 1, e_mask);
            }
            embed(ctx, fb[i].idx, k, e_top);
            mix_row(out + i * (size_t)D, D, e_mask, e_top, k, &fb[i]);
        }
        free(e_mask);
    }
}
