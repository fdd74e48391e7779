/* cmd_tokenize.c — `smdlm tokenize`: text → ids (one line, space-separated) and back; with --chat
 * the ids of the chat-templated prompt (chat.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat.h"
#include "commands.h"
#include "common.h"
#include "text/tokenizer.h"
#include "base/util.h"

static int parse_ids(const char *text, int32_t **ids, size_t *n) {
    size_t cap = 64, len = 0;
    int32_t *out = sm_malloc(cap * sizeof *out);
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == ',' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            free(out);
            return SM_ERR("invalid token id at offset %zu", (size_t)(p - text));
        }
        if (len == cap) out = sm_realloc(out, (cap *= 2) * sizeof *out);
        out[len++] = (int32_t)v;
        p = end;
    }
    *ids = out;
    *n = len;
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL, *system = NULL;
    int decode = 0, chat = 0, allow_special = 0, skip_special = 0;
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "model or tokenizer directory (required)"},
        {"text", 0, OPT_STR, &text, 0, 0, "S", "the input text (or ids with --decode)"},
        {"file", 'f', OPT_STR, &file, 0, 0, "FILE", "read the input from a file"},
        {"decode", 'd', OPT_FLAG, &decode, 0, 0, "", "input is token ids; print the text"},
        {"allow-special", 0, OPT_FLAG, &allow_special, 0, 0, "",
         "parse special-token text such as <|im_start|> (default: plain text)"},
        {"skip-special", 0, OPT_FLAG, &skip_special, 0, 0, "", "--decode: leave special tokens out"},
        {"chat", 0, OPT_FLAG, &chat, 0, 0, "",
         "the input is a user message: print the ids of the chat-templated prompt"},
        {"system", 0, OPT_STR, &system, 0, 0, "S", "--chat: the system prompt"},
        {0},
    };
    cli_command cmd = {"tokenize", "Prints the token ids of a text, or with --decode the text of ids.",
                       "-m DIR (TEXT | --text S | -f FILE) [--decode] [--chat [--system S]] "
                       "[--allow-special]",
                       opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (npos == 1 && !text) text = pos[0];
    else if (npos == 1) file = pos[0]; /* both: rejected below */
    if (!model || (!text == !file)) {
        fprintf(stderr, "smdlm tokenize: -m and exactly one of TEXT, --text or -f are required\n");
        return 1;
    }
    if ((chat && decode) || (system && !chat) || (allow_special && decode) ||
        (skip_special && !decode)) {
        fprintf(stderr, "smdlm tokenize: --chat and --decode exclude each other; --system needs "
                        "--chat, --skip-special --decode, --allow-special encoding\n");
        return 1;
    }
    smdlm_tokenizer *tok;
    if (tok_load_dir(&tok, model)) return cli_fail("tokenize");
    char *buf = NULL;
    size_t len = text ? strlen(text) : 0;
    int status = 1;
    if (file) {
        if (sm_read_file(file, (size_t)1 << 30, &buf, &len)) goto done;
        text = buf;
    }
    if (decode) {
        int32_t *ids = NULL;
        size_t n = 0, outlen = 0;
        char *out = NULL;
        if (parse_ids(text, &ids, &n)) goto done;
        rc = tok_decode_ex(tok, ids, n, skip_special ? TOK_SKIP_SPECIAL : 0, &out, &outlen);
        free(ids);
        if (rc) goto done;
        fwrite(out, 1, outlen, stdout);
        fputc('\n', stdout);
        free(out);
    } else {
        int32_t *ids = NULL;
        size_t n = 0;
        if (chat) {
            if (memchr(text, 0, len)) {
                SM_ERR("the chat message holds a NUL byte");
                goto done;
            }
            chat_msg msgs[2] = {{"system", system}, {"user", text}};
            chat_format fmt;
            if (chat_detect(tok, &fmt) || chat_encode(tok, fmt, msgs + !system, 1 + !!system,
                                                   allow_special ? TOK_ALLOW_SPECIAL : 0, &ids, &n))
                goto done;
        } else if (tok_encode_ex(tok, text, len, allow_special ? TOK_ALLOW_SPECIAL : 0, &ids, &n)) {
            goto done;
        }
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        free(ids);
    }
    status = 0;
done:
    if (status) cli_fail("tokenize");
    free(buf);
    tok_free(tok);
    return status;
}
