/* test_hostile.c — inputs that used to crash, hang or exhaust the machine (NOTES.md, "Files and
 * memory"): non-finite weights and logits, FIFOs where files are expected, JSON objects with
 * very many keys, sizes from files and flags beyond the available memory. Each case must end
 * with a clear error (exit status 1 from the program, −1 / SMDLM_ERROR from the libraries) —
 * never an assertion, an abort or a wait without end. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smdlm.h"

#include "base/jsonutil.h"
#include "base/siphash.h"
#include "base/util.h"
#include "formats/npy.h"
#include "formats/safetensors.h"
#include "models/model.h"
#include "server/request.h"
#include "testutil.h"
#include "train/data.h"

static char g_tmp[64];

static int setup(void **state) { return tu_tmpdir_make(g_tmp, sizeof g_tmp, "hostile"); }
static int teardown(void **state) { return tu_tmpdir_remove(g_tmp); }

/* g_tmp/name in a static buffer. */
static const char *tmp_path(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    return path;
}

/* The regular files of the fixture directory src (not its subdirectories) into g_tmp/name. */
static const char *copy_fixture(const char *src, const char *name) {
    static char dst[256];
    snprintf(dst, sizeof dst, "%s/%s", g_tmp, name);
    assert_int_equal(sm_mkdir_p(dst), 0);
    DIR *d = opendir(src);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char *from = sm_path_join(src, e->d_name), *to = sm_path_join(dst, e->d_name), *data;
        struct stat st;
        size_t len;
        if (stat(from, &st) == 0 && S_ISREG(st.st_mode)) {
            assert_int_equal(sm_read_file(from, (size_t)1 << 30, &data, &len), 0);
            assert_int_equal(sm_write_file_atomic(to, data, len), 0);
            free(data);
        }
        free(from);
        free(to);
    }
    closedir(d);
    return dst;
}

/* Element `index` of the F32 tensor `name` in the model directory dir (single file or shards)
 * overwritten with value, in place. */
static void patch_weight(const char *dir, const char *name, size_t index, float value) {
    st_archive a;
    assert_int_equal(st_open_dir(&a, dir), 0);
    const st_tensor *t = st_find(&a, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_true(index < t->numel);
    const st_file *f = &a.files[t->file_index];
    char *path = sm_strdup(f->path);
    const off_t off = (off_t)(t->data - (const uint8_t *)f->map) + (off_t)(4 * index);
    st_close(&a);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &value, 4, off), 4);
    close(fd);
    free(path);
}

/* Replaces the file dir/name by a FIFO that no one writes. */
static void make_fifo(const char *dir, const char *name) {
    char *path = sm_path_join(dir, name);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    free(path);
}

/* `smdlm ARGS` must exit with status 1 and print every word (never abort: 134). */
static void expect_cli_error(const char *args, const char *const *words) {
    char *out;
    int st = tu_run(&out, "%s", args);
    printf("  smdlm %s\n    -> exit %d: %s", args, st, out);
    assert_int_equal(st, 1);
    for (const char *const *w = words; *w; w++)
        if (!strstr(out, *w)) fail_msg("the message lacks '%s'", *w);
    free(out);
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- item 6: NaN and infinite weights ------------------------------------------------- */

static void test_nonfinite_mdlm(void **state) {
    char dir[256], args[512];
    snprintf(dir, sizeof dir, "%s", copy_fixture(FIXTURES_DIR "/tiny", "nan-mdlm"));
    patch_weight(dir, "backbone.output_layer.linear.bias", 5, NAN);
    const char *samplers[] = {"ddpm", "ddpm_cache", "remdm-cap", "remdm-loop"};
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "generate -m %s --steps 4 -n 2 --sampler %s -q", dir, samplers[i]);
        expect_cli_error(args, W("step 1 of 4", dir, "NaN or infinite logits", "64 positions",
                                 "0:0, 0:1"));
    }
    snprintf(args, sizeof args, "generate -m %s --steps 4 --sm-scale 0.5 --top-p 0.9 -q", dir);
    expect_cli_error(args, W("step 1 of 4", "NaN or infinite logits"));
    /* an infinity does the same */
    patch_weight(dir, "backbone.output_layer.linear.bias", 5, -INFINITY);
    snprintf(args, sizeof args, "generate -m %s --steps 4 -q", dir);
    expect_cli_error(args, W("step 1 of 4", "NaN or infinite logits"));
    /* --check-weights names the tensor and the element at load */
    snprintf(args, sizeof args, "generate -m %s --steps 4 --check-weights -q", dir);
    expect_cli_error(args, W("backbone.output_layer.linear.bias", "-infinity", "[5]",
                             "element 5 of 67"));
    snprintf(args, sizeof args, "generate -m " FIXTURES_DIR "/tiny --steps 2 --check-weights -q");
    char *out;
    assert_int_equal(tu_run(&out, "%s", args), 0);
    free(out);
}

