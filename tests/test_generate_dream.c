/* test_generate_dream.c — `smdlm generate` and smdlm_generate on Dream / LLaDA directories:
 * the decoders on the tiny models against tools/ref_decoder.py + tools/ref_dream.py
 * (tests/gen_generate_fixtures.py), the CLI against the decoder called directly on the same
 * model and prompt (token for token), chat and plain prompts against chat_encode / tok_encode_ex,
 * soft-masking flags, the public API, and bad flags. The model directories are assembled at run
 * time from tests/fixtures/tiny-dream (tiny-dream-bf16, tiny-llada) and a tokenizer whose ids
 * cover the tiny vocabulary (tests/fixtures/tiny-*-tokenizer). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "text/chat.h"
#include "generate/decoder.h"
#include "compute/kernels.h"
#include "models/model.h"
#include "smdlm.h"
#include "testutil.h"
#include "base/util.h"

static char g_tmp[64];
static char g_dream[128], g_bf16[128], g_llada[128], g_dream_sm[128];

/* Links every file of src (weights, config; not the .npy fixtures) into dst. */
static void link_files(const char *src, const char *dst, int with_sm_config) {
    char abs_src[PATH_MAX];
    assert_non_null(realpath(src, abs_src));
    DIR *d = opendir(abs_src);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        if (n[0] == '.' || (len > 4 && !strcmp(n + len - 4, ".npy"))) continue;
        char from[PATH_MAX + 256], to[512];
        snprintf(from, sizeof from, "%s/%s", abs_src, n);
        if (!strcmp(n, "sm_config.json")) {
            if (!with_sm_config) continue;
            n = "transparency_config.json";
        }
        snprintf(to, sizeof to, "%s/%s", dst, n);
        assert_int_equal(symlink(from, to), 0);
    }
    closedir(d);
}

static void make_dir(char *out, const char *name, const char *model, const char *tok, int sm) {
    snprintf(out, 128, "%s/%s", g_tmp, name);
    assert_int_equal(mkdir(out, 0755), 0);
    link_files(tu_fixture("%s", model), out, sm);
    link_files(tu_fixture("%s", tok), out, 0);
}

static int setup(void **state) {
    (void)state;
    strcpy(g_tmp, "/tmp/smdlm-gen-XXXXXX");
    if (!mkdtemp(g_tmp)) return -1;
    kernels_set_threads(1); /* in-process decoders: no OpenMP barriers on a loaded machine */
    make_dir(g_dream, "dream", "tiny-dream", "tiny-dream-tokenizer", 0);
    make_dir(g_bf16, "dream-bf16", "tiny-dream-bf16", "tiny-dream-tokenizer", 0);
    make_dir(g_llada, "llada", "tiny-llada", "tiny-llada-tokenizer", 0);
    make_dir(g_dream_sm, "dream-sm", "tiny-dream", "tiny-dream-tokenizer", 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp); /* our own mkdtemp directory */
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the decoder called directly ------------------------------------------------------- */

typedef struct {
    decoder_style style;
    const char *alg, *remasking;
    int gen_len, steps, tokens_per_step, block_length, top_k;
    float temperature, top_p, threshold, eos_penalty;
    uint64_t seed;
    int B;
    const char *sm_config; /* fixture path or NULL */
    int q8;
    float cfg_scale;            /* LLaDA generate.py's options */
    int logits_inf_id, conf_inf_id; /* 0 in a case: off */
    const char *cache;          /* NULL: off */
    int cache_refresh;
} lib_case;

static void lib_params(const lib_case *c, const model_dir *md, decoder_params *p) {
    decoder_params_default(p);
    p->style = c->style;
    p->gen_len = c->gen_len;
    p->steps = c->steps;
    p->tokens_per_step = c->tokens_per_step;
    p->block_length = c->block_length;
    p->top_k = c->top_k;
    p->temperature = c->temperature;
    p->top_p = c->top_p > 0 ? c->top_p : 1.0f;
    p->threshold = c->threshold;
    p->eos_penalty = c->eos_penalty;
    p->seed = c->seed;
    if (c->alg) assert_int_equal(decoder_alg_parse(c->alg, &p->alg), 0);
    if (c->remasking) assert_int_equal(decoder_remask_parse(c->remasking, &p->remasking), 0);
    p->eos_id = md->tok ? tok_role_id(md->tok, TOK_EOS) : -1;
    p->cfg_scale = c->cfg_scale;
    p->logits_inf_id = c->logits_inf_id ? c->logits_inf_id : -1;
    p->conf_inf_id = c->conf_inf_id ? c->conf_inf_id : -1;
    if (c->cache) assert_int_equal(kv_cache_mode_parse(c->cache, &p->cache), 0);
    p->cache_refresh = c->cache_refresh;
    if (c->sm_config) {
        assert_int_equal(sm_params_load_json(&p->sm, c->sm_config), 0);
        p->sm.enabled = 1;
    }
}

/* Runs the decoder on B copies of prompt; *x [B, P + gen_len]. */
static void lib_decode(model_dir *md, const lib_case *c, const int32_t *prompt, int P,
                       int32_t **x, int *gen, decoder_stats *st) {
    decoder_params p;
    lib_params(c, md, &p);
    if (c->q8) assert_int_equal(transformer_quantize_q8(&md->tf), 0);
    model_state s;
    model_state_init(&s, md, 1);
    const int T = P + c->gen_len, B = c->B ? c->B : 1;
    *x = sm_malloc(sizeof(int32_t) * (size_t)B * T);
    for (int b = 0; b < B; b++) memcpy(*x + (size_t)b * T, prompt, sizeof(int32_t) * (size_t)P);
    assert_int_equal(decoder_run(&s.lm, &p, *x, B, P, gen, st), 0);
    model_state_free(&s);
}

/* tests/fixtures/generate/cases.json: the reference's tokens and number of forwards. */
static void test_reference_cases(void **state) {
    (void)state;
    char *text;
    assert_int_equal(sm_read_file(tu_fixture("generate/cases.json"), 1 << 20, &text, NULL), 0);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *cs;
    int bad = 0, n = 0;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(root, "cases")) {
        const char *model = cJSON_GetObjectItem(cs, "model")->valuestring;
        const cJSON *smc = cJSON_GetObjectItem(cs, "sm_config");
        char smpath[256];
        lib_case c = {0};
        c.style = strcmp(cJSON_GetObjectItem(cs, "style")->valuestring, "llada") ? DECODER_DREAM
                                                                                 : DECODER_LLADA;
        c.alg = cJSON_GetObjectItem(cs, "alg")->valuestring;
        c.gen_len = cJSON_GetObjectItem(cs, "gen_len")->valueint;
        c.steps = cJSON_GetObjectItem(cs, "steps")->valueint;
        c.block_length = cJSON_GetObjectItem(cs, "block_length")->valueint;
        c.seed = (uint64_t)cJSON_GetObjectItem(cs, "seed")->valuedouble;
        const cJSON *opt;
        if ((opt = cJSON_GetObjectItem(cs, "cfg_scale"))) c.cfg_scale = (float)opt->valuedouble;
        if ((opt = cJSON_GetObjectItem(cs, "logits_inf_id"))) c.logits_inf_id = opt->valueint;
        if ((opt = cJSON_GetObjectItem(cs, "conf_inf_id"))) c.conf_inf_id = opt->valueint;
        if ((opt = cJSON_GetObjectItem(cs, "threshold"))) c.threshold = (float)opt->valuedouble;
        if ((opt = cJSON_GetObjectItem(cs, "cache"))) c.cache = opt->valuestring;
        if ((opt = cJSON_GetObjectItem(cs, "cache_refresh"))) c.cache_refresh = opt->valueint;
        if (cJSON_IsString(smc)) {
            snprintf(smpath, sizeof smpath, "%s", tu_fixture("%s/%s", model, smc->valuestring));
            c.sm_config = smpath;
        }
        model_dir md;
        assert_int_equal(model_dir_load_any(&md, tu_fixture("%s", model), 0), 0);
        const cJSON *pr = cJSON_GetObjectItem(cs, "prompt"), *out = cJSON_GetObjectItem(cs, "out");
        int P = cJSON_GetArraySize(pr), G = cJSON_GetArraySize(out);
        assert_int_equal(G, c.gen_len);
        int32_t prompt[64], ref[64];
        for (int i = 0; i < P; i++) prompt[i] = cJSON_GetArrayItem(pr, i)->valueint;
        for (int i = 0; i < G; i++) ref[i] = cJSON_GetArrayItem(out, i)->valueint;
        int32_t *x;
        int gen;
        decoder_stats st;
        lib_decode(&md, &c, prompt, P, &x, &gen, &st);
        printf("  %s %s block %d cache %s sm %s: forwards %d (reference %d)\n", model,
               c.style == DECODER_LLADA ? "llada" : c.alg, c.block_length,
               c.cache ? c.cache : "off", c.sm_config ? smc->valuestring : "off", st.forwards,
               cJSON_GetObjectItem(cs, "forwards")->valueint);
        bad += tu_compare_i32(model, x + P, ref, (size_t)G) != 0;
        bad += st.forwards != cJSON_GetObjectItem(cs, "forwards")->valueint;
        free(x);
        model_dir_free(&md);
        n++;
    }
    cJSON_Delete(root);
    assert_int_equal(n, 22);
    assert_int_equal(bad, 0);
}

