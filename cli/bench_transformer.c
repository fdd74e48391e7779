/* bench_transformer.c — `smdlm bench forward --shape dream-0.5b|dream-7b` (or -m DIR of a
 * Dream/LLaDA model): a random bf16 checkpoint of the shape is written once (sharded, with an
 * index, like the real one), then a forward at T = 512 is timed plain and soft-masked, with
 * peak RSS, the machine's sgemm GFLOP/s and its measured fp32 FMA limit at the same thread
 * count. Not a test: quote ratios; the machine is shared.
 * `smdlm bench q8` (same model options): what --quant q8 costs in accuracy, its logits
 * against the model's own weights (fp32 arithmetic) and the greedy tokens' agreement. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "common.h"
#include "compute/gemm.h"
#include "compute/peak.h"
#include "models/model.h"
#include "compute/kernels.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "base/util.h"

typedef struct {
    const char *name;
    int V, D, L, H, KVH, F, tie;
} tf_shape;

static const tf_shape k_tf_shapes[] = {
    {"dream-0.5b", 151936, 896, 24, 14, 2, 4864, 1},    /* Qwen2.5-0.5B dims */
    {"dream-7b", 152064, 3584, 28, 28, 4, 18944, 0},   /* Dream-v0-7B */
};

int bench_is_transformer(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--shape") && !strncmp(argv[i + 1], "dream-", 6)) return 1;
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            model_arch a;
            if (model_dir_arch(argv[i + 1], &a) == 0 && a != MODEL_MDLM) return 1;
        }
    }
    return 0;
}

/* Uniform(−a, a) bf16 with a = 1/√in for matrices, 1 ± 0.05 for norms, ±0.02 for biases;
 * rows in parallel, each from its own seed. */
static void fill_bf16(uint16_t *p, size_t rows, size_t cols, float a, float base, uint64_t seed) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        sm_rng g;
        rng_seed(&g, seed * 1000003u + r);
        for (size_t c = 0; c < cols; c++)
            p[r * cols + c] = st_f32_to_bf16(base + a * (float)(2.0 * rng_uniform(&g) - 1.0));
    }
}

typedef struct {
    char name[96];
    int64_t shape[2];
    int ndim;
} tensor_spec;

static int specs(const tf_shape *s, tensor_spec *t) {
    int n = 0, hd = s->D / s->H;
#define T2(nm, a, b) (snprintf(t[n].name, 96, "%s", nm), t[n].shape[0] = a, t[n].shape[1] = b, t[n++].ndim = 2)
#define T1(nm, a) (snprintf(t[n].name, 96, "%s", nm), t[n].shape[0] = a, t[n++].ndim = 1)
    char b[96];
    T2("model.embed_tokens.weight", s->V, s->D);
    for (int i = 0; i < s->L; i++) {
#define NM(x) (snprintf(b, sizeof b, "model.layers.%d.%s", i, x), b)
        T1(NM("input_layernorm.weight"), s->D);
        T2(NM("self_attn.q_proj.weight"), s->H * hd, s->D);
        T1(NM("self_attn.q_proj.bias"), s->H * hd);
        T2(NM("self_attn.k_proj.weight"), s->KVH * hd, s->D);
        T1(NM("self_attn.k_proj.bias"), s->KVH * hd);
        T2(NM("self_attn.v_proj.weight"), s->KVH * hd, s->D);
        T1(NM("self_attn.v_proj.bias"), s->KVH * hd);
        T2(NM("self_attn.o_proj.weight"), s->D, s->H * hd);
        T1(NM("post_attention_layernorm.weight"), s->D);
        T2(NM("mlp.gate_proj.weight"), s->F, s->D);
        T2(NM("mlp.up_proj.weight"), s->F, s->D);
        T2(NM("mlp.down_proj.weight"), s->D, s->F);
#undef NM
    }
    T1("model.norm.weight", s->D);
    if (!s->tie) T2("lm_head.weight", s->V, s->D);
#undef T1
#undef T2
    return n;
}

