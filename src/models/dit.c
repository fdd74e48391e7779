/* dit.c — MDLM DiT: config, parameter table, loading, forward (docs/DESIGN.md §4). */
#include "models/dit.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <unistd.h>

#include "base/jsonutil.h"
#include "compute/kernels.h"
#include "base/util.h"

/* ---- config --------------------------------------------------------------------------- */

int dit_config_validate(const dit_config *c) {
    if (c->vocab_size < 2) return SM_ERR("vocab_size %d must be at least 2", c->vocab_size);
    if (c->hidden < 2 || c->hidden > 65536)
        return SM_ERR("hidden_dim %d out of range [2, 65536]", c->hidden);
    if (c->n_heads < 1 || c->n_heads > c->hidden || c->hidden % c->n_heads != 0)
        return SM_ERR("n_heads %d must divide hidden_dim %d", c->n_heads, c->hidden);
    if ((c->hidden / c->n_heads) % 2 != 0)
        return SM_ERR("head dimension %d (hidden_dim / n_heads) must be even for rotary",
                      c->hidden / c->n_heads);
    if (c->n_blocks < 1 || c->n_blocks > 1024)
        return SM_ERR("n_blocks %d out of range [1, 1024]", c->n_blocks);
    if (c->cond_dim < 1 || c->cond_dim > 65536)
        return SM_ERR("cond_dim %d out of range [1, 65536]", c->cond_dim);
    if (c->model_length < 1 || c->model_length > (1 << 20))
        return SM_ERR("model_length %d out of range [1, 1048576]", c->model_length);
    if (c->mask_id < 0 || c->mask_id >= c->vocab_size)
        return SM_ERR("mask_token_id %d must be in [0, vocab_size %d)", c->mask_id, c->vocab_size);
    size_t n;
    if (sm_mul_size((size_t)c->vocab_size, (size_t)c->hidden, &n) || n > ((size_t)1 << 36))
        return SM_ERR("vocab_size × hidden_dim too large");
    return 0;
}

int dit_config_from_json(dit_config *c, const cJSON *root, const char *what) {
    static const char *const types[] = {"mdlm", "mdlm_ar", NULL};
    int which;
    if (json_model_config_type(root, what, "an MDLM", types, &which)) return -1;
    memset(c, 0, sizeof *c);
    c->causal = which == 1;
    if (json_get_int(root, "vocab_size", 2, INT32_MAX, -1, &c->vocab_size, what) ||
        json_get_int(root, "hidden_dim", 2, 65536, -1, &c->hidden, what) ||
        json_get_int(root, "n_heads", 1, 65536, -1, &c->n_heads, what) ||
        json_get_int(root, "n_blocks", 1, 1024, -1, &c->n_blocks, what) ||
        json_get_int(root, "cond_dim", 1, 65536, -1, &c->cond_dim, what) ||
        json_get_int(root, "model_length", 1, 1 << 20, 1024, &c->model_length, what) ||
        json_get_int(root, "mask_token_id", 0, INT32_MAX, c->vocab_size - 1, &c->mask_id, what) ||
        json_get_bool(root, "time_conditioning", 0, &c->time_conditioning, what) ||
        json_get_bool(root, "causal", c->causal, &c->causal, what))
        return -1;
    return dit_config_validate(c) ? sm_wrap_error("%s", what) : 0;
}

int dit_config_parse(dit_config *c, const char *json_text, const char *what) {
    cJSON *root = json_parse_object(json_text, what);
    if (!root) return -1;
    int rc = dit_config_from_json(c, root, what);
    cJSON_Delete(root);
    return rc;
}

/* ---- parameter table ------------------------------------------------------------------- */

int dit_param_count(const dit_config *c) { return 5 + 10 * c->n_blocks + 5; }

static void put(dit_param *p, int *n, float **slot, int64_t d0, int64_t d1, const char *fmt,
                int i) {
    dit_param *e = &p[(*n)++];
    snprintf(e->name, sizeof e->name, fmt, i);
    e->slot = slot;
    e->ndim = d1 ? 2 : 1;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
}

