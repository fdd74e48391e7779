/* cmd_merge.c — `smdlm merge`: a PEFT LoRA/DoRA adapter merged into a model directory. */
#include <stdio.h>

#include "commands.h"
#include "common.h"
#include "compute/kernels.h"
#include "models/model.h"

int cmd_merge(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL;
    int threads = default_threads();
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR",
         "base model directory (default: the adapter's base_model_name_or_path)"},
        {"adapter", 0, OPT_STR, &adapter, 0, 0, "DIR",
         "PEFT adapter directory: adapter_config.json + adapter_model.safetensors (required)"},
        {"out", 'o', OPT_STR, &out, 0, 0, "DIR", "the merged model directory (required)"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"merge",
                       "Writes a model directory with a LoRA/DoRA adapter merged into its weights "
                       "(the base's other files and the adapter's transparency_config.json "
                       "copied).",
                       "[-m BASE] --adapter DIR -o OUT", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!adapter || !out) {
        fprintf(stderr, "smdlm merge: --adapter and -o are required\n");
        cli_usage(stderr, &cmd);
        return 1;
    }
    kernels_set_threads(threads);
    if (model_dir_merge_adapter(model, adapter, out)) return cli_fail("merge");
    printf("wrote %s\n", out);
    return 0;
}
