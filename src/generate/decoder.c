/* decoder.c — Dream / LLaDA / threshold decoders; see decoder.h, docs/DESIGN.md §5 and §3, and NOTES.md
 * ("Decoders") for the order of the random draws. */
#include "generate/decoder.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "compute/kernels.h"
#include "base/rng.h"
#include "base/util.h"

#define DREAM_EPS 1e-3f    /* generation_utils: timesteps = linspace(1, eps, steps + 1) */
#define ENTROPY_EPS 1e-10  /* the `entropy` confidence Σ p·log(p + ε) */

static const sm_enum_entry k_algs[] = {{"origin", DECODER_ALG_ORIGIN},
                                       {"maskgit_plus", DECODER_ALG_MASKGIT_PLUS},
                                       {"topk_margin", DECODER_ALG_TOPK_MARGIN},
                                       {"entropy", DECODER_ALG_ENTROPY}};
static const sm_enum_entry k_remasks[] = {{"low_confidence", DECODER_REMASK_LOW_CONFIDENCE},
                                          {"random", DECODER_REMASK_RANDOM}};

const char *decoder_alg_name(decoder_alg a) { return SM_ENUM_NAME(k_algs, a); }
const char *decoder_remask_name(decoder_remask r) { return SM_ENUM_NAME(k_remasks, r); }

SM_ENUM_PARSER(decoder_alg_parse, decoder_alg, k_algs, "algorithm")

SM_ENUM_PARSER(decoder_remask_parse, decoder_remask, k_remasks, "remasking")

void decoder_params_default(decoder_params *p) {
    memset(p, 0, sizeof *p);
    p->style = DECODER_DREAM;
    p->gen_len = 128;
    p->steps = 128;
    p->top_p = 1.0f;
    p->alg = DECODER_ALG_ORIGIN; /* generation_utils' default */
    p->remasking = DECODER_REMASK_LOW_CONFIDENCE;
    p->eos_id = -1;
    p->logits_inf_id = -1;
    p->conf_inf_id = -1;
    sm_params_default(&p->sm);
    p->sm.enabled = 0;
    p->sm.k = 1; /* Dream's mixinputs_k */
}

int decoder_dream_blocks(const decoder_params *p) {
    return p->style == DECODER_DREAM && p->block_length != 0 && p->block_length != p->gen_len;
}

int decoder_planned_steps(const decoder_params *p) {
    if (p->tokens_per_step > 0) return (p->gen_len + p->tokens_per_step - 1) / p->tokens_per_step;
    return p->steps;
}

