/* cmd_forward.c — `smdlm forward`: the contract of docs/DESIGN.md §6. Raw logits (before SUBS) of
 * a batch of ids; with --feedback, soft-masking from an earlier forward's raw logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "model_flags.h"
#include "compute/kernels.h"
#include "formats/npy.h"
#include "models/noise.h"
#include "base/util.h"

/* --t is a number (the same t for every row) or a .npy of B float32 values in (0, 1]. */
static int read_times(const char *arg, int B, float *t) {
    size_t len = strlen(arg);
    if (len > 4 && !strcmp(arg + len - 4, ".npy")) {
        npy_array a;
        if (npy_read(arg, &a)) return -1;
        int ok = a.dtype == NPY_F4 && a.numel == (size_t)B;
        if (ok) memcpy(t, a.data, sizeof(float) * (size_t)B);
        npy_free(&a);
        if (!ok) return SM_ERR("%s: expected %d float32 values (one t per row)", arg, B);
    } else {
        char *end;
        double v = strtod(arg, &end);
        if (end == arg || *end) return SM_ERR("--t '%s' is neither a number nor a .npy file", arg);
        for (int b = 0; b < B; b++) t[b] = (float)v;
    }
    for (int b = 0; b < B; b++)
        if (!(t[b] > 0.0f && t[b] <= 1.0f)) return SM_ERR("t[%d] = %g is outside (0, 1]", b, t[b]);
    return 0;
}

/* SUBS on the masked rows of PREV (in place) and the soft input of IDS into a->x. */
static int feedback_input(const model_dir *md, dit_acts *a, const int32_t *ids, int B, int T,
                          const char *prev_path, const sm_params *sm) {
    const dit_config *c = &md->net.cfg;
    npy_array prev;
    if (npy_read(prev_path, &prev)) return -1;
    if (prev.dtype != NPY_F4 || prev.ndim != 3 || prev.shape[0] != B || prev.shape[1] != T ||
        prev.shape[2] != c->vocab_size) {
        npy_free(&prev);
        return SM_ERR("%s: expected float32 logits of shape [%d, %d, %d]", prev_path, B, T,
                      c->vocab_size);
    }
    float *rows = prev.data;
    const size_t n = (size_t)B * T;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == c->mask_id) dit_subs_row(rows + i * c->vocab_size, c->vocab_size, c->mask_id);
    sm_feedback *fb = sm_malloc(sizeof *fb * n);
    float *probs = sm_feedback_probs_alloc(sm, n, c->vocab_size);
    sm_feedback_canvas(sm, ids, B, T, c->mask_id, rows, c->vocab_size, 0, fb, probs);
    dit_embed_ids(&md->net, a, ids, B, T);
    sm_mix_inputs(a->x, c->hidden, n, ids, c->mask_id, c->vocab_size, sm, fb, dit_embed_rows,
                  (void *)&md->net);
    free(fb);
    free(probs);
    npy_free(&prev);
    return 0;
}

/* Dream / LLaDA: raw logits; --feedback takes an earlier raw output, shifted internally for
 * Dream (transformer_feedback), --quant q8 quantises the projections first. */
static int forward_transformer(model_dir *md, const cli_command *cmd, const sm_flags *smf,
                               const char *ids_path, const char *out_path, const char *feedback,
                               const char *quant) {
    transformer_model *m = &md->tf;
    const tf_config *c = &m->cfg;
    int32_t *ids = NULL;
    float *logits = NULL;
    sm_feedback *fb = NULL;
    float *probs = NULL;
    npy_array prev = {0};
    int B, T, rc = -1;
    sm_params sm;
    size_t nlogits;
    if (quant && strcmp(quant, "q8")) return SM_ERR("--quant '%s': only q8 is supported", quant);
    if (quant && transformer_quantize_q8(m)) return -1;
    if (npy_read_ids(ids_path, c->vocab_size, &ids, &B, &T)) return -1;
    if (T > c->max_len) {
        SM_ERR("%s: %d positions exceed the model's context of %d", ids_path, T, c->max_len);
        goto done;
    }
    if (sm_flags_resolve(cmd, smf, md, &sm)) goto done;
    nlogits = sm_size_mul((size_t)B * T, (size_t)c->vocab_size);
    if (SM_CHECK_MEMORY(sm_size_mul(nlogits, sizeof(float)), "the logits of %d × %d positions "
                        "over %d tokens", B, T, c->vocab_size))
        goto done;
    if (feedback && sm.enabled) {
        if (npy_read(feedback, &prev)) goto done;
        if (prev.dtype != NPY_F4 || prev.ndim != 3 || prev.shape[0] != B || prev.shape[1] != T ||
            prev.shape[2] != c->vocab_size) {
            SM_ERR("%s: expected float32 logits of shape [%d, %d, %d]", feedback, B, T,
                   c->vocab_size);
            goto done;
        }
        fb = sm_malloc(sizeof *fb * (size_t)B * T);
        probs = sm_feedback_probs_alloc(&sm, (size_t)B * T, c->vocab_size);
        sm_feedback_canvas(&sm, ids, B, T, c->mask_id, prev.data, c->vocab_size, c->shift, fb,
                           probs);
    }
    logits = sm_aligned_alloc(nlogits * sizeof(float));
    tf_state s;
    tf_state_init(&s, m);
    rc = transformer_forward(&s, ids, &sm, fb, NULL, B, T, logits);
    tf_state_free(&s);
    if (rc) goto done;
    int64_t shape[3] = {B, T, c->vocab_size};
    rc = npy_write(out_path, NPY_F4, 3, shape, logits);
done:
    if (prev.data) npy_free(&prev);
    free(fb);
    free(probs);
    free(logits);
    free(ids);
    return rc;
}

