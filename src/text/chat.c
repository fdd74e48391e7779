/* chat.c — ChatML and LLaDA chat templates as token ids or as text. See chat.h. */
#include "text/chat.h"

#include <string.h>

#include "base/util.h"

#define CHATML_DEFAULT_SYSTEM "You are a helpful assistant."

/* The output: ids so far, and the text since the last control token (encoded as one piece).
 * As text: the control tokens are written into the text and nothing is encoded. */
typedef struct {
    const smdlm_tokenizer *t;
    int as_text;
    unsigned flags; /* tok_encode_ex flags of the text */
    int32_t *ids;
    size_t n, cap;
    char *text;
    size_t len, text_cap;
} chat_buf;

static void push_ids(chat_buf *b, const int32_t *ids, size_t k) {
    if (b->n + k > b->cap) {
        b->cap = 2 * (b->n + k) + 64;
        b->ids = sm_realloc(b->ids, b->cap * sizeof *b->ids);
    }
    memcpy(b->ids + b->n, ids, k * sizeof *ids);
    b->n += k;
}

static void add_text(chat_buf *b, const char *s, size_t k) {
    if (b->len + k + 1 > b->text_cap) {
        b->text_cap = 2 * (b->len + k) + 256;
        b->text = sm_realloc(b->text, b->text_cap);
    }
    memcpy(b->text + b->len, s, k);
    b->len += k;
}

static void add_str(chat_buf *b, const char *s) { add_text(b, s, strlen(s)); }

/* Encodes the pending text (special-token text stays plain text unless flags allow it). */
static int flush(chat_buf *b) {
    if (b->len == 0 || b->as_text) return 0;
    int32_t *ids;
    size_t k;
    if (tok_encode_ex(b->t, b->text, b->len, b->flags, &ids, &k) != 0) return -1;
    push_ids(b, ids, k);
    free(ids);
    b->len = 0;
    return 0;
}

static int control(chat_buf *b, const char *token) {
    int32_t id = tok_str_to_id(b->t, token);
    if (id < 0) return SM_ERR("the tokenizer has no '%s' token (needed by the chat template)", token);
    if (b->as_text) {
        add_str(b, token);
        return 0;
    }
    if (flush(b) != 0) return -1;
    push_ids(b, &id, 1);
    return 0;
}

/* White space as Python's str.isspace (Jinja's trim is str.strip). */
static size_t py_space_len(const char *s, size_t n) {
    static const char *const ws[] = {
        "\xc2\x85",     "\xc2\xa0",     "\xe1\x9a\x80", "\xe2\x80\xa8", "\xe2\x80\xa9",
        "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"};
    unsigned char c = (unsigned char)s[0];
    if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20)) return 1;
    if (n >= 3 && memcmp(s, "\xe2\x80", 2) == 0 && (unsigned char)s[2] >= 0x80 &&
        (unsigned char)s[2] <= 0x8a) /* U+2000..U+200A */
        return 3;
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        size_t k = strlen(ws[i]);
        if (n >= k && memcmp(s, ws[i], k) == 0) return k;
    }
    return 0;
}

/* s[*start, *end) is Python's s.strip(). */
static void py_strip(const char *s, size_t *start, size_t *end) {
    size_t n = strlen(s), k;
    *start = 0;
    *end = n;
    while (*start < n && (k = py_space_len(s + *start, n - *start))) *start += k;
    while (*end > *start) { /* the last character: step back over continuation bytes */
        size_t c = *end - 1;
        while (c > *start && ((unsigned char)s[c] & 0xc0) == 0x80) c--;
        if (py_space_len(s + c, *end - c) != *end - c) break;
        *end = c;
    }
}

static void add_trimmed(chat_buf *b, const char *s) {
    size_t start, end;
    py_strip(s, &start, &end);
    add_text(b, s + start, end - start);
}

static int check_role(const chat_msg *m, size_t i) {
    if (!m->role || !m->content) return SM_ERR("chat message %zu: missing role or content", i);
    if (strcmp(m->role, "system") && strcmp(m->role, "user") && strcmp(m->role, "assistant"))
        return SM_ERR("chat message %zu: unsupported role '%s' (system, user or assistant)", i,
                      m->role);
    return 0;
}

static int render_chatml(chat_buf *b, const chat_msg *msgs, size_t n, int generation_prompt) {
    size_t first = 0;
    if (control(b, "<|im_start|>")) return -1;
    add_str(b, "system\n");
    if (strcmp(msgs[0].role, "system") == 0) {
        add_str(b, msgs[0].content);
        first = 1;
    } else {
        add_str(b, CHATML_DEFAULT_SYSTEM);
    }
    if (control(b, "<|im_end|>")) return -1;
    add_str(b, "\n");
    for (size_t i = first; i < n; i++) {
        if (control(b, "<|im_start|>")) return -1;
        add_str(b, msgs[i].role);
        add_str(b, "\n");
        add_str(b, msgs[i].content);
        if (control(b, "<|im_end|>")) return -1;
        add_str(b, "\n");
    }
    if (!generation_prompt) return 0;
    if (control(b, "<|im_start|>")) return -1;
    add_str(b, "assistant\n");
    return 0;
}