void dit_param_table(const dit_config *c, dit_weights *w, dit_param *out) {
    const int64_t V = c->vocab_size, D = c->hidden, C = c->cond_dim;
    int n = 0;
    put(out, &n, &w->embed, V, D, "vocab_embed.embedding", 0);
    put(out, &n, &w->sigma_w0, C, 256, "sigma_map.mlp.0.weight", 0);
    put(out, &n, &w->sigma_b0, C, 0, "sigma_map.mlp.0.bias", 0);
    put(out, &n, &w->sigma_w2, C, C, "sigma_map.mlp.2.weight", 0);
    put(out, &n, &w->sigma_b2, C, 0, "sigma_map.mlp.2.bias", 0);
    for (int i = 0; i < c->n_blocks; i++) {
        dit_block *b = &w->blocks[i];
        put(out, &n, &b->norm1, D, 0, "blocks.%d.norm1.weight", i);
        put(out, &n, &b->norm2, D, 0, "blocks.%d.norm2.weight", i);
        put(out, &n, &b->attn_qkv, 3 * D, D, "blocks.%d.attn_qkv.weight", i);
        put(out, &n, &b->attn_out, D, D, "blocks.%d.attn_out.weight", i);
        put(out, &n, &b->mlp0_w, 4 * D, D, "blocks.%d.mlp.0.weight", i);
        put(out, &n, &b->mlp0_b, 4 * D, 0, "blocks.%d.mlp.0.bias", i);
        put(out, &n, &b->mlp2_w, D, 4 * D, "blocks.%d.mlp.2.weight", i);
        put(out, &n, &b->mlp2_b, D, 0, "blocks.%d.mlp.2.bias", i);
        put(out, &n, &b->ada_w, 6 * D, C, "blocks.%d.adaLN_modulation.weight", i);
        put(out, &n, &b->ada_b, 6 * D, 0, "blocks.%d.adaLN_modulation.bias", i);
    }
    put(out, &n, &w->final_norm, D, 0, "output_layer.norm_final.weight", 0);
    put(out, &n, &w->final_ada_w, 2 * D, C, "output_layer.adaLN_modulation.weight", 0);
    put(out, &n, &w->final_ada_b, 2 * D, 0, "output_layer.adaLN_modulation.bias", 0);
    put(out, &n, &w->out_w, V, D, "output_layer.linear.weight", 0);
    put(out, &n, &w->out_b, V, 0, "output_layer.linear.bias", 0);
    SM_ASSERT(n == dit_param_count(c));
}

size_t dit_param_numel(const dit_config *c) {
    dit_weights w;
    dit_block *blocks = sm_calloc((size_t)c->n_blocks, sizeof *blocks);
    w.blocks = blocks;
    int n = dit_param_count(c);
    dit_param *t = sm_malloc(sizeof *t * (size_t)n);
    dit_param_table(c, &w, t);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += t[i].numel;
    free(t);
    free(blocks);
    return total;
}

/* ---- loading ----------------------------------------------------------------------------- */

void dit_model_alloc(dit_model *m, const dit_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->embed_fd = -1;
    m->blocks_mem = sm_calloc((size_t)cfg->n_blocks, sizeof(dit_block));
    m->w.blocks = m->blocks_mem;
    int n = dit_param_count(cfg);
    dit_param *t = sm_malloc(sizeof *t * (size_t)n);
    dit_param_table(cfg, &m->w, t);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += t[i].numel;
    m->owned = sm_aligned_alloc(total * sizeof(float));
    memset(m->owned, 0, total * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *t[i].slot = m->owned + off;
        off += t[i].numel;
    }
    free(t);
}

/* Tensors that MDLM checkpoints may carry besides the parameters (persistent buffers). */
static const char *const k_ignored_suffixes[] = {
    "rotary_emb.inv_freq",     /* mdlm-owt's rotary buffer */
    "softmask.raw_scale",      /* the trained soft-masking scalars (train.h); the sampler */
    "softmask.raw_centre",     /* reads their transformed values from */
    "softmask.raw_steepness",  /* transparency_config.json */
};

/* Tables up to this size are read through the mapping: resident at most their size, and a
 * forward's rows cost no system call each (a small model's forward is ~1 ms). */
#define EMBED_MAPPED_MAX_BYTES (32u << 20)

