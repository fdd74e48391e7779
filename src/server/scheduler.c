/* scheduler.c — see scheduler.h. */
#include "server/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/util.h"

enum { STOP_NONE = 0, STOP_CLIENT, STOP_DEADLINE };

struct srv_job {
    srv_request req;
    srv_ident ident;
    const smdlm_model *model;
    srv_metrics *metrics;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int fd;            /* the client's socket while its connection lives, else −1 */
    int stop;          /* STOP_*: why the generation is to stop */
    double deadline;   /* sm_time_sec() */
    /* the answer */
    int done;
    int status;        /* whole answers */
    char *body;
    sm_buf sse;        /* streams: bytes produced, sse_sent of them read */
    size_t sse_sent;
    int batched;       /* a member of the batching worker's batch, which counts its forwards */
    /* the step callback's bookkeeping */
    double last_step;
    int last_forwards;
    srv_job *next;     /* the queue */
};

struct srv_scheduler {
    srv_sched_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_job *head, *tail;
    int queued, running, closing;
    pthread_t *workers;
    int n_workers;
};

/* ---- jobs -------------------------------------------------------------------------------- */

srv_job *job_new(srv_request *req, const char *model_id, int fd) {
    srv_job *job = sm_calloc(1, sizeof *job);
    job->req = *req;
    memset(req, 0, sizeof *req);
    ident_init(&job->ident, job->req.route, model_id);
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    job->refs = 1;
    job->fd = fd;
    return job;
}

void job_retain(srv_job *job) {
    pthread_mutex_lock(&job->mu);
    job->refs++;
    pthread_mutex_unlock(&job->mu);
}

void job_release(srv_job *job) {
    pthread_mutex_lock(&job->mu);
    const int last = --job->refs == 0;
    pthread_mutex_unlock(&job->mu);
    if (!last) return;
    request_free(&job->req);
    free(job->body);
    free(job->sse.s);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->cv);
    free(job);
}

void job_client_gone(srv_job *job) {
    pthread_mutex_lock(&job->mu);
    job->fd = -1;
    if (!job->done && !job->stop) job->stop = STOP_CLIENT;
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
}

int job_streams(const srv_job *job) { return job->req.stream; }

int job_wait_answer(srv_job *job, int *status, char **body) {
    pthread_mutex_lock(&job->mu);
    while (!job->done && !(job->req.stream && job->sse.len)) pthread_cond_wait(&job->cv, &job->mu);
    const int whole = job->body != NULL;
    if (whole) {
        *status = job->status;
        *body = job->body;
        job->body = NULL;
    }
    pthread_mutex_unlock(&job->mu);
    return whole;
}

size_t job_read_stream(srv_job *job, char *buf, size_t max) {
    pthread_mutex_lock(&job->mu);
    while (!job->done && job->sse_sent == job->sse.len) pthread_cond_wait(&job->cv, &job->mu);
    size_t n = job->sse.len - job->sse_sent;
    if (n > max) n = max;
    memcpy(buf, job->sse.s + job->sse_sent, n);
    job->sse_sent += n;
    pthread_mutex_unlock(&job->mu);
    return n;
}

/* The answer of a job that failed: the status and error object, or — once its stream has
 * begun — the error event and [DONE]. Called with job->mu held. */
static void set_error(srv_job *job, const srv_error *e) {
    if (job->req.stream && job->sse.len) {
        response_stream_error(&job->sse, e);
    } else {
        job->status = e->status;
        job->body = response_error(e);
    }
}

static void finish(srv_job *job) {
    job->done = 1;
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
}

/* Has the client closed its end? Its socket reads end-of-file or fails. Called with job->mu
 * held, so the connection cannot end (and the descriptor be reused) meanwhile. */
