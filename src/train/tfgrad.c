/* tfgrad.c — training forward and backward of Dream / LLaDA with a frozen base (see tfgrad.h).
 *
 * The forward is transformer.c's layer by layer (the same kernels, so the same bits) over all
 * B·T rows, keeping what the backward reads; the adapted projections compute PEFT's
 * f ⊙ (x·Wᵀ + s·(x·Aᵀ)·Bᵀ) + b (f = 1 for LoRA) as linear.c's on-the-fly adapter does. The
 * backward of the frozen base products is linear_backward_input (dX = dY·W in W's dtype).
 */
#include "train/tfgrad.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/util.h"
#include "compute/gemm.h"
#include "compute/kernels.h"
#include "compute/kernels_bwd.h"
#include "models/noise.h"

enum { P_Q, P_K, P_V, P_O, P_GATE, P_UP, P_DOWN, NPROJ };

#define PEFT_PREFIX "base_model.model."

/* Saved activations of one layer (pointers into tf_acts.mem). */
typedef struct {
    float *x_in;  /* (N, D) the layer's input */
    float *h1;    /* (N, D) attn_norm(x_in) */
    float *q;     /* (N, QD) after rotary */
    float *k, *v; /* (N, KD) k after rotary */
    float *P;     /* (B, H, T, T) attention probabilities */
    float *att;   /* (N, QD) attention output (o_proj's input) */
    float *x_mid; /* (N, D) after the attention residual */
    float *h2;    /* (N, D) ffn_norm(x_mid) */
    float *gate, *up, *act; /* (N, F) gate and up projections, silu(gate)·up */
} layer_acts;

struct tf_acts {
    layer_acts *layers;
    float *x;       /* (N, D) residual stream */
    float *tmp;     /* (N, D) a projection's output before the residual add */
    float *xrows;   /* (n, D) residual rows that reach the loss */
    float *hrows;   /* (n, D) their final-normed rows */
    float *logits;  /* (n, V) their logits, then d loss / d logits */
    int32_t *rows, *target;
    int nrows;
    float *rope_cos, *rope_sin;
    /* backward scratch */
    float *dx, *dh, *dq, *dk, *dv, *datt, *dgate, *dup, *dact, *dy, *du, *dS;
    /* soft-masking */
    sm_feedback *fb;
    float *pass1_logits; /* (N, V) */
    uint8_t *need;
    float *mem;
};

/* ---- set-up ------------------------------------------------------------------------------ */

static linear_w *proj_of(tf_layer *l, int p) {
    linear_w *ws[NPROJ] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
    return ws[p];
}

static const float *bias_of(const tf_layer *l, int p) {
    return p == P_Q ? l->bq : p == P_K ? l->bk : p == P_V ? l->bv : NULL;
}

/* Takes the target's tensors; the per-step buffers for N rows. */
static void adapted_init(tf_adapted *ad, const tf_module *mod, adapter_target *t,
                         const peft_adapter *a, transformer_model *m, size_t N) {
    tf_layer *l = &m->layers[mod->layer];
    memset(ad, 0, sizeof *ad);
    snprintf(ad->name, sizeof ad->name, "%s", mod->name);
    ad->layer = mod->layer;
    for (int p = 0; p < NPROJ; p++)
        if (proj_of(l, p) == mod->w) ad->proj = p;
    ad->w = mod->w;
    ad->r = a->r;
    ad->scale = a->scale;
    const size_t out = (size_t)ad->w->out, in = (size_t)ad->w->in, r = (size_t)a->r;
    ad->a = t->a, ad->b = t->b, ad->mag = t->mag;
    t->a = t->b = t->mag = NULL;
    ad->da = sm_calloc(r * in, sizeof(float));
    ad->db = sm_calloc(out * r, sizeof(float));
    ad->u = sm_malloc(sizeof(float) * N * r);
    if (ad->mag) {
        ad->dmag = sm_calloc(out, sizeof(float));
        ad->norm = sm_malloc(sizeof(double) * out);
        ad->f = sm_malloc(sizeof(float) * out);
        ad->ypre = sm_malloc(sizeof(float) * N * out);
    }
}

static void adapted_free(tf_adapted *ad) {
    free(ad->a), free(ad->b), free(ad->mag), free(ad->da), free(ad->db), free(ad->dmag);
    free(ad->norm), free(ad->f), free(ad->u), free(ad->ypre);
}

