#!/usr/bin/python3
"""Reference trajectory of src/train/optim.c: torch.optim.AdamW (single-tensor path) with two
parameter groups, torch.nn.utils.clip_grad_norm_ and a LambdaLR schedule (HF's
get_cosine_schedule_with_warmup plus a floor at MIN_RATIO), and an EMA of the weights.
Written into tests/fixtures/optim/ (all float32 unless noted; P = 37 + 5 = 42 values, the two
groups back to back):

    params0.npy        [P]         initial parameters (std 0.02)
    grads.npy          [S, P]      the raw gradient of every step (before clipping)
    clipped.npy        [S, P]      the gradient after clip_grad_norm_
    params.npy         [S, P]      the parameters after every step
    ema.npy            [S, P]      EMA (decay EMA_DECAY, started from params0) after every step
    norms.npy          [S]         clip_grad_norm_'s returned total norm (float32)
    norms_f64bits.npy  [S] int64   the float64 norm of the raw gradients (numpy, all values
                                   at once), as raw IEEE bits
    lr_used.npy        [S]         the learning-rate factor LambdaLR applied at each step
    clip_raw.npy       [64, 9]     clip_grad_norm_ alone (max_norm 0.7, one tensor): inputs,
    clip_clipped.npy   [64, 9]       the clipped gradients
    clip_norms.npy     [64]          and the returned norms
    lr_tables.npy      [C, K]      lr factors of the schedule configs in LR_CONFIGS for steps
                                   0..K-1 (HF's lambdas, float64 rounded to float32)

Hyper-parameters are written as ordinary Python decimals (0.9, 3e-3, ...), as a training
script would: src/train/optim.c reads its float32 fields back as the shortest decimal that rounds
to them, so it uses the same float64 values as PyTorch.

torch.optim.AdamW runs AVX2 kernels here (torch.__config__.show(): "CPU capability usage:
AVX2"); in this build exp_avg.add_(grad, alpha) and exp_avg_sq.addcmul_ are fused
multiply-adds, which src/train/optim.c mirrors with fmaf.

Run from the repository root: /usr/bin/python3 tests/gen_optim_fixtures.py
"""
import math
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "optim")

SIZES = (37, 5)
LRS = (3e-3, 1e-2)
WDS = (0.1, 0.0)
BETAS = (0.9, 0.999)
EPS = 1e-8
MAX_NORM = 0.5
WARMUP = 3
TOTAL = 12
MIN_RATIO = 0.1
STEPS = 12
EMA_DECAY = 0.9
CLIP_CASES = 64
CLIP_N = 9
CLIP_MAX_NORM = 0.7

# (warmup, kind, total, min_ratio) — the C test lists the same configs in the same order
LR_CONFIGS = [
    (3, "cosine", 12, 0.1),
    (0, "constant", 0, 0.0),
    (5, "constant", 0, 0.0),
    (1, "constant", 0, 0.0),
    (0, "cosine", 7, 0.0),
    (4, "cosine", 10, 0.0),
    (2, "cosine", 3, 0.25),
]
LR_TABLE_STEPS = 16  # beyond `total` for the cosine configs: HF's curve rises again there


def hf_lambda(warmup, kind, total, min_ratio):
    """transformers' get_{constant,cosine}_schedule_with_warmup lambdas (num_cycles 0.5),
    the cosine one floored at min_ratio (min_ratio 0 is HF's exactly)."""
    if kind == "constant":
        def f(step):
            if step < warmup:
                return float(step) / float(max(1.0, warmup))
            return 1.0
        return f

    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(min_ratio, 0.5 * (1.0 + math.cos(math.pi * float(0.5) * 2.0 * progress)))
    return f


def save(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a))


