/* common.c — see common.h and model_flags.h. */
#include "common.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "model_flags.h"
#include "base/util.h"

int sm_flags_softmask(const cli_command *cmd, const sm_flags *f, smdlm_softmask *out) {
    *out = smdlm_softmask_default();
    if (f->config && smdlm_softmask_load(f->config, out)) return -1;
    int any_flag = cli_seen(cmd, "sm-scale") || cli_seen(cmd, "sm-centre") ||
                   cli_seen(cmd, "sm-steepness") || cli_seen(cmd, "sm-k");
    if (cli_seen(cmd, "sm-scale")) out->scale = f->scale;
    if (cli_seen(cmd, "sm-centre")) out->centre = f->centre;
    if (cli_seen(cmd, "sm-steepness")) out->steepness = f->steepness;
    if (cli_seen(cmd, "sm-k")) out->k = f->k;
    if (any_flag) out->mode = SMDLM_SM_ON;
    if (f->off) out->mode = SMDLM_SM_OFF;
    return 0;
}

int sm_flags_resolve(const cli_command *cmd, const sm_flags *f, const model_dir *md,
                     sm_params *out) {
    smdlm_softmask sm;
    return sm_flags_softmask(cmd, f, &sm) ? -1 : api_softmask_resolve(&sm, &md->sm, out);
}

/* The soft-masking a request with sm runs on the model (validation errors leave it off: the
 * generation itself reports them). */
static sm_params softmask_of_request(const smdlm_model *model, const smdlm_softmask *sm) {
    sm_params p;
    if (api_softmask_resolve(sm, &model->md.sm, &p)) p.enabled = 0;
    return p;
}

const char *cli_softmask_describe(const smdlm_model *model, const smdlm_softmask *sm, char *buf) {
    sm_params p = softmask_of_request(model, sm);
    return sm_params_describe(&p, buf, SM_DESCRIBE_CAP);
}

int cli_softmask_untrained(const smdlm_model *model, const smdlm_softmask *sm) {
    sm_params p = softmask_of_request(model, sm);
    return sm_params_untrained(&p);
}

