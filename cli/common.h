/* common.h — pieces shared by the subcommands: soft-masking flags, threads, errors. Only the
 * public API (include/smdlm.h) is seen here; model_flags.h adds what the commands that work
 * on model directories directly need. */
#ifndef SMDLM_CLI_COMMON_H
#define SMDLM_CLI_COMMON_H

#include "args.h"
#include "smdlm.h"

typedef struct {
    const char *config;
    float scale, centre, steepness;
    int k;
    int off;
} sm_flags;

#define SM_FLAG_OPTS(f)                                                                         \
    {"sm-config", 0, OPT_STR, &(f).config, 0, 0, "FILE",                                      \
     "soft-masking values (transparency_config.json format)"},                                \
    {"sm-scale", 0, OPT_FLOAT, &(f).scale, 0, 1, "X", "soft-masking scale in [0, 1]"},        \
    {"sm-centre", 0, OPT_FLOAT, &(f).centre, -1e6, 0, "X", "soft-masking centre (≤ 0)"},      \
    {"sm-steepness", 0, OPT_FLOAT, &(f).steepness, 1e-6, 1e6, "X", "soft-masking steepness"}, \
    {"sm-k", 0, OPT_INT, &(f).k, 1, SMDLM_SM_MAX_K, "K", "top-k tokens mixed into a masked input"}, \
    {"no-sm", 0, OPT_FLAG, &(f).off, 0, 0, "", "switch soft-masking off"}

/* The soft-masking the flags ask for, over the model directory's transparency_config.json:
 * --sm-config's values, then single flags; any of them switches it on, --no-sm off. */
int sm_flags_softmask(const cli_command *cmd, const sm_flags *f, smdlm_softmask *out);

/* How a generation with sm runs soft-masking on this model, in the words every command uses
 * (generate, chat, eval sweep, serve): "off", "on", or with a scale below the untrained
 * threshold (SM_UNTRAINED_SCALE, src/softmask/softmask.h) "on (k=3, λ scale 1.0e-06:
 * untrained, the feedback barely changes the input)". Returns buf (SM_DESCRIBE_CAP bytes). */
#define SM_DESCRIBE_CAP 128
const char *cli_softmask_describe(const smdlm_model *model, const smdlm_softmask *sm, char *buf);
/* True when sm runs soft-masking on this model with a scale below the untrained threshold. */
int cli_softmask_untrained(const smdlm_model *model, const smdlm_softmask *sm);

/* The Dream/LLaDA decoder flags of `generate` and `chat`, into a smdlm_decoder_params. */
#define DECODER_FLAG_OPTS(d)                                                                    \
    {"max-new-tokens", 0, OPT_INT, &(d).max_new_tokens, 1, 1 << 20, "N", "Dream/LLaDA: tokens to generate (default 128)"}, \
    {"tokens-per-step", 0, OPT_INT, &(d).tokens_per_step, 1, 1 << 20, "K", "Dream/LLaDA: steps = ceil(max-new-tokens / K)"}, \
    {"temperature", 0, OPT_FLOAT, &(d).temperature, 0, 1e6, "T", "Dream/LLaDA: 0 = argmax (default)"}, \
    {"top-k", 0, OPT_INT, &(d).top_k, 0, 1 << 30, "K", "Dream/LLaDA: keep the K most likely tokens (0 = off)"}, \
    {"alg", 0, OPT_STR, &(d).alg, 0, 0, "NAME", "Dream: origin (default), maskgit_plus, topk_margin, entropy"}, \
    {"alg-temp", 0, OPT_FLOAT, &(d).alg_temp, 0, 1e6, "T", "Dream: sample positions by confidence (0 = top)"}, \
    {"block-length", 0, OPT_INT, &(d).block_length, 1, 1 << 20, "L", "LLaDA: semi-autoregressive block (default 32)"}, \
    {"remasking", 0, OPT_STR, &(d).remasking, 0, 0, "NAME", "LLaDA: low_confidence (default) or random"}, \
    {"cfg-scale", 0, OPT_FLOAT, &(d).cfg_scale, 0, 1e6, "S", "LLaDA: classifier-free guidance against the prompt-masked canvas (default 0: off)"}, \
    {"logits-eos-inf", 0, OPT_FLAG, &(d).logits_eos_inf, 0, 0, "", "LLaDA: never generate <|endoftext|> (its logit −∞)"}, \
    {"confidence-eos-eot-inf", 0, OPT_FLAG, &(d).confidence_eos_eot_inf, 0, 0, "", "LLaDA: confidences with <|eot_id|>'s logit −∞ (generate.py's option)"}, \
    {"threshold", 0, OPT_FLOAT, &(d).threshold, 0, 1, "TAU", "Dream/LLaDA: reveal every position with confidence ≥ TAU"}, \
    {"cache", 0, OPT_STR, &(d).cache, 0, 0, "MODE", "Dream/LLaDA: approximate key/value cache, prefix or dual (blocks; default off)"}, \
    {"cache-refresh", 0, OPT_INT, &(d).cache_refresh, 0, 1 << 20, "N", "with --cache: every N-th forward in a block is a full one (default 0: block starts only)"}, \
    {"eos-penalty", 0, OPT_FLOAT, &(d).eos_penalty, -1e6, 1e6, "X", "Dream/LLaDA: subtracted from the EOS logit"}

