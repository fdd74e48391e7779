/* test_trainloop.c — `smdlm train` as a user runs it: resuming gives bit-identical losses,
 * a damaged or half-written newest checkpoint falls back to the previous one, a kill -9 in
 * the middle never leaves a half-written checkpoint, a full disk stops training with the
 * earlier checkpoints intact; `smdlm eval ppl` and `smdlm plot` on the result; the run
 * directory owns its settings (resume with --out alone, refused changes, --force, the lock). */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/manifest.h"
#include "formats/safetensors.h"
#include "train/data.h"
#include "base/rng.h"
#include "testutil.h"
#include "base/util.h"

static char g_dir[64], g_data[128];
static const char *k_args = "--hidden 32 --heads 2 --blocks 2 --cond-dim 16 --batch 4 --lr 1e-3 "
                            "--val-every 4 --val-batches 2 --ckpt-every 4 --sm-prob 0.5 --ema 0.9 "
                            "--samples 0 --log-every 1 -t 2 -q";

/* A data directory in the shard format of data.h: random blocks over ids < 60 of a
 * vocabulary of 70 (more than tests/fixtures/tiny-tc's 67). */
static void write_shards(const char *dir) {
    const int L = 16, V = 70;
    const char *names[2] = {"train_00000.bin", "val.bin"};
    const int blocks[2] = {64, 8};
    sm_rng r;
    rng_seed(&r, 3);
    for (int s = 0; s < 2; s++) {
        char *p = sm_path_join(dir, names[s]);
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        uint8_t h[SHARD_HEADER_BYTES] = {0};
        memcpy(h, SHARD_MAGIC, 8);
        uint32_t v = SHARD_VERSION, w = 2, bl = (uint32_t)L;
        uint64_t n = (uint64_t)blocks[s] * L;
        memcpy(h + 8, &v, 4), memcpy(h + 12, &w, 4), memcpy(h + 16, &n, 8), memcpy(h + 24, &bl, 4);
        fwrite(h, 1, sizeof h, f);
        for (uint64_t i = 0; i < n; i++) {
            uint16_t tok = (uint16_t)(i % L == 0 ? 0 : 1 + (i % 7 == 0 ? rng_next(&r) % 59 : (i / 3) % 20));
            fwrite(&tok, 2, 1, f);
        }
        fclose(f);
        free(p);
    }
    char *p = sm_path_join(dir, "meta.json");
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"format\":\"smdlm-tokens\",\"version\":1,\"vocab_size\":%d,\"block_len\":%d,"
               "\"token_bytes\":2,\"bos_id\":0,\"eos_id\":0,"
               "\"train\":{\"blocks\":64,\"files\":[{\"name\":\"train_00000.bin\",\"blocks\":64}]},"
               "\"val\":{\"blocks\":8,\"files\":[{\"name\":\"val.bin\",\"blocks\":8}]}}\n", V, L);
    fclose(f);
    free(p);
}

/* The "loss" lines of a log, without timings. */
static char *losses(const char *out) {
    char *path = sm_path_join(out, "train_log.jsonl"), *text, *res = sm_calloc(1, 1 << 16);
    assert_int_equal(sm_read_file(path, 1 << 20, &text, NULL), 0);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *l = strstr(line, "\"loss\":"), *g = strstr(line, ",\"grad_norm\"");
        if (!l || !g) continue;
        strncat(res, line, (size_t)(strchr(line, ',') - line)); /* "step":N */
        strncat(res, l - 1, (size_t)(g - l + 1));
        strcat(res, "\n");
    }
    free(text);
    free(path);
    return res;
}

static int count_complete(const char *out, int *incomplete) {
    DIR *d = opendir(out);
    int n = 0;
    *incomplete = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "ckpt-", 5)) continue;
        char *dir = sm_path_join(out, e->d_name), *m = sm_path_join(dir, "COMPLETE");
        if (sm_file_exists(m)) n++;
        else (*incomplete)++;
        free(dir), free(m);
    }
    if (d) closedir(d);
    return n;
}

static void test_resume_bit_identical(void **state) {
    char *out;
    assert_int_equal(tu_run(&out, "train --data %s --out %s/a --steps 12 %s", g_data, g_dir, k_args), 0);
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/b --steps 8 %s", g_data, g_dir, k_args), 0);
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/b --steps 12 --resume %s", g_data, g_dir, k_args), 0);
    printf("  %s", out);
    assert_non_null(strstr(out, "resuming from"));
    free(out);
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/a", g_dir);
    snprintf(b, sizeof b, "%s/b", g_dir);
    char *la = losses(a), *lb = losses(b);
    printf("  uninterrupted:\n%s  interrupted at 8 and resumed:\n%s", la, lb);
    assert_string_equal(la, lb);
    free(la), free(lb);
}

