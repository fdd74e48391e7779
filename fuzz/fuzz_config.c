/* fuzz_config.c — libFuzzer target for the JSON configs of a model directory. Byte 0 mod 5
 * picks the reader of the rest:
 *   0  an MDLM's config.json (dit_config_parse)
 *   1  transparency_config.json (sm_params_load_json, sm_params_validate)
 *   2  a Dream or LLaDA config.json (tf_config_parse)
 *   3  a GPT-2 config.json (gpt2_config_parse)
 *   4  config.json in a directory (model_dir_type, model_dir_arch)
 * A reader never aborts on bad input, so any crash is a bug. */
#include "fuzz_util.h"
#include "models/dit.h"
#include "models/gpt2.h"
#include "models/model.h"
#include "models/transformer.h"
#include "softmask/softmask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t len;
    char *text = fz_text(data, size, &len);
    switch (data[0] % 5) {
    case 0: {
        dit_config c;
        dit_config_parse(&c, text, "fuzz");
        break;
    }
    case 1: {
        char *path = fz_write("transparency_config.json", text, len);
        sm_params p;
        sm_params_default(&p);
        if (sm_params_load_json(&p, path) == 0) sm_params_validate(&p);
        free(path);
        break;
    }
    case 2: {
        tf_config c;
        if (tf_config_parse(&c, text, "fuzz") == 0 && tf_config_validate(&c, "fuzz") != 0)
            fz_die("tf_config_parse accepted a config that does not validate");
        break;
    }
    case 3: {
        gpt2_config c;
        gpt2_config_parse(&c, text, "fuzz");
        break;
    }
    default: {
        free(fz_write("model/config.json", text, len));
        char *dir = fz_path("model");
        char type[64];
        model_arch arch;
        if (model_dir_type(dir, type, sizeof type) == 0 && strlen(type) >= sizeof type)
            fz_die("model_dir_type overflowed");
        model_dir_arch(dir, &arch);
        free(dir);
        break;
    }
    }
    free(text);
    return 0;
}
