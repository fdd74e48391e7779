/* api_generate.c — generation through the public API (include/smdlm.h): the request's
 * parameters onto the MDLM samplers (src/generate/sampler.h) or the Dream/LLaDA decoders
 * (src/generate/decoder.h, tfgen.h), run on the state's lm_model; the step callback; the
 * results. */
#include "api/api_internal.h"

#include <string.h>

#include "compute/kernels.h"
#include "generate/sampler.h"
#include "generate/tfgen.h"
#include "base/util.h"

_Static_assert(GEN_STOPPED == SMDLM_ABORTED, "a stopped run is an aborted request");

/* Today's defaults of `smdlm generate`. */
smdlm_gen_params smdlm_gen_default_params(void) {
    smdlm_gen_params p = {.steps = 128, .top_p = 1.0f, .n = 1, .sm = smdlm_softmask_default()};
    p.mdlm = (smdlm_mdlm_params){"ddpm_cache", 0, 0.02f, 0.55f, 0.05f, 0.9f, 1};
    p.decoder = (smdlm_decoder_params){.max_new_tokens = 128, .alg = "origin",
                                       .block_length = TFGEN_LLADA_BLOCK,
                                       .remasking = "low_confidence", .cache = "off"};
    return p;
}

void smdlm_result_free(smdlm_result *r) {
    if (r->text)
        for (int b = 0; b < r->n; b++) free(r->text[b]);
    free(r->text);
    free(r->ids);
    free(r->gen_len);
    memset(r, 0, sizeof *r);
}

/* ---- the step callback ---------------------------------------------------------------- */

/* The generation loops' step hook (src/generate/step.h) as the API's step callback. */
static int relay_step(void *user, const gen_step *g) {
    const step_relay *r = user;
    smdlm_state *s = r->state;
    const size_t BT = (size_t)g->B * g->T;
    if (s->masked_cap < BT) {
        free(s->masked);
        s->masked = sm_malloc(BT);
        s->masked_cap = BT;
    }
    for (size_t i = 0; i < BT; i++) s->masked[i] = g->x[i] == g->mask_id;
    smdlm_step st = {g->B, g->T, g->step, r->steps_unknown ? 0 : g->steps, g->forwards,
                     g->mask_id, g->x, s->masked, g->lambda};
    return r->gp->on_step(r->gp->user, &st);
}

/* The relay as the sampler's or decoder's hook when the request has a callback. */
void api_set_relay(step_relay *r, smdlm_state *state, const smdlm_gen_params *gp,
                      gen_step_fn *on_step, void **user) {
    *r = (step_relay){state, gp, 0};
    if (!gp->on_step) return;
    *on_step = relay_step;
    *user = r;
}

/* ---- MDLM ------------------------------------------------------------------------------ */

/* The canvas of one round (or of the whole run without strides): len, else the model's; and
 * the stride (default half of it, rounded up). */
static int semi_ar_round(const smdlm_model *model, const smdlm_gen_params *gp) {
    return gp->mdlm.len ? gp->mdlm.len : smdlm_max_length(model);
}

static int semi_ar_stride(const smdlm_model *model, const smdlm_gen_params *gp) {
    return gp->mdlm.stride_length ? gp->mdlm.stride_length : (semi_ar_round(model, gp) + 1) / 2;
}

static int sampler_params_of(const smdlm_model *model, const smdlm_gen_params *gp,
                             sampler_params *sp) {
    sampler_params_default(sp);
    if (sampler_kind_parse(gp->mdlm.sampler ? gp->mdlm.sampler : "ddpm_cache", &sp->kind))
        return -1;
    sp->steps = gp->steps;
    sp->top_p = gp->top_p;
    sp->seed = gp->seed;
    sp->eta = gp->mdlm.eta;
    sp->t_on = gp->mdlm.t_on;
    sp->t_off = gp->mdlm.t_off;
    sp->alpha_on = gp->mdlm.alpha_on;
    sp->noise_removal = gp->mdlm.noise_removal != 0;
    if (gp->mdlm.num_strides < 0) return SM_ERR("number of strides %d must be ≥ 0", gp->mdlm.num_strides);
    if (gp->mdlm.num_strides > 0) {
        sp->semi_ar_length = semi_ar_round(model, gp);
        sp->semi_ar_stride = semi_ar_stride(model, gp);
    }
    return api_softmask_resolve(&gp->sm, &model->md.sm, &sp->sm);
}

