/* sampler_batch.c — see sampler_batch.h. */
#include "generate/sampler_batch.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct sampler_batch {
    const lm_model *m;
    /* the batched forward's inputs and output, grown to the largest batch seen */
    int32_t *x;
    double *t;
    uint8_t *need;
    sm_feedback *fb;
    float *logits;
    size_t rows;         /* canvases the buffers hold */
    int T;
    sampler_forward *in; /* per job: its forward, if it asked for one */
    int *asked;
    int jobs;            /* entries of in / asked */
    long forwards;       /* run so far (sampler_batch_forwards) */
};

sampler_batch *sampler_batch_new(const lm_model *m) {
    sampler_batch *b = sm_calloc(1, sizeof *b);
    b->m = m;
    return b;
}

void sampler_batch_free(sampler_batch *b) {
    if (!b) return;
    free(b->x);
    free(b->t);
    free(b->need);
    free(b->fb);
    free(b->logits);
    free(b->in);
    free(b->asked);
    free(b);
}

int sampler_batch_fits(const sampler_job *job, sampler_job *const *list, int n) {
    int T, k;
    sampler_job_shape(job, &T, &k);
    for (int i = 0; i < n; i++) {
        int Ti, ki;
        sampler_job_shape(list[i], &Ti, &ki);
        if (Ti != T || (k && ki && ki != k)) return 0;
    }
    return 1;
}

/* Room for `rows` canvases of T positions in the batch buffers. */
static int reserve(sampler_batch *b, size_t rows, int T) {
    if (rows <= b->rows && T == b->T) return 0;
    const size_t n = sm_size_mul(rows, (size_t)T), V = (size_t)b->m->vocab_size;
    if (SM_CHECK_MEMORY(sm_size_mul(sm_size_mul(n, V), sizeof(float)), "a batched forward of "
                        "%zu canvases × %d positions", rows, T))
        return -1;
    free(b->logits);
    b->logits = sm_aligned_alloc(n * V * sizeof(float));
    b->x = sm_realloc(b->x, n * sizeof(int32_t));
    b->t = sm_realloc(b->t, rows * sizeof(double));
    b->need = sm_realloc(b->need, n);
    b->fb = sm_realloc(b->fb, n * sizeof(sm_feedback));
    b->rows = rows;
    b->T = T;
    return 0;
}

/* The forwards the jobs asked for as one: their canvases stacked, the output rows each job
 * will read copied back to its own buffer. 0 or −1. */
static int batched_forward(sampler_batch *b, int n) {
    const lm_model *m = b->m;
    size_t rows = 0;
    int T = 0;
    const sm_params *sm = NULL;
    for (int i = 0; i < n; i++)
        if (b->asked[i]) {
            rows += (size_t)b->in[i].B;
            T = b->in[i].T;
            if (b->in[i].sm) sm = b->in[i].sm;
        }
    if (reserve(b, rows, T)) return -1;
    const size_t V = (size_t)m->vocab_size;
    size_t at = 0; /* positions stacked so far */
    for (int i = 0; i < n; i++) {
        if (!b->asked[i]) continue;
        const sampler_forward *f = &b->in[i];
        const size_t BT = (size_t)f->B * f->T;
        memcpy(b->x + at, f->x, BT * sizeof(int32_t));
        memcpy(b->need + at, f->need, BT);
        for (int r = 0; r < f->B; r++) b->t[at / T + r] = f->t ? f->t[r] : 1.0;
        if (sm && f->fb) memcpy(b->fb + at, f->fb, BT * sizeof(sm_feedback));
        else if (sm) /* λ = 0: the plain mask embedding (sampler_batch.h) */
            for (size_t p = 0; p < BT; p++) b->fb[at + p].lambda = 0.0f;
        at += BT;
    }
    if (m->forward(m->ctx, b->x, b->t, sm, sm ? b->fb : NULL, b->need, (int)rows, T, b->logits))
        return -1;
    at = 0;
    for (int i = 0; i < n; i++) {
        if (!b->asked[i]) continue;
        const sampler_forward *f = &b->in[i];
        const size_t BT = (size_t)f->B * f->T;
        for (size_t p = 0; p < BT; p++) /* the other rows are unspecified (lm.h) */
            if (f->need[p])
                memcpy(f->logits + p * V, b->logits + (at + p) * V, V * sizeof(float));
        at += BT;
    }
    return 0;
}

void sampler_batch_step(sampler_batch *b, sampler_job *const *jobs, int n, int *rc) {
    if (n > b->jobs) {
        b->in = sm_realloc(b->in, sizeof *b->in * (size_t)n);
        b->asked = sm_realloc(b->asked, sizeof *b->asked * (size_t)n);
        b->jobs = n;
    }
    int forwards = 0, only = -1;
    for (int i = 0; i < n; i++) {
        b->asked[i] = sampler_job_input(jobs[i], &b->in[i]);
        if (b->asked[i]) forwards++, only = i;
    }
    double seconds = 0.0;
    if (forwards) {
        const double t0 = sm_time_sec();
        b->forwards++;
        const sampler_forward *f = &b->in[only];
        const int failed = forwards == 1 /* alone: straight into the job's buffer */
                               ? b->m->forward(b->m->ctx, f->x, f->t, f->sm, f->fb, f->need, f->B,
                                               f->T, f->logits)
                               : batched_forward(b, n);
        seconds = sm_time_sec() - t0;
        if (failed) {
            for (int i = 0; i < n; i++) rc[i] = b->asked[i] ? -1 : sampler_job_step(jobs[i], 0.0);
            return;
        }
    }
    for (int i = 0; i < n; i++) rc[i] = sampler_job_step(jobs[i], b->asked[i] ? seconds : 0.0);
}

long sampler_batch_forwards(const sampler_batch *b) { return b->forwards; }
