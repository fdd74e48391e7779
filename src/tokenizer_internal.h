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

#endif