/* config.json, shards of ≤ 2 GiB and model.safetensors.index.json, written once. */
static int write_checkpoint(const tf_shape *s, const char *dir) {
    char *cfg_path = sm_path_join(dir, "model.safetensors.index.json");
    int have = sm_file_exists(cfg_path);
    free(cfg_path);
    if (have) return 0;
    fprintf(stderr, "writing a random bf16 %s checkpoint to %s (once)\n", s->name, dir);
    char cfg[1024];
    int len = snprintf(cfg, sizeof cfg,
                       "{\"model_type\": \"Dream\", \"architectures\": [\"DreamModel\"], "
                       "\"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d, "
                       "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
                       "\"num_key_value_heads\": %d, \"rms_norm_eps\": 1e-06, \"rope_theta\": "
                       "1000000.0, \"max_position_embeddings\": 131072, \"tie_word_embeddings\": "
                       "%s, \"mask_token_id\": 151666, \"hidden_act\": \"silu\", "
                       "\"torch_dtype\": \"bfloat16\"}\n",
                       s->V, s->D, s->F, s->L, s->H, s->KVH, s->tie ? "true" : "false");
    char *p = sm_path_join(dir, "config.json");
    int rc = sm_write_file_atomic(p, cfg, (size_t)len);
    free(p);
    if (rc) return -1;
    tensor_spec *t = sm_calloc(16 + 12 * (size_t)s->L, sizeof *t);
    int n = specs(s, t), shard = 0, i = 0;
    size_t idx_cap = 1 << 20, idx_len = 0;
    char *idx = sm_malloc(idx_cap);
    idx_len += (size_t)snprintf(idx, idx_cap, "{\"metadata\": {}, \"weight_map\": {");
    while (i < n && rc == 0) {
        int j = i;
        size_t bytes = 0;
        while (j < n && (j == i || bytes + 2 * (size_t)t[j].shape[0] * (t[j].ndim == 2 ? t[j].shape[1] : 1) <= ((size_t)2 << 30))) {
            bytes += 2 * (size_t)t[j].shape[0] * (t[j].ndim == 2 ? t[j].shape[1] : 1);
            j++;
        }
        st_write_entry *e = sm_calloc((size_t)(j - i), sizeof *e);
        for (int k = i; k < j; k++) {
            size_t rows = (size_t)t[k].shape[0], cols = t[k].ndim == 2 ? (size_t)t[k].shape[1] : 1;
            uint16_t *d = sm_malloc(2 * rows * cols);
            int norm = strstr(t[k].name, "norm") != NULL, bias = strstr(t[k].name, "bias") != NULL;
            if (t[k].ndim == 2)
                fill_bf16(d, rows, cols, 1.0f / sqrtf((float)cols), 0.0f, (uint64_t)k + 1);
            else
                fill_bf16(d, 1, rows, norm ? 0.05f : 0.02f, norm && !bias ? 1.0f : 0.0f, (uint64_t)k + 1);
            e[k - i] = (st_write_entry){t[k].name, ST_BF16, t[k].ndim, {t[k].shape[0], t[k].shape[1]}, d};
        }
        char fn[64], *path;
        snprintf(fn, sizeof fn, "model-%05d.safetensors", ++shard);
        path = sm_path_join(dir, fn);
        static const char *const meta[] = {"format", "pt", NULL};
        rc = st_write(path, e, j - i, meta);
        free(path);
        for (int k = i; k < j; k++) {
            free((void *)e[k - i].data);
            idx_len += (size_t)snprintf(idx + idx_len, idx_cap - idx_len, "%s\"%s\": \"%s\"",
                                        k ? ", " : "", t[k].name, fn);
        }
        free(e);
        i = j;
    }
    idx_len += (size_t)snprintf(idx + idx_len, idx_cap - idx_len, "}}\n");
    if (rc == 0) {
        p = sm_path_join(dir, "model.safetensors.index.json");
        rc = sm_write_file_atomic(p, idx, idx_len);
        free(p);
    }
    free(idx);
    free(t);
    return rc;
}