static int check_samples(const smdlm_gen_params *gp, int T) {
    if (gp->n < 1 || gp->n > 1 << 20) return SM_ERR("samples %d must be in [1, %d]", gp->n, 1 << 20);
    if ((int64_t)gp->n * T > INT32_MAX)
        return SM_ERR("%d samples × %d positions exceed 2^31 positions", gp->n, T);
    return 0;
}

/* A generation of n canvases of T positions as a whole: the canvases (ids, fixed flags, the
 * step callback's masks), the sampler's or decoder's buffers (run_bytes) and the model's
 * scratch for forwards of forward_rows × forward_T must fit in memory together; each part
 * checks itself again when it allocates. */
static int check_memory(const smdlm_state *state, int n, int T, int forward_rows, int forward_T,
                        size_t run_bytes) {
    size_t bytes = sm_size_add(sm_size_mul((size_t)n * (size_t)T, sizeof(int32_t) + 2), run_bytes);
    bytes = sm_size_add(bytes, model_state_forward_bytes(&state->ms, &state->model->md,
                                                         forward_rows, forward_T));
    return SM_CHECK_MEMORY(bytes, "a generation of %d sample%s × %d positions", n,
                           n == 1 ? "" : "s", T);
}

/* Leading fixed positions of a template (fixed may be NULL: none). */
static int prompt_length(const uint8_t *fixed, int T) {
    int P = 0;
    while (fixed && P < T && fixed[P]) P++;
    return P;
}

int api_mdlm_begin(smdlm_state *state, const int32_t *x, const uint8_t *fixed, int T,
                   const smdlm_gen_params *gp, api_mdlm_run *run) {
    const smdlm_model *model = state->model;
    memset(run, 0, sizeof *run);
    run->gp = *gp;
    sampler_params sp;
    if (check_samples(gp, T) || sampler_params_of(model, gp, &sp) ||
        check_memory(state, gp->n, T, gp->n, sp.semi_ar_stride ? sp.semi_ar_length : T,
                     sampler_run_bytes(&sp, gp->n, T, smdlm_vocab_size(model))))
        return -1;
    const int n = gp->n;
    api_set_relay(&run->relay, state, &run->gp, &sp.on_step, &sp.user);
    run->n = n;
    run->T = T;
    run->P = prompt_length(fixed, T);
    run->ids = sm_malloc(sizeof(int32_t) * (size_t)n * T);
    run->fixed = fixed ? sm_malloc((size_t)n * T) : NULL;
    for (int i = 0; i < T; i++) run->open += !(fixed && fixed[i]);
    for (int b = 0; b < n; b++) {
        memcpy(run->ids + (size_t)b * T, x, sizeof(int32_t) * (size_t)T);
        if (fixed) memcpy(run->fixed + (size_t)b * T, fixed, (size_t)T);
    }
    run->sm_enabled = sp.sm.enabled;
    run->planned_steps = sp.steps;
    run->method = sampler_kind_name(sp.kind);
    kernels_set_threads(model->threads); /* the job's scratch is per thread */
    if (sampler_job_begin(&run->job, &state->ms.lm, &sp, run->ids, run->fixed, n, T)) {
        api_mdlm_end(run, -1, NULL);
        return -1;
    }
    return 0;
}

int api_mdlm_end(api_mdlm_run *run, int rc, smdlm_result *r) {
    sampler_stats st;
    sampler_job_finish(run->job, &st);
    free(run->fixed);
    if (rc < 0) {
        free(run->ids);
        return -1;
    }
    const int n = run->n;
    *r = (smdlm_result){n, run->T, run->P, run->ids, sm_malloc(sizeof(int) * (size_t)n),
                        sm_calloc((size_t)n, sizeof(char *))};
    for (int b = 0; b < n; b++) r->gen_len[b] = run->open;
    r->stats = (smdlm_stats){.soft_masking = run->sm_enabled, .steps = st.steps,
                             .planned_steps = run->planned_steps, .forwards = st.forwards,
                             .tokens = (long)n * run->T, .seconds = st.seconds,
                             .forward_seconds = st.forward_seconds,
                             .softmask_seconds = st.sm_seconds, .method = run->method,
                             .cache = "off", .positions_computed = (long)st.forwards * n * run->T};
    return rc;
}

/* Every sample's canvas from the template x/fixed [T] (fixed may be NULL: nothing fixed); on
 * success (and when stopped) *r holds the canvases, each sample's count of generated positions
 * and the statistics, no texts yet. */
static int run_mdlm(smdlm_state *state, const int32_t *x, const uint8_t *fixed, int T,
                    const smdlm_gen_params *gp, smdlm_result *r) {
    api_mdlm_run run;
    if (api_mdlm_begin(state, x, fixed, T, gp, &run)) return -1;
    return api_mdlm_end(&run, sampler_job_run(run.job), r);
}

