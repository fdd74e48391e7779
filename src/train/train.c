/* train.c — forward with saved activations, losses, backward (see train.h). */
#include "train/train.h"

#include <math.h>
#include <string.h>

#include "compute/kernels.h"
#include "compute/kernels_bwd.h"
#include "models/noise.h"
#include "train/optim.h"
#include "base/util.h"

/* Saved activations of one block (pointers into trainer.mem). */
typedef struct {
    float *mod;     /* (B, 6D) */
    float *xhat1;   /* (BT, D) */
    float *rstd1;   /* (BT) */
    float *h1;      /* (BT, D) */
    float *qkv;     /* (BT, 3D) after rotary */
    float *att;     /* (B, H, T, T) */
    float *atty;    /* (BT, D) attention output before the projection */
    float *attproj; /* (BT, D) */
    float *xhat2;   /* (BT, D) */
    float *rstd2;   /* (BT) */
    float *h2;      /* (BT, D) */
    float *mlp_pre; /* (BT, 4D) */
    float *mlp_act; /* (BT, 4D) */
    float *mlp_out; /* (BT, D) */
} block_acts;

struct train_acts {
    block_acts *blocks;
    float *temb, *c1, *c1s, *c2, *c; /* conditioning: (B,256), (B,C) ×4 */
    float *x;                        /* (BT, D) residual stream */
    float *modf, *xhatf, *rstdf, *hf; /* final layer */
    float *hrows;   /* (BT, D) rows of hf that reach the loss */
    float *logits;  /* (BT, V) their logits, then d loss / d logits */
    int32_t *rows;  /* (BT) flat positions of those rows */
    int32_t *target;/* (BT) target id per row */
    float *weight;  /* (BT) loss weight per row */
    int nrows;
    float *rope_cos, *rope_sin;
    /* backward scratch */
    float *dx, *dh, *dy, *dqkv, *dmlp_a, *dmlp_b, *dmod, *dc, *dc2, *dc1, *scratch;
    /* soft-masking pass-1 feedback per position */
    sm_feedback *fb;
    uint8_t *masked;
};

void mdlm_noise_rows(sm_rng *r, const int32_t *x0, int32_t *xt, float *t, int B_global, int b0,
                     int B, int T, int mask_id) {
    const double eps = MDLM_NOISE_EPS;
    double u = rng_uniform(r);
    for (int g = 0; g < B_global; g++) {
        float tg = (float)((1.0 - eps) * fmod(u + (double)g / B_global, 1.0) + eps);
        double p = (1.0 - eps) * tg;
        int mine = g >= b0 && g < b0 + B;
        if (mine) t[g - b0] = tg;
        for (int i = 0; i < T; i++) {
            int masked = rng_uniform(r) < p;
            if (mine) {
                size_t at = (size_t)(g - b0) * T + i;
                xt[at] = masked ? mask_id : x0[at];
            }
        }
    }
}

void mdlm_noise_batch(sm_rng *r, const int32_t *x0, int32_t *xt, float *t, int B, int T,
                      int mask_id) {
    mdlm_noise_rows(r, x0, xt, t, B, 0, B, T, mask_id);
}

/* ---- set-up ------------------------------------------------------------------------------ */

void sm_raw_from_params(sm_raw *r, const sm_params *p) {
    sm_params_to_raw(p, &r->raw_scale, &r->raw_centre, &r->raw_steepness);
    r->k = p->k;
}

void sm_raw_to_params(const sm_raw *r, sm_params *p) {
    sm_params_default(p); /* top-k, no schedule: what training learns */
    sm_params_from_raw(p, r->raw_scale, r->raw_centre, r->raw_steepness);
    p->k = r->k;
    p->enabled = 1;
}

