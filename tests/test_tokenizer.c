/* test_tokenizer.c — the byte-level BPE tokenizer against Hugging Face `tokenizers` golden ids
 * (tools/gen_tokenizer_golden.js): GPT-2 through both load paths (vocab.json + merges.txt and
 * tokenizer.json), golden decodes incl. partial UTF-8, round trips, encoding from several
 * threads at once, the tiny byte tokenizer used by test models, and one hand-made broken file
 * per failure class (tests/bad/tokenizer/). */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "text/tokenizer.h"
#include "base/util.h"

#define BAD_DIR "tests/bad/tokenizer"
#define GPT2_DIR FIXTURES_DIR "/gpt2-tokenizer"
#define BYTE_DIR FIXTURES_DIR "/byte-tokenizer"
#define GOLD_DIR FIXTURES_DIR "/tokenizer"

/* ---------------------------------------------------------------- golden files */

typedef struct {
    char tokenizer[64]; /* golden_byte.jsonl: which tokenizer */
    char *text;         /* exact UTF-8 bytes (from "hex"), NULL for decode-only cases */
    size_t len;
    int32_t *ids;
    size_t n;
    char *decoded; /* from "decoded_hex" */
    size_t dec_len;
    int32_t *ids_plain; /* Qwen: "ids_plain" (special-token text as plain text), else NULL */
    size_t n_plain;
    char *dec_skip, *nfc; /* Qwen: "decoded_skip_hex", "nfc_hex" */
    size_t skip_len, nfc_len;
} golden;

typedef struct {
    golden *g;
    size_t n;
} golden_set;

static char *from_hex(const char *hex, size_t *len) {
    size_t n = strlen(hex) / 2;
    char *out = sm_malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) fail_msg("bad hex in golden file");
        out[i] = (char)v;
    }
    out[n] = 0;
    *len = n;
    return out;
}

static golden_set load_golden(const char *path) {
    char *text;
    size_t len;
    if (sm_read_file(path, 64u << 20, &text, &len) != 0) fail_msg("%s", smdlm_last_error());
    golden_set s = {0};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        if (!o) fail_msg("%s: bad JSON line", path);
        s.g = sm_realloc(s.g, (s.n + 1) * sizeof *s.g);
        golden *g = &s.g[s.n++];
        memset(g, 0, sizeof *g);
        const cJSON *tk = cJSON_GetObjectItem(o, "tokenizer"), *hx = cJSON_GetObjectItem(o, "hex");
        const cJSON *ids = cJSON_GetObjectItem(o, "ids"),
                    *dh = cJSON_GetObjectItem(o, "decoded_hex");
        if (cJSON_IsString(tk)) snprintf(g->tokenizer, sizeof g->tokenizer, "%s", tk->valuestring);
        if (cJSON_IsString(hx)) g->text = from_hex(hx->valuestring, &g->len);
        assert_true(cJSON_IsArray(ids) && cJSON_IsString(dh));
        g->n = (size_t)cJSON_GetArraySize(ids);
        g->ids = sm_malloc((g->n + 1) * sizeof *g->ids);
        size_t i = 0;
        for (const cJSON *e = ids->child; e; e = e->next) g->ids[i++] = (int32_t)e->valuedouble;
        g->decoded = from_hex(dh->valuestring, &g->dec_len);
        const cJSON *ip = cJSON_GetObjectItem(o, "ids_plain"),
                    *ds = cJSON_GetObjectItem(o, "decoded_skip_hex"),
                    *nf = cJSON_GetObjectItem(o, "nfc_hex");
        if (cJSON_IsArray(ip)) {
            g->n_plain = (size_t)cJSON_GetArraySize(ip);
            g->ids_plain = sm_malloc((g->n_plain + 1) * sizeof *g->ids_plain);
            i = 0;
            for (const cJSON *e = ip->child; e; e = e->next) g->ids_plain[i++] = (int32_t)e->valuedouble;
        }
        if (cJSON_IsString(ds)) g->dec_skip = from_hex(ds->valuestring, &g->skip_len);
        if (cJSON_IsString(nf)) g->nfc = from_hex(nf->valuestring, &g->nfc_len);
        cJSON_Delete(o);
    }
    free(text);
    return s;
}

static void free_golden(golden_set *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->g[i].text);
        free(s->g[i].ids);
        free(s->g[i].decoded);
        free(s->g[i].ids_plain);
        free(s->g[i].dec_skip);
        free(s->g[i].nfc);
    }
    free(s->g);
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    printf("    %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

/* Encode g->text, compare with g->ids; returns 1 on mismatch (printed). */
static int check_encode(const smdlm_tokenizer *t, const golden *g, const char *what) {
    int32_t *ids;
    size_t n;
    if (tok_encode(t, g->text, g->len, &ids, &n) != 0) {
        printf("  %s: encode failed: %s\n", what, smdlm_last_error());
        return 1;
    }
    int bad = n != g->n || memcmp(ids, g->ids, n * sizeof *ids) != 0;
    if (bad) {
        printf("  %s: MISMATCH for text \"%.60s\"\n", what, g->text);
        print_ids("got", ids, n);
        print_ids("ref", g->ids, g->n);
    }
    free(ids);
    return bad;
}

/* Decode g->ids, compare with g->decoded; returns 1 on mismatch. */
static int check_decode(const smdlm_tokenizer *t, const golden *g, const char *what) {
    char *s;
    size_t len;
    if (tok_decode(t, g->ids, g->n, &s, &len) != 0) {
        printf("  %s: decode failed: %s\n", what, smdlm_last_error());
        return 1;
    }
    int bad = len != g->dec_len || memcmp(s, g->decoded, len) != 0 || s[len] != 0;
    if (bad) printf("  %s: decode MISMATCH: got \"%s\" ref \"%s\"\n", what, s, g->decoded);
    free(s);
    return bad;
}

static void check_golden_encodes(const smdlm_tokenizer *t, const golden_set *s, const char *filter,
                                 const char *what) {
    size_t bad = 0, tested = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->g[i].text || (filter && strcmp(s->g[i].tokenizer, filter) != 0)) continue;
        bad += (size_t)check_encode(t, &s->g[i], what);
        tested++;
    }
    printf("  %-34s %zu golden strings, %zu mismatches\n", what, tested, bad);
    assert_true(tested > 0);
    assert_int_equal(bad, 0);
}