static void test_fallback_to_previous(void **state) {
    char *out, cmd[512];
    /* damage the newest checkpoint of run a (step 12) and leave a half-written one */
    snprintf(cmd, sizeof cmd, "cp -r %s/a %s/c && truncate -s 100 %s/c/ckpt-00000012/model.safetensors && "
             "mkdir %s/c/ckpt-00000016 && : > %s/c/ckpt-00000016/config.json",
             g_dir, g_dir, g_dir, g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/c --steps 12 --resume %s", g_data, g_dir, k_args), 0);
    printf("  %s", out);
    assert_non_null(strstr(out, "skipping"));
    assert_non_null(strstr(out, "resuming from"));
    assert_non_null(strstr(out, "ckpt-00000008"));
    free(out);
    /* all three damaged: a clear error, not a fresh start */
    snprintf(cmd, sizeof cmd, "for d in %s/c/ckpt-*; do rm -f $d/COMPLETE; done", g_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/c --steps 12 --resume %s", g_data, g_dir, k_args), 1);
    assert_non_null(strstr(out, "could be loaded"));
    free(out);
}

/* A checkpoint whose metadata holds a step that is no count (here "-1", which made the AdamW
 * bias correction NaN) is skipped like a damaged one. */
static void test_bad_step_skipped(void **state) {
    char *out, cmd[512], path[256], *text;
    size_t len;
    snprintf(cmd, sizeof cmd, "cp -r %s/a %s/d", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/d/ckpt-00000012/train_state.safetensors", g_dir);
    assert_int_equal(sm_read_file(path, 1 << 30, &text, &len), 0);
    char *step = memmem(text, len, "\"step\":\"12\"", 11);
    assert_non_null(step);
    memcpy(step + 8, "-1", 2); /* same length: the header keeps its size */
    assert_int_equal(sm_write_file_atomic(path, text, len), 0);
    free(text);
    /* the manifest recorded again: the metadata check itself must refuse the step */
    snprintf(path, sizeof path, "%s/d/ckpt-00000012", g_dir);
    assert_int_equal(manifest_write(path), 0);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/d --steps 12 --resume %s", g_data, g_dir, k_args), 0);
    printf("  %s", out);
    assert_non_null(strstr(out, "\"step\" = \"-1\", not a count"));
    assert_non_null(strstr(out, "resuming from"));
    assert_non_null(strstr(out, "ckpt-00000008"));
    free(out);
}

/* A resumption from an older checkpoint drops what the lost stretch logged: run a's newest
 * checkpoint gone, the resumed log reads exactly as the uninterrupted one. */
static void test_resume_truncates_log(void **state) {
    char *out, cmd[256];
    snprintf(cmd, sizeof cmd, "cp -r %s/a %s/t && rm -r %s/t/ckpt-00000012", g_dir, g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "train --out %s/t --steps 12 --resume -q", g_dir), 0);
    free(out);
    char a[128], t[128];
    snprintf(a, sizeof a, "%s/a", g_dir);
    snprintf(t, sizeof t, "%s/t", g_dir);
    char *la = losses(a), *lt = losses(t);
    assert_string_equal(la, lt);
    free(la), free(lt);
}

/* A checkpoint is valid only when every file its COMPLETE manifest lists is there with the
 * recorded size and CRC-32: a truncated, changed or deleted file makes `generate -m` refuse
 * it by name and `--resume` fall back to the previous checkpoint. */
static void test_checkpoint_manifest(void **state) {
    static const struct {
        const char *damage, *expect;
    } cases[] = {
        {"truncate -s -1 %s/ckpt-00000012/train_state.safetensors", "a truncated or replaced file"},
        {"printf '\\377' | dd of=%s/ckpt-00000012/model.safetensors bs=1 seek=5000 conv=notrunc 2>/dev/null",
         "'model.safetensors' has CRC-32"},
        {"rm %s/ckpt-00000012/transparency_config.json", "'transparency_config.json' is missing"},
    };
    char *out, cmd[1024], run[160];
    snprintf(run, sizeof run, "%s/m", g_dir);
    assert_int_equal(tu_run(&out, "generate -m %s/a/ckpt-00000012 --len 8 --steps 2 -q", g_dir), 0);
    free(out);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r %s/a %s && ", run, g_dir, run);
        size_t n = strlen(cmd);
        snprintf(cmd + n, sizeof cmd - n, cases[i].damage, run);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(tu_run(&out, "generate -m %s/ckpt-00000012 --len 8 --steps 2 -q", run), 1);
        printf("  %s", out);
        assert_non_null(strstr(out, cases[i].expect));
        assert_non_null(strstr(out, "not a valid checkpoint"));
        free(out);
        assert_int_equal(tu_run(&out, "train --out %s --steps 12 --resume", run), 0);
        assert_non_null(strstr(out, cases[i].expect));
        assert_non_null(strstr(out, "resuming from"));
        assert_non_null(strstr(out, "ckpt-00000008 (step 8)"));
        free(out);
    }
}

/* The last "sm_scale" of a run's log. */
static double last_sm_scale(const char *out) {
    char *path = sm_path_join(out, "train_log.jsonl"), *text;
    assert_int_equal(sm_read_file(path, 1 << 22, &text, NULL), 0);
    const char *at = NULL;
    for (const char *p = text; (p = strstr(p, "\"sm_scale\":")); p++) at = p;
    assert_non_null(at);
    double v = strtod(at + strlen("\"sm_scale\":"), NULL);
    free(text), free(path);
    return v;
}

/* Soft-masking from IBM's start (scale 1e-6, gradient ≈ 1e-10 here): the default optimiser
 * settings of the scale (its own learning rate, ε 1e-16) update it by about its learning rate
 * per step; IBM's (--sm-scale-lr 1e-2 --sm-eps 1e-8, torch's ε) by about 1/100 of that, and
 * the run warns that the scale has not moved. (On these random tokens soft-masking helps
 * nothing, so the default's steps go both ways; docs/TRAINING.md shows real data.) */
static void test_sm_scale_learns(void **state) {
    const char *shape = "--hidden 16 --heads 2 --blocks 1 --cond-dim 8 --batch 2 --lr 1e-3 --val-every 0 "
                        "--ckpt-every 0 --samples 0 --log-every 50 --sm-prob 0.8 --steps 200 -t 2 -q";
    char *out, dir[128];
    assert_int_equal(tu_run(&out, "train --data %s --out %s/sm_new %s", g_data, g_dir, shape), 0);
    free(out);
    snprintf(dir, sizeof dir, "%s/sm_new", g_dir);
    double moved = last_sm_scale(dir);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/sm_ref --sm-scale-lr 1e-2 --sm-eps 1e-8 %s", g_data,
                            g_dir, shape), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "warning: the soft-masking scale has not moved in 200 updates"));
    free(out);
    snprintf(dir, sizeof dir, "%s/sm_ref", g_dir);
    double stuck = last_sm_scale(dir);
    printf("  scale after 200 updates: %.6g (defaults), %.6g (IBM's optimiser settings)\n", moved, stuck);
    assert_true(fabs(log(moved / 1e-6)) > 0.1);
    assert_true(fabs(log(stuck / 1e-6)) < 0.01);
}

