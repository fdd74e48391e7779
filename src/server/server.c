/* server.c — see server.h. Requests are read and answered by libmicrohttpd's connection
 * threads: a completion request is parsed there, queued, and its thread waits for the answer
 * (a whole body, or the stream it copies out as the worker produces it). */
#include "server/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "server/metrics.h"
#include "server/playground.h"
#include "server/request.h"
#include "server/response.h"
#include "server/scheduler.h"

#define STREAM_BLOCK 16384 /* bytes handed to libmicrohttpd per read of a stream */

struct srv_server {
    srv_config cfg;
    const smdlm_model *model;
    srv_metrics *metrics;
    srv_scheduler *sched;
    struct MHD_Daemon *daemon;
    long started;
    atomic_int closing;
    atomic_int answering; /* completion requests whose response has not ended */
};

/* What one request accumulates across libmicrohttpd's calls. */
typedef struct {
    sm_buf body;
    int too_large;
    srv_job *job; /* a completion request's job once queued */
} request_ctx;

static const char *route_name(const char *url) {
    static const char *const known[] = {"/v1/completions", "/v1/chat/completions", "/v1/models",
                                        "/health", "/metrics", "/"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(url, known[i])) return known[i];
    return "other";
}

/* Queues a response with its status, JSON or text; counts it. */
static enum MHD_Result reply(srv_server *s, struct MHD_Connection *c, const char *url,
                             int status, char *body, const char *type) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (atomic_load(&s->closing)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    metrics_request(s->metrics, route_name(url), status);
    return rc;
}

static enum MHD_Result reply_error(srv_server *s, struct MHD_Connection *c, const char *url,
                                   const srv_error *e) {
    return reply(s, c, url, e->status, response_error(e), "application/json");
}

static enum MHD_Result fail(srv_server *s, struct MHD_Connection *c, const char *url, int status,
                            const char *type, const char *code, const char *fmt, const char *arg) {
    srv_error e;
    srv_error_set(&e, status, type, code, NULL, fmt, arg);
    return reply_error(s, c, url, &e);
}

/* With --api-key: the Authorization header must be "Bearer KEY". */
static int authorized(const srv_server *s, struct MHD_Connection *c) {
    return !s->cfg.api_key ||
           request_authorized(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                          MHD_HTTP_HEADER_AUTHORIZATION),
                              s->cfg.api_key);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    const size_t n = job_read_stream(cls, buf, max);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls) { job_release(cls); }

/* A completion request whose body is complete: parse, queue, wait, answer. */
static enum MHD_Result complete(srv_server *s, struct MHD_Connection *c, const char *url,
                                srv_route route, request_ctx *ctx) {
    srv_request req;
    srv_error e;
    if (request_parse(s->model, route, ctx->body.s ? ctx->body.s : "", ctx->body.len, &req, &e))
        return reply_error(s, c, url, &e);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    ctx->job = job_new(&req, s->cfg.model_id, info ? info->connect_fd : -1);
    atomic_fetch_add(&s->answering, 1);
    if (sched_submit(s->sched, ctx->job, &e)) return reply_error(s, c, url, &e);
    int status;
    char *body;
    if (job_wait_answer(ctx->job, &status, &body))
        return reply(s, c, url, status, body, "application/json");
    job_retain(ctx->job); /* the response's reference */
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                               stream_read, ctx->job, stream_free);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    metrics_request(s->metrics, route_name(url), 200);
    return rc;
}

/* GET /: the web playground, from the binary's read-only data. A strict content security policy:
 * the page runs its own inline script and style and talks to this server alone. */
static enum MHD_Result reply_playground(srv_server *s, struct MHD_Connection *c, const char *url) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        playground_html_len, (void *)playground_html, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src "
                            "'unsafe-inline'; connect-src 'self'; base-uri 'none'; "
                            "form-action 'none'; frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (atomic_load(&s->closing)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    metrics_request(s->metrics, route_name(url), 200);
    return rc;
}

