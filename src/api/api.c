/* api.c — the public API of include/smdlm.h: models, states, soft-masking settings, text and
 * raw forwards (generation: api_generate.c). */
#include "api/api_internal.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "compute/kernels.h"
#include "generate/tfgen.h"
#include "text/chat.h"
#include "base/util.h"

_Static_assert(SMDLM_SM_MAX_K == SM_MAX_K, "the public top-k limit is the soft-masking one");

smdlm_load_params smdlm_load_default_params(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    smdlm_load_params p = {n < 1 ? 1 : (int)n, NULL, 0, 0, NULL};
    return p;
}

smdlm_softmask smdlm_softmask_default(void) {
    smdlm_softmask sm = {SMDLM_SM_MODEL, NAN, NAN, NAN, 0};
    return sm;
}

/* The public names of sm_params' algorithm and schedule (public = internal + 1; 0 keeps). */
static smdlm_softmask public_softmask(const sm_params *p) {
    smdlm_softmask sm = {p->enabled ? SMDLM_SM_ON : SMDLM_SM_OFF, p->scale, p->centre,
                         p->steepness, p->k, (smdlm_sm_alg)(p->alg + 1), p->temp,
                         (smdlm_sm_schedule)(p->schedule + 1)};
    return sm;
}

int smdlm_softmask_load(const char *path, smdlm_softmask *sm) {
    sm_params p; /* a file without mixinputs_k keeps k */
    sm_params_default(&p);
    p.k = sm->k;
    if (sm_params_load_json(&p, path)) return -1;
    if (!p.enabled) {
        sm->mode = SMDLM_SM_OFF;
        return 0;
    }
    *sm = public_softmask(&p);
    return 0;
}

int api_softmask_resolve(const smdlm_softmask *sm, const sm_params *model_sm, sm_params *out) {
    *out = *model_sm;
    if (!isnan(sm->scale)) out->scale = sm->scale;
    if (!isnan(sm->centre)) out->centre = sm->centre;
    if (!isnan(sm->steepness)) out->steepness = sm->steepness;
    if (sm->k) out->k = sm->k;
    if (sm->alg != SMDLM_SM_ALG_MODEL) out->alg = (sm_alg)(sm->alg - 1);
    if (sm->temp != 0.0f) out->temp = sm->temp;
    if (sm->schedule != SMDLM_SM_SCHEDULE_MODEL) out->schedule = (sm_schedule)(sm->schedule - 1);
    if (sm->mode != SMDLM_SM_MODEL) out->enabled = sm->mode == SMDLM_SM_ON;
    return out->enabled ? sm_params_validate(out) : 0;
}

static smdlm_arch public_arch(model_arch arch) {
    return arch == MODEL_MDLM ? SMDLM_ARCH_MDLM : arch == MODEL_DREAM ? SMDLM_ARCH_DREAM
                                                                    : SMDLM_ARCH_LLADA;
}

int smdlm_dir_arch(const char *dir, smdlm_arch *arch) {
    model_arch a;
    if (model_dir_arch(dir, &a)) return -1;
    *arch = public_arch(a);
    return 0;
}

smdlm_model *smdlm_model_load(const char *dir, const smdlm_load_params *params) {
    smdlm_load_params d = smdlm_load_default_params();
    if (!params) params = &d;
    if (params->threads < 1 || params->threads > 1024) {
        SM_ERR("threads %d must be in [1, 1024]", params->threads);
        return NULL;
    }
    if (params->quant && strcmp(params->quant, "q8") != 0) {
        SM_ERR("quantisation '%s': the only one is q8", params->quant);
        return NULL;
    }
    kernels_set_threads(params->threads);
    smdlm_model *model = sm_calloc(1, sizeof *model);
    if (model_dir_load_adapted(&model->md, dir, params->adapter, 0,
                               params->need_tokenizer ? 2 : 1)) {
        free(model);
        return NULL;
    }
    model->threads = params->threads;
    if (params->check_weights && model_dir_check_weights(&model->md)) {
        smdlm_model_free(model);
        return NULL;
    }
    if (params->quant) {
        int rc = model->md.arch == MODEL_MDLM
                     ? SM_ERR("%s: q8 applies to Dream/LLaDA models, not MDLM", dir)
                     : transformer_quantize_q8(&model->md.tf);
        if (rc) {
            smdlm_model_free(model);
            return NULL;
        }
    }
    return model;
}

void smdlm_model_free(smdlm_model *model) {
    if (!model) return;
    model_dir_free(&model->md);
    free(model);
}

smdlm_arch smdlm_model_arch(const smdlm_model *model) { return public_arch(model->md.arch); }

int smdlm_vocab_size(const smdlm_model *model) { return model->md.vocab_size; }
int smdlm_mask_id(const smdlm_model *model) { return model->md.mask_id; }
int smdlm_max_length(const smdlm_model *model) { return model->md.max_len; }
int smdlm_has_tokenizer(const smdlm_model *model) { return model->md.tok != NULL; }

int smdlm_eos_id(const smdlm_model *model) {
    int eos;
    tfgen_eos_id(&model->md, &eos);
    return eos;
}

smdlm_softmask smdlm_model_softmask(const smdlm_model *model) {
    return public_softmask(&model->md.sm);
}