static double sgemm_peak(int n) {
    float *a = sm_aligned_alloc(sizeof(float) * (size_t)n * n), *c = sm_aligned_alloc(sizeof(float) * (size_t)n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = 1e-3f * (float)(i % 97);
    double best = 0;
    for (int r = 0; r < 4; r++) {
        double t0 = sm_time_sec();
        gemm_f32(GEMM_NOTRANS, GEMM_TRANS, n, n, n, 1, a, n, a, n, 0, c, n);
        double g = 2.0 * n * n * (double)n / (sm_time_sec() - t0) / 1e9;
        if (r && g > best) best = g;
    }
    free(a);
    free(c);
    return best;
}

/* The directory of -m, or of --shape's random checkpoint (in --dir or ~/.cache/smdlm/bench,
 * written when missing) in buf. */
static const char *bench_model(const char *model, const char *shape, const char *dir, char *buf,
                               size_t n) {
    if (model) return model;
    const tf_shape *s = NULL;
    for (size_t i = 0; shape && i < sizeof k_tf_shapes / sizeof *k_tf_shapes; i++)
        if (!strcmp(shape, k_tf_shapes[i].name)) s = &k_tf_shapes[i];
    if (!s) {
        SM_ERR("unknown shape '%s' (dream-0.5b, dream-7b)", shape ? shape : "");
        return NULL;
    }
    if (!dir) {
        const char *home = getenv("HOME");
        snprintf(buf, n, "%s/.cache/smdlm/bench/%s", home ? home : ".", s->name);
        for (char *q = strchr(buf + 1, '/'); q; q = strchr(q + 1, '/')) {
            *q = 0; /* mkdir -p */
            mkdir(buf, 0755);
            *q = '/';
        }
        dir = buf;
    }
    mkdir(dir, 0755);
    return write_checkpoint(s, dir) ? NULL : dir;
}

int bench_transformer(int argc, char **argv) {
    const char *model = NULL, *shape = NULL, *dir = NULL;
    int len = 512, iters = 2, threads = default_threads(), quant = 0;
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "a Dream or LLaDA model directory"},
        {"shape", 0, OPT_STR, &shape, 0, 0, "NAME", "random bf16 checkpoint: dream-0.5b, dream-7b"},
        {"dir", 0, OPT_STR, &dir, 0, 0, "DIR", "where the random checkpoint lives (default ~/.cache/smdlm/bench/NAME)"},
        {"len", 'l', OPT_INT, &len, 1, TF_MAX_LEN, "T", "canvas length (default 512)"},
        {"iters", 0, OPT_INT, &iters, 1, 1000, "N", "timed forwards of each kind (best is reported; default 2)"},
        {"q8", 0, OPT_FLAG, &quant, 0, 0, "", "int8 projections (--quant q8)"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"bench forward", "Dream/LLaDA forward: steps/s, tokens/s, peak RSS, soft-masking cost.",
                       "(-m DIR | --shape dream-0.5b|dream-7b) [--len T] [-t N]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    kernels_set_threads(threads);
    char buf[512];
    if (!(model = bench_model(model, shape, dir, buf, sizeof buf))) return cli_fail("bench");
    model_dir md;
    if (model_dir_load_any(&md, model, 0)) return cli_fail("bench");
    transformer_model *m = &md.tf;
    const tf_config *c = &m->cfg;
    if (quant && transformer_quantize_q8(m)) return cli_fail("bench");
    const int B = 1, T = len < c->max_len ? len : c->max_len;
    const size_t N = (size_t)B * T, V = c->vocab_size;
    int32_t *ids = sm_malloc(sizeof(int32_t) * N);
    sm_rng r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < N; i++) /* a prompt quarter, the rest masked */
        ids[i] = i < N / 4 ? (int32_t)(rng_next(&r) % (uint64_t)c->mask_id) : c->mask_id;
    float *logits = sm_aligned_alloc(sizeof(float) * N * V);
    sm_feedback *fb = sm_malloc(sizeof *fb * N);
    sm_params sm;
    sm_params_default(&sm);
    sm.k = 1;
    sm.scale = 0.5f;
    double plain = INFINITY, smt = INFINITY, fbt = INFINITY, plain_cpu = INFINITY;
    tf_state s;
    tf_state_init(&s, m);
    for (int it = 0; it < iters && rc == 0; it++) {
        double t0 = sm_time_sec(), c0 = sm_cpu_time_sec();
        rc = transformer_forward(&s, ids, NULL, NULL, NULL, B, T, logits);
        double t1 = sm_time_sec();
        plain_cpu = fmin(plain_cpu, sm_cpu_time_sec() - c0);
        sm_feedback_canvas(&sm, ids, B, T, c->mask_id, logits, (int)V, c->shift, fb, NULL);
        double t2 = sm_time_sec();
        if (!rc) rc = transformer_forward(&s, ids, &sm, fb, NULL, B, T, logits);
        double t3 = sm_time_sec();
        plain = fmin(plain, t1 - t0);
        fbt = fmin(fbt, t2 - t1);
        smt = fmin(smt, t3 - t1);
    }
    if (rc) return cli_fail("bench");
    size_t rss = sm_peak_rss_bytes();
    double flops = transformer_forward_flops(c, B, T), wbytes = (double)transformer_weight_bytes(m);
    double peak = sgemm_peak(2048), limit = peak_fp32_gflops(threads);
    /* q8 runs on int8 dot products: their limit too (0 where vpdpbusd is missing) */
    double int8 = quant ? peak_measure(PEAK_DP_INT8, threads, 0.1) : 0;
    printf("{\"bench\":\"forward\",\"model\":\"%s\",\"T\":%d,\"threads\":%d,\"blas_core\":\"%s\",\"q8\":%d,"
           "\"plain_s\":%.4f,\"plain_cpu_s\":%.4f,\"sm_s\":%.4f,\"sm_feedback_s\":%.4f,\"sm_overhead\":%.4f,"
           "\"steps_per_s\":%.4f,\"tokens_per_s\":%.2f,\"gflops\":%.2f,\"sgemm_gflops\":%.2f,"
           "\"fma_limit_gflops\":%.2f,\"limit_fraction\":%.3f,\"weight_bytes\":%.0f,\"weight_gb_per_s\":%.2f,"
           "\"int8_limit_gops\":%.2f,\"int8_limit_fraction\":%.3f,"
           "\"peak_rss_bytes\":%zu,\"peak_rss_gib\":%.2f}\n",
           shape ? shape : model, T, threads, gemm_provider_core(), quant, plain, plain_cpu, smt, fbt,
           smt / plain - 1.0, 1.0 / plain, N / plain, flops / plain / 1e9, peak,
           limit, flops / plain / 1e9 / limit, wbytes, wbytes / plain / 1e9, int8,
           int8 > 0 ? flops / plain / 1e9 / int8 : 0.0, rss,
           rss / 1073741824.0);
    free(ids);
    free(fb);
    tf_state_free(&s);
    free(logits);
    model_dir_free(&md);
    return 0;
}