/* The text of every sample's positions [from, to) (smdlm_canvas_text). */
void api_span_texts(const smdlm_model *model, smdlm_result *r, int from, int to) {
    for (int b = 0; b < r->n; b++)
        smdlm_canvas_text(model, r->ids + (size_t)b * r->T + from, (size_t)(to - from), NULL,
                          &r->text[b]);
}

/* Prompt text as ids (plain text unless allow_special); "" and NULL give none. */
static int encode_text(const smdlm_model *model, const char *text, int allow_special,
                       int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    return text && *text ? smdlm_tokenize(model, text, allow_special, ids, n) : 0;
}

/* ---- Dream / LLaDA -------------------------------------------------------------------- */

/* The id of a special token the LLaDA options name, from the model's tokenizer. */
static int special_id(const smdlm_model *model, const char *token, int *id) {
    *id = model->md.tok ? tok_str_to_id(model->md.tok, token) : -1;
    return *id >= 0 ? 0
                    : SM_ERR("%s: the option needs the tokenizer's %s, which the model directory "
                             "does not have", model->md.dir, token);
}

static int decoder_params_of(const smdlm_model *model, const smdlm_gen_params *gp, int gen_len,
                             decoder_params *p) {
    const smdlm_decoder_params *d = &gp->decoder;
    if (tfgen_default_params(&model->md, p)) return -1;
    p->gen_len = gen_len;
    p->steps = gp->steps;
    p->tokens_per_step = d->tokens_per_step;
    p->temperature = d->temperature;
    p->top_p = gp->top_p;
    p->top_k = d->top_k;
    p->alg_temp = d->alg_temp;
    p->threshold = d->threshold;
    p->eos_penalty = d->eos_penalty;
    p->seed = gp->seed;
    p->cache_refresh = d->cache_refresh;
    if (model->md.arch == MODEL_DREAM) {
        if (d->alg && decoder_alg_parse(d->alg, &p->alg)) return -1;
        p->block_length = d->dream_block_length;
    } else {
        p->block_length = d->block_length;
        if (d->remasking && decoder_remask_parse(d->remasking, &p->remasking)) return -1;
        p->cfg_scale = d->cfg_scale;
        if ((d->logits_eos_inf && special_id(model, "<|endoftext|>", &p->logits_inf_id)) ||
            (d->confidence_eos_eot_inf && special_id(model, "<|eot_id|>", &p->conf_inf_id)))
            return -1;
    }
    if (d->cache && kv_cache_mode_parse(d->cache, &p->cache)) return -1;
    return api_softmask_resolve(&gp->sm, &model->md.sm, &p->sm);
}

/* Every sample's canvas [T] from the template: the prompt x[0..P), then the fixed positions of
 * x (fixed may be NULL: none) and the mask id elsewhere, decoded; *r holds the canvases, the
 * generated lengths and the statistics (no texts yet). */
static int run_decoder(smdlm_state *state, const int32_t *x, const uint8_t *fixed, int P, int T,
                       const smdlm_gen_params *gp, smdlm_result *r) {
    const smdlm_model *model = state->model;
    decoder_params p;
    if (check_samples(gp, T) || decoder_params_of(model, gp, T - P, &p) ||
        check_memory(state, gp->n, T, p.cfg_scale > 0.0f ? 2 * gp->n : gp->n, T, /* guidance */
                     decoder_run_bytes(&p, gp->n, T, smdlm_vocab_size(model))))
        return -1;
    if (fixed && model->md.arch == MODEL_LLADA)
        for (int i = P; i < T; i++)
            if (fixed[i])
                return SM_ERR("fixed position %d after the prompt (%d tokens): LLaDA's decoder "
                              "generates every position after the prompt (infilling needs a "
                              "Dream or MDLM model)", i, P);
    const int n = gp->n, threshold = p.threshold > 0.0f;
    step_relay relay;
    api_set_relay(&relay, state, gp, &p.on_step, &p.user);
    relay.steps_unknown = threshold;
    int32_t *ids = sm_malloc(sizeof(int32_t) * (size_t)n * T);
    uint8_t *fixed_all = fixed ? sm_malloc((size_t)n * T) : NULL;
    for (int b = 0; b < n; b++)
        for (int t = 0; t < T; t++) {
            const int keep = t < P || (fixed && fixed[t]);
            ids[(size_t)b * T + t] = keep ? x[t] : smdlm_mask_id(model);
            if (fixed) fixed_all[(size_t)b * T + t] = fixed[t];
        }
    p.fixed = fixed_all;
    int *gen = sm_malloc(sizeof(int) * (size_t)n);
    decoder_stats st;
    kernels_set_threads(model->threads);
    int rc = decoder_run(&state->ms.lm, &p, ids, n, P, gen, &st);
    free(fixed_all);
    if (rc < 0) {
        free(ids);
        free(gen);
        return -1;
    }
    *r = (smdlm_result){n, T, P, ids, gen, sm_calloc((size_t)n, sizeof(char *))};
    long made = 0;
    for (int b = 0; b < n; b++) made += gen[b];
    r->stats = (smdlm_stats){.soft_masking = p.sm.enabled, .steps = st.steps,
                             .planned_steps = threshold ? 0 : st.planned_steps,
                             .forwards = st.forwards, .tokens = made, .seconds = st.seconds,
                             .forward_seconds = st.forward_seconds,
                             .method = model->md.arch == MODEL_LLADA
                                           ? decoder_remask_name(p.remasking)
                                           : decoder_alg_name(p.alg),
                             .cache = kv_cache_mode_name(p.cache), .refreshes = st.refreshes,
                             .positions_computed = st.positions_computed};
    return rc;
}

