/* test_data.c — token shards: `data prepare` round trips (text files, directories, JSONL →
 * shards → blocks → text, for the GPT-2 and the byte-level tokenizer), the validation split,
 * the reader against hand-made broken shards, prepare's bad inputs, and the CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "train/data.h"
#include "train/data_prepare.h"
#include "testutil.h"
#include "text/tokenizer.h"
#include "base/util.h"

#ifndef SMDLM_BIN
#define SMDLM_BIN "build/smdlm"
#endif

static char g_tmp[64];
static const char *const GPT2 = FIXTURES_DIR "/gpt2-tokenizer";
static const char *const BYTES = FIXTURES_DIR "/byte-tokenizer";

/* ---- helpers */

static const char *tmp_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *tmp_path(const char *fmt, ...) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    int n = snprintf(p, 512, "%s/", g_tmp);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p + n, 512 - (size_t)n, fmt, ap);
    va_end(ap);
    return p;
}

/* A path in the temporary directory that lives as long as the variable (tmp_path's buffers
 * are reused after eight calls). */
#define TMP(var, ...) char var[256]; snprintf(var, sizeof var, "%s", tmp_path(__VA_ARGS__))

/* Writes a file, creating its directories. */
static void put_file(const char *path, const void *data, size_t len) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *s = dir + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(dir, 0777);
            *s = '/';
        }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void put_str(const char *path, const char *s) { put_file(path, s, strlen(s)); }

static int prepare(data_prepare_opts *o, data_prepare_stats *st, int n, ...) {
    const char *in[16];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) in[i] = va_arg(ap, const char *);
    va_end(ap);
    o->quiet = 1;
    return data_prepare(o, in, n, st);
}

static void expect_ok(int rc) {
    if (rc) {
        print_error("unexpected error: %s\n", smdlm_last_error());
        fail();
    }
}

/* All tokens of a split, in block order; checks the [BOS] … [EOS] frame of every block and
 * returns the inner tokens. */
typedef struct {
    size_t nblocks;
    int vocab, width;
} split_info;

static int32_t *read_split(const char *dir, const char *split, int32_t bos, int32_t eos, size_t *n,
                           split_info *info) {
    shard_set s;
    expect_ok(shards_open(&s, dir, split));
    size_t L = (size_t)s.block_len;
    int32_t *all = sm_malloc((s.nblocks * (L - 2) + 1) * sizeof *all), *blk = sm_malloc(L * sizeof *blk);
    for (size_t b = 0; b < s.nblocks; b++) {
        expect_ok(shards_read_block(&s, b, blk));
        assert_int_equal(blk[0], bos);
        assert_int_equal(blk[L - 1], eos);
        memcpy(all + b * (L - 2), blk + 1, (L - 2) * sizeof *blk);
    }
    *n = s.nblocks * (L - 2);
    free(blk);
    if (info) info->nblocks = s.nblocks, info->vocab = s.vocab_size, info->width = s.token_bytes;
    shards_close(&s);
    return all;
}

static int files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (sm_read_file(a, (size_t)1 << 30, &x, &nx) || sm_read_file(b, (size_t)1 << 30, &y, &ny)) return 0;
    int eq = nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return eq;
}

/* ---- round trip */

static const char *const k_docs[] = {
    /* a.txt */
    "In the beginning God created the heaven and the earth.\nAnd the earth was without form, "
    "and void; naïve café — 日本語 🙂 ½ ∑ and \t tabs   spaces\r\nend\n",
    /* dir/b.py */
    "def f(x):\n    return {'a': [x, x ** 2]}  # comment\n\n\nclass C:\n    pass\n",
    /* dir/sub/c.md */
    "# Title\n\nSome *markdown* with `code` and a URL https://example.com/?q=1&r=2.\n",
    /* d.jsonl, line 1, 3, 5 */
    "first JSON document\nwith a newline",
    "second \"quoted\" é doc <|endoftext|> inside",
    "third",
};
#define N_DOCS (sizeof k_docs / sizeof *k_docs)

