/* kvcache_quality.c — the quality cost and the speed-up of the approximate key/value caches
 * (src/models/kvcache.h) against the uncached decoder on the same prompts and seeds.
 *
 *   make && cc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -Iinclude -Isrc bench/kvcache_quality.c \
 *       build/libsmdlm.a $(pkg-config --libs libcjson libpcre2-8 libutf8proc) \
 *       -L/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lz -lm -o build/kvcache_quality
 *   [THREADS=N] build/kvcache_quality DIR prefix|dual BLOCK GEN STEPS RUNS PROMPT_LEN [pll]
 *
 * BLOCK 0 = one block (Dream-style on a Dream model). Each run r uses a random prompt of
 * PROMPT_LEN ids and seed r. Reported: the fraction of generated tokens that differ from the
 * uncached run; with `pll`, the mean pseudo-log-likelihood of the generated tokens under the
 * uncached model (each generated position masked alone, log p of its token) for both runs;
 * forwards, positions computed and forward seconds of both.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/decoder.h"
#include "compute/kernels.h"
#include "models/model.h"
#include "base/rng.h"
#include "base/util.h"

/* Mean over generated positions t of log softmax(row predicting t)[x_t], x_t masked alone. */
static double pll(tf_state *s, const int32_t *x, int P, int T) {
    const transformer_model *m = s->m;
    const int G = T - P, V = m->cfg.vocab_size;
    int32_t *xs = sm_malloc(sizeof(int32_t) * (size_t)G * T);
    uint8_t *need = sm_calloc((size_t)G * T, 1);
    float *lg = sm_malloc(sizeof(float) * (size_t)G * T * V);
    for (int g = 0; g < G; g++) {
        memcpy(xs + (size_t)g * T, x, sizeof(int32_t) * T);
        xs[(size_t)g * T + P + g] = m->cfg.mask_id;
        const int t = P + g, row = m->cfg.shift ? (t > 0 ? t - 1 : 0) : t;
        need[(size_t)g * T + row] = 1;
    }
    if (transformer_forward(s, xs, NULL, NULL, need, G, T, lg)) {
        fprintf(stderr, "%s\n", smdlm_last_error());
        exit(1);
    }
    double sum = 0.0;
    for (int g = 0; g < G; g++) {
        const int t = P + g, row = m->cfg.shift ? (t > 0 ? t - 1 : 0) : t;
        const float *z = lg + ((size_t)g * T + row) * V;
        double mx = -INFINITY, s = 0.0;
        for (int v = 0; v < V; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < V; v++) s += exp(z[v] - mx);
        sum += z[x[t]] - mx - log(s);
    }
    free(xs), free(need), free(lg);
    return sum / G;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s DIR prefix|dual BLOCK GEN STEPS RUNS PROMPT_LEN [pll]\n", argv[0]);
        return 2;
    }
    kernels_set_threads(getenv("THREADS") ? atoi(getenv("THREADS")) : 1); /* default 1 */
    model_dir md;
    if (model_dir_load_any(&md, argv[1], 0) || md.arch == MODEL_MDLM) {
        fprintf(stderr, "%s\n", smdlm_last_error());
        return 1;
    }
    kv_cache_mode mode;
    if (kv_cache_mode_parse(argv[2], &mode)) return fprintf(stderr, "%s\n", smdlm_last_error()), 1;
    const int block = atoi(argv[3]), G = atoi(argv[4]), steps = atoi(argv[5]), runs = atoi(argv[6]),
              P = atoi(argv[7]), with_pll = argc > 8 && !strcmp(argv[8], "pll");
    const int T = P + G;
    lm_model lm;
    tf_state st;
    tf_state_init(&st, &md.tf);
    transformer_as_lm(&st, &lm);
    decoder_params p;
    decoder_params_default(&p);
    p.style = block ? DECODER_LLADA : (md.arch == MODEL_LLADA ? DECODER_LLADA : DECODER_DREAM);
    p.block_length = block;
    p.gen_len = G;
    p.steps = steps;
    if (p.style == DECODER_DREAM) p.alg = DECODER_ALG_ENTROPY; /* Dream's README example */
    int32_t *x0 = sm_malloc(sizeof(int32_t) * T), *x1 = sm_malloc(sizeof(int32_t) * T);
    long diff = 0;
    double pll0 = 0, pll1 = 0, f0 = 0, f1 = 0, s0 = 0, s1 = 0, pos0 = 0, pos1 = 0;
    for (int r = 0; r < runs; r++) {
        sm_rng g;
        rng_seed(&g, 1000 + (uint64_t)r);
        for (int t = 0; t < P; t++) {
            int32_t id = (int32_t)(rng_uniform(&g) * (md.tf.cfg.vocab_size - 1));
            x0[t] = x1[t] = id == md.tf.cfg.mask_id ? id + 1 : id;
        }
        p.seed = (uint64_t)r;
        decoder_stats st0, st1;
        p.cache = KV_CACHE_OFF;
        if (decoder_run(&lm, &p, x0, 1, P, NULL, &st0)) return fprintf(stderr, "%s\n", smdlm_last_error()), 1;
        p.cache = mode;
        if (decoder_run(&lm, &p, x1, 1, P, NULL, &st1)) return fprintf(stderr, "%s\n", smdlm_last_error()), 1;
        for (int t = P; t < T; t++) diff += x0[t] != x1[t];
        f0 += st0.forwards, f1 += st1.forwards;
        pos0 += st0.positions_computed, pos1 += st1.positions_computed;
        s0 += st0.forward_seconds, s1 += st1.forward_seconds;
        if (with_pll) {
            pll0 += pll(&st, x0, P, T);
            pll1 += pll(&st, x1, P, T);
        }
    }
    printf("%s %s cache, block %d, gen %d, steps %d, prompt %d, %d runs: tokens differing %.1f%% "
           "(%ld of %d)", argv[1], argv[2], block, G, steps, P, runs, 100.0 * diff / ((double)runs * G),
           diff, runs * G);
    if (with_pll)
        printf("; mean PLL uncached %.4f, cached %.4f (Δ %+.4f nats/token)", pll0 / runs,
               pll1 / runs, (pll1 - pll0) / runs);
    printf("; forwards %.0f vs %.0f; positions computed %.0f vs %.0f (%.2f× fewer); forward time "
           "%.3f s vs %.3f s (%.2f×)\n", f0, f1, pos0, pos1, pos0 / pos1, s0, s1, s1 > 0 ? s0 / s1 : 0);
    free(x0), free(x1);
    model_dir_free(&md);
    return 0;
}
