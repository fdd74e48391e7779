/* tokenizer.h — byte-level BPE tokenizers (GPT-2, Qwen2/Qwen2.5/Qwen3 and other tokenizer.json
 * files of that family), matching Hugging Face `tokenizers`.
 *
 * Usage:
 *     smdlm_tokenizer *tok;
 *     if (tok_load_dir(&tok, "models/gpt2") != 0) die(smdlm_last_error());
 *     int32_t *ids; size_t n;
 *     if (tok_encode(tok, text, strlen(text), &ids, &n) != 0) die(smdlm_last_error());
 *     char *back; size_t len;
 *     tok_decode(tok, ids, n, &back, &len);   // back == NFC(text) for valid UTF-8 text
 *     free(ids); free(back); tok_free(tok);
 *
 * Semantics (those of HF `tokenizers` 0.22, i.e. `tokenizer.encode(text, add_special_tokens=
 * False)` and `tokenizer.decode(ids)`):
 *   - added tokens (tokenizer.json `added_tokens`) are split out of the text first, leftmost-
 *     longest, the non-normalized ones before the normalized ones, honouring lstrip/rstrip;
 *   - the text between them is normalized (normalizer null, NFC/NFD/NFKC/NFKD or a Sequence of
 *     those; Unicode data from libutf8proc), then split by the pre-tokenizer pipeline: ByteLevel
 *     (GPT-2 regex when use_regex, add_prefix_space honoured), Split (a Regex or String pattern,
 *     behavior Isolated, not inverted: Qwen2's digit-by-digit regex is read from the file), or a
 *     Sequence of those; each piece is mapped byte → unicode character and merged by BPE rank
 *     (HF's priority-queue order);
 *   - encode never adds BOS/EOS or applies truncation/padding/post-processing;
 *   - encode requires valid UTF-8 and reports the byte offset of the first invalid byte;
 *   - decode maps each token's characters back to bytes (tokens with characters outside the
 *     byte alphabet, e.g. "<|endoftext|>", are taken as their raw UTF-8) and converts the byte
 *     string to UTF-8 lossily: each maximal invalid subsequence becomes U+FFFD, exactly as
 *     Rust's String::from_utf8_lossy. Ids out of range or unassigned are an error.
 *
 * Special tokens in untrusted text: tok_encode parses every added token, as HF does (trusted
 * text: corpora, generated samples). tok_encode_ex without TOK_ALLOW_SPECIAL encodes the text of
 * *special* added tokens ("<|im_start|>", "<|endoftext|>") as plain text — HF's
 * `split_special_tokens=True`, llama.cpp's parse_special=false — while non-special added tokens
 * (Qwen's "<think>", "<tool_call>") are still matched. Chat templates (chat.h) insert their
 * control tokens as ids and encode user content this way.
 *
 * Loading from vocab.json + merges.txt registers, as special added tokens, every vocabulary
 * entry of the form "<|...|>" (GPT-2's <|endoftext|>, a model's <|mask|>), which is what HF's
 * GPT-2 tokenizer files declare for <|endoftext|>. tok_load_dir also reads DIR/
 * tokenizer_config.json when present: bos_token, eos_token, pad_token, mask_token (a string or an
 * {"content": ...} object; each must name a token of the tokenizer) and chat_template.
 *
 * Supported tokenizer.json: model BPE (no dropout, no byte_fallback, no subword prefix/suffix;
 * ignore_merges honoured; merges as "a b" or ["a", "b"]), the normalizers and pre-tokenizers
 * above (a ByteLevel step is required), decoder ByteLevel or null. Anything else is rejected with
 * an error naming it. Every file is size-bounded and validated; errors go through SM_ERR
 * (smdlm_last_error()).
 *
 * Thread safety: a loaded tokenizer is immutable; tok_encode, tok_decode and the queries may
 * be called from many threads at once on the same tokenizer (all scratch state, including a
 * cache of merged words, is per call). Load tokenizers from one thread at a time (cJSON keeps
 * a global parse-error pointer).
 *
 * Speed: about 45-65 MB/s of English text/code per thread on the build machine (GPT-2).
 */
#ifndef SMDLM_TOKENIZER_H
#define SMDLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct smdlm_tokenizer smdlm_tokenizer; /* opaque */

