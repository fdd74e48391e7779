/* jsonutil.h — range-checked field access on cJSON objects (config files are untrusted). */
#ifndef SMDLM_JSONUTIL_H
#define SMDLM_JSONUTIL_H

#include <cjson/cJSON.h>

/* Parses text that must be one JSON object (with unique keys). NULL on error, with a
 * message naming `what` and the byte offset of a syntax error. */
cJSON *json_parse_object(const char *text, const char *what);

/* The string value of key, or NULL when absent or not a string. */
const char *json_get_string(const cJSON *obj, const char *key);
/* Integer field in [lo, hi]. When absent: *out = dflt, except that dflt == -1 makes the key
 * required. Non-integral numbers, strings and out-of-range values are errors
 * naming `what` and the key. */
int json_get_int(const cJSON *obj, const char *key, long lo, long hi, long dflt, int *out,
                 const char *what);
/* Boolean field (true/false); absent → dflt. */
int json_get_bool(const cJSON *obj, const char *key, int dflt, int *out, const char *what);
/* Finite number field in [lo, hi]; absent → *out = dflt unless required. */
int json_get_double(const cJSON *obj, const char *key, double lo, double hi, double dflt,
                    int required, double *out, const char *what);

/* Rejects objects that repeat a key (cJSON keeps both and lookups see the first). */
int json_check_unique_keys(const cJSON *obj, const char *what);

/* A model's config.json: the object, with its string "model_type" one of types[]
 * (NULL-terminated) and *which its index. NULL with a message naming what, the family
 * ("an MDLM", "a GPT-2", …) and the types it expects otherwise. */
cJSON *json_parse_model_config(const char *text, const char *what, const char *family,
                               const char *const *types, int *which);

#endif
