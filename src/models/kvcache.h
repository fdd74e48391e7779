/* kvcache.h — approximate key/value caches for block-wise Dream / LLaDA decoding.
 *
 * A bidirectional model's keys and values at every position depend on the whole canvas, so
 * reusing them after the canvas changed is an approximation (Fast-dLLM's prefix and dual
 * caches). A refresh is one full forward that stores every layer's K/V (after rotary); the
 * steps after it compute only a window of positions and read the other positions' K/V from
 * the cache:
 *
 *   KV_CACHE_PREFIX  window = [block start, T): the prompt and the completed blocks are cached
 *                    (Dream's single block: the prompt only).
 *   KV_CACHE_DUAL    window = [block start, block end): the prefix and the suffix are cached.
 *
 * With Dream's shift the window starts one position earlier (the prediction for the block's
 * first position is the previous position's output row), except for Dream's blocks (the
 * caller passes shift 0: their refresh reveals the block's first position). The cache is refreshed when a block
 * starts and, with refresh = N > 0, at every N-th forward inside a block (N = 1: every forward
 * is a full one, identical to no cache).
 */
#ifndef SMDLM_KVCACHE_H
#define SMDLM_KVCACHE_H

#include <stddef.h>

typedef enum { KV_CACHE_OFF = 0, KV_CACHE_PREFIX, KV_CACHE_DUAL } kv_cache_mode;

int kv_cache_mode_parse(const char *name, kv_cache_mode *out);
const char *kv_cache_mode_name(kv_cache_mode m);

/* Keys and values of `layers` layers for B rows of T positions, kv_dim floats each,
 * laid out [layer][row][position][kv_dim]. */
typedef struct {
    int layers, B, T, kv_dim;
    size_t cap;     /* floats allocated in each of k and v */
    float *k, *v;
} kv_cache;

/* Sizes the cache (growing the allocation when needed); contents are unspecified after it. −1
 * when the grown cache would not fit in the available memory (the old one is then freed). */
int kv_cache_reserve(kv_cache *c, int layers, int B, int T, int kv_dim);
void kv_cache_free(kv_cache *c);
/* Row `b` of layer `l`: T·kv_dim floats. */
static inline float *kv_cache_k(const kv_cache *c, int l, int b) {
    return c->k + ((size_t)l * c->B + (size_t)b) * c->T * c->kv_dim;
}
static inline float *kv_cache_v(const kv_cache *c, int l, int b) {
    return c->v + ((size_t)l * c->B + (size_t)b) * c->T * c->kv_dim;
}

/* The positions [*lo, *hi) a cached step computes for the block [blk_start, blk_end) of a
 * canvas of T positions (shift = 1: Dream's logit shift). */
void kv_cache_window(kv_cache_mode mode, int shift, int blk_start, int blk_end, int T, int *lo,
                     int *hi);

#endif