/* Points embed_fd/embed_offset at the embedding's bytes when a large table is used in place. */
static void open_embedding_reader(dit_model *m, const char *name) {
    const st_tensor *t = st_find(&m->archive, name);
    if (m->w.embed != (const float *)(const void *)t->data) return;
    if ((size_t)m->cfg.vocab_size * (size_t)m->cfg.hidden * sizeof(float) <= EMBED_MAPPED_MAX_BYTES)
        return;
    const st_file *f = &m->archive.files[t->file_index];
    int fd = sm_open_regular(f->path, NULL);
    if (fd < 0) return; /* fall back to reading through the mapping */
    m->embed_fd = fd;
    m->embed_offset = (uint64_t)(t->data - (const uint8_t *)f->map);
}

int dit_model_load(dit_model *m, const dit_config *cfg, const char *dir) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->embed_fd = -1;
    if (st_open_dir(&m->archive, dir)) return -1;
    const char *prefix = st_find(&m->archive, "backbone.vocab_embed.embedding") ? "backbone." : "";
    m->prefix = prefix;
    int n = dit_param_count(cfg);
    m->blocks_mem = sm_calloc((size_t)cfg->n_blocks, sizeof(dit_block));
    m->w.blocks = m->blocks_mem;
    dit_param *t = sm_malloc(sizeof *t * (size_t)n);
    st_expect *ex = sm_calloc((size_t)n, sizeof *ex);
    char (*names)[112] = sm_malloc(sizeof *names * (size_t)n);
    dit_param_table(cfg, &m->w, t);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s%s", prefix, t[i].name);
        ex[i].name = names[i];
        ex[i].ndim = t[i].ndim;
        ex[i].shape[0] = t[i].shape[0];
        ex[i].shape[1] = t[i].shape[1];
    }
    const float **views = sm_malloc(sizeof *views * (size_t)n);
    int rc = st_load_f32(&m->archive, ex, n, k_ignored_suffixes,
                         (int)(sizeof k_ignored_suffixes / sizeof *k_ignored_suffixes), views,
                         &m->owned);
    for (int i = 0; i < n && rc == 0; i++) *t[i].slot = (float *)(uintptr_t)views[i];
    free(views);
    if (rc == 0) open_embedding_reader(m, names[0]);
    free(names);
    free(ex);
    free(t);
    if (rc) {
        dit_model_free(m);
        return -1;
    }
    return 0;
}

void dit_model_free(dit_model *m) {
    if (m->embed_fd >= 0) close(m->embed_fd);
    st_close(&m->archive);
    free(m->owned);
    free(m->blocks_mem);
    memset(m, 0, sizeof *m);
}

int dit_weights_save(const dit_config *c, const dit_weights *w, const char *prefix,
                     const st_write_entry *extra, int nextra, const char *path) {
    int n = dit_param_count(c);
    dit_weights wc = *w; /* the table records field addresses: work on a copy */
    dit_block *blocks = sm_malloc(sizeof *blocks * (size_t)c->n_blocks);
    memcpy(blocks, w->blocks, sizeof *blocks * (size_t)c->n_blocks);
    wc.blocks = blocks;
    dit_param *t = sm_malloc(sizeof *t * (size_t)n);
    dit_param_table(c, &wc, t);
    st_write_entry *e = sm_calloc((size_t)(n + nextra), sizeof *e);
    char (*names)[112] = sm_malloc(sizeof *names * (size_t)n);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s%s", prefix, t[i].name);
        e[i] = (st_write_entry){names[i], ST_F32, t[i].ndim, {t[i].shape[0], t[i].shape[1]}, *t[i].slot};
    }
    for (int i = 0; i < nextra; i++) e[n + i] = extra[i];
    const char *meta[] = {"format", "pt", NULL};
    int rc = st_write(path, e, n + nextra, meta);
    free(names);
    free(e);
    free(t);
    free(blocks);
    return rc;
}

int dit_model_save(const dit_model *m, const char *path) {
    return dit_weights_save(&m->cfg, &m->w, "backbone.", NULL, 0, path);
}