/* ---- the CLI --------------------------------------------------------------------------- */

/* Runs `smdlm generate ARGS -o FILE -q` and parses the JSON lines (an array). */
static cJSON *cli_jsonl(const char *args) {
    char path[128], *out, *text;
    snprintf(path, sizeof path, "%s/out.jsonl", g_tmp);
    unlink(path);
    int st = tu_run(&out, "generate %s -o %s -q -t 1", args, path);
    if (st != 0) printf("  smdlm generate %s\n  -> exit %d: %s", args, st, out);
    assert_int_equal(st, 0);
    free(out);
    assert_int_equal(sm_read_file(path, 1 << 24, &text, NULL), 0);
    cJSON *arr = cJSON_CreateArray();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        cJSON_AddItemToArray(arr, o);
    }
    free(text);
    return arr;
}

static int32_t *json_ids(const cJSON *o, const char *key, int *n) {
    const cJSON *a = cJSON_GetObjectItem(o, key);
    assert_true(cJSON_IsArray(a));
    *n = cJSON_GetArraySize(a);
    int32_t *ids = sm_malloc(sizeof(int32_t) * (size_t)(*n + 1));
    for (int i = 0; i < *n; i++) ids[i] = cJSON_GetArrayItem(a, i)->valueint;
    return ids;
}

/* The CLI's output rows against the decoder on the prompt encoded as plain text. */
static void cli_vs_lib(const char *dir, const char *prompt, const char *args, const lib_case *c) {
    char full[1024];
    snprintf(full, sizeof full, "-m %s -p \"%s\" %s", dir, prompt, args);
    cJSON *rows = cli_jsonl(full);
    model_dir md;
    assert_int_equal(model_dir_load_any(&md, dir, 2), 0);
    int32_t *pids;
    size_t np;
    assert_int_equal(tok_encode_ex(md.tok, prompt, strlen(prompt), 0, &pids, &np), 0);
    const int B = c->B ? c->B : 1, T = (int)np + c->gen_len;
    int32_t *x;
    int gen[8];
    decoder_stats st;
    lib_decode(&md, c, pids, (int)np, &x, gen, &st);
    assert_int_equal(cJSON_GetArraySize(rows), B);
    for (int b = 0; b < B; b++) {
        const cJSON *row = cJSON_GetArrayItem(rows, b);
        int n, npr;
        int32_t *ids = json_ids(row, "ids", &n), *pr = json_ids(row, "prompt_ids", &npr);
        printf("  %s row %d: %d tokens (library %d) \"%s\"\n", args, b, n, gen[b],
               cJSON_GetObjectItem(row, "text")->valuestring);
        assert_int_equal(npr, (int)np);
        assert_int_equal(tu_compare_i32("prompt ids", pr, pids, np), 0);
        assert_int_equal(n, gen[b]);
        assert_int_equal(tu_compare_i32("generated ids", ids, x + (size_t)b * T + np, (size_t)n), 0);
        char *text;
        size_t len;
        assert_int_equal(tok_decode_ex(md.tok, ids, (size_t)n, TOK_SKIP_SPECIAL, &text, &len), 0);
        assert_string_equal(cJSON_GetObjectItem(row, "text")->valuestring, text);
        free(text);
        free(ids);
        free(pr);
    }
    free(x);
    free(pids);
    model_dir_free(&md);
    cJSON_Delete(rows);
}

