/* response.h — the JSON the server answers with, in OpenAI's shapes: completions and chat
 * completions (whole, or as server-sent-event chunks ending in `data: [DONE]`), the
 * `smdlm.step` events of stream_steps (docs/SERVER.md), error objects, the model list. */
#ifndef SMDLM_SERVER_RESPONSE_H
#define SMDLM_SERVER_RESPONSE_H

#include "base/util.h"
#include "server/request.h"
#include "smdlm.h"

/* What every object of one response carries. */
typedef struct {
    char id[48];       /* "cmpl-…" / "chatcmpl-…" */
    long created;      /* Unix seconds */
    const char *model; /* the served model's id */
} srv_ident;

void ident_init(srv_ident *id, srv_route route, const char *model);

/* The answer of a finished generation: per sample its text (stop strings applied), finish
 * reason and completion tokens. */
typedef struct {
    int n;
    char **text;
    const char **finish; /* "stop" or "length" */
    int *tokens;
    int prompt_tokens;
    uint64_t seed;
    smdlm_stats stats;
} srv_output;

/* The output of result r of request req on the model. */
void output_from_result(const smdlm_model *model, const srv_request *req, const smdlm_result *r,
                        srv_output *out);
void output_free(srv_output *out);

/* The whole (non-streamed) answer. */
char *response_body(const srv_ident *id, const srv_request *req, const srv_output *out);
/* The streamed answer after the generation: the chunks, the usage chunk when asked, [DONE]. */
void response_stream_final(sm_buf *sse, const srv_ident *id, const srv_request *req,
                           const srv_output *out);
/* One `smdlm.step` event. */
void response_step_event(sm_buf *sse, const srv_ident *id, const smdlm_model *model,
                         const srv_request *req, const smdlm_step *s);

/* {"error": {"message", "type", "param", "code"}} */
char *response_error(const srv_error *e);
/* The error of a stream that has started: the error event, then [DONE]. */
void response_stream_error(sm_buf *sse, const srv_error *e);

/* GET /v1/models */
char *response_models(const char *model, long created);

#endif