static void write_corpus(const char *root) {
    char p[512];
    snprintf(p, sizeof p, "%s/a.txt", root), put_str(p, k_docs[0]);
    snprintf(p, sizeof p, "%s/dir/b.py", root), put_str(p, k_docs[1]);
    snprintf(p, sizeof p, "%s/dir/sub/c.md", root), put_str(p, k_docs[2]);
    snprintf(p, sizeof p, "%s/dir/.hidden.txt", root), put_str(p, "hidden files are skipped");
    snprintf(p, sizeof p, "%s/dir/.git/x.txt", root), put_str(p, "so are hidden directories");
    snprintf(p, sizeof p, "%s/dir/empty.txt", root), put_str(p, "");
    snprintf(p, sizeof p, "%s/d.jsonl", root);
    put_str(p, "{\"text\": \"first JSON document\\nwith a newline\"}\n"
               "   \n"
               "{\"id\": 2, \"text\": \"second \\\"quoted\\\" \\u00e9 doc <|endoftext|> inside\"}\r\n"
               "{\"text\": \"\"}\n"
               "{\"meta\": {\"text\": \"nested\"}, \"text\": \"third\"}"); /* no final newline */
}

/* text → shards → blocks → text: the train split (no validation) is the documents, each
 * followed by <|endoftext|>, in input order, cut at the last complete block. */
static void round_trip(const char *tokdir, int L, uint64_t shard_tokens) {
    TMP(corpus, "corpus-%s-%d", strrchr(tokdir, '/') + 1, L);
    TMP(out, "out-%s-%d", strrchr(tokdir, '/') + 1, L);
    char in1[512], in2[512], in3[512];
    write_corpus(corpus);
    snprintf(in1, sizeof in1, "%s/a.txt", corpus);
    snprintf(in2, sizeof in2, "%s/dir", corpus);
    snprintf(in3, sizeof in3, "%s/d.jsonl", corpus);
    data_prepare_opts o;
    data_prepare_defaults(&o);
    o.tokenizer_dir = tokdir;
    o.out_dir = out;
    o.block_len = L;
    o.val_fraction = 0;
    o.shard_tokens = shard_tokens;
    o.threads = 3;
    data_prepare_stats st;
    expect_ok(prepare(&o, &st, 3, in1, in2, in3));

    smdlm_tokenizer *tok;
    expect_ok(tok_load_dir(&tok, tokdir));
    int32_t eos = tok_str_to_id(tok, "<|endoftext|>");
    /* the expected stream, from the tokenizer directly */
    size_t cap = 1 << 16, nexp = 0, text_len = 0;
    int32_t *exp = sm_malloc(cap * sizeof *exp);
    char *text = sm_malloc(1 << 16);
    for (size_t d = 0; d < N_DOCS; d++) {
        int32_t *ids;
        size_t n;
        expect_ok(tok_encode(tok, k_docs[d], strlen(k_docs[d]), &ids, &n));
        memcpy(exp + nexp, ids, n * sizeof *ids);
        nexp += n;
        exp[nexp++] = eos;
        free(ids);
        text_len += (size_t)sprintf(text + text_len, "%s<|endoftext|>", k_docs[d]);
    }
    assert_int_equal(st.documents[0], N_DOCS);
    assert_int_equal(st.documents[1], 0);
    assert_int_equal(st.document_tokens[0], nexp);
    assert_int_equal(st.empty, 2); /* dir/empty.txt and the "" line */
    assert_int_equal(st.blocks[0] * (uint64_t)(L - 2) + st.dropped_tokens[0], nexp);
    assert_true(st.dropped_tokens[0] < (uint64_t)(L - 2));

    split_info info;
    size_t ngot;
    int32_t *got = read_split(out, "train", eos, eos, &ngot, &info);
    printf("  %s L=%d: %zu tokens expected, %zu in %zu blocks, %d shards, %llu dropped\n",
           tokdir, L, nexp, ngot, info.nblocks, st.train_shards,
           (unsigned long long)st.dropped_tokens[0]);
    assert_int_equal(info.vocab, tok_vocab_size(tok));
    assert_int_equal(info.width, 2);
    assert_int_equal(st.train_shards, (int)((info.nblocks + shard_tokens / L - 1) / (shard_tokens / L)));
    assert_true(ngot > 0 && ngot <= nexp);
    assert_int_equal(tu_compare_i32("shard tokens", got, exp, ngot), 0);
    char *back;
    size_t blen;
    expect_ok(tok_decode(tok, got, ngot, &back, &blen));
    /* the decoded stream is the concatenation, cut inside the last document */
    assert_true(blen <= text_len);
    if (memcmp(back, text, blen) != 0) {
        print_error("decoded text differs from the documents:\n%s\n---\n%.*s\n", back, (int)blen, text);
        fail();
    }
    free(back);
    free(got);

    /* the empty validation split is a header-only file */
    char vpath[600];
    snprintf(vpath, sizeof vpath, "%s/val.bin", out);
    assert_true(sm_file_exists(vpath));
    shard_set v;
    expect_ok(shards_open(&v, out, "val"));
    assert_int_equal(v.nblocks, 0);
    shards_close(&v);

    /* the tokenizer travels with the data */
    smdlm_tokenizer *copy;
    char tcopy[600];
    snprintf(tcopy, sizeof tcopy, "%s/tokenizer", out);
    expect_ok(tok_load_dir(&copy, tcopy));
    assert_int_equal(tok_vocab_size(copy), tok_vocab_size(tok));
    tok_free(copy);

    /* the output does not depend on the number of threads */
    TMP(out1, "out1-%s-%d", strrchr(tokdir, '/') + 1, L);
    o.out_dir = out1;
    o.threads = 1;
    expect_ok(prepare(&o, &st, 3, in1, in2, in3));
    for (int i = 0; i < st.train_shards; i++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/train_%05d.bin", out, i);
        snprintf(b, sizeof b, "%s/train_%05d.bin", out1, i);
        assert_true(files_equal(a, b));
    }
    free(exp);
    free(text);
    tok_free(tok);
}

