/* fuzz_checkpoint.c — libFuzzer target for resuming a training run (src/train/checkpoint.c).
 * At start-up a real checkpoint of a very small MDLM is saved (checkpoint_save). Byte 0 mod 2
 * picks what the rest is:
 *   0  train_state.safetensors of checkpoint ckpt-00000005 (its model files stay): the optimizer
 *      state and the metadata step, epoch, pos, rng, tokens
 *   1  the listing of an output directory: one entry per line (a name ending in '/' is made a
 *      directory, others empty files; names with '/' inside are skipped), beside ckpt-00000005
 * checkpoint_resume then picks and loads a checkpoint, and checkpoint_remove_stale and
 * checkpoint_remove_all clean the directory. Errors are expected; crashes are bugs. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "models/dit.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/train.h"
#include "train/train_config.h"
#include "train/weight_init.h"

static const char k_config[] = "{\"model_type\": \"mdlm\", \"vocab_size\": 9, \"hidden_dim\": 8, "
                               "\"n_heads\": 2, \"n_blocks\": 1, \"cond_dim\": 4, \"model_length\": 8, "
                               "\"mask_token_id\": 8, \"time_conditioning\": false}";
static trainer g_tr;
static adamw g_opt;
static train_config g_cfg;
static char *g_good, *g_out;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    dit_config cfg;
    dit_model m;
    if (dit_config_parse(&cfg, k_config, "fuzz")) fz_die("the model's config");
    dit_model_alloc(&m, &cfg);
    mdlm_init_weights(&m, 7);
    if (trainer_init(&g_tr, &m, 1, 8, 1)) fz_die("trainer_init");
    dit_model_free(&m);
    optim_config oc;
    optim_config_default(&oc);
    optim_group g[2] = {{g_tr.model.owned, g_tr.grads.owned, g_tr.nparams, 1e-3f, 0.0f},
                        {&g_tr.sm.raw_scale, g_tr.sm_grad, 3, 1e-2f, 0.0f}};
    adamw_init(&g_opt, &oc, g, 2);
    train_config_default(&g_cfg);
    g_cfg.ema = 0.0f;
    g_cfg.out = g_good = fz_path("good");
    if (sm_mkdir_p(g_good)) fz_die("mkdir");
    train_progress at = {.step = 5, .epoch = 1, .pos = 3, .tokens = 40};
    rng_seed(&at.rng, 11);
    if (checkpoint_save(&g_cfg, &g_tr, &g_opt, &at, NULL)) fz_die("checkpoint_save");
    char *state = fz_path("good/ckpt-00000005/train_state.safetensors"), *text;
    size_t len;
    if (sm_read_file(state, (size_t)1 << 30, &text, &len)) fz_die("good checkpoint");
    fz_seed(0, text, len, "train_state.safetensors");
    free(text);
    free(state);
    static const char listing[] = "ckpt-3/\nckpt-7\nckpt-12/\n.tmp-ckpt-9/\n.old-ckpt-2/\nckpt-x/\nrun.json.tmp.1\n";
    fz_seed(1, listing, sizeof listing - 1, "listing");
    g_cfg.out = g_out = fz_path("out");
    g_cfg.init = g_good; /* no data directory to check the tokenizer against */
    return 0;
}

/* Copies the regular files of good/ckpt-00000005 into out/ckpt-00000005; train_state.safetensors
 * is written with state instead when state is given. */
static void put_checkpoint(const char *state, size_t len) {
    char *src = sm_path_join(g_good, "ckpt-00000005");
    DIR *d = opendir(src);
    if (!d) fz_die("good checkpoint");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char rel[300], *from = sm_path_join(src, e->d_name), *text;
        size_t n;
        snprintf(rel, sizeof rel, "out/ckpt-00000005/%s", e->d_name);
        int replace = state && !strcmp(e->d_name, "train_state.safetensors");
        if (!replace && sm_read_file(from, (size_t)1 << 30, &text, &n)) fz_die("good checkpoint file");
        free(fz_write(rel, replace ? state : text, replace ? len : n));
        if (!replace) free(text);
        free(from);
    }
    closedir(d);
    free(src);
}

/* One entry of out/ per line of text (at most 64). */
static void put_listing(char *text) {
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < 64; line = strtok(NULL, "\n"), n++) {
        size_t len = strlen(line);
        int is_dir = len > 1 && line[len - 1] == '/';
        if (is_dir) line[--len] = 0;
        if (!len || strchr(line, '/') || !strcmp(line, ".") || !strcmp(line, "..") || len > 200) continue;
        char *p = sm_path_join(g_out, line);
        int fd = is_dir ? mkdir(p, 0755) : open(p, O_WRONLY | O_CREAT, 0644); /* may exist */
        if (!is_dir && fd >= 0) close(fd);
        free(p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t len;
    char *text = fz_text(data, size, &len);
    if (data[0] % 2 == 0) {
        put_checkpoint(text, len);
    } else {
        put_checkpoint(NULL, 0);
        put_listing(text);
    }
    train_progress at = {0};
    checkpoint_resume(&g_cfg, &g_tr, &g_opt, &at, 4);
    checkpoint_remove_stale(g_out);
    checkpoint_remove_all(g_out);
    fz_remove_tree(g_out);
    free(text);
    return 0;
}