static void copy_params(dit_model *dst, const dit_model *src) {
    int n = dit_param_count(&src->cfg);
    dit_param *a = sm_malloc(sizeof *a * (size_t)n), *b = sm_malloc(sizeof *b * (size_t)n);
    dit_weights ws = src->w;
    dit_param_table(&src->cfg, &ws, a);
    dit_param_table(&dst->cfg, &dst->w, b);
    for (int i = 0; i < n; i++) memcpy(*b[i].slot, *a[i].slot, a[i].numel * sizeof(float));
    free(a);
    free(b);
}

int trainer_init(trainer *tr, const dit_model *src, int B, int T, int nthreads) {
    memset(tr, 0, sizeof *tr);
    const dit_config *c = &src->cfg;
    tr->cfg = *c;
    tr->B = B;
    tr->T = T;
    tr->nthreads = nthreads;
    tr->nparams = dit_param_numel(c);

    const size_t L = (size_t)c->n_blocks, D = (size_t)c->hidden, H = (size_t)c->n_heads,
                 BT = (size_t)B * T, C = (size_t)c->cond_dim, V = (size_t)c->vocab_size,
                 hd = D / H;
    struct train_acts *a = sm_calloc(1, sizeof *a);
    a->blocks = sm_calloc(L, sizeof *a->blocks);
    /* one allocation: list every buffer with its size, then carve */
    float **slots[64];
    size_t sizes[64], n = 0;
#define ADD(ptr, count) (slots[n] = &(ptr), sizes[n] = (count), n++)
    ADD(a->temb, (size_t)B * 256);
    ADD(a->c1, B * C);
    ADD(a->c1s, B * C);
    ADD(a->c2, B * C);
    ADD(a->c, B * C);
    ADD(a->x, BT * D);
    ADD(a->modf, B * 2 * D);
    ADD(a->xhatf, BT * D);
    ADD(a->rstdf, BT);
    ADD(a->hf, BT * D);
    ADD(a->hrows, BT * D);
    ADD(a->logits, sm_size_mul(BT, V));
    ADD(a->weight, BT);
    ADD(a->rope_cos, (size_t)T * hd / 2);
    ADD(a->rope_sin, (size_t)T * hd / 2);
    ADD(a->dx, BT * D);
    ADD(a->dh, BT * D);
    ADD(a->dy, BT * D);
    ADD(a->dqkv, BT * 3 * D);
    ADD(a->dmlp_a, BT * 4 * D);
    ADD(a->dmlp_b, BT * 4 * D);
    ADD(a->dmod, (size_t)B * 6 * D);
    ADD(a->dc, B * C);
    ADD(a->dc2, B * C);
    ADD(a->dc1, B * C);
    ADD(a->scratch, attention_scratch_floats(T, nthreads));
#undef ADD
    size_t per_block[] = {(size_t)B * 6 * D, BT * D, BT, BT * D, BT * 3 * D,
                          sm_size_mul((size_t)B * H, (size_t)T * T), BT * D, BT * D, BT * D, BT,
                          BT * D, BT * 4 * D, BT * 4 * D, BT * D};
    size_t total = 0; /* floats, saturating (sizes come from flags and config files) */
    for (size_t i = 0; i < n; i++) total = sm_size_add(total, sm_size_align(sizes[i], 16));
    for (size_t i = 0; i < sizeof per_block / sizeof *per_block; i++)
        total = sm_size_add(total, sm_size_mul(L, sm_size_align(per_block[i], 16)));
    /* these activations, the first pass's, per-position lists, parameters and gradients */
    size_t bytes = sm_size_add(sm_size_mul(total, sizeof(float)),
                               dit_acts_bytes(c, B, T, nthreads));
    bytes = sm_size_add(bytes, sm_size_mul(BT, 2 * sizeof(int32_t) + sizeof(sm_feedback) + 1));
    bytes = sm_size_add(bytes, sm_size_mul(tr->nparams, 2 * sizeof(float)));
    if (SM_CHECK_MEMORY(bytes, "training a model of %zu parameters on %d × %d positions",
                        tr->nparams, B, T) ||
        dit_acts_alloc(&tr->pass1, c, B, T, nthreads)) {
        free(a->blocks);
        free(a);
        return -1;
    }
    dit_model_alloc(&tr->model, c);
    copy_params(&tr->model, src);
    tr->model.prefix = src->prefix;
    dit_model_alloc(&tr->grads, c);
    sm_params p;
    sm_params_default(&p);
    sm_raw_from_params(&tr->sm, &p);
    tr->mem = sm_aligned_alloc(total * sizeof(float));
    tr->mem_floats = total;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        *slots[i] = tr->mem + off;
        off += (sizes[i] + 15) & ~(size_t)15;
    }
    for (size_t l = 0; l < L; l++) {
        block_acts *ba = &a->blocks[l];
        float **bs[] = {&ba->mod, &ba->xhat1, &ba->rstd1, &ba->h1, &ba->qkv, &ba->att, &ba->atty,
                        &ba->attproj, &ba->xhat2, &ba->rstd2, &ba->h2, &ba->mlp_pre, &ba->mlp_act,
                        &ba->mlp_out};
        for (size_t i = 0; i < sizeof per_block / sizeof *per_block; i++) {
            *bs[i] = tr->mem + off;
            off += (per_block[i] + 15) & ~(size_t)15;
        }
    }
    SM_ASSERT(off == total);
    a->rows = sm_malloc(BT * sizeof(int32_t));
    a->target = sm_malloc(BT * sizeof(int32_t));
    a->fb = sm_malloc(BT * sizeof(sm_feedback));
    a->masked = sm_malloc(BT);
    rope_tables(a->rope_cos, a->rope_sin, T, (int)hd, 10000.0f);
    tr->acts = a;
    return 0;
}

