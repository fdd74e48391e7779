/* test_server.c — `smdlm serve` through a real HTTP client (libcurl) and raw sockets: the
 * server runs as a child on a free loopback port (--port 0; the port is read from its start
 * line). Every endpoint; OpenAI shapes; SSE framing and the smdlm.step events; the answers
 * equal `smdlm generate` on the same settings; infilling; the error matrix (malformed JSON,
 * wrong types, unknown fields, ranges, context length, 413, 405, 404, 401, 429, slow and
 * half-closed clients); cancellation on disconnect (the forward counter stops); SIGTERM
 * finishes the running request and exits 0. Waits poll with generous deadlines (the machine
 * may be loaded). */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "base/util.h"

static char g_tmp[64];   /* logs and the Dream model directory */
static char g_dream[128];
static pid_t g_running[16]; /* servers started and not yet stopped (a failed test leaves some) */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the server as a child process -------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
    char log[128];
} server;

/* `$SMDLM serve --port 0 -t 1 ARGS` (a shell fragment); waits for its start line. */
static void server_start(server *s, const char *args) {
    static int count;
    const char *bin = getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm";
    snprintf(s->log, sizeof s->log, "%s/serve-%d.log", g_tmp, count++);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s serve --port 0 -t 1 %s >/dev/null 2>%s", bin, args, s->log);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 16; i++)
        if (!g_running[i]) {
            g_running[i] = s->pid;
            break;
        }
    s->port = 0;
    for (double end = sm_time_sec() + 60; !s->port && sm_time_sec() < end; sleep_ms(20)) {
        char *text = NULL;
        size_t len;
        if (sm_read_file(s->log, 1 << 20, &text, &len) == 0) {
            const char *at = strstr(text, " on http://");
            const char *colon = at ? strchr(at + 11, ':') : NULL;
            if (colon) s->port = atoi(colon + 1);
        }
        free(text);
    }
    if (!s->port) {
        kill(s->pid, SIGKILL);
        fail_msg("the server did not start: see %s", s->log);
    }
}

/* SIGTERM, then the exit status (−1 when it had to be killed after 60 s). */
static int server_stop(server *s) {
    for (int i = 0; i < 16; i++)
        if (g_running[i] == s->pid) g_running[i] = 0;
    kill(s->pid, SIGTERM);
    int st;
    for (double end = sm_time_sec() + 60; waitpid(s->pid, &st, WNOHANG) == 0; sleep_ms(20))
        if (sm_time_sec() > end) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            return -1;
        }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

/* ---- HTTP through libcurl ------------------------------------------------------------------ */

static size_t collect(char *p, size_t size, size_t n, void *user) {
    sm_buf_add(user, p, size * n);
    return size * n;
}

/* The status of METHOD path (body: POST it, else GET) with an optional bearer key; *out (may
 * be NULL) the body. 0 when no answer came within timeout_ms. */
static long http(const server *s, const char *method, const char *path, const char *body,
                 const char *key, char **out, long timeout_ms) {
    CURL *c = curl_easy_init();
    char url[256], auth[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    sm_buf got = {0};
    sm_buf_str(&got, "");
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out) *out = got.s;
    else free(got.s);
    return status;
}

static cJSON *post_json(const server *s, const char *path, const char *body, long want) {
    char *out;
    long status = http(s, "POST", path, body, NULL, &out, 120000);
    if (status != want) fail_msg("POST %s %s: status %ld, want %ld: %s", path, body, status, want, out);
    cJSON *j = cJSON_Parse(out);
    if (!j) fail_msg("POST %s: not JSON: %s", path, out);
    free(out);
    return j;
}

/* A value of GET /metrics (the line "NAME VALUE"). */
static double metric(const server *s, const char *name) {
    char *out;
    assert_int_equal(http(s, "GET", "/metrics", NULL, NULL, &out, 30000), 200);
    const size_t n = strlen(name);
    double v = -1;
    for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, name, n) && line[n] == ' ') v = atof(line + n + 1);
    free(out);
    if (v < 0) fail_msg("no metric %s", name);
    return v;
}

/* An error answer: its status, and an error object of OpenAI's shape whose message holds
 * `word` and whose param (when given) is `param`. */
static void expect_error(const server *s, const char *method, const char *path, const char *body,
                         long status, const char *param, const char *word) {
    char *out;
    long got = http(s, method, path, body, NULL, &out, 60000);
    printf("  %ld %s %.80s: %s\n", got, path, body ? body : "", out);
    if (got != status) fail_msg("status %ld, want %ld", got, status);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    assert_true(cJSON_IsObject(e));
    const cJSON *msg = cJSON_GetObjectItem(e, "message"), *p = cJSON_GetObjectItem(e, "param");
    assert_true(cJSON_IsString(msg) && cJSON_IsString(cJSON_GetObjectItem(e, "type")));
    assert_true(cJSON_HasObjectItem(e, "code") && cJSON_HasObjectItem(e, "param"));
    if (param && !(cJSON_IsString(p) && !strcmp(p->valuestring, param)))
        fail_msg("param %s, want %s", cJSON_Print(p), param);
    if (!strstr(msg->valuestring, word)) fail_msg("message lacks '%s'", word);
    cJSON_Delete(j);
    free(out);
}

