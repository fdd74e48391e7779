/* fuzz_tokenizer_config.c — libFuzzer target for the files beside a tokenizer's vocabulary.
 * Byte 0 mod 3 picks what the rest is:
 *   0  tokenizer_config.json beside a Qwen-style (ChatML) tokenizer.json
 *   1  tokenizer_config.json beside a LLaDA-style tokenizer.json
 *   2  merges.txt beside the byte tokenizer's vocab.json
 * The directory is loaded (tok_load_dir, tok_load_files) and fingerprinted; a tokenizer that
 * loads detects its chat template (chat_detect), renders a conversation (chat_encode) and
 * encodes and decodes a text. Loading may fail with a message; anything else is a bug. */
#include "fuzz_util.h"
#include "text/chat.h"
#include "text/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fz_copy_fixture("tiny-dream-tokenizer/tokenizer.json", "chatml/tokenizer.json");
    fz_copy_fixture("tiny-llada-tokenizer/tokenizer.json", "llada/tokenizer.json");
    fz_copy_fixture("byte-tokenizer/vocab.json", "bpe/vocab.json");
    return 0;
}

static void use(smdlm_tokenizer *t) {
    static const char text[] = "Hello <|im_end|> w\xc3\xb6rld\n\n  x";
    int32_t *ids;
    size_t n;
    char *back;
    size_t blen;
    if (tok_encode(t, text, sizeof text - 1, &ids, &n) != 0) fz_die("encode with a loaded tokenizer");
    if (tok_decode(t, ids, n, &back, &blen) != 0) fz_die("decode of encoded ids");
    free(ids);
    free(back);
    chat_format f;
    if (chat_detect(t, &f) == 0) {
        const chat_msg msgs[] = {{"system", "Be brief."}, {"user", " Say <|im_end|>hi. "},
                                 {"assistant", "hi"}, {"user", ""}};
        if (chat_encode(t, f, msgs, 4, 0, &ids, &n) == 0) free(ids);
        if (chat_encode(t, f, msgs + 1, 1, TOK_ALLOW_SPECIAL, &ids, &n) == 0) free(ids);
    }
    tok_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t len;
    char *text = fz_text(data, size, &len);
    const int mode = data[0] % 3;
    static const char *const dirs[] = {"chatml", "llada", "bpe"};
    char name[64], fp[TOK_FINGERPRINT_SIZE];
    snprintf(name, sizeof name, "%s/%s", dirs[mode], mode == 2 ? "merges.txt" : "tokenizer_config.json");
    char *path = fz_write(name, text, len), *dir = fz_path(dirs[mode]);
    smdlm_tokenizer *t = NULL;
    if (mode == 2) {
        char *vocab = fz_path("bpe/vocab.json");
        if (tok_load_files(&t, vocab, path) == 0) use(t);
        free(vocab);
    }
    if (tok_load_dir(&t, dir) == 0) use(t);
    tok_fingerprint_dir(dir, fp);
    free(path);
    free(dir);
    free(text);
    return 0;
}
