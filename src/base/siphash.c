/* siphash.c — see siphash.h. */
#include "base/siphash.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static void sip_round(uint64_t v[4]) {
    v[0] += v[1], v[1] = rotl(v[1], 13), v[1] ^= v[0], v[0] = rotl(v[0], 32);
    v[2] += v[3], v[3] = rotl(v[3], 16), v[3] ^= v[2];
    v[0] += v[3], v[3] = rotl(v[3], 21), v[3] ^= v[0];
    v[2] += v[1], v[1] = rotl(v[1], 17), v[1] ^= v[2], v[2] = rotl(v[2], 32);
}

/* The little-endian 64-bit word of n ≤ 8 bytes. */
static uint64_t load_le(const uint8_t *p, size_t n) {
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    return w;
}

uint64_t siphash24(uint64_t k0, uint64_t k1, const void *data, size_t n) {
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    const uint8_t *p = data;
    const size_t whole = n - n % 8;
    for (size_t i = 0; i < whole; i += 8) { /* two compression rounds per 8-byte word */
        const uint64_t m = load_le(p + i, 8);
        v[3] ^= m;
        sip_round(v), sip_round(v);
        v[0] ^= m;
    }
    /* the last word: the remaining bytes, the length modulo 256 in the top byte */
    const uint64_t m = load_le(p + whole, n % 8) | (uint64_t)(n & 0xff) << 56;
    v[3] ^= m;
    sip_round(v), sip_round(v);
    v[0] ^= m;
    v[2] ^= 0xff; /* four finalization rounds */
    sip_round(v), sip_round(v), sip_round(v), sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static uint64_t g_key[2];
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void draw_key(void) {
    if (getrandom(g_key, sizeof g_key, 0) == (ssize_t)sizeof g_key) return;
    /* no getrandom (a kernel before 3.17): the clock and the process id, still unknown to
     * whoever wrote the input in advance */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    g_key[0] = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30;
    g_key[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);
}

uint64_t sm_keyed_hash(const char *s) {
    pthread_once(&g_key_once, draw_key);
    return siphash24(g_key[0], g_key[1], s, strlen(s));
}