void trainer_free(trainer *tr) {
    struct train_acts *a = tr->acts;
    if (a) {
        free(a->blocks);
        free(a->rows);
        free(a->target);
        free(a->fb);
        free(a->masked);
        free(a);
    }
    free(tr->mem);
    dit_acts_free(&tr->pass1);
    dit_model_free(&tr->model);
    dit_model_free(&tr->grads);
    dit_model_free(&tr->ema);
    memset(tr, 0, sizeof *tr);
}

/* ---- forward ----------------------------------------------------------------------------- */

static void conditioning_forward_train(trainer *tr, const float *sigma) {
    struct train_acts *a = tr->acts;
    const dit_weights *w = &tr->model.w;
    const int B = tr->B, C = tr->cfg.cond_dim;
    for (int b = 0; b < B; b++)
        timestep_embedding(a->temb + (size_t)b * 256, tr->cfg.time_conditioning ? sigma[b] : 0.0f);
    matmul_forward(a->c1, a->temb, w->sigma_w0, w->sigma_b0, B, 256, C);
    memcpy(a->c1s, a->c1, sizeof(float) * (size_t)B * C);
    silu_forward(a->c1s, (size_t)B * C);
    matmul_forward(a->c2, a->c1s, w->sigma_w2, w->sigma_b2, B, C, C);
    memcpy(a->c, a->c2, sizeof(float) * (size_t)B * C);
    silu_forward(a->c, (size_t)B * C);
}

static void block_forward_train(trainer *tr, const dit_block *w, block_acts *s) {
    struct train_acts *a = tr->acts;
    const int B = tr->B, T = tr->T, D = tr->cfg.hidden, H = tr->cfg.n_heads, N = B * T;
    const int M = 6 * D;
    matmul_forward(s->mod, a->c, w->ada_w, w->ada_b, B, tr->cfg.cond_dim, M);
    layernorm_modulate_forward_train(s->h1, s->xhat1, s->rstd1, a->x, w->norm1, s->mod, s->mod + D,
                                     M, B, T, D);
    matmul_forward(s->qkv, s->h1, w->attn_qkv, NULL, N, D, 3 * D);
    rope_forward(s->qkv, a->rope_cos, a->rope_sin, B, T, H, D / H);
    attention_forward_train(s->atty, s->att, s->qkv, B, T, H, D / H, tr->cfg.causal);
    matmul_forward(s->attproj, s->atty, w->attn_out, NULL, N, D, D);
    gated_residual_forward(a->x, s->attproj, s->mod + 2 * D, M, B, T, D);
    layernorm_modulate_forward_train(s->h2, s->xhat2, s->rstd2, a->x, w->norm2, s->mod + 3 * D,
                                     s->mod + 4 * D, M, B, T, D);
    matmul_forward(s->mlp_pre, s->h2, w->mlp0_w, w->mlp0_b, N, D, 4 * D);
    memcpy(s->mlp_act, s->mlp_pre, sizeof(float) * (size_t)N * 4 * D);
    gelu_tanh_forward(s->mlp_act, (size_t)N * 4 * D);
    matmul_forward(s->mlp_out, s->mlp_act, w->mlp2_w, w->mlp2_b, N, 4 * D, D);
    gated_residual_forward(a->x, s->mlp_out, s->mod + 5 * D, M, B, T, D);
}

