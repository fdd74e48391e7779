/* weight_init.h — the initial weights of a DiT trained from scratch, as MDLM initialises
 * them: normal(0, 0.02) weight matrices and embeddings, unit norms, zero biases, and zero
 * adaLN modulation and output layer (so the untrained model predicts uniformly). */
#ifndef SMDLM_WEIGHT_INIT_H
#define SMDLM_WEIGHT_INIT_H

#include <stdint.h>

#include "models/dit.h"

/* Overwrites every parameter of m (owned); the normal draws come from an RNG seeded with
 * seed, in the order of dit_param_table, by Box–Muller (one draw per pair of uniforms). */
void mdlm_init_weights(dit_model *m, uint64_t seed);

#endif