static void test_cli_matches_decoder(void **state) {
    (void)state;
    const char *dsm = tu_fixture("tiny-dream/sm_config.json");
    char sm_d[256], sm_l[256], args[512];
    snprintf(sm_d, sizeof sm_d, "%s", dsm);
    snprintf(sm_l, sizeof sm_l, "%s", tu_fixture("tiny-llada/sm_config.json"));
    /* Dream defaults: origin, temperature 0, one token per step */
    lib_case a = {.style = DECODER_DREAM, .alg = "origin", .gen_len = 16, .steps = 16, .seed = 4, .B = 2};
    cli_vs_lib(g_dream, "Hello the world", "--max-new-tokens 16 --seed 4 -n 2", &a);
    lib_case b = {.style = DECODER_DREAM, .alg = "entropy", .gen_len = 16, .steps = 8, .sm_config = sm_d};
    snprintf(args, sizeof args, "--max-new-tokens 16 --alg entropy --steps 8 --sm-config %s", sm_d);
    cli_vs_lib(g_dream, "Hello the world", args, &b);
    lib_case c = {.style = DECODER_DREAM, .alg = "topk_margin", .gen_len = 12, .tokens_per_step = 3,
                  .temperature = 0.9f, .top_p = 0.9f, .seed = 9, .B = 2};
    cli_vs_lib(g_bf16, "and it is", "--max-new-tokens 12 --alg topk_margin --tokens-per-step 3 "
                                    "--temperature 0.9 --top-p 0.9 --seed 9 -n 2", &c);
    lib_case d = {.style = DECODER_LLADA, .gen_len = 32, .steps = 32, .block_length = 32};
    cli_vs_lib(g_llada, "Hello", "--max-new-tokens 32", &d); /* LLaDA defaults */
    lib_case e = {.style = DECODER_LLADA, .remasking = "random", .gen_len = 16, .steps = 8,
                  .block_length = 8, .temperature = 0.5f, .seed = 3, .sm_config = sm_l};
    snprintf(args, sizeof args, "--max-new-tokens 16 --block-length 8 --steps 8 --remasking random "
                                "--temperature 0.5 --seed 3 --sm-config %s", sm_l);
    cli_vs_lib(g_llada, "Hello the world", args, &e);
    lib_case f = {.style = DECODER_DREAM, .alg = "maskgit_plus", .gen_len = 12, .steps = 12,
                  .threshold = 0.05f, .top_k = 20};
    cli_vs_lib(g_dream, "on the", "--max-new-tokens 12 --alg maskgit_plus --threshold 0.05 --top-k 20", &f);
    /* a negative EOS penalty favours the EOS (290): the row stops early, the text ends there */
    lib_case h = {.style = DECODER_DREAM, .alg = "maskgit_plus", .gen_len = 16, .steps = 8,
                  .eos_penalty = -2.0f};
    cli_vs_lib(g_dream, "Hello the world", "--max-new-tokens 16 --alg maskgit_plus --steps 8 "
                                          "--eos-penalty -2", &h);
    /* Fast-dLLM's block-wise Dream with its dual cache */
    lib_case i = {.style = DECODER_DREAM, .alg = "entropy", .gen_len = 16, .steps = 8,
                  .block_length = 4, .temperature = 0.4f, .seed = 5, .B = 2, .cache = "dual"};
    cli_vs_lib(g_dream, "Hello the world", "--max-new-tokens 16 --alg entropy --steps 8 "
                                          "--block-length 4 --temperature 0.4 --seed 5 -n 2 "
                                          "--cache dual", &i);
    lib_case g = {.style = DECODER_DREAM, .alg = "entropy", .gen_len = 10, .steps = 5, .q8 = 1};
    cli_vs_lib(g_dream, "is it", "--max-new-tokens 10 --alg entropy --steps 5 --quant q8", &g);
}

/* A directory's transparency_config.json switches soft-masking on; --no-sm off; with λ > 0 the
 * tokens change. */
static void test_soft_masking(void **state) {
    (void)state;
    char a[512];
    const char *base = "-p \"Hello the world\" --max-new-tokens 16 --alg entropy --steps 8";
    snprintf(a, sizeof a, "-m %s %s", g_dream, base);
    cJSON *plain = cli_jsonl(a);
    snprintf(a, sizeof a, "-m %s %s", g_dream_sm, base);
    cJSON *sm = cli_jsonl(a);
    snprintf(a, sizeof a, "-m %s %s --no-sm", g_dream_sm, base);
    cJSON *off = cli_jsonl(a);
    snprintf(a, sizeof a, "-m %s %s --sm-config %s", g_dream, base,
             tu_fixture("tiny-dream/sm_config.json"));
    cJSON *flag = cli_jsonl(a);
    const cJSON *p0 = cJSON_GetArrayItem(plain, 0), *s0 = cJSON_GetArrayItem(sm, 0);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(p0, "soft_masking")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(s0, "soft_masking")));
    char *ps = cJSON_PrintUnformatted(cJSON_GetObjectItem(p0, "ids"));
    char *ss = cJSON_PrintUnformatted(cJSON_GetObjectItem(s0, "ids"));
    char *os = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetArrayItem(off, 0), "ids"));
    char *fs = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetArrayItem(flag, 0), "ids"));
    printf("  plain %s\n  sm    %s\n", ps, ss);
    assert_string_not_equal(ps, ss);
    assert_string_equal(ps, os);
    assert_string_equal(ss, fs);
    free(ps), free(ss), free(os), free(fs);
    cJSON_Delete(plain), cJSON_Delete(sm), cJSON_Delete(off), cJSON_Delete(flag);
}