/* Every tensor of a safetensors file whose name does not start with `skip`, byte for byte
 * against the same tensor of another; returns how many differ (each printed). */
static int tensors_differing(const char *path_a, const char *path_b, const char *skip) {
    st_archive a, b;
    assert_int_equal(st_open_file(&a, path_a), 0);
    assert_int_equal(st_open_file(&b, path_b), 0);
    int differ = 0;
    for (int i = 0; i < a.ntensors; i++) {
        const st_tensor *x = &a.tensors[i], *y = st_find(&b, x->name);
        if (!strncmp(x->name, skip, strlen(skip))) continue;
        if (!y || y->nbytes != x->nbytes || memcmp(x->data, y->data, x->nbytes)) {
            printf("  %s differs\n", x->name);
            differ++;
        }
    }
    st_close(&a);
    st_close(&b);
    return differ;
}

/* --sm-only on a trained MDLM: the exported weights and the raw parameters of the checkpoint
 * stay the --init ones bit for bit, the soft-masking scalars move, Adam keeps moments for the
 * three scalars alone; a Dream model is refused. */
static void test_sm_only(void **state) {
    const char *shape = "--hidden 16 --heads 2 --blocks 1 --cond-dim 8 --batch 2 --lr 1e-3 --val-every 0 "
                        "--samples 0 -t 2 -q";
    char *out, base[128], smo[128], path[256], path2[256];
    snprintf(base, sizeof base, "%s/smo_base", g_dir);
    snprintf(smo, sizeof smo, "%s/smo", g_dir);
    assert_int_equal(tu_run(&out, "train --data %s --out %s --steps 20 --ckpt-every 20 --ema 0 %s", g_data, base,
                            shape), 0);
    free(out);
    int rc = tu_run(&out, "train --data %s --out %s --init %s/ckpt-00000020 --sm-only --steps 30 --ckpt-every 30 "
                          "--log-every 10 --sm-scale 0.5 %s", g_data, smo, base, shape);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/ckpt-00000020/model.safetensors", base);
    snprintf(path2, sizeof path2, "%s/ckpt-00000030/model.safetensors", smo);
    assert_int_equal(tensors_differing(path, path2, "softmask."), 0);
    /* the raw parameters: the same bits as the base's */
    snprintf(path, sizeof path, "%s/ckpt-00000020/train_state.safetensors", base);
    snprintf(path2, sizeof path2, "%s/ckpt-00000030/train_state.safetensors", smo);
    st_archive a, b;
    assert_int_equal(st_open_file(&a, path), 0);
    assert_int_equal(st_open_file(&b, path2), 0);
    const st_tensor *pa = st_find(&a, "params"), *pb = st_find(&b, "params"), *m = st_find(&b, "adam_m");
    assert_non_null(pa), assert_non_null(pb), assert_non_null(m);
    assert_int_equal(pa->nbytes, pb->nbytes);
    assert_int_equal(memcmp(pa->data, pb->data, pa->nbytes), 0);
    printf("  params: %zu bytes identical; adam_m holds %zu values\n", pa->nbytes, (size_t)m->numel);
    assert_int_equal((int)m->numel, 3);
    st_close(&a);
    st_close(&b);
    /* the scalars moved: scale from its start 0.5 */
    double scale = last_sm_scale(smo);
    printf("  scale after 30 updates: %.6g\n", scale);
    assert_true(fabs(scale - 0.5) > 1e-4);
    /* refusals: no --init, a Dream model */
    assert_int_equal(tu_run(&out, "train --data %s --out %s/smo2 --sm-only %s", g_data, g_dir, shape), 1);
    assert_non_null(strstr(out, "--init"));
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/smo3 --init %s --sm-only %s", g_data, g_dir,
                            FIXTURES_DIR "/tiny-dream", shape), 1);
    printf("%s", out);
    assert_non_null(strstr(out, "--sm-only needs their backward pass"));
    free(out);
}

