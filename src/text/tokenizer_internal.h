/* tokenizer_internal.h — pieces of tokenizer.c shared with the BPE trainer (bpe_train.c), so
 * that training and encoding pre-tokenize text identically. Not part of the public API. */
#ifndef SMDLM_TOKENIZER_INTERNAL_H
#define SMDLM_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

/* A freshly compiled GPT-2 pre-tokenizer regex (the one tok_encode uses: UTF + UCP, JIT when
 * available); release it with pcre2_code_free. */
pcre2_code *tok_gpt2_regex(void);

/* GPT-2's bytes_to_unicode: the code point (< 0x144) that stands for each byte. */
void tok_byte_to_unicode(uint16_t out[256]);

/* Offset of the first byte of s[0..n) that is not part of valid UTF-8, or n when s is valid
 * (the check tok_encode applies). */
size_t tok_utf8_valid_prefix(const char *s, size_t n);

/* Open-addressing tables keyed by a pair of ids (tokenizer merges, trainer pair counts): each
 * slot starts with its uint64_t key, TOK_KEY_EMPTY marking a free slot; linear probing from
 * slot_of(key, mask). */
#define TOK_KEY_EMPTY UINT64_MAX
/* Replaces *slots (*mask + 1 slots of slot_size bytes, or NULL) by a table of twice the
 * size (first_cap slots when NULL) holding the same entries; new slots are zeroed and free. */
void tok_keymap_grow(void **slots, size_t *mask, size_t slot_size, size_t first_cap,
                     size_t (*slot_of)(uint64_t key, size_t mask));

/* The byte-string hash of the tokenizer's and the trainer's hash maps (FNV-1a, folded). */
static inline uint64_t tok_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

#endif
