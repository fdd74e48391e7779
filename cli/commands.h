/* commands.h — one entry point per subcommand (argv[0] is the subcommand's name). */
#ifndef SMDLM_COMMANDS_H
#define SMDLM_COMMANDS_H

int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int bench_linear(int argc, char **argv); /* cli/cmd_bench_linear.c */
/* cli/bench_transformer.c: Dream/LLaDA forward (--shape dream-*, or -m DIR of one) */
int bench_is_transformer(int argc, char **argv);
int bench_transformer(int argc, char **argv);
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

/* "VERSION (commit C)" of this program (cli/main.c), for what it records. */
const char *cli_version(void);

#endif