int smdlm_tokenize(const smdlm_model *model, const char *text, int allow_special, int32_t **ids,
                   size_t *n) {
    if (!model->md.tok)
        return SM_ERR("the model directory '%s' has no tokenizer", model->md.dir);
    return tok_encode_ex(model->md.tok, text, strlen(text), allow_special ? TOK_ALLOW_SPECIAL : 0,
                         ids, n);
}

int smdlm_detokenize(const smdlm_model *model, const int32_t *ids, size_t n, char **text) {
    if (!model->md.tok)
        return SM_ERR("the model directory '%s' has no tokenizer", model->md.dir);
    size_t len;
    return tok_decode(model->md.tok, ids, n, text, &len);
}

/* The model's chat template and the messages as chat_msg (*m malloc'ed). */
static int chat_setup(const smdlm_model *model, const smdlm_chat_message *msgs, size_t n,
                      chat_format *fmt, chat_msg **m) {
    *m = NULL;
    if (model->md.arch == MODEL_MDLM)
        return SM_ERR("%s: an MDLM model has no chat template", model->md.dir);
    if (!model->md.tok)
        return SM_ERR("the model directory '%s' has no tokenizer", model->md.dir);
    if (n < 1) return SM_ERR("a conversation needs at least one message");
    if (chat_detect(model->md.tok, fmt)) return -1;
    *m = sm_malloc(sizeof **m * n);
    for (size_t i = 0; i < n; i++) (*m)[i] = (chat_msg){msgs[i].role, msgs[i].content};
    return 0;
}

int smdlm_chat_tokenize(const smdlm_model *model, const smdlm_chat_message *msgs, size_t n,
                        int allow_special, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    chat_format fmt;
    chat_msg *m;
    if (chat_setup(model, msgs, n, &fmt, &m)) return -1;
    int rc = chat_encode(model->md.tok, fmt, m, n, allow_special ? TOK_ALLOW_SPECIAL : 0, ids,
                         n_ids);
    free(m);
    return rc;
}

int smdlm_chat_text(const smdlm_model *model, const smdlm_chat_message *msgs, size_t n,
                    int continue_final, char **text) {
    *text = NULL;
    chat_format fmt;
    chat_msg *m;
    if (chat_setup(model, msgs, n, &fmt, &m)) return -1;
    int rc = chat_render_text(model->md.tok, fmt, m, n, continue_final, text);
    free(m);
    return rc;
}

/* A growing string. */
typedef struct {
    char *s;
    size_t len, cap;
} text_buf;

static void text_append(text_buf *b, const char *piece, size_t n) {
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap) b->cap *= 2;
        b->s = sm_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, piece, n);
    b->len += n;
    b->s[b->len] = 0;
}

void smdlm_canvas_text(const smdlm_model *model, const int32_t *ids, size_t n,
                       const char *mask_text, char **text) {
    const smdlm_tokenizer *tok = model->md.tok;
    const int mask = smdlm_mask_id(model);
    text_buf b = {sm_malloc(256), 0, 256};
    b.s[0] = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        if (ids[i] == mask) {
            for (; j < n && ids[j] == mask; j++)
                if (mask_text) text_append(&b, mask_text, strlen(mask_text));
            i = j;
            continue;
        }
        while (j < n && ids[j] != mask) j++;
        char *dec = NULL;
        size_t len = 0;
        if (tok && tok_decode(tok, ids + i, j - i, &dec, &len) == 0) {
            text_append(&b, dec, len);
            free(dec);
        } else { /* no tokenizer, or ids beyond it: the id itself */
            char num[16];
            j = i + 1;
            text_append(&b, num, (size_t)snprintf(num, sizeof num, "[%d]", ids[i]));
        }
        i = j;
    }
    *text = b.s;
}

smdlm_state *smdlm_state_new(const smdlm_model *model) {
    smdlm_state *state = sm_calloc(1, sizeof *state);
    state->model = model;
    model_state_init(&state->ms, &model->md, model->threads);
    return state;
}

void smdlm_state_free(smdlm_state *state) {
    if (!state) return;
    model_state_free(&state->ms);
    free(state->masked);
    free(state);
}

int smdlm_forward(smdlm_state *state, const int32_t *ids, int B, int T, const float *t,
                  float *logits) {
    const smdlm_model *model = state->model;
    const int V = smdlm_vocab_size(model), maxT = smdlm_max_length(model);
    if (B < 1 || T < 1 || T > maxT)
        return SM_ERR("batch %d × length %d: need B ≥ 1 and 1 ≤ T ≤ %d", B, T, maxT);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return SM_ERR("token id %d at position %zu is outside [0, %d)", ids[i], i, V);
    if (model->md.arch != MODEL_MDLM && t)
        return SM_ERR("%s: Dream/LLaDA models have no diffusion time (pass t = NULL)",
                      model->md.dir);
    double *times = NULL; /* MDLM: t = 1 unless given */
    if (model->md.arch == MODEL_MDLM) {
        times = sm_malloc(sizeof(double) * (size_t)B);
        for (int b = 0; b < B; b++) {
            times[b] = t ? t[b] : 1.0f;
            if (!(times[b] > 0.0 && times[b] <= 1.0)) {
                free(times);
                return SM_ERR("t[%d] = %g is outside (0, 1]", b, t[b]);
            }
        }
    }
    kernels_set_threads(model->threads);
    const lm_model *lm = &state->ms.lm;
    int rc = lm->forward(lm->ctx, ids, times, NULL, NULL, NULL, B, T, logits);
    free(times);
    return rc;
}