/* A run.json from before the soft-masking scalars had their own optimiser settings (no
 * "sm_scale_lr", no "sm_eps"): the run trained raw_scale at its sm_lr with Adam's ε 1e-8, and
 * its resumption continues so, says so, and ends bit for bit where an uninterrupted run with
 * those settings ends; the rewritten run.json then holds them. */
static void test_resume_run_json_before_sm_optimiser(void **state) {
    /* scale 0.5 and centre −10 give the scalars gradients that move them (from IBM's start
       they are ≈ 1e-23 here, and no optimiser setting moves a raw value by an ulp) */
    const char *old_optimiser = "--sm-scale 0.5 --sm-centre -10 --sm-lr 0.03 --sm-scale-lr 0.03 --sm-eps 1e-8";
    char *out, cmd[1024];
    assert_int_equal(tu_run(&out, "train --data %s --out %s/old --steps 4 %s %s", g_data, g_dir, k_args, old_optimiser), 0);
    free(out);
    snprintf(cmd, sizeof cmd, "sed -i -e '/\"sm_scale_lr\"/d' -e '/\"sm_eps\"/d' %s/old/run.json && "
             "! grep -q 'sm_scale_lr\\|sm_eps' %s/old/run.json", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "train --out %s/old --steps 8 --resume", g_dir), 0);
    printf("  %s", out);
    assert_non_null(strstr(out, "run.json predates the soft-masking optimiser settings: the run continues with the "
                                "optimiser it started with, sm_scale_lr 0.03 (its sm_lr) and sm_eps 1e-08\n"));
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/old8 --steps 8 %s %s", g_data, g_dir, k_args, old_optimiser), 0);
    free(out);
    snprintf(cmd, sizeof cmd, "cmp %s/old/ckpt-00000008/train_state.safetensors %s/old8/ckpt-00000008/train_state.safetensors "
             "&& grep -q '\"sm_eps\":' %s/old/run.json", g_dir, g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
}

static void test_kill_during_training(void **state) {
    char cmd[1024];
    for (int trial = 0; trial < 3; trial++) {
        /* kill once a first checkpoint exists (slow sanitizer builds included), at a
           different moment of the checkpoint cycle each trial */
        snprintf(cmd, sizeof cmd,
                 "( %s train --data %s --out %s/k --steps 100000 --ckpt-every 1 --keep-last 2 %s %s & "
                 "pid=$!; i=0; while ! ls -d %s/k/ckpt-* >/dev/null 2>&1 && [ $i -lt 400 ]; do "
                 "sleep 0.05; i=$((i+1)); done; sleep 0.%d; kill -9 $pid; wait $pid ) >/dev/null 2>&1",
                 getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm", g_data, g_dir, k_args,
                 trial ? "--resume" : "", g_dir, 1 + 3 * trial);
        system(cmd);
        char out_dir[128];
        snprintf(out_dir, sizeof out_dir, "%s/k", g_dir);
        int incomplete, complete = count_complete(out_dir, &incomplete);
        printf("  kill -9 #%d: %d complete checkpoints, %d incomplete ones named ckpt-*\n", trial, complete, incomplete);
        assert_int_equal(incomplete, 0);
        assert_true(complete >= 1);
        char *out;
        /* resuming works after every kill */
        assert_int_equal(tu_run(&out, "train --data %s --out %s/k --steps 1 --resume %s", g_data, g_dir, k_args), 0);
        free(out);
    }
}