static void check_golden_decodes(const smdlm_tokenizer *t, const golden_set *s, const char *filter,
                                 const char *what) {
    size_t bad = 0, tested = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (filter && strcmp(s->g[i].tokenizer, filter) != 0) continue;
        bad += (size_t)check_decode(t, &s->g[i], what);
        tested++;
    }
    printf("  %-34s %zu golden decodes, %zu mismatches\n", what, tested, bad);
    assert_true(tested > 0);
    assert_int_equal(bad, 0);
}

static void load_ok(int rc, const smdlm_tokenizer *t) {
    if (rc != 0) fail_msg("load failed: %s", smdlm_last_error());
    assert_non_null(t);
}

/* ---------------------------------------------------------------- GPT-2 */

static smdlm_tokenizer *g_gpt2_files, *g_gpt2_json;
static golden_set g_gold, g_dec_gold;

static int gpt2_setup(void **state) {
    (void)state;
    smdlm_tokenizer *t;
    if (tok_load_files(&t, GPT2_DIR "/vocab.json", GPT2_DIR "/merges.txt") != 0) {
        fprintf(stderr, "gpt2 vocab+merges: %s\n", smdlm_last_error());
        return -1;
    }
    g_gpt2_files = t;
    if (tok_load_json(&t, GPT2_DIR "/tokenizer.json") != 0) {
        fprintf(stderr, "gpt2 tokenizer.json: %s\n", smdlm_last_error());
        return -1;
    }
    g_gpt2_json = t;
    g_gold = load_golden(GOLD_DIR "/golden.jsonl");
    g_dec_gold = load_golden(GOLD_DIR "/decode_golden.jsonl");
    return 0;
}

static int gpt2_teardown(void **state) {
    (void)state;
    tok_free(g_gpt2_files);
    tok_free(g_gpt2_json);
    free_golden(&g_gold);
    free_golden(&g_dec_gold);
    return 0;
}

static void gpt2_golden_count(void **state) {
    (void)state;
    printf("  golden.jsonl: %zu strings, decode_golden.jsonl: %zu cases\n", g_gold.n, g_dec_gold.n);
    assert_true(g_gold.n >= 60);
}

static void gpt2_encode_vocab_merges(void **state) {
    (void)state;
    check_golden_encodes(g_gpt2_files, &g_gold, NULL, "gpt2 vocab.json+merges.txt");
}

static void gpt2_encode_tokenizer_json(void **state) {
    (void)state;
    check_golden_encodes(g_gpt2_json, &g_gold, NULL, "gpt2 tokenizer.json");
    smdlm_tokenizer *t;
    load_ok(tok_load_dir(&t, GPT2_DIR), t); /* picks tokenizer.json */
    check_golden_encodes(t, &g_gold, NULL, "gpt2 tok_load_dir");
    tok_free(t);
}

static void gpt2_decode_golden(void **state) {
    (void)state;
    check_golden_decodes(g_gpt2_json, &g_gold, NULL, "gpt2 decode (tokenizer.json)");
    check_golden_decodes(g_gpt2_files, &g_gold, NULL, "gpt2 decode (vocab+merges)");
    check_golden_decodes(g_gpt2_json, &g_dec_gold, NULL, "gpt2 decode partial UTF-8");
}

static void gpt2_roundtrip(void **state) {
    (void)state;
    for (size_t i = 0; i < g_gold.n; i++) {
        const golden *g = &g_gold.g[i];
        int32_t *ids;
        size_t n, len;
        char *back;
        assert_int_equal(tok_encode(g_gpt2_json, g->text, g->len, &ids, &n), 0);
        assert_int_equal(tok_decode(g_gpt2_json, ids, n, &back, &len), 0);
        if (len != g->len || memcmp(back, g->text, len) != 0)
            fail_msg("round trip changed \"%.60s\" into \"%.60s\"", g->text, back);
        free(ids);
        free(back);
    }
}

static void gpt2_vocab_queries(void **state) {
    (void)state;
    const smdlm_tokenizer *ts[2] = {g_gpt2_files, g_gpt2_json};
    for (int k = 0; k < 2; k++) {
        const smdlm_tokenizer *t = ts[k];
        assert_int_equal(tok_vocab_size(t), 50257);
        assert_int_equal(tok_str_to_id(t, "<|endoftext|>"), 50256);
        assert_int_equal(tok_str_to_id(t, "\xc4\xa0the"), 262); /* "Ġthe" */
        assert_int_equal(tok_str_to_id(t, "!"), 0);
        assert_int_equal(tok_str_to_id(t, "no such token"), -1);
        assert_string_equal(tok_id_to_str(t, 262), "\xc4\xa0the");
        assert_string_equal(tok_id_to_str(t, 50256), "<|endoftext|>");
        assert_null(tok_id_to_str(t, 50257));
        assert_null(tok_id_to_str(t, -1));
    }
}

