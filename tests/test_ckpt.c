/* test_ckpt.c — PyTorch / Lightning checkpoints (tests/gen_ckpt_fixtures.py): the restricted
 * unpickler on crafted pickles, `convert` of a Lightning-style checkpoint (EMA weights, raw
 * weights, a bare state dict) against the tensors the fixture script expects, and checkpoints
 * that reference other globals (os.system, eval, getattr) or use the legacy format, refused. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/jsonutil.h"
#include "base/util.h"
#include "formats/ckpt.h"
#include "formats/safetensors.h"
#include "models/convert.h"
#include "models/model.h"
#include "testutil.h"

static int unpickle(const char *bytes, size_t n, ck_arena *a, ck_value **root) {
    memset(a, 0, sizeof *a);
    return ck_unpickle((const uint8_t *)bytes, n, a, root);
}

/* Plain data, memo and marks; and what the machine refuses. */
static void test_unpickle(void **state) {
    (void)state;
    ck_arena a;
    ck_value *root;
    /* pickle.dumps({'a': 1, 'b': l, 'c': (True, None), 'd': -300, 'e': l}, protocol=2) with
     * l = [2.5, 'x']: memo puts and a get, marks, APPENDS, SETITEMS */
    static const char ok[] = "\200\002\175\161\000\050\130\001\000\000\000\141\161\001\113\001\130\001\000\000\000\142\161\002\135\161\003\050\107\100\004\000\000\000\000\000\000\130\001\000\000\000\170\161\004\145\130\001\000\000\000\143\161\005\210\116\206\161\006\130\001\000\000\000\144\161\007\112\324\376\377\377\130\001\000\000\000\145\161\010\150\003\165\056";
    assert_int_equal(unpickle(ok, sizeof ok - 1, &a, &root), 0);
    assert_int_equal(root->type, CK_DICT);
    assert_int_equal(ck_dict_get(root, "a")->i, 1);
    const ck_value *b = ck_dict_get(root, "b");
    assert_int_equal(b->type, CK_LIST);
    assert_int_equal(b->n, 2);
    assert_true(b->items[0]->f == 2.5);
    assert_string_equal(b->items[1]->s, "x");
    assert_int_equal(ck_dict_get(root, "c")->items[0]->i, 1);
    assert_int_equal(ck_dict_get(root, "c")->items[1]->type, CK_NONE);
    assert_int_equal(ck_dict_get(root, "d")->i, -300);
    assert_ptr_equal(ck_dict_get(root, "e"), b); /* the memo gives the same object */
    ck_arena_free(&a);
    /* a list that holds itself: no recursion anywhere */
    static const char cyc[] = "\200\002\135\161\000\150\000\141\056";
    assert_int_equal(unpickle(cyc, sizeof cyc - 1, &a, &root), 0);
    assert_ptr_equal(root->items[0], root);
    ck_arena_free(&a);
    static const struct {
        const char *bytes;
        size_t n;
        const char *word;
    } bad[] = {
        {"\200\002\130\377\377\377\177", 7, "past the end"},
        {"\200\002\150\005\056", 5, "never stored"},
        {"\200\002\056", 3, "STOP with 0"},
        {"\200\002\113\001", 4, "without STOP"},
        {"\200\002\143\157\163\012\163\171\163\164\145\155\012\130\002\000\000\000\154\163\205\122\056", 23, "os.system"},
        {"\200\002\143\142\165\151\154\164\151\156\163\012\145\166\141\154\012\056", 18, "builtins.eval"},
        {"\200\002\130\002\000\000\000\157\163\130\006\000\000\000\163\171\163\164\145\155\223\056", 22, "os.system"},
        {"\200\002\050\151\137\137\155\141\151\156\137\137\012\130\012\056", 16, "0x69"},
        {"\200\002\113\001\113\002\122\056", 8, "allowed global"},
        {"\200\002\212\011\000\000\000\000\000\000\000\000\001\056", 14, "9 bytes"},
        {"\200\002\162\377\377\377\177\056", 8, "empty"},
        {"\200\002\113\001\162\377\377\377\177\056", 10, "too large"},
        {"\200\002\050\130\007\000\000\000\163\164\157\162\141\147\145\143\164\157\162\143\150\012\106\154\157\141\164\123\164\157\162\141\147\145\012\130\003\000\000\000\056\056\057\130\003\000\000\000\143\160\165\113\004\164\121\056", 56, "plain name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *words[] = {bad[i].word, NULL};
        tu_expect_error(unpickle(bad[i].bytes, bad[i].n, &a, &root), bad[i].word, words);
        ck_arena_free(&a);
    }
}

/* Every tensor of expected equals the converted one, byte for byte. */
static void compare_weights(const char *dir, const char *expected) {
    st_archive got, ref;
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(st_open_file(&got, path), 0);
    assert_int_equal(st_open_file(&ref, tu_fixture("ckpt/%s", expected)), 0);
    for (int i = 0; i < ref.ntensors; i++) {
        const st_tensor *r = &ref.tensors[i], *g = st_find(&got, r->name);
        if (!g || g->nbytes != r->nbytes || memcmp(g->data, r->data, r->nbytes)) {
            print_error("%s: %s differs from %s\n", dir, r->name, expected);
            fail();
        }
    }
    st_close(&got);
    st_close(&ref);
}

static void run_convert(const char *ckpt, const char *out, const char *flags) {
    char *log;
    int rc = tu_run(&log, "convert %s --heads 4 --length 32 -o %s %s", tu_fixture("ckpt/%s", ckpt),
                    out, flags);
    if (rc) print_error("%s\n", log);
    assert_int_equal(rc, 0);
    free(log);
}

static void test_convert_lightning(void **state) {
    (void)state;
    char tmp[256], out[512];
    assert_int_equal(tu_tmpdir_make(tmp, sizeof tmp, "convert"), 0);
    snprintf(out, sizeof out, "%s/ema", tmp);
    run_convert("lightning.ckpt", out, "");
    compare_weights(out, "expected_ema.safetensors");
    model_dir md; /* the directory loads, with the checkpoint's soft-masking values */
    if (model_dir_load(&md, out, 0)) print_error("%s\n", smdlm_last_error());
    assert_int_equal(md.net.cfg.vocab_size, 67);
    assert_int_equal(md.net.cfg.n_blocks, 2);
    assert_int_equal(md.net.cfg.cond_dim, 32);
    assert_int_equal(md.net.cfg.n_heads, 4);
    assert_int_equal(md.sm.enabled, 1);
    assert_int_equal(md.sm.k, 3);
    char *text;
    assert_int_equal(sm_read_file(tu_fixture("ckpt/expected_sm.json"), 1 << 16, &text, NULL), 0);
    cJSON *exp = json_parse_object(text, "expected_sm.json");
    free(text);
    const float got[] = {md.sm.scale, md.sm.centre, md.sm.steepness, md.sm.temp};
    const char *keys[] = {"transparency_scale", "transparency_centre", "transparency_steepness",
                          "mixture_temp"};
    for (int i = 0; i < 4; i++) {
        const double ref = cJSON_GetObjectItem(exp, keys[i])->valuedouble;
        if (fabs(got[i] - ref) > 1e-6) {
            print_error("%s: %.9g, expected %.9g\n", keys[i], got[i], ref);
            fail();
        }
    }
    cJSON_Delete(exp);
    model_dir_free(&md);
    snprintf(out, sizeof out, "%s/raw", tmp);
    run_convert("lightning.ckpt", out, "--raw");
    compare_weights(out, "expected_raw.safetensors");
    snprintf(out, sizeof out, "%s/plain", tmp);
    run_convert("state_dict.pt", out, "");
    compare_weights(out, "expected_raw.safetensors");
    char smpath[600];
    snprintf(smpath, sizeof smpath, "%s/transparency_config.json", out);
    assert_false(sm_file_exists(smpath)); /* no tran_head, no soft-masking */
    assert_int_equal(tu_tmpdir_remove(tmp), 0);
}

/* Other globals anywhere in the file and the legacy format: refused, nothing written. */
static void test_refused(void **state) {
    (void)state;
    static const char args[][256] = {
        "convert tests/fixtures/ckpt/evil_system.ckpt -o /tmp/smdlm-never-written",
        "convert tests/fixtures/ckpt/evil_eval.ckpt -o /tmp/smdlm-never-written",
        "convert tests/fixtures/ckpt/evil_getattr.ckpt -o /tmp/smdlm-never-written",
        "convert tests/fixtures/ckpt/legacy.pt -o /tmp/smdlm-never-written",
        "convert tests/fixtures/ckpt/expected_sm.json -o /tmp/smdlm-never-written",
        "convert tests/fixtures/tiny -o /tmp/smdlm-never-written",
        "convert tests/fixtures/ckpt/lightning.ckpt -o /tmp/smdlm-never-written --heads 5",
    };
    static const char *const word[] = {"posix.system", "eval", "getattr", "legacy",
                                       "zip", "not a regular file", "n_heads"};
    tu_expect_cli_errors(&args[0][0], sizeof args[0], word, (int)(sizeof word / sizeof *word));
    struct stat sb;
    assert_int_not_equal(stat("/tmp/smdlm-never-written", &sb), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unpickle),
        cmocka_unit_test(test_convert_lightning),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
