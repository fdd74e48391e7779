/* rng.h — explicit, seedable random state: xoshiro256** seeded through splitmix64.
 * tools/ref_dit.py mirrors it bit for bit so reference samplers draw the same numbers. */
#ifndef SMDLM_RNG_H
#define SMDLM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} sm_rng;

void rng_seed(sm_rng *r, uint64_t seed);
uint64_t rng_next(sm_rng *r);
/* double in [0, 1) with 53 random bits */
double rng_uniform(sm_rng *r);

#endif