/* Errors of q8 logits against the reference's: max |d|, max |d| / max |ref|, ‖d‖ / ‖ref‖, and
 * the rows whose argmax (the greedy token) agrees. */
typedef struct {
    double max_abs, max_rel, rms_rel;
    size_t agree, rows;
} logit_error;

static int row_argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int)best;
}

static logit_error compare_logits(const float *got, const float *ref, size_t rows, size_t V) {
    logit_error e = {0, 0, 0, 0, rows};
    double ref_max = 0, d2 = 0, r2 = 0;
    for (size_t i = 0; i < rows * V; i++) {
        double d = fabs((double)got[i] - ref[i]);
        e.max_abs = fmax(e.max_abs, d);
        ref_max = fmax(ref_max, fabs((double)ref[i]));
        d2 += d * d, r2 += (double)ref[i] * ref[i];
    }
    e.max_rel = ref_max > 0 ? e.max_abs / ref_max : 0;
    e.rms_rel = r2 > 0 ? sqrt(d2 / r2) : 0;
    for (size_t r = 0; r < rows; r++)
        e.agree += row_argmax(got + r * V, V) == row_argmax(ref + r * V, V);
    return e;
}

static void print_error(const char *name, const logit_error *e, int last) {
    printf("\"%s\":{\"max_abs\":%.4g,\"max_rel\":%.4g,\"rms_rel\":%.4g,\"greedy_agree\":%.4f}%s", name,
           e->max_abs, e->max_rel, e->rms_rel, (double)e->agree / (double)e->rows, last ? "" : ",");
}

