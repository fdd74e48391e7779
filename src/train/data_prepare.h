/* data_prepare.h — text → token shards (`smdlm data prepare`; the format is in data.h).
 *
 * Usage:
 *     data_prepare_opts o;
 *     data_prepare_defaults(&o);
 *     o.tokenizer_dir = "tests/fixtures/gpt2-tokenizer";
 *     o.out_dir = "data/mycorpus";
 *     const char *inputs[] = {"corpus/", "extra.jsonl"};
 *     data_prepare_stats st;
 *     if (data_prepare(&o, inputs, 2, &st) != 0) die(smdlm_last_error());
 *
 * Inputs, in the order given:
 *   - a directory is walked recursively (entries sorted by name; names starting with '.' are
 *     skipped; symbolic links to directories are not followed); its regular files whose name
 *     matches `glob` (fnmatch; a pattern containing '/' is matched against the path below
 *     the directory instead) are taken, each as below;
 *   - a file ending in ".jsonl" holds one JSON object per line; the string field
 *     `jsonl_field` of each line is one document (blank lines are ignored);
 *   - any other file is ONE document, whatever it contains (a .txt of several stories is
 *     still one document: split it, or use JSONL, to get document boundaries).
 * Documents must be UTF-8 without NUL bytes; an empty document is skipped. A bad document
 * (invalid UTF-8 or NUL: "binary garbage"; a JSONL line that is not an object or lacks the
 * field; a text holding "<|mask|>" when the tokenizer has that token, since it would put the
 * mask id into clean data) is an error naming the file, line and byte offset, or with
 * `skip_bad` a warning on stderr and the document is left out.
 *
 * Documents are read one file (or JSONL line) at a time, encoded in batches in parallel
 * (OpenMP, over documents; the output does not depend on the number of threads), and each
 * goes whole to the train or the validation split: the k-th non-empty document (counted over
 * the inputs in order; a JSONL line that is not an object with the string field does not
 * count) goes to validation when a hash of (seed, k) is below val_fraction, or, with
 * val_docs ≥ 0, when k is one of val_docs indices drawn with the seed (a first pass counts
 * the documents; validation gets fewer when --skip-bad drops some of them). Per split,
 * tokens and one EOS per document are packed into blocks [BOS] L−2 tokens [EOS] (BOS = EOS =
 * <|endoftext|>; that text inside a document also encodes to this id, as with HF tokenizers);
 * the last partial block of each split is dropped. Train shards (train_00000.bin, …) hold up
 * to shard_tokens tokens (rounded down to whole blocks); the validation split is val.bin (an
 * empty split gives a header-only file). Every file is written to a temporary name, fsync'ed
 * and renamed; meta.json is written last (a directory without it is incomplete). The
 * tokenizer's files are copied to OUT/tokenizer/. An out_dir that already holds meta.json or
 * shards is an error, unless `force`: then they are deleted first (meta.json before the
 * shards).
 *
 * meta.json keys: format ("smdlm-tokens"), version (1), vocab_size, block_len, token_bytes,
 * bos_id, eos_id, mask_id (the tokenizer's <|mask|>, or null), tokenizer ("tokenizer", the
 * copy's subdirectory), tokenizer_source,
 * tokenizer_files, tokenizer_fingerprint (tok_fingerprint_dir; absent in data prepared before
 * it existed), seed, val_fraction or val_docs, jsonl_field, glob, inputs, and per split
 * "train"/"val": {files: [{name, blocks}], blocks, tokens (= blocks·L), documents,
 * document_tokens (their tokens + one EOS each), dropped_tokens}.
 */
#ifndef SMDLM_DATA_PREPARE_H
#define SMDLM_DATA_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#define DATA_MIN_BLOCK_LEN 3
#define DATA_MAX_BLOCK_LEN (1 << 20)
#define DATA_DEFAULT_SHARD_TOKENS ((uint64_t)1 << 27)
#define DATA_MAX_DOC_BYTES ((size_t)1 << 30) /* one document (a text file or a JSONL line) */

typedef struct {
    const char *tokenizer_dir; /* required */
    const char *out_dir;       /* required; created (with parents) if missing */
    int block_len;             /* L, default 1024 */
    double val_fraction;       /* default 0.005, in [0, 1) */
    int64_t val_docs;          /* ≥ 0: exactly this many validation documents; -1 (default): use val_fraction */
    const char *jsonl_field;   /* default "text" */
    const char *glob;          /* default "*" */
    uint64_t shard_tokens;     /* default 2^27 */
    uint64_t seed;             /* default 0 */
    int threads;               /* 0 (default): OpenMP's default */
    int skip_bad;              /* skip bad documents with a warning instead of failing */
    int force;                 /* replace an earlier data set in out_dir */
    int progress;              /* progress on stderr (base/progress.h: in place on a terminal) */
    int quiet;                 /* no warnings on stderr */
} data_prepare_opts;

typedef struct {
    uint64_t documents[2];      /* [0] train, [1] val: documents written */
    uint64_t document_tokens[2];/* their tokens, one EOS each included */
    uint64_t blocks[2];
    uint64_t dropped_tokens[2]; /* the last partial block's */
    int train_shards;
    uint64_t skipped;           /* bad documents left out (skip_bad) */
    uint64_t empty;             /* empty documents left out */
    uint64_t bytes_read;        /* input bytes (files as read, JSONL lines included) */
    double seconds;
} data_prepare_stats;

void data_prepare_defaults(data_prepare_opts *o);
/* Returns 0, or -1 with smdlm_last_error() naming the problem; on failure the shards this
 * run wrote are removed and meta.json is not written. */
int data_prepare(const data_prepare_opts *o, const char *const *inputs, int ninputs,
                 data_prepare_stats *stats);
/* The one-line summary the CLI prints. */
void data_prepare_summary(const data_prepare_opts *o, const data_prepare_stats *st, char *buf,
                          size_t size);

#endif