static void gpt2_encode_rejects_invalid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        const char *offset;
    } cases[] = {
        {"abc\xff", 4, "offset 3"},
        {"\xc3", 1, "offset 0"},
        {"ok \xe2\x82", 5, "offset 3"},
        {"\xed\xa0\x80", 3, "offset 0"},       /* surrogate */
        {"a\xc0\x80", 3, "offset 1"},          /* overlong */
        {"xy\xf4\x90\x80\x80", 6, "offset 2"}, /* > U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 99;
        assert_int_not_equal(tok_encode(g_gpt2_json, cases[i].s, cases[i].len, &ids, &n), 0);
        const char *msg = smdlm_last_error();
        printf("  invalid UTF-8 case %zu -> %s\n", i, msg);
        assert_non_null(strstr(msg, "UTF-8"));
        assert_non_null(strstr(msg, cases[i].offset));
        assert_null(ids);
        assert_int_equal(n, 0);
    }
    /* NUL bytes are valid UTF-8 and encode (byte 0 → "Ā", id 188) */
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode(g_gpt2_json, "\0", 1, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 188);
    free(ids);
}

static void gpt2_decode_rejects_bad_ids(void **state) {
    (void)state;
    const int32_t bad[][3] = {{15496, -1, 995}, {50257, 0, 0}, {0, 0, INT32_MAX}};
    for (int i = 0; i < 3; i++) {
        char *s = (char *)1;
        size_t len = 99;
        assert_int_not_equal(tok_decode(g_gpt2_json, bad[i], 3, &s, &len), 0);
        printf("  bad ids %d -> %s\n", i, smdlm_last_error());
        assert_non_null(strstr(smdlm_last_error(), "out of range"));
        assert_null(s);
    }
}

/* Long inputs: whitespace / letter / digit runs far beyond any golden string. */
static void gpt2_long_inputs(void **state) {
    (void)state;
    const size_t N = 1 << 20;
    char *s = sm_malloc(N + 2);
    const char fills[] = {' ', 'a', '7', '\n', '!'};
    for (size_t f = 0; f < sizeof fills; f++) {
        memset(s, fills[f], N);
        s[N] = 'x';
        int32_t *ids;
        size_t n, len;
        char *back;
        double t0 = sm_time_sec();
        assert_int_equal(tok_encode(g_gpt2_json, s, N + 1, &ids, &n), 0);
        assert_true(n > 0);
        assert_int_equal(tok_decode(g_gpt2_json, ids, n, &back, &len), 0);
        assert_int_equal(len, N + 1);
        assert_memory_equal(back, s, N + 1);
        printf("  1 MiB of '%c' + 'x': %zu tokens (%.2fs)\n", fills[f] == '\n' ? 'N' : fills[f], n,
               sm_time_sec() - t0);
        free(ids);
        free(back);
    }
    free(s);
}

/* The per-call word cache: a text of many distinct words (each vocabulary entry "Ġ" + ASCII
 * letters, and its prefixes), written twice so the second copy hits the cache, must encode to
 * the concatenation of the words encoded one at a time (no cache involved). */