/* ---- server-sent events -------------------------------------------------------------------- */

/* The events of a stream, checked for SSE framing: each "data: …" ended by a blank line, the
 * last "[DONE]". Returns the JSON events (the array's owner is the caller). */
static cJSON *sse_events(const char *stream) {
    cJSON *events = cJSON_CreateArray();
    const char *p = stream;
    int done = 0;
    while (*p) {
        assert_false(done); /* nothing after [DONE] */
        if (strncmp(p, "data: ", 6)) fail_msg("an event does not start with 'data: ': %.60s", p);
        const char *end = strstr(p, "\n\n");
        if (!end) fail_msg("an event is not ended by a blank line: %.60s", p);
        char *data = strndup(p + 6, (size_t)(end - p - 6));
        assert_null(strchr(data, '\n'));
        if (!strcmp(data, "[DONE]")) done = 1;
        else {
            cJSON *j = cJSON_Parse(data);
            if (!j) fail_msg("event is not JSON: %s", data);
            cJSON_AddItemToArray(events, j);
        }
        free(data);
        p = end + 2;
    }
    assert_true(done);
    return events;
}

/* POSTs a streamed request (status 200) and returns its events. */
static cJSON *post_stream(const server *s, const char *path, const char *body) {
    char *out;
    const long status = http(s, "POST", path, body, NULL, &out, 120000);
    if (status != 200) fail_msg("POST %s %s: status %ld: %s", path, body, status, out);
    cJSON *events = sse_events(out);
    free(out);
    return events;
}

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    if (!cJSON_IsString(v)) fail_msg("'%s' is not a string", k);
    return v->valuestring;
}

static int int_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    if (!cJSON_IsNumber(v)) fail_msg("'%s' is not a number", k);
    return v->valueint;
}

/* The token ids `got` (a JSON array) equal `want`, position by position. */
static void assert_same_ids(const cJSON *got, const cJSON *want) {
    assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    for (int i = 0; i < cJSON_GetArraySize(want); i++)
        if (cJSON_GetArrayItem(got, i)->valueint != cJSON_GetArrayItem(want, i)->valueint)
            fail_msg("position %d: served %d, want %d", i, cJSON_GetArrayItem(got, i)->valueint,
                     cJSON_GetArrayItem(want, i)->valueint);
}

/* The forwards a streamed request took part in: its last smdlm.step event's count. */
static int stream_forwards(const cJSON *events) {
    int forwards = -1;
    for (int e = 0; e < cJSON_GetArraySize(events); e++) {
        const cJSON *ev = cJSON_GetArrayItem(events, e);
        if (!strcmp(str_of(ev, "object"), "smdlm.step")) forwards = int_of(ev, "forwards");
    }
    if (forwards < 0) fail_msg("no smdlm.step event");
    return forwards;
}

/* ---- group setup: the Dream directory (fixture weights + tokenizer) ------------------------ */

static int setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (tu_tmpdir_make(g_tmp, sizeof g_tmp, "serve")) return -1;
    snprintf(g_dream, sizeof g_dream, "%s/dream", g_tmp);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir %s && for f in %s/tiny-dream/*.json %s/tiny-dream/*.safetensors "
             "%s/tiny-dream-tokenizer/*; do ln -s \"$(realpath \"$f\")\" %s/; done && rm %s/sm_config.json",
             g_dream, FIXTURES_DIR, FIXTURES_DIR, FIXTURES_DIR, g_dream, g_dream);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < 16; i++)
        if (g_running[i]) {
            kill(g_running[i], SIGKILL);
            waitpid(g_running[i], NULL, 0);
        }
    curl_global_cleanup();
    return tu_tmpdir_remove(g_tmp);
}

/* ---- endpoints ------------------------------------------------------------------------------ */

/* The startup line says how requests without a "softmask" field run soft-masking, in generate's
 * words: plain "on" for models/default's trained scale, "untrained" for models/demo's 1.17e-6. */
static void test_startup_line(void **state) {
    (void)state;
    const char *const dirs[] = {"models/default", "models/demo"};
    const char *const want[] = {", soft-masking on)\n",
                                ", soft-masking on (k=3, λ scale 1.2e-06: untrained, the feedback barely changes "
                                "the input))\n"};
    for (int i = 0; i < 2; i++) {
        server s;
        char args[64], *log;
        snprintf(args, sizeof args, "-m %s", dirs[i]);
        server_start(&s, args);
        assert_int_equal(sm_read_file(s.log, 1 << 20, &log, NULL), 0);
        printf("  %s", log);
        assert_non_null(strstr(log, want[i]));
        free(log);
        assert_int_equal(server_stop(&s), 0);
    }
}