static void test_round_trip_gpt2(void **state) {
    round_trip(GPT2, 16, 16 * 4); /* several shards */
    round_trip(GPT2, 50, DATA_DEFAULT_SHARD_TOKENS);
}

static void test_round_trip_bytes(void **state) {
    round_trip(BYTES, 37, 37 * 3);
    round_trip(BYTES, 3, 1 << 20); /* one token per block */
}

/* ---- the validation split */

static void count_docs(const char *dir, const char *split, int *seen, int ndocs) {
    smdlm_tokenizer *tok;
    expect_ok(tok_load_dir(&tok, BYTES));
    int32_t eos = tok_str_to_id(tok, "<|endoftext|>");
    size_t n;
    int32_t *ids = read_split(dir, split, eos, eos, &n, NULL);
    char *text;
    size_t len;
    expect_ok(tok_decode(tok, ids, n, &text, &len));
    for (const char *p = text; (p = strstr(p, "document number ")); p++) {
        char *end;
        long k = strtol(p + 16, &end, 10);
        if (*end != '.') continue; /* cut by the end of the split */
        assert_true(k >= 0 && k < ndocs);
        seen[k]++;
    }
    free(text);
    free(ids);
    tok_free(tok);
}

static void test_val_split(void **state) {
    const int ndocs = 60;
    char *buf = sm_malloc(100 * (size_t)ndocs);
    size_t len = 0;
    for (int i = 0; i < ndocs; i++)
        len += (size_t)sprintf(buf + len, "{\"text\": \"document number %d.\"}\n", i);
    TMP(in, "val.jsonl");
    put_file(in, buf, len);
    free(buf);
    data_prepare_opts o;
    data_prepare_defaults(&o);
    o.tokenizer_dir = BYTES;
    o.block_len = 12;
    o.val_fraction = 0.25;
    o.seed = 7;
    data_prepare_stats st;
    TMP(val_a, "val-a");
    o.out_dir = val_a;
    expect_ok(prepare(&o, &st, 1, in));
    printf("  fraction 0.25: %llu train + %llu val documents\n",
           (unsigned long long)st.documents[0], (unsigned long long)st.documents[1]);
    assert_int_equal(st.documents[0] + st.documents[1], ndocs);
    assert_true(st.documents[1] >= 5 && st.documents[1] <= 25);
    /* every document is in one split only */
    int seen_t[60] = {0}, seen_v[60] = {0};
    count_docs(o.out_dir, "train", seen_t, ndocs);
    count_docs(o.out_dir, "val", seen_v, ndocs);
    int both = 0, nv = 0;
    for (int i = 0; i < ndocs; i++) both += seen_t[i] && seen_v[i], nv += seen_v[i] > 0;
    assert_int_equal(both, 0);
    assert_true(nv > 0 && (uint64_t)nv <= st.documents[1]);
    /* deterministic for a seed, different for another */
    TMP(val_b, "val-b");
    o.out_dir = val_b;
    expect_ok(prepare(&o, &st, 1, in));
    assert_true(files_equal(tmp_path("val-a/val.bin"), tmp_path("val-b/val.bin")));
    assert_true(files_equal(tmp_path("val-a/train_00000.bin"), tmp_path("val-b/train_00000.bin")));
    o.seed = 8;
    TMP(val_c, "val-c");
    o.out_dir = val_c;
    expect_ok(prepare(&o, &st, 1, in));
    assert_false(files_equal(tmp_path("val-a/val.bin"), tmp_path("val-c/val.bin")));
    /* an exact number of validation documents */
    o.val_docs = 9;
    TMP(val_d, "val-d");
    o.out_dir = val_d;
    expect_ok(prepare(&o, &st, 1, in));
    assert_int_equal(st.documents[1], 9);
    assert_int_equal(st.documents[0], ndocs - 9);
    o.val_docs = ndocs;
    TMP(val_e, "val-e");
    o.out_dir = val_e;
    const char *const w[] = {"leaves no training", "60", NULL};
    tu_expect_error(prepare(&o, &st, 1, in), "--val-docs = all documents", w);
}

