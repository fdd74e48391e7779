/* request.h — a completion request's JSON body (POST /v1/completions, /v1/chat/completions)
 * checked and turned into what a generation needs: the generation settings and the canvas
 * template (tokens fixed anywhere, the mask id elsewhere). Every problem is an OpenAI-style
 * error naming the parameter (docs/SERVER.md lists the fields). */
#ifndef SMDLM_SERVER_REQUEST_H
#define SMDLM_SERVER_REQUEST_H

#include <stdint.h>

#include "smdlm.h"

#define SRV_MAX_STOP 4    /* stop strings per request, as OpenAI */
#define SRV_MAX_N 16      /* samples per request */

typedef enum { ROUTE_COMPLETIONS, ROUTE_CHAT } srv_route;

/* An error answer: HTTP status, OpenAI's type and code, the parameter (may be empty). */
typedef struct {
    int status;
    const char *type; /* "invalid_request_error", "server_error", … */
    const char *code; /* NULL: JSON null */
    char param[64];
    char message[512];
} srv_error;

/* Fills *e and returns −1. */
int srv_error_set(srv_error *e, int status, const char *type, const char *code,
                  const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

typedef struct {
    srv_route route;
    int stream, stream_steps, include_usage;
    int max_tokens;          /* positions generated (MDLM: the open positions) */
    char *stop[SRV_MAX_STOP];
    int n_stop;
    smdlm_gen_params gp;     /* without the names below (request_gen_params adds them) */
    char sampler[16], alg[16], remasking[16], cache[8];
    /* the canvas template [T]: fixed[i] keeps x[i], the mask id elsewhere; the leading fixed
     * positions are the prompt (P of them) */
    int32_t *x;
    uint8_t *fixed;
    int T, P;
    /* the completion's text: the positions [P, text_end) of the canvas (MDLM; Dream/LLaDA with
     * a suffix), or the model's completion up to its end of sequence (text_end = 0) */
    int text_end;
} srv_request;

/* Does an Authorization header's value (NULL: none) carry "Bearer KEY"? The key is compared
 * in constant time. */
int request_authorized(const char *authorization, const char *key);

/* Parses and checks body[0..len) for the route on the model. 0, or −1 with *err set. */
int request_parse(const smdlm_model *model, srv_route route, const char *body, size_t len,
                  srv_request *req, srv_error *err);
void request_free(srv_request *req);
/* The generation settings, the names pointing into *req. */
smdlm_gen_params request_gen_params(const srv_request *req);

#endif