static void test_endpoints(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default --alias tiny");
    char *out;
    assert_int_equal(http(&s, "GET", "/health", NULL, NULL, &out, 30000), 200);
    assert_non_null(strstr(out, "\"ok\""));
    free(out);
    assert_int_equal(http(&s, "GET", "/v1/models", NULL, NULL, &out, 30000), 200);
    cJSON *m = cJSON_Parse(out);
    free(out);
    assert_string_equal(str_of(m, "object"), "list");
    assert_string_equal(str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "data"), 0), "id"), "tiny");
    cJSON_Delete(m);

    cJSON *c = post_json(&s, "/v1/completions",
                         "{\"model\":\"tiny\",\"prompt\":\"The cat\",\"max_tokens\":12,\"steps\":6,"
                         "\"seed\":5,\"n\":2}", 200);
    assert_string_equal(str_of(c, "object"), "text_completion");
    assert_string_equal(str_of(c, "model"), "tiny");
    assert_int_equal(strncmp(str_of(c, "id"), "cmpl-", 5), 0);
    assert_true(int_of(c, "created") > 1600000000);
    const cJSON *choices = cJSON_GetObjectItem(c, "choices");
    assert_int_equal(cJSON_GetArraySize(choices), 2);
    for (int b = 0; b < 2; b++) {
        const cJSON *ch = cJSON_GetArrayItem(choices, b);
        assert_int_equal(int_of(ch, "index"), b);
        assert_true(strlen(str_of(ch, "text")) > 0);
        assert_string_equal(str_of(ch, "finish_reason"), "length");
    }
    const cJSON *u = cJSON_GetObjectItem(c, "usage");
    assert_int_equal(int_of(u, "prompt_tokens"), 3); /* "The", " c", "at" in this vocabulary */
    assert_int_equal(int_of(u, "completion_tokens"), 24);
    assert_int_equal(int_of(u, "total_tokens"), 27);
    /* the same seed gives the same answer; the stop string cuts it */
    cJSON *again = post_json(&s, "/v1/completions",
                             "{\"prompt\":\"The cat\",\"max_tokens\":12,\"steps\":6,\"seed\":5}", 200);
    const char *text = str_of(cJSON_GetArrayItem(choices, 0), "text");
    assert_string_equal(str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(again, "choices"), 0), "text"),
                        text);
    char body[256], stop[4] = {text[2], text[3], 0};
    snprintf(body, sizeof body, "{\"prompt\":\"The cat\",\"max_tokens\":12,\"steps\":6,\"seed\":5,"
             "\"stop\":[\"%s\"]}", stop);
    cJSON *cut = post_json(&s, "/v1/completions", body, 200);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(cut, "choices"), 0);
    assert_string_equal(str_of(ch, "finish_reason"), "stop");
    assert_int_equal(strlen(str_of(ch, "text")), strstr(text, stop) - text);
    cJSON_Delete(cut);
    cJSON_Delete(again);
    cJSON_Delete(c);

    assert_true(metric(&s, "smdlm_forwards_total") > 0);
    assert_true(metric(&s, "smdlm_step_seconds_count") >= 18);
    assert_true(metric(&s, "smdlm_tokens_generated_total") == 24 + 12 + 12);
    assert_int_equal(metric(&s, "smdlm_queue_depth"), 0);
    assert_int_equal(http(&s, "GET", "/metrics", NULL, NULL, &out, 30000), 200);
    assert_non_null(strstr(out, "smdlm_requests_total{route=\"/v1/completions\",status=\"200\"} 3"));
    assert_non_null(strstr(out, "smdlm_step_seconds_bucket{le=\"+Inf\"}"));
    free(out);
    expect_error(&s, "GET", "/nowhere", NULL, 404, NULL, "no route");
    assert_int_equal(http(&s, "GET", "/", NULL, NULL, &out, 30000), 200); /* the playground */
    assert_non_null(strstr(out, "<html"));
    free(out);
    assert_int_equal(server_stop(&s), 0);
}

/* The served canvas is `smdlm generate`'s on the same settings (ids and text). */
static void test_same_as_generate(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default");
    cJSON *ev = post_stream(&s, "/v1/completions", "{\"prompt\":\"Once upon\",\"max_tokens\":20,\"steps\":10,\"seed\":11,"
                          "\"stream\":true,\"stream_steps\":true}");
    const int n = cJSON_GetArraySize(ev);
    const cJSON *last_step = cJSON_GetArrayItem(ev, n - 2);
    assert_string_equal(str_of(last_step, "object"), "smdlm.step");
    const cJSON *tokens = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(last_step, "canvas"), 0), "tokens");
    char *gen;
    const int P = int_of(last_step, "prompt_len");
    assert_int_equal(tu_run(&gen, "generate -m models/default -t 1 -p 'Once upon' --len %d --steps 10 "
                                  "--seed 11 -o - -q", P + 20), 0);
    cJSON *ref = cJSON_Parse(gen);
    assert_non_null(ref);
    assert_same_ids(tokens, cJSON_GetObjectItem(ref, "ids"));
    /* the completion is generate's canvas text after the prompt */
    const char *text = str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, n - 1), "choices"), 0), "text");
    const char *whole = str_of(ref, "text");
    assert_true(strlen(whole) >= strlen(text));
    assert_string_equal(whole + strlen(whole) - strlen(text), text);
    assert_int_equal(strncmp(whole, "Once upon", 9), 0);
    cJSON_Delete(ref);
    free(gen);
    cJSON_Delete(ev);
    assert_int_equal(server_stop(&s), 0);
}

