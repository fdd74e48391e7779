/* main.c — the smdlm program: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} k_commands[] = {
    {"generate", cmd_generate, "sample text from a model (MDLM samplers, soft-masking)"},
    {"forward", cmd_forward, "raw logits of a batch of token ids (.npy in, .npy out)"},
    {"eval", cmd_eval, "perplexity of a model on token shards (eval ppl)"},
    {"plot", cmd_plot, "loss curves of training logs (gnuplot PNG)"},
    {"grad", cmd_grad, "loss and every gradient of one batch (plain, soft-masked or causal)"},
    {"data", cmd_data, "text files, directories, JSONL → token shards (data prepare)"},
    {"train", cmd_train, "train an MDLM with soft-masking (or its causal baseline) from token shards"},
    {"tokenizer", cmd_tokenizer, "train a byte-level BPE tokenizer (tokenizer train)"},
    {"tokenize", cmd_tokenize, "text to token ids and back"},
    {"bench", cmd_bench, "throughput and memory of the forward pass"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: smdlm COMMAND [options]   (smdlm COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        fprintf(f, "  %-10s %s\n", k_commands[i].name, k_commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        if (!strcmp(argv[1], k_commands[i].name)) return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "smdlm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