/* Each sample's completion: its generated tokens up to the first EOS, special tokens left out
 * (none without a tokenizer). */
static int completion_texts(const smdlm_model *model, smdlm_result *r) {
    for (int b = 0; b < r->n && model->md.tok; b++)
        if (tfgen_completion(&model->md, r->ids + (size_t)b * r->T + r->prompt_len, r->gen_len[b],
                             &r->text[b])) {
            smdlm_result_free(r);
            return -1;
        }
    return 0;
}

/* gp->decoder.max_new_tokens after the prompt ids pids [np] (freed here), with the texts. */
static int complete_prompt(smdlm_state *state, int32_t *pids, size_t np,
                           const smdlm_gen_params *gp, smdlm_result *r) {
    const smdlm_model *model = state->model;
    const int maxT = smdlm_max_length(model);
    int rc = np > (size_t)maxT
                 ? SM_ERR("the prompt has %zu tokens but the model's length is %d", np, maxT)
                 : run_decoder(state, pids, NULL, (int)np, (int)np + gp->decoder.max_new_tokens,
                               gp, r);
    free(pids);
    return rc == SMDLM_OK ? completion_texts(model, r) : rc;
}

static int check_max_new(const smdlm_gen_params *gp) {
    if (gp->decoder.max_new_tokens >= 1) return 0;
    return SM_ERR("max_new_tokens %d must be ≥ 1", gp->decoder.max_new_tokens);
}

static int generate_decoder(smdlm_state *state, const char *prompt, const smdlm_gen_params *gp,
                            smdlm_result *r) {
    if (check_max_new(gp)) return -1;
    int32_t *pids = NULL;
    size_t np = 0;
    if ((prompt || gp->chat) && tfgen_encode_prompt(&state->model->md, prompt, gp->chat,
                                                    gp->system, gp->allow_special, &pids, &np))
        return -1;
    return complete_prompt(state, pids, np, gp, r);
}

/* ---- canvases from a template or text spans, any model ------------------------------- */

/* The canvas template x/fixed [T] (fixed may be NULL) on any model; *r without texts. */
static int run_template(smdlm_state *state, const int32_t *x, const uint8_t *fixed, int T,
                        const smdlm_gen_params *gp, smdlm_result *r) {
    if (state->model->md.arch == MODEL_MDLM) return run_mdlm(state, x, fixed, T, gp, r);
    const int P = prompt_length(fixed, T);
    int any_fixed = 0;
    for (int i = P; fixed && i < T; i++) any_fixed |= fixed[i] != 0;
    if (P == T) return SM_ERR("every position of the canvas (%d) is fixed: nothing to generate", T);
    return run_decoder(state, x, any_fixed ? fixed : NULL, P, T, gp, r);
}

/* The canvas prefix + `middle` masked positions + suffix, the prefix and suffix fixed; *r
 * without texts. */