int decoder_params_validate(const decoder_params *p, const lm_model *m, int prompt_len) {
    if (p->gen_len < 1) return SM_ERR("generation length %d must be ≥ 1", p->gen_len);
    if (prompt_len < 0) return SM_ERR("prompt length %d must be ≥ 0", prompt_len);
    if ((long)prompt_len + p->gen_len > m->max_len)
        return SM_ERR("prompt (%d) + generation length (%d) exceeds the model's length %d",
                      prompt_len, p->gen_len, m->max_len);
    if (p->tokens_per_step < 0) return SM_ERR("tokens per step %d must be ≥ 1", p->tokens_per_step);
    const int steps = decoder_planned_steps(p);
    if (p->threshold == 0.0f && (steps < 1 || steps > 1000000)) /* threshold: until done */
        return SM_ERR("steps %d must be in [1, 1000000]", steps);
    if (!(p->temperature >= 0.0f && p->temperature <= 1e6f))
        return SM_ERR("temperature %g must be in [0, 1e6]", p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return SM_ERR("top-p %g must be in (0, 1]", p->top_p);
    if (p->top_k < 0) return SM_ERR("top-k %d must be ≥ 0 (0: off)", p->top_k);
    if (!(p->alg_temp >= 0.0f && p->alg_temp <= 1e6f))
        return SM_ERR("alg-temp %g must be in [0, 1e6]", p->alg_temp);
    if (!(p->threshold == 0.0f || (p->threshold > 0.0f && p->threshold <= 1.0f)))
        return SM_ERR("threshold %g must be in (0, 1] (0: off)", p->threshold);
    if (p->style == DECODER_LLADA) {
        const int L = p->block_length ? p->block_length : p->gen_len;
        if (L < 1 || L > p->gen_len || p->gen_len % L != 0)
            return SM_ERR("block length %d must divide the generation length %d", L, p->gen_len);
        if (p->threshold == 0.0f && steps % (p->gen_len / L) != 0)
            return SM_ERR("steps %d must be a multiple of the number of blocks %d", steps,
                          p->gen_len / L);
        if (p->threshold > 0.0f && p->remasking != DECODER_REMASK_LOW_CONFIDENCE)
            return SM_ERR("threshold decoding needs low_confidence remasking");
    } else {
        if (decoder_dream_blocks(p)) {
            const int L = p->block_length, nblocks = p->gen_len / L;
            if (L < 1 || p->gen_len % L != 0)
                return SM_ERR("block length %d must divide the generation length %d", L, p->gen_len);
            if (p->alg == DECODER_ALG_ORIGIN)
                return SM_ERR("Dream block decoding needs a confidence algorithm (maskgit_plus, "
                              "topk_margin or entropy; Fast-dLLM uses entropy), not origin");
            if (p->threshold == 0.0f && steps % nblocks != 0)
                return SM_ERR("steps %d must be a multiple of the number of blocks %d", steps, nblocks);
            if (p->threshold == 0.0f && L > 1 && steps / nblocks < 2)
                return SM_ERR("Dream block decoding needs at least 2 steps per block (%d steps, %d "
                              "blocks): a block's first step reveals only its first position",
                              steps, nblocks);
        }
        if (p->threshold > 0.0f &&
            !(p->alg == DECODER_ALG_MASKGIT_PLUS || p->alg == DECODER_ALG_TOPK_MARGIN))
            return SM_ERR("threshold decoding needs a probability confidence (maskgit_plus or "
                          "topk_margin), not %s", decoder_alg_name(p->alg));
    }
    if (p->eos_id < -1 || p->eos_id >= m->vocab_size || p->eos_id == m->mask_id)
        return SM_ERR("EOS id %d must be a token id in [0, %d) other than the mask id %d",
                      p->eos_id, m->vocab_size, m->mask_id);
    if (!isfinite(p->eos_penalty)) return SM_ERR("EOS penalty %g must be finite", p->eos_penalty);
    if (p->eos_penalty != 0.0f && p->eos_id < 0) return SM_ERR("an EOS penalty needs an EOS id");
    if (p->sm.enabled && sm_params_validate(&p->sm)) return -1;
    if (!(p->cfg_scale >= 0.0f && p->cfg_scale <= 1e6f))
        return SM_ERR("cfg scale %g must be in [0, 1e6]", p->cfg_scale);
    if (p->cfg_scale > 0.0f && (p->style != DECODER_LLADA || p->sm.enabled ||
                                p->cache != KV_CACHE_OFF))
        return SM_ERR("classifier-free guidance applies to LLaDA-style decoding without "
                      "soft-masking and without a cache");
    const int ids[2] = {p->logits_inf_id, p->conf_inf_id};
    for (int i = 0; i < 2; i++) {
        if (ids[i] < -1 || ids[i] >= m->vocab_size || ids[i] == m->mask_id)
            return SM_ERR("token id %d must be in [0, %d) other than the mask id", ids[i],
                          m->vocab_size);
        if (ids[i] >= 0 && p->style != DECODER_LLADA)
            return SM_ERR("the EOS/EoT options apply to LLaDA-style decoding");
    }
    if (p->conf_inf_id >= 0 && p->remasking != DECODER_REMASK_LOW_CONFIDENCE)
        return SM_ERR("the EoT confidence option needs low_confidence remasking");
    if (p->cache < KV_CACHE_OFF || p->cache > KV_CACHE_DUAL)
        return SM_ERR("unknown key/value cache mode %d", (int)p->cache);
    if (p->cache_refresh < 0) return SM_ERR("cache refresh %d must be ≥ 0", p->cache_refresh);
    if (p->cache == KV_CACHE_OFF && p->cache_refresh != 0)
        return SM_ERR("a cache refresh interval needs a cache (prefix or dual)");
    if (p->cache != KV_CACHE_OFF && !m->forward_cached)
        return SM_ERR("the %s cache needs a Dream or LLaDA model (this model has no key/value "
                      "cache)", kv_cache_mode_name(p->cache));
    if (p->cache == KV_CACHE_DUAL && !(p->block_length > 0 && p->block_length < p->gen_len))
        return SM_ERR("the dual cache needs block decoding (a block length below the generation "
                      "length %d)", p->gen_len);
    return 0;
}

/* torch.linspace on float32 as Debian's PyTorch 1.13 computes it on this CPU (checked against
 * it for 2..301 points): step = (end − start)/(n − 1); a point below n/2 is
 * fma(step, i, start), the others fma(−step, n − 1 − i, end); whole runs of 16 points go in two
 * vectors of 8, each vector from its first point as base + k·step (product rounded first). */
static float linspace_point(float start, float end, float step, int n, int i) {
    return i < n / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

void decoder_linspace(float *out, float start, float end, int n) {
    const float step = (end - start) / (float)(n - 1);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int v = i; v < i + 16; v += 8) {
            const float base = linspace_point(start, end, step, n, v);
            for (int k = 0; k < 8; k++) out[v + k] = base + (float)k * step;
        }
    for (; i < n; i++) out[i] = linspace_point(start, end, step, n, i);
}

/* int(num_mask · (1 − s/t)) in float32, all the rest at the last step. */
int decoder_dream_quota(int n_mask, const float *ts, int i, int steps) {
    if (i >= steps - 1) return n_mask;
    const float ratio = 1.0f - ts[i + 1] / ts[i];
    return (int)((float)n_mask * ratio);
}

/* ---------------------------------------------------------------------------------------- */

/* One masked position of an active row in the current step. */
typedef struct {
    int32_t pos;     /* flat b·T + t */
    int32_t crow;    /* row of the compact forward batch */
    uint8_t cand;    /* may be revealed this step (inside the block) */
    uint8_t coin;    /* origin: the 1 − s/t coin came up */
    double u_tok;    /* token draw (temperature > 0) */
    double u_rnd;    /* LLaDA `random` confidence */
    int32_t token;
    float conf;
    uint8_t bad;     /* ROW_NONFINITE or ROW_OVERFLOW: no prediction */
    sm_feedback fb;  /* from this step's prediction, for the next forward */
} dec_item;

typedef struct {
    const lm_model *m;
    const decoder_params *p;
    int B, T, P, V, steps;
    int32_t *x;
    sm_rng *rng;         /* (B) */
    sm_feedback *fb;     /* (B·T) feedback of still-masked positions */
    float *probs;        /* (B·T, V) the tempered distributions fb points to (SM_ALG_TEMP) */
    int *masked0;        /* (B) masked positions of each row at the start (the λ schedule) */
    float *lambda;       /* (B·T) λ of fb for the step hook; NULL without a hook or soft-masking */
    int have_fb;
    uint8_t *done;       /* (B) */
    int32_t *first_eos;  /* (B) first EOS position in the generated region, T if none */
    /* compact forward */
    int *active, nactive;
    int32_t *xc;
    sm_feedback *fbc;
    uint8_t *need;
    float *logits;       /* (B·T, V) */
    int have_logits, changed;
    dec_item *items;
    int nitems;
    int *row_start;      /* (B + 1) items of row b: [row_start[b], row_start[b + 1]) */
    int32_t *order;      /* (T) scratch for selection */
    double *w;           /* (T) scratch for alg_temp sampling */
    uint8_t *scr;        /* (nthreads, DECODER_SCRATCH(V)) */
    int nthreads;
    decoder_stats *st;
    /* key/value cache (p->cache != KV_CACHE_OFF) */
    int blk_start;       /* first position of the current block */
    int block_head;      /* Dream blocks: this step reveals each row's first masked position of
                            the block outright (Fast-dLLM's block start) */
    int lo, hi;          /* positions the step's forward computes ([0, T): a full forward) */
    int kv_valid;        /* a refresh happened in this block */
    int kv_since;        /* forwards since (and including) the last refresh */
    int *kv_rows, kv_nrows; /* canvas rows of the cache rows (the active rows at the refresh) */
    int *cache_rows;     /* (B) cache row of each compact row */
} dec_run;

static inline int pred_row(const dec_run *r, int t) {
    return r->m->shift ? (t > 0 ? t - 1 : 0) : t;
}

static int argmax_first(const float *z, int V) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[best]) best = v;
    return best;
}

