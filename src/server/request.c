/* request.c — see request.h. */
#include "server/request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/util.h"

#define MAX_STEPS 100000

int srv_error_set(srv_error *e, int status, const char *type, const char *code,
                  const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(e, param, ...) srv_error_set((e), 400, "invalid_request_error", NULL, (param), __VA_ARGS__)

/* Which models a field applies to. */
enum { ANY = 0, ONLY_MDLM, ONLY_DECODER, ONLY_DREAM, ONLY_LLADA, ONLY_COMPLETIONS, ONLY_CHAT };

typedef struct {
    const char *name;
    int scope;
} field_rule;

/* Every field a request may carry; anything else is an error naming it. */
static const field_rule k_fields[] = {
    {"model", ANY}, {"prompt", ONLY_COMPLETIONS}, {"suffix", ONLY_COMPLETIONS},
    {"canvas", ONLY_COMPLETIONS}, {"messages", ONLY_CHAT}, {"max_tokens", ANY},
    {"max_completion_tokens", ANY}, {"temperature", ANY}, {"top_p", ANY}, {"top_k", ANY},
    {"seed", ANY}, {"stop", ANY}, {"n", ANY}, {"stream", ANY}, {"stream_options", ANY},
    {"stream_steps", ANY}, {"user", ANY}, {"logprobs", ANY}, {"echo", ONLY_COMPLETIONS},
    {"presence_penalty", ANY}, {"frequency_penalty", ANY},
    /* smdlm's own */
    {"steps", ANY}, {"softmask", ANY}, {"sampler", ONLY_MDLM}, {"eta", ONLY_MDLM},
    {"noise_removal", ONLY_MDLM}, {"alg", ONLY_DREAM}, {"alg_temp", ONLY_DREAM},
    {"remasking", ONLY_LLADA}, {"block_length", ONLY_DECODER}, {"threshold", ONLY_DECODER},
    {"tokens_per_step", ONLY_DECODER}, {"eos_penalty", ONLY_DECODER}, {"cache", ONLY_DECODER},
    {"cache_refresh", ONLY_DECODER},
};

static const char *scope_text(int scope) {
    switch (scope) {
    case ONLY_MDLM: return "MDLM models";
    case ONLY_DECODER: return "Dream and LLaDA models";
    case ONLY_DREAM: return "Dream models";
    case ONLY_LLADA: return "LLaDA models";
    case ONLY_COMPLETIONS: return "/v1/completions";
    default: return "/v1/chat/completions";
    }
}

static int scope_allows(int scope, smdlm_arch arch, srv_route route) {
    switch (scope) {
    case ONLY_MDLM: return arch == SMDLM_ARCH_MDLM;
    case ONLY_DECODER: return arch != SMDLM_ARCH_MDLM;
    case ONLY_DREAM: return arch == SMDLM_ARCH_DREAM;
    case ONLY_LLADA: return arch == SMDLM_ARCH_LLADA;
    case ONLY_COMPLETIONS: return route == ROUTE_COMPLETIONS;
    case ONLY_CHAT: return route == ROUTE_CHAT;
    default: return 1;
    }
}

static int check_fields(const cJSON *body, smdlm_arch arch, srv_route route, srv_error *e) {
    for (const cJSON *f = body->child; f; f = f->next) {
        size_t i = 0;
        while (i < SM_ENUM_COUNT(k_fields) && strcmp(k_fields[i].name, f->string)) i++;
        if (i == SM_ENUM_COUNT(k_fields))
            return BAD(e, f->string, "unknown field '%s' (docs/SERVER.md lists the fields)",
                       f->string);
        if (!scope_allows(k_fields[i].scope, arch, route))
            return BAD(e, f->string, "'%s' applies to %s only", f->string,
                       scope_text(k_fields[i].scope));
        for (const cJSON *g = f->next; g; g = g->next)
            if (!strcmp(g->string, f->string))
                return BAD(e, f->string, "field '%s' is given twice", f->string);
    }
    return 0;
}

/* ---- typed fields: absent (or null) keeps *out; a value of the wrong type or out of range is
 * an error naming the field ---------------------------------------------------------------- */

static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int get_int(const cJSON *o, const char *name, long lo, long hi, int *out, srv_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return BAD(e, name, "'%s' must be an integer", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return BAD(e, name, "'%s' is %.17g, must be in [%ld, %ld]", name, v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

/* A number in [lo, hi] (lo_open: (lo, hi]). */
static int get_float(const cJSON *o, const char *name, double lo, double hi, int lo_open,
                     float *out, srv_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return BAD(e, name, "'%s' must be a number", name);
    const double d = v->valuedouble;
    if (lo_open ? !(d > lo && d <= hi) : !(d >= lo && d <= hi))
        return BAD(e, name, "'%s' is %.17g, must be in %c%g, %g]", name, d, lo_open ? '(' : '[',
                   lo, hi);
    *out = (float)d;
    return 0;
}

static int get_bool(const cJSON *o, const char *name, int *out, srv_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return BAD(e, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_string(const cJSON *o, const char *name, char *out, size_t cap, srv_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsString(v)) return BAD(e, name, "'%s' must be a string", name);
    if (strlen(v->valuestring) >= cap) return BAD(e, name, "'%s' is too long", name);
    strcpy(out, v->valuestring);
    return 0;
}

/* OpenAI fields smdlm takes only at their neutral value. */
static int check_neutral(const cJSON *o, srv_error *e) {
    static const char *const zero[] = {"presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = field(o, zero[i]);
        if (v && !(cJSON_IsNumber(v) && v->valuedouble == 0.0))
            return BAD(e, zero[i], "'%s' is not supported (only 0)", zero[i]);
    }
    static const char *const off[] = {"logprobs", "echo"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = field(o, off[i]);
        if (v && !cJSON_IsFalse(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0.0))
            return BAD(e, off[i], "'%s' is not supported (only false or null)", off[i]);
    }
    const cJSON *u = field(o, "user");
    if (u && !cJSON_IsString(u)) return BAD(e, "user", "'user' must be a string");
    const cJSON *m = field(o, "model");
    if (m && !cJSON_IsString(m)) return BAD(e, "model", "'model' must be a string");
    return 0;
}

static int parse_stop(const cJSON *o, srv_request *req, srv_error *e) {
    const cJSON *v = field(o, "stop");
    if (!v) return 0;
    if (cJSON_IsString(v)) {
        if (!*v->valuestring) return BAD(e, "stop", "a stop string must not be empty");
        req->stop[req->n_stop++] = sm_strdup(v->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(v)) return BAD(e, "stop", "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(v) > SRV_MAX_STOP)
        return BAD(e, "stop", "'stop' holds at most %d strings", SRV_MAX_STOP);
    for (const cJSON *s = v->child; s; s = s->next) {
        if (!cJSON_IsString(s) || !*s->valuestring)
            return BAD(e, "stop", "every stop entry must be a non-empty string");
        req->stop[req->n_stop++] = sm_strdup(s->valuestring);
    }
    return 0;
}

/* soft-masking: {"enabled": true|false, "scale", "centre", "steepness", "k"}; absent values
 * are the model directory's. */
static int parse_softmask(const cJSON *o, smdlm_softmask *sm, srv_error *e) {
    const cJSON *v = field(o, "softmask");
    if (!v) return 0;
    if (!cJSON_IsObject(v)) return BAD(e, "softmask", "'softmask' must be an object");
    for (const cJSON *f = v->child; f; f = f->next) {
        static const char *const known[] = {"enabled", "scale", "centre", "steepness", "k"};
        size_t i = 0;
        while (i < 5 && strcmp(known[i], f->string)) i++;
        if (i == 5)
            return BAD(e, "softmask", "unknown soft-masking field '%s' (enabled, scale, centre, "
                       "steepness, k)", f->string);
    }
    int enabled = -1;
    if (get_bool(v, "enabled", &enabled, e) || get_float(v, "scale", 0, 1, 0, &sm->scale, e) ||
        get_float(v, "centre", -1e6, 0, 0, &sm->centre, e) ||
        get_float(v, "steepness", 0, 1e6, 1, &sm->steepness, e) ||
        get_int(v, "k", 1, SMDLM_SM_MAX_K, &sm->k, e))
        return -1;
    if (enabled >= 0) sm->mode = enabled ? SMDLM_SM_ON : SMDLM_SM_OFF;
    return 0;
}

static int random_seed(uint64_t *seed, srv_error *e) {
    if (getrandom(seed, sizeof *seed, 0) != (ssize_t)sizeof *seed)
        return srv_error_set(e, 500, "server_error", NULL, "seed", "no random seed available");
    *seed &= (1ULL << 53) - 1; /* a JSON number holds it exactly (the response reports it) */
    return 0;
}

/* The generation settings of the body (everything but the canvas). */
static int parse_settings(const smdlm_model *model, const cJSON *o, srv_request *req,
                          srv_error *e) {
    smdlm_gen_params *gp = &req->gp;
    const smdlm_arch arch = smdlm_model_arch(model);
    int no_noise_removal = -1;
    const cJSON *seed = field(o, "seed");
    if (seed) {
        if (!cJSON_IsNumber(seed) || seed->valuedouble != floor(seed->valuedouble) ||
            seed->valuedouble < 0 || seed->valuedouble > 9007199254740992.0)
            return BAD(e, "seed", "'seed' must be an integer in [0, 2^53]");
        gp->seed = (uint64_t)seed->valuedouble;
    } else if (random_seed(&gp->seed, e))
        return -1;
    float temperature = arch == SMDLM_ARCH_MDLM ? 1.0f : gp->decoder.temperature;
    int *block_length = arch == SMDLM_ARCH_DREAM ? &gp->decoder.dream_block_length /* Fast-dLLM's */
                                                 : &gp->decoder.block_length;
    if (get_int(o, "n", 1, SRV_MAX_N, &gp->n, e) || get_int(o, "steps", 1, MAX_STEPS, &gp->steps, e) ||
        get_float(o, "top_p", 0, 1, 1, &gp->top_p, e) ||
        get_float(o, "temperature", 0, 2, 0, &temperature, e) ||
        get_int(o, "top_k", 0, 1 << 30, &gp->decoder.top_k, e) ||
        get_bool(o, "stream", &req->stream, e) || get_bool(o, "stream_steps", &req->stream_steps, e) ||
        get_string(o, "sampler", req->sampler, sizeof req->sampler, e) ||
        get_string(o, "alg", req->alg, sizeof req->alg, e) ||
        get_string(o, "remasking", req->remasking, sizeof req->remasking, e) ||
        get_string(o, "cache", req->cache, sizeof req->cache, e) ||
        get_float(o, "eta", 0, 1, 0, &gp->mdlm.eta, e) ||
        get_bool(o, "noise_removal", &no_noise_removal, e) ||
        get_float(o, "alg_temp", 0, 1e6, 0, &gp->decoder.alg_temp, e) ||
        get_int(o, "block_length", 1, 1 << 20, block_length, e) ||
        get_float(o, "threshold", 0, 1, 1, &gp->decoder.threshold, e) ||
        get_int(o, "tokens_per_step", 1, 1 << 20, &gp->decoder.tokens_per_step, e) ||
        get_float(o, "eos_penalty", 0, 1e6, 0, &gp->decoder.eos_penalty, e) ||
        get_int(o, "cache_refresh", 0, 1 << 20, &gp->decoder.cache_refresh, e) ||
        parse_softmask(o, &gp->sm, e) || parse_stop(o, req, e) || check_neutral(o, e))
        return -1;
    if (arch == SMDLM_ARCH_MDLM && temperature != 1.0f)
        return BAD(e, "temperature", "MDLM samplers draw from the model's distribution: "
                   "'temperature' must be 1 (or absent)");
    if (arch == SMDLM_ARCH_MDLM && gp->decoder.top_k)
        return BAD(e, "top_k", "'top_k' applies to Dream and LLaDA models only");
    gp->decoder.temperature = temperature;
    if (no_noise_removal >= 0) gp->mdlm.noise_removal = no_noise_removal;
    if (req->stream_steps && !req->stream)
        return BAD(e, "stream_steps", "'stream_steps' needs 'stream': true");
    const cJSON *so = field(o, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so) || (so->child && (strcmp(so->child->string, "include_usage") ||
                                                  so->child->next)))
            return BAD(e, "stream_options", "'stream_options' may hold 'include_usage' only");
        if (get_bool(so, "include_usage", &req->include_usage, e)) return -1;
    }
    return 0;
}

smdlm_gen_params request_gen_params(const srv_request *req) {
    smdlm_gen_params gp = req->gp;
    if (*req->sampler) gp.mdlm.sampler = req->sampler;
    if (*req->alg) gp.decoder.alg = req->alg;
    if (*req->remasking) gp.decoder.remasking = req->remasking;
    if (*req->cache) gp.decoder.cache = req->cache;
    return gp;
}

/* ---- the canvas -------------------------------------------------------------------------- */

/* A growing canvas template. */
typedef struct {
    int32_t *x;
    uint8_t *fixed;
    size_t n, cap;
} canvas_buf;

static void canvas_add(canvas_buf *c, const int32_t *ids, size_t n, int fixed, int32_t mask) {
    if (c->n + n > c->cap) {
        while (c->n + n > c->cap) c->cap = c->cap ? 2 * c->cap : 256;
        c->x = sm_realloc(c->x, sizeof(int32_t) * c->cap);
        c->fixed = sm_realloc(c->fixed, c->cap);
    }
    for (size_t i = 0; i < n; i++) {
        c->x[c->n + i] = ids ? ids[i] : mask;
        c->fixed[c->n + i] = (uint8_t)fixed;
    }
    c->n += n;
}

/* Text (plain, as the model's tokenizer encodes it) appended as fixed tokens. */
static int add_text(const smdlm_model *model, canvas_buf *c, const char *text, const char *param,
                    srv_error *e) {
    if (!*text) return 0;
    int32_t *ids;
    size_t n;
    if (smdlm_tokenize(model, text, 0, &ids, &n))
        return BAD(e, param, "%s: %s", param, smdlm_last_error());
    canvas_add(c, ids, n, 1, 0);
    free(ids);
    return 0;
}

/* Token ids appended as fixed tokens: every entry an integer id of the vocabulary. */
static int add_ids(const smdlm_model *model, canvas_buf *c, const cJSON *arr, const char *param,
                   srv_error *e) {
    const int V = smdlm_vocab_size(model);
    for (const cJSON *t = arr->child; t; t = t->next) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= V)
            return BAD(e, param, "'%s' must hold token ids in [0, %d)", param, V);
        const int32_t id = (int32_t)t->valuedouble;
        canvas_add(c, &id, 1, 1, 0);
    }
    return 0;
}

/* A canvas of n tokens beyond the model's context of maxT. */
static int context_exceeded(srv_error *e, const char *param, size_t n, int maxT) {
    return srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", param,
                         "the canvas has %zu tokens, but the model's context is %d tokens", n,
                         maxT);
}

/* "canvas": [segment, …], a segment being a string (fixed text), {"text": s}, {"tokens":
 * [ids]} or {"mask": n} (n positions to generate). The canvas stops growing as soon as it
 * outgrows the model's context: many mask segments of the context's length each would
 * otherwise ask for gigabytes. */
static int add_segments(const smdlm_model *model, canvas_buf *c, const cJSON *canvas,
                        srv_error *e) {
    if (!cJSON_IsArray(canvas) || !canvas->child)
        return BAD(e, "canvas", "'canvas' must be a non-empty array of segments");
    const int32_t mask = smdlm_mask_id(model);
    const int maxT = smdlm_max_length(model);
    for (const cJSON *s = canvas->child; s; s = s->next) {
        if (c->n > (size_t)maxT) return context_exceeded(e, "canvas", c->n, maxT);
        const cJSON *text = cJSON_IsObject(s) ? field(s, "text") : NULL,
                    *tokens = cJSON_IsObject(s) ? field(s, "tokens") : NULL,
                    *masked = cJSON_IsObject(s) ? field(s, "mask") : NULL;
        if (cJSON_IsString(s)) {
            if (add_text(model, c, s->valuestring, "canvas", e)) return -1;
        } else if (!cJSON_IsObject(s) || cJSON_GetArraySize(s) != 1 ||
                   !(text || tokens || masked)) {
            return BAD(e, "canvas", "a canvas segment is a string, {\"text\": …}, {\"tokens\": "
                       "[…]} or {\"mask\": n}");
        } else if (text) {
            if (!cJSON_IsString(text)) return BAD(e, "canvas", "a text segment must be a string");
            if (add_text(model, c, text->valuestring, "canvas", e)) return -1;
        } else if (tokens) {
            if (!cJSON_IsArray(tokens))
                return BAD(e, "canvas", "a tokens segment must be an array of token ids");
            if (add_ids(model, c, tokens, "canvas", e)) return -1;
        } else {
            if (!cJSON_IsNumber(masked) || masked->valuedouble != floor(masked->valuedouble) ||
                masked->valuedouble < 1 || masked->valuedouble > maxT)
                return BAD(e, "canvas", "a mask segment's count must be an integer in [1, %d]",
                           maxT);
            const size_t count = (size_t)masked->valuedouble;
            if (c->n + count > (size_t)maxT)
                return context_exceeded(e, "canvas", c->n + count, maxT);
            canvas_add(c, NULL, count, 0, mask);
        }
    }
    return 0;
}

/* The conversation of /v1/chat/completions in the model's chat template. */
static int add_messages(const smdlm_model *model, canvas_buf *c, const cJSON *msgs, srv_error *e) {
    if (!cJSON_IsArray(msgs) || !msgs->child)
        return BAD(e, "messages", "'messages' must be a non-empty array");
    const int n = cJSON_GetArraySize(msgs);
    smdlm_chat_message *m = sm_calloc((size_t)n, sizeof *m);
    sm_buf *parts = sm_calloc((size_t)n, sizeof *parts); /* contents given as text parts */
    int i = 0, rc = 0;
    for (const cJSON *msg = msgs->child; msg && !rc; msg = msg->next, i++) {
        const cJSON *role = cJSON_IsObject(msg) ? field(msg, "role") : NULL,
                    *content = cJSON_IsObject(msg) ? field(msg, "content") : NULL;
        for (const cJSON *f = cJSON_IsObject(msg) ? msg->child : NULL; f && !rc; f = f->next)
            if (strcmp(f->string, "role") && strcmp(f->string, "content") && strcmp(f->string, "name"))
                rc = BAD(e, "messages", "message %d: unknown field '%s'", i, f->string);
        if (rc) break;
        if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") &&
                                      strcmp(role->valuestring, "user") &&
                                      strcmp(role->valuestring, "assistant"))) {
            rc = BAD(e, "messages", "message %d: 'role' must be \"system\", \"user\" or "
                     "\"assistant\"", i);
            break;
        }
        m[i].role = role->valuestring;
        if (cJSON_IsString(content)) {
            m[i].content = content->valuestring;
            continue;
        }
        if (!cJSON_IsArray(content)) {
            rc = BAD(e, "messages", "message %d: 'content' must be a string or an array of text "
                     "parts", i);
            break;
        }
        sm_buf_str(&parts[i], "");
        for (const cJSON *p = content->child; p && !rc; p = p->next) {
            const cJSON *type = cJSON_IsObject(p) ? field(p, "type") : NULL,
                        *text = cJSON_IsObject(p) ? field(p, "text") : NULL;
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text))
                rc = BAD(e, "messages", "message %d: a content part must be {\"type\": \"text\", "
                         "\"text\": …}", i);
            else
                sm_buf_str(&parts[i], text->valuestring);
        }
        m[i].content = parts[i].s;
    }
    int32_t *ids = NULL;
    size_t nids = 0;
    if (!rc && smdlm_chat_tokenize(model, m, (size_t)n, 0, &ids, &nids))
        rc = BAD(e, "messages", "%s", smdlm_last_error());
    if (!rc) canvas_add(c, ids, nids, 1, 0);
    free(ids);
    for (int k = 0; k < n; k++) free(parts[k].s);
    free(parts);
    free(m);
    return rc;
}