/* The output directory inside an input directory is not read back as input. */
static void test_out_inside_input(void **state) {
    TMP(dir, "inside");
    TMP(out, "inside/out");
    char big[3000];
    memset(big, 'x', sizeof big);
    put_file(tmp_path("inside/a.txt"), big, sizeof big);
    put_file(tmp_path("inside/b.txt"), big, sizeof big);
    data_prepare_opts o;
    data_prepare_defaults(&o);
    o.tokenizer_dir = BYTES;
    o.out_dir = out;
    o.block_len = 64;
    o.force = 1;
    data_prepare_stats st;
    for (int run = 0; run < 2; run++) {
        expect_ok(prepare(&o, &st, 1, dir));
        assert_int_equal(st.documents[0] + st.documents[1], 2);
    }
}

/* ---- the reader against hand-made shards */

typedef struct {
    const char *magic;
    uint32_t version, width, L, reserved;
    uint64_t ntok;      /* header's count */
    size_t data_tokens; /* tokens actually written */
    size_t header_bytes;
    uint32_t bad_id_at; /* 0: none; else this token index gets id vocab */
} shard_spec;

static void write_shard(const char *path, const shard_spec *sp, uint32_t vocab) {
    size_t n = SHARD_HEADER_BYTES + sp->data_tokens * sp->width;
    uint8_t *b = sm_calloc(1, n);
    memcpy(b, sp->magic, 8);
    memcpy(b + 8, &sp->version, 4);
    memcpy(b + 12, &sp->width, 4);
    memcpy(b + 16, &sp->ntok, 8);
    memcpy(b + 24, &sp->L, 4);
    memcpy(b + 28, &sp->reserved, 4);
    for (size_t i = 0; i < sp->data_tokens; i++) {
        uint32_t v = (uint32_t)(i % vocab);
        if (sp->bad_id_at && i == sp->bad_id_at) v = vocab;
        memcpy(b + SHARD_HEADER_BYTES + i * sp->width, &v, sp->width); /* little-endian host */
    }
    put_file(path, b, sp->header_bytes ? sp->header_bytes : n);
    free(b);
}

static void write_meta(const char *dir, int L, int width, int vocab, int blocks, const char *name) {
    char path[600], text[1024];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    snprintf(text, sizeof text,
             "{\"format\": \"smdlm-tokens\", \"version\": 1, \"vocab_size\": %d, \"block_len\": %d, "
             "\"token_bytes\": %d, \"bos_id\": 0, \"eos_id\": 0, \"train\": {\"files\": "
             "[{\"name\": \"%s\", \"blocks\": %d}], \"blocks\": %d}, \"val\": {\"files\": [], "
             "\"blocks\": 0}}", vocab, L, width, name, blocks, blocks);
    put_str(path, text);
}