/* The checks of DECODER_FLAG_OPTS's values that need no model, for a model of kind arch (Dream
 * or LLaDA): flags of the other kind, --steps with --tokens-per-step, --cache dual without
 * blocks, a block length that does not divide --max-new-tokens. 0, else 1 after the error. */
int decoder_flags_check(const cli_command *cmd, smdlm_arch arch, const smdlm_decoder_params *d);

/* Flags of names (NULL-terminated) that this command takes only for another kind of model: an
 * error "--NAME why" for the first one given (1), else 0. */
int cli_reject_flags(const cli_command *cmd, const char *const *names, const char *why);

/* --quant: NULL or "q8"; 0, else 1 after the error. */
int cli_check_quant(const char *cmd, const char *quant);

/* A prompt file (-f FILE, or "-" for standard input): the whole content is the prompt, one
 * trailing newline removed (llama.cpp's -f). *text is malloc'ed. An unreadable file, more than
 * 16 MiB or a NUL byte are errors naming the file (and the byte's offset): 0, else 1. */
int cli_read_prompt(const char *cmd, const char *path, char **text);
/* 1 when standard input is a pipe or a regular file (text redirected into the command, not a
 * terminal and not /dev/null). */
int cli_stdin_redirected(void);

#define THREADS_OPT(var)                                                                  \
    {"threads", 't', OPT_INT, &(var), 1, 1024, "N", "threads (default: all cores)"}
int default_threads(void);

/* The model `generate` uses without -m: $SMDLM_MODEL, else the bundled default
 * (SMDLM_DEFAULT_MODEL, set at build time to the source tree's models/ directory). NULL with
 * an error when neither names a model directory. */
const char *cli_default_model(void);

/* The data file REL (e.g. "codebench/HumanEval.jsonl.gz") from the first data directory
 * that holds it: $SMDLM_DATA_DIR, the installed one (SMDLM_DATADIR, PREFIX/share/smdlm, in
 * the binary `make install` installs), the source tree's data/ (SMDLM_SOURCE_DATADIR), data/
 * under the current directory. When none holds it: the path in the first of those (the
 * error will name it). The caller frees the result. */
char *cli_data_path(const char *rel);
/* The data directory cli_data_path tries first ($SMDLM_DATA_DIR or the installed one), for
 * `smdlm --version`. */
const char *cli_data_dir(void);

/* Runs gnuplot on a script file; a clear error when gnuplot is missing or fails. */
int cli_run_gnuplot(const char *script);

/* Pauses ms milliseconds (nothing for ms ≤ 0; a signal ends it early). */
void cli_sleep_ms(int ms);

/* Reports smdlm_last_error() as "smdlm CMD: ..." and returns exit status 1. */
int cli_fail(const char *cmd);
/* Reports a message of the front end itself the same way. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