/* Rows that reach the loss, with targets and weights. MDLM: masked positions, weight
 * 1/(t·B·T); causal: every position but the last, target the next token, 1/(B·(T−1)). */
static void select_rows(trainer *tr, const train_batch *bt, float scale) {
    struct train_acts *a = tr->acts;
    const int B = tr->B, T = tr->T, mask = tr->cfg.mask_id;
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            if (tr->cfg.causal) {
                if (t == T - 1) continue;
                a->target[n] = bt->x0[i + 1];
                a->weight[n] = scale / (float)(B * (T - 1));
            } else {
                if (bt->xt[i] != mask) continue;
                a->target[n] = bt->x0[i];
                a->weight[n] = (float)(scale / ((double)bt->t[b] * B * T));
            }
            a->rows[n++] = i;
        }
    a->nrows = n;
}

/* Runs the network on a->x (already embedded), leaving the loss rows' logits. */
static void forward_train(trainer *tr, const float *sigma) {
    struct train_acts *a = tr->acts;
    const dit_weights *w = &tr->model.w;
    const int B = tr->B, T = tr->T, D = tr->cfg.hidden;
    conditioning_forward_train(tr, sigma);
    for (int l = 0; l < tr->cfg.n_blocks; l++) block_forward_train(tr, &w->blocks[l], &a->blocks[l]);
    matmul_forward(a->modf, a->c, w->final_ada_w, w->final_ada_b, B, tr->cfg.cond_dim, 2 * D);
    layernorm_modulate_forward_train(a->hf, a->xhatf, a->rstdf, a->x, w->final_norm, a->modf,
                                     a->modf + D, 2 * D, B, T, D);
    for (int r = 0; r < a->nrows; r++)
        memcpy(a->hrows + (size_t)r * D, a->hf + (size_t)a->rows[r] * D, sizeof(float) * (size_t)D);
    if (a->nrows)
        matmul_forward(a->logits, a->hrows, w->out_w, w->out_b, a->nrows, D, tr->cfg.vocab_size);
}

/* Loss over the selected rows; replaces each logits row by d loss / d logits. The SUBS
 * mask logit (−1e6 added) only matters for MDLM; its derivative is the identity. */
static double loss_and_dlogits(trainer *tr) {
    struct train_acts *a = tr->acts;
    const int V = tr->cfg.vocab_size, mask = tr->cfg.mask_id, subs = !tr->cfg.causal;
    double *part = sm_calloc((size_t)a->nrows, sizeof(double));
#pragma omp parallel for schedule(static)
    for (int r = 0; r < a->nrows; r++) {
        float *z = a->logits + (size_t)r * V;
        if (subs) z[mask] += SUBS_NEG_INF;
        part[r] = softmax_cross_entropy_row(z, V, a->target[r], a->weight[r]);
    }
    double loss = 0.0;
    for (int r = 0; r < a->nrows; r++) loss += part[r]; /* fixed order */
    free(part);
    return loss;
}

/* ---- backward --------------------------------------------------------------------------- */

