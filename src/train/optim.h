/* optim.h — AdamW with parameter groups, learning-rate schedules, global grad-norm
 * clipping and EMA of weights (docs/DESIGN.md §3: backbone 3e-4, soft-masking scalars 1e-2).
 * Semantics follow torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ exactly (order of
 * operations included) so that C and PyTorch trajectories agree to float rounding. */
#ifndef SMDLM_OPTIM_H
#define SMDLM_OPTIM_H

#include <stddef.h>

#define OPTIM_MAX_GROUPS 4

typedef enum { SCHED_CONSTANT = 0, SCHED_COSINE } sched_kind;
/* The schedule by name: "constant" or "cosine", and back. */
int sched_kind_parse(const char *name, sched_kind *out);
const char *sched_kind_name(sched_kind k);
/* The shortest decimal (≤ 9 significant digits) that rounds to x, as a double: the value a
 * float hyperparameter stands for (1e-3f → 0.001). */
double optim_as_decimal(float x);

typedef struct {
    float *params; /* contiguous */
    float *grads;  /* same length */
    size_t n;
    float lr;      /* peak learning rate of the group */
    float weight_decay;
    float eps;     /* Adam's ε for this group; 0: the config's */
} optim_group;

typedef struct {
    float beta1, beta2, eps; /* 0.9, 0.999, 1e-8 */
    int warmup_steps;        /* linear from 0: factor = step / warmup while step < warmup */
    sched_kind schedule;     /* after warm-up: constant, or cosine down to min_lr_ratio */
    long total_steps;        /* cosine horizon */
    float min_lr_ratio;
    float grad_clip;         /* max global L2 norm over every group; ≤ 0 disables */
} optim_config;

typedef struct {
    optim_config cfg;
    optim_group groups[OPTIM_MAX_GROUPS];
    int ngroups;
    float *m, *v; /* one allocation: the groups' moments back to back */
    size_t nm;    /* values in m (and in v): the groups' sizes summed */
    long step;    /* number of updates done */
} adamw;

void optim_config_default(optim_config *c);
int optim_config_validate(const optim_config *c);
void adamw_init(adamw *o, const optim_config *cfg, const optim_group *groups, int ngroups);
void adamw_free(adamw *o);
/* Learning-rate multiplier for update number `step` (0-based), HF's
 * get_{constant,cosine}_schedule_with_warmup. */
float optim_lr_factor(const optim_config *c, long step);
/* Global L2 norm of all gradients (double accumulation). */
double optim_grad_norm(const adamw *o);
/* One update: clip (torch's clip_grad_norm_: coef = clip/(norm + 1e-6), clamped to 1),
 * decoupled weight decay, moments, bias-corrected step. Returns the norm before clipping. */
double adamw_step(adamw *o);
/* ema = decay·ema + (1 − decay)·params. */
void ema_update(float *ema, const float *params, size_t n, float decay);

#endif