static void test_reader_errors(void **state) {
    const int L = 8, vocab = 300, blocks = 3;
    const shard_spec good = {"SMDLMTOK", 1, 2, 8, 0, 24, 24, 0, 0};
    struct {
        const char *name, *word;
        shard_spec sp;
        int meta_L, meta_blocks, meta_width;
    } cases[] = {
        {"good", NULL, good, L, blocks, 2},
        {"truncated data", "truncated", good, L, blocks, 2},
        {"truncated header", "truncated", good, L, blocks, 2},
        {"extra data", "longer than", good, L, blocks, 2},
        {"bad magic", "magic", good, L, blocks, 2},
        {"version 2", "version 2", good, L, blocks, 2},
        {"width 3", "width 3", good, L, blocks, 2},
        {"width vs meta", "meta.json says 2", good, L, blocks, 2},
        {"not a multiple of L", "not a multiple", good, L, blocks, 2},
        {"L vs meta", "block length 8 but meta.json says 16", good, 16, blocks, 2},
        {"blocks vs meta", "holds 3 blocks but meta.json says 4", good, L, 4, 2},
        {"reserved", "reserved", good, L, blocks, 2},
        {"id >= vocab", "offset 54", good, L, blocks, 2},
        {"width 4", NULL, good, L, blocks, 4},
    };
    int n = sizeof cases / sizeof *cases;
    cases[1].sp.data_tokens = 20;
    cases[2].sp.header_bytes = 20;
    cases[3].sp.data_tokens = 25;
    cases[4].sp.magic = "SMDLMTOX";
    cases[5].sp.version = 2;
    cases[6].sp.width = 3;
    cases[7].sp.width = 4;
    cases[8].sp.ntok = 20, cases[8].sp.data_tokens = 20;
    cases[11].sp.reserved = 1;
    cases[12].sp.bad_id_at = 11; /* block 1, byte 32 + 11·2 */
    cases[13].sp.width = 4;
    for (int i = 0; i < n; i++) {
        TMP(dir, "shards-%d", i);
        TMP(path, "shards-%d/train_00000.bin", i);
        write_shard(path, &cases[i].sp, vocab);
        write_meta(dir, cases[i].meta_L, cases[i].meta_width, vocab, cases[i].meta_blocks, "train_00000.bin");
        shard_set s;
        int rc = shards_open(&s, dir, "train");
        if (!strcmp(cases[i].name, "id >= vocab")) {
            expect_ok(rc);
            int32_t blk[8];
            expect_ok(shards_read_block(&s, 0, blk));
            expect_ok(shards_read_block(&s, 2, blk));
            rc = shards_read_block(&s, 1, blk);
            shards_close(&s);
        } else if (!cases[i].word) {
            expect_ok(rc);
            assert_int_equal(s.nblocks, blocks);
            assert_int_equal(s.token_bytes, cases[i].meta_width);
            int32_t blk[8];
            for (size_t b = 0; b < s.nblocks; b++) {
                expect_ok(shards_read_block(&s, b, blk));
                for (int j = 0; j < L; j++) assert_int_equal(blk[j], (int)(b * L + (size_t)j) % vocab);
            }
            shards_close(&s);
            continue;
        }
        printf("  [%s]\n", cases[i].name);
        const char *const w[] = {cases[i].word, NULL};
        tu_expect_file_error(rc, path, w);
    }
    /* meta.json problems */
    TMP(dir, "shards-0");
    struct {
        const char *meta, *word;
    } metas[] = {
        {NULL, "meta.json"},
        {"{\"format\": \"other\"}", "format"},
        {"[1, 2]", "object"},
        {"{\"format\": \"smdlm-tokens\", \"version\": 2, \"vocab_size\": 300, \"block_len\": 8, "
         "\"token_bytes\": 2, \"train\": {\"files\": [], \"blocks\": 0}}", "version 2"},
        {"{\"format\": \"smdlm-tokens\", \"version\": 1, \"vocab_size\": 70000, \"block_len\": 8, "
         "\"token_bytes\": 2, \"train\": {\"files\": [], \"blocks\": 0}}", "2-byte"},
        {"{\"format\": \"smdlm-tokens\", \"version\": 1, \"vocab_size\": 300, \"block_len\": 8, "
         "\"token_bytes\": 2, \"train\": {\"files\": [{\"name\": \"../x.bin\", \"blocks\": 3}], "
         "\"blocks\": 3}}", "name"},
        {"{\"format\": \"smdlm-tokens\", \"version\": 1, \"vocab_size\": 300, \"block_len\": 8, "
         "\"token_bytes\": 2, \"train\": {\"files\": [{\"name\": \"train_00000.bin\", \"blocks\": 3}], "
         "\"blocks\": 5}}", "hold 3 blocks"},
        {"{\"format\": \"smdlm-tokens\", \"version\": 1, \"vocab_size\": 300, \"block_len\": 8, "
         "\"token_bytes\": 2, \"val\": {\"files\": [], \"blocks\": 0}}", "no \"train\""},
    };
    char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/meta.json", dir);
    for (size_t i = 0; i < sizeof metas / sizeof *metas; i++) {
        if (metas[i].meta)
            put_str(mpath, metas[i].meta);
        else
            unlink(mpath);
        shard_set s;
        const char *const w[] = {metas[i].word, NULL};
        tu_expect_error(shards_open(&s, dir, "train"), metas[i].meta ? metas[i].meta : "no meta.json", w);
    }
    shard_set s;
    const char *const w[] = {"unknown split", NULL};
    tu_expect_error(shards_open(&s, dir, "test"), "split 'test'", w);
}