/* The run directory records the settings: --resume needs only --out (parents created);
 * a changed budget is allowed and logged, a changed learning rate needs --override, a
 * changed shape is refused; unknown --config keys are errors. */
static void test_run_owns_settings(void **state) {
    char *out;
    assert_int_equal(tu_run(&out, "train --data %s --out %s/p/q/r --steps 4 %s", g_data, g_dir, k_args), 0);
    free(out);
    assert_int_equal(tu_run(&out, "train --out %s/p/q/r --steps 8 --resume -q", g_dir), 0);
    printf("  %s", out);
    assert_non_null(strstr(out, "steps: 4 → 8"));
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/r8 --steps 8 %s", g_data, g_dir, k_args), 0);
    free(out);
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/p/q/r", g_dir);
    snprintf(b, sizeof b, "%s/r8", g_dir);
    char *la = losses(a), *lb = losses(b);
    assert_string_equal(la, lb); /* the recorded settings (threads, sm-prob, ...) were the ones used */
    free(la), free(lb);
    assert_int_equal(tu_run(&out, "train --out %s/p/q/r --steps 12 --resume --lr 1e-2 --hidden 64", g_dir), 1);
    printf("  %s", out);
    assert_non_null(strstr(out, "lr: 0.001 → 0.01   (needs --override)"));
    assert_non_null(strstr(out, "hidden: 32 → 64   (cannot change in a run)"));
    free(out);
    assert_int_equal(tu_run(&out, "train --out %s/p/q/r --steps 12 --resume --lr 1e-2 --hidden 64 --override", g_dir), 1);
    assert_non_null(strstr(out, "hidden: 32 → 64"));
    free(out);
    assert_int_equal(tu_run(&out, "train --out %s/p/q/r --steps 12 --resume --lr 1e-2 --override -q", g_dir), 0);
    free(out);
    char *path = sm_path_join(a, "train_log.jsonl"), *text;
    assert_int_equal(sm_read_file(path, 1 << 20, &text, NULL), 0);
    assert_non_null(strstr(text, "\"resumed_with_changes\":\"  lr: 0.001 → 0.01\\n  steps: 8 → 12\\n\""));
    assert_non_null(strstr(text, "\"step\":12,\"loss\""));
    free(text), free(path);
    /* a typo in a config file */
    path = sm_path_join(g_dir, "typo.json");
    assert_int_equal(sm_write_file_atomic(path, "{\"hiddden\": 5}", 14), 0);
    assert_int_equal(tu_run(&out, "train --config %s --data %s --out %s/typo", path, g_data, g_dir), 1);
    assert_non_null(strstr(out, "unknown key \"hiddden\""));
    free(out), free(path);
}

/* A new run into a directory that holds one is refused without --force, which replaces the
 * previous run; stale temporaries of an interrupted run are removed at start; pruning leaves
 * no .old-* entry. */