/* Floats of the activations and scratch (saturating), carved in this order by carve(). */
typedef struct {
    float **slot;
    size_t n;
} carve_entry;

static size_t carve(float *mem, carve_entry *e, int n) {
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (mem) *e[i].slot = mem + off;
        off = sm_size_add(off, sm_size_align(e[i].n, 16));
    }
    return off;
}

/* The list of buffers for B × T and rank r (layer slots in acts->layers). */
static int acts_entries(const tf_config *c, struct tf_acts *a, int B, int T, int r,
                        carve_entry *e) {
    const size_t N = (size_t)B * T, D = c->hidden, QD = (size_t)c->n_heads * c->head_dim,
                 KD = (size_t)c->n_kv_heads * c->head_dim, F = c->ffn, V = c->vocab_size,
                 PT = sm_size_mul((size_t)B * c->n_heads, (size_t)T * T);
    int n = 0;
#define ADD(ptr, count) (e[n].slot = &(ptr), e[n].n = (count), n++)
    for (int l = 0; l < c->n_layers; l++) {
        layer_acts *s = &a->layers[l];
        ADD(s->x_in, N * D), ADD(s->h1, N * D), ADD(s->q, N * QD), ADD(s->k, N * KD);
        ADD(s->v, N * KD), ADD(s->P, PT), ADD(s->att, N * QD), ADD(s->x_mid, N * D);
        ADD(s->h2, N * D), ADD(s->gate, N * F), ADD(s->up, N * F), ADD(s->act, N * F);
    }
    ADD(a->x, N * D), ADD(a->tmp, N * D), ADD(a->xrows, N * D), ADD(a->hrows, N * D);
    ADD(a->logits, sm_size_mul(N, V));
    ADD(a->rope_cos, (size_t)T * c->head_dim / 2), ADD(a->rope_sin, (size_t)T * c->head_dim / 2);
    ADD(a->dx, N * D), ADD(a->dh, N * D), ADD(a->dq, N * QD), ADD(a->dk, N * KD);
    ADD(a->dv, N * KD), ADD(a->datt, N * QD), ADD(a->dgate, N * F), ADD(a->dup, N * F);
    ADD(a->dact, N * F), ADD(a->dy, N * (F > D ? F : D)), ADD(a->du, N * (size_t)r);
    ADD(a->pass1_logits, sm_size_mul(N, V));
    ADD(a->dS, attention_scratch_floats(T, omp_get_max_threads()));
#undef ADD
    return n;
}

int tf_trainer_init(tf_trainer *tr, transformer_model *m, const peft_adapter *a, int B, int T) {
    memset(tr, 0, sizeof *tr);
    const tf_config *c = &m->cfg;
    if (B < 1 || T < 1 || T > c->max_len)
        return SM_ERR("a batch of %d × %d positions does not fit the model (context %d)", B, T,
                      c->max_len);
    adapter_target *t;
    int nt, nmods;
    if (adapter_targets_load(a, m, &t, &nt)) return -1;
    struct tf_acts *acts = sm_calloc(1, sizeof *acts);
    acts->layers = sm_calloc((size_t)c->n_layers, sizeof *acts->layers);
    carve_entry *e = sm_malloc(sizeof *e * (12 * (size_t)c->n_layers + 32));
    const int ne = acts_entries(c, acts, B, T, a->r, e);
    const size_t N = (size_t)B * T;
    size_t bytes = sm_size_mul(carve(NULL, e, ne), sizeof(float)), adapter_floats = 0;
    tf_module *mods = transformer_modules(m, &nmods);
    for (int i = 0; i < nt; i++) {
        const linear_w *w = mods[t[i].module].w;
        adapter_floats = sm_size_add(adapter_floats, sm_size_mul(N, (size_t)a->r));
        if (t[i].mag) adapter_floats = sm_size_add(adapter_floats, sm_size_mul(N, w->out));
    }
    bytes = sm_size_add(bytes, sm_size_mul(adapter_floats, sizeof(float)));
    bytes = sm_size_add(bytes, sm_size_mul(N, sizeof(sm_feedback) + 2 * sizeof(int32_t) + 1));
    if (SM_CHECK_MEMORY(bytes, "the gradient of an adapter on %d × %d positions", B, T)) {
        adapter_targets_free(t, nt);
        free(mods), free(e), free(acts->layers), free(acts);
        return -1;
    }
    acts->mem = sm_aligned_alloc(carve(NULL, e, ne) * sizeof(float));
    carve(acts->mem, e, ne);
    free(e);
    acts->rows = sm_malloc(N * sizeof(int32_t));
    acts->target = sm_malloc(N * sizeof(int32_t));
    acts->fb = sm_calloc(N, sizeof(sm_feedback));
    acts->need = sm_malloc(N);
    rope_tables(acts->rope_cos, acts->rope_sin, T, c->head_dim, c->rope_theta);
    tr->m = m;
    tr->B = B;
    tr->T = T;
    tr->acts = acts;
    tr->ntargets = nt;
    tr->targets = sm_calloc((size_t)nt, sizeof *tr->targets);
    tr->by_proj = sm_calloc((size_t)c->n_layers * NPROJ, sizeof *tr->by_proj);
    tr->lowest = c->n_layers;
    for (int i = 0; i < nt; i++) {
        tf_adapted *ad = &tr->targets[i];
        adapted_init(ad, &mods[t[i].module], &t[i], a, m, N);
        tr->by_proj[ad->layer * NPROJ + ad->proj] = ad;
        if (ad->layer < tr->lowest) tr->lowest = ad->layer;
    }
    adapter_targets_free(t, nt);
    free(mods);
    sm_params p;
    sm_params_default(&p);
    p.k = 1; /* IBM's Dream patch and coding configs */
    sm_raw_from_params(&tr->sm, &p);
    tf_state_init(&tr->pass1, m);
    return 0;
}