/* SSE framing, the smdlm.step events of the contract, and the chunks after them. */
static void test_stream_steps(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default");
    const char *req = "{\"prompt\":\"The cat\",\"max_tokens\":10,\"steps\":5,\"seed\":2,\"n\":2,"
                      "\"sampler\":\"ddpm\",\"stream\":true,\"stream_steps\":true}";
    cJSON *ev = post_stream(&s, "/v1/completions", req);
    const int n = cJSON_GetArraySize(ev);
    /* 5 steps, the noise-removal report, then one chunk per sample */
    assert_int_equal(n, 6 + 2);
    int prev_forwards = 0;
    for (int i = 0; i < 6; i++) {
        const cJSON *e = cJSON_GetArrayItem(ev, i);
        assert_string_equal(str_of(e, "object"), "smdlm.step");
        assert_int_equal(int_of(e, "step"), i < 5 ? i + 1 : 5);
        assert_int_equal(int_of(e, "steps"), 5);
        assert_int_equal(int_of(e, "mask_id"), 4095);
        assert_int_equal(int_of(e, "prompt_len"), 3);
        assert_true(int_of(e, "forwards") >= prev_forwards);
        prev_forwards = int_of(e, "forwards");
        const cJSON *canvas = cJSON_GetObjectItem(e, "canvas");
        assert_int_equal(cJSON_GetArraySize(canvas), 2);
        for (int b = 0; b < 2; b++) {
            const cJSON *c = cJSON_GetArrayItem(canvas, b);
            assert_int_equal(int_of(c, "index"), b);
            const cJSON *tok = cJSON_GetObjectItem(c, "tokens"), *pieces = cJSON_GetObjectItem(c, "pieces"),
                        *masked = cJSON_GetObjectItem(c, "masked"), *lambda = cJSON_GetObjectItem(c, "lambda");
            assert_int_equal(cJSON_GetArraySize(tok), 13);
            assert_int_equal(cJSON_GetArraySize(pieces), 13);
            /* soft-masking is on (models/default has a transparency_config.json) */
            assert_int_equal(cJSON_GetArraySize(lambda), cJSON_GetArraySize(masked));
            int k = 0;
            for (int t = 0; t < 13; t++) {
                const int is_mask = cJSON_GetArrayItem(tok, t)->valueint == 4095;
                assert_int_equal(cJSON_IsNull(cJSON_GetArrayItem(pieces, t)), is_mask);
                if (is_mask) assert_int_equal(cJSON_GetArrayItem(masked, k++)->valueint, t);
            }
            assert_int_equal(k, cJSON_GetArraySize(masked));
            for (int j = 0; j < k; j++) {
                const double l = cJSON_GetArrayItem(lambda, j)->valuedouble;
                assert_true(l >= 0.0 && l <= 1.0);
            }
        }
    }
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(
                         cJSON_GetArrayItem(ev, 5), "canvas"), 0), "masked")), 0);
    for (int b = 0; b < 2; b++) {
        const cJSON *chunk = cJSON_GetArrayItem(ev, 6 + b);
        assert_string_equal(str_of(chunk, "object"), "text_completion");
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(chunk, "choices"), 0);
        assert_int_equal(int_of(ch, "index"), b);
        assert_string_equal(str_of(ch, "finish_reason"), "length");
    }
    /* the streamed text is the whole answer's */
    cJSON *whole = post_json(&s, "/v1/completions", "{\"prompt\":\"The cat\",\"max_tokens\":10,"
                             "\"steps\":5,\"seed\":2,\"n\":2,\"sampler\":\"ddpm\"}", 200);
    for (int b = 0; b < 2; b++)
        assert_string_equal(str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(whole, "choices"), b), "text"),
                            str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 6 + b), "choices"), 0), "text"));
    cJSON_Delete(whole);
    cJSON_Delete(ev);
    /* stream without steps: the chunk and [DONE] only */
    ev = post_stream(&s, "/v1/completions", "{\"prompt\":\"a\",\"max_tokens\":4,"
                          "\"steps\":2,\"stream\":true}");
    assert_int_equal(cJSON_GetArraySize(ev), 1);
    cJSON_Delete(ev);
    assert_int_equal(server_stop(&s), 0);
}

