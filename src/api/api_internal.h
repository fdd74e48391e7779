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

#endif
