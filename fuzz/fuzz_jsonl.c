/* fuzz_jsonl.c — libFuzzer target for the JSON-lines readers (and the one JSON-array reader of
 * the code benchmarks). Byte 0 mod 10 picks the reader of the rest:
 *   0  `data prepare` on a .jsonl input (data_prepare, byte tokenizer, --skip-bad when byte 0
 *      is ≥ 128)
 *   1  `tokenizer train` on a .jsonl input (bpe_trainer_add_inputs, bpe_trainer_train)
 *   2  `eval mauve` texts (jsonl_for_each_text)
 *   3  `eval genppl --samples` lines (genppl_read_line, cli/cmd_eval.c)
 *   4  `plot` training logs (plot_extract_log, cli/cmd_plot.c)
 *   5  `eval code --samples` against HumanEval's problems (code_samples_load)
 *   6–9  a problem file of HumanEval, HumanEval+, MBPP (all tasks) and sanitized MBPP (a JSON
 *      array) (code_set_load, then code_program of the first problems); for 6–8 with byte 0
 *      ≥ 128 the file is named .jsonl.gz (read through zlib, which passes plain text through)
 * With SMDLM_FUZZ_JSONL_GZ=1 every input is such a .jsonl.gz problem file (byte 0 mod 10, mod
 * 3, picks HumanEval, HumanEval+ or MBPP), for a run of the compressed readers alone.
 * Errors are expected; crashes, leaks and hangs are bugs. */
#include "commands.h"
#include "eval/codeeval.h"
#include "eval/featurizer.h"
#include "fuzz_util.h"
#include "text/bpe_train.h"
#include "text/tokenizer.h"
#include "train/data_prepare.h"

static smdlm_tokenizer *g_tok;
static code_set g_humaneval;
static char *g_tok_dir;
static int g_gz_only; /* SMDLM_FUZZ_JSONL_GZ */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    g_gz_only = getenv("SMDLM_FUZZ_JSONL_GZ") != NULL;
    g_tok_dir = fz_fixture("byte-tokenizer");
    if (tok_load_dir(&g_tok, g_tok_dir)) fz_die("the byte tokenizer");
    if (code_set_load(&g_humaneval, CODE_HUMANEVAL, "data/codebench/HumanEval.jsonl.gz", 0))
        fz_die("HumanEval's problems");
    return 0;
}

static int count_text(void *ctx, const char *text, size_t len, long lineno) {
    *(size_t *)ctx += len;
    return 0;
}

static void prepare(const char *path, int skip_bad) {
    data_prepare_opts o;
    data_prepare_defaults(&o);
    o.tokenizer_dir = g_tok_dir;
    char *out = fz_path("prepared");
    o.out_dir = out;
    o.block_len = 8;
    o.val_docs = 1;
    o.skip_bad = skip_bad;
    o.force = 1;
    o.quiet = 1;
    data_prepare_stats st;
    data_prepare(&o, &path, 1, &st);
    free(out);
}

static void train_bpe(const char *path) {
    bpe_train_opts o;
    bpe_train_defaults(&o);
    o.vocab_size = 300;
    bpe_trainer *t;
    if (bpe_trainer_new(&t, &o)) fz_die("bpe_trainer_new");
    if (bpe_trainer_add_inputs(t, &path, 1) == 0) bpe_trainer_train(t);
    bpe_trainer_free(t);
}

static void genppl(char *text, size_t len) {
    long lineno = 0;
    for (char *line = text, *end; line < text + len; line = end + 1) {
        end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end) end = text + len;
        *end = 0;
        int32_t *ids;
        size_t n;
        lineno++;
        if (genppl_read_line(g_tok, line, "samples.jsonl", lineno, "text", (int)(lineno % 3) * 4, &ids, &n) == 0) {
            if (n == 0) fz_die("genppl_read_line returned no tokens");
            free(ids);
        }
    }
}

static void problems(code_bench b, const char *path) {
    code_set s;
    if (code_set_load(&s, b, path, 1)) return;
    for (size_t i = 0; i < s.n && i < 8; i++) free(code_program(&s, i, "    return 1\n", 1));
    code_set_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t len;
    char *text = fz_text(data, size, &len);
    const int first = g_gz_only ? 136 + data[0] % 10 % 3 : data[0]; /* 136 % 10 = 6 */
    const int mode = first % 10;
    const char *name = mode == 9 ? "input.json" : mode >= 6 && first >= 128 ? "input.jsonl.gz" : "input.jsonl";
    char *path = fz_write(name, text, len);
    switch (mode) {
    case 0: prepare(path, first >= 128); break;
    case 1: train_bpe(path); break;
    case 2: {
        size_t total = 0;
        jsonl_stats st;
        jsonl_for_each_text(path, "text", NULL, count_text, &total, &st);
        break;
    }
    case 3: genppl(text, len); break;
    case 4: {
        char *dir = fz_path("plot");
        if (sm_mkdir_p(dir)) fz_die("mkdir");
        int has_val = 0, has_sm = 0;
        plot_extract_log(path, dir, 0, first >= 128, &has_val, &has_sm);
        free(dir);
        break;
    }
    case 5: {
        code_samples smp;
        if (code_samples_load(&smp, &g_humaneval, path) == 0) code_samples_free(&smp);
        break;
    }
    case 6: problems(CODE_HUMANEVAL, path); break;
    case 7: problems(CODE_HUMANEVAL_PLUS, path); break;
    case 8: problems(CODE_MBPP, path); break;
    default: problems(CODE_MBPP_SANITIZED, path); break;
    }
    free(path);
    free(text);
    return 0;
}
