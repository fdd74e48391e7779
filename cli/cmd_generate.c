/* cmd_generate.c — `smdlm generate`: samples from an MDLM (unconditional or prefix-prompted, any
 * sampler, with or without soft-masking) or completions from a Dream / LLaDA model (the
 * decoders of src/generate/decoder.c, plain or chat-templated prompts); --visual redraws the canvas every
 * step. The architecture comes from the directory's config.json; flags of the other kind of
 * model are rejected. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "compute/kernels.h"
#include "generate/sampler.h"
#include "generate/tfgen.h"
#include "base/util.h"

#define MASK_GLYPH "\xe2\x96\x91" /* ░ */

/* Every flag of the command; the two paths read their own. */
typedef struct {
    const char *model, *prompt, *out;
    int steps, n, visual, delay, quiet, allow_special, threads;
    float top_p;
    uint64_t seed;
    sm_flags smf;
    /* MDLM */
    const char *sampler;
    int len, no_noise_removal;
    float eta, t_on, t_off, alpha_on;
    /* Dream / LLaDA */
    const char *alg, *remasking, *quant, *system;
    int max_new, tokens_per_step, top_k, block_length, chat;
    float temperature, alg_temp, threshold, eos_penalty;
    const char *cache; /* --cache prefix|dual (approximate, src/models/kvcache.h) */
    int cache_refresh;
} gen_opts;

typedef struct {
    const model_dir *md;
    int visual_delay_ms;
    int tty;
    int steps; /* planned steps; 0: unknown (threshold decoding) */
} visual_ctx;

/* Text of ids[0..n) with masked positions shown as a placeholder. */
static char *render(const model_dir *md, const int32_t *ids, int n, int show_masks) {
    size_t cap = 256, len = 0;
    char *out = sm_malloc(cap);
    int mask = md->mask_id;
    for (int i = 0; i < n;) {
        int j = i;
        const char *piece = NULL;
        char *dec = NULL, num[16];
        size_t plen = 0;
        if (ids[i] == mask) {
            while (j < n && ids[j] == mask) j++;
            if (!show_masks) {
                i = j;
                continue;
            }
            for (int r = i; r < j; r++) {
                if (len + 4 > cap) out = sm_realloc(out, cap *= 2);
                memcpy(out + len, MASK_GLYPH, 3);
                len += 3;
            }
            i = j;
            continue;
        }
        while (j < n && ids[j] != mask) j++;
        if (md->tok && tok_decode(md->tok, ids + i, (size_t)(j - i), &dec, &plen) == 0) {
            piece = dec;
        } else { /* no tokenizer (or ids beyond it): print the ids */
            j = i + 1;
            plen = (size_t)snprintf(num, sizeof num, "[%d]", ids[i]);
            piece = num;
        }
        while (len + plen + 1 > cap) out = sm_realloc(out, cap *= 2);
        memcpy(out + len, piece, plen);
        len += plen;
        free(dec);
        i = j;
    }
    out[len] = 0;
    return out;
}