static int client_closed(const srv_job *job) {
    if (job->fd < 0) return 0;
    char c;
    const ssize_t n = recv(job->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The step callback: metrics, the step event of stream_steps, and whether to stop. */
static int on_step(void *user, const smdlm_step *s) {
    srv_job *job = user;
    const double now = sm_time_sec();
    metrics_request_forwards(job->metrics, s->forwards - job->last_forwards);
    if (!job->batched) /* its forwards ran for it alone */
        metrics_forwards(job->metrics, s->forwards - job->last_forwards);
    metrics_step(job->metrics, now - job->last_step);
    job->last_forwards = s->forwards;
    job->last_step = now;
    sm_buf event = {0};
    if (job->req.stream_steps) response_step_event(&event, &job->ident, job->model, &job->req, s);
    pthread_mutex_lock(&job->mu);
    if (!job->stop && now > job->deadline) job->stop = STOP_DEADLINE;
    if (!job->stop && client_closed(job)) job->stop = STOP_CLIENT;
    if (event.len && !job->stop) {
        sm_buf_add(&job->sse, event.s, event.len);
        pthread_cond_broadcast(&job->cv);
    }
    const int stop = job->stop;
    pthread_mutex_unlock(&job->mu);
    free(event.s);
    return stop != STOP_NONE;
}

/* The generation settings of a job, its step callback set. */
static smdlm_gen_params job_params(srv_job *job) {
    smdlm_gen_params gp = request_gen_params(&job->req);
    gp.on_step = on_step;
    gp.user = job;
    job->last_step = sm_time_sec();
    return gp;
}

/* Has the job been stopped before it started (its client left while it waited)? */
static int stopped_early(srv_job *job) {
    pthread_mutex_lock(&job->mu);
    const int stop = job->stop != STOP_NONE;
    pthread_mutex_unlock(&job->mu);
    return stop;
}

/* Leaves the answer of a generation that returned rc with result r (freed here); the error of
 * SMDLM_ERROR is smdlm_last_error(). */
static void answer(srv_scheduler *s, srv_job *job, int rc, smdlm_result *r) {
    const srv_request *req = &job->req;
    srv_error e;
    srv_output out = {0};
    if (rc == SMDLM_OK) {
        output_from_result(s->cfg.model, req, r, &out);
        long tokens = 0;
        for (int b = 0; b < out.n; b++) tokens += out.tokens[b];
        metrics_generation(s->cfg.metrics, tokens, r->stats.seconds);
    } else if (rc == SMDLM_ERROR) {
        srv_error_set(&e, 400, "invalid_request_error", NULL, NULL, "%s", smdlm_last_error());
    }
    smdlm_result_free(r);
    pthread_mutex_lock(&job->mu);
    if (rc == SMDLM_OK && req->stream)
        response_stream_final(&job->sse, &job->ident, req, &out);
    else if (rc == SMDLM_OK)
        job->status = 200, job->body = response_body(&job->ident, req, &out);
    else if (rc == SMDLM_ERROR)
        set_error(job, &e);
    else if (job->stop == STOP_DEADLINE)
        set_error(job, &(srv_error){504, "timeout_error", "deadline_exceeded", "",
                                    "the request ran past the server's --timeout"});
    else /* the client is gone; the answer is for no one */
        set_error(job, &(srv_error){499, "invalid_request_error", "client_closed", "",
                                    "the client closed the connection"});
    finish(job);
    output_free(&out);
}

/* Runs one job alone on a worker's state and leaves its answer. */
static void run_job(srv_scheduler *s, smdlm_state *state, srv_job *job) {
    smdlm_gen_params gp = job_params(job);
    smdlm_result r = {0};
    const int rc = stopped_early(job) ? SMDLM_ABORTED
                                      : smdlm_generate_ids(state, job->req.x, job->req.fixed,
                                                           job->req.T, &gp, &r);
    answer(s, job, rc, &r);
}

/* ---- the queue ---------------------------------------------------------------------------- */

static void publish_load(srv_scheduler *s) {
    metrics_set_load(s->cfg.metrics, s->queued, s->running);
}

/* The next waiting job, taken off the queue (s->mu held). */
static srv_job *pop(srv_scheduler *s) {
    srv_job *job = s->head;
    s->head = job->next;
    if (!s->head) s->tail = NULL;
    s->queued--;
    s->running++;
    publish_load(s);
    return job;
}

static void done_running(srv_scheduler *s, srv_job *job) {
    job_release(job);
    pthread_mutex_lock(&s->mu);
    s->running--;
    publish_load(s);
    pthread_mutex_unlock(&s->mu);
}

/* A worker without batching: one job at a time on its own state. */
static void *worker_main(void *arg) {
    srv_scheduler *s = arg;
    smdlm_state *state = smdlm_state_new(s->cfg.model);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->closing) pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head) break;
        srv_job *job = pop(s);
        pthread_mutex_unlock(&s->mu);
        run_job(s, state, job);
        done_running(s, job);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    smdlm_state_free(state);
    return NULL;
}