static int cmp_prob_desc(const void *a, const void *b, void *ctx) {
    const float *p = ctx;
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (p[i] != p[j]) return p[i] > p[j] ? -1 : 1;
    return (i > j) - (i < j);
}

/* Dream's top_p_logits on probabilities p (sorted descending, drop a token when the mass
 * before it already exceeds top_p). Only the head of the order is sorted: the set
 * {p ≥ τ} is grown until its mass exceeds top_p, so everything left out sorts after it. */
static void top_p_filter(const float *p, uint8_t *keep, int V, float top_p, int32_t *idx) {
    double tau = 1e-3;
    int n;
    for (;;) {
        double mass = 0.0;
        n = 0;
        for (int v = 0; v < V; v++)
            if (p[v] >= tau) {
                idx[n++] = v;
                mass += p[v];
            }
        if (mass > top_p || tau == 0.0) break;
        tau = tau > 1e-30 ? tau / 64.0 : 0.0;
    }
    qsort_r(idx, (size_t)n, sizeof *idx, cmp_prob_desc, (void *)p);
    memset(keep, 0, (size_t)V);
    double cum = 0.0;
    for (int j = 0; j < n; j++) {
        if (j > 0 && cum > top_p) break;
        keep[idx[j]] = 1;
        cum += p[idx[j]];
    }
}

static int cmp_float_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Dream's top_k_logits: drop the tokens below the k-th largest kept logit. */
static void top_k_filter(const float *z, uint8_t *keep, int V, int k, float *tmp) {
    int n = 0;
    for (int v = 0; v < V; v++)
        if (keep[v]) tmp[n++] = z[v];
    if (n <= k) return;
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_float_desc);
    const float kth = tmp[k - 1];
    for (int v = 0; v < V; v++)
        if (keep[v] && z[v] < kth) keep[v] = 0;
}

/* Rows that give no prediction: a NaN or an infinity in the row, or logits that the temperature
 * divides beyond the float range. */
enum { ROW_OK = 0, ROW_NONFINITE, ROW_OVERFLOW };

/* Token and confidence of one masked position from its prediction row (docs/DESIGN.md §5), and the
 * soft-masking feedback the row gives; only it->bad when the row gives none. The scratch holds
 * DECODER_SCRATCH(V) bytes. */
#define DECODER_SCRATCH(V) (((size_t)(V) * (3 * sizeof(float) + sizeof(int32_t) + 1) + 63) & ~(size_t)63)