static void test_nonfinite_decoders(void **state) {
    char dir[256], args[512];
    snprintf(dir, sizeof dir, "%s", copy_fixture(FIXTURES_DIR "/tiny-dream", "inf-dream"));
    patch_weight(dir, "lm_head.weight", 64 * 7, INFINITY); /* token 7's row */
    const char *algs[] = {"origin", "maskgit_plus", "topk_margin", "entropy"};
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "generate -m %s --max-new-tokens 8 --alg %s --temperature 0.5 "
                 "-q", dir, algs[i]);
        expect_cli_error(args, W("step 1 of 8", "NaN or infinite logits", "0:0"));
    }
    snprintf(args, sizeof args, "generate -m %s --max-new-tokens 8 --check-weights -q", dir);
    expect_cli_error(args, W("lm_head.weight", "+infinity", "[7, 0]"));
    /* a temperature that divides finite logits beyond the float range */
    snprintf(args, sizeof args, "generate -m " FIXTURES_DIR "/tiny-dream --max-new-tokens 8 "
             "--temperature 1e-38 -q");
    expect_cli_error(args, W("step 1 of 8", "temperature 1e-38", "beyond the float range"));
}

/* smdlm_generate on the model directory dir (4 steps, defaults otherwise) must return
 * SMDLM_ERROR with every word in the message. */
static void expect_api_error(const char *dir, const char *const *words) {
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = 2;
    smdlm_model *model = smdlm_model_load(dir, &lp);
    assert_non_null(model);
    smdlm_state *st = smdlm_state_new(model);
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.steps = 4;
    smdlm_result r;
    tu_expect_error(smdlm_generate(st, NULL, &gp, &r) == SMDLM_ERROR ? -1 : 0, "smdlm_generate",
                    words);
    smdlm_state_free(st);
    smdlm_model_free(model);
}

/* The public API reports the same through SMDLM_ERROR, and check_weights at load. */
static void test_nonfinite_api(void **state) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s", copy_fixture(FIXTURES_DIR "/tiny", "nan-api"));
    patch_weight(dir, "backbone.blocks.1.mlp.2.bias", 3, NAN);
    expect_api_error(dir, W("step 1 of 4", "NaN or infinite logits"));
    smdlm_load_params lp = smdlm_load_default_params();
    lp.check_weights = 1;
    assert_null(smdlm_model_load(dir, &lp));
    printf("  %s\n", smdlm_last_error());
    assert_non_null(strstr(smdlm_last_error(), "backbone.blocks.1.mlp.2.bias"));
    assert_non_null(strstr(smdlm_last_error(), "NaN at index [3]"));
}

/* ---- item 7: FIFOs and other files that are not regular -------------------------------- */

/* fn(arg) in a child process that SIGALRM ends after 20 s: it must return −1 with an error
 * naming a file that is not regular. A call that waits on the FIFO fails the test (instead of
 * blocking the suite). */
