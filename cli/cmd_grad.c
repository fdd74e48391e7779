/* cmd_grad.c — `smdlm grad`: loss and gradients of one given batch (docs/DESIGN.md §6.6). A
 * pure function of its inputs: the noised ids, the clean ids and the times are all given. MDLM
 * directories: every parameter's gradient; Dream / LLaDA with --adapter: the adapter's and the
 * soft-masking scalars' (the base frozen, src/train/tfgrad.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "model_flags.h"
#include "compute/kernels.h"
#include "formats/npy.h"
#include "models/model.h"
#include "train/tfgrad.h"
#include "train/train.h"
#include "base/util.h"

/* n float32 times in (0, 1]; `what` says whose they are in the error. */
static int read_times(const char *path, int n, const char *what, float **t) {
    npy_array a;
    if (npy_read(path, &a)) return -1;
    if (a.dtype != NPY_F4 || a.numel != (size_t)n) {
        npy_free(&a);
        return SM_ERR("%s: expected %d float32 time%s (%s)", path, n, n == 1 ? "" : "s", what);
    }
    *t = a.data;
    for (int b = 0; b < n; b++)
        if (!((*t)[b] > 0.0f && (*t)[b] <= 1.0f)) return SM_ERR("%s: t[%d] = %g is outside (0, 1]", path, b, (*t)[b]);
    return 0;
}

/* Clean and noised ids of the same shape [B, T]. */
static int read_batch(const char *ids_path, const char *targets_path, int V, int32_t **xt,
                      int32_t **x0, int *B, int *T) {
    int B2, T2;
    if (npy_read_ids(ids_path, V, xt, B, T) || npy_read_ids(targets_path, V, x0, &B2, &T2))
        return -1;
    if (*B != B2 || *T != T2)
        return SM_ERR("%s is [%d, %d] but %s is [%d, %d]", ids_path, *B, *T, targets_path, B2, T2);
    return 0;
}

/* Dream / LLaDA: the gradient of the adapter and of the soft-masking scalars. */
static int grad_adapter(const cli_command *cmd, const char *model, const char *adapter,
                        const char *ids_path, const char *targets_path, const char *t_path,
                        int sm, const sm_flags *smf, const char *out) {
    model_dir md;
    peft_adapter ad = {0};
    tf_trainer tr = {0};
    int32_t *xt = NULL, *x0 = NULL;
    float *t = NULL;
    int B, T, status = 1;
    sm_params smp;
    if (model_dir_load_any(&md, model, 0)) return cli_fail("grad");
    if (adapter_open(&ad, adapter) ||
        read_batch(ids_path, targets_path, md.tf.cfg.vocab_size, &xt, &x0, &B, &T) ||
        read_times(t_path, 1, "one for the batch", &t) || sm_flags_resolve(cmd, smf, &md, &smp) ||
        tf_trainer_init(&tr, &md.tf, &ad, B, T))
        goto done;
    if (smp.enabled) sm_raw_from_params(&tr.sm, &smp); /* else IBM's initial values, k = 1 */
    tf_batch batch = {xt, x0, t[0]};
    double loss;
    tf_trainer_zero_grads(&tr);
    if (tf_trainer_accumulate(&tr, &batch, sm, 1.0f, &loss)) goto done;
    printf("loss %.9g\n", loss);
    if (tf_trainer_save_grads(&tr, out)) goto done;
    status = 0;
done:
    if (status) cli_fail("grad");
    tf_trainer_free(&tr);
    adapter_close(&ad);
    free(xt), free(x0), free(t);
    model_dir_free(&md);
    return status;
}

int cmd_grad(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *ids_path = NULL, *targets_path = NULL, *t_path = NULL, *out = NULL;
    int sm = 0, causal = 0, threads = default_threads();
    sm_flags smf = {0};
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "model directory (required)"},
        {"adapter", 0, OPT_STR, &adapter, 0, 0, "DIR", "PEFT adapter of a Dream/LLaDA model: its gradient, the base frozen"},
        {"ids", 0, OPT_STR, &ids_path, 0, 0, "XT.npy", "noised ids [B,L] (the mask id where masked); the input with --causal"},
        {"targets", 0, OPT_STR, &targets_path, 0, 0, "X0.npy", "clean ids [B,L]"},
        {"t", 0, OPT_STR, &t_path, 0, 0, "T.npy", "diffusion times [B] float32 (not with --causal; [1] with --adapter)"},
        {"sm", 0, OPT_FLAG, &sm, 0, 0, "", "two-pass soft-masking step"},
        {"causal", 0, OPT_FLAG, &causal, 0, 0, "", "causal attention and next-token loss (the AR baseline)"},
        {"out", 'o', OPT_STR, &out, 0, 0, "GRADS.safetensors", "every parameter's gradient (required)"},
        SM_FLAG_OPTS(smf),
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"grad", "Prints the loss of one batch and writes every gradient.",
                       "-m DIR [--adapter DIR] --ids XT.npy --targets X0.npy --t T.npy [--sm] [--causal] -o GRADS.safetensors",
                       opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!model || !ids_path || !targets_path || !out || (!causal && !t_path)) {
        fprintf(stderr, "smdlm grad: -m, --ids, --targets, -o and (without --causal) --t are required\n");
        return 1;
    }
    if (sm && causal) {
        fprintf(stderr, "smdlm grad: --sm and --causal exclude each other\n");
        return 1;
    }
    kernels_set_threads(threads);
    model_arch arch = MODEL_MDLM; /* an unreadable directory: model_dir_load says why */
    if (model_dir_arch(model, &arch)) arch = MODEL_MDLM;
    if (arch != MODEL_MDLM || adapter) {
        if (arch == MODEL_MDLM || !adapter || causal) {
            fprintf(stderr, "smdlm grad: %s\n",
                    arch == MODEL_MDLM ? "--adapter needs a Dream or LLaDA model"
                    : causal           ? "--causal is for MDLM models"
                                       : "a Dream or LLaDA model needs --adapter DIR (its "
                                         "gradient is computed, the base is frozen)");
            return 1;
        }
        return grad_adapter(&cmd, model, adapter, ids_path, targets_path, t_path, sm, &smf, out);
    }
    model_dir md;
    if (model_dir_load(&md, model, 0)) return cli_fail("grad");
    int32_t *xt = NULL, *x0 = NULL;
    float *t = NULL;
    int B, T, status = 1;
    sm_params smp;
    trainer tr = {0};
    const dit_config *c = &md.net.cfg;
    if (read_batch(ids_path, targets_path, c->vocab_size, &xt, &x0, &B, &T)) goto done;
    if (T > c->model_length || (causal && T < 2)) {
        SM_ERR("%d positions: need %s ≤ L ≤ %d", T, causal ? "2" : "1", c->model_length);
        goto done;
    }
    if (!causal && read_times(t_path, B, "one per row", &t)) goto done;
    if (sm_flags_resolve(&cmd, &smf, &md, &smp)) goto done;
    if (!smp.enabled) sm_params_default(&smp); /* IBM's initial values: scale 0 */
    if (trainer_init(&tr, &md.net, B, T, threads)) goto done;
    tr.cfg.causal = causal || c->causal;
    sm_raw_from_params(&tr.sm, &smp);
    train_batch batch = {xt, x0, t};
    double loss = trainer_step(&tr, &batch, sm);
    printf("loss %.9g\n", loss);
    if (trainer_save_grads(&tr, out)) goto done;
    status = 0;
done:
    if (status) cli_fail("grad");
    if (tr.acts) trainer_free(&tr);
    free(xt);
    free(x0);
    free(t);
    model_dir_free(&md);
    return status;
}
