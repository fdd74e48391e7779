/* cmd_eval.c — `smdlm eval ppl`: the NELBO perplexity bound of an MDLM (two-pass denoiser
 * for soft-masked models) or the exact perplexity of a causal model on token shards.
 * `smdlm eval genppl`: generative perplexity of text samples under a GPT-2 evaluator and
 * their mean unigram entropy (MDLM compute_generative_perplexity / duo metrics.py), under GPT-2
 * or the project's causal DiT. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "commands.h"
#include "model_flags.h"
#include "eval/evaluator.h"
#include "base/jsonutil.h"
#include "base/progress.h"
#include "compute/kernels.h"
#include "text/tokenizer.h"
#include "train/dataset_loss.h"
#include "base/util.h"

static int eval_ppl(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *split = "val";
    int batch = 8, max_blocks = 0, threads = default_threads(), json = 0, len = 0, allow_mismatch = 0, quiet = 0;
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
        {"allow-mismatch", 0, OPT_FLAG, &allow_mismatch, 0, 0, "", "go on (with a warning) when the model's tokenizer is not the data's"},
        {"quiet", 'q', OPT_FLAG, &quiet, 0, 0, "", "no progress on stderr"},
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
    if (shards_open(&sh, data, split) || data_check_tokenizer(data, model, allow_mismatch, "smdlm eval ppl"))
        goto done;
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
    if (trainer_init(&tr, &md.net, batch, T, threads)) goto done;
    if (smp.enabled) sm_raw_from_params(&tr.sm, &smp);
    double nats;
    long tokens;
    double t0 = sm_time_sec();
    progress prog;
    progress_start(&prog, "smdlm eval ppl", quiet);
    rc = dataset_loss(&tr, &sh, (size_t)max_blocks, seed, smp.enabled, &prog, &nats, &tokens);
    progress_clear(&prog);
    if (rc) goto done;
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

int genppl_read_line(const smdlm_tokenizer *tok, char *line, const char *file, long lineno,
                            const char *field, int max_len, int32_t **ids, size_t *n) {
    char what[600];
    snprintf(what, sizeof what, "%s:%ld", file, lineno);
    cJSON *obj = json_parse_object(line, what);
    if (!obj) return -1;
    int rc = -1;
    const char *text = json_get_string(obj, field);
    if (!text) {
        SM_ERR("%s: missing string field \"%s\"", what, field);
        goto done;
    }
    if (tok_encode(tok, text, strlen(text), ids, n)) {
        sm_wrap_error("%s", what);
        goto done;
    }
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        SM_ERR("%s: empty sample (no tokens)", what);
        goto done;
    }
    if (max_len > 0 && *n > (size_t)max_len) *n = (size_t)max_len;
    rc = 0;
done:
    cJSON_Delete(obj);
    return rc;
}

static int eval_genppl(int argc, char **argv) {
    const char *model = NULL, *samples = NULL, *field = "text";
    int ctx = 0, max_len = 0, threads = default_threads(), json = 0, quiet = 0;
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "causal evaluator: GPT-2 or a causal DiT (required)"},
        {"samples", 's', OPT_STR, &samples, 0, 0, "FILE", "JSON lines with the texts (required)"},
        {"text-field", 0, OPT_STR, &field, 0, 0, "NAME", "field holding the text (default text)"},
        {"ctx", 0, OPT_INT, &ctx, 2, 1 << 20, "N", "chunk length (default: the evaluator's n_positions)"},
        {"max-length", 0, OPT_INT, &max_len, 0, 1 << 30, "N", "truncate each sample to N evaluator tokens, as MDLM's retokenisation does (default 0: no truncation)"},
        {"json", 0, OPT_FLAG, &json, 0, 0, "", "one JSON line per sample, then the overall line"},
        {"quiet", 'q', OPT_FLAG, &quiet, 0, 0, "", "no progress on stderr"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"eval genppl",
                       "Generative perplexity (MDLM's) and unigram entropy of text samples.",
                       "-m EVALUATOR --samples FILE [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!model || !samples) {
        fprintf(stderr, "smdlm eval genppl: -m and --samples are required\n");
        return 1;
    }
    kernels_set_threads(threads);
    evaluator ev;
    if (evaluator_load(&ev, model, threads)) return cli_fail("eval genppl");
    smdlm_tokenizer *tok = ev.tok;
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    int status = 1;
    int eos = ev.eos_id;
    if (!(f = sm_fopen_regular(samples))) goto done;
    double nll_all = 0.0, ent_all = 0.0, t0 = sm_time_sec();
    long scored_all = 0, tokens_all = 0, nsamples = 0, lineno = 0;
    progress prog;
    progress_start(&prog, "smdlm eval genppl", quiet);
    ssize_t got;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)got != strlen(line)) {
            SM_ERR("%s:%ld: NUL byte in the line", samples, lineno);
            goto done;
        }
        if (line[strspn(line, " \t\r\n")] == 0) continue; /* blank line */
        int32_t *ids = NULL;
        size_t n = 0;
        if (genppl_read_line(tok, line, samples, lineno, field, max_len, &ids, &n)) goto done;
        double nll = 0.0;
        long cnt = 0;
        int src = evaluator_score(&ev, ids, n, ctx, eos, &nll, &cnt);
        double ent = src ? 0.0 : unigram_entropy(ids, n);
        free(ids);
        if (src) {
            sm_wrap_error("%s:%ld", samples, lineno);
            goto done;
        }
        nll_all += nll;
        scored_all += cnt;
        tokens_all += (long)n;
        ent_all += ent;
        nsamples++;
        progress_report(&prog, 0, 0, "%ld samples scored", nsamples);
        if (json) {
            printf("{\"line\":%ld,\"tokens\":%zu,\"scored\":%ld,\"nll_sum\":%.17g,", lineno, n,
                   cnt, nll);
            if (cnt) printf("\"ppl\":%.17g,", exp(nll / (double)cnt));
            else printf("\"ppl\":null,");
            printf("\"entropy\":%.17g}\n", ent);
        }
    }
    progress_clear(&prog);
    if (ferror(f)) {
        SM_ERR("reading '%s': %s", samples, strerror(errno));
        goto done;
    }
    if (nsamples == 0) {
        SM_ERR("'%s' holds no samples", samples);
        goto done;
    }
    if (scored_all == 0) {
        SM_ERR("'%s': no sample has a token to predict (each is one token long)", samples);
        goto done;
    }
    double ppl = exp(nll_all / (double)scored_all), ent = ent_all / (double)nsamples;
    cJSON *mstr = cJSON_CreateString(model);
    char *mq = mstr ? cJSON_PrintUnformatted(mstr) : NULL;
    if (json)
        printf("{\"model\":%s,\"samples\":%ld,\"tokens\":%ld,\"scored\":%ld,"
               "\"nll_per_token\":%.17g,\"gen_ppl\":%.17g,\"entropy\":%.17g,\"seconds\":%.2f}\n",
               mq ? mq : "null", nsamples, tokens_all, scored_all, nll_all / (double)scored_all,
               ppl, ent, sm_time_sec() - t0);
    else
        printf("%ld samples, %ld tokens (%ld scored) under %s: generative perplexity %.4f, "
               "mean unigram entropy %.4f nats\n",
               nsamples, tokens_all, scored_all, model, ppl, ent);
    free(mq);
    cJSON_Delete(mstr);
    status = 0;
done:
    if (status) cli_fail("eval genppl");
    free(line);
    if (f) fclose(f);
    evaluator_free(&ev);
    return status;
}

int cmd_eval(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "ppl")) return eval_ppl(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "genppl")) return eval_genppl(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "mauve")) return cmd_eval_mauve(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "code")) return cmd_eval_code(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "sweep")) return cmd_eval_sweep(argc - 1, argv + 1);
    fprintf(stderr, "usage: smdlm eval ppl -m DIR --data DIR [options]\n"
                    "       smdlm eval genppl -m EVALUATOR --samples FILE [options]\n"
                    "       smdlm eval mauve (-m FEATURIZER --ref R.jsonl --samples S.jsonl | --ref-features R.npy --samples-features S.npy) [options]\n"
                    "       smdlm eval code (--samples FILE | --canonical | -m MODEL) [options]\n"
                    "       smdlm eval sweep -e EVALUATOR -o DIR [options] NAME=MODEL_DIR ...\n");
    return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 1;
}
