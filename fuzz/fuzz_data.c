/* fuzz_data.c — libFuzzer target for a prepared data directory (src/train/data.c). Byte 0 mod
 * 2 picks what the rest replaces in a data set that `data prepare` wrote at start-up (byte
 * tokenizer, 8-token blocks, one validation document):
 *   0  meta.json (the shards stay)
 *   1  the training shard train_00000.bin (meta.json and val.bin stay)
 * Both splits are opened (shards_open), every block is read (shards_read_block, at most 4096)
 * and the tokenizer check runs (data_check_tokenizer). Errors are expected; crashes are bugs. */
#include "fuzz_util.h"
#include "train/data.h"
#include "train/data_prepare.h"

static char *g_good, *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    sm_buf text = {0};
    for (int i = 0; i < 40; i++) sm_buf_printf(&text, "{\"text\": \"Line %d of the corpus, with some words.\"}\n", i);
    char *input = fz_write("corpus.jsonl", text.s, text.len);
    free(text.s);
    g_tok = fz_fixture("byte-tokenizer");
    g_good = fz_path("good");
    data_prepare_opts o;
    data_prepare_defaults(&o);
    o.tokenizer_dir = g_tok;
    o.out_dir = g_good;
    o.block_len = 8;
    o.val_docs = 1;
    o.quiet = 1;
    data_prepare_stats st;
    const char *inputs[] = {input};
    if (data_prepare(&o, inputs, 1, &st)) fz_die("preparing the data set");
    free(input);
    static const char *const files[] = {"meta.json", "train_00000.bin"};
    for (int mode = 0; mode < 2; mode++) {
        char rel[64], *path, *text;
        size_t len;
        snprintf(rel, sizeof rel, "good/%s", files[mode]);
        path = fz_path(rel);
        if (sm_read_file(path, (size_t)1 << 30, &text, &len)) fz_die("good data set");
        fz_seed(mode, text, len, files[mode]);
        free(text);
        free(path);
    }
    return 0;
}

/* scratch/data/name: the good data set's file, or the input when replace is set. */
static void put(const char *name, int replace, const char *text, size_t len) {
    char rel[64];
    snprintf(rel, sizeof rel, "good/%s", name);
    char *good = fz_path(rel), *content;
    size_t clen;
    if (!replace && sm_read_file(good, (size_t)1 << 30, &content, &clen)) fz_die("good data set");
    snprintf(rel, sizeof rel, "data/%s", name);
    free(fz_write(rel, replace ? text : content, replace ? len : clen));
    if (!replace) free(content);
    free(good);
}

static void read_split(const char *dir, const char *split) {
    shard_set s;
    if (shards_open(&s, dir, split)) return;
    int32_t *block = malloc(sizeof(int32_t) * (size_t)s.block_len);
    for (size_t i = 0; i < s.nblocks && i < 4096; i++) shards_read_block(&s, i, block);
    free(block);
    shards_close(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t len;
    char *text = fz_text(data, size, &len);
    const int mode = data[0] % 2;
    put("meta.json", mode == 0, text, len);
    put("train_00000.bin", mode == 1, text, len);
    put("val.bin", 0, text, len);
    char *dir = fz_path("data");
    read_split(dir, "train");
    read_split(dir, "val");
    data_check_tokenizer(dir, g_tok, 0, "fuzz");
    free(dir);
    free(text);
    return 0;
}