/* One --visual frame: the first canvas of the batch. */
static void show_frame(const visual_ctx *v, int step, int steps, const int32_t *x, int T) {
    char *text = render(v->md, x, T, 1);
    if (v->tty) fputs("\x1b[H\x1b[2J", stdout);
    if (steps > 0) printf("step %d/%d\n%s\n", step, steps, text);
    else printf("step %d\n%s\n", step, text);
    if (!v->tty) printf("\n");
    fflush(stdout);
    free(text);
    if (v->visual_delay_ms > 0) {
        struct timespec ts = {v->visual_delay_ms / 1000, (long)(v->visual_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int on_step(void *user, const gen_step *s) {
    show_frame(user, s->step, s->steps, s->x, s->T);
    return 0;
}

static int on_decoder_step(void *user, const gen_step *s) {
    const visual_ctx *v = user;
    show_frame(v, s->step, v->steps, s->x, s->T);
    return 0;
}

static int write_jsonl(const char *path, const model_dir *md, const int32_t *x, int B, int T,
                       uint64_t seed, const sampler_params *sp) {
    FILE *f = !strcmp(path, "-") ? stdout : fopen(path, "w");
    if (!f) return SM_ERR("cannot create '%s'", path);
    for (int b = 0; b < B; b++) {
        cJSON *o = cJSON_CreateObject();
        char *text = render(md, x + (size_t)b * T, T, 0);
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray(x + (size_t)b * T, T));
        cJSON_AddNumberToObject(o, "seed", (double)(seed + (uint64_t)b));
        cJSON_AddStringToObject(o, "sampler", sampler_kind_name(sp->kind));
        cJSON_AddNumberToObject(o, "steps", sp->steps);
        cJSON_AddBoolToObject(o, "soft_masking", sp->sm.enabled);
        char *line = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", line);
        free(line);
        free(text);
        cJSON_Delete(o);
    }
    if (f != stdout && fclose(f) != 0) return SM_ERR("cannot write '%s'", path);
    return 0;
}

/* Flags that only one kind of model takes: an error naming the first one given. */
static int reject_flags(const cli_command *cmd, const char *const *names, const char *why) {
    for (; *names; names++)
        if (cli_seen(cmd, *names)) return SM_ERR("--%s %s", *names, why);
    return 0;
}

static int generate_mdlm(const cli_command *cmd, gen_opts *o) {
    static const char *const tf_only[] = {"max-new-tokens", "tokens-per-step", "temperature",
                                          "top-k", "alg", "alg-temp", "block-length", "remasking",
                                          "threshold", "eos-penalty", "quant", "chat", "system",
                                          "cache", "cache-refresh", NULL};
    model_dir md;
    if (reject_flags(cmd, tf_only, "applies to Dream/LLaDA models; this is an MDLM model"))
        return cli_fail("generate");
    sampler_params sp;
    sampler_params_default(&sp);
    if (sampler_kind_parse(o->sampler, &sp.kind)) return cli_fail("generate");
    sp.steps = o->steps;
    sp.top_p = o->top_p;
    sp.seed = o->seed;
    sp.eta = o->eta;
    sp.t_on = o->t_on;
    sp.t_off = o->t_off;
    sp.alpha_on = o->alpha_on;
    sp.noise_removal = !o->no_noise_removal;
    kernels_set_threads(o->threads);

    if (model_dir_load(&md, o->model, o->prompt ? 2 : 1)) return cli_fail("generate");
    const dit_config *c = &md.net.cfg;
    int status = 1, len = o->len, n = o->n;
    int32_t *x = NULL, *pids = NULL;
    uint8_t *fixed = NULL;
    size_t np = 0;
    if (sm_flags_resolve(cmd, &o->smf, &md, &sp.sm)) goto done;
    if (!len) len = c->model_length;
    if (len > c->model_length) {
        SM_ERR("--len %d exceeds the model's length %d", len, c->model_length);
        goto done;
    }
    /* the prompt is user text: special-token text stays text unless --allow-special */
    if (o->prompt && tok_encode_ex(md.tok, o->prompt, strlen(o->prompt),
                                   o->allow_special ? TOK_ALLOW_SPECIAL : 0, &pids, &np))
        goto done;
    if (np >= (size_t)len) {
        SM_ERR("the prompt has %zu tokens but the canvas holds only %d (raise --len)", np, len);
        goto done;
    }
    x = sm_malloc(sizeof(int32_t) * (size_t)n * len);
    fixed = sm_calloc((size_t)n * len, 1);
    for (int b = 0; b < n; b++)
        for (int i = 0; i < len; i++) {
            size_t at = (size_t)b * len + i;
            x[at] = (size_t)i < np ? pids[i] : c->mask_id;
            fixed[at] = (size_t)i < np;
        }
    visual_ctx vc = {&md, o->delay, isatty(STDOUT_FILENO), 0};
    if (o->visual) {
        sp.on_step = on_step;
        sp.user = &vc;
    }
    sampler_stats stats;
    model_state state;
    model_state_init(&state, &md, o->threads);
    int rc = sampler_run(&state.lm, &sp, x, fixed, n, len, &stats);
    model_state_free(&state);
    if (rc) goto done;
    if (o->out) {
        if (write_jsonl(o->out, &md, x, n, len, o->seed, &sp)) goto done;
    } else if (!o->visual) {
        for (int b = 0; b < n; b++) {
            char *text = render(&md, x + (size_t)b * len, len, 0);
            printf(n > 1 ? "=== sample %d ===\n%s\n" : "%.0d%s\n", b, text);
            free(text);
        }
    }
    if (!o->quiet)
        fprintf(stderr,
                "smdlm generate: %s, %d steps, %d forwards, soft-masking %s, %d×%d tokens in %.2f s "
                "(%.1f tokens/s; SM inputs %.1f%% of forward time)\n",
                sampler_kind_name(sp.kind), stats.steps, stats.forwards, sp.sm.enabled ? "on" : "off",
                n, len, stats.seconds, (double)n * len / stats.seconds,
                stats.forward_seconds > 0 ? 100.0 * stats.sm_seconds / stats.forward_seconds : 0.0);
    status = 0;
done:
    if (status) cli_fail("generate");
    free(x);
    free(fixed);
    free(pids);
    model_dir_free(&md);
    return status;
}

/* Decoder parameters from the flags (defaults: tfgen_default_params). */
static int tf_params(const cli_command *cmd, const gen_opts *o, model_dir *md, decoder_params *p) {
    if (tfgen_default_params(md, p)) return -1;
    if (cli_seen(cmd, "steps") && cli_seen(cmd, "tokens-per-step"))
        return SM_ERR("give --steps or --tokens-per-step, not both");
    p->gen_len = o->max_new;
    p->steps = cli_seen(cmd, "steps") ? o->steps : o->max_new; /* one token per step */
    p->tokens_per_step = o->tokens_per_step;
    p->temperature = o->temperature;
    p->top_p = o->top_p;
    p->top_k = o->top_k;
    if (o->alg && decoder_alg_parse(o->alg, &p->alg)) return -1;
    p->alg_temp = o->alg_temp;
    if (cli_seen(cmd, "block-length")) p->block_length = o->block_length;
    if (o->remasking && decoder_remask_parse(o->remasking, &p->remasking)) return -1;
    p->threshold = o->threshold;
    p->eos_penalty = o->eos_penalty;
    p->seed = o->seed;
    if (sm_flags_resolve(cmd, &o->smf, md, &p->sm)) return -1;
    if (o->cache && kv_cache_mode_parse(o->cache, &p->cache)) return -1;
    p->cache_refresh = o->cache_refresh;
    if (p->cache == KV_CACHE_DUAL && (p->style != DECODER_LLADA || p->block_length >= p->gen_len))
        return SM_ERR("--cache dual needs block decoding: an LLaDA model with --block-length below "
                      "--max-new-tokens (%d)", p->gen_len);
    if (p->style == DECODER_LLADA && p->gen_len % (p->block_length ? p->block_length : 1) != 0)
        return SM_ERR("--block-length %d must divide --max-new-tokens %d (LLaDA's default block "
                      "length is %d)", p->block_length, p->gen_len, TFGEN_LLADA_BLOCK);
    return 0;
}

static int write_tf_jsonl(FILE *f, const model_dir *md, const gen_opts *o, const decoder_params *p,
                          const int32_t *x, int B, int P, const int *gen) {
    const int T = P + p->gen_len;
    for (int b = 0; b < B; b++) {
        const int32_t *ids = x + (size_t)b * T + P;
        char *text = NULL;
        if (md->tok && tfgen_completion(md, ids, gen[b], &text)) return -1;
        cJSON *j = cJSON_CreateObject();
        if (text) cJSON_AddStringToObject(j, "text", text);
        if (o->prompt) cJSON_AddStringToObject(j, "prompt", o->prompt);
        cJSON_AddItemToObject(j, "ids", cJSON_CreateIntArray(ids, gen[b]));
        cJSON_AddItemToObject(j, "prompt_ids", cJSON_CreateIntArray(x + (size_t)b * T, P));
        cJSON_AddNumberToObject(j, "seed", (double)(o->seed + (uint64_t)b));
        cJSON_AddStringToObject(j, "decoder", p->style == DECODER_LLADA ? "llada" : "dream");
        if (p->style == DECODER_LLADA)
            cJSON_AddStringToObject(j, "remasking", decoder_remask_name(p->remasking));
        else
            cJSON_AddStringToObject(j, "alg", decoder_alg_name(p->alg));
        if (p->threshold > 0.0f) cJSON_AddNumberToObject(j, "threshold", p->threshold);
        else cJSON_AddNumberToObject(j, "steps", decoder_planned_steps(p));
        cJSON_AddNumberToObject(j, "temperature", p->temperature);
        cJSON_AddBoolToObject(j, "soft_masking", p->sm.enabled);
        if (p->cache != KV_CACHE_OFF) {
            cJSON_AddStringToObject(j, "cache", kv_cache_mode_name(p->cache));
            cJSON_AddNumberToObject(j, "cache_refresh", p->cache_refresh);
        }
        char *line = cJSON_PrintUnformatted(j);
        fprintf(f, "%s\n", line);
        free(line);
        free(text);
        cJSON_Delete(j);
    }
    return 0;
}

/* Completions as text (ids when the directory has no tokenizer). */
static int print_tf(const model_dir *md, const int32_t *x, int B, int T, int P, const int *gen) {
    for (int b = 0; b < B; b++) {
        const int32_t *ids = x + (size_t)b * T + P;
        if (B > 1) printf("=== sample %d ===\n", b);
        if (md->tok) {
            char *text;
            if (tfgen_completion(md, ids, gen[b], &text)) return -1;
            printf("%s\n", text);
            free(text);
        } else {
            for (int i = 0; i < gen[b]; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
    }
    return 0;
}

static int generate_tf(const cli_command *cmd, gen_opts *o, model_arch arch) {
    static const char *const mdlm_only[] = {"len", "sampler", "eta", "t-on", "t-off", "alpha-on",
                                            "no-noise-removal", NULL};
    static const char *const dream_only[] = {"alg", "alg-temp", NULL};
    static const char *const llada_only[] = {"block-length", "remasking", NULL};
    const char *kind = arch == MODEL_DREAM ? "a Dream model" : "an LLaDA model";
    char why[96];
    snprintf(why, sizeof why, "applies to MDLM models; this is %s (--max-new-tokens sets the length)", kind);
    if (reject_flags(cmd, mdlm_only, why)) return cli_fail("generate");
    snprintf(why, sizeof why, "applies to %s models; this is %s",
             arch == MODEL_DREAM ? "LLaDA" : "Dream", kind);
    if (reject_flags(cmd, arch == MODEL_DREAM ? llada_only : dream_only, why))
        return cli_fail("generate");
    if (o->system && !o->chat) return SM_ERR("--system needs --chat"), cli_fail("generate");
    if (o->chat && !o->prompt) return SM_ERR("--chat needs -p PROMPT (the user message)"), cli_fail("generate");
    if (o->quant && strcmp(o->quant, "q8") != 0)
        return SM_ERR("--quant '%s': the only quantisation is q8", o->quant), cli_fail("generate");
    kernels_set_threads(o->threads);
    model_dir md;
    if (model_dir_load_any(&md, o->model, o->prompt ? 2 : 1)) return cli_fail("generate");
    int status = 1, *gen = NULL;
    int32_t *pids = NULL, *x = NULL;
    size_t np = 0;
    decoder_params p;
    decoder_stats st;
    if (tf_params(cmd, o, &md, &p)) goto done;
    if (o->prompt &&
        tfgen_encode_prompt(&md, o->prompt, o->chat, o->system, o->allow_special, &pids, &np))
        goto done;
    if (np > (size_t)md.max_len) {
        SM_ERR("the prompt has %zu tokens but the model's length is %d", np, md.max_len);
        goto done;
    }
    if (o->quant && transformer_quantize_q8(&md.tf)) goto done;
    visual_ctx vc = {&md, o->delay, isatty(STDOUT_FILENO), p.threshold > 0 ? 0 : decoder_planned_steps(&p)};
    if (o->visual) {
        p.on_step = on_decoder_step;
        p.user = &vc;
    }
    gen = sm_malloc(sizeof(int) * (size_t)o->n);
    if (tfgen_run(&md, &p, pids, (int)np, o->n, &x, gen, &st)) goto done;
    const int T = (int)np + p.gen_len;
    if (o->out) {
        FILE *f = !strcmp(o->out, "-") ? stdout : fopen(o->out, "w");
        if (!f) {
            SM_ERR("cannot create '%s'", o->out);
            goto done;
        }
        int rc = write_tf_jsonl(f, &md, o, &p, x, o->n, (int)np, gen);
        if (f != stdout && fclose(f) != 0 && rc == 0) rc = SM_ERR("cannot write '%s'", o->out);
        if (rc) goto done;
    } else if (!o->visual) {
        if (print_tf(&md, x, o->n, T, (int)np, gen)) goto done;
    }
    if (!o->quiet) {
        long made = 0;
        for (int b = 0; b < o->n; b++) made += gen[b];
        fprintf(stderr,
                "smdlm generate: %s %s%s, %d steps, %d forwards, soft-masking %s, prompt %zu tokens, "
                "%ld tokens generated in %.2f s (%.1f tokens/s; forwards %.0f%% of the time)\n",
                arch == MODEL_DREAM ? "dream" : "llada",
                p.style == DECODER_LLADA ? decoder_remask_name(p.remasking) : decoder_alg_name(p.alg),
                o->quant ? " q8" : "", st.steps, st.forwards, p.sm.enabled ? "on" : "off", np, made,
                st.seconds, st.seconds > 0 ? (double)made / st.seconds : 0.0,
                st.seconds > 0 ? 100.0 * st.forward_seconds / st.seconds : 0.0);
        if (p.cache != KV_CACHE_OFF)
            fprintf(stderr, "smdlm generate: %s cache (approximate): %d refreshes, %ld positions "
                    "computed (%.1f%% of %d full forwards)\n", kv_cache_mode_name(p.cache),
                    st.refreshes, st.positions_computed,
                    st.forwards ? 100.0 * (double)st.positions_computed /
                                      ((double)st.forwards * o->n * T) : 0.0, st.forwards);
    }
    status = 0;
done:
    if (status) cli_fail("generate");
    free(gen);
    free(x);
    free(pids);
    model_dir_free(&md);
    return status;
}

int cmd_generate(int argc, char **argv) {
    gen_opts o = {.steps = 128, .n = 1, .delay = 60, .threads = default_threads(), .top_p = 1.0f,
                  .sampler = "ddpm_cache", .eta = 0.02f, .t_on = 0.55f, .t_off = 0.05f,
                  .alpha_on = 0.9f, .max_new = 128, .block_length = TFGEN_LLADA_BLOCK};
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &o.model, 0, 0, "DIR", "model directory (default: $SMDLM_MODEL, else the bundled models/default)"},
        {"prompt", 'p', OPT_STR, &o.prompt, 0, 0, "TEXT", "prefix that stays fixed (Dream/LLaDA: the prompt)"},
        {"allow-special", 0, OPT_FLAG, &o.allow_special, 0, 0, "", "parse special-token text in the prompt"},
        {"len", 'l', OPT_INT, &o.len, 1, 1 << 20, "L", "MDLM: canvas length in tokens (default: the model's length)"},
        {"steps", 's', OPT_INT, &o.steps, 1, 1000000, "S", "denoising steps (MDLM default 128; Dream/LLaDA: --max-new-tokens)"},
        {"sampler", 0, OPT_STR, &o.sampler, 0, 0, "NAME", "MDLM: ddpm, ddpm_cache (default), remdm-cap, remdm-loop"},
        {"top-p", 0, OPT_FLOAT, &o.top_p, 1e-6, 1, "P", "nucleus sampling (default 1 = off)"},
        {"seed", 0, OPT_U64, &o.seed, 0, 0, "N", "random seed (sample b uses seed + b)"},
        {"n", 'n', OPT_INT, &o.n, 1, 4096, "N", "number of samples, run as one batch"},
        {"eta", 0, OPT_FLOAT, &o.eta, 0, 1, "X", "ReMDM remasking strength (default 0.02)"},
        {"t-on", 0, OPT_FLOAT, &o.t_on, 0, 1, "X", "ReMDM-loop: loop phase starts (default 0.55)"},
        {"t-off", 0, OPT_FLOAT, &o.t_off, 0, 1, "X", "ReMDM-loop: loop phase ends (default 0.05)"},
        {"alpha-on", 0, OPT_FLOAT, &o.alpha_on, 1e-6, 1 - 1e-6, "X", "ReMDM-loop: α during the loop (default 0.9)"},
        {"no-noise-removal", 0, OPT_FLAG, &o.no_noise_removal, 0, 0, "", "MDLM: skip the final argmax forward"},
        {"max-new-tokens", 0, OPT_INT, &o.max_new, 1, 1 << 20, "N", "Dream/LLaDA: tokens to generate (default 128)"},
        {"tokens-per-step", 0, OPT_INT, &o.tokens_per_step, 1, 1 << 20, "K", "Dream/LLaDA: steps = ceil(max-new-tokens / K)"},
        {"temperature", 0, OPT_FLOAT, &o.temperature, 0, 1e6, "T", "Dream/LLaDA: 0 = argmax (default)"},
        {"top-k", 0, OPT_INT, &o.top_k, 0, 1 << 30, "K", "Dream/LLaDA: keep the K most likely tokens (0 = off)"},
        {"alg", 0, OPT_STR, &o.alg, 0, 0, "NAME", "Dream: origin (default), maskgit_plus, topk_margin, entropy"},
        {"alg-temp", 0, OPT_FLOAT, &o.alg_temp, 0, 1e6, "T", "Dream: sample positions by confidence (0 = top)"},
        {"block-length", 0, OPT_INT, &o.block_length, 1, 1 << 20, "L", "LLaDA: semi-autoregressive block (default 32)"},
        {"remasking", 0, OPT_STR, &o.remasking, 0, 0, "NAME", "LLaDA: low_confidence (default) or random"},
        {"threshold", 0, OPT_FLOAT, &o.threshold, 0, 1, "TAU", "Dream/LLaDA: reveal every position with confidence ≥ TAU"},
        {"cache", 0, OPT_STR, &o.cache, 0, 0, "MODE", "Dream/LLaDA: approximate key/value cache, prefix or dual (blocks; default off)"},
        {"cache-refresh", 0, OPT_INT, &o.cache_refresh, 0, 1 << 20, "N", "with --cache: every N-th forward in a block is a full one (default 0: block starts only)"},
        {"eos-penalty", 0, OPT_FLOAT, &o.eos_penalty, -1e6, 1e6, "X", "Dream/LLaDA: subtracted from the EOS logit"},
        {"quant", 0, OPT_STR, &o.quant, 0, 0, "q8", "Dream/LLaDA: int8 projections"},
        {"chat", 0, OPT_FLAG, &o.chat, 0, 0, "", "Dream/LLaDA: the prompt is a user message (chat template)"},
        {"system", 0, OPT_STR, &o.system, 0, 0, "TEXT", "with --chat: system prompt"},
        {"visual", 0, OPT_FLAG, &o.visual, 0, 0, "", "redraw the canvas at every step"},
        {"delay", 0, OPT_INT, &o.delay, 0, 10000, "MS", "pause between --visual frames (default 60)"},
        {"out", 'o', OPT_STR, &o.out, 0, 0, "FILE", "write samples as JSON lines (- for stdout)"},
        {"quiet", 'q', OPT_FLAG, &o.quiet, 0, 0, "", "no statistics on stderr"},
        SM_FLAG_OPTS(o.smf),
        THREADS_OPT(o.threads),
        {0},
    };
    cli_command cmd = {"generate", "Samples text from a masked diffusion model (MDLM, Dream, LLaDA).",
                       "[-m DIR] [-p PROMPT] [--len L | --max-new-tokens N] [--steps S] [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!o.model && !(o.model = cli_default_model())) return cli_fail("generate");
    model_arch arch;
    if (model_dir_arch(o.model, &arch)) return cli_fail("generate");
    return arch == MODEL_MDLM ? generate_mdlm(&cmd, &o) : generate_tf(&cmd, &o, arch);
}