static void block_backward(trainer *tr, const dit_block *w, dit_block *g, const block_acts *s) {
    struct train_acts *a = tr->acts;
    const int B = tr->B, T = tr->T, D = tr->cfg.hidden, H = tr->cfg.n_heads, N = B * T;
    const int M = 6 * D;
    const size_t BTD = (size_t)N * D;
    float *dmod = a->dmod;
    memset(dmod, 0, sizeof(float) * (size_t)B * M);
    /* x_out = x_mid + gate2·mlp_out (a->dx holds d x_out and becomes d x_mid, then d x_in) */
    memset(a->dy, 0, sizeof(float) * BTD);
    gated_residual_backward(a->dy, dmod + 5 * D, a->dx, s->mlp_out, s->mod + 5 * D, M, B, T, D);
    memset(a->dmlp_a, 0, sizeof(float) * BTD * 4);
    matmul_backward(a->dmlp_a, g->mlp2_w, g->mlp2_b, a->dy, s->mlp_act, w->mlp2_w, N, 4 * D, D);
    memset(a->dmlp_b, 0, sizeof(float) * BTD * 4);
    gelu_tanh_backward(a->dmlp_b, s->mlp_pre, a->dmlp_a, BTD * 4);
    memset(a->dh, 0, sizeof(float) * BTD);
    matmul_backward(a->dh, g->mlp0_w, g->mlp0_b, a->dmlp_b, s->h2, w->mlp0_w, N, D, 4 * D);
    layernorm_modulate_backward(a->dx, g->norm2, dmod + 3 * D, dmod + 4 * D, a->dh, s->xhat2,
                                s->rstd2, w->norm2, s->mod + 4 * D, M, B, T, D);
    /* x_mid = x_in + gate1·attproj */
    memset(a->dy, 0, sizeof(float) * BTD);
    gated_residual_backward(a->dy, dmod + 2 * D, a->dx, s->attproj, s->mod + 2 * D, M, B, T, D);
    memset(a->dh, 0, sizeof(float) * BTD);
    matmul_backward(a->dh, g->attn_out, NULL, a->dy, s->atty, w->attn_out, N, D, D);
    memset(a->dqkv, 0, sizeof(float) * BTD * 3);
    attention_backward(a->dqkv, a->scratch, a->dh, s->qkv, s->att, B, T, H, D / H);
    rope_backward(a->dqkv, a->rope_cos, a->rope_sin, B, T, H, D / H);
    memset(a->dh, 0, sizeof(float) * BTD);
    matmul_backward(a->dh, g->attn_qkv, NULL, a->dqkv, s->h1, w->attn_qkv, N, D, 3 * D);
    layernorm_modulate_backward(a->dx, g->norm1, dmod, dmod + D, a->dh, s->xhat1, s->rstd1,
                                w->norm1, s->mod + D, M, B, T, D);
    /* mod = c·W_adaᵀ + b */
    matmul_backward(a->dc, g->ada_w, g->ada_b, dmod, a->c, w->ada_w, B, tr->cfg.cond_dim, M);
}