static void predict(const dec_run *r, const float *row, dec_item *it, void *scratch) {
    const decoder_params *p = r->p;
    const int V = r->V;
    float *z = scratch, *e = z + V, *pr = e + V;
    int32_t *idx = (int32_t *)(pr + V);
    uint8_t *keep = (uint8_t *)(idx + V);
    it->bad = row_copy_finite(z, row, V) ? ROW_NONFINITE : ROW_OK;
    if (it->bad) return;
    if (p->eos_penalty != 0.0f) z[p->eos_id] -= p->eos_penalty;
    if (p->sm.enabled) /* from the (shifted) logits themselves, as IBM's dream_sm.patch */
        sm_feedback_from_row(&p->sm, z, V, &it->fb,
                             r->probs ? r->probs + (size_t)it->pos * V : NULL);
    if (!it->cand || (p->style == DECODER_DREAM && p->alg == DECODER_ALG_ORIGIN && !it->coin))
        return;
    z[r->m->mask_id] = -INFINITY; /* a revealed position never takes the mask id (NOTES.md) */
    if (p->logits_inf_id >= 0) z[p->logits_inf_id] = -INFINITY;
    const int llada_p = p->style == DECODER_LLADA && p->remasking == DECODER_REMASK_LOW_CONFIDENCE;
    float m0 = 0.0f;
    double s0 = 0.0;
    if (llada_p && p->temperature > 0.0f) {
        /* LLaDA's confidence is p(token) under softmax(logits), not under the tempered one */
        m0 = z[argmax_first(z, V)];
        for (int v = 0; v < V; v++) pr[v] = z[v] - m0;
        vexp(e, pr, (size_t)V);
        for (int v = 0; v < V; v++) s0 += v == p->conf_inf_id ? 0.0 : e[v];
    }
    if (p->temperature > 0.0f)
        for (int v = 0; v < V; v++) z[v] = z[v] / p->temperature;
    /* softmax of z; the filters act on it; then the kept probabilities renormalised */
    const int top = argmax_first(z, V);
    const float m = z[top];
    if (!isfinite(m)) { /* z / temperature overflowed */
        it->bad = ROW_OVERFLOW;
        return;
    }
    for (int v = 0; v < V; v++) pr[v] = z[v] - m; /* vexp(−∞) = 0 */
    vexp(e, pr, (size_t)V);
    double s = 0.0;
    for (int v = 0; v < V; v++) s += e[v];
    if (p->top_p < 1.0f || p->top_k > 0) {
        for (int v = 0; v < V; v++) pr[v] = (float)(e[v] / s);
        if (p->top_p < 1.0f) top_p_filter(pr, keep, V, p->top_p, idx);
        else memset(keep, 1, (size_t)V);
        if (p->top_k > 0) top_k_filter(z, keep, V, p->top_k, pr);
        s = 0.0;
        for (int v = 0; v < V; v++) {
            if (!keep[v]) e[v] = 0.0f;
            s += e[v];
        }
    }
    for (int v = 0; v < V; v++) pr[v] = (float)(e[v] / s);
    it->token = p->temperature > 0.0f ? rng_inverse_cdf(pr, V, it->u_tok) : top;
    if (p->style == DECODER_LLADA) {
        if (!llada_p) {
            it->conf = (float)it->u_rnd;
        } else if (it->token == p->conf_inf_id) {
            it->conf = 0.0f; /* its probability under the softmax with its logit −∞ */
        } else if (p->temperature > 0.0f) {
            float zt = row[it->token];
            if (p->eos_penalty != 0.0f && it->token == p->eos_id) zt -= p->eos_penalty;
            it->conf = (float)(exp((double)(zt - m0)) / s0);
        } else if (p->conf_inf_id >= 0) {
            double s1 = 0.0; /* the softmax without the EoT token */
            for (int v = 0; v < V; v++) s1 += v == p->conf_inf_id ? 0.0 : e[v];
            it->conf = (float)(e[it->token] / s1);
        } else {
            it->conf = pr[it->token];
        }
        return;
    }
    switch (p->alg) {
    case DECODER_ALG_TOPK_MARGIN: {
        float p1 = -1.0f, p2 = -1.0f;
        for (int v = 0; v < V; v++) {
            if (pr[v] > p1) {
                p2 = p1;
                p1 = pr[v];
            } else if (pr[v] > p2) {
                p2 = pr[v];
            }
        }
        it->conf = p1 - p2;
        break;
    }
    case DECODER_ALG_ENTROPY: {
        double h = 0.0;
        for (int v = 0; v < V; v++) h += (double)pr[v] * log((double)pr[v] + ENTROPY_EPS);
        it->conf = (float)h;
        break;
    }
    default: /* maskgit_plus, and origin (unused) */
        it->conf = pr[it->token];
    }
}

/* ---------------------------------------------------------------------------------------- */

/* A row is finished when nothing before its first EOS (or at all) is still masked. */
static void update_done(dec_run *r, int b) {
    const int32_t *xb = r->x + (size_t)b * r->T;
    int end = r->T;
    if (r->p->eos_id >= 0)
        for (int t = r->P; t < r->T; t++)
            if (xb[t] == r->p->eos_id) {
                end = t;
                break;
            }
    r->first_eos[b] = end;
    for (int t = r->P; t < end; t++)
        if (xb[t] == r->m->mask_id) return;
    r->done[b] = 1;
}

/* Rows that still have a masked candidate before blk_end; their items and the uniforms they
 * draw, in the order NOTES.md documents (per row, candidates in position order: the origin
 * coin, then the token draw; or the token draw, then LLaDA's `random` confidence). Returns the
 * number of active rows. */
static int collect_items(dec_run *r, int blk_end, float p_transfer) {
    const decoder_params *p = r->p;
    const int mask = r->m->mask_id, T = r->T;
    r->nactive = 0;
    r->nitems = 0;
    for (int b = 0; b < r->B; b++) {
        r->row_start[b] = r->nitems;
        if (r->done[b]) continue;
        const int32_t *xb = r->x + (size_t)b * T;
        int has_cand = 0;
        for (int t = r->P; t < blk_end && !has_cand; t++) has_cand = xb[t] == mask;
        if (!has_cand) continue;
        const int crow = r->nactive++;
        r->active[crow] = b;
        sm_rng *g = &r->rng[b];
        int head = -1; /* block_head: the one candidate */
        for (int t = r->blk_start; r->block_head && head < 0 && t < blk_end; t++)
            if (xb[t] == mask) head = t;
        for (int t = r->P; t < T; t++) {
            if (xb[t] != mask) continue;
            const int cand = t < blk_end && (!r->block_head || t == head);
            if (!cand && !p->sm.enabled) continue;
            /* outside the cached window: its feedback stays as the last forward left it */
            if (!cand && (pred_row(r, t) < r->lo || pred_row(r, t) >= r->hi)) continue;
            dec_item *it = &r->items[r->nitems++];
            memset(it, 0, offsetof(dec_item, fb));
            it->pos = b * T + t;
            it->crow = crow;
            it->cand = (uint8_t)cand;
            if (!cand) continue;
            if (r->block_head) {
                it->coin = 1;
                if (p->temperature > 0.0f) it->u_tok = rng_uniform(g);
                continue;
            }
            if (p->style == DECODER_DREAM && p->alg == DECODER_ALG_ORIGIN && p->threshold == 0.0f) {
                it->coin = rng_uniform(g) < (double)p_transfer;
                if (it->coin && p->temperature > 0.0f) it->u_tok = rng_uniform(g);
                continue;
            }
            if (p->temperature > 0.0f) it->u_tok = rng_uniform(g);
            if (p->style == DECODER_LLADA && p->remasking == DECODER_REMASK_RANDOM)
                it->u_rnd = rng_uniform(g);
        }
    }
    r->row_start[r->B] = r->nitems;
    return r->nactive;
}

