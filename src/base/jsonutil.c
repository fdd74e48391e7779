/* jsonutil.c — see jsonutil.h. */
#include "base/jsonutil.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/siphash.h"
#include "base/util.h"

cJSON *json_parse_object(const char *text, const char *what) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        SM_ERR("%s: invalid JSON at byte %zu", what, end ? (size_t)(end - text) : (size_t)0);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        SM_ERR("%s: expected a JSON object", what);
        return NULL;
    }
    if (json_check_unique_keys(root, what)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

const char *json_get_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int json_get_int(const cJSON *obj, const char *key, long lo, long hi, long dflt, int *out,
                 const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (dflt == -1) return SM_ERR("%s: missing integer \"%s\"", what, key);
        *out = (int)dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return SM_ERR("%s: \"%s\" must be an integer", what, key);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return SM_ERR("%s: \"%s\" = %.17g out of range [%ld, %ld]", what, key, v->valuedouble,
                      lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

int json_get_bool(const cJSON *obj, const char *key, int dflt, int *out, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return SM_ERR("%s: \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int json_get_double(const cJSON *obj, const char *key, double lo, double hi, double dflt,
                    int required, double *out, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required) return SM_ERR("%s: missing number \"%s\"", what, key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return SM_ERR("%s: \"%s\" must be a finite number", what, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return SM_ERR("%s: \"%s\" = %g out of range [%g, %g]", what, key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

/* One pass over the keys with an open-addressing set of first occurrences (linear in the
 * object's size; config files come from users). The keys are hashed under this process's
 * random key (sm_keyed_hash): with a fixed hash, keys that all land in one slot can be
 * computed in advance and make the pass quadratic again. The error names the same key as
 * comparing every pair would: the earliest one that occurs again. */
int json_check_unique_keys(const cJSON *obj, const char *what) {
    size_t n = 0;
    for (const cJSON *a = obj->child; a; a = a->next) n++;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    const cJSON **slot = sm_calloc(cap, sizeof *slot);
    size_t *first = sm_malloc(cap * sizeof *first); /* position of the slot's key */
    size_t pos = 0, dup = SIZE_MAX;
    const cJSON *dup_key = NULL;
    for (const cJSON *a = obj->child; a; a = a->next, pos++) {
        if (!a->string) continue;
        size_t i = (size_t)sm_keyed_hash(a->string) & (cap - 1);
        while (slot[i] && strcmp(slot[i]->string, a->string)) i = (i + 1) & (cap - 1);
        if (!slot[i]) {
            slot[i] = a;
            first[i] = pos;
        } else if (first[i] < dup) {
            dup = first[i];
            dup_key = slot[i];
        }
    }
    free(slot);
    free(first);
    return dup_key ? SM_ERR("%s: duplicate key \"%s\"", what, dup_key->string) : 0;
}

int json_model_config_type(const cJSON *root, const char *what, const char *family,
                           const char *const *types, int *which) {
    const char *type = json_get_string(root, "model_type");
    char expected[128] = "";
    for (int i = 0; types[i]; i++) {
        if (type && !strcmp(type, types[i])) {
            *which = i;
            return 0;
        }
        size_t len = strlen(expected);
        snprintf(expected + len, sizeof expected - len, "%s\"%s\"", i ? " or " : "", types[i]);
    }
    if (!type)
        return SM_ERR("%s: missing string \"model_type\" (%s config has %s)", what, family,
                      expected);
    return SM_ERR("%s: model_type \"%s\" is not supported: not %s model (expected %s)", what,
                  type, family, expected);
}

cJSON *json_parse_model_config(const char *text, const char *what, const char *family,
                               const char *const *types, int *which) {
    cJSON *root = json_parse_object(text, what);
    if (root && json_model_config_type(root, what, family, types, which)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}
