/* metrics.c — see metrics.h. */
#include "server/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds (seconds) of the step latency buckets; one more bucket is +Inf. */
static const double k_step_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
#define N_BUCKETS (sizeof k_step_buckets / sizeof *k_step_buckets)
#define MAX_SERIES 64 /* distinct (route, status) pairs kept; later ones count as "other" */

typedef struct {
    char route[32];
    int status;
    long count;
} request_series;

struct srv_metrics {
    pthread_mutex_t mu;
    request_series requests[MAX_SERIES];
    int n_series;
    long forwards, request_forwards;
    long steps_in_bucket[N_BUCKETS + 1];
    long steps;
    double step_seconds;
    long tokens, generations;
    double generation_seconds;
    int queued, running;
};

srv_metrics *metrics_new(void) {
    srv_metrics *m = sm_calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(srv_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void metrics_request(srv_metrics *m, const char *route, int status) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_series && !(m->requests[i].status == status &&
                                !strcmp(m->requests[i].route, route)))
        i++;
    if (i == m->n_series && i < MAX_SERIES) {
        snprintf(m->requests[i].route, sizeof m->requests[i].route, "%s", route);
        m->requests[i].status = status;
        m->n_series++;
    }
    if (i < MAX_SERIES) m->requests[i].count++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_forwards(srv_metrics *m, long forwards) {
    pthread_mutex_lock(&m->mu);
    m->forwards += forwards;
    pthread_mutex_unlock(&m->mu);
}

void metrics_request_forwards(srv_metrics *m, int forwards) {
    pthread_mutex_lock(&m->mu);
    m->request_forwards += forwards;
    pthread_mutex_unlock(&m->mu);
}

void metrics_step(srv_metrics *m, double seconds) {
    size_t b = 0;
    while (b < N_BUCKETS && seconds > k_step_buckets[b]) b++;
    pthread_mutex_lock(&m->mu);
    m->steps_in_bucket[b]++;
    m->steps++;
    m->step_seconds += seconds;
    pthread_mutex_unlock(&m->mu);
}

void metrics_generation(srv_metrics *m, long tokens, double seconds) {
    pthread_mutex_lock(&m->mu);
    m->tokens += tokens;
    m->generations++;
    m->generation_seconds += seconds;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_load(srv_metrics *m, int queued, int running) {
    pthread_mutex_lock(&m->mu);
    m->queued = queued;
    m->running = running;
    pthread_mutex_unlock(&m->mu);
}

void metrics_render(srv_metrics *m, sm_buf *out) {
    pthread_mutex_lock(&m->mu);
    sm_buf_str(out, "# HELP smdlm_requests_total HTTP requests answered, by route and status.\n"
                    "# TYPE smdlm_requests_total counter\n");
    for (int i = 0; i < m->n_series; i++)
        sm_buf_printf(out, "smdlm_requests_total{route=\"%s\",status=\"%d\"} %ld\n",
                      m->requests[i].route, m->requests[i].status, m->requests[i].count);
    sm_buf_printf(out, "# HELP smdlm_queue_depth Requests waiting for a generation slot.\n"
                       "# TYPE smdlm_queue_depth gauge\nsmdlm_queue_depth %d\n"
                       "# HELP smdlm_requests_running Requests generating now.\n"
                       "# TYPE smdlm_requests_running gauge\nsmdlm_requests_running %d\n",
                  m->queued, m->running);
    sm_buf_printf(out, "# HELP smdlm_forwards_total Network evaluations run (a batched forward "
                       "counts once).\n"
                       "# TYPE smdlm_forwards_total counter\nsmdlm_forwards_total %ld\n"
                       "# HELP smdlm_request_forwards_total Forwards counted once for each "
                       "request they served.\n"
                       "# TYPE smdlm_request_forwards_total counter\n"
                       "smdlm_request_forwards_total %ld\n",
                  m->forwards, m->request_forwards);
    sm_buf_printf(out, "# HELP smdlm_generations_total Generations finished.\n"
                       "# TYPE smdlm_generations_total counter\nsmdlm_generations_total %ld\n"
                       "# HELP smdlm_tokens_generated_total Completion tokens generated.\n"
                       "# TYPE smdlm_tokens_generated_total counter\n"
                       "smdlm_tokens_generated_total %ld\n"
                       "# HELP smdlm_generation_seconds_total Wall time of the generations.\n"
                       "# TYPE smdlm_generation_seconds_total counter\n"
                       "smdlm_generation_seconds_total %.6f\n",
                  m->generations, m->tokens, m->generation_seconds);
    sm_buf_printf(out, "# HELP smdlm_tokens_per_second Completion tokens per second of "
                       "generation time, all generations so far.\n"
                       "# TYPE smdlm_tokens_per_second gauge\nsmdlm_tokens_per_second %.3f\n",
                  m->generation_seconds > 0 ? (double)m->tokens / m->generation_seconds : 0.0);
    sm_buf_str(out, "# HELP smdlm_step_seconds Latency of one denoising step.\n"
                    "# TYPE smdlm_step_seconds histogram\n");
    long cumulative = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cumulative += m->steps_in_bucket[b];
        sm_buf_printf(out, "smdlm_step_seconds_bucket{le=\"%g\"} %ld\n", k_step_buckets[b],
                      cumulative);
    }
    sm_buf_printf(out, "smdlm_step_seconds_bucket{le=\"+Inf\"} %ld\n"
                       "smdlm_step_seconds_sum %.6f\nsmdlm_step_seconds_count %ld\n",
                  m->steps, m->step_seconds, m->steps);
    pthread_mutex_unlock(&m->mu);
}