void tf_trainer_free(tf_trainer *tr) {
    struct tf_acts *a = tr->acts;
    if (a) {
        free(a->mem), free(a->layers), free(a->rows), free(a->target), free(a->fb), free(a->need);
        free(a);
    }
    for (int i = 0; i < tr->ntargets; i++) adapted_free(&tr->targets[i]);
    free(tr->targets);
    free(tr->by_proj);
    if (tr->m) tf_state_free(&tr->pass1);
    memset(tr, 0, sizeof *tr);
}

void tf_trainer_zero_grads(tf_trainer *tr) {
    for (int i = 0; i < tr->ntargets; i++) {
        tf_adapted *ad = &tr->targets[i];
        const size_t out = (size_t)ad->w->out, in = (size_t)ad->w->in;
        memset(ad->da, 0, sizeof(float) * ad->r * in);
        memset(ad->db, 0, sizeof(float) * out * ad->r);
        if (ad->dmag) memset(ad->dmag, 0, sizeof(float) * out);
    }
    memset(tr->sm_grad, 0, sizeof tr->sm_grad);
}

/* ---- adapted projections ------------------------------------------------------------------ */

/* DoRA's factors at the current parameters (the norm is a constant of the step). */
static void dora_prepare(tf_trainer *tr) {
    for (int i = 0; i < tr->ntargets; i++) {
        tf_adapted *ad = &tr->targets[i];
        if (!ad->mag) continue;
        adapter_row_norms(ad->w, ad->r, ad->scale, ad->a, ad->b, ad->norm);
        for (int o = 0; o < ad->w->out; o++) ad->f[o] = (float)(ad->mag[o] / ad->norm[o]);
    }
}

/* y[N, out] = projection p of layer l on x (with its bias and adapter), saving the adapter's
 * intermediates. The same operations as linear_forward with an attached adapter. */
static void proj_forward(tf_trainer *tr, int l, int p, const float *x, float *y, int N) {
    tf_layer *layer = &tr->m->layers[l];
    const linear_w *w = proj_of(layer, p);
    const float *bias = bias_of(layer, p);
    tf_adapted *ad = tr->by_proj[l * NPROJ + p];
    if (!ad) {
        linear_forward(y, x, w, bias, N);
        return;
    }
    const int out = w->out, in = w->in, r = ad->r;
    linear_forward(y, x, w, NULL, N);
    gemm_f32(GEMM_NOTRANS, GEMM_TRANS, N, r, in, 1.0f, x, in, ad->a, in, 0.0f, ad->u, r);
    gemm_f32(GEMM_NOTRANS, GEMM_TRANS, N, out, r, ad->scale, ad->u, r, ad->b, r, 1.0f, y, out);
    if (ad->mag) memcpy(ad->ypre, y, sizeof(float) * (size_t)N * out);
    for (int n = 0; n < N; n++) {
        float *row = y + (size_t)n * out;
        if (ad->mag)
            for (int o = 0; o < out; o++) row[o] *= ad->f[o];
        if (bias)
            for (int o = 0; o < out; o++) row[o] += bias[o];
    }
}