/* ---- prepare's bad inputs */

static void test_prepare_errors(void **state) {
    TMP(good, "bad/good.txt");
    TMP(garbage, "bad/garbage.txt");
    TMP(nul, "bad/nul.txt");
    TMP(jl, "bad/bad.jsonl");
    TMP(empty, "bad/empty.txt");
    TMP(emptydir, "bad/emptydir");
    char big[4000];
    memset(big, 'a', sizeof big);
    for (size_t i = 0; i < sizeof big; i += 5) big[i] = ' ';
    put_file(good, big, sizeof big);
    put_file(garbage, "hello\xff\xfe world", 13);
    put_file(nul, "text\0more", 9);
    put_str(jl, "{\"text\": \"fine\"}\n[1, 2]\n{\"body\": \"x\"}\n{\"text\": 5}\n{\"text\": \"unterminated\n");
    put_str(empty, "");
    mkdir(emptydir, 0777);
    put_str(tmp_path("bad/notatokenizer/README"), "nothing here");
    /* the byte-level fixture with <|endoftext|> renamed */
    char *vocab, *merges, *eot;
    size_t vlen, mlen;
    expect_ok(sm_read_file(FIXTURES_DIR "/byte-tokenizer/vocab.json", 1 << 20, &vocab, &vlen));
    expect_ok(sm_read_file(FIXTURES_DIR "/byte-tokenizer/merges.txt", 1 << 20, &merges, &mlen));
    assert_non_null(eot = strstr(vocab, "<|endoftext|>"));
    memcpy(eot, "<|endofdocs|>", 13);
    put_file(tmp_path("bad/noeos/vocab.json"), vocab, vlen);
    put_file(tmp_path("bad/noeos/merges.txt"), merges, mlen);
    free(vocab), free(merges);
    put_str(tmp_path("bad/afile"), "x");

    data_prepare_opts o;
    data_prepare_stats st;
    data_prepare_defaults(&o);
    o.tokenizer_dir = BYTES;
    o.block_len = 16;
    o.shard_tokens = 16; /* a shard per block: several are complete before the error */
    TMP(outdir, "bad/out");
    TMP(afile_sub, "bad/afile/sub");
    o.out_dir = outdir;
#define EXPECT(words, call)                                                 \
    do {                                                                    \
        const char *const w_[] = {words, NULL};                             \
        tu_expect_error(call, #call, w_);                                   \
    } while (0)
#define EXPECT2(w1, w2, call)                                               \
    do {                                                                    \
        const char *const w_[] = {w1, w2, NULL};                            \
        tu_expect_error(call, #call, w_);                                   \
    } while (0)
    EXPECT2("cannot open input", "bad/missing.txt", prepare(&o, &st, 2, good, tmp_path("bad/missing.txt")));
    EXPECT2("no documents", "1 empty", prepare(&o, &st, 1, empty));
    EXPECT2("no files matching", "'*.py'", (o.glob = "*.py", prepare(&o, &st, 1, tmp_path("bad"))));
    o.glob = "*";
    EXPECT2("no files matching", "emptydir", prepare(&o, &st, 1, emptydir));
    /* binary garbage: error naming the file and the offset; the shards written are removed */
    EXPECT2("invalid UTF-8 at byte offset 5", "garbage.txt", prepare(&o, &st, 2, good, garbage));
    assert_false(sm_file_exists(tmp_path("bad/out/train_00000.bin")));
    assert_false(sm_file_exists(tmp_path("bad/out/meta.json")));
    EXPECT2("NUL byte", "byte offset 4", prepare(&o, &st, 2, good, nul));
    /* the mask token in the text (the byte-level tokenizer has <|mask|>) */
    put_str(tmp_path("bad/mask.txt"), "a text with <|mask|> in it");
    EXPECT2("mask.txt", "mask token <|mask|>", prepare(&o, &st, 2, good, tmp_path("bad/mask.txt")));
    /* JSONL: file:line of the first bad line */
    EXPECT2("bad.jsonl:2", "expected a JSON object", prepare(&o, &st, 2, good, jl));
    o.skip_bad = 1;
    expect_ok(prepare(&o, &st, 4, good, garbage, nul, jl));
    assert_int_equal(st.skipped, 6); /* garbage, nul, lines 2-5 */
    assert_int_equal(st.documents[0] + st.documents[1], 2);
    o.skip_bad = 0;
    o.force = 1;
    o.jsonl_field = "body";
    EXPECT2("bad.jsonl:1", "no string field \"body\"", prepare(&o, &st, 1, jl));
    o.jsonl_field = "text";
    put_str(tmp_path("bad/bad2.jsonl"), "{\"text\": \"a\"}\n{\"text\": \"b\", \"text\": \"c\"}\n");
    EXPECT2("bad2.jsonl:2", "duplicate key", prepare(&o, &st, 1, tmp_path("bad/bad2.jsonl")));
    put_str(tmp_path("bad/bad3.jsonl"), "{\"text\": \"a\"}\n{\"text\": \"b\" x}\n");
    EXPECT2("bad3.jsonl:2", "invalid JSON", prepare(&o, &st, 1, tmp_path("bad/bad3.jsonl")));
    put_file(tmp_path("bad/bad4.jsonl"), "{\"text\": \"a\xff\"}\n", 15);
    EXPECT2("bad4.jsonl:1", "invalid UTF-8 at byte 1 of the \"text\" field", prepare(&o, &st, 1, tmp_path("bad/bad4.jsonl")));
    /* tokenizers */
    TMP(notatok, "bad/notatokenizer");
    TMP(noeos, "bad/noeos");
    o.tokenizer_dir = notatok;
    EXPECT2("loading the tokenizer", "notatokenizer", prepare(&o, &st, 1, good));
    o.tokenizer_dir = noeos;
    EXPECT("<|endoftext|>", prepare(&o, &st, 1, good));
    o.tokenizer_dir = BYTES;
    /* options */
    o.block_len = 2;
    EXPECT("block length 2", prepare(&o, &st, 1, good));
    o.block_len = (1 << 20) + 1;
    EXPECT("block length 1048577", prepare(&o, &st, 1, good));
    o.block_len = 16;
    o.shard_tokens = 15;
    EXPECT("smaller than one block", prepare(&o, &st, 1, good));
    o.shard_tokens = 16;
    o.val_fraction = 1;
    EXPECT("validation fraction", prepare(&o, &st, 1, good));
    o.val_fraction = 0;
    /* output directory */
    o.out_dir = afile_sub;
    EXPECT2("cannot create output directory", "afile", prepare(&o, &st, 1, good));
    o.out_dir = outdir;
    o.force = 0;
    expect_ok(prepare(&o, &st, 1, good));
    EXPECT("already holds a data set", prepare(&o, &st, 1, good));
    unlink(tmp_path("bad/out/meta.json"));
    EXPECT("already holds token shards", prepare(&o, &st, 1, good));
    o.force = 1;
    expect_ok(prepare(&o, &st, 1, good));
    /* too little text for a block */
    o.block_len = 1 << 16;
    o.shard_tokens = 1 << 20;
    EXPECT("no complete block", prepare(&o, &st, 1, good));
#undef EXPECT
#undef EXPECT2
}

/* ---- the command line */

static int run(char **out, const char *fmt, ...) {
    char args[2048], cmd[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *bin = getenv("SMDLM") ? getenv("SMDLM") : SMDLM_BIN;
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 4096, len = 0, r;
    char *buf = sm_malloc(cap);
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0)
        if (cap - (len += r) < 2) buf = sm_realloc(buf, cap *= 2);
    buf[len] = 0;
    int st = pclose(p);
    *out = buf;
    if (WIFSIGNALED(st)) return 1000 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static void test_cli(void **state) {
    char *out;
    run(&out, "data prepare --help");
    if (strstr(out, "unknown command")) {
        free(out);
        printf("  `smdlm data` is not registered in cli/main.c: the CLI test is skipped\n");
        skip();
    }
    assert_non_null(strstr(out, "--val-fraction"));
    free(out);
    TMP(corpus, "cli");
    write_corpus(corpus);
    assert_int_equal(run(&out, "data prepare --tokenizer %s --out %s/o --block-len 8 --val-docs 1 "
                               "--glob '*.py' -t 2 %s/a.txt %s/dir %s/d.jsonl", BYTES, corpus,
                         corpus, corpus, corpus), 0);
    printf("  %s", out);
    assert_non_null(strstr(out, "5 documents"));
    assert_non_null(strstr(out, "val 1 docs"));
    assert_non_null(strstr(out, "dropped"));
    free(out);
    shard_set s;
    expect_ok(shards_open(&s, tmp_path("cli/o"), "train"));
    assert_int_equal(s.block_len, 8);
    shards_close(&s);
    /* --skip-bad: a warning naming the file, and the count in the summary */
    put_file(tmp_path("cli/garbage.bin"), "\x7f" "ELF\x02\x01\x01\x00\x00\x00\xff", 12);
    assert_int_equal(run(&out, "data prepare --tokenizer %s --out %s/o2 --block-len 8 --skip-bad "
                               "%s/a.txt %s/garbage.bin", BYTES, corpus, corpus, corpus), 0);
    printf("  %s", out);
    assert_non_null(strstr(out, "warning: skipped"));
    assert_non_null(strstr(out, "garbage.bin: a NUL byte (binary data?) at byte offset 7"));
    assert_non_null(strstr(out, "1 bad skipped"));
    free(out);
    static char args[32][1200];
    const char *word[32];
    int n = 0;
#define CASE(w, ...) (snprintf(args[n], sizeof args[n], __VA_ARGS__), word[n++] = (w))
    CASE("--block-len", "data prepare --tokenizer %s --out %s/x --block-len 2 %s", BYTES, corpus, corpus);
    CASE("--block-len", "data prepare --tokenizer %s --out %s/x --block-len 2000000 %s", BYTES, corpus, corpus);
    CASE("exclude each other", "data prepare --tokenizer %s --out %s/x --val-docs 1 --val-fraction 0.1 %s", BYTES, corpus, corpus);
    CASE("--val-fraction", "data prepare --tokenizer %s --out %s/x --val-fraction 0.9 %s", BYTES, corpus, corpus);
    CASE("required", "data prepare --out %s/x %s", corpus, corpus);
    CASE("required", "data prepare --tokenizer %s --out %s/x", BYTES, corpus);
    CASE("cannot open input", "data prepare --tokenizer %s --out %s/x %s/nope", BYTES, corpus, corpus);
    CASE("smaller than --block-len", "data prepare --tokenizer %s --out %s/x --shard-tokens 10 %s", BYTES, corpus, corpus);
    CASE("already holds", "data prepare --tokenizer %s --out %s/o %s", BYTES, corpus, corpus);
    CASE("unknown subcommand", "data frobnicate");
    CASE("prepare", "data");
#undef CASE
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, n);
}

static int setup(void **state) { return tu_tmpdir_make(g_tmp, sizeof g_tmp, "data"); }

static int teardown(void **state) { return tu_tmpdir_remove(g_tmp); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_gpt2),
        cmocka_unit_test(test_round_trip_bytes),
        cmocka_unit_test(test_val_split),
        cmocka_unit_test(test_out_inside_input),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_prepare_errors),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests_name("data", tests, setup, teardown);
}
