/* tfgen.h — text generation with a Dream / LLaDA model directory: the prompt as ids (plain text
 * or chat-templated), the decoder's parameters from the directory (EOS, soft-masking), and the
 * completion as text, around decoder_run (decoder.h). Used by smdlm_generate (include/smdlm.h).
 *
 *     decoder_params p;
 *     int32_t *ids; size_t n; int gen;
 *     tfgen_default_params(&md, &p);                         // then set gen_len, steps, ...
 *     tfgen_encode_prompt(&md, "Hello", 1, NULL, 0, &ids, &n);  // chat, default system prompt
 *     // x [B, n + gen_len] holding the prompt in each row: decoder_run(&lm, &p, x, B, n, &gen, &st)
 *     tfgen_completion(&md, x + n, gen, &text);              // up to the first EOS
 */
#ifndef SMDLM_TFGEN_H
#define SMDLM_TFGEN_H

#include <stddef.h>
#include <stdint.h>

#include "generate/decoder.h"
#include "models/model.h"

/* LLaDA's generate.py / README default block length. */
#define TFGEN_LLADA_BLOCK 32

/* decoder_params_default, then: style from the architecture; Dream's documented defaults
 * (alg origin, temperature 0) or LLaDA's (block length 32, low_confidence); steps = gen_len
 * = 128; EOS from tfgen_eos_id; soft-masking as the directory says (md->sm). */
int tfgen_default_params(const model_dir *md, decoder_params *p);

/* The EOS id generation stops at: tokenizer_config.json's eos_token (what Dream's README splits
 * the output on), else config.json's eos_token_id, else -1 (none). */
int tfgen_eos_id(const model_dir *md, int *eos);

/* Prompt ids (*ids malloc'ed, non-NULL). chat = 0: the text as it is; chat = 1: the text is
 * the user message of the directory's chat template (chat.h), after a system message when
 * system != NULL. Special-token text in prompt and system stays text unless allow_special. */
int tfgen_encode_prompt(const model_dir *md, const char *prompt, int chat, const char *system,
                        int allow_special, int32_t **ids, size_t *n);

/* Completion text of n generated ids, special tokens skipped (*text malloc'ed). */
int tfgen_completion(const model_dir *md, const int32_t *ids, int n, char **text);

#endif