/* Given dy of projection p of layer l (input x): dx += d x, the adapter's gradients +=.
 * y = f ⊙ (x·Wᵀ + s·u·Bᵀ) + b with u = x·Aᵀ and f constant: with g = f ⊙ dy,
 * dm += Σ_n dy ⊙ ypre / norm, dB += s·gᵀ·u, du = s·g·B, dA += duᵀ·x, dx += g·W + du·A. */
static void proj_backward(tf_trainer *tr, int l, int p, const float *x, const float *dy,
                          float *dx, int N) {
    const linear_w *w = proj_of(&tr->m->layers[l], p);
    tf_adapted *ad = tr->by_proj[l * NPROJ + p];
    if (!ad) {
        linear_backward_input(dx, dy, w, N);
        return;
    }
    struct tf_acts *a = tr->acts;
    const int out = w->out, in = w->in, r = ad->r;
    const float *g = dy;
    if (ad->mag) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < out; o++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += (double)dy[(size_t)n * out + o] * ad->ypre[(size_t)n * out + o];
            ad->dmag[o] += (float)(s / ad->norm[o]);
        }
        float *gf = a->dy;
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++)
                gf[(size_t)n * out + o] = dy[(size_t)n * out + o] * ad->f[o];
        g = gf;
    }
    gemm_f32(GEMM_TRANS, GEMM_NOTRANS, out, r, N, ad->scale, g, out, ad->u, r, 1.0f, ad->db, r);
    gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, N, r, out, ad->scale, g, out, ad->b, r, 0.0f, a->du, r);
    gemm_f32(GEMM_TRANS, GEMM_NOTRANS, r, in, N, 1.0f, a->du, r, x, in, 1.0f, ad->da, in);
    gemm_f32(GEMM_NOTRANS, GEMM_NOTRANS, N, in, r, 1.0f, a->du, r, ad->a, in, 1.0f, dx, in);
    linear_backward_input(dx, g, w, N);
}

/* ---- forward ------------------------------------------------------------------------------ */

static void attention_forward_gqa(const tf_config *c, layer_acts *s, int B, int T) {
    const int H = c->n_heads, hd = c->head_dim, rep = H / c->n_kv_heads;
    const int QD = H * hd, KD = c->n_kv_heads * hd;
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H, g = h / rep;
        const size_t row = (size_t)b * T;
        attention_head(s->att + row * QD + (size_t)h * hd, s->P + (size_t)bh * T * T,
                       s->q + row * QD + (size_t)h * hd, s->k + row * KD + (size_t)g * hd,
                       s->v + row * KD + (size_t)g * hd, T, T, hd, QD, KD, QD, 0);
    }
}

static void layer_forward(tf_trainer *tr, int l) {
    const tf_config *c = &tr->m->cfg;
    const tf_layer *w = &tr->m->layers[l];
    struct tf_acts *a = tr->acts;
    layer_acts *s = &a->layers[l];
    const int N = tr->B * tr->T;
    const size_t ND = (size_t)N * c->hidden, NF = (size_t)N * c->ffn;
    memcpy(s->x_in, a->x, sizeof(float) * ND);
    rmsnorm_forward(s->h1, a->x, w->attn_norm, N, c->hidden, c->rms_eps);
    proj_forward(tr, l, P_Q, s->h1, s->q, N);
    proj_forward(tr, l, P_K, s->h1, s->k, N);
    proj_forward(tr, l, P_V, s->h1, s->v, N);
    rope_forward_qk(s->q, s->k, a->rope_cos, a->rope_sin, N, tr->T, 0, c->n_heads, c->n_kv_heads,
                    c->head_dim);
    attention_forward_gqa(c, s, tr->B, tr->T);
    proj_forward(tr, l, P_O, s->att, a->tmp, N);
    residual_add_forward(a->x, a->tmp, ND);
    memcpy(s->x_mid, a->x, sizeof(float) * ND);
    rmsnorm_forward(s->h2, a->x, w->ffn_norm, N, c->hidden, c->rms_eps);
    proj_forward(tr, l, P_GATE, s->h2, s->gate, N);
    proj_forward(tr, l, P_UP, s->h2, s->up, N);
    memcpy(s->act, s->gate, sizeof(float) * NF);
    swiglu_forward(s->act, s->up, NF);
    proj_forward(tr, l, P_DOWN, s->act, a->tmp, N);
    residual_add_forward(a->x, a->tmp, ND);
}