int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int cli_fail(const char *cmd) {
    fprintf(stderr, "smdlm %s: %s\n", cmd, smdlm_last_error());
    return 1;
}

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "smdlm %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_run_gnuplot(const char *script) {
    char command[1100];
    snprintf(command, sizeof command, "gnuplot '%s' 2>&1", script);
    int st = system(command);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return SM_ERR("gnuplot failed on %s (exit %d): is gnuplot installed (apt-get install "
                      "gnuplot-nox)?", script, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

#ifndef SMDLM_DEFAULT_MODEL
#define SMDLM_DEFAULT_MODEL "models/default"
#endif

const char *cli_default_model(void) {
    const char *env = getenv("SMDLM_MODEL");
    const char *dir = env && *env ? env : SMDLM_DEFAULT_MODEL;
    char *cfg = sm_path_join(dir, "config.json");
    int ok = sm_file_exists(cfg);
    free(cfg);
    if (!ok) {
        SM_ERR("no -m given and %s '%s' holds no config.json (pass -m DIR)",
               env && *env ? "$SMDLM_MODEL" : "the default model", dir);
        return NULL;
    }
    return dir;
}


#ifndef SMDLM_SOURCE_DATADIR
#define SMDLM_SOURCE_DATADIR "data"
#endif

const char *cli_data_dir(void) {
    const char *env = getenv("SMDLM_DATA_DIR");
    if (env && *env) return env;
#ifdef SMDLM_DATADIR
    return SMDLM_DATADIR;
#else
    return SMDLM_SOURCE_DATADIR;
#endif
}

char *cli_data_path(const char *rel) {
    const char *dirs[] = {cli_data_dir(), SMDLM_SOURCE_DATADIR, "data"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char *path = sm_path_join(dirs[i], rel);
        if (sm_file_exists(path)) return path;
        free(path);
    }
    return sm_path_join(dirs[0], rel);
}

void cli_sleep_ms(int ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int cli_reject_flags(const cli_command *cmd, const char *const *names, const char *why) {
    for (; *names; names++)
        if (cli_seen(cmd, *names)) return cli_error(cmd->name, "--%s %s", *names, why);
    return 0;
}

int cli_check_quant(const char *cmd, const char *quant) {
    if (!quant || !strcmp(quant, "q8")) return 0;
    return cli_error(cmd, "--quant '%s': the only quantisation is q8", quant);
}

enum { PROMPT_MAX_BYTES = 16 << 20 };

/* Standard input to its end, at most PROMPT_MAX_BYTES. */
static int read_stdin(const char *cmd, char **out, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = sm_malloc(cap);
    for (size_t r; (r = fread(buf + n, 1, cap - n - 1, stdin)) > 0;) {
        n += r;
        if (n > PROMPT_MAX_BYTES) {
            free(buf);
            return cli_error(cmd, "the prompt on standard input is larger than %d bytes",
                             PROMPT_MAX_BYTES);
        }
        if (cap - n < 2) buf = sm_realloc(buf, cap *= 2);
    }
    if (ferror(stdin)) {
        free(buf);
        return cli_error(cmd, "cannot read standard input");
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int cli_read_prompt(const char *cmd, const char *path, char **text) {
    const int is_stdin = !strcmp(path, "-");
    size_t n;
    if (is_stdin ? read_stdin(cmd, text, &n) : sm_read_file(path, PROMPT_MAX_BYTES, text, &n))
        return is_stdin ? 1 : cli_fail(cmd);
    const char *nul = memchr(*text, 0, n);
    if (nul) {
        const size_t at = (size_t)(nul - *text);
        free(*text);
        *text = NULL;
        return cli_error(cmd, "%s: the prompt holds a NUL byte (offset %zu)",
                         is_stdin ? "standard input" : path, at);
    }
    if (n > 0 && (*text)[n - 1] == '\n') (*text)[n - 1] = 0;
    return 0;
}

int cli_stdin_redirected(void) {
    struct stat st;
    return fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode));
}

int decoder_flags_check(const cli_command *cmd, smdlm_arch arch, const smdlm_decoder_params *d) {
    static const char *const mdlm_only[] = {"len", "sampler", "eta", "t-on", "t-off", "alpha-on",
                                            "no-noise-removal", NULL};
    static const char *const dream_only[] = {"alg", "alg-temp", NULL};
    static const char *const llada_only[] = {"block-length", "remasking", "cfg-scale",
                                             "logits-eos-inf", "confidence-eos-eot-inf", NULL};
    const int dream = arch == SMDLM_ARCH_DREAM;
    const char *kind = dream ? "a Dream model" : "an LLaDA model";
    char why[96];
    snprintf(why, sizeof why, "applies to MDLM models; this is %s (--max-new-tokens sets the length)", kind);
    if (cli_reject_flags(cmd, mdlm_only, why)) return 1;
    snprintf(why, sizeof why, "applies to %s models; this is %s", dream ? "LLaDA" : "Dream", kind);
    if (cli_reject_flags(cmd, dream ? llada_only : dream_only, why)) return 1;
    if (cli_seen(cmd, "steps") && cli_seen(cmd, "tokens-per-step"))
        return cli_error(cmd->name, "give --steps or --tokens-per-step, not both");
    if (d->cache && !strcmp(d->cache, "dual") && (dream || d->block_length >= d->max_new_tokens))
        return cli_error(cmd->name, "--cache dual needs block decoding: an LLaDA model with "
                         "--block-length below --max-new-tokens (%d)", d->max_new_tokens);
    if (!dream && d->max_new_tokens % d->block_length != 0)
        return cli_error(cmd->name, "--block-length %d must divide --max-new-tokens %d (LLaDA's "
                         "default block length is %d)", d->block_length, d->max_new_tokens,
                         smdlm_gen_default_params().decoder.block_length);
    return 0;
}
