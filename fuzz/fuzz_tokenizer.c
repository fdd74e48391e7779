/* fuzz_tokenizer.c — libFuzzer target for the byte-level BPE tokenizer (src/text/tokenizer.c).
 *
 * The input is encoded with GPT-2's tokenizer (loaded once, from tokenizer.json) and the ids are
 * decoded again; the same input is also encoded with the byte tokenizer of
 * tests/fixtures/tokenizer/byte-legacy.json (added tokens with lstrip/rstrip, prefix space) and
 * read as a list of 16-bit ids to decode; and with the Qwen-style tokenizer of
 * tests/fixtures/llada-tokenizer (NFC normalizer, Split regex + ByteLevel pre-tokenizer), with and
 * without special-token parsing. Invariants checked (a violation traps):
 *   - encode fails only on invalid UTF-8, and then says so;
 *   - GPT-2: decode(encode(text)) == text (byte-level BPE is lossless);
 *   - decode of any in-range ids succeeds and yields valid UTF-8 (it encodes again).
 *
 * With SMDLM_FUZZ_TOKENIZER_LOAD=1 the input is instead a tokenizer file: it is loaded as a
 * tokenizer.json and as a vocab.json (with the byte tokenizer's merges.txt); when it loads, a
 * fixed text is encoded and decoded. Seeds: tests/bad/tokenizer/ and the fixtures.
 *
 * Build and run from the repository root:
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *       fuzz/fuzz_tokenizer.c src/text/tokenizer.c src/base/jsonutil.c src/base/util.c -lcjson -lpcre2-8 \
 *       -lutf8proc -lpthread \
 *       -o build/fuzz_tokenizer
 *   ./build/fuzz_tokenizer -max_len=4096 -max_total_time=60
 * SMDLM_FUZZ_FIXTURES overrides the fixture directory (default tests/fixtures).
 *   mkdir -p build/corpus_tokload && cp tests/bad/tokenizer/[a-z]*.json \
 *       tests/fixtures/tokenizer/byte-legacy.json build/corpus_tokload/ &&
 *       cp tests/fixtures/byte-tokenizer/vocab.json build/corpus_tokload/byte-vocab.json
 *   SMDLM_FUZZ_TOKENIZER_LOAD=1 ./build/fuzz_tokenizer -max_total_time=60 build/corpus_tokload
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "text/tokenizer.h"
#include "base/util.h"

static smdlm_tokenizer *g_gpt2, *g_legacy, *g_qwen;
static int g_load_mode;
static char g_merges[1024];

static void die(const char *what) {
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", what, smdlm_last_error());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("SMDLM_FUZZ_FIXTURES");
    char path[1024];
    if (!dir) dir = "tests/fixtures";
    g_load_mode = getenv("SMDLM_FUZZ_TOKENIZER_LOAD") != NULL;
    snprintf(g_merges, sizeof g_merges, "%s/byte-tokenizer/merges.txt", dir);
    snprintf(path, sizeof path, "%s/gpt2-tokenizer/tokenizer.json", dir);
    if (tok_load_json(&g_gpt2, path) != 0) die("loading the GPT-2 tokenizer");
    snprintf(path, sizeof path, "%s/tokenizer/byte-legacy.json", dir);
    if (tok_load_json(&g_legacy, path) != 0) die("loading byte-legacy.json");
    snprintf(path, sizeof path, "%s/llada-tokenizer", dir);
    if (tok_load_dir(&g_qwen, path) != 0) die("loading the Qwen-style tokenizer");
    return 0;
}

/* Encode; on success decode and (when lossless) compare. Returns 0 if the text was rejected. */
static int roundtrip_ex(const smdlm_tokenizer *t, const char *text, size_t len, int lossless,
                       unsigned flags) {
    int32_t *ids;
    size_t n;
    if (tok_encode_ex(t, text, len, flags, &ids, &n) != 0) {
        if (!strstr(smdlm_last_error(), "UTF-8")) die("encode failed for another reason");
        return 0;
    }
    char *back;
    size_t blen;
    if (tok_decode(t, ids, n, &back, &blen) != 0) die("decode of encoded ids failed");
    if (back[blen] != 0) die("decode output not NUL-terminated");
    if (lossless && (blen != len || memcmp(back, text, len) != 0))
        die("round trip changed the text");
    free(ids);
    free(back);
    return 1;
}

static int roundtrip(const smdlm_tokenizer *t, const char *text, size_t len, int lossless) {
    return roundtrip_ex(t, text, len, lossless, TOK_ALLOW_SPECIAL);
}

static void use_loaded(smdlm_tokenizer *t) {
    static const char text[] = "Hello <|endoftext|> w\xc3\xb6rld  123 \xf0\x9f\x98\x80<|mask|>\n";
    int32_t *ids;
    size_t n;
    if (tok_encode(t, text, sizeof text - 1, &ids, &n) != 0) die("encode with a loaded tokenizer");
    char *s;
    size_t len;
    if (tok_decode(t, ids, n, &s, &len) != 0) die("decode with a loaded tokenizer");
    for (int32_t id = -1; id <= tok_vocab_size(t); id++) {
        const char *str = tok_id_to_str(t, id);
        if (str && tok_str_to_id(t, str) < 0) die("id_to_str/str_to_id disagree");
    }
    free(ids);
    free(s);
    tok_free(t);
}

static void fuzz_load(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz_tokenizer", 0);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    smdlm_tokenizer *t = NULL;
    if (tok_load_json(&t, path) == 0)
        use_loaded(t);
    else if (t)
        die("failed load left a tokenizer");
    if (tok_load_files(&t, path, g_merges) == 0) use_loaded(t);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (g_load_mode) {
        fuzz_load(data, size);
        return 0;
    }
    const char *text = (const char *)data;
    int ok1 = roundtrip(g_gpt2, text, size, 1);
    int ok2 = roundtrip(g_legacy, text, size, 0);
    if (ok1 != ok2) die("tokenizers disagree on UTF-8 validity");
    if (roundtrip_ex(g_qwen, text, size, 0, 0) != ok1 ||
        roundtrip_ex(g_qwen, text, size, 0, TOK_ALLOW_SPECIAL) != ok1)
        die("the Qwen-style tokenizer disagrees on UTF-8 validity");

    /* the bytes as 16-bit ids, reduced into the vocabulary: decode must give valid UTF-8 */
    size_t n = size / 2;
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    int V = tok_vocab_size(g_gpt2);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)((data[2 * i] | (data[2 * i + 1] << 8)) % V);
    char *s;
    size_t len;
    if (tok_decode(g_gpt2, ids, n, &s, &len) != 0) die("decode of in-range ids failed");
    roundtrip(g_gpt2, s, len, 1) || (die("decode produced invalid UTF-8"), 0);
    free(s);
    if (n) { /* an out-of-range id must be an error, not a crash */
        ids[n - 1] = V + (int32_t)data[0];
        if (tok_decode(g_gpt2, ids, n, &s, &len) == 0) die("out-of-range id accepted");
    }
    free(ids);
    return 0;
}