/* Rows that reach the loss and their targets: the masked positions i (≥ 1 with Dream's
 * shift, predicted by row i − 1; LLaDA: row i). The weight is scale / (t · count). */
static float select_rows(tf_trainer *tr, const tf_batch *bt, float scale) {
    struct tf_acts *a = tr->acts;
    const tf_config *c = &tr->m->cfg;
    const int B = tr->B, T = tr->T, shift = c->shift;
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int i = shift; i < T; i++)
            if (bt->xt[(size_t)b * T + i] == c->mask_id) {
                a->rows[n] = b * T + i - shift;
                a->target[n++] = bt->x0[(size_t)b * T + i];
            }
    a->nrows = n;
    return n ? (float)(scale / ((double)bt->t * n)) : 0.0f;
}

/* Final norm and output projection on the loss rows; the loss, and d loss / d logits in
 * a->logits. */
static double output_loss(tf_trainer *tr, float weight) {
    const transformer_model *m = tr->m;
    const tf_config *c = &m->cfg;
    struct tf_acts *a = tr->acts;
    const size_t D = c->hidden;
    const int V = c->vocab_size, n = a->nrows;
    if (!n) return 0.0;
    for (int r = 0; r < n; r++)
        memcpy(a->xrows + r * D, a->x + (size_t)a->rows[r] * D, sizeof(float) * D);
    rmsnorm_forward(a->hrows, a->xrows, m->final_norm, (size_t)n, c->hidden, c->rms_eps);
    linear_forward(a->logits, a->hrows, &m->lm_head, NULL, n);
    double *part = sm_calloc((size_t)n, sizeof(double));
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++)
        part[r] = softmax_cross_entropy_row(a->logits + (size_t)r * V, V, a->target[r], weight);
    double loss = 0.0;
    for (int r = 0; r < n; r++) loss += part[r]; /* fixed order */
    free(part);
    return loss;
}

/* ---- soft-masking -------------------------------------------------------------------------- */

static void embed_rows(void *ctx, const int32_t *ids, int n, float *out) {
    const transformer_model *m = ctx;
    linear_rows_f32(out, &m->embed, ids, n);
}

/* The adapter as an on-the-fly linear_lora of each target (for pass 1), or detached. */
static void attach(tf_trainer *tr, linear_lora *views, int on) {
    for (int i = 0; i < tr->ntargets; i++) {
        tf_adapted *ad = &tr->targets[i];
        views[i] = (linear_lora){.r = ad->r, .scale = ad->scale, .a = ad->a, .b = ad->b,
                                 .dora = ad->f};
        ad->w->lora = on ? &views[i] : NULL;
    }
}

/* Pass 1 through the inference forward, no gradient: the feedback of every masked position
 * from the row that predicts it (Dream: row i − 1, row 0 for position 0). */
