/* softmask.c — see softmask.h and docs/DESIGN.md §3. */
#include "softmask/softmask.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "base/jsonutil.h"
#include "base/util.h"
#include "compute/gemm.h"
#include "compute/kernels.h"

/* The names transparency_config.json uses (IBM coding/patches/dream_sm.patch, SMArgs). */
static const sm_enum_entry k_algs[] = {{"mixinputs_with_topk", SM_ALG_TOPK},
                                       {"mixinputs_with_temp", SM_ALG_TEMP},
                                       {"none", -1}};
static const sm_enum_entry k_schedules[] = {{"none", SM_SCHEDULE_NONE},
                                            {"linear", SM_SCHEDULE_LINEAR},
                                            {"stepwise", SM_SCHEDULE_STEPWISE}};

void sm_params_default(sm_params *p) {
    p->enabled = 1;
    p->scale = 0.0f;
    p->centre = -0.75f;
    p->steepness = 10.0f / 1.5f;
    p->k = 3;
    p->alg = SM_ALG_TOPK;
    p->temp = 1.0f;
    p->schedule = SM_SCHEDULE_NONE;
}

int sm_params_untrained(const sm_params *p) { return p->enabled && p->scale < SM_UNTRAINED_SCALE; }

const char *sm_params_describe(const sm_params *p, char *buf, size_t cap) {
    if (!sm_params_untrained(p)) {
        snprintf(buf, cap, "%s", p->enabled ? "on" : "off");
    } else {
        char mix[32];
        if (p->alg == SM_ALG_TEMP) snprintf(mix, sizeof mix, "temp=%g", (double)p->temp);
        else snprintf(mix, sizeof mix, "k=%d", p->k);
        snprintf(buf, cap, "on (%s, λ scale %.1e: untrained, the feedback barely changes the input)", mix,
                 (double)p->scale);
    }
    return buf;
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
    if (p->alg == SM_ALG_TEMP && !(isfinite(p->temp) && p->temp > 0.0f))
        return SM_ERR("soft-masking temperature %g must be a finite number > 0", p->temp);
    return 0;
}

/* The enum value of the string at key (dflt when absent); an unknown value or a value that is
 * not a string is an error naming the file and the key. */
static int enum_field(const cJSON *root, const char *key, const sm_enum_entry *table, size_t n,
                    int dflt, int *out, const char *path) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = dflt;
    if (!item) return 0;
    if (!cJSON_IsString(item)) return SM_ERR("%s: %s must be a string", path, key);
    if (sm_enum_parse("sm_params_load_json", table, n, item->valuestring, out, key))
        return sm_wrap_error("%s", path);
    return 0;
}

