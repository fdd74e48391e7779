/* softmask.c — see softmask.h and DESIGN §3. */
#include "softmask/softmask.h"

#include <string.h>

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
    f->neg_h = row_neg_entropy(row, V);
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

void sm_mix_rows(float *out, int D, const float *e_mask, const float *const *e_top,
                 const sm_params *p, const sm_feedback *f) {
    const float w0 = 1.0f - f->lambda;
    for (int d = 0; d < D; d++) out[d] = e_mask[d] * w0;
    for (int j = 0; j < p->k; j++) {
        const float w = f->lambda * f->pi[j];
        for (int d = 0; d < D; d++) out[d] += e_top[j][d] * w;
    }
}

void sm_build_input(float *x_out, const dit_model *m, const sm_params *p, const int32_t *x,
                    size_t n, const float *prev, const int32_t *row_of,
                    const int32_t *prev_token) {
    const int D = m->cfg.hidden, V = m->cfg.vocab_size, mask_id = m->cfg.mask_id;
#pragma omp parallel
    {
        float *rows = sm_malloc(sizeof(float) * (size_t)(p->k + 1) * D), *e_mask = rows;
        const float *e_top[SM_MAX_K];
        for (int j = 0; j < p->k; j++) e_top[j] = rows + (size_t)(j + 1) * D;
        dit_embedding_row(m, mask_id, e_mask);
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++) {
            float *out = x_out + i * (size_t)D;
            if (x[i] != mask_id) {
                dit_embedding_row(m, x[i], out);
                continue;
            }
            sm_feedback f;
            if (row_of[i] >= 0) {
                sm_feedback_from_row(p, prev + (size_t)row_of[i] * V, V, &f);
            } else {
                SM_ASSERT(prev_token);
                sm_feedback_from_token(p, prev_token[i], &f);
            }
            for (int j = 0; j < p->k; j++) dit_embedding_row(m, f.idx[j], (float *)e_top[j]);
            sm_mix_rows(out, D, e_mask, e_top, p, &f);
        }
        free(rows);
    }
}