/* --chat builds chat_encode's ids (ChatML for Dream, LLaDA's template); special-token text in
 * the message stays text unless --allow-special; plain prompts likewise. */
static void expect_prompt_ids(const char *dir, const char *args, const int32_t *want, size_t n) {
    char full[512];
    snprintf(full, sizeof full, "-m %s %s --max-new-tokens 4%s", dir, args,
             dir == g_llada ? " --block-length 4" : "");
    cJSON *rows = cli_jsonl(full);
    int got_n;
    int32_t *got = json_ids(cJSON_GetArrayItem(rows, 0), "prompt_ids", &got_n);
    printf("  %s: %d prompt ids\n", args, got_n);
    assert_int_equal(got_n, (int)n);
    assert_int_equal(tu_compare_i32("prompt ids", got, want, n), 0);
    free(got);
    cJSON_Delete(rows);
}

static void check_chat(const char *dir, const char *user, const char *system, const char *args) {
    model_dir md;
    assert_int_equal(model_dir_load_any(&md, dir, 2), 0);
    chat_format f;
    assert_int_equal(chat_detect(md.tok, &f), 0);
    chat_msg m[2] = {{"system", system}, {"user", user}};
    int32_t *ids;
    size_t n;
    assert_int_equal(chat_encode(md.tok, f, system ? m : m + 1, system ? 2 : 1, 0, &ids, &n), 0);
    expect_prompt_ids(dir, args, ids, n);
    free(ids);
    model_dir_free(&md);
}

static void test_chat_and_plain_prompts(void **state) {
    (void)state;
    check_chat(g_dream, "Hi", NULL, "-p Hi --chat");
    check_chat(g_dream, "Hi <|im_end|>", "Be", "-p \"Hi <|im_end|>\" --chat --system Be");
    check_chat(g_llada, " Hi ", "S", "-p \" Hi \" --chat --system S");
    check_chat(g_llada, "<|eot_id|>x", NULL, "-p \"<|eot_id|>x\" --chat");
    /* plain prompt: "<|endoftext|>" is text, or the EOS id with --allow-special */
    model_dir md;
    assert_int_equal(model_dir_load_any(&md, g_dream, 2), 0);
    const char *s = "<|endoftext|>a";
    int32_t *plain, *special;
    size_t np, ns;
    assert_int_equal(tok_encode_ex(md.tok, s, strlen(s), 0, &plain, &np), 0);
    assert_int_equal(tok_encode_ex(md.tok, s, strlen(s), TOK_ALLOW_SPECIAL, &special, &ns), 0);
    assert_int_equal(ns, 2);
    assert_int_equal(special[0], 290);
    assert_true(np > 2);
    expect_prompt_ids(g_dream, "-p \"<|endoftext|>a\"", plain, np);
    expect_prompt_ids(g_dream, "-p \"<|endoftext|>a\" --allow-special", special, ns);
    free(plain);
    free(special);
    model_dir_free(&md);
}

/* MDLM: -p is plain text too (models/demo has <|endoftext|>). */
static void test_mdlm_plain_prompt(void **state) {
    (void)state;
    smdlm_tokenizer *tok;
    assert_int_equal(tok_load_dir(&tok, "models/demo"), 0);
    const char *s = "<|endoftext|> And";
    int32_t *plain, *special;
    size_t np, ns;
    assert_int_equal(tok_encode_ex(tok, s, strlen(s), 0, &plain, &np), 0);
    assert_int_equal(tok_encode_ex(tok, s, strlen(s), TOK_ALLOW_SPECIAL, &special, &ns), 0);
    assert_true(np > ns);
    for (int allow = 0; allow < 2; allow++) {
        char a[256];
        snprintf(a, sizeof a, "-m models/demo -p \"%s\" --len 24 --steps 2 %s", s,
                 allow ? "--allow-special" : "");
        cJSON *rows = cli_jsonl(a);
        int n;
        int32_t *ids = json_ids(cJSON_GetArrayItem(rows, 0), "ids", &n);
        const size_t want_n = allow ? ns : np;
        assert_true((size_t)n > want_n);
        assert_int_equal(tu_compare_i32("MDLM prompt", ids, allow ? special : plain, want_n), 0);
        free(ids);
        cJSON_Delete(rows);
    }
    free(plain);
    free(special);
    tok_free(tok);
}

/* --visual shows frames of the canvas (masks as ░) through the decoder's step callback. */
static void test_visual(void **state) {
    (void)state;
    char *out;
    assert_int_equal(tu_run(&out, "generate -m %s -p Hello --max-new-tokens 8 --steps 4 --visual "
                                  "--delay 0 -q -t 1", g_dream), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "step 1/4"));
    assert_non_null(strstr(out, "step 4/4"));
    assert_non_null(strstr(out, "\xe2\x96\x91")); /* masked positions in the first frame */
    assert_true(strncmp(strstr(out, "step 1/4\n") + 9, "Hello", 5) == 0);
    free(out);
}

/* ---- smdlm chat, prompts from files ------------------------------------------------------ */

typedef struct {
    const char *dir, *flags, *system;
    int llada;
} chat_case;

static void buf_add(char *buf, size_t cap, const char *s) {
    assert_true(strlen(buf) + strlen(s) < cap);
    strcat(buf, s);
}