/* Fixed text anywhere: a canvas template and OpenAI's suffix. */
static void test_infill(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default");
    cJSON *ev = post_stream(&s, "/v1/completions",
                            "{\"canvas\":[\"The cat\",{\"mask\":5},{\"tokens\":[307,1109]},{\"mask\":3},"
                            "{\"text\":\" end\"}],\"steps\":4,\"seed\":1,\"stream\":true,"
                            "\"stream_steps\":true}");
    for (int i = 0; i < cJSON_GetArraySize(ev) - 1; i++) {
        const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, i), "canvas"), 0);
        const cJSON *tok = cJSON_GetObjectItem(c, "tokens");
        assert_int_equal(int_of(cJSON_GetArrayItem(ev, i), "prompt_len"), 3);
        assert_int_equal(cJSON_GetArrayItem(tok, 8)->valueint, 307);
        assert_int_equal(cJSON_GetArrayItem(tok, 9)->valueint, 1109);
        const cJSON *masked = cJSON_GetObjectItem(c, "masked");
        for (int k = 0; k < cJSON_GetArraySize(masked); k++) {
            const int t = cJSON_GetArrayItem(masked, k)->valueint;
            assert_true((t >= 3 && t < 8) || (t >= 10 && t < 13));
        }
    }
    const char *text = str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(
                                  cJSON_GetArrayItem(ev, cJSON_GetArraySize(ev) - 1), "choices"), 0), "text");
    assert_non_null(strstr(text, " that brought"));
    assert_int_equal(strcmp(text + strlen(text) - 4, " end"), 0);
    cJSON_Delete(ev);
    /* suffix: the text is the infilled middle only */
    cJSON *c = post_json(&s, "/v1/completions", "{\"prompt\":\"The cat\",\"suffix\":\" the end\","
                         "\"max_tokens\":6,\"steps\":3,\"seed\":4}", 200);
    const char *mid = str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0), "text");
    assert_null(strstr(mid, "the end"));
    assert_int_equal(int_of(cJSON_GetObjectItem(c, "usage"), "completion_tokens"), 6);
    cJSON_Delete(c);
    assert_int_equal(server_stop(&s), 0);
}

/* Dream: chat completions (the chat template) equal `generate --chat`; the streamed chunks. */
static void test_dream_chat(void **state) {
    (void)state;
    server s;
    char args[256];
    snprintf(args, sizeof args, "-m %s", g_dream);
    server_start(&s, args);
    cJSON *c = post_json(&s, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":"
                         "\"hello\"}],\"max_tokens\":8,\"seed\":3}", 200);
    assert_string_equal(str_of(c, "object"), "chat.completion");
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(ch, "message");
    assert_string_equal(str_of(msg, "role"), "assistant");
    char *gen;
    assert_int_equal(tu_run(&gen, "generate -m %s -t 1 --chat -p hello --max-new-tokens 8 --seed 3 "
                                  "-o - -q", g_dream), 0);
    cJSON *ref = cJSON_Parse(gen);
    assert_non_null(ref);
    assert_string_equal(str_of(msg, "content"), str_of(ref, "text"));
    assert_int_equal(int_of(cJSON_GetObjectItem(c, "usage"), "prompt_tokens"),
                     cJSON_GetArraySize(cJSON_GetObjectItem(ref, "prompt_ids")));
    cJSON_Delete(ref);
    free(gen);
    /* Fast-dLLM's block-wise Dream with the dual cache: the request's block_length */
    cJSON *cb = post_json(&s, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":"
                          "\"hello\"}],\"max_tokens\":8,\"seed\":3,\"block_length\":4,\"alg\":"
                          "\"entropy\",\"steps\":4,\"cache\":\"dual\",\"temperature\":0.5}", 200);
    assert_int_equal(tu_run(&gen, "generate -m %s -t 1 --chat -p hello --max-new-tokens 8 --seed 3 "
                                  "--block-length 4 --alg entropy --steps 4 --cache dual "
                                  "--temperature 0.5 -o - -q", g_dream), 0);
    ref = cJSON_Parse(gen);
    assert_non_null(ref);
    assert_string_equal(str_of(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cb, "choices"), 0), "message"), "content"),
                        str_of(ref, "text"));
    cJSON_Delete(ref);
    cJSON_Delete(cb);
    free(gen);
    cJSON *ev = post_stream(&s, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\","
                          "\"content\":\"hello\"}],\"max_tokens\":8,\"seed\":3,\"stream\":true,"
                          "\"stream_options\":{\"include_usage\":true}}");
    assert_int_equal(cJSON_GetArraySize(ev), 4);
    const cJSON *d0 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 0), "choices"), 0), "delta");
    assert_string_equal(str_of(d0, "role"), "assistant");
    const cJSON *d1 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 1), "choices"), 0), "delta");
    assert_string_equal(str_of(d1, "content"), str_of(msg, "content"));
    const cJSON *c2 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 2), "choices"), 0);
    assert_string_equal(str_of(c2, "finish_reason"), str_of(ch, "finish_reason"));
    assert_string_equal(str_of(cJSON_GetArrayItem(ev, 2), "object"), "chat.completion.chunk");
    assert_int_equal(int_of(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 3), "usage"), "total_tokens"),
                     int_of(cJSON_GetObjectItem(c, "usage"), "total_tokens"));
    cJSON_Delete(ev);
    cJSON_Delete(c);
    /* Dream infilling with a suffix */
    c = post_json(&s, "/v1/completions", "{\"prompt\":\"ab\",\"suffix\":\"yz\",\"max_tokens\":4,"
                  "\"seed\":1,\"eos_penalty\":100}", 200);
    cJSON_Delete(c);
    expect_error(&s, "POST", "/v1/completions", "{\"prompt\":\"a\",\"sampler\":\"ddpm\"}", 400,
                 "sampler", "MDLM models only");
    assert_int_equal(server_stop(&s), 0);
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void test_error_matrix(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default --max-body 1");
    const char *C = "/v1/completions";
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",", 400, NULL, "not valid JSON");
    expect_error(&s, "POST", C, "[1,2]", 400, NULL, "JSON object");
    expect_error(&s, "POST", C, "", 400, NULL, "not valid JSON");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"max_tokens\":\"ten\"}", 400, "max_tokens", "integer");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"max_tokens\":2.5}", 400, "max_tokens", "integer");
    expect_error(&s, "POST", C, "{\"prompt\":7}", 400, "prompt", "string");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"stream\":1}", 400, "stream", "true or false");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"frobnicate\":1}", 400, "frobnicate", "unknown field");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"prompt\":\"b\"}", 400, "prompt", "twice");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"top_p\":1.5}", 400, "top_p", "(0, 1]");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"n\":0}", 400, "n", "[1, 16]");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"steps\":0}", 400, "steps", "[1, 100000]");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"max_tokens\":1000}", 400, "max_tokens", "[1, 128]");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"temperature\":0.5}", 400, "temperature", "must be 1");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"sampler\":\"nope\"}", 400, NULL, "unknown sampler");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"softmask\":{\"k\":99}}", 400, "k", "[1, 16]");
    expect_error(&s, "POST", C, "{\"prompt\":\"a\",\"stream_steps\":true}", 400, "stream_steps", "stream");
    expect_error(&s, "POST", C, "{\"prompt\":[1,99999]}", 400, "prompt", "token ids");
    expect_error(&s, "POST", C, "{\"canvas\":[{\"mask\":0}]}", 400, "canvas", "mask");
    expect_error(&s, "POST", C, "{\"canvas\":[\"abc\"]}", 400, "canvas", "nothing to generate");
    expect_error(&s, "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 400, "messages", "chat template");
    /* longer than the context: 200 words are far more than 128 tokens */
    sm_buf big = {0};
    sm_buf_str(&big, "{\"prompt\":\"");
    for (int i = 0; i < 200; i++) sm_buf_str(&big, "word ");
    sm_buf_str(&big, "\"}");
    expect_error(&s, "POST", C, big.s, 400, "prompt", "context");
    /* larger than --max-body 1 (KiB) */
    sm_buf huge = {0};
    sm_buf_str(&huge, "{\"prompt\":\"");
    for (int i = 0; i < 400; i++) sm_buf_str(&huge, "word ");
    sm_buf_str(&huge, "\"}");
    expect_error(&s, "POST", C, huge.s, 413, NULL, "exceeds 1024 bytes");
    free(big.s);
    free(huge.s);
    expect_error(&s, "GET", C, NULL, 405, NULL, "POST");
    expect_error(&s, "POST", "/v1/models", "{}", 405, NULL, "GET");
    expect_error(&s, "GET", "/v1/nothing", NULL, 404, NULL, "no route");
    /* still serving */
    cJSON *ok = post_json(&s, C, "{\"prompt\":\"a\",\"max_tokens\":4,\"steps\":2}", 200);
    cJSON_Delete(ok);
    assert_int_equal(server_stop(&s), 0);
}