static void test_new_run_needs_force(void **state) {
    char *out, cmd[512];
    assert_int_equal(tu_run(&out, "train --data %s --out %s/n --steps 8 %s", g_data, g_dir, k_args), 0);
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/n --steps 4 %s", g_data, g_dir, k_args), 1);
    printf("  %s", out);
    assert_non_null(strstr(out, "is not empty"));
    assert_non_null(strstr(out, "--force"));
    free(out);
    snprintf(cmd, sizeof cmd, "mkdir %s/n/.tmp-ckpt-00000099 %s/n/.old-ckpt-00000098 && : > %s/n/run.json.tmp.123",
             g_dir, g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/n --steps 4 --force %s", g_data, g_dir, k_args), 0);
    free(out);
    snprintf(cmd, sizeof cmd, "test \"$(ls -A %s/n | tr '\\n' ' ')\" = '.lock ckpt-00000004 run.json train_log.jsonl '",
             g_dir);
    assert_int_equal(system(cmd), 0);
    /* keep-last 1: every older checkpoint goes, through an .old- name that does not stay */
    assert_int_equal(tu_run(&out, "train --out %s/n --steps 16 --keep-last 1 --resume", g_dir), 0);
    free(out);
    snprintf(cmd, sizeof cmd, "test \"$(ls -A %s/n | tr '\\n' ' ')\" = '.lock ckpt-00000016 run.json train_log.jsonl '",
             g_dir);
    assert_int_equal(system(cmd), 0);
}

/* A second process on a run directory in use is refused with a clear message. */
static void test_lock(void **state) {
    char cmd[1024];
    const char *bin = getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm";
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --out %s/l --steps 100000 --ckpt-every 0 %s > /dev/null 2>&1 & pid=$!; "
             "i=0; while [ ! -f %s/l/run.json ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; "
             "%s train --out %s/l --resume > %s/l2.log 2>&1; st=$?; kill -9 $pid; wait $pid; "
             "[ $st -eq 1 ] && grep -q \"in use by another smdlm train (pid $pid)\" %s/l2.log",
             bin, g_data, g_dir, k_args, g_dir, bin, g_dir, g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    char *out; /* the lock went with the process */
    assert_int_equal(tu_run(&out, "train --out %s/l --resume --steps 1", g_dir), 0);
    free(out);
}

/* SIGTERM finishes the update under way, writes a checkpoint, says where and exits 143; the
 * run resumes from it. */
static void test_sigterm_checkpoints(void **state) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --out %s/s --steps 100000 --ckpt-every 0 --log-every 1 %s > %s/s.log 2>&1 & pid=$!; "
             "i=0; while ! grep -q '\"step\":3,' %s/s/train_log.jsonl 2>/dev/null && [ $i -lt 400 ]; do "
             "sleep 0.05; i=$((i+1)); done; kill -TERM $pid; wait $pid",
             getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm", g_data, g_dir, k_args, g_dir, g_dir);
    int st = system(cmd);
    char path[128], *text;
    snprintf(path, sizeof path, "%s/s.log", g_dir);
    assert_int_equal(sm_read_file(path, 1 << 20, &text, NULL), 0);
    printf("  exit %d: %s", WEXITSTATUS(st), text);
    assert_int_equal(WEXITSTATUS(st), 143);
    const char *at = strstr(text, "stopped by signal 15 at step ");
    assert_non_null(at);
    long step = strtol(at + strlen("stopped by signal 15 at step "), NULL, 10);
    free(text);
    assert_true(step >= 3);
    snprintf(path, sizeof path, "%s/s/ckpt-%08ld/COMPLETE", g_dir, step); /* the stopped step's */
    assert_true(sm_file_exists(path));
    snprintf(path, sizeof path, "%s/s", g_dir);
    int incomplete;
    count_complete(path, &incomplete);
    assert_int_equal(incomplete, 0);
    char *out;
    assert_int_equal(tu_run(&out, "train --out %s/s --resume --steps 1", g_dir), 0);
    assert_non_null(strstr(out, "resuming from"));
    free(out);
}

static void test_disk_full(void **state) {
    char cmd[1024];
    /* files larger than 64 KiB cannot be written (RLIMIT_FSIZE); SIGXFSZ ignored so that
       write() fails with EFBIG as on a full disk */
    snprintf(cmd, sizeof cmd,
             "sh -c \"trap '' XFSZ; ulimit -f 64; %s train --data %s --out %s/f --steps 8 %s\" > %s/f.log 2>&1",
             getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm", g_data, g_dir, k_args, g_dir);
    int st = system(cmd);
    char path[128], *text;
    snprintf(path, sizeof path, "%s/f.log", g_dir);
    assert_int_equal(sm_read_file(path, 1 << 20, &text, NULL), 0);
    printf("  exit %d: %s", WEXITSTATUS(st), text);
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_non_null(strstr(text, "not written"));
    free(text);
    snprintf(path, sizeof path, "%s/f", g_dir);
    int incomplete, complete = count_complete(path, &incomplete);
    assert_int_equal(incomplete, 0);
    assert_int_equal(complete, 0);
}

/* mpirun -np 2 with batch B each follows the single process with batch 2B. */
static void test_mpi_data_parallel(void **state) {
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("  SKIPPED: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)\n");
        return;
    }
    const char *bin = getenv("SMDLM") ? getenv("SMDLM") : "build/smdlm";
    const char *common = "--hidden 32 --heads 2 --blocks 2 --cond-dim 16 --lr 1e-3 --val-every 0 "
                         "--ckpt-every 0 --sm-prob 0.5 --ema 0.9 -t 1 -q --log-every 1 --steps 6";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s/mp1 --batch 8 %s", bin, g_data, g_dir, common);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             /* OpenMPI keeps its own allocations to the end: no leak report under ASan */
             "ASAN_OPTIONS=detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
             "mpirun -np 2 --oversubscribe "
             "%s train --data %s --out %s/mp2 --batch 4 %s > %s/mpi.log 2>&1", bin, g_data, g_dir, common, g_dir);
    int st = system(cmd);
    if (st != 0) {
        char path[128], *text = NULL;
        snprintf(path, sizeof path, "%s/mpi.log", g_dir);
        sm_read_file(path, 1 << 20, &text, NULL);
        print_error("mpirun failed: %s\n", text ? text : "");
        free(text);
        fail();
    }
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/mp1", g_dir);
    snprintf(b, sizeof b, "%s/mp2", g_dir);
    char *la = losses(a), *lb = losses(b);
    float va[16], vb[16];
    int n = 0;
    for (char *p = la, *q = lb; (p = strstr(p, "\"loss\":")) && (q = strstr(q, "\"loss\":")) && n < 16; p++, q++, n++) {
        va[n] = strtof(p + 7, NULL);
        vb[n] = strtof(q + 7, NULL);
    }
    assert_int_equal(n, 6);
    assert_int_equal(tu_compare_f32("mpirun -np 2 vs 1 process", vb, va, 6, 1e-6f, 1e-5f), 0);
    free(la), free(lb);
}