/* From d logits (in a->logits) to d x at the input embedding (in a->dx). */
static void backward(trainer *tr) {
    struct train_acts *a = tr->acts;
    const dit_weights *w = &tr->model.w;
    /* frozen parameters: every gradient pointer NULL, which the kernels skip (they compute
     * only what flows back to the input) */
    dit_weights none = {0};
    dit_block no_block = {0};
    dit_weights *g = tr->frozen ? &none : &tr->grads.w;
    const int B = tr->B, T = tr->T, D = tr->cfg.hidden, C = tr->cfg.cond_dim;
    const size_t BTD = (size_t)B * T * D;
    memset(a->dc, 0, sizeof(float) * (size_t)B * C);
    memset(a->dh, 0, sizeof(float) * BTD);
    memset(a->dy, 0, sizeof(float) * BTD);
    if (a->nrows)
        matmul_backward(a->dy, g->out_w, g->out_b, a->logits, a->hrows, w->out_w, a->nrows, D,
                        tr->cfg.vocab_size);
    for (int r = 0; r < a->nrows; r++) /* rows are distinct positions */
        memcpy(a->dh + (size_t)a->rows[r] * D, a->dy + (size_t)r * D, sizeof(float) * (size_t)D);
    memset(a->dx, 0, sizeof(float) * BTD);
    memset(a->dmod, 0, sizeof(float) * (size_t)B * 2 * D);
    layernorm_modulate_backward(a->dx, g->final_norm, a->dmod, a->dmod + D, a->dh, a->xhatf,
                                a->rstdf, w->final_norm, a->modf + D, 2 * D, B, T, D);
    matmul_backward(a->dc, g->final_ada_w, g->final_ada_b, a->dmod, a->c, w->final_ada_w, B, C,
                    2 * D);
    for (int l = tr->cfg.n_blocks - 1; l >= 0; l--)
        block_backward(tr, &w->blocks[l], tr->frozen ? &no_block : &g->blocks[l], &a->blocks[l]);
    /* c = SiLU(W2·SiLU(W0·temb + b0) + b2) */
    memset(a->dc2, 0, sizeof(float) * (size_t)B * C);
    silu_backward(a->dc2, a->c2, a->dc, (size_t)B * C);
    memset(a->dc1, 0, sizeof(float) * (size_t)B * C);
    matmul_backward(a->dc1, g->sigma_w2, g->sigma_b2, a->dc2, a->c1s, w->sigma_w2, B, C, C);
    memset(a->dc, 0, sizeof(float) * (size_t)B * C);
    silu_backward(a->dc, a->c1, a->dc1, (size_t)B * C);
    matmul_backward(NULL, g->sigma_w0, g->sigma_b0, a->dc, a->temb, w->sigma_w0, B, 256, C);
}

/* ---- soft-masking ------------------------------------------------------------------------ */

/* Pass 1 (no gradient): SUBS log-probs of the masked rows of x_t give each masked
 * position its detached feedback (negH, top-k, π). */
static void sm_pass1(trainer *tr, const train_batch *bt, const float *sigma) {
    struct train_acts *a = tr->acts;
    const int BT = tr->B * tr->T, V = tr->cfg.vocab_size, mask = tr->cfg.mask_id;
    sm_params p;
    sm_raw_to_params(&tr->sm, &p);
    int n = 0;
    for (int i = 0; i < BT; i++) {
        a->masked[i] = bt->xt[i] == mask;
        if (a->masked[i]) a->rows[n++] = i;
    }
    dit_embed_ids(&tr->model, &tr->pass1, bt->xt, tr->B, tr->T);
    dit_forward_embedded(&tr->model, &tr->pass1, sigma, tr->B, tr->T, a->rows, n, a->logits);
#pragma omp parallel for schedule(dynamic, 4)
    for (int r = 0; r < n; r++) {
        float *row = a->logits + (size_t)r * V;
        dit_subs_row(row, V, mask);
        sm_feedback_from_row(&p, row, V, &a->fb[a->rows[r]], NULL);
    }
}

float sm_lambda_grad(const sm_raw *r, float neg_h, float dlam[3]) {
    sm_params p;
    sm_params_from_raw(&p, r->raw_scale, r->raw_centre, r->raw_steepness);
    double gz = 1.0 / (1.0 + exp(-(double)p.steepness * (neg_h - p.centre)));
    double ds = 1.0 / (1.0 + exp(-(double)r->raw_scale));      /* = scale */
    double sig_c = 1.0 / (1.0 + exp(-(double)r->raw_centre));  /* d softplus */
    double sig_k = 1.0 / (1.0 + exp(-(double)r->raw_steepness));
    double common = p.scale * gz * (1.0 - gz);
    dlam[0] = (float)(gz * ds * (1.0 - ds));                      /* d λ / d raw_scale */
    dlam[1] = (float)(common * p.steepness * sig_c);               /* centre = −softplus − ε */
    dlam[2] = (float)(common * (neg_h - p.centre) * sig_k);        /* d λ / d raw_steepness */
    return (float)(p.scale * gz);
}

