/* noise.h — MDLM's log-linear noise schedule (docs/DESIGN.md §2.2), the σ(t) that conditions
 * the DiT: the total noise σ(t) = −log(1 − (1 − ε)·t) with ε = 1e-3, so that a token is
 * masked at time t with probability 1 − e^{−σ(t)} = (1 − ε)·t. Computed in double (log1p keeps
 * small t exact) and rounded once to float. */
#ifndef SMDLM_NOISE_H
#define SMDLM_NOISE_H

#include <math.h>

#define MDLM_NOISE_EPS 1e-3

static inline float mdlm_sigma(double t) { return (float)-log1p(-(1.0 - MDLM_NOISE_EPS) * t); }

#endif
