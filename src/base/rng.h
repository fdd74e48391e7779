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
/* An index drawn from the weights w[0..n) (not necessarily normalised, some > 0) with the
 * uniform u, by inverse CDF in index order: the first v whose float64 running sum exceeds
 * u·Σw; the last non-zero weight when rounding makes u·Σw reach the total. The samplers and
 * decoders draw tokens this way, and tools/ref_dit.py mirrors it. */
int32_t rng_inverse_cdf(const float *w, int n, double u);

#endif
