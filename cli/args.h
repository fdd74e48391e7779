/* args.h — one option table per subcommand; it parses argv (strtol/strtod, range-checked)
 * and prints the usage text. Bad flags and values: message on stderr, exit status 1. */
#ifndef SMDLM_ARGS_H
#define SMDLM_ARGS_H

#include <stdint.h>
#include <stdio.h>

typedef enum { OPT_FLAG, OPT_INT, OPT_FLOAT, OPT_STR, OPT_U64 } opt_type;

typedef struct {
    const char *name;    /* long name without "--" */
    char short_name;     /* 0 if none */
    opt_type type;
    void *dst;           /* int* (FLAG, INT), float* (FLOAT), const char** (STR), uint64_t* */
    double lo, hi;       /* inclusive range for INT/FLOAT */
    const char *metavar; /* shown in usage */
    const char *help;
    int seen;            /* set by the parser */
} cli_opt;

typedef struct {
    const char *name;    /* "generate" */
    const char *summary; /* one line */
    const char *usage;   /* "-m DIR [options]" */
    cli_opt *opts;       /* terminated by an entry with name == NULL */
} cli_command;

/* Parses argv[0..argc) (argv[0] is the subcommand). Positional arguments are collected into
 * pos (up to max_pos). Returns 0, 1 after printing help (--help), or -1 after an error. */
int cli_parse(cli_command *cmd, int argc, char **argv, const char **pos, int max_pos, int *npos);
void cli_usage(FILE *f, const cli_command *cmd);
const cli_opt *cli_find(const cli_command *cmd, const char *name);
int cli_seen(const cli_command *cmd, const char *name);

#endif
