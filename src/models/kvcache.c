/* kvcache.c — see kvcache.h. */
#include "models/kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static const sm_enum_entry k_modes[] = {
    {"prefix", KV_CACHE_PREFIX}, {"dual", KV_CACHE_DUAL}, {"off", KV_CACHE_OFF}};

const char *kv_cache_mode_name(kv_cache_mode m) { return SM_ENUM_NAME(k_modes, m); }

SM_ENUM_PARSER(kv_cache_mode_parse, kv_cache_mode, k_modes, "cache")

int kv_cache_reserve(kv_cache *c, int layers, int B, int T, int kv_dim) {
    size_t n;
    if (layers < 1 || B < 1 || T < 1 || kv_dim < 1 ||
        sm_mul_size((size_t)layers * (size_t)B, (size_t)T * (size_t)kv_dim, &n) ||
        n > ((size_t)1 << 38) / sizeof(float))
        return SM_ERR("a key/value cache of %d layers × %d × %d × %d is too large", layers, B, T,
                      kv_dim);
    if (n > c->cap) {
        free(c->k);
        free(c->v);
        c->k = sm_aligned_alloc(n * sizeof(float));
        c->v = sm_aligned_alloc(n * sizeof(float));
        c->cap = n;
    }
    c->layers = layers;
    c->B = B;
    c->T = T;
    c->kv_dim = kv_dim;
    return 0;
}

void kv_cache_free(kv_cache *c) {
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

void kv_cache_window(kv_cache_mode mode, int shift, int blk_start, int blk_end, int T, int *lo,
                     int *hi) {
    *lo = shift && blk_start > 0 ? blk_start - 1 : blk_start;
    *hi = mode == KV_CACHE_DUAL ? blk_end : T;
}