int dit_config_save(const dit_config *c, const char *path) {
    char buf[512];
    int len = snprintf(buf, sizeof buf,
                       "{\n  \"model_type\": \"%s\",\n  \"vocab_size\": %d,\n  \"hidden_dim\": %d,\n"
                       "  \"n_heads\": %d,\n  \"n_blocks\": %d,\n  \"cond_dim\": %d,\n"
                       "  \"model_length\": %d,\n  \"mask_token_id\": %d,\n"
                       "  \"time_conditioning\": %s\n}\n",
                       c->causal ? "mdlm_ar" : "mdlm", c->vocab_size, c->hidden, c->n_heads,
                       c->n_blocks, c->cond_dim, c->model_length, c->mask_id,
                       c->time_conditioning ? "true" : "false");
    return sm_write_file_atomic(path, buf, (size_t)len);
}

/* ---- activations ------------------------------------------------------------------------- */

#define ACT_BUFFERS 15

/* The floats of each dit_acts buffer in the order of the struct, each padded to 64 bytes;
 * saturating (sm_size_mul), so that a size beyond memory cannot wrap around. */
static void acts_sizes(const dit_config *c, int B, int T, int nthreads, size_t sizes[ACT_BUFFERS]) {
    const size_t BT = (size_t)B * (size_t)T, D = (size_t)c->hidden, hd = D / (size_t)c->n_heads;
    const size_t BTD = sm_size_mul(BT, D);
    const size_t s[ACT_BUFFERS] = {BTD, BTD, sm_size_mul(BTD, 3), BTD, BTD, sm_size_mul(BTD, 4),
                                   attention_scratch_floats(T, nthreads), (size_t)B * 256,
                                   (size_t)B * c->cond_dim, (size_t)B * c->cond_dim,
                                   (size_t)B * (6 * D * (size_t)c->n_blocks + 2 * D),
                                   (size_t)T * hd / 2, (size_t)T * hd / 2, BTD,
                                   /* the second qkv buffer of the by-rows schedule, which
                                      a per-canvas forward picks for one canvas's shape */
                                   dit_forward_by_rows(c, 1, T) ? sm_size_mul(BTD, 3) : 0};
    for (int i = 0; i < ACT_BUFFERS; i++) sizes[i] = sm_size_align(s[i], 16);
}

size_t dit_acts_bytes(const dit_config *c, int B, int T, int nthreads) {
    size_t sizes[ACT_BUFFERS], total = 0;
    acts_sizes(c, B, T, nthreads, sizes);
    for (int i = 0; i < ACT_BUFFERS; i++) total = sm_size_add(total, sizes[i]);
    return sm_size_mul(total, sizeof(float));
}

int dit_acts_alloc(dit_acts *a, const dit_config *c, int B, int T, int nthreads) {
    memset(a, 0, sizeof *a);
    if (SM_CHECK_MEMORY(dit_acts_bytes(c, B, T, nthreads),
                        "the activations of %d × %d positions (%d threads)", B, T, nthreads))
        return -1;
    a->B = B;
    a->T = T;
    a->nthreads = nthreads;
    size_t sizes[ACT_BUFFERS];
    acts_sizes(c, B, T, nthreads, sizes);
    float **slots[ACT_BUFFERS] = {&a->x, &a->h, &a->qkv, &a->att, &a->proj, &a->mlp, &a->scores,
                                  &a->temb, &a->c1, &a->c, &a->mod, &a->rope_cos, &a->rope_sin,
                                  &a->rows, &a->qkv_alt};
    a->mem = sm_aligned_alloc(dit_acts_bytes(c, B, T, nthreads));
    size_t off = 0;
    for (int i = 0; i < ACT_BUFFERS; i++) {
        *slots[i] = a->mem + off;
        off += sizes[i];
    }
    if (!sizes[ACT_BUFFERS - 1]) a->qkv_alt = NULL;
    rope_tables(a->rope_cos, a->rope_sin, T, (int)c->hidden / c->n_heads, 10000.0f);
    return 0;
}

void dit_acts_free(dit_acts *a) {
    free(a->mem);
    memset(a, 0, sizeof *a);
}

/* ---- forward --------------------------------------------------------------------------- */

void dit_embedding_row(const dit_model *m, int32_t id, float *out) {
    SM_ASSERT(id >= 0 && id < m->cfg.vocab_size);
    const size_t D = (size_t)m->cfg.hidden, bytes = D * sizeof(float);
    if (m->embed_fd >= 0) {
        uint64_t off = m->embed_offset + (uint64_t)id * bytes;
        if (pread(m->embed_fd, out, bytes, (off_t)off) == (ssize_t)bytes) return;
    }
    memcpy(out, m->w.embed + (size_t)id * D, bytes);
}