static void gpt2_word_cache(void **state) {
    (void)state;
    const smdlm_tokenizer *t = g_gpt2_json;
    size_t cap = 1 << 22, len = 0, nref = 0;
    char *text = sm_malloc(cap);
    int32_t *ref = sm_malloc(cap * sizeof *ref);
    for (int copy = 0; copy < 2; copy++)
        for (int32_t id = 0; id < tok_vocab_size(t); id++) {
            const char *s = tok_id_to_str(t, id);
            size_t n = s ? strlen(s) : 0;
            if (n < 3 || memcmp(s, "\xc4\xa0", 2) != 0 ||
                strspn(s + 2, "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != n - 2)
                continue;
            for (size_t k = n - 2; k >= 1 && k + 2 > n - 3; k--) { /* the word and 2 prefixes */
                char word[128];
                if (k + 1 >= sizeof word) break;
                word[0] = ' ';
                memcpy(word + 1, s + 2, k);
                int32_t *ids;
                size_t m;
                assert_int_equal(tok_encode(t, word, k + 1, &ids, &m), 0);
                assert_true(len + k + 1 <= cap && nref + m <= cap);
                memcpy(text + len, word, k + 1);
                memcpy(ref + nref, ids, m * sizeof *ids);
                len += k + 1;
                nref += m;
                free(ids);
            }
        }
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode(t, text, len, &ids, &n), 0);
    printf("  %zu bytes of words, twice: %zu tokens\n", len, n);
    assert_int_equal(tu_compare_i32("cached vs one word at a time", ids, ref, n < nref ? n : nref),
                     0);
    assert_int_equal(n, nref);
    free(ids);
    free(ref);
    free(text);
}

/* ---------------------------------------------------------------- threads */

typedef struct {
    const smdlm_tokenizer *t;
    const golden_set *gold;
    int rounds;
    const char *big; /* a long text and its single-threaded encoding */
    size_t big_len;
    const int32_t *big_ids;
    size_t big_n;
    size_t mismatches;
} thread_arg;

static void *encode_thread(void *p) {
    thread_arg *a = p;
    for (int r = 0; r < a->rounds; r++)
        for (size_t i = 0; i < a->gold->n; i++) {
            const golden *g = &a->gold->g[(i + (size_t)r * 7) % a->gold->n];
            int32_t *ids;
            size_t n;
            if (tok_encode(a->t, g->text, g->len, &ids, &n) != 0) {
                a->mismatches++;
                continue;
            }
            if (n != g->n || memcmp(ids, g->ids, n * sizeof *ids) != 0) a->mismatches++;
            free(ids);
            char *s;
            size_t len;
            if (tok_decode(a->t, g->ids, g->n, &s, &len) != 0) {
                a->mismatches++;
                continue;
            }
            if (len != g->dec_len || memcmp(s, g->decoded, len) != 0) a->mismatches++;
            free(s);
            if (i % 16 == 0) { /* interleave long encodes so threads overlap inside BPE */
                int32_t *big;
                size_t nb;
                if (tok_encode(a->t, a->big, a->big_len, &big, &nb) != 0 || nb != a->big_n ||
                    memcmp(big, a->big_ids, nb * sizeof *big) != 0)
                    a->mismatches++;
                free(big);
            }
        }
    return NULL;
}

static void gpt2_threads(void **state) {
    (void)state;
    enum { NT = 4 };
    pthread_t th[NT];
    thread_arg args[NT];
    size_t big_len = 0;
    for (size_t i = 0; i < g_gold.n; i++) big_len += g_gold.g[i].len;
    char *big = sm_malloc(big_len * 4 + 1), *p = big;
    for (int r = 0; r < 4; r++)
        for (size_t i = 0; i < g_gold.n; i++) {
            memcpy(p, g_gold.g[i].text, g_gold.g[i].len);
            p += g_gold.g[i].len;
        }
    big_len = (size_t)(p - big);
    int32_t *big_ids;
    size_t big_n;
    assert_int_equal(tok_encode(g_gpt2_json, big, big_len, &big_ids, &big_n), 0);
    for (int i = 0; i < NT; i++) {
        args[i] = (thread_arg){
            i % 2 ? g_gpt2_files : g_gpt2_json, &g_gold, 20, big, big_len, big_ids, big_n, 0};
        assert_int_equal(pthread_create(&th[i], NULL, encode_thread, &args[i]), 0);
    }
    size_t bad = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        bad += args[i].mismatches;
    }
    printf("  %d threads x 20 rounds x %zu strings (+ %zu-byte texts): %zu mismatches\n", NT,
           g_gold.n, big_len, bad);
    free(big);
    free(big_ids);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------------- byte tokenizer */

static void byte_tokenizer(void **state) {
    (void)state;
    golden_set s = load_golden(GOLD_DIR "/golden_byte.jsonl");
    smdlm_tokenizer *t;
    load_ok(tok_load_dir(&t, BYTE_DIR), t);
    assert_int_equal(tok_vocab_size(t), 282);
    assert_int_equal(tok_str_to_id(t, "<|endoftext|>"), 280);
    assert_int_equal(tok_str_to_id(t, "<|mask|>"), 281);
    assert_int_equal(tok_str_to_id(t, "!"), 0);           /* GPT-2 byte order */
    assert_int_equal(tok_str_to_id(t, "\xc4\xa0"), 220);  /* "Ġ" = byte 0x20 */
    assert_int_equal(tok_str_to_id(t, "\xc4\xa0t"), 256); /* first merge */
    check_golden_encodes(t, &s, "byte-tokenizer", "byte-tokenizer (vocab+merges)");
    check_golden_decodes(t, &s, "byte-tokenizer", "byte-tokenizer decode");
    tok_free(t);
    free_golden(&s);
}

/* vocab.json + merges.txt without any "<|...|>" entry: no added tokens at all. */
static void byte_tokenizer_without_specials(void **state) {
    (void)state;
    char *text;
    assert_int_equal(sm_read_file(BYTE_DIR "/vocab.json", 1 << 20, &text, NULL), 0);
    cJSON *v = cJSON_Parse(text);
    free(text);
    assert_non_null(v);
    cJSON_DeleteItemFromObjectCaseSensitive(v, "<|endoftext|>");
    cJSON_DeleteItemFromObjectCaseSensitive(v, "<|mask|>");
    char *json = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    char path[] = "/tmp/smdlm_tok_vocab_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sm_write_file_atomic(path, json, strlen(json)), 0);
    free(json);
    smdlm_tokenizer *t;
    load_ok(tok_load_files(&t, path, BYTE_DIR "/merges.txt"), t);
    unlink(path);
    assert_int_equal(tok_vocab_size(t), 280);
    assert_int_equal(tok_str_to_id(t, "<|mask|>"), -1);
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode(t, "a<|mask|>", 9, &ids, &n), 0);
    assert_int_equal(n, 9); /* every byte its own token: no merge applies */
    for (size_t i = 0; i < n; i++) assert_true(ids[i] < 256);
    free(ids);
    tok_free(t);
}

/* Legacy tokenizer.json: "a b" merges, no model.type, add_prefix_space, lstrip/rstrip,
 * non-special added tokens outside the vocabulary, normalized vs non-normalized order. */
static void byte_legacy_json(void **state) {
    (void)state;
    golden_set s = load_golden(GOLD_DIR "/golden_byte.jsonl");
    smdlm_tokenizer *t;
    load_ok(tok_load_json(&t, GOLD_DIR "/byte-legacy.json"), t);
    assert_int_equal(tok_vocab_size(t), 286);
    assert_int_equal(tok_str_to_id(t, "hello"), 285);
    assert_int_equal(tok_str_to_id(t, "hello world"), 282);
    assert_int_equal(tok_str_to_id(t, "caf\xc3\xa9"), 283);
    check_golden_encodes(t, &s, "byte-legacy.json", "byte-legacy.json");
    check_golden_decodes(t, &s, "byte-legacy.json", "byte-legacy.json decode");
    tok_free(t);
    free_golden(&s);
}