int bench_q8(int argc, char **argv) {
    const char *model = NULL, *shape = NULL, *dir = NULL;
    int len = 64, threads = default_threads(), batch = 1;
    uint64_t seed = 1;
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "a Dream or LLaDA model directory"},
        {"shape", 0, OPT_STR, &shape, 0, 0, "NAME", "random bf16 checkpoint: dream-0.5b, dream-7b"},
        {"dir", 0, OPT_STR, &dir, 0, 0, "DIR", "where the random checkpoint lives (default ~/.cache/smdlm/bench/NAME)"},
        {"len", 'l', OPT_INT, &len, 1, TF_MAX_LEN, "T", "canvas length (default 64)"},
        {"batch", 'b', OPT_INT, &batch, 1, 64, "B", "canvases (default 1)"},
        {"seed", 0, OPT_U64, &seed, 0, 0, "N", "seed of the canvases"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"bench q8",
                       "Accuracy of --quant q8: logit error and greedy-token agreement against the "
                       "model's own weights, and of q8 weights with fp32 activations.",
                       "(-m DIR | --shape dream-0.5b|dream-7b) [--len T] [-b B] [-t N]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    kernels_set_threads(threads);
    char buf[512];
    if (!(model = bench_model(model, shape, dir, buf, sizeof buf))) return cli_fail("bench q8");
    model_dir md;
    if (model_dir_load_any(&md, model, 0)) return cli_fail("bench q8");
    if (md.arch == MODEL_MDLM) {
        model_dir_free(&md);
        SM_ERR("%s: q8 applies to Dream/LLaDA models, not MDLM", model);
        return cli_fail("bench q8");
    }
    transformer_model *m = &md.tf;
    const tf_config *c = &m->cfg;
    const int B = batch, T = len < c->max_len ? len : c->max_len;
    const size_t N = (size_t)B * T, V = c->vocab_size;
    const char *wname = m->layers[0].q.type == WT_BF16 ? "bf16" : m->layers[0].q.type == WT_F16 ? "f16"
                        : m->layers[0].q.type == WT_Q8  ? "q8"
                                                        : "f32";
    int32_t *ids = sm_malloc(sizeof(int32_t) * N);
    sm_rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < N; i++) /* half the positions masked, the others random tokens */
        ids[i] = rng_uniform(&r) < 0.5 ? c->mask_id : (int32_t)(rng_next(&r) % (uint64_t)c->mask_id);
    float *ref = sm_aligned_alloc(sizeof(float) * N * V), *q8 = sm_aligned_alloc(sizeof(float) * N * V),
          *wonly = sm_aligned_alloc(sizeof(float) * N * V);
    tf_state s;
    tf_state_init(&s, m);
    rc = transformer_forward(&s, ids, NULL, NULL, NULL, B, T, ref);
    if (!rc) rc = transformer_quantize_q8(m);
    if (!rc) rc = transformer_forward(&s, ids, NULL, NULL, NULL, B, T, q8);
    if (!rc) rc = linear_force_path(LINEAR_SGEMM); /* q8 weights, fp32 activations */
    if (!rc) rc = transformer_forward(&s, ids, NULL, NULL, NULL, B, T, wonly);
    linear_force_path(LINEAR_AUTO);
    if (!rc) {
        logit_error eq = compare_logits(q8, ref, N, V), ew = compare_logits(wonly, ref, N, V),
                    ea = compare_logits(q8, wonly, N, V);
        printf("{\"bench\":\"q8\",\"model\":\"%s\",\"weights\":\"%s\",\"B\":%d,\"T\":%d,\"kernel\":\"%s\",",
               shape ? shape : model, wname, B, T, linear_path_name(linear_path_for(WT_Q8, (int)N)));
        print_error("q8_vs_weights", &eq, 0);
        print_error("q8_weights_only_vs_weights", &ew, 0);
        print_error("q8_vs_q8_weights_only", &ea, 1);
        printf("}\n");
    }
    free(ids), free(ref), free(q8), free(wonly);
    tf_state_free(&s);
    model_dir_free(&md);
    return rc ? cli_fail("bench q8") : 0;
}