static void embed_rows(void *ctx, const int32_t *ids, int n, float *out) {
    const dit_model *m = ctx;
    const size_t D = (size_t)m->cfg.hidden;
    for (int i = 0; i < n; i++) memcpy(out + i * D, m->w.embed + (size_t)ids[i] * D, sizeof(float) * D);
}

/* Pass-2 input: E[x] at unmasked positions, (1−λ)E[m] + λΣπ_j E[v_j] at masked ones, with λ
 * in the arithmetic its gradient uses (sm_lambda_grad). */
static void sm_embed(trainer *tr, const train_batch *bt) {
    struct train_acts *a = tr->acts;
    const int BT = tr->B * tr->T;
    for (int i = 0; i < BT; i++)
        if (a->masked[i]) {
            float dl[3];
            a->fb[i].lambda = sm_lambda_grad(&tr->sm, a->fb[i].neg_h, dl);
        }
    embed_rows(&tr->model, bt->xt, BT, a->x);
    const sm_params p = {.enabled = 1, .k = tr->sm.k};
    sm_mix_inputs(a->x, tr->cfg.hidden, (size_t)BT, bt->xt, tr->cfg.mask_id, tr->cfg.vocab_size, &p,
                  a->fb, embed_rows, &tr->model);
}

/* Embedding gradients (and λ's) from d x at the input; single-threaded, position order. */
static void embed_backward(trainer *tr, const train_batch *bt, int sm) {
    struct train_acts *a = tr->acts;
    const int BT = tr->B * tr->T, D = tr->cfg.hidden, k = tr->sm.k, mask = tr->cfg.mask_id;
    const float *E = tr->model.w.embed;
    float *dE = tr->frozen ? NULL : tr->grads.w.embed;
    double graw[3] = {0, 0, 0};
    for (int i = 0; i < BT; i++) {
        const float *dx = a->dx + (size_t)i * D;
        if (!sm || !a->masked[i]) {
            float *d = dE ? dE + (size_t)bt->xt[i] * D : NULL;
            for (int j = 0; d && j < D; j++) d[j] += dx[j];
            continue;
        }
        const sm_feedback *f = &a->fb[i];
        float dl[3];
        float lam = sm_lambda_grad(&tr->sm, f->neg_h, dl);
        double dlam = 0.0; /* dx · (Σ π_j E[v_j] − E[m]) */
        const float *em = E + (size_t)mask * D;
        for (int j = 0; j < D; j++) dlam -= (double)dx[j] * em[j];
        for (int q = 0; q < k; q++) {
            const float *ev = E + (size_t)f->idx[q] * D;
            for (int j = 0; j < D; j++) dlam += (double)dx[j] * f->pi[q] * ev[j];
        }
        if (dE) { /* the rows mixed into x: (1 − λ)·E[m] + λ·Σ π_q E[v_q] */
            float *dm = dE + (size_t)mask * D;
            for (int j = 0; j < D; j++) dm[j] += (1.0f - lam) * dx[j];
            for (int q = 0; q < k; q++) {
                float *dv = dE + (size_t)f->idx[q] * D, wq = lam * f->pi[q];
                for (int j = 0; j < D; j++) dv[j] += wq * dx[j];
            }
        }
        for (int r = 0; r < 3; r++) graw[r] += dlam * dl[r];
    }
    for (int r = 0; r < 3; r++) tr->sm_grad[r] += (float)graw[r];
}

/* ---- steps -------------------------------------------------------------------------------- */

static void sigmas(const trainer *tr, const train_batch *b, float *sigma) {
    for (int i = 0; i < tr->B; i++)
        sigma[i] = tr->cfg.causal ? 0.0f : mdlm_sigma(b->t[i]);
}