static void test_eval_and_plot(void **state) {
    char *out;
    assert_int_equal(tu_run(&out, "eval ppl -m %s/a/ckpt-00000012 --data %s --batch 4 --json", g_dir, g_data), 0);
    printf("  %s", out);
    assert_non_null(strstr(out, "\"ppl\":"));
    assert_non_null(strstr(out, "\"soft_masking\":true"));
    free(out);
    assert_int_equal(tu_run(&out, "plot %s/a/train_log.jsonl %s/b/train_log.jsonl -o %s/loss.png", g_dir, g_dir, g_dir), 0);
    free(out);
    char path[128];
    snprintf(path, sizeof path, "%s/loss.png", g_dir);
    char *png;
    size_t n;
    assert_int_equal(sm_read_file(path, 1 << 24, &png, &n), 0);
    assert_true(n > 1000 && !memcmp(png, "\x89PNG", 4));
    free(png);
    assert_int_equal(tu_run(&out, "eval ppl -m %s/a/ckpt-00000012 --data %s/nowhere", g_dir, g_dir), 1);
    assert_non_null(strstr(out, "meta.json"));
    free(out);
    /* impossible shapes; a model whose vocabulary is smaller than the data's */
    assert_int_equal(tu_run(&out, "train --data %s --out %s/x --hidden 30 --heads 4", g_data, g_dir), 1);
    assert_non_null(strstr(out, "divide"));
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s --out %s/x --init tests/fixtures/tiny-tc --steps 1", g_data, g_dir), 1);
    assert_non_null(strstr(out, "token ids but the model"));
    free(out);
    /* a token budget: 12 updates of 4 × 16 tokens */
    assert_int_equal(tu_run(&out, "train --data %s --out %s/tok --tokens 700 %s", g_data, g_dir, k_args), 0);
    free(out);
    char *lt = losses(strcat(strcpy(path, g_dir), "/tok"));
    assert_non_null(strstr(lt, "\"step\":11,"));
    assert_null(strstr(lt, "\"step\":12,"));
    free(lt);
}

/* Tokenizer fingerprints: data prepare records one; eval ppl, train --init and train --resume
 * refuse a model whose tokenizer is another (--allow-mismatch: a warning and the run goes on);
 * data without a recorded fingerprint get a note; generate on a model without tokenizer files
 * says that it prints ids. */