void dit_embed_ids(const dit_model *m, dit_acts *a, const int32_t *ids, int B, int T) {
    const size_t D = (size_t)m->cfg.hidden;
    for (size_t i = 0; i < (size_t)B * T; i++) dit_embedding_row(m, ids[i], a->x + i * D);
}

void dit_embed_rows(void *m, const int32_t *ids, int n, float *out) {
    const dit_model *dm = m;
    const size_t D = (size_t)dm->cfg.hidden;
    for (int i = 0; i < n; i++) dit_embedding_row(dm, ids[i], out + (size_t)i * D);
}

/* matmul_forward on `groups` × `rows` rows: group by group with a->per_canvas, else at once. */
static void grouped_matmul(const dit_acts *a, float *out, const float *inp, const float *w,
                           const float *bias, int groups, int rows, int in, int out_dim) {
    if (!a->per_canvas) {
        matmul_forward(out, inp, w, bias, groups * rows, in, out_dim);
        return;
    }
    for (int g = 0; g < groups; g++)
        matmul_forward(out + (size_t)g * rows * out_dim, inp + (size_t)g * rows * in, w, bias, rows,
                       in, out_dim);
}

/* c = SiLU(W2·SiLU(W0·temb(σ) + b0) + b2); σ = 0 without time conditioning. */
static void conditioning_forward(const dit_model *m, dit_acts *a, const float *sigma, int B) {
    const int C = m->cfg.cond_dim;
    for (int b = 0; b < B; b++)
        timestep_embedding(a->temb + (size_t)b * 256, m->cfg.time_conditioning ? sigma[b] : 0.0f);
    grouped_matmul(a, a->c1, a->temb, m->w.sigma_w0, m->w.sigma_b0, B, 1, 256, C);
    silu_forward(a->c1, (size_t)B * C);
    grouped_matmul(a, a->c, a->c1, m->w.sigma_w2, m->w.sigma_b2, B, 1, C, C);
    silu_forward(a->c, (size_t)B * C);
}

/* The adaLN modulation of block l, (B, 6D) per canvas: shift1 scale1 gate1 shift2 scale2
 * gate2; after the n_blocks blocks' come the final layer's (B, 2D). */
static float *block_mod(const dit_model *m, const dit_acts *a, int l, int B) {
    return a->mod + (size_t)l * B * 6 * m->cfg.hidden;
}

/* Every modulation of the forward, computed before the blocks run. */
static void modulations_forward(const dit_model *m, dit_acts *a, int B) {
    const int D = m->cfg.hidden, C = m->cfg.cond_dim, L = m->cfg.n_blocks;
    for (int l = 0; l < L; l++)
        grouped_matmul(a, block_mod(m, a, l, B), a->c, m->w.blocks[l].ada_w, m->w.blocks[l].ada_b,
                       B, 1, C, 6 * D);
    grouped_matmul(a, block_mod(m, a, L, B), a->c, m->w.final_ada_w, m->w.final_ada_b, B, 1, C,
                   2 * D);
}

/* One operation after the other, each spread over the threads (large shapes). */
static void block_forward(const dit_model *m, const dit_block *blk, const float *mod, dit_acts *a,
                          int B, int T) {
    const int D = m->cfg.hidden, H = m->cfg.n_heads, hd = D / H, N = B * T;
    layernorm_modulate_forward(a->h, a->x, blk->norm1, mod, mod + D, 6 * D, B, T, D);
    grouped_matmul(a, a->qkv, a->h, blk->attn_qkv, NULL, B, T, D, 3 * D);
    rope_forward(a->qkv, a->rope_cos, a->rope_sin, B, T, H, hd);
    attention_forward(a->att, a->qkv, a->scores, B, T, H, hd, m->cfg.causal);
    grouped_matmul(a, a->proj, a->att, blk->attn_out, NULL, B, T, D, D);
    gated_residual_forward(a->x, a->proj, mod + 2 * D, 6 * D, B, T, D);
    layernorm_modulate_forward(a->h, a->x, blk->norm2, mod + 3 * D, mod + 4 * D, 6 * D, B, T, D);
    grouped_matmul(a, a->mlp, a->h, blk->mlp0_w, blk->mlp0_b, B, T, D, 4 * D);
    gelu_tanh_forward(a->mlp, (size_t)N * 4 * D);
    grouped_matmul(a, a->proj, a->mlp, blk->mlp2_w, blk->mlp2_b, B, T, 4 * D, D);
    gated_residual_forward(a->x, a->proj, mod + 5 * D, 6 * D, B, T, D);
}