/* Classifier-free guidance (LLaDA generate.py): the active canvases and their unconditional
 * copies (prompt and fixed positions masked) in one forward of 2·nactive rows, then
 * logits = u + (cfg_scale + 1)·(c − u) on the rows asked for. */
static int forward_guided(dec_run *r) {
    const int T = r->T, nact = r->nactive, V = r->V;
    const size_t n = (size_t)nact * T;
    for (int c = 0; c < nact; c++) {
        const int b = r->active[c];
        int32_t *u = r->xc + n + (size_t)c * T;
        memcpy(u, r->x + (size_t)b * T, sizeof(int32_t) * T);
        for (int t = 0; t < T; t++)
            if (t < r->P || (r->p->fixed && r->p->fixed[(size_t)b * T + t])) u[t] = r->m->mask_id;
    }
    memcpy(r->need + n, r->need, n);
    if (r->m->forward(r->m->ctx, r->xc, NULL, NULL, NULL, r->need, 2 * nact, T, r->logits))
        return -1;
    const float w = (float)((double)r->p->cfg_scale + 1.0);
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < n; i++) {
        if (!r->need[i]) continue;
        float *c = r->logits + i * V;
        const float *u = r->logits + (n + i) * V;
        for (int v = 0; v < V; v++) c[v] = u[v] + w * (c[v] - u[v]);
    }
    return 0;
}

static int run_forward(dec_run *r) {
    const int T = r->T, nact = r->nactive;
    const size_t n = (size_t)nact * T;
    for (int c = 0; c < nact; c++) {
        const int b = r->active[c];
        memcpy(r->xc + (size_t)c * T, r->x + (size_t)b * T, sizeof(int32_t) * T);
        if (r->have_fb)
            memcpy(r->fbc + (size_t)c * T, r->fb + (size_t)b * T, sizeof(sm_feedback) * T);
    }
    memset(r->need, 0, n);
    for (int i = 0; i < r->nitems; i++) {
        const dec_item *it = &r->items[i];
        r->need[(size_t)it->crow * T + pred_row(r, it->pos % T)] = 1;
    }
    for (size_t i = 0; i < n; i++) r->st->rows_computed += r->need[i];
    const int full = r->lo == 0 && r->hi == T;
    r->st->positions_computed += (long)nact * (r->hi - r->lo);
    double t0 = sm_time_sec();
    const sm_feedback *fb = r->have_fb ? r->fbc : NULL;
    const sm_params *sm = r->have_fb ? &r->p->sm : NULL;
    int rc;
    if (r->p->cfg_scale > 0.0f)
        rc = forward_guided(r);
    else if (r->p->cache == KV_CACHE_OFF)
        rc = r->m->forward(r->m->ctx, r->xc, NULL, sm, fb, r->need, nact, T, r->logits);
    else
        rc = r->m->forward_cached(r->m->ctx, r->xc, sm, fb, r->need, nact, T, r->lo, r->hi,
                                  full ? NULL : r->cache_rows, r->logits);
    r->st->forward_seconds += sm_time_sec() - t0;
    if (r->p->cache != KV_CACHE_OFF && rc == 0) {
        if (full) { /* the cache rows are now the active rows */
            memcpy(r->kv_rows, r->active, sizeof(int) * (size_t)nact);
            r->kv_nrows = nact;
            r->kv_valid = 1;
            r->kv_since = 0;
            r->st->refreshes++;
        }
        r->kv_since++;
    }
    r->st->forwards++;
    if (rc) return -1;
    r->have_logits = 1;
    r->changed = 0;
    return 0;
}

/* Every item's prediction; −1 (an error naming the positions) when a row gave none. */
static int predict_all(dec_run *r) {
    const int T = r->T, V = r->V;
    int nbad = 0;
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : nbad)
    for (int i = 0; i < r->nitems; i++) {
        dec_item *it = &r->items[i];
        const float *row = r->logits + ((size_t)it->crow * T + pred_row(r, it->pos % T)) * V;
        predict(r, row, it, r->scr + (size_t)omp_get_thread_num() * DECODER_SCRATCH(V));
        nbad += it->bad != ROW_OK;
    }
    if (!nbad) return 0;
    /* the positions of the first kind of failure */
    int32_t *pos = sm_malloc(sizeof(int32_t) * (size_t)nbad);
    int kind = ROW_OK, n = 0;
    for (int i = 0; i < r->nitems; i++) {
        const dec_item *it = &r->items[i];
        if (it->bad != ROW_OK && kind == ROW_OK) kind = it->bad;
        if (it->bad == kind && kind != ROW_OK) pos[n++] = it->pos;
    }
    char when[64], what[96];
    if (r->p->threshold > 0.0f) snprintf(when, sizeof when, "step %d", r->st->steps + 1);
    else snprintf(when, sizeof when, "step %d of %d", r->st->steps + 1, r->steps);
    if (kind == ROW_OVERFLOW)
        snprintf(what, sizeof what, "temperature %g divides the logits beyond the float range",
                 r->p->temperature);
    gen_position_error(r->m, when, kind == ROW_NONFINITE ? NULL : what, pos, n, T);
    free(pos);
    return -1;
}