static void test_tokenizer_fingerprint(void **state) {
    char d[160], path[256], sh[1024], *out;
    snprintf(d, sizeof d, "%s/fp", g_dir);
    mkdir(d, 0755);
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof path, "%s/doc%d.txt", d, i);
        FILE *f = fopen(path, "w");
        fprintf(f, "hello world number %d and some text to fill the blocks here\n", i);
        fclose(f);
    }
    /* a killed data prepare's temporary shard goes at the next one (a live writer's stays) */
    snprintf(sh, sizeof sh, "mkdir %s/data && : > %s/data/train_00000.bin.tmp.999999999 && : > %s/data/val.bin.tmp.%ld",
             d, d, d, (long)getpid());
    assert_int_equal(system(sh), 0);
    assert_int_equal(tu_run(&out, "data prepare --tokenizer %s/byte-tokenizer -o %s/data --block-len 8 "
                                  "--val-fraction 0.3 %s/doc*.txt", FIXTURES_DIR, d, d), 0);
    free(out);
    snprintf(sh, sizeof sh, "test ! -e %s/data/train_00000.bin.tmp.999999999 && rm %s/data/val.bin.tmp.%ld", d, d,
             (long)getpid());
    assert_int_equal(system(sh), 0);
    snprintf(path, sizeof path, "%s/data/meta.json", d);
    char *meta;
    assert_int_equal(sm_read_file(path, 1 << 20, &meta, NULL), 0);
    assert_non_null(strstr(meta, "\"tokenizer_fingerprint\":\t\"fnv1a64:"));
    const char *shape = "--hidden 16 --heads 2 --blocks 1 --cond-dim 8 --batch 4 --val-every 0 --samples 0 -q -t 1";
    /* a run on these data carries their tokenizer: its checkpoint matches them */
    assert_int_equal(tu_run(&out, "train --data %s/data --out %s/run --steps 2 --ckpt-every 2 %s", d, d, shape), 0);
    free(out);
    assert_int_equal(tu_run(&out, "eval ppl -m %s/run/ckpt-00000002 --data %s/data --split train --batch 4 --json", d, d), 0);
    assert_null(strstr(out, "tokenizer"));
    free(out);
    /* the same model with another tokenizer (one byte more in merges.txt) */
    snprintf(sh, sizeof sh, "mkdir %s/other && cp %s/run/ckpt-00000002/* %s/other/ && rm %s/other/COMPLETE && "
             "echo >> %s/other/merges.txt", d, d, d, d, d);
    assert_int_equal(system(sh), 0);
    assert_int_equal(tu_run(&out, "eval ppl -m %s/other --data %s/data --split train --batch 4", d, d), 1);
    assert_non_null(strstr(out, "differs from the one the data"));
    assert_non_null(strstr(out, "--allow-mismatch"));
    free(out);
    assert_int_equal(tu_run(&out, "eval ppl -m %s/other --data %s/data --split train --batch 4 --json "
                                  "--allow-mismatch", d, d), 0);
    assert_non_null(strstr(out, "warning: the tokenizer of"));
    assert_non_null(strstr(out, "\"ppl\":"));
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s/data --out %s/init --init %s/other --steps 1 %s", d, d, d, shape), 1);
    assert_non_null(strstr(out, "differs from the one the data"));
    free(out);
    assert_int_equal(tu_run(&out, "train --data %s/data --out %s/init --init %s/other --steps 1 --allow-mismatch %s",
                            d, d, d, shape), 0);
    assert_non_null(strstr(out, "warning: the tokenizer of"));
    free(out);
    /* a resumed run whose checkpoint's tokenizer is not the data's (its marker an older
       smdlm's, which lists no files: nothing else would notice) */
    snprintf(sh, sizeof sh, "cp %s/other/merges.txt %s/run/ckpt-00000002/ && echo ok > %s/run/ckpt-00000002/COMPLETE",
             d, d, d);
    assert_int_equal(system(sh), 0);
    assert_int_equal(tu_run(&out, "train --out %s/run --resume --steps 3 -q", d), 1);
    assert_non_null(strstr(out, "differs from the one the data"));
    free(out);
    /* data prepared before fingerprints: a note, and the evaluation runs */
    char *cut = strstr(meta, "\t\"tokenizer_fingerprint\"");
    memmove(cut, strchr(cut, '\n') + 1, strlen(strchr(cut, '\n') + 1) + 1);
    assert_int_equal(sm_write_file_atomic(path, meta, strlen(meta)), 0);
    free(meta);
    assert_int_equal(tu_run(&out, "eval ppl -m %s/other --data %s/data --split train --batch 4 --json", d, d), 0);
    assert_non_null(strstr(out, "records no tokenizer fingerprint"));
    assert_non_null(strstr(out, "\"ppl\":"));
    free(out);
    /* generate: ids without a tokenizer, said once; nothing said with one */
    assert_int_equal(tu_run(&out, "generate -m %s/tiny --len 8 --steps 2 -q", FIXTURES_DIR), 0);
    char *note = strstr(out, "has no tokenizer files");
    assert_non_null(note);
    assert_null(strstr(note + 1, "has no tokenizer files"));
    free(out);
    assert_int_equal(tu_run(&out, "generate -m %s/run/ckpt-00000002 --len 8 --steps 2 -q", d), 0);
    assert_null(strstr(out, "tokenizer"));
    free(out);
}

static int setup(void **state) {
    snprintf(g_dir, sizeof g_dir, "/tmp/smdlm-trainloop-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_data, sizeof g_data, "%s/data", g_dir);
    mkdir(g_data, 0755);
    write_shards(g_data);
    return 0;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_bit_identical), cmocka_unit_test(test_fallback_to_previous),
        cmocka_unit_test(test_bad_step_skipped),
        cmocka_unit_test(test_resume_truncates_log), cmocka_unit_test(test_checkpoint_manifest),
        cmocka_unit_test(test_sm_scale_learns), cmocka_unit_test(test_sm_only),
        cmocka_unit_test(test_resume_run_json_before_sm_optimiser),
        cmocka_unit_test(test_kill_during_training), cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_eval_and_plot),    cmocka_unit_test(test_mpi_data_parallel),
        cmocka_unit_test(test_run_owns_settings), cmocka_unit_test(test_new_run_needs_force),
        cmocka_unit_test(test_lock),              cmocka_unit_test(test_sigterm_checkpoints),
        cmocka_unit_test(test_tokenizer_fingerprint),
    };
    return cmocka_run_group_tests_name("trainloop", tests, setup, teardown);
}
