/* cmd_generate.c — `smdlm generate`: samples from an MDLM (unconditional or prefix-prompted, any
 * sampler, with or without soft-masking) or completions from a Dream / LLaDA model (plain or
 * chat-templated prompts); --visual redraws the canvas every step. The architecture comes from
 * the directory's config.json; flags of the other kind of model are rejected. Everything runs
 * through the public API (include/smdlm.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "base/stop_signal.h"
#include "base/progress.h"

#define MASK_GLYPH "\xe2\x96\x91" /* ░ */

/* Every flag of the command; the two paths read their own. */
typedef struct {
    const char *model, *adapter, *prompt, *prompt_file, *out;
    int steps, n, visual, delay, quiet, allow_special, threads, check_weights;
    float top_p;
    uint64_t seed;
    sm_flags smf;
    /* MDLM */
    const char *sampler;
    int len, no_noise_removal;
    float eta, t_on, t_off, alpha_on;
    /* Dream / LLaDA */
    const char *quant, *system;
    int chat;
    smdlm_decoder_params dec;
    smdlm_arch arch;   /* the directory's, from config.json */
} gen_opts;

/* Samples per batch of an MDLM request: each batch is written as soon as it is done, so a run
 * stopped by a signal keeps its finished samples. Sample b draws with seed + b whatever its
 * batch and no MDLM sample depends on the others of its batch, so the split changes no output.
 * Dream/LLaDA requests run as one batch (threshold and cache decoding count over the batch). */
enum { MDLM_BATCH = 4 };

/* What the step callback needs: the --visual frame and the progress report. */
typedef struct {
    const smdlm_model *model;
    int visual; /* --visual */
    int visual_delay_ms;
    int tty;
    progress prog;
    int first, n; /* the batch's first sample; samples in the request */
} visual_ctx;

/* One --visual frame: every canvas of the batch (headed by its sample number when the request
 * has several). */
static void show_frame(const visual_ctx *v, const smdlm_step *s) {
    if (v->tty) fputs("\x1b[H\x1b[2J", stdout);
    if (s->steps > 0) printf("step %d/%d\n", s->step, s->steps);
    else printf("step %d\n", s->step);
    for (int b = 0; b < s->B; b++) {
        char *text;
        smdlm_canvas_text(v->model, s->ids + (size_t)b * s->T, (size_t)s->T, MASK_GLYPH, &text);
        if (v->n > 1) printf("--- sample %d ---\n", v->first + b);
        printf("%s\n", text);
        free(text);
    }
    if (!v->tty) printf("\n");
    fflush(stdout);
    cli_sleep_ms(v->visual_delay_ms);
}

/* The step callback: the --visual frame and the progress; stops the run within this step on
 * SIGINT/SIGTERM. */
static int on_step(void *user, const smdlm_step *s) {
    visual_ctx *v = user;
    if (v->visual && !stop_signal()) show_frame(v, s);
    if (s->steps > 0) /* threshold decoding has no step count: no fraction to report */
        progress_report(&v->prog, (double)v->first * s->steps + (double)s->B * s->step, (double)v->n * s->steps,
                        "samples %d-%d of %d, step %d/%d", v->first + 1, v->first + s->B, v->n, s->step, s->steps);
    return stop_signal() != 0;
}

/* The settings both kinds of model share. */
static smdlm_gen_params common_params(const gen_opts *o) {
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.seed = o->seed;
    gp.steps = o->steps;
    gp.top_p = o->top_p;
    gp.n = o->n;
    gp.allow_special = o->allow_special;
    return gp;
}

static smdlm_model *load_model(const gen_opts *o) {
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = o->threads;
    lp.quant = o->quant;
    lp.need_tokenizer = o->prompt != NULL;
    lp.check_weights = o->check_weights;
    lp.adapter = o->adapter;
    smdlm_model *model = smdlm_model_load(o->model, &lp);
    if (!model) cli_fail("generate");
    else if (!smdlm_has_tokenizer(model)) /* every output of generate is text */
        fprintf(stderr, "smdlm generate: note: %s has no tokenizer files: token ids are printed "
                        "instead of text\n", o->model);
    return model;
}

