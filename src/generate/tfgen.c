/* tfgen.c — see tfgen.h. */
#include "generate/tfgen.h"

#include <stdint.h>
#include <string.h>

#include "text/chat.h"
#include "base/jsonutil.h"
#include "base/util.h"

int tfgen_default_params(const model_dir *md, decoder_params *p) {
    if (md->arch == MODEL_MDLM)
        return SM_ERR("%s: an MDLM model; the Dream/LLaDA decoders need a Dream or LLaDA model",
                      md->dir);
    decoder_params_default(p);
    if (md->arch == MODEL_LLADA) {
        p->style = DECODER_LLADA;
        p->block_length = TFGEN_LLADA_BLOCK;
    }
    p->sm = md->sm;
    return tfgen_eos_id(md, &p->eos_id);
}

int tfgen_eos_id(const model_dir *md, int *eos) {
    *eos = md->tok ? tok_role_id(md->tok, TOK_EOS) : -1;
    if (*eos < 0) *eos = md->config_eos_id;
    return 0;
}

int tfgen_encode_prompt(const model_dir *md, const char *prompt, int chat, const char *system,
                        int allow_special, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!md->tok) return SM_ERR("%s: no tokenizer files (tokenizer.json) to encode a prompt", md->dir);
    const unsigned flags = allow_special ? TOK_ALLOW_SPECIAL : 0;
    if (!prompt) prompt = "";
    if (!chat) {
        if (system) return SM_ERR("a system prompt needs the chat template (chat mode)");
        return tok_encode_ex(md->tok, prompt, strlen(prompt), flags, ids, n);
    }
    chat_format fmt;
    if (chat_detect(md->tok, &fmt)) return -1;
    chat_msg msgs[2] = {{"system", system}, {"user", prompt}};
    return system ? chat_encode(md->tok, fmt, msgs, 2, flags, ids, n)
                  : chat_encode(md->tok, fmt, msgs + 1, 1, flags, ids, n);
}

int tfgen_completion(const model_dir *md, const int32_t *ids, int n, char **text) {
    *text = NULL;
    if (!md->tok) return SM_ERR("%s: no tokenizer files (tokenizer.json) to decode the output", md->dir);
    size_t len;
    return tok_decode_ex(md->tok, ids, (size_t)(n > 0 ? n : 0), TOK_SKIP_SPECIAL, text, &len);
}
