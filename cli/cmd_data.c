/* cmd_data.c — `smdlm data prepare`: text files, directories and JSONL → token shards for
 * `smdlm train` (the format is in src/train/data.h, the behaviour in src/train/data_prepare.h);
 * `smdlm data export`: shard blocks back to text. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "train/data.h"
#include "train/data_prepare.h"
#include "text/tokenizer.h"
#include "base/util.h"

static int cmd_data_prepare(int argc, char **argv) {
    data_prepare_opts o;
    data_prepare_defaults(&o);
    int block_len = o.block_len, skip_bad = 0, force = 0, quiet = 0, threads = default_threads();
    float val_fraction = (float)o.val_fraction;
    uint64_t val_docs = 0, shard_tokens = o.shard_tokens, seed = 0;
    const char *tokenizer = NULL, *out = NULL, *field = o.jsonl_field, *glob = o.glob;
    cli_opt opts[] = {
        {"tokenizer", 0, OPT_STR, &tokenizer, 0, 0, "DIR",
         "tokenizer directory (tokenizer.json or vocab.json + merges.txt; required)"},
        {"out", 'o', OPT_STR, &out, 0, 0, "DIR", "output directory (created; required)"},
        {"block-len", 0, OPT_INT, &block_len, DATA_MIN_BLOCK_LEN, DATA_MAX_BLOCK_LEN, "L",
         "tokens per block, BOS and EOS included (default 1024)"},
        {"val-fraction", 0, OPT_FLOAT, &val_fraction, 0, 0.5, "F",
         "fraction of documents for validation (default 0.005)"},
        {"val-docs", 0, OPT_U64, &val_docs, 0, 0, "N",
         "exactly N validation documents (counts the documents first)"},
        {"jsonl-field", 0, OPT_STR, &field, 0, 0, "NAME", "text field of .jsonl lines (default text)"},
        {"glob", 0, OPT_STR, &glob, 0, 0, "PATTERN",
         "files taken from input directories (default *; with a '/', matched on the path)"},
        {"shard-tokens", 0, OPT_U64, &shard_tokens, 0, 0, "N",
         "tokens per train shard (default 134217728)"},
        {"seed", 0, OPT_U64, &seed, 0, 0, "S", "seed of the validation split (default 0)"},
        {"skip-bad", 0, OPT_FLAG, &skip_bad, 0, 0, "",
         "skip bad documents (binary data, bad JSONL lines) with a warning"},
        {"force", 0, OPT_FLAG, &force, 0, 0, "", "replace a data set already in --out"},
        {"quiet", 'q', OPT_FLAG, &quiet, 0, 0, "", "no progress line, warnings or summary"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {
        "data prepare",
        "Tokenizes text files, directories and .jsonl files (one document per file or line) into "
        "token shards.",
        "--tokenizer DIR --out DIR [options] INPUTS...", opts};
    const char **pos = sm_malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
    int npos, rc = cli_parse(&cmd, argc, argv, pos, argc, &npos);
    if (rc) {
        free(pos);
        return rc < 0 ? 1 : 0;
    }
    int status = 1;
    if (!tokenizer || !out || npos == 0) {
        fprintf(stderr, "smdlm data prepare: --tokenizer, --out and at least one input are "
                        "required (see smdlm data prepare --help)\n");
        goto done;
    }
    if (cli_seen(&cmd, "val-fraction") && cli_seen(&cmd, "val-docs")) {
        fprintf(stderr, "smdlm data prepare: --val-fraction and --val-docs exclude each other\n");
        goto done;
    }
    if (shard_tokens < (uint64_t)block_len) {
        fprintf(stderr, "smdlm data prepare: --shard-tokens %llu is smaller than --block-len %d\n",
                (unsigned long long)shard_tokens, block_len);
        goto done;
    }
    if (cli_seen(&cmd, "val-docs") && val_docs > (uint64_t)INT64_MAX) {
        fprintf(stderr, "smdlm data prepare: --val-docs is too large\n");
        goto done;
    }
    o.tokenizer_dir = tokenizer;
    o.out_dir = out;
    o.block_len = block_len;
    char num[32]; /* the decimal the user wrote, not the float nearest to it */
    snprintf(num, sizeof num, "%.7g", (double)val_fraction);
    o.val_fraction = strtod(num, NULL);
    o.val_docs = cli_seen(&cmd, "val-docs") ? (int64_t)val_docs : -1;
    o.jsonl_field = field;
    o.glob = glob;
    o.shard_tokens = shard_tokens;
    o.seed = seed;
    o.threads = threads;
    o.skip_bad = skip_bad;
    o.force = force;
    o.quiet = quiet;
    o.progress = !quiet;
    data_prepare_stats st;
    if (data_prepare(&o, pos, npos, &st)) {
        cli_fail("data prepare");
        goto done;
    }
    if (!quiet) {
        char line[1024];
        data_prepare_summary(&o, &st, line, sizeof line);
        printf("%s\n", line);
    }
    status = 0;