/* LLaDA's `| trim`, for the ASCII white space the tiny model's replies can hold. */
static void buf_add_trimmed(char *buf, size_t cap, const char *s) {
    size_t a = 0, b = strlen(s);
    while (a < b && strchr(" \t\n\r\v\f", s[a])) a++;
    while (b > a && strchr(" \t\n\r\v\f", s[b - 1])) b--;
    assert_true(strlen(buf) + (b - a) < cap);
    strncat(buf, s + a, b - a);
}

/* The template's text of the system message and msgs [from, n) (user, assistant, user, …), as
 * tokenizer_config.json's chat_template renders it; written by hand, independent of chat.c. */
static void render_conversation(const chat_case *c, char *const *msgs, int from, int n, char *buf,
                                size_t cap) {
    buf[0] = 0;
    if (c->llada) {
        buf_add(buf, cap, "<|startoftext|>");
        if (c->system) {
            buf_add(buf, cap, "<|start_header_id|>system<|end_header_id|>\n\n");
            buf_add_trimmed(buf, cap, c->system);
            buf_add(buf, cap, "<|eot_id|>");
        }
        for (int i = from; i < n; i++) {
            buf_add(buf, cap, (i - from) % 2 ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                                             : "<|start_header_id|>user<|end_header_id|>\n\n");
            buf_add_trimmed(buf, cap, msgs[i]);
            buf_add(buf, cap, "<|eot_id|>");
        }
        buf_add(buf, cap, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        return;
    }
    buf_add(buf, cap, "<|im_start|>system\n");
    buf_add(buf, cap, c->system ? c->system : "You are a helpful assistant.");
    buf_add(buf, cap, "<|im_end|>\n");
    for (int i = from; i < n; i++) {
        buf_add(buf, cap, (i - from) % 2 ? "<|im_start|>assistant\n" : "<|im_start|>user\n");
        buf_add(buf, cap, msgs[i]);
        buf_add(buf, cap, "<|im_end|>\n");
    }
    buf_add(buf, cap, "<|im_start|>assistant\n");
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* `generate -f` on the conversation msgs [0, n) rendered by hand, leaving out the oldest
 * exchanges while it does not fit the model (as chat does); the reply's text (malloc'ed).
 * *dropped counts the messages left out. */
static char *generate_reply(const chat_case *c, char *const *msgs, int n, int *dropped) {
    char rendered[4096], path[128], *out;
    snprintf(path, sizeof path, "%s/conversation.txt", g_tmp);
    for (int from = 0; from < n; from += 2) {
        render_conversation(c, msgs, from, n, rendered, sizeof rendered - 1);
        strcat(rendered, "\n"); /* -f drops one trailing newline */
        write_text(path, rendered);
        int st = tu_run(&out, "generate -m %s %s --allow-special -f %s -o - -q -t 1", c->dir,
                        c->flags, path);
        if (st != 0) {
            printf("  generate: %s", out);
            assert_non_null(strstr(out, "the model's length"));
            free(out);
            continue;
        }
        cJSON *row = cJSON_Parse(out);
        assert_non_null(row);
        char *text = strdup(cJSON_GetObjectItem(row, "text")->valuestring);
        cJSON_Delete(row);
        free(out);
        *dropped = from;
        return text;
    }
    fail_msg("the last user message alone does not fit");
    return NULL;
}

/* Lines piped into `chat` get the replies `generate` gives for the same multi-turn template;
 * returns how many messages the last reply left out. */
static int check_chat_replies(const chat_case *c, const char *const *users, int turns) {
    char *msgs[16], path[128], input[512] = "", *want = calloc(1, 1), *got;
    int dropped = 0;
    for (int t = 0; t < turns; t++) {
        msgs[2 * t] = strdup(users[t]);
        char *text = generate_reply(c, msgs, 2 * t + 1, &dropped);
        printf("  turn %d (%d messages left out): \"%s\"\n", t, dropped, text);
        want = realloc(want, strlen(want) + strlen(text) + 2);
        strcat(strcat(want, text), "\n");
        msgs[2 * t + 1] = text;
        buf_add(input, sizeof input, users[t]);
        buf_add(input, sizeof input, "\n");
    }
    snprintf(path, sizeof path, "%s/chat_in.txt", g_tmp);
    write_text(path, input);
    char sys[64] = "";
    if (c->system) snprintf(sys, sizeof sys, "--system '%s'", c->system);
    assert_int_equal(tu_run(&got, "chat -m %s %s %s -t 1 < %s", c->dir, c->flags, sys, path), 0);
    if (strcmp(got, want)) printf("  chat printed:\n%s\n  generate:\n%s\n", got, want);
    assert_string_equal(got, want);
    for (int i = 0; i < 2 * turns; i++) free(msgs[i]);
    free(want);
    free(got);
    return dropped;
}

static void test_chat_matches_generate(void **state) {
    (void)state;
    const char *users[] = {"hi", "  how are you?  ", "bye"};
    chat_case dream = {g_dream, "--max-new-tokens 6 --temperature 0.8 --seed 3 --alg entropy", "S", 0};
    const char *short_users[] = {"hi", " yo "};
    chat_case llada = {g_llada, "--max-new-tokens 4 --block-length 2 --temperature 0.5 --seed 7", NULL, 1};
    chat_case llada_sys = {g_llada, "--max-new-tokens 4 --block-length 4", " Be brief. ", 1};
    /* the tiny Dream's 64 positions do not hold three turns: earlier exchanges are left out */
    assert_true(check_chat_replies(&dream, users, 3) > 0);
    assert_int_equal(check_chat_replies(&llada, short_users, 2), 0); /* the whole history */
    check_chat_replies(&llada_sys, users, 3);
}

/* Terminal output read so far, and where the next search starts. */
typedef struct {
    int fd;
    char *buf;
    size_t len, mark;
} pty_log;

/* Reads the terminal until `want` shows up at or after the mark, then moves the mark past it:
 * 0, or -1 after 20 s or the end (printing what was shown). */
static int pty_expect(pty_log *t, const char *want) {
    const double end = sm_time_sec() + 20;
    while (!strstr(t->buf + t->mark, want)) {
        struct pollfd p = {t->fd, POLLIN, 0};
        const double left = end - sm_time_sec();
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) break;
        char chunk[4096];
        ssize_t n = read(t->fd, chunk, sizeof chunk);
        if (n <= 0) break;
        t->buf = sm_realloc(t->buf, t->len + (size_t)n + 1);
        memcpy(t->buf + t->len, chunk, (size_t)n);
        t->len += (size_t)n;
        t->buf[t->len] = 0;
    }
    const char *at = strstr(t->buf + t->mark, want);
    if (!at) {
        printf("  waited for \"%s\"; the terminal showed:\n%s\n", want, t->buf);
        return -1;
    }
    t->mark = (size_t)(at - t->buf) + strlen(want);
    return 0;
}

