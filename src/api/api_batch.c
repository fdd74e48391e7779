/* api_batch.c — continuous batching through the public API (include/smdlm.h smdlm_batch_*):
 * each member is an MDLM run (api_mdlm_run, the one smdlm_generate_ids makes), stepped
 * together by the sampler's batch driver (src/generate/sampler_batch.h). */
#include "api/api_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "compute/kernels.h"
#include "generate/sampler_batch.h"

typedef struct {
    api_mdlm_run run;
    int rc;       /* while running 0; then SAMPLER_JOB_DONE, GEN_STOPPED or −1 */
    char *error;  /* rc −1: the message */
} member;

struct smdlm_batch {
    smdlm_state *state;
    sampler_batch *driver;
    member **slots; /* NULL: free */
    int n_slots;
    sampler_job **jobs; /* scratch of smdlm_batch_step */
    member **stepping;
    int *rcs;
};

smdlm_batch *smdlm_batch_new(smdlm_state *state) {
    if (state->model->md.arch != MODEL_MDLM) {
        SM_ERR("%s: batching applies to MDLM models", state->model->md.dir);
        return NULL;
    }
    smdlm_batch *b = sm_calloc(1, sizeof *b);
    b->state = state;
    b->driver = sampler_batch_new(&state->ms.lm);
    return b;
}

static void member_free(member *m) {
    if (m->rc == 0) api_mdlm_end(&m->run, -1, NULL);
    free(m->error);
    free(m);
}

void smdlm_batch_free(smdlm_batch *batch) {
    if (!batch) return;
    for (int i = 0; i < batch->n_slots; i++)
        if (batch->slots[i]) member_free(batch->slots[i]);
    free(batch->slots);
    free(batch->jobs);
    free(batch->stepping);
    free(batch->rcs);
    sampler_batch_free(batch->driver);
    free(batch);
}

/* The running members' jobs into batch->jobs / stepping; their count. */
static int running(smdlm_batch *batch) {
    int n = 0;
    for (int i = 0; i < batch->n_slots; i++)
        if (batch->slots[i] && batch->slots[i]->rc == 0) {
            batch->stepping[n] = batch->slots[i];
            batch->jobs[n++] = batch->slots[i]->run.job;
        }
    return n;
}

int smdlm_batch_accepts(const smdlm_batch *batch, int len, const smdlm_gen_params *gp) {
    const sm_params *model_sm = &batch->state->model->md.sm;
    sm_params sm;
    if (api_softmask_resolve(&gp->sm, model_sm, &sm)) return 0;
    for (int i = 0; i < batch->n_slots; i++) {
        const member *m = batch->slots[i];
        if (!m || m->rc != 0) continue;
        int T, k;
        sampler_job_shape(m->run.job, &T, &k);
        if (T != len || (sm.enabled && k && k != sm.k)) return 0;
    }
    return 1;
}

int smdlm_batch_add(smdlm_batch *batch, const int32_t *x, const uint8_t *fixed, int len,
                    const smdlm_gen_params *gp) {
    if (len < 1) return SM_ERR("canvas length %d must be ≥ 1", len);
    if (gp->mdlm.num_strides > 0)
        return SM_ERR("semi-autoregressive sampling (num_strides %d) does not run in a batch",
                      gp->mdlm.num_strides);
    if (!smdlm_batch_accepts(batch, len, gp))
        return SM_ERR("a canvas of %d positions does not fit the batch (other length or "
                      "soft-masking top-k)", len);
    member *m = sm_calloc(1, sizeof *m);
    if (api_mdlm_begin(batch->state, x, fixed, len, gp, &m->run)) {
        free(m);
        return -1;
    }
    int id = 0;
    while (id < batch->n_slots && batch->slots[id]) id++;
    if (id == batch->n_slots) {
        batch->n_slots++;
        batch->slots = sm_realloc(batch->slots, sizeof *batch->slots * (size_t)batch->n_slots);
        batch->jobs = sm_realloc(batch->jobs, sizeof *batch->jobs * (size_t)batch->n_slots);
        batch->stepping = sm_realloc(batch->stepping, sizeof *batch->stepping * (size_t)batch->n_slots);
        batch->rcs = sm_realloc(batch->rcs, sizeof *batch->rcs * (size_t)batch->n_slots);
    }
    batch->slots[id] = m;
    return id;
}

int smdlm_batch_count(const smdlm_batch *batch) {
    int n = 0;
    for (int i = 0; i < batch->n_slots; i++) n += batch->slots[i] != NULL;
    return n;
}

int smdlm_batch_step(smdlm_batch *batch) {
    const int n = running(batch);
    if (!n) return SMDLM_OK;
    kernels_set_threads(batch->state->model->threads);
    sampler_batch_step(batch->driver, batch->jobs, n, batch->rcs);
    for (int i = 0; i < n; i++) {
        member *m = batch->stepping[i];
        m->rc = batch->rcs[i];
        if (m->rc < 0) m->error = sm_strdup(smdlm_last_error());
    }
    return SMDLM_OK;
}

int smdlm_batch_ended(const smdlm_batch *batch) {
    for (int i = 0; i < batch->n_slots; i++)
        if (batch->slots[i] && batch->slots[i]->rc != 0) return i;
    return -1;
}

long smdlm_batch_forwards(const smdlm_batch *batch) {
    return sampler_batch_forwards(batch->driver);
}

int smdlm_batch_take(smdlm_batch *batch, int id, smdlm_result *r) {
    memset(r, 0, sizeof *r);
    if (id < 0 || id >= batch->n_slots || !batch->slots[id])
        return SM_ERR("no batch member %d", id);
    member *m = batch->slots[id];
    batch->slots[id] = NULL;
    const int rc = m->rc == 0 ? GEN_STOPPED : m->rc == SAMPLER_JOB_DONE ? 0 : m->rc;
    if (rc < 0) SM_ERR("%s", m->error);
    api_mdlm_end(&m->run, rc, r);
    const int T = m->run.T;
    free(m->error);
    free(m);
    if (rc == 0) api_span_texts(batch->state->model, r, 0, T);
    return rc < 0 ? SMDLM_ERROR : rc;
}