/* The prompt of /v1/completions: a string or an array of token ids. */
static int add_prompt(const smdlm_model *model, canvas_buf *c, const cJSON *o, srv_error *e) {
    const cJSON *p = field(o, "prompt");
    if (!p) return 0;
    if (cJSON_IsString(p)) return add_text(model, c, p->valuestring, "prompt", e);
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child))
        return add_text(model, c, p->child->valuestring, "prompt", e);
    if (cJSON_IsArray(p)) return add_ids(model, c, p, "prompt", e);
    return BAD(e, "prompt", "'prompt' must be a string or an array of token ids");
}

static int build_canvas(const smdlm_model *model, const cJSON *o, srv_request *req, srv_error *e) {
    const smdlm_arch arch = smdlm_model_arch(model);
    const int maxT = smdlm_max_length(model), mask = smdlm_mask_id(model);
    canvas_buf c = {0};
    int max_tokens = 0, max_completion = 0;
    if (get_int(o, "max_tokens", 1, maxT, &max_tokens, e) ||
        get_int(o, "max_completion_tokens", 1, maxT, &max_completion, e))
        return -1;
    if (max_completion) max_tokens = max_completion;
    const cJSON *canvas = field(o, "canvas"), *suffix = field(o, "suffix");
    int rc = 0;
    if (canvas && (field(o, "prompt") || suffix))
        rc = BAD(e, "canvas", "'canvas' replaces 'prompt' and 'suffix': give one or the other");
    else if (canvas && max_tokens)
        rc = BAD(e, "max_tokens", "with 'canvas' the mask segments say how many tokens are "
                 "generated");
    else if (suffix && !cJSON_IsString(suffix))
        rc = BAD(e, "suffix", "'suffix' must be a string");
    else if (canvas)
        rc = add_segments(model, &c, canvas, e);
    else if (req->route == ROUTE_CHAT)
        rc = add_messages(model, &c, field(o, "messages"), e);
    else
        rc = add_prompt(model, &c, o, e);
    if (rc) goto fail;
    size_t P = 0;
    while (P < c.n && c.fixed[P]) P++;
    if (!canvas) {
        if (!max_tokens) {
            const long room = maxT - (long)P;
            max_tokens = arch == SMDLM_ARCH_MDLM ? (int)room : (int)(room < 128 ? room : 128);
        }
        if (max_tokens < 1 || (long)P + max_tokens > maxT) {
            rc = srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded",
                               field(o, "messages") ? "messages" : "prompt",
                               "the prompt has %zu tokens and %d more are to be generated, but "
                               "the model's context is %d tokens", P,
                               max_tokens < 1 ? 1 : max_tokens, maxT);
            goto fail;
        }
        canvas_add(&c, NULL, (size_t)max_tokens, 0, mask);
        req->text_end = arch == SMDLM_ARCH_MDLM || suffix ? (int)(P + max_tokens) : 0;
        if (suffix && add_text(model, &c, suffix->valuestring, "suffix", e)) goto fail;
    } else {
        req->text_end = arch == SMDLM_ARCH_MDLM ? (int)c.n : 0;
    }
    if (c.n > (size_t)maxT) {
        rc = context_exceeded(e, canvas ? "canvas" : "suffix", c.n, maxT);
        goto fail;
    }
    if (P == c.n) {
        rc = BAD(e, canvas ? "canvas" : "prompt", "every position of the canvas is fixed: "
                 "nothing to generate");
        goto fail;
    }
    req->x = c.x;
    req->fixed = c.fixed;
    req->T = (int)c.n;
    req->P = (int)P;
    req->max_tokens = (int)c.n - (int)P;
    return 0;
