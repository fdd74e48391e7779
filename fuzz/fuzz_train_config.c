/* fuzz_train_config.c — libFuzzer target for the files of a training run. Byte 0 mod 3 picks
 * what the rest is:
 *   0  a `train --config` file (train_config_load_json, train_config_validate)
 *   1  an output directory's run.json (run_dir_load_settings)
 *   2  an output directory's train_log.jsonl, cut after a step (run_dir_truncate_log)
 * Errors are expected; crashes, leaks and hangs are bugs. */
#include "fuzz_util.h"
#include "train/rundir.h"
#include "train/train_config.h"

/* The strings a config file sets are kept for the process's life (train_config.h); the
 * target frees them to keep the leak checker's view clean. */
static void free_strings(train_config *c) {
    free((char *)c->init);
    free((char *)c->data);
    free((char *)c->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t len;
    char *text = fz_text(data, size, &len);
    train_config c;
    train_config_default(&c);
    switch (data[0] % 3) {
    case 0: {
        char *path = fz_write("config.json", text, len);
        if (train_config_load_json(&c, path) == 0) train_config_validate(&c);
        free(path);
        break;
    }
    case 1: {
        free(fz_write("out/run.json", text, len));
        char *out = fz_path("out");
        if (run_dir_load_settings(&c, out) == 0) train_config_validate(&c);
        free(out);
        break;
    }
    default: {
        free(fz_write("out/train_log.jsonl", text, len));
        char *out = fz_path("out");
        run_dir_truncate_log(out, (long)(data[0] / 3) * 10);
        free(out);
        break;
    }
    }
    free_strings(&c);
    free(text);
    return 0;
}
