/* cmd_bench.c — `smdlm bench forward`: tokens/s, GFLOP/s and peak RSS of the full-canvas
 * forward, its share of the measured fp32 FMA limit (compute/peak.h) and the sgemm GFLOP/s at
 * the same thread count, and the cost of building a soft-masked input for the whole canvas;
 * `bench peak`: the processor and its arithmetic limits. A benchmark, not a test: quote
 * ratios. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "common.h"
#include "compute/cpu.h"
#include "compute/gemm.h"
#include "compute/peak.h"
#include "models/model.h"
#include "compute/kernels.h"
#include "formats/npy.h"
#include "train/optim.h"
#include "train/train.h"
#include "base/rng.h"
#include "base/util.h"

typedef struct {
    const char *name;
    dit_config cfg;
} shape_preset;

static const shape_preset k_shapes[] = {
    /* kuleshov-group/mdlm-owt: 169,627,218 parameters */
    {"mdlm-small", {50258, 768, 12, 12, 128, 1024, 50257, 0, 0}},
    {"mdlm-medium", {50258, 1024, 16, 24, 128, 1024, 50257, 0, 0}},
    {"tiny", {258, 64, 4, 2, 32, 128, 257, 0, 0}},
    /* the training benchmark's small config */
    {"train-small", {4096, 256, 4, 6, 128, 256, 4095, 0, 0}},
};


/* Uniform(−a, a) weights with a = 1/√fan_in; norms around 1; small adaLN. */
static void fill_random(dit_model *m, uint64_t seed) {
    int n = dit_param_count(&m->cfg);
    dit_param *t = sm_malloc(sizeof *t * (size_t)n);
    dit_param_table(&m->cfg, &m->w, t);
    sm_rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        float a = t[i].ndim == 2 ? 1.0f / sqrtf((float)t[i].shape[1]) : 0.05f;
        float base = strstr(t[i].name, "norm") ? 1.0f : 0.0f;
        if (strstr(t[i].name, "adaLN")) a *= 0.5f;
        float *p = *t[i].slot;
        for (size_t j = 0; j < t[i].numel; j++) p[j] = base + a * (float)(2.0 * rng_uniform(&r) - 1.0);
    }
    free(t);
}

static int save_model_dir(const dit_model *m, const char *dir) {
    mkdir(dir, 0755);
    char *cfg_path = sm_path_join(dir, "config.json"), *w_path = sm_path_join(dir, "model.safetensors");
    int rc = dit_config_save(&m->cfg, cfg_path);
    if (!rc) rc = dit_model_save(m, w_path);
    free(cfg_path);
    free(w_path);
    return rc;
}

/* The model to measure: a directory, or a synthetic preset (optionally saved). */
static int bench_model(const char *model, const char *shape, uint64_t seed, const char *save,
                       model_dir *md) {
    memset(md, 0, sizeof *md);
    if (model) return model_dir_load(md, model, 0);
    const shape_preset *p = NULL;
    for (size_t i = 0; i < sizeof k_shapes / sizeof *k_shapes; i++)
        if (!strcmp(shape, k_shapes[i].name)) p = &k_shapes[i];
    if (!p) return SM_ERR("unknown shape '%s' (mdlm-small, mdlm-medium, tiny, train-small)", shape);
    dit_model_alloc(&md->net, &p->cfg);
    fill_random(&md->net, seed);
    return save ? save_model_dir(&md->net, save) : 0;
}

