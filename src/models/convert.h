/* convert.h — an MDLM model directory from a PyTorch Lightning checkpoint of the reference's
 * training code (kuleshov-group/mdlm, IBM language/: a DiT under `backbone.`, the soft-masking
 * head under `tran_head.`, EMA weights as `ema.shadow_params`), read with src/formats/ckpt.h.
 *
 * The EMA's shadow_params are the backbone's parameters in registration order (the state
 * dict's `backbone.*` entries without the rotary buffer `inv_freq`; LogLinear noise has none);
 * they replace the raw weights unless use_raw. The shapes give the vocabulary, width, depth and
 * conditioning width; heads, length and time conditioning are not in the tensors and come from
 * the options. A `tran_head` gives transparency_config.json (its raw parameters transformed as
 * the reference does: sigmoid, −softplus − 1e-6, softplus + 1e-6).
 */
#ifndef SMDLM_CONVERT_H
#define SMDLM_CONVERT_H

typedef struct {
    int heads;             /* n_heads (reference small: 12) */
    int length;            /* model_length (1024) */
    int time_conditioning; /* 0 */
    int sm_k;              /* mixinputs_k of transparency_config.json (3) */
    int use_raw;           /* 1: the raw weights even when the checkpoint has EMA weights */
} convert_params;

convert_params convert_default_params(void);
/* Writes out_dir (created when missing): config.json, model.safetensors and, with a soft-masking
 * head, transparency_config.json. Prints nothing; *used_ema tells which weights were taken. */
int convert_lightning_mdlm(const char *ckpt, const char *out_dir, const convert_params *p,
                           int *used_ema);

#endif