fail:
    free(c.x);
    free(c.fixed);
    return -1;
}

/* Dream/LLaDA defaults that follow the request's length: one token per step, LLaDA's block
 * the whole generation when its default does not divide it. */
static void decoder_defaults(const smdlm_model *model, const cJSON *o, srv_request *req) {
    smdlm_gen_params *gp = &req->gp;
    const int gen = req->T - req->P;
    gp->decoder.max_new_tokens = gen;
    if (smdlm_model_arch(model) == SMDLM_ARCH_MDLM) return;
    if (!field(o, "steps")) gp->steps = gen;
    if (!field(o, "block_length") && gen % gp->decoder.block_length) gp->decoder.block_length = gen;
}

int request_authorized(const char *authorization, const char *key) {
    if (!authorization || strncmp(authorization, "Bearer ", 7)) return 0;
    const char *given = authorization + 7;
    const size_t n = strlen(key);
    if (strlen(given) != n) return 0;
    unsigned diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(given[i] ^ key[i]);
    return diff == 0;
}

int request_parse(const smdlm_model *model, srv_route route, const char *body, size_t len,
                  srv_request *req, srv_error *err) {
    memset(req, 0, sizeof *req);
    req->route = route;
    req->gp = smdlm_gen_default_params();
    const char *end = NULL; /* where parsing stopped (cJSON's error pointer is global) */
    cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    int rc = 0;
    if (!o) {
        rc = BAD(err, NULL, "the body is not valid JSON (at byte %ld)",
                 end && end >= body && end <= body + len ? (long)(end - body) : 0L);
    } else if (!cJSON_IsObject(o)) {
        rc = BAD(err, NULL, "the body must be a JSON object");
    } else if (check_fields(o, smdlm_model_arch(model), route, err) ||
               parse_settings(model, o, req, err)) {
        rc = -1;
    } else if (route == ROUTE_CHAT && !field(o, "messages")) {
        rc = BAD(err, "messages", "'messages' is required");
    } else if (build_canvas(model, o, req, err)) {
        rc = -1;
    } else {
        decoder_defaults(model, o, req);
    }
    cJSON_Delete(o);
    if (rc) request_free(req);
    return rc;
}

void request_free(srv_request *req) {
    for (int i = 0; i < req->n_stop; i++) free(req->stop[i]);
    free(req->x);
    free(req->fixed);
    memset(req, 0, sizeof *req);
}