/* Where the finished samples go, batch by batch: JSON lines to --out, else text on stdout. */
typedef struct sample_sink sample_sink;
typedef void (*sample_json_fn)(cJSON *j, const smdlm_result *r, const gen_opts *o, int b, int index);
typedef void (*sample_text_fn)(const smdlm_result *r, int b);
struct sample_sink {
    sample_json_fn json;
    sample_text_fn text;
    FILE *out;          /* --out once the first batch opened it */
    int written;        /* samples written so far */
    int T, prompt_len;  /* of the batches */
    smdlm_stats stats;  /* summed over the batches */
};

/* Writes one finished batch whose first sample is the request's `first`: 0, else 1 after the
 * error. Each line is flushed at once. */
static int write_batch(sample_sink *k, const gen_opts *o, const smdlm_result *r, int first) {
    if (o->out && !k->out) {
        k->out = !strcmp(o->out, "-") ? stdout : fopen(o->out, "w");
        if (!k->out) return cli_error("generate", "cannot create '%s'", o->out);
    }
    for (int b = 0; b < r->n; b++) {
        if (k->out) {
            cJSON *j = cJSON_CreateObject();
            k->json(j, r, o, b, first + b);
            char *line = cJSON_PrintUnformatted(j);
            fprintf(k->out, "%s\n", line);
            free(line);
            cJSON_Delete(j);
        } else if (!o->visual) {
            if (o->n > 1) printf("=== sample %d ===\n", first + b);
            k->text(r, b);
        }
    }
    if (fflush(k->out ? k->out : stdout) != 0)
        return cli_error("generate", "cannot write '%s'", o->out ? o->out : "stdout");
    k->written += r->n;
    return 0;
}

/* Adds a batch's statistics to the request's: counts and times summed, the rest the batch's. */
static void add_stats(smdlm_stats *sum, const smdlm_stats *st) {
    smdlm_stats prev = *sum;
    *sum = *st;
    sum->forwards += prev.forwards;
    sum->tokens += prev.tokens;
    sum->seconds += prev.seconds;
    sum->forward_seconds += prev.forward_seconds;
    sum->softmask_seconds += prev.softmask_seconds;
    sum->refreshes += prev.refreshes;
    sum->positions_computed += prev.positions_computed;
}

/* Runs the request in batches of at most `batch` samples, writing each when it is done.
 * Returns 0; 1 after reporting an error; or 128 + the signal that stopped it (after saying how
 * many samples were written). */
static int run(const cli_command *cmd, const gen_opts *o, smdlm_model *model,
               smdlm_gen_params *gp, int batch, sample_sink *k) {
    if (sm_flags_softmask(cmd, &o->smf, &gp->sm)) return cli_fail("generate");
    visual_ctx vc = {model, o->visual, o->delay, isatty(STDOUT_FILENO), {0}, 0, o->n};
    progress_start(&vc.prog, "smdlm generate", o->quiet);
    gp->on_step = on_step;
    gp->user = &vc;
    stop_signals_catch(NULL, 0, NULL);
    smdlm_state *state = smdlm_state_new(model);
    int status = 0;
    for (int first = 0; first < o->n && !status && !stop_signal(); first += batch) {
        gp->seed = o->seed + (uint64_t)first;
        gp->n = o->n - first < batch ? o->n - first : batch;
        vc.first = first;
        smdlm_result r = {0};
        int rc = smdlm_generate(state, o->prompt, gp, &r);
        progress_clear(&vc.prog);
        if (rc == SMDLM_OK) {
            k->T = r.T;
            k->prompt_len = r.prompt_len;
            add_stats(&k->stats, &r.stats);
            status = write_batch(k, o, &r, first);
        } else if (rc != SMDLM_ABORTED) {
            status = cli_fail("generate");
        }
        smdlm_result_free(&r);
    }
    smdlm_state_free(state);
    if (k->out && k->out != stdout && fclose(k->out) != 0 && !status)
        status = cli_error("generate", "cannot write '%s'", o->out);
    if (status || !stop_signal()) return status;
    fprintf(stderr, "smdlm generate: stopped by signal %d: %d of %d samples written%s%s\n",
            stop_signal(), k->written, o->n, o->out ? " to " : "", o->out ? o->out : "");
    return 128 + stop_signal();
}