/* `chat` on a terminal: a prompt, the canvas redrawn in place, Ctrl-C cancels the reply under
 * way and the conversation goes on, the reply equals the piped one, Ctrl-C at the prompt ends
 * with status 130. */
static void test_chat_terminal(void **state) {
    (void)state;
    char in[128], *piped;
    snprintf(in, sizeof in, "%s/hi.txt", g_tmp);
    write_text(in, "hi\n");
    assert_int_equal(tu_run(&piped, "chat -m %s --max-new-tokens 6 --system S -t 1 < %s", g_dream,
                            in), 0);
    const char *bin = getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm";
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    pty_log t = {-1, calloc(1, 1), 0, 0};
    pid_t pid = forkpty(&t.fd, NULL, NULL, &ws);
    assert_true(pid >= 0);
    if (pid == 0) {
        /* a terminal user's Ctrl-C, even when the tests run as a background job (a shell starts
           those with SIGINT ignored, and exec keeps it ignored) */
        signal(SIGINT, SIG_DFL);
        execl(bin, bin, "chat", "-m", g_dream, "--max-new-tokens", "6", "--system", "S", "-t", "1",
              "--delay", "400", (char *)NULL);
        _exit(127);
    }
    assert_int_equal(pty_expect(&t, "> "), 0);
    assert_true(write(t.fd, "hi\r", 3) == 3);
    assert_int_equal(pty_expect(&t, "[step 1/6] "), 0);
    assert_int_equal(strncmp(t.buf + t.mark, "\xe2\x96\x91", 3), 0); /* masked positions */
    assert_true(write(t.fd, "\x03", 1) == 1); /* Ctrl-C: the reply stops */
    assert_int_equal(pty_expect(&t, "[reply cancelled]"), 0);
    assert_null(strstr(t.buf, "[step 2/6]")); /* within the step */
    assert_int_equal(pty_expect(&t, "> "), 0);
    const size_t turn = t.mark;
    assert_true(write(t.fd, "hi\r", 3) == 3); /* the same message again, answered */
    assert_int_equal(pty_expect(&t, "[step 2/6]"), 0);
    assert_int_equal(pty_expect(&t, " forwards, "), 0);
    assert_int_equal(pty_expect(&t, "> "), 0);
    /* the reply: after the last erased frame, up to the statistics line */
    char *reply = t.buf + turn, *erase, *stats = strstr(reply, "\r\n\x1b[2m(");
    assert_non_null(stats);
    *stats = 0;
    while ((erase = strstr(reply, "\r\x1b[J"))) reply = erase + 4;
    for (char *cr; (cr = strstr(reply, "\r\n"));) memmove(cr, cr + 1, strlen(cr)); /* ONLCR */
    printf("  terminal reply \"%s\", piped \"%s\"\n", reply, piped);
    assert_true(strlen(piped) == strlen(reply) + 1 && !strncmp(piped, reply, strlen(reply)));
    assert_true(write(t.fd, "\x03", 1) == 1); /* Ctrl-C at the prompt: the end */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 130);
    close(t.fd);
    free(t.buf);
    free(piped);
}

/* The prompt from a file (-f), from standard input (-p -, or redirected without -p) equals -p. */
static void test_prompt_sources(void **state) {
    (void)state;
    char path[128], *a, *b;
    snprintf(path, sizeof path, "%s/prompt.txt", g_tmp);
    write_text(path, "Hello\nthere\n");
    const char *flags = "--max-new-tokens 8 --alg entropy -q -t 1";
    assert_int_equal(tu_run(&a, "generate -m %s %s -p \"$(printf 'Hello\\nthere')\"", g_dream, flags), 0);
    const char *forms[] = {"-f %s", "-p - < %s", "< %s", "-f - < %s"};
    for (int i = 0; i < 4; i++) {
        char form[160], args[400];
        snprintf(form, sizeof form, forms[i], path);
        snprintf(args, sizeof args, "generate -m %s %s %s", g_dream, flags, form);
        assert_int_equal(tu_run(&b, "%s", args), 0);
        printf("  %s: \"%s\"\n", form, b);
        assert_string_equal(a, b);
        free(b);
    }
    free(a);
    /* an empty redirected standard input is no prompt */
    assert_int_equal(tu_run(&a, "generate -m %s %s", g_dream, flags), 0);
    assert_int_equal(tu_run(&b, "generate -m %s %s < /dev/null", g_dream, flags), 0);
    assert_string_equal(a, b);
    free(b);
    snprintf(path, sizeof path, "%s/empty", g_tmp);
    write_text(path, "");
    assert_int_equal(tu_run(&b, "generate -m %s %s < %s", g_dream, flags, path), 0);
    assert_string_equal(a, b);
    free(a), free(b);
}