/* ---- the forward of small shapes: one parallel region, each thread its own rows ----------
 * Below SMALL_FORWARD_ND2 (B·T·D², about 1 ms of products per block) the per-operation
 * schedule spends more on starting and joining threads than on arithmetic, and on a loaded
 * machine each join can wait a whole time slice. Here every thread takes a fixed share of the
 * B·T rows and runs each block's position-wise operations on them alone (their products
 * single-threaded, gemm.h), including attention for its own query rows; the threads meet
 * once per block, before attention, which reads every position's keys and values. Each
 * row's arithmetic is that of the other schedule, except that a product's last bits can
 * depend on how many rows one call holds (OpenBLAS picks its kernels by size): on OpenBLAS's
 * AVX-512 kernels the default model and the tiny/tiny-tc fixtures at 2 threads keep the
 * per-operation bits (scripts/compare_builds.sh, tests/test_dit.c), the 32-wide tiny-causal
 * fixture does not (last bits), at 1 or 2 threads — so one thread, with no joins to save,
 * keeps the per-operation schedule (NOTES.md "Compute"). */
#define SMALL_FORWARD_ND2 (1 << 24)

/* The rows r … r1 − 1 of the B·T positions that lie in r's canvas. */
typedef struct {
    int b, t0, n; /* canvas b, positions t0 … t0 + n − 1 */
    size_t row;   /* b·T + t0 */
} row_piece;

static row_piece piece_at(int r, int r1, int T) {
    row_piece p = {r / T, r % T, 0, (size_t)r};
    p.n = T - p.t0 < r1 - r ? T - p.t0 : r1 - r;
    return p;
}

/* Thread id's rows (of nt) as pieces into out (room for B + 1), their number returned: a share
 * of all B·T rows, or with a->per_canvas B of the B·nt pieces that cut each canvas as it is
 * cut when it runs alone (piece j of canvas b is number b·nt + j), so that a canvas's products
 * hold the rows they hold alone (a batch changes no sample's bits). When nt divides B, each
 * thread holds whole canvases (and forward_by_rows skips the barrier before attention). */
static int thread_pieces(const dit_acts *a, int B, int T, int id, int nt, row_piece *out) {
    int n = 0;
    if (a->per_canvas) {
        for (int q = B * id; q < B * (id + 1); q++) {
            const int b = q / nt, j = q % nt;
            row_piece p = piece_at(b * T + (int)((long)T * j / nt),
                                   b * T + (int)((long)T * (j + 1) / nt), T);
            if (p.n > 0) out[n++] = p;
        }
        return n;
    }
    const int N = B * T, r0 = (int)((long)N * id / nt), r1 = (int)((long)N * (id + 1) / nt);
    for (row_piece p = piece_at(r0, r1, T); p.n > 0; p = piece_at((int)p.row + p.n, r1, T)) out[n++] = p;
    return n;
}

static void piece_before_attention(const dit_model *m, const dit_block *blk, const float *mod,
                                   dit_acts *a, float *qkv_all, row_piece p) {
    const int D = m->cfg.hidden, H = m->cfg.n_heads, hd = D / H;
    const float *mb = mod + (size_t)p.b * 6 * D;
    float *h = a->h + p.row * D, *qkv = qkv_all + p.row * 3 * D;
    layernorm_modulate_forward(h, a->x + p.row * D, blk->norm1, mb, mb + D, 6 * D, 1, p.n, D);
    matmul_forward(qkv, h, blk->attn_qkv, NULL, p.n, D, 3 * D);
    rope_forward(qkv, a->rope_cos + (size_t)p.t0 * (hd / 2), a->rope_sin + (size_t)p.t0 * (hd / 2),
                 1, p.n, H, hd);
}

