/* data.h — token shards: the training data format written by `smdlm data prepare` and read
 * by `smdlm train` / `smdlm eval ppl`.
 *
 * A data directory holds train_NNNNN.bin shards, val.bin and meta.json. Each shard is a
 * 32-byte little-endian header — magic "SMDLMTOK", u32 version (1), u32 token width in
 * bytes (2 when the vocabulary has ≤ 65536 ids, else 4), u64 number of tokens, u32 block
 * length L, u32 reserved (0) — followed by the tokens. Shards hold whole blocks of L tokens
 * (tokens = blocks·L). Blocks follow MDLM's OpenWebText "wrap" pipeline: documents are
 * concatenated with EOS after each, the stream is cut into pieces of L − 2 tokens and every
 * block is [BOS] piece [EOS]. meta.json records vocab_size, block_len, bos_id, eos_id, the
 * tokenizer's files and fingerprint (tok_fingerprint_dir) and the block counts per split.
 */
#ifndef SMDLM_DATA_H
#define SMDLM_DATA_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC "SMDLMTOK"
#define SHARD_VERSION 1
#define SHARD_HEADER_BYTES 32

typedef struct {
    char *path;
    const uint8_t *map;
    size_t map_size;
    size_t nblocks;
} shard_file;

typedef struct {
    shard_file *files;
    int nfiles;
    int token_bytes; /* 2 or 4 */
    int block_len;   /* L */
    size_t nblocks;  /* over all files */
    int vocab_size;  /* from meta.json; every token is checked < vocab_size on read */
} shard_set;

/* Opens the shards of one split ("train" or "val") of a data directory, validating every
 * header (magic, version, width, sizes) against meta.json. */
int shards_open(shard_set *s, const char *dir, const char *split);
void shards_close(shard_set *s);
/* Copies block i (0 ≤ i < nblocks) into out[L] as int32; an id ≥ vocab_size is an error
 * naming the file and offset. */
int shards_read_block(const shard_set *s, size_t i, int32_t *out);

/* Compares the tokenizer of model_dir (tok_fingerprint_dir) with the one data_dir's meta.json
 * records. A mismatch is an error naming both, or with allow_mismatch a warning on stderr;
 * data without a recorded fingerprint (prepared before it existed) get a one-line note that
 * they cannot be checked; a model_dir without tokenizer files is not checked. `who` prefixes
 * the stderr lines ("smdlm train"). Returns 0 or -1. */
int data_check_tokenizer(const char *data_dir, const char *model_dir, int allow_mismatch, const char *who);

#endif