static char *health_body(const srv_server *s) {
    return sm_strdup(atomic_load(&s->closing) ? "{\"status\":\"shutting down\"}"
                                              : "{\"status\":\"ok\"}");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    srv_server *s = cls;
    request_ctx *ctx = *con_cls;
    const int post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (!ctx) { /* the headers: checked before any body is read */
        *con_cls = ctx = sm_calloc(1, sizeof *ctx);
        /* the page is public (it asks for the key); everything it calls is not */
        if (strcmp(url, "/health") && strcmp(url, "/") && !authorized(s, c))
            return fail(s, c, url, 401, "authentication_error", "invalid_api_key", "%s",
                        "a valid API key is needed: Authorization: Bearer KEY");
        const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (post && len && strtoull(len, NULL, 10) > s->cfg.max_body)
            ctx->too_large = 1;
        else
            return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        if (ctx->body.len + *upload_size > s->cfg.max_body) ctx->too_large = 1;
        if (!ctx->too_large) sm_buf_add(&ctx->body, upload, *upload_size);
        *upload_size = 0;
        if (!ctx->too_large) return MHD_YES;
    }
    if (ctx->too_large) {
        sm_buf e = {0};
        sm_buf_printf(&e, "the request body exceeds %zu bytes (--max-body)", s->cfg.max_body);
        enum MHD_Result rc = fail(s, c, url, 413, "invalid_request_error", "request_too_large",
                                  "%s", e.s);
        free(e.s);
        return rc;
    }
    const int chat = !strcmp(url, "/v1/chat/completions");
    if (chat || !strcmp(url, "/v1/completions")) {
        if (!post)
            return fail(s, c, url, 405, "invalid_request_error", "method_not_allowed",
                        "%s takes POST", url);
        return complete(s, c, url, chat ? ROUTE_CHAT : ROUTE_COMPLETIONS, ctx);
    }
    const int get = !strcmp(method, MHD_HTTP_METHOD_GET);
    if (!strcmp(url, "/")) {
        if (!get && strcmp(method, MHD_HTTP_METHOD_HEAD))
            return fail(s, c, url, 405, "invalid_request_error", "method_not_allowed",
                        "%s takes GET", url);
        return reply_playground(s, c, url);
    }
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/health") || !strcmp(url, "/metrics")) {
        if (!get)
            return fail(s, c, url, 405, "invalid_request_error", "method_not_allowed",
                        "%s takes GET", url);
        if (!strcmp(url, "/v1/models"))
            return reply(s, c, url, 200, response_models(s->cfg.model_id, s->started),
                         "application/json");
        if (!strcmp(url, "/health"))
            return reply(s, c, url, atomic_load(&s->closing) ? 503 : 200, health_body(s),
                         "application/json");
        sm_buf m = {0};
        metrics_render(s->metrics, &m);
        return reply(s, c, url, 200, m.s, "text/plain; version=0.0.4");
    }
    return fail(s, c, url, 404, "invalid_request_error", "not_found", "no route %s", url);
}

/* The request ended (answered, or its connection lost): a job still running is stopped. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    srv_server *s = cls;
    request_ctx *ctx = *con_cls;
    if (!ctx) return;
    if (ctx->job) {
        job_client_gone(ctx->job);
        job_release(ctx->job);
        atomic_fetch_sub(&s->answering, 1);
    }
    free(ctx->body.s);
    free(ctx);
    *con_cls = NULL;
}

static void log_mhd(void *cls, const char *fmt, va_list ap) {
    fputs("smdlm serve: ", stderr);
    vfprintf(stderr, fmt, ap);
}

srv_server *server_start(const smdlm_model *model, const srv_config *cfg) {
    struct sockaddr_storage addr = {0};
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (strchr(cfg->host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET6, cfg->host, &a->sin6_addr) != 1) goto bad_host;
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET, cfg->host, &a->sin_addr) != 1) goto bad_host;
    }
    srv_server *s = sm_calloc(1, sizeof *s);
    s->cfg = *cfg;
    s->model = model;
    s->started = (long)time(NULL);
    s->metrics = metrics_new();
    srv_sched_config sc = {model, cfg->model_id, s->metrics, cfg->parallel, cfg->batch,
                           cfg->queue, cfg->timeout};
    s->sched = sched_new(&sc);
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->client_timeout,
        MHD_OPTION_END);
    if (!s->daemon) {
        SM_ERR("cannot listen on %s port %d (in use, or not an address of this machine?)",
               cfg->host, cfg->port);
        sched_shutdown(s->sched);
        sched_free(s->sched);
        metrics_free(s->metrics);
        free(s);
        return NULL;
    }
    return s;
bad_host:
    SM_ERR("--host '%s' is not a numeric IPv4 or IPv6 address", cfg->host);
    return NULL;
}

int server_port(const srv_server *s) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : s->cfg.port;
}

void server_stop(srv_server *s) {
    atomic_store(&s->closing, 1);
    const MHD_socket listen = MHD_quiesce_daemon(s->daemon);
    if (listen != MHD_INVALID_SOCKET) close(listen);
    sched_shutdown(s->sched);
    /* every job is answered now; let the responses reach their clients (a client that stops
     * reading is cut off after --client-timeout) */
    const double end = sm_time_sec() + s->cfg.client_timeout;
    while (atomic_load(&s->answering) > 0 && sm_time_sec() < end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon);
    sched_free(s->sched);
    metrics_free(s->metrics);
    free(s);
}
