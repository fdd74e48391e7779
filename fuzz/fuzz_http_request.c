/* fuzz_http_request.c — libFuzzer target for what `smdlm serve` reads of a request (build:
 * fuzz/README.md): the JSON body of a completion request (src/server/request.c) and the
 * Authorization header's check.
 *
 * Byte 0 picks the mode, the rest is the input:
 *   mode % 7 = 0..5: a request body; mode % 2 picks the route (even /v1/completions, odd
 *     /v1/chat/completions), (mode % 7) / 2 the model: models/default (MDLM, GPT-2-style
 *     tokenizer), tiny-llada and tiny-dream (with their tokenizers and chat templates, loaded
 *     from copies in the scratch directory). request_parse either fails with a 400 (or 500)
 *     error whose JSON is well-formed, or gives a request whose canvas holds: the prompt fixed,
 *     then a masked position, fixed ids in the vocabulary, the mask id elsewhere, at most the
 *     model's context. Such a request is answered as if the model had filled every masked
 *     position with ids taken from the input: output_from_result (stop strings, the canvas's
 *     text), the whole answer and the streamed one (with a step event when the request asks
 *     for them), all well-formed JSON.
 *   mode % 7 = 6: an Authorization header's value; request_authorized takes it for the key
 *     "s3cret" exactly when it is "Bearer s3cret".
 * The models are loaded once, at start-up. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "server/request.h"
#include "server/response.h"

#define API_KEY "s3cret"

static smdlm_model *g_models[3];

/* A model directory of the scratch directory: files copied from the fixture directories. */
static smdlm_model *load_copied(const char *name, const char *const *files) {
    for (int i = 0; files[i]; i++) {
        const char *base = strrchr(files[i], '/') + 1;
        char *dst = sm_path_join(name, base);
        fz_copy_fixture(files[i], dst);
        free(dst);
    }
    char *dir = sm_path_join(fz_scratch(), name);
    smdlm_load_params lp = smdlm_load_default_params();
    smdlm_model *m = smdlm_model_load(dir, &lp);
    if (!m) fz_die("loading a fixture model");
    free(dir);
    return m;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    smdlm_load_params lp = smdlm_load_default_params();
    g_models[0] = smdlm_model_load("models/default", &lp);
    if (!g_models[0]) fz_die("loading models/default");
    static const char *const llada[] = {
        "tiny-llada/config.json", "tiny-llada/model.safetensors",
        "tiny-llada-tokenizer/tokenizer.json", "tiny-llada-tokenizer/tokenizer_config.json", NULL};
    static const char *const dream[] = {
        "tiny-dream/config.json", "tiny-dream/model.safetensors.index.json",
        "tiny-dream/model-00001-of-00002.safetensors", "tiny-dream/model-00002-of-00002.safetensors",
        "tiny-dream-tokenizer/tokenizer.json", "tiny-dream-tokenizer/tokenizer_config.json", NULL};
    if (request_authorized(NULL, API_KEY)) fz_die("no Authorization header taken for the key");
    g_models[1] = load_copied("llada", llada);
    g_models[2] = load_copied("dream", dream);
    return 0;
}

/* A JSON text the server sends must parse again. */
static void expect_json(const char *text, const char *what) {
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        fprintf(stderr, "fuzz: %s is not JSON: %s\n", what, text);
        abort();
    }
    cJSON_Delete(j);
}

/* Every "data: …" event of a stream that is not [DONE] must be JSON. */
static void expect_events(const char *sse) {
    for (const char *p = sse; *p;) {
        const char *end = strstr(p, "\n\n");
        if (strncmp(p, "data: ", 6) || !end) fz_die("a stream event is not framed");
        char *data = strndup(p + 6, (size_t)(end - p - 6));
        if (strcmp(data, "[DONE]")) expect_json(data, "a stream event");
        free(data);
        p = end + 2;
    }
}

static void check_canvas(const smdlm_model *model, const srv_request *req) {
    const int V = smdlm_vocab_size(model), mask = smdlm_mask_id(model);
    if (req->T < 1 || req->T > smdlm_max_length(model)) fz_die("canvas beyond the context");
    if (req->P < 0 || req->P >= req->T || req->fixed[req->P]) fz_die("nothing to generate");
    if (req->max_tokens != req->T - req->P) fz_die("max_tokens is not the open positions");
    if (req->text_end && (req->text_end <= req->P || req->text_end > req->T))
        fz_die("text_end outside the canvas");
    for (int i = 0; i < req->T; i++) {
        if (i < req->P && !req->fixed[i]) fz_die("an open position in the prompt");
        if (req->fixed[i] ? req->x[i] < 0 || req->x[i] >= V : req->x[i] != mask)
            fz_die("a canvas id out of place");
    }
    if (req->n_stop > SRV_MAX_STOP || req->gp.n < 1 || req->gp.n > SRV_MAX_N)
        fz_die("stop strings or samples beyond their limits");
}