static void test_bad_flags(void **state) {
    (void)state;
    enum { N = 35 };
    static char args[N][320];
    char nul[128];
    snprintf(nul, sizeof nul, "%s/nul.txt", g_tmp);
    FILE *f = fopen(nul, "w");
    assert_non_null(f);
    fwrite("ab\0c\n", 1, 5, f);
    fclose(f);
    snprintf(nul, sizeof nul, "%s/hello.txt", g_tmp);
    write_text(nul, "hello\n");
    const char *words[N];
    int n = 0;
#define CASE(word, ...) (snprintf(args[n], sizeof args[n], __VA_ARGS__), words[n++] = (word))
    CASE("unknown algorithm", "generate -m %s --alg greedy", g_dream);
    CASE("--sampler applies to MDLM", "generate -m %s --sampler ddpm", g_dream);
    CASE("--num-strides applies to MDLM", "generate -m %s --num-strides 2", g_dream);
    CASE("--len applies to MDLM", "generate -m %s --len 32", g_llada);
    CASE("--alg applies to Dream", "generate -m %s --alg entropy --max-new-tokens 32", g_llada);
    CASE("needs a confidence algorithm", "generate -m %s --block-length 8 --max-new-tokens 16", g_dream);
    CASE("--remasking applies to LLaDA", "generate -m %s --remasking random", g_dream);
    CASE("--alg applies to Dream/LLaDA", "generate -m %s --alg entropy", tu_fixture("tiny"));
    CASE("--chat applies to Dream/LLaDA", "generate -m models/demo -p x --chat");
    CASE("exceeds the model's length", "generate -m %s --max-new-tokens 65", g_dream);
    CASE("exceeds the model's length", "generate -m %s -p Hi --chat --max-new-tokens 40", g_dream);
    CASE("--system needs --chat", "generate -m %s -p x --system y", g_dream);
    CASE("--chat needs -p", "generate -m %s --chat", g_dream);
    CASE("only quantisation is q8", "generate -m %s --quant q4", g_dream);
    CASE("not both", "generate -m %s --steps 4 --tokens-per-step 2", g_dream);
    CASE("unknown remasking", "generate -m %s --remasking lowest --max-new-tokens 32", g_llada);
    CASE("must divide", "generate -m %s --max-new-tokens 20", g_llada);
    CASE("threshold decoding needs", "generate -m %s --threshold 0.9 --max-new-tokens 16", g_dream);
    CASE("mask id", "generate -m %s -p \"<|mask|>\" --allow-special --max-new-tokens 8", g_dream);
    CASE("--temperature", "generate -m %s --temperature -1", g_dream);
    CASE("--sm-scale", "generate -m %s --sm-scale 3", g_dream);
    CASE("--cfg-scale applies to LLaDA", "generate -m %s --cfg-scale 1", g_dream);
    CASE("--logits-eos-inf applies to LLaDA", "generate -m %s --logits-eos-inf", g_dream);
    CASE("without soft-masking", "generate -m %s --cfg-scale 1 --sm-scale 0.5 --max-new-tokens 32",
         g_llada);
    CASE("<|endoftext|>", "generate -m %s --logits-eos-inf --max-new-tokens 32",
         tu_fixture("tiny-llada"));
    CASE("cannot open '/nonexistent'", "generate -m %s -f /nonexistent", g_dream);
    CASE("not both", "generate -m %s -p x -f /dev/null", g_dream);
    CASE("NUL byte (offset 2)", "generate -m %s -p - < %s/nul.txt", g_dream, g_tmp);
    CASE("not a regular file", "generate -m %s -f %s", g_dream, g_tmp);
    CASE("MDLM model, which has no chat template", "chat -m models/demo");
    CASE("exceeds the model's length", "chat -m %s --max-new-tokens 60 < %s/hello.txt", g_dream, g_tmp);
    CASE("line 1 holds a NUL byte", "chat -m %s < %s/nul.txt", g_dream, g_tmp);
    CASE("--block-length 5 must divide --max-new-tokens 16", "chat -m %s --block-length 5 --max-new-tokens 16", g_dream);
    CASE("must divide", "chat -m %s --max-new-tokens 20", g_llada);
    CASE("only quantisation is q8", "chat -m %s --quant q4", g_dream);
#undef CASE
    assert_int_equal(n, N);
    tu_expect_cli_errors(args[0], sizeof args[0], words, n);
}

/* ---- the public API -------------------------------------------------------------------- */

