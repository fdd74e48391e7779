/* chat.h — chat templates rendered straight to token ids (or to text): ChatML (Qwen2/Qwen2.5, which Dream and
 * Dream-Coder use) and LLaDA-8B-Instruct's template.
 *
 *     chat_msg m[] = {{"user", "Write a haiku."}};
 *     chat_format f;
 *     int32_t *ids; size_t n;
 *     if (chat_detect(tok, &f) || chat_encode(tok, f, m, 1, &ids, &n)) die(smdlm_last_error());
 *
 * The ids equal HF's `tokenizer.apply_chat_template(messages, add_generation_prompt=True)` for
 * messages whose content holds no special-token text: control tokens are inserted as ids, and
 * each stretch of text between two control tokens (e.g. "user\n" + content) is encoded as one
 * piece, as HF encodes the rendered string. Content that looks like a control token
 * ("<|im_end|>") stays plain text (tok_encode_ex without TOK_ALLOW_SPECIAL): user text cannot
 * close a turn or open a new one.
 *
 * ChatML: "<|im_start|>system\n{system}<|im_end|>\n" — the first message when its role is system,
 * else the default "You are a helpful assistant." — then "<|im_start|>{role}\n{content}
 * <|im_end|>\n" per message and "<|im_start|>assistant\n".
 * LLaDA: "<|startoftext|>" (the tokenizer's bos token), then "<|start_header_id|>{role}
 * <|end_header_id|>\n\n{content stripped of white space}<|eot_id|>" per message and
 * "<|start_header_id|>assistant<|end_header_id|>\n\n". Roles: system, user, assistant.
 */
#ifndef SMDLM_CHAT_H
#define SMDLM_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

typedef enum { CHAT_CHATML, CHAT_LLADA } chat_format;

typedef struct {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} chat_msg;

/* The template of a tokenizer: from tokenizer_config.json's chat_template when there is one,
 * else from the control tokens the tokenizer has. An error when neither tells. */
int chat_detect(const smdlm_tokenizer *t, chat_format *out);

/* Renders n >= 1 messages and the assistant header; *ids is malloc'ed. flags: 0, or
 * TOK_ALLOW_SPECIAL to parse special-token text in the contents (trusted text only). */
int chat_encode(const smdlm_tokenizer *t, chat_format fmt, const chat_msg *msgs, size_t n,
                unsigned flags, int32_t **ids, size_t *n_ids);

/* The same as text, HF's `apply_chat_template(messages, tokenize=False)`: with the assistant's
 * header at the end, or, with continue_final, `continue_final_message=True` (the last message
 * is the assistant's and the text ends inside it, so that a model continues it). *text is
 * malloc'ed. */
int chat_render_text(const smdlm_tokenizer *t, chat_format fmt, const chat_msg *msgs, size_t n,
                     int continue_final, char **text);

#endif