static void expect_not_regular(const char *what, int (*fn)(const char *), const char *arg) {
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        int rc = fn(arg);
        printf("  %s: %s\n", what, rc ? smdlm_last_error() : "no error");
        fflush(stdout);
        _exit(rc != 0 && strstr(smdlm_last_error(), "is not a regular file") ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) fail_msg("%s: %s (signal %d)", what,
                                      WTERMSIG(status) == SIGALRM ? "waits on the FIFO" : "crashed",
                                      WTERMSIG(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int load_model(const char *dir) {
    model_dir md;
    int rc = model_dir_load_any(&md, dir, 1);
    if (rc == 0) model_dir_free(&md);
    return rc;
}

static int open_train_shards(const char *dir) {
    shard_set s;
    int rc = shards_open(&s, dir, "train");
    if (rc == 0) shards_close(&s);
    return rc;
}

static int read_npy(const char *path) {
    npy_array a;
    int rc = npy_read(path, &a);
    if (rc == 0) npy_free(&a);
    return rc;
}

static int load_sm_config(const char *path) {
    smdlm_softmask sm = smdlm_softmask_default();
    return smdlm_softmask_load(path, &sm);
}

static void test_fifo_model_files(void **state) {
    const char *dir = copy_fixture(FIXTURES_DIR "/tiny", "fifo-config");
    make_fifo(dir, "config.json");
    expect_not_regular("config.json", load_model, dir);
    dir = copy_fixture(FIXTURES_DIR "/tiny", "fifo-sm");
    make_fifo(dir, "transparency_config.json"); /* an optional file: not skipped either */
    expect_not_regular("transparency_config.json", load_model, dir);
    dir = copy_fixture(FIXTURES_DIR "/tiny", "fifo-weights");
    make_fifo(dir, "model.safetensors");
    expect_not_regular("model.safetensors", load_model, dir);
    dir = copy_fixture(FIXTURES_DIR "/tiny-sharded", "fifo-shard");
    make_fifo(dir, "model-00002-of-00002.safetensors");
    expect_not_regular("a shard of the index", load_model, dir);
    dir = copy_fixture(FIXTURES_DIR "/tiny-sharded", "fifo-index");
    make_fifo(dir, "model.safetensors.index.json");
    expect_not_regular("model.safetensors.index.json", load_model, dir);
    dir = copy_fixture(FIXTURES_DIR "/tiny-dream", "fifo-tokenizer");
    char *tok = sm_path_join(FIXTURES_DIR "/tiny-dream-tokenizer", "tokenizer_config.json");
    char *text;
    size_t len;
    assert_int_equal(sm_read_file(tok, 1 << 20, &text, &len), 0);
    char *to = sm_path_join(dir, "tokenizer_config.json");
    assert_int_equal(sm_write_file_atomic(to, text, len), 0);
    free(tok), free(text), free(to);
    make_fifo(dir, "tokenizer.json");
    expect_not_regular("tokenizer.json", load_model, dir);
}

static void test_fifo_other_inputs(void **state) {
    /* a prepared data directory: meta.json, then a token shard */
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp_path("fifo-data"));
    assert_int_equal(sm_mkdir_p(dir), 0);
    make_fifo(dir, "meta.json");
    expect_not_regular("meta.json", open_train_shards, dir);
    static const char meta[] =
        "{\"format\": \"smdlm-tokens\", \"version\": 1, \"vocab_size\": 67, \"block_len\": 8, "
        "\"token_bytes\": 2, \"train\": {\"blocks\": 1, \"files\": [{\"name\": \"train-0.bin\", "
        "\"blocks\": 1}]}, \"val\": {\"blocks\": 0, \"files\": []}}";
    char *path = sm_path_join(dir, "meta.json");
    unlink(path);
    assert_int_equal(sm_write_file_atomic(path, meta, sizeof meta - 1), 0);
    free(path);
    make_fifo(dir, "train-0.bin");
    expect_not_regular("a token shard", open_train_shards, dir);
    /* an .npy (forward --ids, --feedback) and a soft-masking file (--sm-config) */
    make_fifo(g_tmp, "ids.npy");
    expect_not_regular("ids.npy", read_npy, tmp_path("ids.npy"));
    make_fifo(g_tmp, "sm.json");
    expect_not_regular("--sm-config", load_sm_config, tmp_path("sm.json"));
    /* a device is refused by name, before it is opened */
    expect_not_regular("/dev/zero", read_npy, "/dev/zero");
}

/* ---- item 8: JSON objects with very many keys ----------------------------------------- */

/* {"model_type": "mdlm", "0": 0, "1": 0, …} with n more keys (hexadecimal names), NUL-ended. */
static char *many_keys(int n) {
    sm_buf b = {0};
    sm_buf_str(&b, "{\"model_type\": \"mdlm\"");
    for (int i = 0; i < n; i++) sm_buf_printf(&b, ",\"%x\":0", i);
    sm_buf_str(&b, "}");
    return b.s;
}

static void test_many_keys_linear(void **state) {
    /* 200k keys: comparing every pair took 80 s here (20 s for 96k); one pass, a fraction of
     * a second */
    char *text = many_keys(200000);
    double t0 = sm_time_sec();
    cJSON *o = json_parse_object(text, "many.json");
    const double dt = sm_time_sec() - t0;
    printf("  200000 keys parsed and checked in %.3f s\n", dt);
    assert_non_null(o);
    cJSON_Delete(o);
    free(text);
    assert_true(dt < 10.0);
    /* 96k keys (0.9 MB) in a model directory's config.json (read and parsed once; a minute
     * before) */
    text = many_keys(96000);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp_path("many-keys"));
    assert_int_equal(sm_mkdir_p(dir), 0);
    char *path = sm_path_join(dir, "config.json");
    assert_int_equal(sm_write_file_atomic(path, text, strlen(text)), 0);
    t0 = sm_time_sec();
    model_dir md;
    tu_expect_error(model_dir_load_any(&md, dir, 0), "config.json with 96k keys",
                    W("missing integer \"vocab_size\""));
    assert_true(sm_time_sec() - t0 < 10.0);
    free(path);
    free(text);
}

static void test_duplicate_key_named(void **state) {
    /* the earliest key that occurs again is named, as comparing every pair did */
    tu_expect_error(json_parse_object("{\"x\": 1, \"y\": 2, \"y\": 3, \"x\": 4}", "dup.json") ? 0 : -1,
                    "two duplicates", W("dup.json", "duplicate key \"x\""));
    tu_expect_error(json_parse_object("{\"a\": 1, \"b\": 2, \"c\": 3, \"b\": 4}", "dup.json") ? 0 : -1,
                    "one duplicate", W("duplicate key \"b\""));
    /* many keys, the duplicate at the end */
    sm_buf b = {0};
    sm_buf_str(&b, "{");
    for (int i = 0; i < 50000; i++) sm_buf_printf(&b, "%s\"%x\":0", i ? "," : "", i);
    sm_buf_str(&b, ",\"7\":2}");
    tu_expect_error(json_parse_object(b.s, "big.json") ? 0 : -1, "a late duplicate",
                    W("duplicate key \"7\""));
    free(b.s);
}

static void test_siphash_vectors(void **state) {
    /* the paper's key 00 01 … 0f over the messages 00 01 … (its appendix and reference
     * vectors): the empty message, one byte, 15 bytes */
    const uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
    uint8_t m[15];
    for (int i = 0; i < 15; i++) m[i] = (uint8_t)i;
    assert_int_equal(siphash24(k0, k1, m, 0), 0x726fdb47dd0e0e31ull);
    assert_int_equal(siphash24(k0, k1, m, 1), 0x74f839c593dc67fdull);
    assert_int_equal(siphash24(k0, k1, m, 15), 0xa129ca6149be45e5ull);
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define COLLIDE_BITS 20

static uint64_t fnv1a_step(uint64_t h, uint8_t c) { return (h ^ c) * FNV_PRIME; }

/* n distinct 9-character keys whose unseeded FNV-1a hashes agree in their low 20 bits (the
 * slot of any table of up to 2^20 slots), written as the JSON object {"key": 0, …}. The low
 * bits of FNV-1a depend only on the low bits of its state, and the last two characters b, c
 * take the state s to ((s ^ b)·P ^ c)·P, which is 0 exactly when s = c·P⁻¹ ^ b: a table of
 * those states meets the states after "%05x" and two free characters in the middle. */
static char *fnv_colliding_keys(int n) {
    const uint64_t mask = ((uint64_t)1 << COLLIDE_BITS) - 1;
    uint64_t inverse = FNV_PRIME; /* P⁻¹ mod 2^64 by Newton's iteration */
    for (int i = 0; i < 6; i++) inverse *= 2 - FNV_PRIME * inverse;
    char chars[96];
    int n_chars = 0;
    for (int c = '!'; c <= '~'; c++)
        if (c != '"' && c != '\\') chars[n_chars++] = (char)c;
    int32_t *last_two = sm_malloc(sizeof(int32_t) << COLLIDE_BITS); /* state → b·256 + c */
    for (uint64_t i = 0; i <= mask; i++) last_two[i] = -1;
    for (int b = 0; b < n_chars; b++)
        for (int c = 0; c < n_chars; c++)
            last_two[((uint8_t)chars[c] * inverse ^ (uint8_t)chars[b]) & mask] =
                (uint8_t)chars[b] << 8 | (uint8_t)chars[c];
    sm_buf json = {0};
    sm_buf_str(&json, "{");
    for (int k = 0; k < n; k++) {
        char key[10];
        snprintf(key, sizeof key, "%05x", k);
        uint64_t h = FNV_OFFSET;
        for (int i = 0; i < 5; i++) h = fnv1a_step(h, (uint8_t)key[i]);
        int found = 0;
        for (int x = 0; x < n_chars && !found; x++)
            for (int y = 0; y < n_chars && !found; y++) {
                const int32_t bc = last_two[fnv1a_step(fnv1a_step(h, (uint8_t)chars[x]),
                                                       (uint8_t)chars[y]) & mask];
                if (bc < 0) continue;
                key[5] = chars[x], key[6] = chars[y], key[7] = (char)(bc >> 8);
                key[8] = (char)(bc & 0xff), key[9] = 0;
                found = 1;
            }
        assert_true(found);
        uint64_t check = FNV_OFFSET;
        for (int i = 0; i < 9; i++) check = fnv1a_step(check, (uint8_t)key[i]);
        assert_int_equal(check & mask, 0);
        sm_buf_printf(&json, "%s\"%s\":0", k ? "," : "", key);
    }
    sm_buf_str(&json, "}");
    free(last_two);
    return json.s;
}

static void test_colliding_keys_linear(void **state) {
    /* 96k keys in one slot of the unseeded FNV-1a table: 4.6·10^9 key comparisons for it; under
     * the process's random key they spread over the slots */
    const int n = 96000;
    char *text = fnv_colliding_keys(n);
    double t0 = sm_time_sec();
    cJSON *o = json_parse_object(text, "collide.json");
    const double dt = sm_time_sec() - t0;
    assert_non_null(o);
    int slots_used = 0;
    const size_t slots = (size_t)1 << 18; /* the table's size for 96k keys */
    uint8_t *used = sm_calloc(slots, 1);
    for (const cJSON *a = o->child; a; a = a->next) {
        const size_t i = (size_t)sm_keyed_hash(a->string) & (slots - 1);
        slots_used += !used[i];
        used[i] = 1;
    }
    printf("  %d keys colliding for FNV-1a: parsed and checked in %.3f s, %d slots of %zu\n", n,
           dt, slots_used, slots);
    assert_true(slots_used > n / 2);
    assert_true(dt < 5.0);
    free(used);
    cJSON_Delete(o);
    free(text);
}

/* ---- item 9: sizes from files and flags beyond the available memory -------------------- */

/* A copy of the tiny model (g_tmp/name) that claims a canvas of 2^20 positions. */
static const char *long_context_model(const char *name) {
    const char *dir = copy_fixture(FIXTURES_DIR "/tiny", name);
    char *path = sm_path_join(dir, "config.json"), *text;
    size_t len;
    assert_int_equal(sm_read_file(path, 1 << 20, &text, &len), 0);
    char *at = strstr(text, "\"model_length\": 32");
    assert_non_null(at);
    sm_buf b = {0};
    sm_buf_add(&b, text, (size_t)(at - text));
    sm_buf_printf(&b, "\"model_length\": 1048576%s", at + strlen("\"model_length\": 32"));
    assert_int_equal(sm_write_file_atomic(path, b.s, b.len), 0);
    free(b.s), free(text), free(path);
    return dir;
}

static void test_sizes_beyond_memory(void **state) {
    /* a tiny model that claims a canvas of 2^20 positions: its attention alone needs terabytes */
    const char *dir = long_context_model("long");
    char args[1024];
    snprintf(args, sizeof args, "generate -m %s --steps 2 -q", dir);
    expect_cli_error(args, W("1048576 positions", "GiB", "of memory are available"));
    /* forward: ids [1, 2^20] on the same model */
    int32_t *ids = sm_calloc((size_t)1 << 20, sizeof(int32_t));
    const int64_t shape[2] = {1, 1 << 20};
    assert_int_equal(npy_write(tmp_path("long-ids.npy"), NPY_I4, 2, shape, ids), 0);
    free(ids);
    snprintf(args, sizeof args, "forward -m %s --ids %s/long-ids.npy -o %s/long-out.npy", dir,
             g_tmp, g_tmp);
    expect_cli_error(args, W("1 × 1048576 positions", "of memory are available"));
    /* the public API, the same request */
    expect_api_error(dir, W("1048576 positions", "of memory are available"));
}

/* A server request whose canvas is 1000 mask segments of the context's length each (17 KB of
 * JSON): the canvas stops at the second segment with a 400 instead of growing to 10^9
 * positions. Parsed in a child whose address space is limited to 1 GiB more than it holds. */
static void test_canvas_beyond_context(void **state) {
    smdlm_load_params lp = smdlm_load_default_params();
    smdlm_model *model = smdlm_model_load(long_context_model("long-canvas"), &lp);
    assert_non_null(model);
    sm_buf body = {0};
    sm_buf_str(&body, "{\"canvas\":[{\"mask\":1048576}");
    for (int i = 1; i < 1000; i++) sm_buf_str(&body, ",{\"mask\":1048576}");
    sm_buf_str(&body, "]}");
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1) _exit(2);
        fclose(f);
        const rlim_t limit = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)1 << 30);
        const struct rlimit rl = {limit, limit};
        if (setrlimit(RLIMIT_AS, &rl)) _exit(2);
        srv_request req;
        srv_error e;
        if (request_parse(model, ROUTE_COMPLETIONS, body.s, body.len, &req, &e) == 0) _exit(3);
        printf("  %d %s (%s): %s\n", e.status, e.code ? e.code : "null", e.param, e.message);
        fflush(stdout);
        _exit(e.status == 400 && e.code && !strcmp(e.code, "context_length_exceeded") &&
                      !strcmp(e.param, "canvas") && strstr(e.message, "2097152 tokens")
                  ? 0
                  : 4);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        fail_msg("the request ended with %s %d", WIFEXITED(st) ? "exit status" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    free(body.s);
    smdlm_model_free(model);
}