int sm_params_load_json(sm_params *p, const char *path) {
    char *text;
    if (sm_read_file(path, 1 << 20, &text, NULL)) return -1;
    cJSON *root = json_parse_object(text, path);
    free(text);
    if (!root) return -1;
    int rc = -1, alg, schedule, k;
    double scale, centre, steep, temp;
    if (enum_field(root, "transparency_alg", k_algs, SM_ENUM_COUNT(k_algs), SM_ALG_TOPK, &alg,
                 path) ||
        enum_field(root, "transparency_scheduling", k_schedules, SM_ENUM_COUNT(k_schedules),
                 SM_SCHEDULE_NONE, &schedule, path))
        goto done;
    if (alg < 0) { /* "none": no soft-masking, and the reference writes no values */
        p->enabled = 0;
        rc = 0;
        goto done;
    }
    if (json_get_double(root, "transparency_scale", 0, 1, 0, 1, &scale, path) ||
        json_get_double(root, "transparency_centre", -1e6, 0, 0, 1, &centre, path) ||
        json_get_double(root, "transparency_steepness", 1e-12, 1e6, 0, 1, &steep, path) ||
        json_get_int(root, "mixinputs_k", 1, SM_MAX_K, p->k, &k, path) ||
        json_get_double(root, "mixture_temp", 1e-12, 1e6, 1.0, 0, &temp, path))
        goto done;
    p->scale = (float)scale;
    p->centre = (float)centre;
    p->steepness = (float)steep;
    p->k = k;
    p->alg = (sm_alg)alg;
    p->temp = (float)temp;
    p->schedule = (sm_schedule)schedule;
    p->enabled = 1;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int sm_params_save_json(const sm_params *p, const char *path) {
    char temp[32], buf[512];
    snprintf(temp, sizeof temp, "%.9g", p->temp);
    if (!strpbrk(temp, ".en")) strcat(temp, ".0"); /* a JSON float, as Python writes it */
    int n = snprintf(buf, sizeof buf,
                     "{\"transparency_alg\": \"%s\", \"transparency_scale\": %.9g, "
                     "\"transparency_centre\": %.9g, \"transparency_steepness\": %.9g, "
                     "\"mixinputs_k\": %d, \"mixture_temp\": %s, "
                     "\"transparency_scheduling\": \"%s\"}\n",
                     SM_ENUM_NAME(k_algs, p->alg), p->scale, p->centre, p->steepness, p->k, temp,
                     SM_ENUM_NAME(k_schedules, p->schedule));
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

float sm_scheduled_scale(const sm_params *p, int masked, int masked0) {
    const double t = masked0 ? (double)masked / masked0 : 1.0;
    switch (p->schedule) {
    case SM_SCHEDULE_LINEAR: return (float)(p->scale * t);
    case SM_SCHEDULE_STEPWISE: return t > 0.5 ? p->scale : 0.0f;
    default: return p->scale;
    }
}

sm_params sm_params_at(const sm_params *p, int masked, int masked0) {
    sm_params q = *p;
    q.scale = sm_scheduled_scale(p, masked, masked0);
    q.schedule = SM_SCHEDULE_NONE;
    return q;
}

/* mixinputs_with_temp: probs = softmax(row / temp), negH from it. */
static void feedback_tempered(const sm_params *p, const float *row, int V, sm_feedback *f,
                              float *probs) {
    for (int v = 0; v < V; v++) probs[v] = row[v] / p->temp;
    memset(f, 0, sizeof *f);
    f->neg_h = row_neg_entropy(probs, V);
    softmax_row(probs, V);
    f->probs = probs;
    f->lambda = sm_lambda(p, f->neg_h);
}

void sm_feedback_from_row(const sm_params *p, const float *row, int V, sm_feedback *f,
                          float *probs) {
    if (p->alg == SM_ALG_TEMP) {
        feedback_tempered(p, row, V, f, probs);
        return;
    }
    float top[SM_MAX_K];
    f->probs = NULL;
    row_topk(row, V, p->k, f->idx, top);
    f->neg_h = row_neg_entropy_max(row, V, top[0]);
    double ps = 0.0; /* π = softmax over the k largest entries */
    for (int i = 0; i < p->k; i++) ps += exp((double)top[i] - top[0]);
    for (int i = 0; i < p->k; i++) f->pi[i] = (float)(exp((double)top[i] - top[0]) / ps);
    f->lambda = sm_lambda(p, f->neg_h);
}

void sm_feedback_from_token(const sm_params *p, int32_t token, sm_feedback *f) {
    f->probs = NULL;
    for (int i = 0; i < p->k; i++) {
        f->idx[i] = token;
        f->pi[i] = i == 0 ? 1.0f : 0.0f;
    }
    f->neg_h = 0.0f;
    f->lambda = sm_lambda(p, 0.0f);
}

void sm_feedback_canvas(const sm_params *p, const int32_t *x, int B, int T, int32_t mask_id,
                        const float *rows, int V, int shift, sm_feedback *fb, float *probs) {
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < (size_t)B * T; i++) {
        memset(&fb[i], 0, sizeof fb[i]);
        if (x[i] != mask_id) continue;
        const size_t row = shift && i % T > 0 ? i - 1 : i;
        sm_feedback_from_row(p, rows + row * V, V, &fb[i], probs ? probs + i * V : NULL);
    }
}

size_t sm_feedback_probs_floats(const sm_params *p, size_t n, int V) {
    return p->alg == SM_ALG_TEMP ? sm_size_mul(n, (size_t)V) : 0;
}

float *sm_feedback_probs_alloc(const sm_params *p, size_t n, int V) {
    const size_t floats = sm_feedback_probs_floats(p, n, V);
    return floats ? sm_malloc(sizeof(float) * floats) : NULL;
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

/* The rows of tempered feedback: out[i] = Σ_v w_v·E[v] with w = λ·probs + (1−λ)·onehot(mask),
 * the reference's p_out @ E, as products over blocks of the vocabulary. */
static void mix_tempered(float *out, int D, const size_t *rows, size_t n, int32_t mask_id,
                         int V, const sm_feedback *fb, sm_embed_fn embed, void *ctx) {
    enum { BLOCK = 512 };
    float *acc = sm_calloc(n * (size_t)D, sizeof(float));
    float *w = sm_malloc(sizeof(float) * n * BLOCK), *e = sm_malloc(sizeof(float) * BLOCK * D);
    int32_t ids[BLOCK];
    for (int v0 = 0; v0 < V; v0 += BLOCK) {
        const int nb = V - v0 < BLOCK ? V - v0 : BLOCK;
        for (int j = 0; j < nb; j++) ids[j] = v0 + j;
        embed(ctx, ids, nb, e);
        for (size_t r = 0; r < n; r++) {
            const sm_feedback *f = &fb[rows[r]];
            for (int j = 0; j < nb; j++) {
                w[r * nb + j] = f->lambda * f->probs[v0 + j];
                if (v0 + j == mask_id) w[r * nb + j] += 1.0f - f->lambda;
            }
        }
        gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, (int)n, D, nb, 1.0f, w, nb, e, D, 1.0f, acc, D);
    }
    for (size_t r = 0; r < n; r++)
        memcpy(out + rows[r] * D, acc + r * (size_t)D, sizeof(float) * D);
    free(acc), free(w), free(e);
}

void sm_mix_inputs(float *out, int D, size_t n, const int32_t *ids, int32_t mask_id,
                   int vocab_size, const sm_params *p, const sm_feedback *fb, sm_embed_fn embed,
                   void *ctx) {
    const int k = p->k;
    size_t ntemp = 0, *temp_rows = NULL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == mask_id && fb[i].lambda != 0.0f && fb[i].probs) {
            if (!temp_rows) temp_rows = sm_malloc(sizeof(size_t) * n);
            temp_rows[ntemp++] = i;
        }
    if (ntemp) mix_tempered(out, D, temp_rows, ntemp, mask_id, vocab_size, fb, embed, ctx);
    free(temp_rows);
    /* a few hundred rows of a small model mix in microseconds: less than starting threads */
    const int parallel = (double)n * D * (k + 1) >= (double)(1 << 20);
#pragma omp parallel if (parallel)
    {
        float *e_mask = NULL, *e_top = NULL; /* looked up by a thread when it meets a mix */
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++) {
            if (ids[i] != mask_id || fb[i].lambda == 0.0f || fb[i].probs) continue;
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