/* Non-causal attention of the piece's queries over their whole canvas, every head; S holds
 * the thread's p.n × T scores. */
static void piece_attention(const dit_model *m, dit_acts *a, const float *qkv, float *S,
                            row_piece p) {
    const int D = m->cfg.hidden, H = m->cfg.n_heads, hd = D / H, ld = 3 * D, T = a->T;
    const float *canvas = qkv + (size_t)p.b * T * ld;
    for (int h = 0; h < H; h++)
        attention_head(a->att + p.row * D + (size_t)h * hd, S, qkv + p.row * ld + (size_t)h * hd,
                       canvas + D + (size_t)h * hd, canvas + 2 * D + (size_t)h * hd, p.n, T, hd,
                       ld, ld, D, 0);
}

static void piece_after_attention(const dit_model *m, const dit_block *blk, const float *mod,
                                  dit_acts *a, row_piece p) {
    const int D = m->cfg.hidden;
    const float *mb = mod + (size_t)p.b * 6 * D;
    float *x = a->x + p.row * D, *h = a->h + p.row * D, *proj = a->proj + p.row * D;
    float *mlp = a->mlp + p.row * 4 * D;
    matmul_forward(proj, a->att + p.row * D, blk->attn_out, NULL, p.n, D, D);
    gated_residual_forward(x, proj, mb + 2 * D, 6 * D, 1, p.n, D);
    layernorm_modulate_forward(h, x, blk->norm2, mb + 3 * D, mb + 4 * D, 6 * D, 1, p.n, D);
    matmul_forward(mlp, h, blk->mlp0_w, blk->mlp0_b, p.n, D, 4 * D);
    gelu_tanh_forward(mlp, (size_t)p.n * 4 * D);
    matmul_forward(proj, mlp, blk->mlp2_w, blk->mlp2_b, p.n, 4 * D, D);
    gated_residual_forward(x, proj, mb + 5 * D, 6 * D, 1, p.n, D);
}

/* The output layer for nout rows: logits[q] = h[rows[q]]·Wᵀ + b (row q itself without a
 * list). */
static void output_rows(const dit_model *m, dit_acts *a, const int32_t *rows, int nout,
                        float *logits) {
    const int D = m->cfg.hidden, V = m->cfg.vocab_size, T = a->T;
    if (nout == 0) return;
    if (!rows) {
        grouped_matmul(a, logits, a->h, m->w.out_w, m->w.out_b, nout / T, T, D, V);
        return;
    }
    for (int q = 0; q < nout; q++)
        memcpy(a->rows + (size_t)q * D, a->h + (size_t)rows[q] * D, sizeof(float) * (size_t)D);
    /* per canvas: the run of gathered rows of each canvas (rows ascend) */
    for (int r0 = 0, r1; r0 < nout; r0 = r1) {
        r1 = a->per_canvas ? r0 + 1 : nout;
        while (r1 < nout && rows[r1] / T == rows[r0] / T) r1++;
        matmul_forward(logits + (size_t)r0 * V, a->rows + (size_t)r0 * D, m->w.out_w, m->w.out_b,
                       r1 - r0, D, V);
    }
}

/* The blocks and the final norm in one parallel region. (The output layer stays one
 * threaded product: split by rows, its last bits would depend on the split.) */
