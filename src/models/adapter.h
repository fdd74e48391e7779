/* adapter.h — PEFT LoRA and DoRA adapters (adapter_config.json + adapter_model.safetensors, the
 * layout PEFT's save_pretrained writes) on the layer projections of Dream and LLaDA models.
 *
 * For a target projection W [out, in] with lora_A = A [r, in], lora_B = B [out, r] and
 * s = lora_alpha / r (use_rslora: lora_alpha / √r):
 *   LoRA  W' = W + s·B·A
 *   DoRA  W' = diag(m / ‖W + s·B·A‖_row) · (W + s·B·A), m = lora_magnitude_vector [out]
 * (PEFT's merge; its forward computes the same product). fp32 projections are merged at load;
 * bf16/f16 ones stay in place, mapped, and carry the adapter (linear_lora: the forward adds
 * the low-rank product, DoRA's factor m/‖W + s·B·A‖ computed once at load). Tensors are named
 * "base_model.model." + module + ".lora_A.weight" / ".lora_B.weight" / ".lora_magnitude_vector",
 * module the projection's name in the base model (transformer_modules). Options PEFT offers
 * that change the computation and that are not implemented are rejected by name.
 */
#ifndef SMDLM_ADAPTER_H
#define SMDLM_ADAPTER_H

#include "formats/safetensors.h"
#include "models/transformer.h"

typedef struct {
    char *dir;
    char *base;         /* base_model_name_or_path resolved (relative: against dir when that
                           names a directory), NULL when absent */
    int r, use_dora;
    float scale;        /* lora_alpha / r, or / √r with use_rslora */
    char **targets;     /* target_modules */
    int ntargets;
    int *layers;        /* layers_to_transform, NULL: every layer */
    int nlayers;
    st_archive st;
} peft_adapter;

/* One target projection of an adapter with its tensors as fp32 copies. */
typedef struct {
    int module;   /* index in transformer_modules(m) */
    float *a;     /* lora_A [r, in] */
    float *b;     /* lora_B [out, r] */
    float *mag;   /* lora_magnitude_vector [out]; NULL without DoRA */
} adapter_target;

/* 1 when dir holds an adapter_config.json. */
int adapter_dir_is_adapter(const char *dir);
int adapter_open(peft_adapter *a, const char *dir);
void adapter_close(peft_adapter *a);
/* Applies the adapter to m's target projections: merged into an owned fp32 matrix (fp32 bases,
 * or every target with merge_all), else attached for the forward. Every tensor of the adapter
 * must be used, with the shapes the model gives; the error names the first one that is not. */
int adapter_apply(transformer_model *m, const peft_adapter *a, int merge_all);
/* The projections of m that a targets (PEFT's rule), in transformer_modules order, with their
 * tensors: *out (adapter_targets_free) and *n. Every tensor of the adapter must be used, with
 * the shapes the model gives; the error names the first one that is not. */
int adapter_targets_load(const peft_adapter *a, transformer_model *m, adapter_target **out,
                         int *n);
void adapter_targets_free(adapter_target *t, int n);
/* DoRA's weight norm (PEFT's get_weight_norm): norm[o] = ‖W_o + s·B_o·A‖ for every row of w, in
 * double, a block of rows of W widened at a time. */
void adapter_row_norms(const linear_w *w, int r, float scale, const float *A, const float *B,
                       double *norm);
/* Writes out_dir (created when missing) as a model directory: model.safetensors with every
 * tensor of m's checkpoint, the adapter's targets as merged (adapter_apply with merge_all) in
 * the base's dtype (bf16 rounded to nearest even; fp32 for other dtypes), every other file of
 * base_dir, and the adapter's transparency_config.json when it has one. */
int adapter_write_merged(const transformer_model *m, const peft_adapter *a, const char *base_dir,
                         const char *out_dir);

#endif
