/* response.c — see response.h. */
#include "server/response.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void ident_init(srv_ident *id, srv_route route, const char *model) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint64_t)time(NULL);
    snprintf(id->id, sizeof id->id, "%s-%016llx", route == ROUTE_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)r);
    id->created = (long)time(NULL);
    id->model = model;
}

/* ---- outputs ----------------------------------------------------------------------------- */

/* Cuts text at the earliest stop string; 1 when one occurred. */
static int apply_stop(const srv_request *req, char *text) {
    char *cut = NULL;
    for (int i = 0; i < req->n_stop; i++) {
        char *at = strstr(text, req->stop[i]);
        if (at && (!cut || at < cut)) cut = at;
    }
    if (cut) *cut = 0;
    return cut != NULL;
}

void output_from_result(const smdlm_model *model, const srv_request *req, const smdlm_result *r,
                        srv_output *out) {
    const int n = r->n, generated = req->T - req->P;
    *out = (srv_output){n, sm_calloc((size_t)n, sizeof(char *)),
                        sm_calloc((size_t)n, sizeof(char *)), sm_calloc((size_t)n, sizeof(int)),
                        r->prompt_len, req->gp.seed, r->stats};
    for (int b = 0; b < n; b++) {
        const int32_t *ids = r->ids + (size_t)b * r->T;
        /* Dream/LLaDA stop at their end-of-sequence token: gen_len before it */
        const int eos = smdlm_model_arch(model) != SMDLM_ARCH_MDLM && r->gen_len[b] < generated;
        if (req->text_end) {
            int end = req->text_end;
            if (eos && req->P + r->gen_len[b] < end) end = req->P + r->gen_len[b];
            smdlm_canvas_text(model, ids + req->P, (size_t)(end - req->P), NULL, &out->text[b]);
        } else {
            out->text[b] = sm_strdup(r->text[b] ? r->text[b] : "");
        }
        out->tokens[b] = r->gen_len[b];
        out->finish[b] = apply_stop(req, out->text[b]) || eos ? "stop" : "length";
    }
}

void output_free(srv_output *out) {
    for (int b = 0; b < out->n; b++) free(out->text[b]);
    free(out->text);
    free(out->finish);
    free(out->tokens);
    memset(out, 0, sizeof *out);
}

/* ---- JSON ------------------------------------------------------------------------------- */

static cJSON *object_head(const srv_ident *id, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)id->created);
    cJSON_AddStringToObject(o, "model", id->model);
    return o;
}

static cJSON *usage_of(const srv_output *out) {
    long completion = 0;
    for (int b = 0; b < out->n; b++) completion += out->tokens[b];
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", out->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)completion);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(out->prompt_tokens + completion));
    return u;
}

/* smdlm's own account of the run (an extra field clients ignore). */
static cJSON *run_stats(const srv_output *out) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "seed", (double)out->seed);
    cJSON_AddNumberToObject(s, "steps", out->stats.steps);
    cJSON_AddNumberToObject(s, "forwards", out->stats.forwards);
    cJSON_AddNumberToObject(s, "seconds", out->stats.seconds);
    cJSON_AddBoolToObject(s, "soft_masking", out->stats.soft_masking);
    if (out->stats.method) cJSON_AddStringToObject(s, "method", out->stats.method);
    return s;
}