/* The batching worker: up to `parallel` jobs advance together, one step at a time, their
 * forwards batched (smdlm_batch); waiting jobs join between steps, in order, when they fit
 * (a job that does not fit waits until the batch has room for it). */
static void *batch_main(void *arg) {
    srv_scheduler *s = arg;
    smdlm_state *state = smdlm_state_new(s->cfg.model);
    smdlm_batch *batch = smdlm_batch_new(state);
    srv_job **members = sm_calloc((size_t)s->cfg.parallel, sizeof *members);
    int n = 0;         /* jobs in the batch */
    long forwards = 0; /* the batch's forwards counted in the metrics */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!n && !s->head && !s->closing) pthread_cond_wait(&s->cv, &s->mu);
        if (!n && !s->head) break;
        while (s->head && n < s->cfg.parallel) {
            srv_job *job = s->head;
            smdlm_gen_params gp = job_params(job);
            if (n && !smdlm_batch_accepts(batch, job->req.T, &gp)) break;
            pop(s);
            pthread_mutex_unlock(&s->mu);
            const int id = stopped_early(job) ? -2
                                              : smdlm_batch_add(batch, job->req.x, job->req.fixed,
                                                                job->req.T, &gp);
            if (id >= 0) {
                job->batched = 1;
                members[id] = job;
                n++;
            } else {
                smdlm_result r = {0};
                answer(s, job, id == -2 ? SMDLM_ABORTED : SMDLM_ERROR, &r);
                done_running(s, job);
            }
            pthread_mutex_lock(&s->mu);
        }
        pthread_mutex_unlock(&s->mu);
        smdlm_batch_step(batch);
        metrics_forwards(s->cfg.metrics, smdlm_batch_forwards(batch) - forwards);
        forwards = smdlm_batch_forwards(batch);
        for (int id; (id = smdlm_batch_ended(batch)) >= 0; n--) {
            smdlm_result r;
            const int rc = smdlm_batch_take(batch, id, &r);
            answer(s, members[id], rc, &r);
            done_running(s, members[id]);
            members[id] = NULL;
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    free(members);
    smdlm_batch_free(batch);
    smdlm_state_free(state);
    return NULL;
}

srv_scheduler *sched_new(const srv_sched_config *cfg) {
    srv_scheduler *s = sm_calloc(1, sizeof *s);
    s->cfg = *cfg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    /* MDLM models batch their requests in one worker; Dream/LLaDA run one per worker */
    const int batching = cfg->batch && smdlm_model_arch(cfg->model) == SMDLM_ARCH_MDLM;
    s->n_workers = batching ? 1 : cfg->parallel;
    s->workers = sm_calloc((size_t)s->n_workers, sizeof *s->workers);
    for (int i = 0; i < s->n_workers; i++)
        pthread_create(&s->workers[i], NULL, batching ? batch_main : worker_main, s);
    return s;
}

int sched_submit(srv_scheduler *s, srv_job *job, srv_error *err) {
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->closing)
        rc = srv_error_set(err, 503, "server_error", "shutting_down", NULL,
                           "the server is shutting down");
    else if (s->queued + s->running >= s->cfg.parallel + s->cfg.queue)
        rc = srv_error_set(err, 429, "rate_limit_error", "queue_full", NULL,
                           "the server is busy: %d requests are waiting (--queue %d); retry "
                           "later", s->queued, s->cfg.queue);
    if (rc == 0) {
        job_retain(job);
        job->model = s->cfg.model;
        job->metrics = s->cfg.metrics;
        job->deadline = sm_time_sec() + s->cfg.timeout;
        if (s->tail) s->tail->next = job;
        else s->head = job;
        s->tail = job;
        s->queued++;
        publish_load(s);
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void sched_shutdown(srv_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    srv_job *waiting = s->head;
    s->head = s->tail = NULL;
    s->queued = 0;
    publish_load(s);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    while (waiting) {
        srv_job *next = waiting->next;
        pthread_mutex_lock(&waiting->mu);
        set_error(waiting, &(srv_error){503, "server_error", "shutting_down", "",
                                        "the server is shutting down"});
        finish(waiting);
        job_release(waiting);
        waiting = next;
    }
    for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
}

void sched_free(srv_scheduler *s) {
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->workers);
    free(s);
}
