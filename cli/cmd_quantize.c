/* cmd_quantize.c — `smdlm quantize`: a Dream/LLaDA model directory saved with int8
 * projections, so that --quant q8 is not redone at every load. */
#include <stdio.h>

#include "commands.h"
#include "common.h"
#include "compute/kernels.h"
#include "models/model.h"

int cmd_quantize(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *quant = "q8";
    int threads = default_threads();
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "Dream or LLaDA model directory (required)"},
        {"out", 'o', OPT_STR, &out, 0, 0, "DIR", "the quantised model directory (required)"},
        {"quant", 0, OPT_STR, &quant, 0, 0, "q8", "int8 projections, one scale per row (default)"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"quantize",
                       "Writes a model directory whose projections are saved quantised (I8 "
                       "weights + F32 row scales; the model's other files copied): loading it "
                       "gives what --quant q8 gives on the original, without quantising again.",
                       "-m DIR -o OUT [--quant q8]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!model || !out) {
        fprintf(stderr, "smdlm quantize: -m and -o are required\n");
        cli_usage(stderr, &cmd);
        return 1;
    }
    if (cli_check_quant("quantize", quant)) return 1;
    kernels_set_threads(threads);
    if (model_dir_quantize(model, quant, out)) return cli_fail("quantize");
    printf("wrote %s\n", out);
    return 0;
}