static void forward_by_rows(const dit_model *m, dit_acts *a, int B, int T) {
    const int D = m->cfg.hidden, H = m->cfg.n_heads, L = m->cfg.n_blocks;
    const float *fmod = block_mod(m, a, L, B);
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        SM_ASSERT(nt <= a->nthreads); /* one T·T slot of a->scores per thread */
        row_piece pieces[B + 1];
        const int np = thread_pieces(a, B, T, id, nt, pieces);
        /* With a second qkv buffer (alternate blocks write alternate buffers) a thread that
         * runs ahead into the next block cannot overwrite the keys and values another thread
         * is still reading, and each thread attends for its own query rows: one barrier per
         * block, none when every thread holds whole canvases (it attends over keys and values
         * it computed itself). Causal attention (and a forced schedule without the buffer)
         * share the heads and meet after attention too. */
        const int own_queries = a->qkv_alt && !m->cfg.causal;
        const int shares_canvases = !a->per_canvas || B % nt != 0;
        float *S = a->scores + (size_t)id * T * T;
        for (int l = 0; l < L; l++) {
            const dit_block *blk = &m->w.blocks[l];
            const float *mod = block_mod(m, a, l, B);
            float *qkv = a->qkv_alt && (l & 1) ? a->qkv_alt : a->qkv;
            for (int i = 0; i < np; i++) piece_before_attention(m, blk, mod, a, qkv, pieces[i]);
            if (!own_queries || shares_canvases) {
#pragma omp barrier
            }
            if (own_queries)
                for (int i = 0; i < np; i++) piece_attention(m, a, qkv, S, pieces[i]);
            else
                attention_heads(a->att, qkv, a->scores, B, T, H, D / H, m->cfg.causal);
            for (int i = 0; i < np; i++) piece_after_attention(m, blk, mod, a, pieces[i]);
        }
        for (int i = 0; i < np; i++) {
            const row_piece p = pieces[i];
            const float *mb = fmod + (size_t)p.b * 2 * D;
            layernorm_modulate_forward(a->h + p.row * D, a->x + p.row * D, m->w.final_norm, mb,
                                       mb + D, 2 * D, 1, p.n, D);
        }
    }
}

int dit_forward_by_rows(const dit_config *c, int B, int T) {
    return (double)B * T * c->hidden * c->hidden <= SMALL_FORWARD_ND2;
}

/* Hidden states, then (logits != NULL) the logits of nout rows (all B·T when rows is NULL). */
static void forward(const dit_model *m, dit_acts *a, const float *sigma, int B, int T,
                    const int32_t *rows, int nout, float *logits) {
    SM_ASSERT(B <= a->B && T == a->T);
    const int D = m->cfg.hidden, L = m->cfg.n_blocks;
    for (int r = 0; rows && r < nout; r++) SM_ASSERT(rows[r] >= 0 && rows[r] < B * T);
    conditioning_forward(m, a, sigma, B);
    modulations_forward(m, a, B);
    /* one thread: no joins to save, and the per-operation products keep their bits; per
       canvas, the choice is a canvas's, so that a batch runs each canvas as it runs alone */
    const int by_rows = a->schedule == DIT_SCHEDULE_AUTO
                            ? omp_get_max_threads() > 1 &&
                                  dit_forward_by_rows(&m->cfg, a->per_canvas ? 1 : B, T)
                            : a->schedule == DIT_SCHEDULE_ROWS;
    if (by_rows) {
        forward_by_rows(m, a, B, T);
    } else {
        for (int l = 0; l < L; l++)
            block_forward(m, &m->w.blocks[l], block_mod(m, a, l, B), a, B, T);
        const float *fmod = block_mod(m, a, L, B);
        layernorm_modulate_forward(a->h, a->x, m->w.final_norm, fmod, fmod + D, 2 * D, B, T, D);
    }
    if (logits) output_rows(m, a, rows, nout, logits);
}

void dit_forward_hidden(const dit_model *m, dit_acts *a, const float *sigma, int B, int T) {
    forward(m, a, sigma, B, T, NULL, 0, NULL);
}

void dit_forward_embedded(const dit_model *m, dit_acts *a, const float *sigma, int B, int T,
                          const int32_t *rows, int nrows, float *logits) {
    forward(m, a, sigma, B, T, rows, rows ? nrows : B * T, logits);
}

void dit_forward(const dit_model *m, dit_acts *a, const int32_t *ids, const float *sigma, int B,
                 int T, float *logits) {
    dit_embed_ids(m, a, ids, B, T);
    dit_forward_embedded(m, a, sigma, B, T, NULL, 0, logits);
}

double dit_forward_flops(const dit_config *c, int B, int T) {
    double N = (double)B * T, D = c->hidden, V = c->vocab_size;
    double per_block = 2.0 * N * (3 * D * D + D * D + 8 * D * D) /* qkv, out, mlp */
                       + 2.0 * 2.0 * (double)B * T * (c->causal ? T / 2.0 : T) * D; /* QKᵀ, PV */
    return c->n_blocks * per_block + 2.0 * N * D * V;
}

int dit_subs_row(float *row, int V, int mask_id) {
    row[mask_id] += SUBS_NEG_INF;
    return log_softmax_row(row, V);
}