int cmd_forward(int argc, char **argv) {
    const char *model = NULL, *ids_path = NULL, *out_path = NULL, *feedback = NULL, *t_arg = "1";
    const char *quant = NULL, *adapter = NULL;
    int threads = default_threads();
    sm_flags smf = {0};
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "model directory (required)"},
        {"adapter", 0, OPT_STR, &adapter, 0, 0, "DIR", "Dream/LLaDA: a PEFT LoRA/DoRA adapter directory to apply"},
        {"ids", 0, OPT_STR, &ids_path, 0, 0, "IDS.npy", "token ids [B,T] or [T], int32/int64 (required)"},
        {"out", 'o', OPT_STR, &out_path, 0, 0, "OUT.npy", "raw logits, float32 [B,T,V] (required)"},
        {"t", 0, OPT_STR, &t_arg, 0, 0, "T|T.npy", "diffusion time(s) for time-conditioned models (default 1)"},
        {"feedback", 0, OPT_STR, &feedback, 0, 0, "PREV.npy", "raw logits of an earlier forward: soft-mask the masked positions"},
        SM_FLAG_OPTS(smf),
        {"quant", 0, OPT_STR, &quant, 0, 0, "q8", "Dream/LLaDA: int8 projections (per-row scales)"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"forward", "Writes the raw network output (before SUBS) for a batch of ids.",
                       "-m DIR --ids IDS.npy -o OUT.npy [--feedback PREV.npy] [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!model || !ids_path || !out_path) {
        fprintf(stderr, "smdlm forward: -m, --ids and -o are required\n");
        cli_usage(stderr, &cmd);
        return 1;
    }
    kernels_set_threads(threads);
    model_dir md;
    if (model_dir_load_adapted(&md, model, adapter, 0, 0)) return cli_fail("forward");
    if (md.arch != MODEL_MDLM) {
        int rc_tf = forward_transformer(&md, &cmd, &smf, ids_path, out_path, feedback, quant);
        model_dir_free(&md);
        return rc_tf ? cli_fail("forward") : 0;
    }
    if (quant) {
        SM_ERR("--quant applies to Dream and LLaDA models only");
        model_dir_free(&md);
        return cli_fail("forward");
    }
    const dit_config *c = &md.net.cfg;
    int32_t *ids = NULL;
    float *t = NULL, *sigma = NULL, *logits = NULL;
    int B, T, status = 1;
    dit_acts acts = {0};
    sm_params sm;
    if (npy_read_ids(ids_path, c->vocab_size, &ids, &B, &T)) goto done;
    if (T > c->model_length) {
        SM_ERR("%s: %d positions exceed the model's length %d", ids_path, T, c->model_length);
        goto done;
    }
    t = sm_malloc(sizeof(float) * (size_t)B);
    sigma = sm_malloc(sizeof(float) * (size_t)B);
    if (read_times(t_arg, B, t)) goto done;
    for (int b = 0; b < B; b++) sigma[b] = mdlm_sigma(t[b]);
    if (sm_flags_resolve(&cmd, &smf, &md, &sm)) goto done;
    const size_t nlogits = sm_size_mul((size_t)B * T, (size_t)c->vocab_size);
    if (SM_CHECK_MEMORY(sm_size_add(sm_size_mul(nlogits, sizeof(float)),
                                    dit_acts_bytes(c, B, T, threads)),
                        "a forward of %d × %d positions with its logits over %d tokens", B, T,
                        c->vocab_size) ||
        dit_acts_alloc(&acts, c, B, T, threads))
        goto done;
    logits = sm_aligned_alloc(nlogits * sizeof(float));
    if (feedback && sm.enabled) {
        if (feedback_input(&md, &acts, ids, B, T, feedback, &sm)) goto done;
    } else {
        dit_embed_ids(&md.net, &acts, ids, B, T);
    }
    dit_forward_embedded(&md.net, &acts, sigma, B, T, NULL, 0, logits);
    int64_t shape[3] = {B, T, c->vocab_size};
    if (npy_write(out_path, NPY_F4, 3, shape, logits)) goto done;
    status = 0;
done:
    if (status) cli_fail("forward");
    dit_acts_free(&acts);
    free(logits);
    free(sigma);
    free(t);
    free(ids);
    model_dir_free(&md);
    return status;
}