static void mdlm_json(cJSON *j, const smdlm_result *r, const gen_opts *o, int b, int index) {
    cJSON_AddStringToObject(j, "text", r->text[b]);
    cJSON_AddItemToObject(j, "ids", cJSON_CreateIntArray(r->ids + (size_t)b * r->T, r->T));
    cJSON_AddNumberToObject(j, "seed", (double)(o->seed + (uint64_t)index));
    cJSON_AddStringToObject(j, "sampler", r->stats.method);
    cJSON_AddNumberToObject(j, "steps", r->stats.planned_steps);
    cJSON_AddBoolToObject(j, "soft_masking", r->stats.soft_masking);
}

static void mdlm_text(const smdlm_result *r, int b) { printf("%s\n", r->text[b]); }

/* sm: cli_softmask_describe's words for the run. */
static void print_mdlm_stats(const gen_opts *o, const sample_sink *k, const char *sm) {
    const smdlm_stats *st = &k->stats;
    if (!o->quiet)
        fprintf(stderr,
                "smdlm generate: %s, %d steps, %d forwards, soft-masking %s, %d×%d tokens in %.2f s "
                "(%.1f tokens/s; SM inputs %.1f%% of forward time)\n",
                st->method, st->steps, st->forwards, st->soft_masking ? sm : "off", k->written,
                k->T, st->seconds, (double)st->tokens / st->seconds,
                st->forward_seconds > 0 ? 100.0 * st->softmask_seconds / st->forward_seconds : 0.0);
}

/* --len and the prompt against the model (the API checks both too; these messages name the
 * flags). */
static int check_mdlm_canvas(const gen_opts *o, const smdlm_model *model) {
    const int max = smdlm_max_length(model), len = o->len ? o->len : max;
    if (len > max) return cli_error("generate", "--len %d exceeds the model's length %d", len, max);
    if (!o->prompt) return 0;
    int32_t *ids;
    size_t n;
    if (smdlm_tokenize(model, o->prompt, o->allow_special, &ids, &n)) return cli_fail("generate");
    free(ids);
    if (n < (size_t)len) return 0;
    return cli_error("generate", "the prompt has %zu tokens but the canvas holds only %d (raise "
                     "--len)", n, len);
}

static int generate_mdlm(const cli_command *cmd, const gen_opts *o) {
    static const char *const tf_only[] = {"max-new-tokens", "tokens-per-step", "temperature",
                                          "top-k", "alg", "alg-temp", "block-length", "remasking",
                                          "threshold", "eos-penalty", "quant", "chat", "system",
                                          "cache", "cache-refresh", "cfg-scale", "logits-eos-inf",
                                          "confidence-eos-eot-inf", NULL};
    if (cli_reject_flags(cmd, tf_only, "applies to Dream/LLaDA models; this is an MDLM model")) return 1;
    smdlm_gen_params gp = common_params(o);
    gp.mdlm = (smdlm_mdlm_params){o->sampler, o->len, o->eta, o->t_on, o->t_off, o->alpha_on,
                                  !o->no_noise_removal};
    smdlm_model *model = load_model(o);
    sample_sink k = {.json = mdlm_json, .text = mdlm_text};
    int status = !model || check_mdlm_canvas(o, model) ? 1 : run(cmd, o, model, &gp, MDLM_BATCH, &k);
    char sm[SM_DESCRIBE_CAP];
    if (!status) print_mdlm_stats(o, &k, cli_softmask_describe(model, &gp.sm, sm));
    smdlm_model_free(model);
    return status;
}

static void tf_json(cJSON *j, const smdlm_result *r, const gen_opts *o, int b, int index) {
    const int32_t *canvas = r->ids + (size_t)b * r->T;
    if (r->text[b]) cJSON_AddStringToObject(j, "text", r->text[b]);
    if (o->prompt) cJSON_AddStringToObject(j, "prompt", o->prompt);
    cJSON_AddItemToObject(j, "ids", cJSON_CreateIntArray(canvas + r->prompt_len, r->gen_len[b]));
    cJSON_AddItemToObject(j, "prompt_ids", cJSON_CreateIntArray(canvas, r->prompt_len));
    cJSON_AddNumberToObject(j, "seed", (double)(o->seed + (uint64_t)index));
    const int llada = o->arch == SMDLM_ARCH_LLADA;
    cJSON_AddStringToObject(j, "decoder", llada ? "llada" : "dream");
    cJSON_AddStringToObject(j, llada ? "remasking" : "alg", r->stats.method);
    if (o->dec.threshold > 0.0f) cJSON_AddNumberToObject(j, "threshold", o->dec.threshold);
    else cJSON_AddNumberToObject(j, "steps", r->stats.planned_steps);
    cJSON_AddNumberToObject(j, "temperature", o->dec.temperature);
    cJSON_AddBoolToObject(j, "soft_masking", r->stats.soft_masking);
    if (strcmp(r->stats.cache, "off")) {
        cJSON_AddStringToObject(j, "cache", r->stats.cache);
        cJSON_AddNumberToObject(j, "cache_refresh", o->dec.cache_refresh);
    }
    if (o->dec.cfg_scale > 0.0f) cJSON_AddNumberToObject(j, "cfg_scale", o->dec.cfg_scale);
    if (o->dec.logits_eos_inf) cJSON_AddBoolToObject(j, "logits_eos_inf", 1);
    if (o->dec.confidence_eos_eot_inf) cJSON_AddBoolToObject(j, "confidence_eos_eot_inf", 1);
}