static int cmp_item_conf(const void *a, const void *b, void *ctx) {
    const dec_item *items = ctx;
    const dec_item *x = &items[*(const int32_t *)a], *y = &items[*(const int32_t *)b];
    if (x->conf != y->conf) return x->conf > y->conf ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static int count_masked(const dec_run *r, int b, int from, int to) {
    int n = 0;
    for (int t = from; t < to; t++) n += r->x[(size_t)b * r->T + t] == r->m->mask_id;
    return n;
}

/* λ of row b's still-masked positions at the scale the schedule gives after this step's
 * reveals (sm_scheduled_scale; per row, where Dream's patch counts the masks of the batch). */
static void schedule_row(dec_run *r, int b) {
    const sm_params q = sm_params_at(&r->p->sm, count_masked(r, b, r->P, r->T), r->masked0[b]);
    for (int t = r->P; t < r->T; t++) {
        const size_t i = (size_t)b * r->T + t;
        if (r->x[i] == r->m->mask_id) r->fb[i].lambda = sm_lambda(&q, r->fb[i].neg_h);
    }
}

/* Chooses which candidates of row b to reveal (sets coin) and reveals them. */
static void select_row(dec_run *r, int b, int quota) {
    const decoder_params *p = r->p;
    dec_item *items = r->items;
    int n = 0;
    for (int i = r->row_start[b]; i < r->row_start[b + 1]; i++)
        if (items[i].cand) r->order[n++] = i;
    const int origin = p->style == DECODER_DREAM && p->alg == DECODER_ALG_ORIGIN && p->threshold == 0.0f;
    if (!origin && !r->block_head) { /* else the coins are drawn or set already */
        for (int j = 0; j < n; j++) items[r->order[j]].coin = 0;
        if (quota > n) quota = n;
        if (p->threshold == 0.0f && p->style == DECODER_DREAM && p->alg_temp > 0.0f) {
            /* positions ~ softmax(confidence / alg_temp) without replacement, one uniform each */
            double mx = -INFINITY;
            for (int j = 0; j < n; j++) mx = fmax(mx, (double)items[r->order[j]].conf / p->alg_temp);
            for (int j = 0; j < n; j++)
                r->w[j] = exp((double)items[r->order[j]].conf / p->alg_temp - mx);
            for (int q = 0; q < quota; q++) {
                double total = 0.0, acc = 0.0;
                for (int j = 0; j < n; j++) total += r->w[j];
                const double target = rng_uniform(&r->rng[b]) * total;
                int pick = -1;
                for (int j = 0; j < n; j++) {
                    acc += r->w[j];
                    if (r->w[j] > 0.0 && acc > target) {
                        pick = j;
                        break;
                    }
                }
                if (pick < 0) /* rounding at the top end, or no weight left: last / first open */
                    for (int j = n - 1; j >= 0 && pick < 0; j--)
                        if (r->w[j] > 0.0) pick = j;
                for (int j = 0; j < n && pick < 0; j++)
                    if (!items[r->order[j]].coin) pick = j;
                items[r->order[pick]].coin = 1;
                r->w[pick] = 0.0;
            }
        } else {
            qsort_r(r->order, (size_t)n, sizeof *r->order, cmp_item_conf, items);
            if (p->threshold > 0.0f) { /* the best always, then every one ≥ τ */
                quota = 1;
                while (quota < n && !(items[r->order[quota]].conf < p->threshold)) quota++;
            }
            for (int j = 0; j < quota; j++) items[r->order[j]].coin = 1;
        }
    }
    for (int i = r->row_start[b]; i < r->row_start[b + 1]; i++) {
        dec_item *it = &items[i];
        if (it->cand && it->coin) {
            r->x[it->pos] = it->token;
            r->st->revealed++;
            r->changed = 1;
        } else if (p->sm.enabled) {
            r->fb[it->pos] = it->fb;
        }
    }
    if (p->sm.enabled && p->sm.schedule != SM_SCHEDULE_NONE)
        schedule_row(r, b);
}

/* The window of this step's forward (kvcache.h): everything without a cache, before the first
 * refresh of a block and when a refresh is due; else the mode's window. Dream blocks reveal the
 * block's first position at the refresh, so no later step reads the row before the block: the
 * window starts at the block, as Fast-dLLM's. */
static void plan_window(dec_run *r, int blk_end) {
    const decoder_params *p = r->p;
    r->lo = 0;
    r->hi = r->T;
    if (p->cache == KV_CACHE_OFF || !r->kv_valid ||
        (p->cache_refresh > 0 && r->kv_since >= p->cache_refresh))
        return;
    kv_cache_window(p->cache, r->m->shift && !decoder_dream_blocks(p), r->blk_start, blk_end, r->T,
                    &r->lo, &r->hi);
}

/* Cache rows of the active rows; 0 when one was not cached (then the step refreshes). Rows only
 * leave the active set inside a block, so this holds unless a row came back. */
static int map_cache_rows(dec_run *r) {
    for (int c = 0; c < r->nactive; c++) {
        int j = 0;
        while (j < r->kv_nrows && r->kv_rows[j] != r->active[c]) j++;
        if (j == r->kv_nrows) return 0;
        r->cache_rows[c] = j;
    }
    return 1;
}

/* The step hook; 1 when it asks to stop. */
static int report_step(dec_run *r) {
    const decoder_params *p = r->p;
    if (!p->on_step) return 0;
    const size_t BT = (size_t)r->B * r->T;
    if (r->lambda)
        for (size_t i = 0; i < BT; i++)
            r->lambda[i] = r->x[i] == r->m->mask_id ? r->fb[i].lambda : 0.0f;
    gen_step s = {.step = r->st->steps, .steps = r->st->planned_steps, .B = r->B, .T = r->T,
                  .mask_id = r->m->mask_id, .forwards = r->st->forwards, .x = r->x,
                  .lambda = r->lambda};
    return p->on_step(p->user, &s) != 0;
}

/* One decoding step over every active row; quota_of(b) gives the reveal count. Returns −1 on a
 * forward error, 0 when no row was active, 1 after a step, GEN_STOPPED + 1 when the step hook
 * asked to stop. */
static int decode_step(dec_run *r, int blk_end, float p_transfer, const int *quota) {
    plan_window(r, blk_end);
    if (collect_items(r, blk_end, p_transfer) == 0) return 0;
    if ((r->lo > 0 || r->hi < r->T) && !map_cache_rows(r)) {
        r->lo = 0;
        r->hi = r->T;
    }
    /* without soft-masking an unchanged canvas gives the same logits: reuse them */
    if (r->p->sm.enabled || !r->have_logits || r->changed)
        if (run_forward(r)) return -1;
    if (predict_all(r)) return -1;
    for (int c = 0; c < r->nactive; c++) {
        const int b = r->active[c];
        select_row(r, b, quota[b]);
        update_done(r, b);
    }
    if (r->p->sm.enabled) r->have_fb = 1;
    r->st->steps++;
    return report_step(r) ? GEN_STOPPED + 1 : 1;
}

static int decode_dream(dec_run *r, int *quota) {
    const int steps = r->steps;
    float *ts = sm_malloc(sizeof(float) * (size_t)(steps + 1));
    decoder_linspace(ts, 1.0f, DREAM_EPS, steps + 1);
    r->blk_start = r->P; /* one block: the whole generation */
    int rc = 0;
    for (int i = 0; r->p->threshold > 0.0f || i < steps; i++) {
        float p_transfer = i < steps - 1 ? 1.0f - ts[i + 1] / ts[i] : 1.0f;
        for (int b = 0; b < r->B; b++)
            quota[b] = r->p->threshold > 0.0f ? 1
                                              : decoder_dream_quota(count_masked(r, b, r->P, r->T), ts, i, steps);
        rc = decode_step(r, r->T, p_transfer, quota);
        if (rc != 1) break;
    }
    free(ts);
    return rc < 0 ? -1 : rc == GEN_STOPPED + 1 ? GEN_STOPPED : 0;
}

/* Blocks of L positions left to right, S/(gen_len/L) steps each, a cache refresh at each
 * block start. LLaDA (get_num_transfer_tokens): the block's masked count n at its start, n/steps
 * per step and the first n mod steps one more. Dream (Fast-dLLM's generation_utils_block): the
 * first step reveals the block's first position; step i ≥ 1 reveals
 * int(n_mask·(1 − s/t)) of the block's n_mask masked positions on linspace(1, eps, steps + 1),
 * all at the last. Threshold decoding picks its own (steps may be 0). */
static int decode_blocks(dec_run *r, int *quota) {
    const decoder_params *p = r->p;
    const int dream = p->style == DECODER_DREAM, threshold = p->threshold > 0.0f;
    const int L = p->block_length ? p->block_length : p->gen_len, nblocks = p->gen_len / L;
    const int steps = r->steps / nblocks;
    int *n_block = sm_malloc(sizeof(int) * (size_t)r->B);
    float *ts = NULL;
    if (dream && !threshold) {
        ts = sm_malloc(sizeof(float) * (size_t)(steps + 1));
        decoder_linspace(ts, 1.0f, DREAM_EPS, steps + 1);
    }
    int rc = 0;
    for (int k = 0; k < nblocks && (rc == 0 || rc == 1); k++) {
        const int start = r->P + k * L, end = start + L;
        for (int b = 0; b < r->B; b++) n_block[b] = count_masked(r, b, start, end);
        r->have_logits = 0; /* new candidates: their rows were not asked for */
        r->blk_start = start;
        r->kv_valid = 0; /* a cache is refreshed when a block starts */
        for (int i = 0; threshold || i < steps; i++) {
            r->block_head = dream && i == 0;
            for (int b = 0; b < r->B; b++)
                quota[b] = threshold || r->block_head ? 1
                           : dream ? decoder_dream_quota(count_masked(r, b, start, end), ts, i, steps)
                                   : n_block[b] / steps + (i < n_block[b] % steps ? 1 : 0);
            rc = decode_step(r, end, 1.0f, quota);
            if (rc != 1) break;
        }
        r->block_head = 0;
    }
    free(n_block);
    free(ts);
    return rc < 0 ? -1 : rc == GEN_STOPPED + 1 ? GEN_STOPPED : 0;
}

size_t decoder_run_bytes(const decoder_params *p, int B, int T, int V) {
    const size_t BT = (size_t)B * (size_t)T, threads = (size_t)omp_get_max_threads();
    /* logits; items, xc, need (and fb, fbc, lambda) per position; the scratch per thread */
    const size_t per_position = sizeof(dec_item) + sizeof(int32_t) + 1 +
                                (p->sm.enabled ? 2 * sizeof(sm_feedback) + sizeof(float) : 0);
    size_t bytes = sm_size_mul(sm_size_mul(BT, (size_t)V), sizeof(float));
    bytes = sm_size_add(bytes, sm_size_mul(BT, per_position));
    if (p->sm.enabled)
        bytes = sm_size_add(bytes, sm_size_mul(sm_feedback_probs_floats(&p->sm, BT, V), sizeof(float)));
    if (p->cfg_scale > 0.0f) /* the unconditional rows' logits, canvases and row flags */
        bytes = sm_size_add(bytes, sm_size_mul(BT, (size_t)V * sizeof(float) + sizeof(int32_t) + 1));
    return sm_size_add(bytes, sm_size_mul(DECODER_SCRATCH(V), threads));
}

int decoder_run(const lm_model *m, const decoder_params *p, int32_t *x, int B, int prompt_len,
                int *gen_out, decoder_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (B < 1) return SM_ERR("batch %d must be ≥ 1", B);
    if (decoder_params_validate(p, m, prompt_len)) return -1;
    const int T = prompt_len + p->gen_len, V = m->vocab_size;
    if ((int64_t)B * T > INT32_MAX)
        return SM_ERR("canvas [%d, %d] has more than 2^31 positions", B, T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const size_t i = (size_t)b * T + t;
            if (t >= prompt_len && !(p->fixed && p->fixed[i])) continue;
            if (x[i] < 0 || x[i] >= V || x[i] == m->mask_id)
                return SM_ERR("%s token %d at row %d position %d is not a token id in [0, %d) "
                              "other than the mask id", t < prompt_len ? "prompt" : "fixed", x[i],
                              b, t, V);
        }
    double t0 = sm_time_sec();
    int nthreads = omp_get_max_threads();
    dec_run r = {.m = m, .p = p, .B = B, .T = T, .P = prompt_len, .V = V, .x = x,
                 .steps = decoder_planned_steps(p), .nthreads = nthreads, .st = stats};
    stats->planned_steps = r.steps;
    const size_t BT = (size_t)B * T;
    if (SM_CHECK_MEMORY(decoder_run_bytes(p, B, T, V), "decoding %d × %d positions over %d tokens",
                        B, T, V))
        return -1;
    for (int b = 0; b < B; b++)
        for (int t = prompt_len; t < T; t++)
            if (!(p->fixed && p->fixed[(size_t)b * T + t])) x[(size_t)b * T + t] = m->mask_id;
    r.rng = sm_malloc(sizeof(sm_rng) * (size_t)B);
    for (int b = 0; b < B; b++) rng_seed(&r.rng[b], p->seed + (uint64_t)b);
    r.fb = p->sm.enabled ? sm_calloc(BT, sizeof(sm_feedback)) : NULL;
    r.probs = p->sm.enabled ? sm_feedback_probs_alloc(&p->sm, BT, V) : NULL;
    r.masked0 = sm_malloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) r.masked0[b] = count_masked(&r, b, prompt_len, T);
    r.fbc = p->sm.enabled ? sm_malloc(BT * sizeof(sm_feedback)) : NULL;
    r.lambda = p->sm.enabled && p->on_step ? sm_malloc(BT * sizeof(float)) : NULL;
    r.done = sm_calloc((size_t)B, 1);
    r.first_eos = sm_malloc(sizeof(int32_t) * (size_t)B);
    r.active = sm_malloc(sizeof(int) * (size_t)B);
    const size_t rows = p->cfg_scale > 0.0f ? 2 * BT : BT; /* guidance: unconditional copies */
    r.xc = sm_malloc(sizeof(int32_t) * rows);
    r.need = sm_malloc(rows);
    r.logits = sm_aligned_alloc(rows * (size_t)V * sizeof(float));
    r.items = sm_malloc(sizeof(dec_item) * BT);
    r.row_start = sm_malloc(sizeof(int) * (size_t)(B + 1));
    r.order = sm_malloc(sizeof(int32_t) * (size_t)T);
    r.w = sm_malloc(sizeof(double) * (size_t)T);
    r.scr = sm_malloc(DECODER_SCRATCH(V) * (size_t)nthreads);
    r.kv_rows = sm_malloc(sizeof(int) * (size_t)B);
    r.cache_rows = sm_malloc(sizeof(int) * (size_t)B);
    int *quota = sm_malloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) update_done(&r, b);
    int rc = p->style == DECODER_LLADA || decoder_dream_blocks(p) ? decode_blocks(&r, quota)
                                                                   : decode_dream(&r, quota);
    if (gen_out)
        for (int b = 0; b < B; b++) {
            update_done(&r, b);
            gen_out[b] = r.first_eos[b] - prompt_len;
        }
    stats->seconds = sm_time_sec() - t0;
    free(quota);
    free(r.rng), free(r.fb), free(r.fbc), free(r.done), free(r.first_eos), free(r.active);
    free(r.xc), free(r.need), free(r.logits), free(r.items), free(r.row_start), free(r.order);
    free(r.w), free(r.scr), free(r.kv_rows), free(r.cache_rows), free(r.lambda);
    free(r.probs), free(r.masked0);
    return rc;
}