static double run_forward(trainer *tr, const train_batch *b, int sm, float scale, float *sigma) {
    sigmas(tr, b, sigma);
    sm = sm && !tr->cfg.causal;
    if (sm) {
        sm_pass1(tr, b, sigma);
        sm_embed(tr, b);
    } else {
        for (size_t i = 0; i < (size_t)tr->B * tr->T; i++)
            dit_embedding_row(&tr->model, b->xt[i], tr->acts->x + i * (size_t)tr->cfg.hidden);
    }
    select_rows(tr, b, scale);
    forward_train(tr, sigma);
    return loss_and_dlogits(tr);
}

void trainer_zero_grads(trainer *tr) {
    memset(tr->grads.owned, 0, tr->nparams * sizeof(float));
    memset(tr->sm_grad, 0, sizeof tr->sm_grad);
}

double trainer_accumulate(trainer *tr, const train_batch *b, int sm, float scale) {
    float *sigma = sm_malloc(sizeof(float) * (size_t)tr->B);
    double loss = run_forward(tr, b, sm, scale, sigma);
    backward(tr);
    embed_backward(tr, b, sm && !tr->cfg.causal);
    free(sigma);
    return loss / scale;
}

double trainer_step(trainer *tr, const train_batch *b, int sm) {
    trainer_zero_grads(tr);
    return trainer_accumulate(tr, b, sm, 1.0f);
}

double trainer_loss(trainer *tr, const train_batch *b, int sm) {
    float *sigma = sm_malloc(sizeof(float) * (size_t)tr->B);
    double loss = run_forward(tr, b, sm, 1.0f, sigma);
    free(sigma);
    return loss;
}

size_t trainer_activation_bytes(const trainer *tr) {
    size_t BT = (size_t)tr->B * tr->T;
    size_t pass1 = BT * ((size_t)tr->cfg.hidden * 11) + attention_scratch_floats(tr->T, tr->nthreads);
    return (tr->mem_floats + pass1) * sizeof(float) + BT * (sizeof(sm_feedback) + 2 * sizeof(int32_t) + 1);
}

static const char *const k_sm_names[3] = {"softmask.raw_scale", "softmask.raw_centre",
                                          "softmask.raw_steepness"};

static void sm_entries(st_write_entry *e, const float *values) {
    for (int r = 0; r < 3; r++) e[r] = (st_write_entry){k_sm_names[r], ST_F32, 1, {1}, &values[r]};
}

int trainer_save_grads(const trainer *tr, const char *path) {
    st_write_entry e[3];
    sm_entries(e, tr->sm_grad);
    return dit_weights_save(&tr->cfg, &tr->grads.w, tr->model.prefix, e, 3, path);
}

void trainer_ema_update(trainer *tr, float decay) {
    if (!tr->ema.owned) {
        dit_model_alloc(&tr->ema, &tr->cfg);
        memcpy(tr->ema.owned, tr->model.owned, tr->nparams * sizeof(float));
        return;
    }
    ema_update(tr->ema.owned, tr->model.owned, tr->nparams, decay);
}

void trainer_set_ema(trainer *tr, const dit_model *src) {
    if (!tr->ema.owned) dit_model_alloc(&tr->ema, &tr->cfg);
    copy_params(&tr->ema, src);
}

int trainer_export(const trainer *tr, const char *dir, int use_ema, int with_sm) {
    const dit_model *m = use_ema && tr->ema.owned ? &tr->ema : &tr->model;
    char *cfg = sm_path_join(dir, "config.json"), *w = sm_path_join(dir, "model.safetensors");
    char *smp = sm_path_join(dir, "transparency_config.json");
    float raw[3] = {tr->sm.raw_scale, tr->sm.raw_centre, tr->sm.raw_steepness};
    st_write_entry e[3];
    sm_entries(e, raw);
    sm_params p;
    sm_raw_to_params(&tr->sm, &p);
    int rc = dit_config_save(&tr->cfg, cfg);
    if (!rc) rc = dit_weights_save(&tr->cfg, &m->w, "backbone.", e, 3, w);
    if (!rc && with_sm && !tr->cfg.causal) rc = sm_params_save_json(&p, smp);
    free(cfg), free(w), free(smp);
    return rc;
}