static double sgemm_gflops(int n, int reps) {
    float *a = sm_aligned_alloc(sizeof(float) * (size_t)n * n);
    float *b = sm_aligned_alloc(sizeof(float) * (size_t)n * n);
    float *c = sm_aligned_alloc(sizeof(float) * (size_t)n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 1e-3f * (float)(i % 97);
    gemm_f32(GEMM_NOTRANS, GEMM_TRANS, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = sm_time_sec();
        gemm_f32(GEMM_NOTRANS, GEMM_TRANS, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * (double)n / (sm_time_sec() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static int bench_forward(int argc, char **argv) {
    const char *model = NULL, *shape = NULL, *save = NULL, *logits_out = NULL;
    int len = 0, batch = 1, iters = 3, warmup = 1, threads = default_threads(), json = 0;
    uint64_t seed = 1;
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "model directory"},
        {"shape", 0, OPT_STR, &shape, 0, 0, "NAME", "synthetic random model: mdlm-small, mdlm-medium, tiny"},
        {"len", 'l', OPT_INT, &len, 1, 1 << 20, "T", "canvas length (default: the model's length)"},
        {"batch", 'b', OPT_INT, &batch, 1, 1024, "B", "batch size (default 1)"},
        {"iters", 0, OPT_INT, &iters, 1, 10000, "N", "timed forwards (default 3)"},
        {"warmup", 0, OPT_INT, &warmup, 0, 100, "N", "untimed forwards first (default 1)"},
        {"seed", 0, OPT_U64, &seed, 0, 0, "N", "seed of the synthetic weights and ids"},
        {"save-model", 0, OPT_STR, &save, 0, 0, "DIR", "write the synthetic model as a model directory"},
        {"save-logits", 0, OPT_STR, &logits_out, 0, 0, "FILE.npy", "write the ids' logits (and FILE.ids.npy)"},
        {"json", 0, OPT_FLAG, &json, 0, 0, "", "one JSON line instead of text"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"bench forward", "Throughput, GFLOP/s and peak memory of the forward pass.",
                       "(-m DIR | --shape NAME) [--len T] [--batch B] [-t N]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!model == !shape) {
        fprintf(stderr, "smdlm bench forward: give exactly one of -m DIR or --shape NAME\n");
        return 1;
    }
    kernels_set_threads(threads);
    model_dir md;
    if (bench_model(model, shape, seed, save, &md)) return cli_fail("bench");
    const dit_config *c = &md.net.cfg;
    if (!len) len = c->model_length;
    if (len > c->model_length) {
        fprintf(stderr, "smdlm bench forward: --len %d exceeds the model's length %d\n", len, c->model_length);
        model_dir_free(&md);
        return 1;
    }
    const size_t BT = (size_t)batch * len;
    if (SM_CHECK_MEMORY(sm_size_add(sm_size_mul(BT * (size_t)c->vocab_size, sizeof(float)),
                                    dit_acts_bytes(c, batch, len, threads)),
                        "a forward of %d × %d positions with its logits", batch, len)) {
        model_dir_free(&md);
        return cli_fail("bench");
    }
    int32_t *ids = sm_malloc(sizeof(int32_t) * BT);
    sm_rng r;
    rng_seed(&r, seed + 1);
    for (size_t i = 0; i < BT; i++) ids[i] = (int32_t)(rng_next(&r) % (uint64_t)(c->vocab_size - 1));
    float *sigma = sm_calloc((size_t)batch, sizeof(float));
    float *logits = sm_aligned_alloc(sizeof(float) * BT * (size_t)c->vocab_size);
    dit_acts acts;
    if (dit_acts_alloc(&acts, c, batch, len, threads)) return cli_fail("bench");
    for (int i = 0; i < warmup; i++) dit_forward(&md.net, &acts, ids, sigma, batch, len, logits);
    double best = INFINITY, total = 0;
    for (int i = 0; i < iters; i++) {
        double t0 = sm_time_sec();
        dit_forward(&md.net, &acts, ids, sigma, batch, len, logits);
        double dt = sm_time_sec() - t0;
        total += dt;
        if (dt < best) best = dt;
    }
    size_t rss = sm_peak_rss_bytes();
    if (logits_out) {
        int64_t shp[3] = {batch, len, c->vocab_size};
        char *ids_path = sm_malloc(strlen(logits_out) + 16);
        sprintf(ids_path, "%s.ids.npy", logits_out);
        if (npy_write(logits_out, NPY_F4, 3, shp, logits) || npy_write(ids_path, NPY_I4, 2, shp, ids)) {
            free(ids_path);
            return cli_fail("bench");
        }
        free(ids_path);
    }
    /* soft-masked input for a fully masked canvas fed back from this forward (worst case) */
    int32_t *masked = sm_malloc(sizeof(int32_t) * BT);
    for (size_t i = 0; i < BT; i++) masked[i] = c->mask_id;
    sm_feedback *fb = sm_malloc(sizeof(sm_feedback) * BT);
    sm_params smp;
    sm_params_default(&smp);
    smp.scale = 0.5f;
    double sm_time = INFINITY; /* best of `iters`, as the forward */
    for (int i = 0; i < iters; i++) {
        double t0 = sm_time_sec();
        sm_feedback_canvas(&smp, masked, batch, len, c->mask_id, logits, c->vocab_size, 0, fb, NULL);
        dit_embed_ids(&md.net, &acts, masked, batch, len);
        sm_mix_inputs(acts.x, c->hidden, BT, masked, c->mask_id, c->vocab_size, &smp, fb,
                      dit_embed_rows, &md.net);
        double dt = sm_time_sec() - t0;
        if (dt < sm_time) sm_time = dt;
    }
    double flops = dit_forward_flops(c, batch, len);
    double sgemm = sgemm_gflops(2048, 3), limit = peak_fp32_gflops(threads);
    double weights = (double)dit_param_numel(c) * 4.0;
    double gflops = flops / best / 1e9;
    if (json)
        printf("{\"bench\":\"forward\",\"B\":%d,\"T\":%d,\"threads\":%d,\"simd\":\"%s\",\"isa\":\"%s\",\"blas_core\":\"%s\",\"best_s\":%.6f,"
               "\"mean_s\":%.6f,\"tokens_per_s\":%.2f,\"gflops\":%.2f,\"fma_limit_gflops\":%.2f,"
               "\"limit_fraction\":%.4f,\"sgemm_gflops\":%.2f,\"peak_rss_bytes\":%zu,\"weights_bytes\":%.0f,"
               "\"rss_over_weights\":%.4f,\"sm_input_s\":%.6f,\"sm_fraction\":%.4f}\n",
               batch, len, threads, kernels_simd_level(), cpu_isa_name(cpu_isa_active()), gemm_provider_core(),
               best, total / iters, BT / best, gflops, limit, gflops / limit, sgemm, rss, weights,
               rss / weights, sm_time, sm_time / best);
    else
        printf("forward B=%d T=%d threads=%d simd=%s isa=%s gemm=%s (%s)\n"
               "  time        best %.3f s, mean %.3f s over %d\n"
               "  throughput  %.1f tokens/s, %.1f GFLOP/s (%.1f GFLOP per forward)\n"
               "  limit       fp32 FMA %.1f GFLOP/s (measured, same threads) -> forward at %.0f%% of it\n"
               "  sgemm       %.1f GFLOP/s (2048³, same threads) = %.0f%% of the limit\n"
               "  memory      peak RSS %.1f MiB, weights %.1f MiB (%.2f×)\n"
               "  soft-mask   input for a fully masked canvas %.1f ms (%.1f%% of a forward)\n",
               batch, len, threads, kernels_simd_level(), cpu_isa_name(cpu_isa_active()),
               gemm_provider_name(), gemm_provider_core(), best, total / iters, iters, BT / best,
               gflops, flops / 1e9, limit, 100.0 * gflops / limit, sgemm, 100.0 * sgemm / limit,
               rss / 1048576.0, weights / 1048576.0, rss / weights, sm_time * 1e3, 100.0 * sm_time / best);
    free(masked);
    free(fb);
    dit_acts_free(&acts);
    free(logits);
    free(sigma);
    free(ids);
    model_dir_free(&md);
    return 0;
}

/* Best seconds of `iters` training steps (loss, backward, AdamW) after `warmup`: the
 * minimum, as the shared machines are noisy. */
static double time_steps(trainer *tr, adamw *opt, const train_batch *b, int sm, int warmup,
                         int iters, double *loss) {
    double best = INFINITY;
    for (int i = 0; i < warmup + iters; i++) {
        double t0 = sm_time_sec();
        *loss = trainer_step(tr, b, sm);
        adamw_step(opt);
        double dt = sm_time_sec() - t0;
        if (i >= warmup && dt < best) best = dt;
    }
    return best;
}

static int bench_train(int argc, char **argv) {
    const char *model = NULL, *shape = "train-small", *save = NULL;
    int batch = 16, len = 0, iters = 5, warmup = 1, threads = default_threads(), json = 0;
    uint64_t seed = 1;
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "model directory"},
        {"shape", 0, OPT_STR, &shape, 0, 0, "NAME", "synthetic random model (default train-small)"},
        {"len", 'l', OPT_INT, &len, 2, 1 << 20, "T", "sequence length (default: the model's length)"},
        {"batch", 'b', OPT_INT, &batch, 1, 4096, "B", "batch size (default 16)"},
        {"iters", 0, OPT_INT, &iters, 1, 10000, "N", "timed steps of each kind, best reported (default 5)"},
        {"warmup", 0, OPT_INT, &warmup, 0, 100, "N", "untimed steps first (default 1)"},
        {"seed", 0, OPT_U64, &seed, 0, 0, "N", "seed of the synthetic weights and the batch"},
        {"save-model", 0, OPT_STR, &save, 0, 0, "DIR", "write the synthetic model as a model directory"},
        {"json", 0, OPT_FLAG, &json, 0, 0, "", "one JSON line instead of text"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"bench train", "Time of a training step (forward, backward, AdamW), plain and two-pass soft-masked.",
                       "[-m DIR | --shape NAME] [--batch B] [--len T] [-t N]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    kernels_set_threads(threads);
    model_dir md;
    if (bench_model(model, model ? NULL : shape, seed, save, &md)) return cli_fail("bench");
    const dit_config *c = &md.net.cfg;
    if (!len) len = c->model_length;
    if (len > c->model_length) {
        model_dir_free(&md);
        fprintf(stderr, "smdlm bench train: --len %d exceeds the model's length %d\n", len, c->model_length);
        return 1;
    }
    const size_t BT = (size_t)batch * len;
    int32_t *x0 = sm_malloc(sizeof(int32_t) * BT), *xt = sm_malloc(sizeof(int32_t) * BT);
    float *t = sm_malloc(sizeof(float) * (size_t)batch);
    sm_rng r;
    rng_seed(&r, seed + 1);
    for (size_t i = 0; i < BT; i++) x0[i] = (int32_t)(rng_next(&r) % (uint64_t)(c->vocab_size - 1));
    mdlm_noise_batch(&r, x0, xt, t, batch, len, c->mask_id);
    trainer tr;
    const int ok = trainer_init(&tr, &md.net, batch, len, threads) == 0;
    model_dir_free(&md);
    if (!ok) {
        free(x0), free(xt), free(t);
        return cli_fail("bench");
    }
    optim_config oc;
    optim_config_default(&oc);
    optim_group groups[2] = {{tr.model.owned, tr.grads.owned, tr.nparams, 3e-4f, 0.0f},
                             {&tr.sm.raw_scale, tr.sm_grad, 3, 1e-2f, 0.0f}};
    adamw opt;
    adamw_init(&opt, &oc, groups, 2);
    train_batch b = {xt, x0, t};
    double loss_plain = 0, loss_sm = 0;
    double plain = time_steps(&tr, &opt, &b, 0, warmup, iters, &loss_plain);
    double sm = time_steps(&tr, &opt, &b, 1, warmup, iters, &loss_sm);
    size_t rss = sm_peak_rss_bytes();
    /* what the shapes say: parameters, gradients, two Adam moments, activations */
    double need = 4.0 * tr.nparams * sizeof(float) + (double)trainer_activation_bytes(&tr);
    if (json)
        printf("{\"bench\":\"train\",\"B\":%d,\"T\":%d,\"threads\":%d,\"blas_core\":\"%s\","
               "\"params\":%zu,\"plain_step_s\":%.6f,\"sm_step_s\":%.6f,\"tokens_per_s\":%.2f,"
               "\"sm_tokens_per_s\":%.2f,\"sm_over_plain\":%.4f,\"loss_plain\":%.6f,\"loss_sm\":%.6f,"
               "\"peak_rss_bytes\":%zu,\"expected_bytes\":%.0f,\"rss_over_expected\":%.4f}\n",
               batch, len, threads, gemm_provider_core(), tr.nparams, plain, sm, BT / plain, BT / sm,
               sm / plain, loss_plain, loss_sm, rss, need, rss / need);
    else
        printf("train step B=%d T=%d threads=%d blas=%s, %.2fM parameters\n"
               "  plain       %.3f s/step, %.1f tokens/s (loss %.4f)\n"
               "  soft-masked %.3f s/step, %.1f tokens/s (loss %.4f), %.2fx a plain step\n"
               "  memory      peak RSS %.1f MiB; parameters + gradients + Adam + activations %.1f MiB (%.2fx)\n",
               batch, len, threads, gemm_provider_core(), tr.nparams / 1e6, plain, BT / plain, loss_plain,
               sm, BT / sm, loss_sm, sm / plain, rss / 1048576.0, need / 1048576.0, rss / need);
    adamw_free(&opt);
    trainer_free(&tr);
    free(x0), free(xt), free(t);
    return 0;
}

/* `bench peak`: the machine, its ISA extensions and the measured arithmetic limit of each
 * instruction kind on 1 and on N threads. */
static int bench_peak(int argc, char **argv) {
    int threads = default_threads(), json = 0;
    double seconds = 0.2;
    cli_opt opts[] = {
        {"json", 0, OPT_FLAG, &json, 0, 0, "", "one JSON line instead of text"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"bench peak", "The processor, its ISA extensions and the measured arithmetic limit "
                       "(register-only loops of fp32 FMA, bf16 and int8 dot products).", "[-t N]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    char desc[160], feats[512];
    cpu_describe(desc, sizeof desc);
    cpu_feature_list(feats, sizeof feats);
    const char *core = gemm_provider_core();
    if (json)
        printf("{\"bench\":\"peak\",\"cpu\":\"%s\",\"features\":\"%s\",\"isa_best\":\"%s\","
               "\"isa_active\":\"%s\",\"gemm\":\"%s\",\"gemm_core\":\"%s\",\"threads\":%d",
               desc, feats, cpu_isa_name(cpu_isa_best()), cpu_isa_name(cpu_isa_active()),
               gemm_provider_name(), core ? core : "", threads);
    else
        printf("cpu       %s\nfeatures  %s\nisa       best %s, active %s\ngemm      %s%s%s\n"
               "limit     %-22s %12s %9d threads\n", desc, feats, cpu_isa_name(cpu_isa_best()),
               cpu_isa_name(cpu_isa_active()), gemm_provider_name(), core ? ", core " : "",
               core ? core : "", "G(FL)OP/s", "1 thread", threads);
    for (peak_kind k = 0; k < PEAK_KINDS; k++) {
        if (!peak_supported(k)) continue;
        double one = peak_measure(k, 1, seconds), all = peak_measure(k, threads, seconds);
        if (json)
            printf(",\"%s\":[%.1f,%.1f]", peak_kind_name(k), one, all);
        else
            printf("          %-22s %12.1f %12.1f\n", peak_kind_name(k), one, all);
    }
    if (json) printf("}\n");
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "forward") && bench_is_transformer(argc - 1, argv + 1))
        return bench_transformer(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "--shape") && bench_is_transformer(argc, argv))
        return bench_transformer(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "forward")) return bench_forward(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "linear")) return bench_linear(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "train")) return bench_train(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "peak")) return bench_peak(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "q8")) return bench_q8(argc - 1, argv + 1);
    fprintf(stderr, "usage: smdlm bench (forward | train | linear | peak | q8) [options]\n");
    return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 1;
}