static void test_memory_check(void **state) {
    const size_t avail = sm_memory_available();
    printf("  available: %.1f GiB\n", (double)avail / (1 << 30));
    assert_true(avail > 0);
    assert_int_equal(SM_CHECK_MEMORY(1 << 20, "a megabyte"), 0);
    tu_expect_error(SM_CHECK_MEMORY(sm_size_mul(SIZE_MAX / 2, 3), "an overflow"), "overflow",
                    W("an overflow needs more than 16 EiB", "available"));
    assert_int_equal(sm_size_add(SIZE_MAX - 1, 2), SIZE_MAX);
    assert_int_equal(sm_size_align(SIZE_MAX - 3, 16), SIZE_MAX);
    assert_int_equal(sm_size_align(17, 16), 32);
}

int main(void) {
    /* the FIFO cases first: they fork, and a child must not inherit a running OpenMP pool */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_model_files),
        cmocka_unit_test(test_fifo_other_inputs),
        cmocka_unit_test(test_many_keys_linear),
        cmocka_unit_test(test_duplicate_key_named),
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_colliding_keys_linear),
        cmocka_unit_test(test_nonfinite_mdlm),
        cmocka_unit_test(test_nonfinite_decoders),
        cmocka_unit_test(test_nonfinite_api),
        cmocka_unit_test(test_sizes_beyond_memory),
        cmocka_unit_test(test_canvas_beyond_context),
        cmocka_unit_test(test_memory_check),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