/* ignore_merges: a word that is itself in the vocabulary is one token even when no merge
 * sequence reaches it. */
static void byte_ignore_merges(void **state) {
    (void)state;
    golden_set s = load_golden(GOLD_DIR "/golden_byte.jsonl");
    smdlm_tokenizer *t;
    load_ok(tok_load_json(&t, GOLD_DIR "/byte-ignore-merges.json"), t);
    assert_int_equal(tok_str_to_id(t, "\xc4\xa0"
                                      "cat"),
                     282);
    check_golden_encodes(t, &s, "byte-ignore-merges.json", "byte-ignore-merges.json");
    check_golden_decodes(t, &s, "byte-ignore-merges.json", "byte-ignore-merges.json decode");
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode(t, " cat", 4, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 282);
    free(ids);
    tok_free(t);
    free_golden(&s);
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_load_error(int rc, smdlm_tokenizer *t, const char *file,
                              const char *const *words);

/* ---------------------------------------------------------------- Qwen2 family */

#define QWEN_DIR FIXTURES_DIR "/qwen-tokenizer"
#define LLADA_DIR FIXTURES_DIR "/llada-tokenizer"

static char g_qdir[64]; /* temporary directory with the decompressed tokenizer.json */
static smdlm_tokenizer *g_qwen;
static golden_set g_qgold;

static int qwen_setup(void **state) {
    (void)state;
    snprintf(g_qdir, sizeof g_qdir, "/tmp/smdlm_qwen_XXXXXX");
    if (!mkdtemp(g_qdir)) return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "gzip -dc %s/tokenizer.json.gz > %s/tokenizer.json && "
             "cp %s/tokenizer_config.json %s/",
             QWEN_DIR, g_qdir, QWEN_DIR, g_qdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot decompress the Qwen tokenizer\n");
        return -1;
    }
    if (tok_load_dir(&g_qwen, g_qdir) != 0) {
        fprintf(stderr, "qwen tokenizer: %s\n", smdlm_last_error());
        return -1;
    }
    g_qgold = load_golden(QWEN_DIR "/golden.jsonl");
    return 0;
}

