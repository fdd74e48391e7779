/* model_flags.h — the soft-masking flags of common.h resolved against a model directory, for
 * the commands that load one directly (forward, grad, eval) rather than through the API. */
#ifndef SMDLM_CLI_MODEL_FLAGS_H
#define SMDLM_CLI_MODEL_FLAGS_H

#include "common.h"
#include "models/model.h"
#include "softmask/softmask.h"

/* Model directory's transparency_config.json, then --sm-config, then single flags;
 * --no-sm switches it off. Soft-masking is on when any source gave values. */
int sm_flags_resolve(const cli_command *cmd, const sm_flags *f, const model_dir *md,
                     sm_params *out);

#endif
