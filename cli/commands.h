/* commands.h — one entry point per subcommand (argv[0] is the subcommand's name). */
#ifndef SMDLM_COMMANDS_H
#define SMDLM_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int bench_linear(int argc, char **argv); /* cli/cmd_bench_linear.c */
/* cli/bench_transformer.c: Dream/LLaDA forward (--shape dream-*, or -m DIR of one) */
int bench_is_transformer(int argc, char **argv);
int bench_transformer(int argc, char **argv);
int bench_q8(int argc, char **argv); /* the accuracy of --quant q8 */
int cmd_grad(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_eval_mauve(int argc, char **argv); /* cli/cmd_eval_mauve.c */
int cmd_eval_code(int argc, char **argv);
int cmd_eval_sweep(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_convert(int argc, char **argv);

/* Readers of the commands' input files (fuzz/fuzz_jsonl.c calls them too). */
/* cli/cmd_plot.c: one train_log.jsonl into DIR/logI.train (x loss scale centre steepness) and
 * DIR/logI.val (x val_nats); by_tokens takes x from "tokens" instead of "step". */
int plot_extract_log(const char *log, const char *dir, int i, int by_tokens, int *has_val, int *has_sm);
/* cli/cmd_eval.c: one line of `eval genppl --samples` (line: NUL-terminated, from file:lineno),
 * its string `field` re-tokenised by tok into *ids (malloc'ed; truncated to max_len if > 0). */
struct smdlm_tokenizer;
int genppl_read_line(const struct smdlm_tokenizer *tok, char *line, const char *file, long lineno,
                     const char *field, int max_len, int32_t **ids, size_t *n);

/* "VERSION (commit C)" of this program (cli/main.c), for what it records. */
const char *cli_version(void);

#endif
