/* api_internal.h — what the two halves of the public API (api.c: models, states, text,
 * forward; api_generate.c: generation) share, and the soft-masking resolution the command-line
 * front end reuses for the commands that work on model directories directly. */
#ifndef SMDLM_API_INTERNAL_H
#define SMDLM_API_INTERNAL_H

#include "smdlm.h"

#include "models/model.h"
#include "softmask/softmask.h"

struct smdlm_model {
    model_dir md; /* read-only after smdlm_model_load */
    int threads;
};

/* Everything a generation or a forward writes. MDLM: the samplers allocate their run's
 * scratch themselves, the state keeps the forward's activations. Dream/LLaDA: the workspace
 * and key/value cache are still inside the model (transformer_model), so one state at a time
 * may run on such a model. */
struct smdlm_state {
    smdlm_model *model;
    dit_acts acts;       /* smdlm_forward on an MDLM, for acts_B × acts_T (0: none yet) */
    int acts_B, acts_T;
    uint8_t *masked;     /* the step callback's masked positions, masked_cap entries */
    size_t masked_cap;
};

/* The soft-masking of a request: the model directory's values (model_sm) with sm's overrides,
 * on or off by sm->mode; validated when on. */
int api_softmask_resolve(const smdlm_softmask *sm, const sm_params *model_sm, sm_params *out);

#endif
