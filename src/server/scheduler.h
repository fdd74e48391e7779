/* scheduler.h — generation jobs and the queue that runs them: a bounded queue in front of
 * `parallel` workers, each with its own smdlm_state on the one shared model. A job carries
 * its answer back to the connection that submitted it: a whole JSON body, or server-sent
 * events as they are produced (stream). It is stopped within one step when its client goes
 * away (the connection ends, or its socket reads end-of-file), when its deadline passes, or
 * at shutdown before it started. */
#ifndef SMDLM_SERVER_SCHEDULER_H
#define SMDLM_SERVER_SCHEDULER_H

#include "server/metrics.h"
#include "server/request.h"
#include "server/response.h"

typedef struct srv_job srv_job;
typedef struct srv_scheduler srv_scheduler;

typedef struct {
    const smdlm_model *model;
    const char *model_id;
    srv_metrics *metrics;
    int parallel;   /* workers */
    int queue;      /* jobs that may wait for a worker */
    double timeout; /* seconds from submission to the end of its generation */
} srv_sched_config;

srv_scheduler *sched_new(const srv_sched_config *cfg);
/* Queues the job (the scheduler takes a reference). 0, or −1 with *err: the queue is full
 * (429) or the server is shutting down (503). */
int sched_submit(srv_scheduler *s, srv_job *job, srv_error *err);
/* Stops taking jobs, answers the waiting ones 503, lets the running ones finish, joins the
 * workers. */
void sched_shutdown(srv_scheduler *s);
void sched_free(srv_scheduler *s);

/* A job for the request (moved into it; *req is left empty) from the client socket fd (−1:
 * not watched); one reference, the caller's. */
srv_job *job_new(srv_request *req, const char *model_id, int fd);
void job_retain(srv_job *job);
void job_release(srv_job *job);
/* The client is gone: stop the job within one step, never touch its socket again. */
void job_client_gone(srv_job *job);
int job_streams(const srv_job *job);

/* Waits until the job has finished, or (stream) produced its first bytes. Then: 1 and *status
 * / *body (malloc'ed JSON) for a whole answer or an error before any stream byte; 0 when the
 * stream has begun (read it with job_read_stream). */
int job_wait_answer(srv_job *job, int *status, char **body);
/* Up to max bytes of the stream into buf, waiting for them; 0 at its end. */
size_t job_read_stream(srv_job *job, char *buf, size_t max);

#endif