static void test_api_key(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default --api-key s3cret");
    char *out;
    assert_int_equal(http(&s, "GET", "/v1/models", NULL, NULL, &out, 30000), 401);
    assert_non_null(strstr(out, "\"authentication_error\""));
    free(out);
    assert_int_equal(http(&s, "POST", "/v1/completions", "{\"prompt\":\"a\"}", "wrong", NULL, 30000), 401);
    assert_int_equal(http(&s, "GET", "/metrics", NULL, "s3cret1", NULL, 30000), 401);
    assert_int_equal(http(&s, "GET", "/health", NULL, NULL, NULL, 30000), 200);
    assert_int_equal(http(&s, "GET", "/v1/models", NULL, "s3cret", NULL, 30000), 200);
    assert_int_equal(http(&s, "POST", "/v1/completions", "{\"prompt\":\"a\",\"max_tokens\":3,\"steps\":2}",
                          "s3cret", NULL, 60000), 200);
    assert_int_equal(server_stop(&s), 0);
}

/* A raw socket to the server. */
static int connect_raw(const server *s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Reads until the server closes; the bytes read (−1: it did not close within 20 s). */
static long read_to_close(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r == 0) break;
        if (r < 0) return -1;
        n += (size_t)r;
        if (n == cap - 1) n = 0;
    }
    buf[n] = 0;
    return (long)n;
}