static int qwen_teardown(void **state) {
    (void)state;
    tok_free(g_qwen);
    free_golden(&g_qgold);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_qdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Special tokens parsed (tok_encode = HF encode) and left as text (tok_encode_ex, flags 0). */
static void qwen_golden_encode(void **state) {
    (void)state;
    assert_true(g_qgold.n >= 50);
    check_golden_encodes(g_qwen, &g_qgold, NULL, "qwen tokenizer.json");
    size_t bad = 0, differ = 0;
    for (size_t i = 0; i < g_qgold.n; i++) {
        const golden *g = &g_qgold.g[i];
        int32_t *ids;
        size_t n;
        assert_int_equal(tok_encode_ex(g_qwen, g->text, g->len, 0, &ids, &n), 0);
        if (n != g->n_plain || memcmp(ids, g->ids_plain, n * sizeof *ids) != 0) {
            printf("  plain MISMATCH for \"%.60s\"\n", g->text);
            print_ids("got", ids, n);
            print_ids("ref", g->ids_plain, g->n_plain);
            bad++;
        }
        differ += g->n != g->n_plain || memcmp(g->ids, g->ids_plain, n * sizeof *ids) != 0;
        free(ids);
    }
    printf("  qwen without special tokens: %zu strings, %zu mismatches (%zu differ from the "
           "parsed ids)\n",
           g_qgold.n, bad, differ);
    assert_int_equal(bad, 0);
    assert_true(differ >= 5); /* the special-token strings */
}

/* decode, decode skipping special tokens, and decode(encode(s)) == NFC(s). */
static void qwen_golden_decode(void **state) {
    (void)state;
    check_golden_decodes(g_qwen, &g_qgold, NULL, "qwen decode");
    size_t bad = 0;
    for (size_t i = 0; i < g_qgold.n; i++) {
        const golden *g = &g_qgold.g[i];
        char *s;
        size_t len;
        assert_int_equal(tok_decode_ex(g_qwen, g->ids, g->n, TOK_SKIP_SPECIAL, &s, &len), 0);
        if (len != g->skip_len || memcmp(s, g->dec_skip, len) != 0) {
            printf("  skip_special MISMATCH: got \"%s\" ref \"%s\"\n", s, g->dec_skip);
            bad++;
        }
        free(s);
        int32_t *ids;
        size_t n;
        assert_int_equal(tok_encode(g_qwen, g->text, g->len, &ids, &n), 0);
        assert_int_equal(tok_decode(g_qwen, ids, n, &s, &len), 0);
        if (len != g->nfc_len || memcmp(s, g->nfc, len) != 0) {
            printf("  round trip is not NFC: \"%s\"\n", s);
            bad++;
        }
        free(ids);
        free(s);
    }
    assert_int_equal(bad, 0);
}

static void qwen_queries(void **state) {
    (void)state;
    assert_int_equal(tok_vocab_size(g_qwen), 151669);
    assert_int_equal(tok_str_to_id(g_qwen, "<|endoftext|>"), 151643);
    assert_int_equal(tok_str_to_id(g_qwen, "<|im_start|>"), 151644);
    assert_int_equal(tok_str_to_id(g_qwen, "<|im_end|>"), 151645);
    assert_int_equal(tok_str_to_id(g_qwen, "</think>"), 151668);
    /* Qwen3's tokenizer_config.json: eos <|im_end|>, pad <|endoftext|>, no bos, no mask */
    assert_int_equal(tok_role_id(g_qwen, TOK_EOS), 151645);
    assert_int_equal(tok_role_id(g_qwen, TOK_PAD), 151643);
    assert_int_equal(tok_role_id(g_qwen, TOK_BOS), -1);
    assert_int_equal(tok_role_id(g_qwen, TOK_MASK), -1);
    assert_true(tok_is_special(g_qwen, 151644));
    assert_false(tok_is_special(g_qwen, 151667)); /* <think> is a non-special added token */
    assert_false(tok_is_special(g_qwen, 100));
    assert_non_null(tok_chat_template(g_qwen));
    assert_non_null(strstr(tok_chat_template(g_qwen), "<|im_start|>"));
    /* the same file loaded on its own: no tokenizer_config.json, no roles */
    char path[128];
    smdlm_tokenizer *t;
    snprintf(path, sizeof path, "%s/tokenizer.json", g_qdir);
    load_ok(tok_load_json(&t, path), t);
    assert_int_equal(tok_role_id(t, TOK_EOS), -1);
    assert_null(tok_chat_template(t));
    tok_free(t);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Encoding speed on ~2 MB of mixed text (informational). */
static void qwen_speed(void **state) {
    (void)state;
    size_t cap = 2u << 20, len = 0;
    char *buf = sm_malloc(cap + 4096);
    for (size_t i = 0; len < cap; i = (i + 1) % g_qgold.n) {
        memcpy(buf + len, g_qgold.g[i].text, g_qgold.g[i].len);
        len += g_qgold.g[i].len;
        len += (size_t)sprintf(buf + len, " %zu\n", len);
    }
    int32_t *ids;
    size_t n;
    double t0 = now_s();
    assert_int_equal(tok_encode(g_qwen, buf, len, &ids, &n), 0);
    double dt = now_s() - t0;
    printf("  qwen encode: %.2f MB, %zu tokens in %.3f s: %.1f MB/s, %.0f tokens/s (1 thread)\n",
           len / 1e6, n, dt, len / 1e6 / dt, n / dt);
    free(ids);
    free(buf);
}

/* The LLaDA stand-in: special tokens at LLaDA's ids, roles from its tokenizer_config.json. */
static void llada_standin(void **state) {
    (void)state;
    smdlm_tokenizer *t;
    load_ok(tok_load_dir(&t, LLADA_DIR), t);
    assert_int_equal(tok_vocab_size(t), 126349);
    assert_int_equal(tok_role_id(t, TOK_BOS), 126080);
    assert_int_equal(tok_role_id(t, TOK_EOS), 126081);
    assert_int_equal(tok_role_id(t, TOK_PAD), 126081);
    assert_int_equal(tok_role_id(t, TOK_MASK), 126336); /* <|mdm_mask|> by name */
    assert_null(tok_id_to_str(t, 1000));                /* unassigned ids in between */
    tok_free(t);
}

/* Writes `json` (a cJSON tree, consumed) to DIR/tokenizer.json; with cfg, DIR/tokenizer_config.json. */
static void write_tokenizer(const char *dir, cJSON *json, const char *cfg) {
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
    if (cfg) {
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(cfg, f);
        fclose(f);
    }
}

/* Normalizer, pre-tokenizer, model and tokenizer_config.json variants that must be rejected,
 * each made from the LLaDA stand-in (a valid Qwen-style file) with one field changed. */
static void bad_qwen_variants(void **state) {
    (void)state;
    char src[256], dir[] = "/tmp/smdlm_tokbad_XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/tokenizer.json", LLADA_DIR);
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(src, 1 << 20, &text, &len), 0);
    const struct {
        const char *key, *value, *cfg;
        const char *const *words;
    } cases[] = {
        {"normalizer", "{\"type\":\"Lowercase\"}", NULL,
         W("unsupported normalizer 'Lowercase'")},
        {"normalizer", "{\"type\":\"Sequence\"}", NULL, W("without a 'normalizers' array")},
        {"pre_tokenizer", "{\"type\":\"Metaspace\"}", NULL,
         W("pre_tokenizer", "unsupported type 'Metaspace'")},
        {"pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},"
                          "\"behavior\":\"Removed\",\"invert\":false}",
         NULL, W("Split with behavior 'Removed'", "unsupported")},
        {"pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},"
                          "\"behavior\":\"Isolated\",\"invert\":true}",
         NULL, W("inverted", "unsupported")},
        {"pre_tokenizer", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                          "\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"},"
                          "{\"type\":\"ByteLevel\",\"use_regex\":false}]}",
         NULL, W("bad regex '(a'", "missing closing parenthesis")},
        {"pre_tokenizer", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                          "\"pattern\":{\"Regex\":\"\\\\h+\"},\"behavior\":\"Isolated\"},"
                          "{\"type\":\"ByteLevel\",\"use_regex\":false}]}",
         NULL, W("regex escape \\h is unsupported")},
        {"pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},"
                          "\"behavior\":\"Isolated\"}",
         NULL, W("no ByteLevel step", "not a byte-level BPE")},
        {"pre_tokenizer", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                          "\"pattern\":{\"Nope\":1},\"behavior\":\"Isolated\"}]}",
         NULL, W("pattern must be")},
        {NULL, NULL, "{\"eos_token\": \"<|nope|>\"}",
         W("eos_token '<|nope|>' is not a token")},
        {NULL, NULL, "{\"bos_token\": 5}", W("bos_token is not a string")},
        {NULL, NULL, "{\"eos_token\": \"a\", \"eos_token\": \"b\"}",
         W("duplicate key", "eos_token")},
        {NULL, NULL, "{\"eos_token\": ", W("invalid JSON")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = cJSON_Parse(text);
        assert_non_null(j);
        if (cases[i].key) {
            cJSON *v = cJSON_Parse(cases[i].value);
            assert_non_null(v);
            cJSON_ReplaceItemInObjectCaseSensitive(j, cases[i].key, v);
        }
        write_tokenizer(dir, j, cases[i].cfg);
        smdlm_tokenizer *t = (smdlm_tokenizer *)1;
        int rc = tok_load_dir(&t, dir);
        char file[300];
        snprintf(file, sizeof file, "%s/%s", dir,
                 cases[i].key ? "tokenizer.json" : "tokenizer_config.json");
        expect_load_error(rc, t, file, cases[i].words);
    }
    /* byte_fallback, and a merge naming a token outside the vocabulary */
    cJSON *j = cJSON_Parse(text);
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItem(j, "model"), "byte_fallback",
                                           cJSON_CreateTrue());
    write_tokenizer(dir, j, NULL);
    smdlm_tokenizer *t = (smdlm_tokenizer *)1;
    snprintf(src, sizeof src, "%s/tokenizer.json", dir);
    int rc = tok_load_dir(&t, dir);
    expect_load_error(rc, t, src, W("byte_fallback is unsupported"));
    j = cJSON_Parse(text);
    cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "merges");
    cJSON *m = cJSON_CreateArray();
    cJSON_AddItemToArray(m, cJSON_CreateString("x"));
    cJSON_AddItemToArray(m, cJSON_CreateString("\xe2\x82\xac"));
    cJSON_AddItemToArray(merges, m);
    write_tokenizer(dir, j, NULL);
    t = (smdlm_tokenizer *)1;
    rc = tok_load_dir(&t, dir);
    expect_load_error(rc, t, src, W("model.merges[6]", "is not in the vocabulary"));
    free(text);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---------------------------------------------------------------- bad files */