def clip_cases(gen):
    """clip_grad_norm_ alone on CLIP_CASES single tensors of CLIP_N values, with a max_norm
    that is not a power of two (so that torch's reciprocal()·max_norm differs from a
    division); every case clips."""
    raw = torch.randn(CLIP_CASES, CLIP_N, generator=gen) * torch.linspace(0.5, 4, CLIP_CASES)[:, None]
    clipped, norms = [], []
    for k in range(CLIP_CASES):
        p = torch.nn.Parameter(torch.zeros(CLIP_N))
        p.grad = raw[k].clone()
        norms.append(torch.nn.utils.clip_grad_norm_([p], CLIP_MAX_NORM).item())
        clipped.append(p.grad.clone())
    assert min(norms) > CLIP_MAX_NORM
    save("clip_raw.npy", raw.numpy())
    save("clip_clipped.npy", torch.stack(clipped).numpy())
    save("clip_norms.npy", np.array(norms, dtype=np.float32))


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20240611)
    P = sum(SIZES)
    # std 0.02 (a transformer's initialisation): updates of ~lr are then a sizeable part of
    # each value, so an ulp in the update shows in the parameter's bits
    params = [torch.nn.Parameter(torch.randn(n, generator=gen) * 0.02) for n in SIZES]
    params0 = torch.cat([p.detach().clone() for p in params])

    # gradient scales alternate between "clipped" (global norm ~ 6.5·scale > 0.5) and not
    scales = [0.02, 0.3, 0.05, 0.01, 0.4, 0.03, 0.2, 0.015, 0.06, 1.5, 0.04, 0.1]
    assert len(scales) == STEPS
    grads = torch.stack([torch.randn(P, generator=gen) * s for s in scales])

    opt = torch.optim.AdamW(
        [{"params": [params[0]], "lr": LRS[0], "weight_decay": WDS[0]},
         {"params": [params[1]], "lr": LRS[1], "weight_decay": WDS[1]}],
        betas=BETAS, eps=EPS, foreach=False)
    lam = hf_lambda(WARMUP, "cosine", TOTAL, MIN_RATIO)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)

    ema = [p.detach().clone() for p in params]
    out_params, out_clipped, out_ema, norms, norms64, lr_used = [], [], [], [], [], []
    for k in range(STEPS):
        off = 0
        for p, n in zip(params, SIZES):
            p.grad = grads[k, off:off + n].clone()
            off += n
        norms64.append(np.sqrt(np.sum(grads[k].numpy().astype(np.float64) ** 2)))
        lr_used.append(lam(k))
        assert all(g["lr"] == lr * lam(k) for g, lr in zip(opt.param_groups, LRS))
        norms.append(torch.nn.utils.clip_grad_norm_(params, MAX_NORM).item())
        out_clipped.append(torch.cat([p.grad.clone() for p in params]))
        opt.step()
        sched.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(EMA_DECAY).add_(p, alpha=1 - EMA_DECAY)
        out_params.append(torch.cat([p.detach().clone() for p in params]))
        out_ema.append(torch.cat(ema))

    norms = np.array(norms, dtype=np.float32)
    clipped = int(np.sum(norms > MAX_NORM))
    assert 3 <= clipped <= STEPS - 3, f"clipping triggers on {clipped} of {STEPS} steps"
    assert lr_used[0] == 0.0 and min(lr_used[1:]) > 0

    save("params0.npy", params0.numpy())
    save("grads.npy", grads.numpy())
    save("clipped.npy", torch.stack(out_clipped).numpy())
    save("params.npy", torch.stack(out_params).numpy())
    save("ema.npy", torch.stack(out_ema).numpy())
    save("norms.npy", norms)
    save("norms_f64bits.npy", np.array(norms64, dtype=np.float64).view(np.int64))
    save("lr_used.npy", np.array(lr_used, dtype=np.float32))
    clip_cases(gen)
    table = np.array([[hf_lambda(*c)(s) for s in range(LR_TABLE_STEPS)] for c in LR_CONFIGS])
    save("lr_tables.npy", table.astype(np.float32))
    print(f"wrote {OUT}: {STEPS} steps, clipping on {clipped}; norms {np.round(norms, 3)}")


if __name__ == "__main__":
    main()
