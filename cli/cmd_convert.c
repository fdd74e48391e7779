/* cmd_convert.c — `smdlm convert`: an MDLM model directory from a PyTorch Lightning checkpoint. */
#include <stdio.h>

#include "commands.h"
#include "common.h"
#include "models/convert.h"

int cmd_convert(int argc, char **argv) {
    const char *out = NULL;
    convert_params p = convert_default_params();
    cli_opt opts[] = {
        {"out", 'o', OPT_STR, &out, 0, 0, "DIR", "the model directory to write (required)"},
        {"heads", 0, OPT_INT, &p.heads, 1, 4096, "N", "attention heads (default 12, the reference's small model)"},
        {"length", 0, OPT_INT, &p.length, 1, 1 << 20, "L", "model_length (default 1024)"},
        {"time-conditioning", 0, OPT_FLAG, &p.time_conditioning, 0, 0, "", "the model is time-conditioned (default: not)"},
        {"sm-k", 0, OPT_INT, &p.sm_k, 1, 16, "K", "top-k of transparency_config.json (default 3)"},
        {"raw", 0, OPT_FLAG, &p.use_raw, 0, 0, "", "the raw weights even when the checkpoint holds EMA weights"},
        {0},
    };
    cli_command cmd = {"convert",
                       "Reads a PyTorch Lightning checkpoint of the reference's MDLM code (zip + "
                       "pickle, read without executing anything) and writes config.json, "
                       "model.safetensors (EMA weights when present) and transparency_config.json.",
                       "CKPT -o DIR [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (npos != 1 || !out) {
        fprintf(stderr, "smdlm convert: a checkpoint and -o are required\n");
        cli_usage(stderr, &cmd);
        return 1;
    }
    int used_ema = 0;
    if (convert_lightning_mdlm(pos[0], out, &p, &used_ema)) return cli_fail("convert");
    printf("wrote %s (%s weights)\n", out, used_ema ? "EMA" : "raw");
    return 0;
}