static int sm_pass1(tf_trainer *tr, const tf_batch *bt, const sm_params *p) {
    struct tf_acts *a = tr->acts;
    const tf_config *c = &tr->m->cfg;
    const int B = tr->B, T = tr->T;
    memset(a->need, 0, (size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++)
            if (bt->xt[(size_t)b * T + i] == c->mask_id)
                a->need[(size_t)b * T + (i >= c->shift ? i - c->shift : 0)] = 1;
    linear_lora *views = sm_malloc(sizeof *views * (size_t)tr->ntargets);
    attach(tr, views, 1);
    int rc = transformer_forward(&tr->pass1, bt->xt, NULL, NULL, a->need, B, T, a->pass1_logits);
    attach(tr, views, 0);
    free(views);
    if (rc) return -1;
    sm_feedback_canvas(p, bt->xt, B, T, c->mask_id, a->pass1_logits, c->vocab_size, c->shift,
                       a->fb, NULL);
    return 0;
}

/* Pass-2 input: E[x], and (1 − λ)·E[m] + λ·Σ π_j E[v_j] at masked positions with λ in the
 * arithmetic of its gradient (sm_lambda_grad). */
static void sm_embed(tf_trainer *tr, const tf_batch *bt) {
    struct tf_acts *a = tr->acts;
    const tf_config *c = &tr->m->cfg;
    const size_t N = (size_t)tr->B * tr->T;
    for (size_t i = 0; i < N; i++)
        if (bt->xt[i] == c->mask_id) {
            float dl[3];
            a->fb[i].lambda = sm_lambda_grad(&tr->sm, a->fb[i].neg_h, dl);
        }
    linear_rows_f32(a->x, &tr->m->embed, bt->xt, (int)N);
    const sm_params p = {.enabled = 1, .k = tr->sm.k};
    sm_mix_inputs(a->x, c->hidden, N, bt->xt, c->mask_id, c->vocab_size, &p, a->fb, embed_rows,
                  tr->m);
}

/* d loss / d raw_* = Σ_masked ⟨dx_i, Σ_j π_j E[v_j] − E[m]⟩ · d λ_i / d raw_* (position order). */
static void sm_backward(tf_trainer *tr, const tf_batch *bt) {
    struct tf_acts *a = tr->acts;
    const tf_config *c = &tr->m->cfg;
    const size_t N = (size_t)tr->B * tr->T, D = c->hidden;
    const int k = tr->sm.k;
    float *e = sm_malloc(sizeof(float) * D * (size_t)(k + 1));
    const int32_t mask = c->mask_id;
    double graw[3] = {0, 0, 0};
    for (size_t i = 0; i < N; i++) {
        if (bt->xt[i] != mask) continue;
        const sm_feedback *f = &a->fb[i];
        float dl[3];
        sm_lambda_grad(&tr->sm, f->neg_h, dl);
        linear_rows_f32(e, &tr->m->embed, &mask, 1);
        linear_rows_f32(e + D, &tr->m->embed, f->idx, k);
        const float *dx = a->dx + i * D;
        double dlam = 0.0;
        for (size_t j = 0; j < D; j++) {
            double mix = 0.0;
            for (int q = 0; q < k; q++) mix += (double)f->pi[q] * e[(q + 1) * D + j];
            dlam += (double)dx[j] * (mix - e[j]);
        }
        for (int r = 0; r < 3; r++) graw[r] += dlam * dl[r];
    }
    free(e);
    for (int r = 0; r < 3; r++) tr->sm_grad[r] += (float)graw[r];
}

/* ---- backward ------------------------------------------------------------------------------ */

static void attention_backward_gqa(const tf_config *c, struct tf_acts *a, const layer_acts *s,
                                   int B, int T) {
    const int H = c->n_heads, KVH = c->n_kv_heads, hd = c->head_dim, rep = H / KVH;
    const int QD = H * hd, KD = KVH * hd;
    /* one task per key/value head: it owns that head's dk, dv and its query heads' dq */
#pragma omp parallel for schedule(dynamic, 1)
    for (int bg = 0; bg < B * KVH; bg++) {
        const int b = bg / KVH, g = bg % KVH;
        const size_t row = (size_t)b * T;
        float *dS = a->dS + (size_t)omp_get_thread_num() * T * T;
        for (int h = g * rep; h < (g + 1) * rep; h++)
            attention_head_backward(a->dq + row * QD + (size_t)h * hd,
                                    a->dk + row * KD + (size_t)g * hd,
                                    a->dv + row * KD + (size_t)g * hd, dS,
                                    a->datt + row * QD + (size_t)h * hd,
                                    s->q + row * QD + (size_t)h * hd,
                                    s->k + row * KD + (size_t)g * hd,
                                    s->v + row * KD + (size_t)g * hd,
                                    s->P + ((size_t)b * H + h) * T * T, T, hd, QD, KD, QD);
    }
}

/* a->dx holds d x_out on entry and d x_in on return. */
static void layer_backward(tf_trainer *tr, int l) {
    const tf_config *c = &tr->m->cfg;
    const tf_layer *w = &tr->m->layers[l];
    struct tf_acts *a = tr->acts;
    const layer_acts *s = &a->layers[l];
    const int N = tr->B * tr->T;
    const size_t ND = (size_t)N * c->hidden, NF = (size_t)N * c->ffn,
                 NQ = (size_t)N * c->n_heads * c->head_dim,
                 NK = (size_t)N * c->n_kv_heads * c->head_dim;
    /* x_out = x_mid + down(silu(gate(h2))·up(h2)), h2 = ffn_norm(x_mid) */
    memset(a->dact, 0, sizeof(float) * NF);
    proj_backward(tr, l, P_DOWN, s->act, a->dx, a->dact, N);
    memset(a->dgate, 0, sizeof(float) * NF);
    memset(a->dup, 0, sizeof(float) * NF);
    swiglu_backward(a->dgate, a->dup, a->dact, s->gate, s->up, NF);
    memset(a->dh, 0, sizeof(float) * ND);
    proj_backward(tr, l, P_GATE, s->h2, a->dgate, a->dh, N);
    proj_backward(tr, l, P_UP, s->h2, a->dup, a->dh, N);
    rmsnorm_backward(a->dx, a->dh, s->x_mid, w->ffn_norm, N, c->hidden, c->rms_eps);
    /* x_mid = x_in + o(attention(rope(q(h1)), rope(k(h1)), v(h1))), h1 = attn_norm(x_in) */
    memset(a->datt, 0, sizeof(float) * NQ);
    proj_backward(tr, l, P_O, s->att, a->dx, a->datt, N);
    memset(a->dq, 0, sizeof(float) * NQ);
    memset(a->dk, 0, sizeof(float) * NK);
    memset(a->dv, 0, sizeof(float) * NK);
    attention_backward_gqa(c, a, s, tr->B, tr->T);
    rope_backward_qk(a->dq, a->dk, a->rope_cos, a->rope_sin, N, tr->T, c->n_heads, c->n_kv_heads,
                     c->head_dim);
    memset(a->dh, 0, sizeof(float) * ND);
    proj_backward(tr, l, P_Q, s->h1, a->dq, a->dh, N);
    proj_backward(tr, l, P_K, s->h1, a->dk, a->dh, N);
    proj_backward(tr, l, P_V, s->h1, a->dv, a->dh, N);
    rmsnorm_backward(a->dx, a->dh, s->x_in, w->attn_norm, N, c->hidden, c->rms_eps);
}

/* From d logits of the loss rows down to the lowest layer that matters: the lowest target, or
 * the input embedding with soft-masking (λ's gradient). */
static void backward(tf_trainer *tr, int to_input) {
    const transformer_model *m = tr->m;
    const tf_config *c = &m->cfg;
    struct tf_acts *a = tr->acts;
    const size_t D = c->hidden, ND = (size_t)tr->B * tr->T * D;
    const int n = a->nrows;
    memset(a->dx, 0, sizeof(float) * ND);
    if (!n) return;
    memset(a->hrows, 0, sizeof(float) * n * D);
    linear_backward_input(a->hrows, a->logits, &m->lm_head, n); /* d hrows */
    memset(a->tmp, 0, sizeof(float) * n * D);
    rmsnorm_backward(a->tmp, a->hrows, a->xrows, m->final_norm, (size_t)n, c->hidden, c->rms_eps);
    for (int r = 0; r < n; r++) /* rows are distinct positions */
        memcpy(a->dx + (size_t)a->rows[r] * D, a->tmp + r * D, sizeof(float) * D);
    const int stop = to_input ? 0 : tr->lowest;
    for (int l = c->n_layers - 1; l >= stop; l--) layer_backward(tr, l);
}

/* ---- noise -------------------------------------------------------------------------------- */

int tf_noise_batch(sm_rng *r, const int32_t *x0, const int *prompt_len, int32_t *xt, float *t,
                   int B, int T, int mask_id, float t_min, float t_max) {
    if (!(t_min > 0.0f && t_min <= t_max && t_max <= 1.0f))
        return SM_ERR("the time range [%g, %g] is not inside (0, 1]", t_min, t_max);
    for (int b = 0; b < B; b++)
        if (prompt_len[b] < 0 || prompt_len[b] >= T)
            return SM_ERR("row %d: a prompt of %d tokens leaves no position of %d to mask", b,
                          prompt_len[b], T);
    const float eps = (float)MDLM_NOISE_EPS;
    float tb = (t_max - t_min) * (float)rng_uniform(r) + t_min;
    if (tb < eps) tb = eps;
    const double p = (1.0 - eps) * tb + eps;
    for (int b = 0; b < B; b++) {
        int any = 0;
        for (int i = 0; i < T; i++) {
            const size_t at = (size_t)b * T + i;
            const int masked = rng_uniform(r) < p && i >= prompt_len[b];
            xt[at] = masked ? mask_id : x0[at];
            any |= masked;
        }
        if (!any) {
            const int span = T - prompt_len[b];
            int j = prompt_len[b] + (int)(rng_uniform(r) * span);
            if (j >= T) j = T - 1;
            xt[(size_t)b * T + j] = mask_id;
        }
    }
    *t = tb;
    return 0;
}

/* ---- step --------------------------------------------------------------------------------- */

static int check_batch(const tf_trainer *tr, const tf_batch *b) {
    const tf_config *c = &tr->m->cfg;
    if (!(b->t > 0.0f && b->t <= 1.0f)) return SM_ERR("t = %g is outside (0, 1]", b->t);
    for (size_t i = 0; i < (size_t)tr->B * tr->T; i++) {
        if (b->xt[i] < 0 || b->xt[i] >= c->vocab_size || b->x0[i] < 0 ||
            b->x0[i] >= c->vocab_size)
            return SM_ERR("token id at position %zu is outside the vocabulary [0, %d)", i,
                          c->vocab_size);
        if (b->x0[i] == c->mask_id)
            return SM_ERR("clean id at position %zu is the mask id %d", i, c->mask_id);
    }
    return 0;
}

int tf_trainer_accumulate(tf_trainer *tr, const tf_batch *b, int sm, float scale, double *loss) {
    if (check_batch(tr, b)) return -1;
    dora_prepare(tr);
    if (sm) {
        sm_params p;
        sm_raw_to_params(&tr->sm, &p);
        if (sm_pass1(tr, b, &p)) return -1;
        sm_embed(tr, b);
    } else {
        linear_rows_f32(tr->acts->x, &tr->m->embed, b->xt, tr->B * tr->T);
    }
    const float weight = select_rows(tr, b, scale);
    for (int l = 0; l < tr->m->cfg.n_layers; l++) layer_forward(tr, l);
    *loss = output_loss(tr, weight) / scale;
    backward(tr, sm);
    if (sm) sm_backward(tr, b);
    return 0;
}

/* ---- export ------------------------------------------------------------------------------- */

int tf_trainer_save_grads(const tf_trainer *tr, const char *path) {
    static const char *const sm_names[3] = {"softmask.raw_scale", "softmask.raw_centre",
                                            "softmask.raw_steepness"};
    const int n = 3 * tr->ntargets + 3;
    st_write_entry *e = sm_calloc((size_t)n, sizeof *e);
    char (*names)[192] = sm_calloc((size_t)n, sizeof *names);
    int k = 0;
    for (int i = 0; i < tr->ntargets; i++) {
        const tf_adapted *ad = &tr->targets[i];
        snprintf(names[k], sizeof *names, PEFT_PREFIX "%s.lora_A.weight", ad->name);
        e[k] = (st_write_entry){names[k], ST_F32, 2, {ad->r, ad->w->in}, ad->da};
        k++;
        snprintf(names[k], sizeof *names, PEFT_PREFIX "%s.lora_B.weight", ad->name);
        e[k] = (st_write_entry){names[k], ST_F32, 2, {ad->w->out, ad->r}, ad->db};
        k++;
        if (ad->dmag) {
            snprintf(names[k], sizeof *names, PEFT_PREFIX "%s.lora_magnitude_vector", ad->name);
            e[k] = (st_write_entry){names[k], ST_F32, 1, {ad->w->out}, ad->dmag};
            k++;
        }
    }
    for (int r = 0; r < 3; r++)
        e[k++] = (st_write_entry){sm_names[r], ST_F32, 1, {1}, &tr->sm_grad[r]};
    static const char *const meta[] = {"format", "pt", NULL};
    int rc = st_write(path, e, k, meta);
    free(e);
    free(names);
    return rc;
}
