/* metrics.h — the server's counters for GET /metrics (Prometheus text format 0.0.4): requests
 * by endpoint and status, queue depth, generated tokens and the time spent generating them,
 * network forwards, and a histogram of step latencies. Every function is thread-safe. */
#ifndef SMDLM_SERVER_METRICS_H
#define SMDLM_SERVER_METRICS_H

#include "base/util.h"

typedef struct srv_metrics srv_metrics;

srv_metrics *metrics_new(void);
void metrics_free(srv_metrics *m);

/* One answered request: its route ("/v1/completions", "other", …) and HTTP status. */
void metrics_request(srv_metrics *m, const char *route, int status);
/* Network evaluations run (a batched forward over several requests counts once). */
void metrics_forwards(srv_metrics *m, long forwards);
/* Forwards a request took part in since the last call for it (a batched forward counts once
 * for each request in it). */
void metrics_request_forwards(srv_metrics *m, int forwards);
/* One denoising step took `seconds`. */
void metrics_step(srv_metrics *m, double seconds);
/* One finished generation: completion tokens and its wall time. */
void metrics_generation(srv_metrics *m, long tokens, double seconds);
/* Requests waiting / generating now. */
void metrics_set_load(srv_metrics *m, int queued, int running);

/* The text of GET /metrics, appended to out. */
void metrics_render(srv_metrics *m, sm_buf *out);

#endif
