/* rng.c — xoshiro256** (Blackman & Vigna) with splitmix64 seeding. */
#include "base/rng.h"

#include "base/util.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_seed(sm_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(sm_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(sm_rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

int32_t rng_inverse_cdf(const float *w, int n, double u) {
    double total = 0.0;
    for (int v = 0; v < n; v++) total += w[v];
    double target = u * total, acc = 0.0;
    for (int v = 0; v < n; v++) {
        acc += w[v];
        if (acc > target) return v;
    }
    for (int v = n - 1; v >= 0; v--)
        if (w[v] > 0.0f) return v;
    SM_ASSERT(0);
    return 0;
}
