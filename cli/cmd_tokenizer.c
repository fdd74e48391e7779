/* cmd_tokenizer.c — `smdlm tokenizer train`: a byte-level BPE vocabulary from text files,
 * directories and JSONL (src/text/bpe_train.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/bpe_train.h"
#include "commands.h"
#include "common.h"
#include "base/util.h"

static int cmd_tokenizer_train(int argc, char **argv) {
    bpe_train_opts o;
    bpe_train_defaults(&o);
    const char *out = NULL;
    uint64_t min_freq = o.min_frequency;
    int quiet = 0;
    cli_opt opts[] = {
        {"vocab", 0, OPT_INT, &o.vocab_size, BPE_MIN_VOCAB, BPE_MAX_VOCAB, "N",
         "vocabulary size, <|endoftext|> and <|mask|> included (required)"},
        {"out", 'o', OPT_STR, &out, 0, 0, "DIR",
         "output directory, created if missing (required)"},
        {"min-frequency", 0, OPT_U64, &min_freq, 0, 0, "F",
         "merge only pairs seen at least F times (default 2)"},
        {"glob", 0, OPT_STR, &o.glob, 0, 0, "PATTERN",
         "files taken from directories (fnmatch; default '*')"},
        {"jsonl-field", 0, OPT_STR, &o.jsonl_field, 0, 0, "NAME",
         "text field of .jsonl lines (default 'text')"},
        {"quiet", 'q', OPT_FLAG, &quiet, 0, 0, "", "no progress or summary"},
        {0},
    };
    cli_command cmd = {
        "tokenizer train",
        "Trains a byte-level BPE tokenizer (HF tokenizers' BpeTrainer) on text files, directories "
        "and .jsonl files;\n  writes vocab.json, merges.txt, tokenizer.json and "
        "tokenizer_config.json with <|mask|> as the last id.",
        "--vocab N --out DIR [options] INPUTS...", opts};
    const char **pos = sm_malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
    int npos, rc = cli_parse(&cmd, argc, argv, pos, argc, &npos);
    if (rc) {
        free(pos);
        return rc < 0 ? 1 : 0;
    }
    if (!cli_seen(&cmd, "vocab") || !out || npos == 0) {
        fprintf(stderr, "smdlm tokenizer train: --vocab, --out and at least one input are "
                        "required (see --help)\n");
        free(pos);
        return 1;
    }
    o.min_frequency = min_freq;
    o.progress = !quiet;
    bpe_train_stats st;
    rc = bpe_train(&o, pos, npos, out, &st);
    free(pos);
    if (rc) return cli_fail("tokenizer train");
    if (!quiet) {
        double mb = (double)st.bytes / 1e6, secs = st.count_seconds + st.merge_seconds;
        printf("trained %d ids (%d merges) from %llu files, %llu documents, %.2f MB "
               "(%llu words, %llu distinct) in %.2f s: counting %.2f s (%.1f MB/s), "
               "merging %.2f s\n",
               st.vocab_size, st.merges, (unsigned long long)st.files,
               (unsigned long long)st.documents, mb, (unsigned long long)st.words,
               (unsigned long long)st.unique_words, secs, st.count_seconds,
               st.count_seconds > 0 ? mb / st.count_seconds : 0.0, st.merge_seconds);
        if (st.stopped_early)
            printf("note: stopped below --vocab %d: no pair occurs %llu times or more "
                   "(lower --min-frequency or add text)\n",
                   o.vocab_size, (unsigned long long)(o.min_frequency > 1 ? o.min_frequency : 1));
        printf("wrote %s/{vocab.json,merges.txt,tokenizer.json,tokenizer_config.json}; "
               "<|endoftext|> = %d, <|mask|> = %d\n",
               out, st.vocab_size - 2, st.vocab_size - 1);
    }
    return 0;
}

int cmd_tokenizer(int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (sub && !strcmp(sub, "train")) return cmd_tokenizer_train(argc - 1, argv + 1);
    FILE *f = sub && (!strcmp(sub, "-h") || !strcmp(sub, "--help")) ? stdout : stderr;
    if (sub && f == stderr) fprintf(stderr, "smdlm tokenizer: unknown subcommand '%s'\n", sub);
    fprintf(f, "usage: smdlm tokenizer train --vocab N --out DIR [options] INPUTS...\n"
               "  (smdlm tokenizer train --help for the options)\n");
    return f == stdout ? 0 : 1;
}
