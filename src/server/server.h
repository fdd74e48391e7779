/* server.h — `smdlm serve`: the OpenAI-compatible HTTP server (docs/SERVER.md) on
 * libmicrohttpd, one thread per connection in front of the scheduler (scheduler.h).
 * Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health,
 * GET /metrics. */
#ifndef SMDLM_SERVER_SERVER_H
#define SMDLM_SERVER_SERVER_H

#include "smdlm.h"

typedef struct {
    const char *host;     /* numeric IPv4 or IPv6 address to bind */
    int port;             /* 0: any free port (server_port tells which) */
    const char *api_key;  /* NULL: none; else every route but /health needs "Bearer KEY" */
    const char *model_id; /* the name /v1/models lists and answers carry */
    int parallel;         /* generations at once */
    int queue;            /* requests that may wait beyond those */
    double timeout;       /* seconds a request may take from its arrival */
    int client_timeout;   /* seconds a connection may stay silent */
    size_t max_body;      /* bytes of a request body */
} srv_config;

typedef struct srv_server srv_server;

/* Starts listening; NULL with smdlm_last_error() set. */
srv_server *server_start(const smdlm_model *model, const srv_config *cfg);
int server_port(const srv_server *s);
/* Graceful stop: no new connections or requests, waiting requests answered 503, running ones
 * finished and answered, then every connection closed. */
void server_stop(srv_server *s);

#endif