static void test_api(void **state) {
    (void)state;
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = 1;
    smdlm_model *model = smdlm_model_load(g_dream, &lp);
    assert_non_null(model);
    smdlm_state *st_api = smdlm_state_new(model);
    assert_int_equal(smdlm_vocab_size(model), 300);
    assert_int_equal(smdlm_mask_id(model), 297);
    assert_int_equal(smdlm_max_length(model), 64);
    /* raw logits against PyTorch (tests/gen_dream_fixtures.py), before the shift */
    int64_t shape[4];
    int nd;
    size_t n, nl;
    int32_t *ids = tu_load_i32(tu_fixture("tiny-dream/ids.npy"), &n, shape, &nd);
    float *ref = tu_load_f32(tu_fixture("tiny-dream/logits.npy"), &nl);
    float *got = sm_malloc(sizeof(float) * nl);
    assert_int_equal(smdlm_forward(st_api, ids, (int)shape[0], (int)shape[1], NULL, got), 0);
    assert_int_equal(tu_compare_f32("smdlm_forward Dream", got, ref, nl, 1e-4f, 1e-4f), 0);
    float t[2] = {0.5f, 0.5f};
    assert_int_equal(smdlm_forward(st_api, ids, (int)shape[0], (int)shape[1], t, got), -1);
    assert_non_null(strstr(smdlm_last_error(), "diffusion time"));
    free(ids), free(ref), free(got);

    /* smdlm_generate = the CLI's completion, plain and chat */
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.decoder.max_new_tokens = 16;
    gp.steps = 8;
    gp.decoder.alg = "entropy";
    gp.seed = 2;
    smdlm_result r;
    assert_int_equal(smdlm_generate(st_api, "Hello the world", &gp, &r), 0);
    char a[512];
    snprintf(a, sizeof a, "-m %s -p \"Hello the world\" --max-new-tokens 16 --steps 8 --alg entropy "
                          "--seed 2", g_dream);
    cJSON *rows = cli_jsonl(a);
    assert_string_equal(r.text[0], cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "text")->valuestring);
    cJSON_Delete(rows);
    smdlm_result_free(&r);
    gp.chat = 1;
    gp.system = "Be";
    gp.decoder.max_new_tokens = 8;
    gp.steps = 8;
    assert_int_equal(smdlm_generate(st_api, "Hi", &gp, &r), 0);
    snprintf(a, sizeof a, "-m %s -p Hi --chat --system Be --max-new-tokens 8 --alg entropy --seed 2",
             g_dream);
    rows = cli_jsonl(a);
    assert_string_equal(r.text[0], cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "text")->valuestring);
    cJSON_Delete(rows);
    /* the same conversation as messages: the same ids and reply */
    smdlm_chat_message conv[2] = {{"system", "Be"}, {"user", "Hi"}};
    smdlm_result rc;
    assert_int_equal(smdlm_generate_chat(st_api, conv, 2, &gp, &rc), 0);
    assert_int_equal(rc.prompt_len, r.prompt_len);
    assert_int_equal(tu_compare_i32("smdlm_generate_chat", rc.ids, r.ids, (size_t)r.T), 0);
    assert_string_equal(rc.text[0], r.text[0]);
    smdlm_result_free(&rc);
    int32_t *cids;
    size_t cn;
    assert_int_equal(smdlm_chat_tokenize(model, conv, 2, 0, &cids, &cn), 0);
    assert_int_equal(cn, (size_t)r.prompt_len);
    assert_int_equal(tu_compare_i32("smdlm_chat_tokenize", cids, r.ids, cn), 0);
    free(cids);
    conv[1].role = "tool";
    assert_int_equal(smdlm_generate_chat(st_api, conv, 2, &gp, &rc), -1);
    assert_non_null(strstr(smdlm_last_error(), "unsupported role 'tool'"));
    smdlm_result_free(&rc);
    assert_int_equal(smdlm_eos_id(model), 290);
    smdlm_result_free(&r);

    /* ids in, canvas out: the same tokens as the decoder */
    gp = smdlm_gen_default_params();
    gp.decoder.alg = "maskgit_plus";
    gp.steps = 6;
    int32_t x[18];
    uint8_t fixed[18] = {1, 1, 1};
    for (int i = 0; i < 18; i++) x[i] = i < 3 ? 72 + i : 297;
    assert_int_equal(smdlm_generate_ids(st_api, x, fixed, 18, &gp, &r), 0);
    model_dir md;
    assert_int_equal(model_dir_load_any(&md, g_dream, 2), 0);
    lib_case c = {.style = DECODER_DREAM, .alg = "maskgit_plus", .gen_len = 15, .steps = 6};
    int32_t *y;
    int gen;
    decoder_stats st;
    lib_decode(&md, &c, x, 3, &y, &gen, &st);
    assert_int_equal(tu_compare_i32("smdlm_generate_ids", r.ids, y, 3 + (size_t)gen), 0);
    smdlm_result_free(&r);
    free(y);
    model_dir_free(&md);
    fixed[5] = 1; /* infilling: Dream keeps a fixed token after the prompt */
    assert_int_equal(smdlm_generate_ids(st_api, x, fixed, 18, &gp, &r), -1);
    assert_non_null(strstr(smdlm_last_error(), "fixed token 297"));
    x[5] = 80;
    assert_int_equal(smdlm_generate_ids(st_api, x, fixed, 18, &gp, &r), 0);
    assert_int_equal(r.ids[5], 80);
    smdlm_result_free(&r);
    gp.decoder.alg = "bogus";
    assert_int_equal(smdlm_generate(st_api, "Hi", &gp, &r), -1);
    assert_non_null(strstr(smdlm_last_error(), "bogus"));
    gp = smdlm_gen_default_params();
    gp.decoder.max_new_tokens = 100;
    assert_int_equal(smdlm_generate(st_api, "Hi", &gp, &r), -1);
    assert_non_null(strstr(smdlm_last_error(), "exceeds"));
    smdlm_state_free(st_api);
    smdlm_model_free(model);

    /* LLaDA through the API, q8, and a bad quantisation name */
    lp.quant = "q8";
    model = smdlm_model_load(g_llada, &lp);
    assert_non_null(model);
    st_api = smdlm_state_new(model);
    assert_int_equal(smdlm_vocab_size(model), 320);
    gp = smdlm_gen_default_params();
    gp.decoder.max_new_tokens = 16;
    gp.decoder.block_length = 8;
    gp.steps = 8;
    assert_int_equal(smdlm_generate(st_api, "Hello", &gp, &r), 0);
    printf("  LLaDA q8: \"%s\"\n", r.text[0]);
    smdlm_result_free(&r);
    assert_int_equal(smdlm_generate_ids(st_api, x, fixed, 18, &gp, &r), -1); /* no infilling */
    assert_non_null(strstr(smdlm_last_error(), "LLaDA"));
    smdlm_state_free(st_api);
    smdlm_model_free(model);
    lp.quant = "q4";
    assert_null(smdlm_model_load(g_llada, &lp));
    assert_non_null(strstr(smdlm_last_error(), "q8"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_cases),
        cmocka_unit_test(test_cli_matches_decoder),
        cmocka_unit_test(test_soft_masking),
        cmocka_unit_test(test_chat_and_plain_prompts),
        cmocka_unit_test(test_mdlm_plain_prompt),
        cmocka_unit_test(test_visual),
        cmocka_unit_test(test_chat_matches_generate),
        cmocka_unit_test(test_chat_terminal),
        cmocka_unit_test(test_prompt_sources),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_api),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