static int run_spans(smdlm_state *state, const int32_t *pre, size_t np, int middle,
                     const int32_t *suf, size_t ns, const smdlm_gen_params *gp, smdlm_result *r) {
    const smdlm_model *model = state->model;
    const long T = (long)np + middle + (long)ns;
    const int rounds = model->md.arch == MODEL_MDLM && gp->mdlm.num_strides > 0; /* the sampler
                                                                   checks the rounds' canvas */
    if (!rounds && T > smdlm_max_length(model))
        return SM_ERR("prefix (%zu tokens) + %d generated + suffix (%zu tokens) exceed the model's "
                      "length %d", np, middle, ns, smdlm_max_length(model));
    int32_t *x = sm_malloc(sizeof(int32_t) * (size_t)T);
    uint8_t *fixed = sm_malloc((size_t)T);
    for (long i = 0; i < T; i++) {
        const int in_middle = i >= (long)np && i < (long)np + middle;
        x[i] = i < (long)np ? pre[i] : in_middle ? smdlm_mask_id(model) : suf[i - np - middle];
        fixed[i] = !in_middle;
    }
    int rc = run_template(state, x, fixed, (int)T, gp, r);
    free(x);
    free(fixed);
    return rc;
}

static int generate_mdlm(smdlm_state *state, const char *prompt, const smdlm_gen_params *gp,
                         smdlm_result *r) {
    const smdlm_model *model = state->model;
    if (gp->chat) return SM_ERR("%s: an MDLM model has no chat template", model->md.dir);
    const int maxT = smdlm_max_length(model), L = semi_ar_round(model, gp);
    if (L < 1) return SM_ERR("canvas length %d must be ≥ 1", L);
    if (L > maxT) return SM_ERR("canvas length %d exceeds the model's length %d", L, maxT);
    const int strides = gp->mdlm.num_strides > 0 ? gp->mdlm.num_strides : 0;
    const int stride = semi_ar_stride(model, gp);
    if (strides && (stride < 1 || stride > L))
        return SM_ERR("stride length %d must be in [1, the canvas length %d]", stride, L);
    if ((int64_t)L + (int64_t)strides * stride > INT32_MAX / 2)
        return SM_ERR("%d strides of %d tokens are too long", strides, stride);
    const int T = L + strides * stride;
    int32_t *pids;
    size_t np;
    if (encode_text(model, prompt, gp->allow_special, &pids, &np)) return -1;
    int rc = np >= (size_t)L
                 ? SM_ERR("the prompt has %zu tokens but the canvas holds only %d", np, L)
                 : run_spans(state, pids, np, T - (int)np, NULL, 0, gp, r);
    if (rc == SMDLM_OK) api_span_texts(model, r, 0, T);
    free(pids);
    return rc;
}

/* ---- entry points --------------------------------------------------------------------- */

int smdlm_generate(smdlm_state *state, const char *prompt, const smdlm_gen_params *gp,
                   smdlm_result *r) {
    memset(r, 0, sizeof *r);
    return state->model->md.arch == MODEL_MDLM ? generate_mdlm(state, prompt, gp, r)
                                               : generate_decoder(state, prompt, gp, r);
}

int smdlm_generate_chat(smdlm_state *state, const smdlm_chat_message *msgs, size_t n,
                        const smdlm_gen_params *gp, smdlm_result *r) {
    memset(r, 0, sizeof *r);
    int32_t *pids;
    size_t np;
    if (smdlm_chat_tokenize(state->model, msgs, n, gp->allow_special, &pids, &np)) return -1;
    if (check_max_new(gp)) {
        free(pids);
        return -1;
    }
    return complete_prompt(state, pids, np, gp, r);
}

int smdlm_generate_ids(smdlm_state *state, const int32_t *x, const uint8_t *fixed, int len,
                       const smdlm_gen_params *gp, smdlm_result *r) {
    const smdlm_model *model = state->model;
    memset(r, 0, sizeof *r);
    if (len < 1) return SM_ERR("canvas length %d must be ≥ 1", len);
    int rc = run_template(state, x, fixed, len, gp, r);
    if (rc != SMDLM_OK) return rc;
    if (model->md.arch != MODEL_MDLM) return completion_texts(model, r);
    api_span_texts(model, r, 0, len);
    return SMDLM_OK;
}

int smdlm_infill(smdlm_state *state, const char *prefix, int middle, const char *suffix,
                 const smdlm_gen_params *gp, smdlm_result *r) {
    const smdlm_model *model = state->model;
    memset(r, 0, sizeof *r);
    if (middle < 1) return SM_ERR("the infilled span of %d tokens must be ≥ 1", middle);
    int32_t *pre, *suf = NULL;
    size_t np, ns = 0;
    int rc = encode_text(model, prefix, gp->allow_special, &pre, &np) ||
                     encode_text(model, suffix, gp->allow_special, &suf, &ns)
                 ? SMDLM_ERROR
                 : run_spans(state, pre, np, middle, suf, ns, gp, r);
    if (rc == SMDLM_OK) api_span_texts(model, r, (int)np, (int)np + middle);
    free(pre);
    free(suf);
    return rc;
}