/* A completion as text (ids when the directory has no tokenizer). */
static void tf_text(const smdlm_result *r, int b) {
    const int32_t *ids = r->ids + (size_t)b * r->T + r->prompt_len;
    if (r->text[b]) {
        printf("%s\n", r->text[b]);
    } else {
        for (int i = 0; i < r->gen_len[b]; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
}

static void print_tf_stats(const gen_opts *o, const sample_sink *k, const char *sm) {
    const smdlm_stats *st = &k->stats;
    if (o->quiet) return;
    fprintf(stderr,
            "smdlm generate: %s %s%s, %d steps, %d forwards, soft-masking %s, prompt %d tokens, "
            "%ld tokens generated in %.2f s (%.1f tokens/s; forwards %.0f%% of the time)\n",
            o->arch == SMDLM_ARCH_DREAM ? "dream" : "llada", st->method, o->quant ? " q8" : "",
            st->steps, st->forwards, st->soft_masking ? sm : "off", k->prompt_len, st->tokens,
            st->seconds, st->seconds > 0 ? (double)st->tokens / st->seconds : 0.0,
            st->seconds > 0 ? 100.0 * st->forward_seconds / st->seconds : 0.0);
    if (strcmp(st->cache, "off"))
        fprintf(stderr, "smdlm generate: %s cache (approximate): %d refreshes, %ld positions "
                "computed (%.1f%% of %d full forwards)\n", st->cache, st->refreshes,
                st->positions_computed,
                st->forwards ? 100.0 * (double)st->positions_computed /
                                   ((double)st->forwards * k->written * k->T) : 0.0, st->forwards);
}

/* The flag checks of a Dream/LLaDA run that need no model: 0, else 1 after the error. */
static int check_tf_flags(const cli_command *cmd, const gen_opts *o) {
    if (decoder_flags_check(cmd, o->arch, &o->dec)) return 1;
    if (o->system && !o->chat) return cli_error("generate", "--system needs --chat");
    if (o->chat && !o->prompt) return cli_error("generate", "--chat needs -p PROMPT (the user message)");
    return cli_check_quant("generate", o->quant);
}

static int generate_tf(const cli_command *cmd, const gen_opts *o) {
    if (check_tf_flags(cmd, o)) return 1;
    smdlm_gen_params gp = common_params(o);
    gp.steps = cli_seen(cmd, "steps") ? o->steps : o->dec.max_new_tokens; /* one token per step */
    gp.chat = o->chat;
    gp.system = o->system;
    gp.decoder = o->dec;
    smdlm_model *model = load_model(o);
    sample_sink k = {.json = tf_json, .text = tf_text};
    int status = !model ? 1 : run(cmd, o, model, &gp, o->n, &k);
    char sm[SM_DESCRIBE_CAP];
    if (!status) print_tf_stats(o, &k, cli_softmask_describe(model, &gp.sm, sm));
    smdlm_model_free(model);
    return status;
}

/* The prompt from -f FILE, -p - (standard input), or standard input redirected into a command
 * given neither -p nor -f (empty: no prompt); *buf holds it (free it). 0, else 1. */
static int read_prompt(gen_opts *o, char **buf) {
    const char *file = o->prompt_file;
    if (file && o->prompt) return cli_error("generate", "give -p or -f, not both");
    if (o->prompt && !strcmp(o->prompt, "-")) file = "-";
    const int implicit = !file && !o->prompt && cli_stdin_redirected();
    if (implicit) file = "-";
    if (!file) return 0;
    if (cli_read_prompt("generate", file, buf)) return 1;
    o->prompt = implicit && !**buf ? NULL : *buf;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    gen_opts o = {.steps = 128, .n = 1, .delay = 60, .threads = default_threads(), .top_p = 1.0f,
                  .sampler = "ddpm_cache", .eta = 0.02f, .t_on = 0.55f, .t_off = 0.05f,
                  .alpha_on = 0.9f, .dec = smdlm_gen_default_params().decoder};
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &o.model, 0, 0, "DIR", "model directory (default: $SMDLM_MODEL, else the bundled models/default)"},
        {"adapter", 0, OPT_STR, &o.adapter, 0, 0, "DIR", "Dream/LLaDA: a PEFT LoRA/DoRA adapter directory to apply (without -m: its base model)"},
        {"prompt", 'p', OPT_STR, &o.prompt, 0, 0, "TEXT", "prefix that stays fixed (Dream/LLaDA: the prompt)"},
        {"file", 'f', OPT_STR, &o.prompt_file, 0, 0, "FILE", "the prompt is FILE's content (- for standard input; one trailing newline dropped)"},
        {"allow-special", 0, OPT_FLAG, &o.allow_special, 0, 0, "", "parse special-token text in the prompt"},
        {"len", 'l', OPT_INT, &o.len, 1, 1 << 20, "L", "MDLM: canvas length in tokens (default: the model's length)"},
        {"steps", 's', OPT_INT, &o.steps, 1, 1000000, "S", "denoising steps (MDLM default 128; Dream/LLaDA: --max-new-tokens)"},
        {"sampler", 0, OPT_STR, &o.sampler, 0, 0, "NAME", "MDLM: ddpm, ddpm_cache (default), remdm-cap, remdm-loop"},
        {"top-p", 0, OPT_FLOAT, &o.top_p, 1e-6, 1, "P", "nucleus sampling (default 1 = off)"},
        {"seed", 0, OPT_U64, &o.seed, 0, 0, "N", "random seed (sample b uses seed + b)"},
        {"n", 'n', OPT_INT, &o.n, 1, 4096, "N", "number of samples (MDLM: batches of 4, each written when done; Dream/LLaDA: one batch)"},
        {"eta", 0, OPT_FLOAT, &o.eta, 0, 1, "X", "ReMDM remasking strength (default 0.02)"},
        {"t-on", 0, OPT_FLOAT, &o.t_on, 0, 1, "X", "ReMDM-loop: loop phase starts (default 0.55)"},
        {"t-off", 0, OPT_FLOAT, &o.t_off, 0, 1, "X", "ReMDM-loop: loop phase ends (default 0.05)"},
        {"alpha-on", 0, OPT_FLOAT, &o.alpha_on, 1e-6, 1 - 1e-6, "X", "ReMDM-loop: α during the loop (default 0.9)"},
        {"no-noise-removal", 0, OPT_FLAG, &o.no_noise_removal, 0, 0, "", "MDLM: skip the final argmax forward"},
        DECODER_FLAG_OPTS(o.dec),
        {"quant", 0, OPT_STR, &o.quant, 0, 0, "q8", "Dream/LLaDA: int8 projections"},
        {"chat", 0, OPT_FLAG, &o.chat, 0, 0, "", "Dream/LLaDA: the prompt is a user message (chat template)"},
        {"check-weights", 0, OPT_FLAG, &o.check_weights, 0, 0, "", "scan every weight for NaN and infinities at load (reads the whole checkpoint)"},
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
                       "[-m DIR] [-p PROMPT | -f FILE] [--len L | --max-new-tokens N] [--steps S] [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!o.model && o.adapter) { /* the adapter directory names its base */
        o.model = o.adapter;
        o.adapter = NULL;
    }
    if (!o.model && !(o.model = cli_default_model())) return cli_fail("generate");
    if (smdlm_dir_arch(o.model, &o.arch)) return cli_fail("generate");
    char *prompt = NULL;
    if (read_prompt(&o, &prompt)) return 1;
    rc = o.arch == SMDLM_ARCH_MDLM ? generate_mdlm(&cmd, &o) : generate_tf(&cmd, &o);
    free(prompt);
    return rc;
}