/* The answer to req had the model filled every open position with ids from fill[]. */
static void answer(const smdlm_model *model, const srv_request *req, const uint8_t *fill,
                   size_t n_fill) {
    const int n = req->gp.n, T = req->T, V = smdlm_vocab_size(model);
    smdlm_result r = {.n = n, .T = T, .prompt_len = req->P};
    r.ids = sm_malloc(sizeof(int32_t) * (size_t)n * (size_t)T);
    r.gen_len = sm_calloc((size_t)n, sizeof(int));
    r.text = sm_calloc((size_t)n, sizeof(char *));
    for (int b = 0; b < n; b++) {
        int32_t *ids = r.ids + (size_t)b * T;
        for (int i = 0; i < T; i++)
            ids[i] = req->fixed[i] || !n_fill ? req->x[i]
                                              : (fill[((size_t)b * T + i) % n_fill] * 131) % V;
        /* Dream/LLaDA: an end of sequence somewhere in the generated positions */
        r.gen_len[b] = smdlm_model_arch(model) == SMDLM_ARCH_MDLM || !n_fill
                           ? T - req->P
                           : fill[b % n_fill] % (T - req->P + 1);
        smdlm_canvas_text(model, ids + req->P, (size_t)r.gen_len[b], NULL, &r.text[b]);
    }
    srv_output out;
    output_from_result(model, req, &r, &out);
    srv_ident id;
    ident_init(&id, req->route, "fuzz");
    char *body = response_body(&id, req, &out);
    expect_json(body, "an answer");
    sm_buf sse = {0};
    sm_buf_str(&sse, "");
    if (req->stream_steps) { /* a step event: the open positions with an odd byte still masked */
        uint8_t *masked = sm_calloc((size_t)n * T, 1);
        float *lambda = sm_calloc((size_t)n * T, sizeof(float));
        for (size_t i = 0; n_fill && i < (size_t)n * T; i++) {
            masked[i] = !req->fixed[i % T] && fill[i % n_fill] % 2;
            lambda[i] = masked[i] ? fill[i % n_fill] / 255.0f : 0.0f;
        }
        const smdlm_step step = {n, T, 1, req->gp.steps, 1, smdlm_mask_id(model), r.ids, masked,
                                 lambda};
        response_step_event(&sse, &id, model, req, &step);
        free(masked);
        free(lambda);
    }
    response_stream_final(&sse, &id, req, &out);
    expect_events(sse.s);
    free(sse.s);
    free(body);
    output_free(&out);
    for (int b = 0; b < n; b++) free(r.text[b]);
    free(r.text);
    free(r.gen_len);
    free(r.ids);
}

static void fuzz_body(int mode, const uint8_t *data, size_t size) {
    const smdlm_model *model = g_models[mode / 2];
    const srv_route route = mode % 2 ? ROUTE_CHAT : ROUTE_COMPLETIONS;
    srv_request req;
    srv_error err;
    if (request_parse(model, route, (const char *)data, size, &req, &err)) {
        if ((err.status != 400 && err.status != 500) || !err.type || !err.message[0])
            fz_die("an error without status, type or message");
        char *e = response_error(&err);
        expect_json(e, "an error answer");
        free(e);
        return;
    }
    check_canvas(model, &req);
    const smdlm_gen_params gp = request_gen_params(&req);
    if (gp.n != req.gp.n) fz_die("request_gen_params changed the samples");
    answer(model, &req, data, size);
    request_free(&req);
}

static void fuzz_authorization(const uint8_t *data, size_t size) {
    size_t len; /* the header ends at its first NUL, as libmicrohttpd hands it over */
    char *header = fz_text(data, size, &len);
    const int expected = !strcmp(header, "Bearer " API_KEY);
    if (request_authorized(header, API_KEY) != expected) fz_die("the key check is wrong");
    free(header);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    const int mode = data[0] % 7;
    if (mode == 6)
        fuzz_authorization(data, size);
    else
        fuzz_body(mode, data + 1, size - 1);
    return 0;
}