/* Slow and half-closed clients cost the server a connection for a while, nothing else. */
static void test_slow_and_half_closed(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default --client-timeout 1");
    char buf[4096];
    /* headers never finished: closed after the client timeout */
    int slow = connect_raw(&s);
    const char *part = "POST /v1/completions HTTP/1.1\r\nHost: x\r\n";
    assert_int_equal(send(slow, part, strlen(part), 0), (ssize_t)strlen(part));
    const double t0 = sm_time_sec();
    assert_true(read_to_close(slow, buf, sizeof buf) >= 0);
    printf("  slow client closed after %.1f s\n", sm_time_sec() - t0);
    close(slow);
    /* a body shorter than its Content-Length, then the write side shut */
    int half = connect_raw(&s);
    const char *req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"";
    assert_int_equal(send(half, req, strlen(req), 0), (ssize_t)strlen(req));
    shutdown(half, SHUT_WR);
    assert_true(read_to_close(half, buf, sizeof buf) >= 0);
    close(half);
    /* garbage instead of HTTP */
    int junk = connect_raw(&s);
    const char *bad = "\x01\x02 nonsense\r\n\r\n";
    send(junk, bad, strlen(bad), 0);
    assert_true(read_to_close(junk, buf, sizeof buf) >= 0);
    printf("  garbage answered: %.40s\n", buf);
    close(junk);
    /* still serving */
    assert_int_equal(http(&s, "GET", "/health", NULL, NULL, NULL, 30000), 200);
    cJSON *ok = post_json(&s, "/v1/completions", "{\"prompt\":\"a\",\"max_tokens\":4,\"steps\":2}", 200);
    cJSON_Delete(ok);
    assert_int_equal(server_stop(&s), 0);
}

/* ---- concurrency ---------------------------------------------------------------------------- */

#define LONG_REQUEST "{\"prompt\":\"a\",\"max_tokens\":8,\"steps\":100000,\"sampler\":\"ddpm\"}"

/* A client that gives up: its generation stops (the forward counter stops growing). */
static void test_disconnect_cancels(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default");
    for (int stream = 0; stream < 2; stream++) {
        const double before = metric(&s, "smdlm_forwards_total");
        const char *body = stream ? "{\"prompt\":\"a\",\"max_tokens\":8,\"steps\":100000,"
                                    "\"sampler\":\"ddpm\",\"stream\":true,\"stream_steps\":true}"
                                  : LONG_REQUEST;
        assert_int_equal(http(&s, "POST", "/v1/completions", body, NULL, NULL, 800), 0);
        double running = 1;
        for (double end = sm_time_sec() + 30; running > 0 && sm_time_sec() < end; sleep_ms(50))
            running = metric(&s, "smdlm_requests_running");
        assert_true(running == 0);
        const double f1 = metric(&s, "smdlm_forwards_total");
        sleep_ms(500);
        const double f2 = metric(&s, "smdlm_forwards_total");
        printf("  %s: forwards %.0f before, %.0f at the stop, %.0f later\n",
               stream ? "stream" : "whole", before, f1, f2);
        assert_true(f1 > before);
        assert_true(f2 == f1);
    }
    assert_int_equal(server_stop(&s), 0);
}

typedef struct {
    const server *s;
    const char *body;
    long status;
    char *out;
} request_thread;

static void *request_main(void *arg) {
    request_thread *r = arg;
    r->status = http(r->s, "POST", "/v1/completions", r->body, NULL, &r->out, 120000);
    return NULL;
}

/* --parallel 1 --queue 0: a second request while one runs is refused with 429. */
static void test_queue_full(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default --parallel 1 --queue 0 --timeout 2");
    request_thread r = {&s, LONG_REQUEST};
    pthread_t th;
    pthread_create(&th, NULL, request_main, &r);
    double running = 0;
    for (double end = sm_time_sec() + 30; running < 1 && sm_time_sec() < end; sleep_ms(20))
        running = metric(&s, "smdlm_requests_running");
    assert_true(running == 1);
    expect_error(&s, "POST", "/v1/completions", "{\"prompt\":\"a\"}", 429, NULL, "busy");
    pthread_join(th, NULL);
    /* the running one ran into --timeout 2 */
    printf("  deadline: %ld %s\n", r.status, r.out);
    assert_int_equal(r.status, 504);
    assert_non_null(strstr(r.out, "deadline_exceeded"));
    free(r.out);
    assert_int_equal(server_stop(&s), 0);
}

/* Concurrent requests batched into shared forwards (the default for MDLM) are answered exactly
 * as one at a time without batching: every step's canvas and λ, and the texts. The metrics
 * count a shared forward once (smdlm_forwards_total) and once per request it served
 * (smdlm_request_forwards_total, the sum of the requests' own counts). */