done:
    free(pos);
    return status;
}

/* `smdlm data export`: blocks of a split decoded to {"text": ...} lines — e.g. held-out
 * human text of the samples' length as the MAUVE reference. Special tokens (BOS/EOS) are
 * dropped from the text. */
static int cmd_data_export(int argc, char **argv) {
    const char *data = NULL, *out = NULL, *split = "val";
    int n = 0;
    cli_opt opts[] = {
        {"data", 'd', OPT_STR, &data, 0, 0, "DIR", "token shards from `smdlm data prepare` (required)"},
        {"out", 'o', OPT_STR, &out, 0, 0, "FILE.jsonl", "output file (required)"},
        {"split", 0, OPT_STR, &split, 0, 0, "NAME", "val (default) or train"},
        {"blocks", 'n', OPT_INT, &n, 0, 1 << 30, "N", "the first N blocks (default all)"},
        {0},
    };
    cli_command cmd = {"data export", "Decodes blocks of token shards to JSON lines {\"text\": ...}.",
                       "--data DIR -o FILE.jsonl [--split val] [-n N]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!data || !out) {
        fprintf(stderr, "smdlm data export: --data and -o are required\n");
        return 1;
    }
    shard_set sh = {0};
    smdlm_tokenizer *tok = NULL;
    char *tok_dir = sm_path_join(data, "tokenizer"), *tmp = NULL;
    int32_t *ids = NULL;
    FILE *f = NULL;
    int status = 1;
    if (shards_open(&sh, data, split) || tok_load_dir(&tok, tok_dir)) goto done;
    size_t count = n > 0 && (size_t)n < sh.nblocks ? (size_t)n : sh.nblocks;
    ids = sm_malloc(sizeof *ids * (size_t)sh.block_len);
    if (!(f = sm_atomic_open(out, &tmp))) goto done;
    int ok = 1;
    for (size_t i = 0; i < count && ok; i++) {
        char *text = NULL;
        size_t len;
        ok = shards_read_block(&sh, i, ids) == 0 &&
             tok_decode_ex(tok, ids, (size_t)sh.block_len, TOK_SKIP_SPECIAL, &text, &len) == 0;
        if (!ok) break;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", text);
        char *line = cJSON_PrintUnformatted(o);
        ok = fprintf(f, "%s\n", line) > 0;
        free(line);
        cJSON_Delete(o);
        free(text);
    }
    if (sm_atomic_commit(f, tmp, out, ok) || !ok) goto done;
    fprintf(stderr, "%zu %s blocks of %d tokens -> %s\n", count, split, sh.block_len, out);
    status = 0;
done:
    if (status) cli_fail("data export");
    free(ids);
    free(tok_dir);
    tok_free(tok);
    shards_close(&sh);
    return status;
}

static void data_usage(FILE *f) {
    fprintf(f, "usage: smdlm data SUBCOMMAND [options]   (smdlm data SUBCOMMAND --help)\n\n"
               "subcommands:\n"
               "  prepare    text files, directories and .jsonl → token shards for training\n"
               "  export     blocks of token shards → JSON lines of text (e.g. a MAUVE reference)\n");
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) {
        data_usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        data_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "prepare")) return cmd_data_prepare(argc - 1, argv + 1);
    if (!strcmp(argv[1], "export")) return cmd_data_export(argc - 1, argv + 1);
    fprintf(stderr, "smdlm data: unknown subcommand '%s'\n", argv[1]);
    data_usage(stderr);
    return 1;
}