static char *print_free(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void add_event(sm_buf *sse, cJSON *o) {
    char *s = print_free(o);
    sm_buf_printf(sse, "data: %s\n\n", s);
    free(s);
}

char *response_body(const srv_ident *id, const srv_request *req, const srv_output *out) {
    const int chat = req->route == ROUTE_CHAT;
    cJSON *o = object_head(id, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    for (int b = 0; b < out->n; b++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", b);
        if (chat) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", out->text[b]);
        } else {
            cJSON_AddStringToObject(c, "text", out->text[b]);
        }
        cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", out->finish[b]);
        cJSON_AddItemToArray(choices, c);
    }
    cJSON_AddItemToObject(o, "usage", usage_of(out));
    cJSON_AddItemToObject(o, "smdlm", run_stats(out));
    return print_free(o);
}

/* One chunk of sample b: text (NULL: none), finish reason (NULL: null); chat: the delta,
 * with the role when `role`. */
static void add_chunk(sm_buf *sse, const srv_ident *id, int chat, int b, int role,
                      const char *text, const char *finish) {
    cJSON *o = object_head(id, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", b);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text) cJSON_AddStringToObject(d, "content", text);
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    add_event(sse, o);
}

void response_stream_final(sm_buf *sse, const srv_ident *id, const srv_request *req,
                           const srv_output *out) {
    const int chat = req->route == ROUTE_CHAT;
    for (int b = 0; b < out->n; b++) {
        if (chat) {
            add_chunk(sse, id, 1, b, 1, "", NULL);
            add_chunk(sse, id, 1, b, 0, out->text[b], NULL);
            add_chunk(sse, id, 1, b, 0, NULL, out->finish[b]);
        } else {
            add_chunk(sse, id, 0, b, 0, out->text[b], out->finish[b]);
        }
    }
    if (req->include_usage) {
        cJSON *o = object_head(id, chat ? "chat.completion.chunk" : "text_completion");
        cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToObject(o, "usage", usage_of(out));
        add_event(sse, o);
    }
    sm_buf_str(sse, "data: [DONE]\n\n");
}

void response_step_event(sm_buf *sse, const srv_ident *id, const smdlm_model *model,
                         const srv_request *req, const smdlm_step *s) {
    cJSON *o = object_head(id, "smdlm.step");
    cJSON_AddNumberToObject(o, "step", s->step);
    cJSON_AddNumberToObject(o, "steps", s->steps);
    cJSON_AddNumberToObject(o, "forwards", s->forwards);
    cJSON_AddNumberToObject(o, "mask_id", s->mask_id);
    cJSON_AddNumberToObject(o, "prompt_len", req->P);
    cJSON *canvas = cJSON_AddArrayToObject(o, "canvas");
    for (int b = 0; b < s->B; b++) {
        const int32_t *ids = s->ids + (size_t)b * s->T;
        const uint8_t *masked = s->masked + (size_t)b * s->T;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", b);
        cJSON *tokens = cJSON_AddArrayToObject(c, "tokens"),
              *pieces = cJSON_AddArrayToObject(c, "pieces"),
              *mlist = cJSON_AddArrayToObject(c, "masked"),
              *lambda = cJSON_AddArrayToObject(c, "lambda");
        for (int t = 0; t < s->T; t++) {
            cJSON_AddItemToArray(tokens, cJSON_CreateNumber(ids[t]));
            if (masked[t]) {
                cJSON_AddItemToArray(pieces, cJSON_CreateNull());
                cJSON_AddItemToArray(mlist, cJSON_CreateNumber(t));
                if (s->lambda)
                    cJSON_AddItemToArray(lambda,
                                         cJSON_CreateNumber(s->lambda[(size_t)b * s->T + t]));
                continue;
            }
            char *piece;
            smdlm_canvas_text(model, ids + t, 1, NULL, &piece);
            cJSON_AddItemToArray(pieces, cJSON_CreateString(piece));
            free(piece);
        }
        cJSON_AddItemToArray(canvas, c);
    }
    add_event(sse, o);
}

static cJSON *error_object(const srv_error *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type);
    if (*e->param) cJSON_AddStringToObject(err, "param", e->param);
    else cJSON_AddNullToObject(err, "param");
    if (e->code) cJSON_AddStringToObject(err, "code", e->code);
    else cJSON_AddNullToObject(err, "code");
    return o;
}

char *response_error(const srv_error *e) { return print_free(error_object(e)); }

void response_stream_error(sm_buf *sse, const srv_error *e) {
    add_event(sse, error_object(e));
    sm_buf_str(sse, "data: [DONE]\n\n");
}

char *response_models(const char *model, long created) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", model);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "smdlm");
    cJSON_AddItemToArray(data, m);
    return print_free(o);
}