static int render_llada(chat_buf *b, const chat_msg *msgs, size_t n, int generation_prompt) {
    int32_t bos = tok_role_id(b->t, TOK_BOS);
    const char *bos_str = bos >= 0 ? tok_id_to_str(b->t, bos) : "<|startoftext|>";
    if (control(b, bos_str)) return -1;
    for (size_t i = 0; i < n; i++) {
        if (control(b, "<|start_header_id|>")) return -1;
        add_str(b, msgs[i].role);
        if (control(b, "<|end_header_id|>")) return -1;
        add_str(b, "\n\n");
        add_trimmed(b, msgs[i].content);
        if (control(b, "<|eot_id|>")) return -1;
    }
    if (!generation_prompt) return flush(b);
    if (control(b, "<|start_header_id|>")) return -1;
    add_str(b, "assistant");
    if (control(b, "<|end_header_id|>")) return -1;
    add_str(b, "\n\n");
    return flush(b);
}

int chat_detect(const smdlm_tokenizer *t, chat_format *out) {
    const char *tpl = tok_chat_template(t);
    if (tpl && strstr(tpl, "<|im_start|>")) {
        *out = CHAT_CHATML;
    } else if (tpl && strstr(tpl, "<|start_header_id|>")) {
        *out = CHAT_LLADA;
    } else if (tpl) {
        return SM_ERR("unsupported chat_template in tokenizer_config.json (neither ChatML nor "
                      "LLaDA's)");
    } else if (tok_str_to_id(t, "<|im_start|>") >= 0) {
        *out = CHAT_CHATML;
    } else if (tok_str_to_id(t, "<|start_header_id|>") >= 0) {
        *out = CHAT_LLADA;
    } else {
        return SM_ERR("no chat template: the tokenizer has neither '<|im_start|>' (ChatML) nor "
                      "'<|start_header_id|>' (LLaDA)");
    }
    return 0;
}

static int check_messages(const chat_msg *msgs, size_t n) {
    if (n == 0) return SM_ERR("chat: no messages");
    for (size_t i = 0; i < n; i++)
        if (check_role(&msgs[i], i) != 0) return -1;
    return 0;
}

static int render(chat_buf *b, chat_format fmt, const chat_msg *msgs, size_t n, int generation_prompt) {
    return fmt == CHAT_CHATML ? render_chatml(b, msgs, n, generation_prompt)
                              : render_llada(b, msgs, n, generation_prompt);
}

int chat_encode(const smdlm_tokenizer *t, chat_format fmt, const chat_msg *msgs, size_t n,
                unsigned flags, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (check_messages(msgs, n)) return -1;
    chat_buf b = {.t = t, .flags = flags & TOK_ALLOW_SPECIAL};
    int rc = render(&b, fmt, msgs, n, 1);
    if (rc == 0) rc = flush(&b);
    free(b.text);
    if (rc != 0) {
        free(b.ids);
        return -1;
    }
    *ids = b.ids;
    *n_ids = b.n;
    return 0;
}

/* Hugging Face's continue_final_message: the rendered text is cut after the last occurrence of
 * the final message stripped of white space — after the whole message (its trailing white space
 * included) when the text there equals the message, else after the stripped message (a
 * template that trims, as LLaDA's, or a message that starts with white space). */
static int cut_after_final(chat_buf *b, const char *final) {
    size_t start, end, len = strlen(final);
    py_strip(final, &start, &end);
    size_t k = end - start;
    long at = -1;
    for (size_t i = b->len >= k ? b->len - k + 1 : 0; i-- > 0;)
        if (memcmp(b->text + i, final + start, k) == 0) {
            at = (long)i;
            break;
        }
    if (at < 0)
        return SM_ERR("chat: the template leaves out the final message it should continue");
    int whole = start == 0 && (size_t)at + len <= b->len && memcmp(b->text + at, final, len) == 0;
    b->len = (size_t)at + (whole ? len : k);
    return 0;
}

int chat_render_text(const smdlm_tokenizer *t, chat_format fmt, const chat_msg *msgs, size_t n,
                     int continue_final, char **text) {
    *text = NULL;
    if (check_messages(msgs, n)) return -1;
    if (continue_final && strcmp(msgs[n - 1].role, "assistant"))
        return SM_ERR("chat: the message to continue must be the assistant's (the last is '%s')",
                      msgs[n - 1].role);
    chat_buf b = {.t = t, .as_text = 1};
    int rc = render(&b, fmt, msgs, n, !continue_final);
    if (rc == 0 && continue_final) rc = cut_after_final(&b, msgs[n - 1].content);
    if (rc != 0) {
        free(b.text);
        return -1;
    }
    add_text(&b, "", 1); /* the terminating NUL */
    *text = b.text;
    return 0;
}
