/* jsonutil.c — see jsonutil.h. */
#include "base/jsonutil.h"

#include <math.h>
#include <string.h>

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

int json_check_unique_keys(const cJSON *obj, const char *what) {
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && !strcmp(a->string, b->string))
                return SM_ERR("%s: duplicate key \"%s\"", what, a->string);
    return 0;
}

cJSON *json_parse_model_config(const char *text, const char *what, const char *family,
                               const char *const *types, int *which) {
    cJSON *root = json_parse_object(text, what);
    if (!root) return NULL;
    const char *type = json_get_string(root, "model_type");
    char expected[128] = "";
    for (int i = 0; types[i]; i++) {
        if (type && !strcmp(type, types[i])) {
            *which = i;
            return root;
        }
        size_t len = strlen(expected);
        snprintf(expected + len, sizeof expected - len, "%s\"%s\"", i ? " or " : "", types[i]);
    }
    if (!type)
        SM_ERR("%s: missing string \"model_type\" (%s config has %s)", what, family, expected);
    else
        SM_ERR("%s: model_type \"%s\" is not supported: not %s model (expected %s)", what, type,
               family, expected);
    cJSON_Delete(root);
    return NULL;
}
