/* bpe_train.h — byte-level BPE training (`smdlm tokenizer train`): the merges Hugging Face
 * `tokenizers`' BpeTrainer learns with a ByteLevel pre-tokenizer, written as files that
 * src/text/tokenizer.c and the HF library both load with identical ids.
 *
 * Usage:
 *     bpe_train_opts o;
 *     bpe_train_defaults(&o);
 *     o.vocab_size = 4096;
 *     const char *inputs[] = {"corpus/", "extra.jsonl"};
 *     bpe_train_stats st;
 *     if (bpe_train(&o, inputs, 2, "tok-4k", &st) != 0) die(smdlm_last_error());
 *
 * Inputs (the documents `smdlm data prepare` reads from the same arguments):
 *   - a directory is walked recursively (entries sorted by name, names starting with '.'
 *     skipped, symbolic links to directories not followed); its regular files whose name
 *     matches `glob` (fnmatch; a pattern with a '/' is matched against the path below the
 *     directory) are taken as below;
 *   - a file ending in ".jsonl" holds one JSON object per line; the string field `jsonl_field`
 *     of each line is one document (blank lines are ignored);
 *   - any other file is one document.
 * Documents must be UTF-8 without NUL bytes; anything else is an error naming the file (and
 * line) and the byte offset. Files are read one at a time in chunks: only the word-count
 * table stays in memory.
 *
 * Training (HF's BpeTrainer, tokenizers 0.22; tests/test_bpe_train.c compares every merge
 * with the library's trainer):
 *   - every document is split with the GPT-2 regex (the one tok_encode uses, on whole
 *     documents: a chunk boundary never changes a word) and the words are counted;
 *   - the initial vocabulary is the 256 byte symbols (all of them, HF's
 *     ByteLevel.alphabet()), ids in code-point order of GPT-2's byte-to-unicode map (which is
 *     GPT-2's own byte order);
 *   - then, while the vocabulary (special tokens included) is smaller than vocab_size, the
 *     most frequent adjacent pair is merged in every word; ties go to the smallest
 *     (left id, right id), new tokens taking the next id. The bookkeeping is HF's (a max-heap
 *     of (count, pair, words) entries with lazily refreshed counts), quirks included: the
 *     entries of a pair created by different merges are merged one after the other, and a
 *     merge whose string is already in the vocabulary adds no id (neither happened on any
 *     corpus tried). Training stops early when the best pair occurs fewer than
 *     max(min_frequency, 1) times (default 2, as HF's ByteLevelBPETokenizer.train).
 *   - HF gives special tokens passed to the trainer the first ids; here they come last. That
 *     shifts the other ids uniformly, so the pair order, hence every merge, is the same.
 *   - Counts are 64-bit (HF's are i32 and would overflow beyond 2^31 occurrences of a pair).
 * HF's own `train(files)` feeds files line by line, so a whitespace run across a line break
 * is split there; this trainer sees whole documents, exactly as encoding does.
 *
 * Speed (one thread): about 75-85 MB/s of text counted; merging takes 0.04 s for vocabulary
 * 4096 on 11 MB of Python (48k distinct words).
 *
 * Output (each file written to a temporary name, fsync'ed and renamed; out_dir is created
 * with its parents): vocab.json, merges.txt ("#version: 0.2" header), tokenizer.json (the
 * compact form the HF library saves: ByteLevel pre-tokenizer without prefix space, BPE model,
 * ByteLevel decoder and post-processor) and tokenizer_config.json (for transformers'
 * GPT2Tokenizer). Ids: 0..255 the bytes, then one per new token in merge order, then
 * <|endoftext|>, and <|mask|> last (the engine's mask convention); both are special added
 * tokens. A duplicated merge keeps its last rank, as the library does when it saves.
 */
#ifndef SMDLM_BPE_TRAIN_H
#define SMDLM_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#define BPE_MIN_VOCAB 258          /* 256 bytes + <|endoftext|> + <|mask|> */
#define BPE_MAX_VOCAB (1 << 24)    /* the tokenizer's id limit */
#define BPE_MAX_DOC_BYTES ((size_t)1 << 30) /* one JSONL line; one word of a plain file */

typedef struct {
    int vocab_size;          /* required: ids in the output, special tokens included */
    uint64_t min_frequency;  /* merge only pairs seen at least this often (default 2) */
    const char *glob;        /* file filter inside directories (default "*") */
    const char *jsonl_field; /* default "text" */
    size_t chunk_bytes;      /* read size for plain files (default 1 MiB; ≥ 1) */
    int progress;            /* progress on stderr (base/progress.h) */
} bpe_train_opts;

typedef struct {
    uint64_t files, documents, bytes; /* documents include empty ones */
    uint64_t words, unique_words;     /* pre-tokens counted, distinct pre-tokens */
    int merges;                       /* merges written */
    int vocab_size;                   /* ids written (< opts.vocab_size when stopped early) */
    uint64_t last_count;              /* count of the last merge (0: none) */
    int stopped_early;                /* no pair reached max(min_frequency, 1) */
    double count_seconds, merge_seconds;
} bpe_train_stats;

typedef struct bpe_trainer bpe_trainer;

void bpe_train_defaults(bpe_train_opts *o);

/* The whole job: counts the inputs, learns the merges, writes out_dir. out_dir is created
 * (and checked for writing) before any input is read. */
int bpe_train(const bpe_train_opts *o, const char *const *inputs, int ninputs,
              const char *out_dir, bpe_train_stats *stats);

/* The same in steps (tests, other tools). Options are validated by bpe_trainer_new. */
int bpe_trainer_new(bpe_trainer **out, const bpe_train_opts *o);
/* One document from memory (UTF-8 without NUL). */
int bpe_trainer_add_document(bpe_trainer *t, const char *text, size_t len);
/* Files, directories and JSONL files as described above. */
int bpe_trainer_add_inputs(bpe_trainer *t, const char *const *inputs, int ninputs);
/* Learns the merges from the words counted so far (once). Error when nothing was counted. */
int bpe_trainer_train(bpe_trainer *t);
/* Writes the four files into dir (created with its parents). */
int bpe_trainer_save(const bpe_trainer *t, const char *dir);
void bpe_trainer_stats(const bpe_trainer *t, bpe_train_stats *stats);
/* Merges as written (duplicates removed): vocabulary strings of the left and right parts. */
size_t bpe_trainer_n_merges(const bpe_trainer *t);
void bpe_trainer_merge(const bpe_trainer *t, size_t i, const char **left, const char **right);
void bpe_trainer_free(bpe_trainer *t);

#endif
