/* api_internal.h — what the two halves of the public API (api.c: models, states, text,
 * forward; api_generate.c: generation) share, and the soft-masking resolution the command-line
 * front end reuses for the commands that work on model directories directly. */
#ifndef SMDLM_API_INTERNAL_H
#define SMDLM_API_INTERNAL_H

#include "smdlm.h"

#include "generate/sampler.h"
#include "models/model.h"
#include "softmask/softmask.h"

struct smdlm_model {
    model_dir md; /* read-only after smdlm_model_load */
    int threads;
};

/* Everything a generation or a forward writes: the model layer's generation state (its
 * lm_model view with the network's scratch and key/value cache) and the request's buffers; the
 * samplers and decoders allocate the rest of a run's scratch themselves. */
struct smdlm_state {
    const smdlm_model *model;
    model_state ms;
    uint8_t *masked;     /* the step callback's masked positions, masked_cap entries */
    size_t masked_cap;
};

/* The soft-masking of a request: the model directory's values (model_sm) with sm's overrides,
 * on or off by sm->mode; validated when on. */
int api_softmask_resolve(const smdlm_softmask *sm, const sm_params *model_sm, sm_params *out);

/* The public step callback behind a generation loop's hook (api_generate.c). */
typedef struct {
    smdlm_state *state;
    const smdlm_gen_params *gp;
    int steps_unknown; /* threshold decoding: the callback sees steps = 0 */
} step_relay;
/* Sets *on_step / *user to the relay when gp has a callback (r must outlive the run). */
void api_set_relay(step_relay *r, smdlm_state *state, const smdlm_gen_params *gp,
                   gen_step_fn *on_step, void **user);

/* An MDLM generation of n samples from a canvas template, as a sampler job (smdlm_generate_ids
 * on an MDLM model; the batches of api_batch.c). */
typedef struct {
    smdlm_gen_params gp; /* the request's, for its step callback */
    step_relay relay;
    int32_t *ids;        /* [n, T] the canvases */
    uint8_t *fixed;      /* [n, T] or NULL */
    int n, T, P, open;   /* P: prompt positions; open: positions not fixed */
    int sm_enabled, planned_steps;
    const char *method;
    sampler_job *job;
} api_mdlm_run;
/* Checks the request and starts its job on state's model (the struct must not move while the
 * job lives). 0, or −1 with nothing left to free. */
int api_mdlm_begin(smdlm_state *state, const int32_t *x, const uint8_t *fixed, int T,
                   const smdlm_gen_params *gp, api_mdlm_run *run);
/* Ends the run whose job returned rc (0, GEN_STOPPED, −1): on 0 or GEN_STOPPED *r holds the
 * canvases and statistics (no texts); returns rc. */
int api_mdlm_end(api_mdlm_run *run, int rc, smdlm_result *r);
/* r->text[b]: the text of sample b's positions [from, to). */
void api_span_texts(const smdlm_model *model, smdlm_result *r, int from, int to);

#endif