/* Limits on untrusted tokenizer files. */
#define TOK_MAX_FILE_BYTES ((size_t)256 << 20) /* per file */
#define TOK_MAX_ID ((1 << 24) - 1)             /* largest token id accepted */

/* DIR/tokenizer.json if present, else DIR/vocab.json + DIR/merges.txt. */
int tok_load_dir(smdlm_tokenizer **out, const char *dir);
int tok_load_files(smdlm_tokenizer **out, const char *vocab_json, const char *merges_txt);
int tok_load_json(smdlm_tokenizer **out, const char *tokenizer_json);
void tok_free(smdlm_tokenizer *t);

/* The files of a tokenizer directory, in the order they are copied: tokenizer.json,
 * vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json. */
#define TOK_DIR_NFILES 5
extern const char *const tok_dir_files[TOK_DIR_NFILES];
/* Whether DIR holds tokenizer files (tokenizer.json or vocab.json). */
int tok_dir_has_tokenizer(const char *dir);
/* Copies the tok_dir_files that FROM holds into TO (each written atomically). copied (NULL:
 * not wanted) receives their names, at most TOK_DIR_NFILES, and *ncopied their count. */
int tok_copy_dir(const char *from, const char *to, const char **copied, int *ncopied);

/* The fingerprint of DIR's tokenizer: "fnv1a64:" + 16 hex digits, a 64-bit FNV-1a hash of the
 * files that decide the ids — DIR/tokenizer.json when present, else DIR/vocab.json and
 * DIR/merges.txt, the files tok_load_dir reads for encoding (each hashed with its name and
 * byte length) — into out (TOK_FINGERPRINT_SIZE bytes). tokenizer_config.json (roles, chat
 * template) does not count. Equal for a byte-identical copy anywhere. Returns 0; 1 when DIR
 * holds no tokenizer files (out untouched); -1 (with the error) when one cannot be read. */
#define TOK_FINGERPRINT_SIZE 32
int tok_fingerprint_dir(const char *dir, char out[TOK_FINGERPRINT_SIZE]);

/* Number of ids: max id + 1 over the vocabulary and the added tokens. */
int tok_vocab_size(const smdlm_tokenizer *t);

/* Encode len (< 2^31) bytes of UTF-8 text; *ids is malloc'ed (non-NULL even when *n == 0).
 * Returns -1 with *ids NULL on invalid UTF-8 (the message gives the byte offset). Every added
 * token is parsed, special ones included (= tok_encode_ex with TOK_ALLOW_SPECIAL). */
int tok_encode(const smdlm_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n);
/* Decode to malloc'ed, NUL-terminated UTF-8 text of *len bytes (nothing skipped). */
int tok_decode(const smdlm_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len);

/* Flags of tok_encode_ex / tok_decode_ex. */
enum {
    TOK_ALLOW_SPECIAL = 1, /* encode: parse special added tokens in the text */
    TOK_SKIP_SPECIAL = 2,  /* decode: leave special added tokens out */
};
/* tok_encode with flags; without TOK_ALLOW_SPECIAL, special-token text is plain text. */
int tok_encode_ex(const smdlm_tokenizer *t, const char *text, size_t len, unsigned flags,
                  int32_t **ids, size_t *n);
int tok_decode_ex(const smdlm_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                  char **text, size_t *len);

/* Token roles a model needs. */
typedef enum { TOK_BOS, TOK_EOS, TOK_PAD, TOK_MASK, TOK_N_ROLES } tok_role;
/* Id of a role as tokenizer_config.json declares it, or -1. TOK_MASK falls back to the token
 * "<|mask|>" (Dream), then "<|mdm_mask|>" (LLaDA), when undeclared. */
int32_t tok_role_id(const smdlm_tokenizer *t, tok_role role);
/* 1 if id is a special added token. */
int tok_is_special(const smdlm_tokenizer *t, int32_t id);
/* tokenizer_config.json's chat_template (Jinja text), or NULL. */
const char *tok_chat_template(const smdlm_tokenizer *t);

/* Raw vocabulary string of an id (byte-level form, e.g. "Ġthe"), or NULL. */
const char *tok_id_to_str(const smdlm_tokenizer *t, int32_t id);
/* Id of a raw vocabulary string or added token, -1 if absent. */
int32_t tok_str_to_id(const smdlm_tokenizer *t, const char *s);

#endif
