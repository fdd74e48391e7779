/* cmd_eval.c — `smdlm eval ppl`: the NELBO perplexity bound of an MDLM (two-pass denoiser
 * for soft-masked models) or the exact perplexity of a causal model on token shards. */
#include <math.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "kernels.h"
#include "trainloop.h"
#include "util.h"

static int eval_ppl(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *split = "val";
    int batch = 8, max_blocks = 0, threads = default_threads(), json = 0, len = 0;
    uint64_t seed = 0;
    sm_flags smf = {0};
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "model directory (required)"},
        {"data", 'd', OPT_STR, &data, 0, 0, "DIR", "token shards (required)"},
        {"split", 0, OPT_STR, &split, 0, 0, "NAME", "val (default) or train"},
        {"batch", 'b', OPT_INT, &batch, 1, 65536, "B", "sequences per forward (default 8)"},
        {"len", 'l', OPT_INT, &len, 2, 1 << 20, "T", "tokens per sequence (default: the data's blocks)"},
        {"max-blocks", 0, OPT_INT, &max_blocks, 0, 2000000000, "N", "evaluate the first N blocks (default all)"},
        {"seed", 0, OPT_U64, &seed, 0, 0, "N", "seed of the diffusion times and masks (default 0)"},
        {"json", 0, OPT_FLAG, &json, 0, 0, "", "one JSON line"},
        SM_FLAG_OPTS(smf),
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"eval ppl", "Perplexity (bound) of a model on token shards.",
                       "-m DIR --data DIR [--split val] [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!model || !data) {
        fprintf(stderr, "smdlm eval ppl: -m and --data are required\n");
        return 1;
    }
    kernels_set_threads(threads);
    model_dir md;
    if (model_dir_load(&md, model, 0)) return cli_fail("eval");
    shard_set sh = {0};
    trainer tr = {0};
    sm_params smp;
    int status = 1;
    if (shards_open(&sh, data, split)) goto done;
    if (sh.vocab_size > md.net.cfg.vocab_size) {
        SM_ERR("the data has %d token ids but the model only %d", sh.vocab_size, md.net.cfg.vocab_size);
        goto done;
    }
    if (sm_flags_resolve(&cmd, &smf, &md, &smp)) goto done;
    int T = len ? len : sh.block_len;
    if (T > md.net.cfg.model_length || T > sh.block_len) {
        SM_ERR("length %d exceeds the model's (%d) or the data's (%d)", T, md.net.cfg.model_length, sh.block_len);
        goto done;
    }
    trainer_init(&tr, &md.net, batch, T, threads);
    if (smp.enabled) sm_raw_from_params(&tr.sm, &smp);
    double nats;
    long tokens;
    double t0 = sm_time_sec();
    if (eval_loss(&tr, &sh, (size_t)max_blocks, seed, smp.enabled, &nats, &tokens)) goto done;
    const char *kind = md.net.cfg.causal ? "exact" : "NELBO bound";
    if (json)
        printf("{\"model\":\"%s\",\"split\":\"%s\",\"kind\":\"%s\",\"soft_masking\":%s,\"tokens\":%ld,"
               "\"nats_per_token\":%.9g,\"bits_per_token\":%.9g,\"ppl\":%.9g,\"seconds\":%.2f}\n",
               model, split, kind, smp.enabled ? "true" : "false", tokens, nats, nats / log(2.0),
               exp(nats), sm_time_sec() - t0);
    else
        printf("%s on %s/%s (%ld tokens, %s%s): %.4f nats/token, %.4f bits/token, perplexity %s %.3f\n",
               model, data, split, tokens, kind, smp.enabled ? ", two-pass soft-masking" : "", nats,
               nats / log(2.0), md.net.cfg.causal ? "=" : "≤", exp(nats));
    status = 0;
done:
    if (status) cli_fail("eval");
    if (tr.acts) trainer_free(&tr);
    shards_close(&sh);
    model_dir_free(&md);
    return status;
}

int cmd_eval(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "ppl")) return eval_ppl(argc - 1, argv + 1);
    fprintf(stderr, "usage: smdlm eval ppl -m DIR --data DIR [options]\n");
    return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 1;
}