/* A failed load leaves *out NULL; the message names the file and holds every word. */
static void expect_load_error(int rc, smdlm_tokenizer *t, const char *file,
                              const char *const *words) {
    if (rc == 0 || t != NULL) {
        tok_free(rc == 0 ? t : NULL);
        fail_msg("%s: expected an error and a NULL tokenizer", file);
    }
    tu_expect_file_error(rc, file, words);
}

static void bad_tokenizer_json(void **state) {
    (void)state;
    const struct {
        const char *file;
        const char *const *words;
    } cases[] = {
        {"invalid_json.json", W("invalid JSON near byte")},
        {"not_object.json", W("invalid JSON: not an object")},
        {"no_model.json", W("missing model")},
        {"merge_missing_token.json", W("model.merges[1]", "'c' is not in the vocabulary")},
        {"merge_missing_result.json", W("model.merges[1]", "'ba' is not in the vocabulary")},
        {"merge_three_parts.json", W("model.merges[0]", "bad merge 'a b c'")},
        {"merge_mixed_forms.json", W("model.merges[1]", "merges mix")},
        {"negative_id.json", W("token 'b' has a negative id")},
        {"fractional_id.json", W("token 'b' has an invalid id")},
        {"huge_id.json", W("token 'b' has an invalid id")},
        {"string_id.json", W("token 'b' has an invalid id")},
        {"duplicate_id.json", W("duplicate id 1")},
        {"duplicate_token.json", W("duplicate vocabulary token 'a'")},
        {"missing_byte_tokens.json", W("lacks the byte-level token", "byte 0x00")},
        {"vocab_invalid_utf8.json", W("is not valid UTF-8")},
        {"vocab_not_object.json", W("the vocabulary is not a JSON object")},
        {"vocab_empty.json", W("the vocabulary is empty")},
        {"model_unigram.json", W("unsupported model type 'Unigram'", "only BPE")},
        {"bpe_dropout.json", W("BPE dropout is unsupported")},
        {"bpe_subword_prefix.json", W("continuing_subword_prefix", "unsupported")},
        {"pretok_metaspace.json", W("pre_tokenizer", "unsupported type 'Metaspace'")},
        {"pretok_null.json", W("pre_tokenizer", "missing or not an object")},
        /* NFC and ByteLevel without regex are supported: these fail on the vocabulary */
        {"pretok_no_regex.json", W("lacks the byte-level token")},
        {"normalizer_nfc.json", W("lacks the byte-level token")},
        {"decoder_wordpiece.json", W("unsupported decoder 'WordPiece'")},
        {"version_unknown.json", W("unknown tokenizer.json version")},
        {"added_id_mismatch.json", W("added_tokens[0]", "'<x>' has id 5", "assigns it id 2")},
        {"added_id_vocab_mismatch.json", W("'b' has id 0", "assigns it id 1")},
        {"added_negative_id.json", W("added_tokens[0]", "has a negative id")},
        {"added_empty.json", W("added_tokens[0]", "missing or empty content")},
        {"added_duplicate.json", W("added_tokens[1]", "duplicate added token '<x>'")},
        {"added_single_word.json", W("single_word added tokens are unsupported")},
        {"added_not_array.json", W("added_tokens is not an array")},
        {"does_not_exist.json", W("cannot open")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", BAD_DIR, cases[i].file);
        smdlm_tokenizer *t = (smdlm_tokenizer *)1;
        int rc = tok_load_json(&t, path);
        expect_load_error(rc, t, path, cases[i].words);
    }
}

static void bad_vocab_merges(void **state) {
    (void)state;
    smdlm_tokenizer *t = (smdlm_tokenizer *)1;
    int rc = tok_load_dir(&t, BAD_DIR "/files_merge_missing");
    expect_load_error(rc, t, BAD_DIR "/files_merge_missing/merges.txt",
                      W("line 3", "merge 'a c': token 'c' is not in the vocabulary"));
    rc = tok_load_dir(&t, BAD_DIR "/files_merge_bad_line");
    expect_load_error(rc, t, BAD_DIR "/files_merge_bad_line/merges.txt",
                      W("line 3", "bad merge 'a  b'"));
    rc = tok_load_dir(&t, BAD_DIR "/files_vocab_bad");
    expect_load_error(rc, t, BAD_DIR "/files_vocab_bad/vocab.json", W("invalid JSON near byte 20"));
    rc = tok_load_dir(&t, BAD_DIR "/empty_dir");
    expect_load_error(rc, t, BAD_DIR "/empty_dir", W("no tokenizer.json, nor vocab.json"));
    rc = tok_load_files(&t, BAD_DIR "/files_merge_missing/vocab.json", BAD_DIR "/nonexistent.txt");
    expect_load_error(rc, t, BAD_DIR "/nonexistent.txt", W("cannot open"));
}

static void bad_file_too_large(void **state) {
    (void)state;
    char path[] = "/tmp/smdlm_tok_big_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    /* sparse: no disk space used */
    assert_int_equal(ftruncate(fd, (off_t)TOK_MAX_FILE_BYTES + 1), 0);
    close(fd);
    smdlm_tokenizer *t = (smdlm_tokenizer *)1;
    int rc = tok_load_json(&t, path);
    expect_load_error(rc, t, path, W("too large"));
    rc = tok_load_files(&t, GPT2_DIR "/vocab.json", path);
    expect_load_error(rc, t, path, W("too large"));
    unlink(path);
}

/* The fingerprint: the files that decide the ids (tokenizer.json before vocab.json + merges.txt),
 * equal for a copy elsewhere, other for one byte more; no tokenizer files: 1. */
static void fingerprint_dir(void **state) {
    char a[TOK_FINGERPRINT_SIZE], b[TOK_FINGERPRINT_SIZE], dir[64], cmd[256];
    assert_int_equal(tok_fingerprint_dir(BYTE_DIR, a), 0);
    assert_int_equal(strncmp(a, "fnv1a64:", 8), 0);
    assert_int_equal(strlen(a), 24);
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "fingerprint"), 0);
    assert_int_equal(tok_fingerprint_dir(dir, b), 1);
    snprintf(cmd, sizeof cmd, "cp %s/byte-tokenizer/* %s/", FIXTURES_DIR, dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tok_fingerprint_dir(dir, b), 0);
    assert_string_equal(a, b);
    snprintf(cmd, sizeof cmd, "echo >> %s/merges.txt", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tok_fingerprint_dir(dir, b), 0);
    assert_string_not_equal(a, b);
    /* tokenizer.json takes precedence, as in tok_load_dir */
    snprintf(cmd, sizeof cmd, "cp %s/tokenizer.json %s/", GPT2_DIR, dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tok_fingerprint_dir(dir, b), 0);
    assert_int_equal(tok_fingerprint_dir(GPT2_DIR, a), 0);
    assert_string_equal(a, b);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest gpt2[] = {
        cmocka_unit_test(gpt2_golden_count),
        cmocka_unit_test(gpt2_encode_vocab_merges),
        cmocka_unit_test(gpt2_encode_tokenizer_json),
        cmocka_unit_test(gpt2_decode_golden),
        cmocka_unit_test(gpt2_roundtrip),
        cmocka_unit_test(gpt2_vocab_queries),
        cmocka_unit_test(gpt2_encode_rejects_invalid_utf8),
        cmocka_unit_test(gpt2_decode_rejects_bad_ids),
        cmocka_unit_test(gpt2_long_inputs),
        cmocka_unit_test(gpt2_word_cache),
        cmocka_unit_test(gpt2_threads),
    };
    const struct CMUnitTest other[] = {
        cmocka_unit_test(byte_tokenizer),     cmocka_unit_test(byte_tokenizer_without_specials),
        cmocka_unit_test(byte_legacy_json),   cmocka_unit_test(byte_ignore_merges),
        cmocka_unit_test(bad_tokenizer_json), cmocka_unit_test(bad_vocab_merges),
        cmocka_unit_test(bad_file_too_large), cmocka_unit_test(fingerprint_dir),
    };
    const struct CMUnitTest qwen[] = {
        cmocka_unit_test(qwen_golden_encode), cmocka_unit_test(qwen_golden_decode),
        cmocka_unit_test(qwen_queries),       cmocka_unit_test(qwen_speed),
    };
    const struct CMUnitTest family[] = {
        cmocka_unit_test(llada_standin),
        cmocka_unit_test(bad_qwen_variants),
    };
    int rc = cmocka_run_group_tests_name("tokenizer_gpt2", gpt2, gpt2_setup, gpt2_teardown);
    rc += cmocka_run_group_tests_name("tokenizer_qwen", qwen, qwen_setup, qwen_teardown);
    rc += cmocka_run_group_tests_name("tokenizer_family", family, NULL, NULL);
    rc += cmocka_run_group_tests_name("tokenizer", other, NULL, NULL);
    return rc != 0;
}