static void test_batched_equals_unbatched(void **state) {
    (void)state;
    enum { N = 4 };
#define STEPS "\"stream\":true,\"stream_steps\":true"
    static const char *const bodies[N] = {
        "{\"prompt\":\"The cat\",\"steps\":60,\"seed\":1,\"sampler\":\"ddpm\"," STEPS "}",
        "{\"prompt\":\"Once upon a time\",\"steps\":45,\"seed\":2,\"n\":2," STEPS "}",
        "{\"canvas\":[\"A\",{\"mask\":60},\" end\",{\"mask\":66}],\"steps\":70,\"seed\":3,"
        "\"sampler\":\"remdm-cap\"," STEPS "}",
        "{\"prompt\":\"x\",\"steps\":50,\"seed\":4,\"softmask\":{\"enabled\":false},"
        "\"top_p\":0.9," STEPS "}",
    };
    server b, u;
    server_start(&b, "-m models/default --parallel 4");
    request_thread r[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        r[i] = (request_thread){&b, bodies[i]};
        pthread_create(&th[i], NULL, request_main, &r[i]);
    }
    double most = 0;
    for (int done = 0; !done;) {
        const double running = metric(&b, "smdlm_requests_running");
        if (running > most) most = running;
        done = running == 0 && metric(&b, "smdlm_generations_total") == N;
        sleep_ms(5);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    printf("  at most %.0f requests in the batch\n", most);
    assert_true(most >= 2);
    const double ran = metric(&b, "smdlm_forwards_total"),
                 served = metric(&b, "smdlm_request_forwards_total");
    assert_int_equal(server_stop(&b), 0);
    server_start(&u, "-m models/default --parallel 1 --no-batch");
    int own = 0; /* the requests' own forwards */
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].status, 200);
        char *out;
        assert_int_equal(http(&u, "POST", "/v1/completions", bodies[i], NULL, &out, 120000), 200);
        /* every step's canvases and λ (17 digits: exact), then the texts */
        cJSON *batched = sse_events(r[i].out), *alone = sse_events(out);
        assert_int_equal(cJSON_GetArraySize(batched), cJSON_GetArraySize(alone));
        for (int e = 0; e < cJSON_GetArraySize(alone); e++) {
            const cJSON *eb = cJSON_GetArrayItem(batched, e), *ea = cJSON_GetArrayItem(alone, e);
            const char *key = cJSON_HasObjectItem(ea, "canvas") ? "canvas" : "choices";
            char *sb = cJSON_PrintUnformatted(cJSON_GetObjectItem(eb, key)),
                 *sa = cJSON_PrintUnformatted(cJSON_GetObjectItem(ea, key));
            if (strcmp(sb, sa)) fail_msg("request %d, event %d: batched %.200s\nalone %.200s", i, e, sb, sa);
            free(sb);
            free(sa);
        }
        printf("  request %d: %d events equal\n", i, cJSON_GetArraySize(alone));
        assert_int_equal(stream_forwards(batched), stream_forwards(alone));
        own += stream_forwards(alone);
        cJSON_Delete(batched);
        cJSON_Delete(alone);
        free(out);
        free(r[i].out);
    }
    printf("  batched: %.0f forwards run, %.0f counted per request; the requests' own: %d\n", ran,
           served, own);
    assert_true(served == own);
    assert_true(ran < served);
    assert_true(metric(&u, "smdlm_forwards_total") == own);
    assert_true(metric(&u, "smdlm_request_forwards_total") == own);
    assert_int_equal(server_stop(&u), 0);
}

/* SIGTERM while a request runs: it is answered in full, then the server exits 0. */
static void test_sigterm(void **state) {
    (void)state;
    server s;
    server_start(&s, "-m models/default");
    request_thread r = {&s, "{\"prompt\":\"a\",\"max_tokens\":8,\"steps\":1500,\"sampler\":\"ddpm\","
                            "\"seed\":1}"};
    pthread_t th;
    pthread_create(&th, NULL, request_main, &r);
    double running = 0;
    for (double end = sm_time_sec() + 30; running < 1 && sm_time_sec() < end; sleep_ms(20))
        running = metric(&s, "smdlm_requests_running");
    assert_true(running == 1);
    assert_int_equal(server_stop(&s), 0);
    pthread_join(th, NULL);
    printf("  after SIGTERM: %ld %.120s\n", r.status, r.out);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.out);
    assert_int_equal(int_of(cJSON_GetObjectItem(j, "smdlm"), "steps"), 1500);
    cJSON_Delete(j);
    free(r.out);
    /* nobody listens afterwards */
    assert_int_equal(http(&s, "GET", "/health", NULL, NULL, NULL, 2000), 0);
}

/* The openai npm package, unmodified (tests/openai_client, installed by `make openai-client`):
 * a completion and a streamed chat completion. Skipped without node or the package. */
static void test_openai_client(void **state) {
    (void)state;
    if (system("command -v node >/dev/null 2>&1") != 0 ||
        !sm_file_exists("tests/openai_client/node_modules/openai/package.json")) {
        printf("  node or the openai package (make openai-client) is missing\n");
        skip();
    }
    server m, d;
    char args[256];
    server_start(&m, "-m models/default");
    snprintf(args, sizeof args, "-m %s --alias dream", g_dream);
    server_start(&d, args);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "SMDLM_URL=http://127.0.0.1:%d/v1 SMDLM_CHAT_URL=http://127.0.0.1:%d/v1 "
             "node tests/openai_client/client.mjs 2>&1", m.port, d.port);
    fflush(stdout);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(server_stop(&m), 0);
    assert_int_equal(server_stop(&d), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_line),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_same_as_generate),
        cmocka_unit_test(test_stream_steps),
        cmocka_unit_test(test_infill),
        cmocka_unit_test(test_dream_chat),
        cmocka_unit_test(test_error_matrix),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_slow_and_half_closed),
        cmocka_unit_test(test_disconnect_cancels),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_batched_equals_unbatched),
        cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_openai_client),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
