"""Fixtures for tests/test_tfgrad.c: the loss of the coding fine-tuning (IBM's
coding/train/components: `loss_calc: model_weighted`) on the tiny Dream and LLaDA models with
the PEFT adapters of tests/gen_adapter_fixtures.py, and its gradients with respect to the
adapters' lora_A, lora_B and lora_magnitude_vector and the three raw soft-masking scalars, by
PyTorch autograd in float64. The base weights are frozen.

The loss (docs/DESIGN.md §3.7): labels are the clean ids at the masked positions; Dream's model
computes transformers' ForCausalLMLoss (labels shifted by one: output row i − 1 predicts
position i, so a mask at position 0 counts for nothing), LLaDA's row i predicts position i;
the mean cross-entropy over the counted positions of the whole batch, times 1/t (one t per
batch). PEFT's forward of an adapted Linear with dropout 0 (lora/layer.py, dora.py):
  LoRA  y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ
  DoRA  y = x·Wᵀ + b + (f − 1)·x·Wᵀ + f·s·(x·Aᵀ)·Bᵀ,  f = m / ‖W + s·B·A‖_row, the norm detached
Two-pass soft-masking (trainer.py compute_loss, transparency_head.py): pass 1 without
gradient, its logits shifted for Dream; λ = scale·sigmoid(steepness·(negH − centre)) from the
raw scalars; the pass-2 input (1 − λ)·E[m] + λ·Σ_j π_j E[v_j] at masked positions.

Run with Debian's /usr/bin/python3 after tests/gen_adapter_fixtures.py (`make fixtures`).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import ref_dream as R  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
OUT = os.path.join(FIX, "tfgrad")
PREFIX = "base_model.model."


def load_adapter(name):
    d = os.path.join(FIX, name)
    with open(os.path.join(d, "adapter_config.json")) as f:
        conf = json.load(f)
    r = conf["r"]
    s = conf["lora_alpha"] / (math.sqrt(r) if conf["use_rslora"] else r)
    tensors = R.load_safetensors(os.path.join(d, "adapter_model.safetensors"))
    params = {k: v.double().clone().requires_grad_(True) for k, v in tensors.items()}
    return s, params


def adapter_proj(P, s, params):
    """PEFT's forward of each projection (the plain Linear where the module is no target)."""
    def proj(name, x, b):
        W = P[name]
        mod = PREFIX + name[:-len(".weight")]
        if mod + ".lora_A.weight" not in params:
            return F.linear(x, W, b)
        A, B = params[mod + ".lora_A.weight"], params[mod + ".lora_B.weight"]
        base = F.linear(x, W, b)
        lora = F.linear(F.linear(x, A), B) * s
        m = params.get(mod + ".lora_magnitude_vector")
        if m is None:
            return base + lora
        norm = torch.linalg.norm(W + s * (B.detach() @ A.detach()), dim=1).detach()
        f = (m / norm)[None, None, :]
        base_nobias = base - b if b is not None else base
        return base + (f - 1) * base_nobias + f * lora
    return proj


def loss_of(cfg, logits, xt, x0, t):
    masked = xt == cfg.mask_id
    if cfg.shift:  # ForCausalLMLoss: labels[1:] against rows [:-1]
        rows, labels = logits[:, :-1], torch.where(masked, x0, -100)[:, 1:]
    else:
        rows, labels = logits, torch.where(masked, x0, -100)
    ce = F.cross_entropy(rows.reshape(-1, rows.shape[-1]), labels.reshape(-1), ignore_index=-100)
    return ce / t


def sm_input(cfg, P, proj, xt, raw, k):
    """Pass 1 (no gradient) and the mixed pass-2 input with λ differentiable in raw."""
    with torch.no_grad():
        prev = R.forward(cfg, P, ids=xt, proj=proj)
        if cfg.shift:
            prev = R.shift_logits(prev)
    scale = torch.sigmoid(raw[0])
    centre = -F.softplus(raw[1]) - 1e-6
    steep = F.softplus(raw[2]) + 1e-6
    p = torch.softmax(prev, dim=-1)
    neg_h = torch.sum(p * torch.log(p + 1e-10), dim=-1)
    lam = scale * torch.sigmoid(steep * (neg_h - centre))
    lam = torch.where(xt == cfg.mask_id, lam, torch.zeros_like(lam))[..., None]
    top, idx = torch.topk(prev, k=k, dim=-1)
    probs = torch.zeros_like(prev).scatter_(-1, idx, torch.softmax(top, dim=-1))
    onehot = F.one_hot(xt, num_classes=prev.shape[-1]).double()
    p_sm = (1 - lam) * onehot + lam * probs
    return torch.matmul(p_sm, P[R.embed_name(cfg)]), neg_h


def batch(cfg, gen, B, T, prompt_lens):
    """Clean ids (never the mask id), masks on response positions only, at least one per row."""
    x0 = torch.randint(0, cfg.mask_id, (B, T), generator=gen)
    masked = torch.rand(B, T, generator=gen) < 0.5
    for b, p in enumerate(prompt_lens):
        masked[b, :p] = False
        masked[b, p] = True
    masked[0, 0] = False
    return x0, torch.where(masked, torch.full_like(x0, cfg.mask_id), x0)


def make_case(name, base, adapter, seed, t, sm_k=0):
    cfg, P = R.load_dir(os.path.join(FIX, base))
    P = {k: v.double() for k, v in P.items()}
    s, params = load_adapter(adapter)
    proj = adapter_proj(P, s, params)
    gen = torch.Generator().manual_seed(seed)
    x0, xt = batch(cfg, gen, 2, 12, [3, 5])
    raw = None
    if sm_k:
        # centre at the mean negH of pass 1 so that λ is far from 0 and 1 (flat tiny models)
        _, neg_h = sm_input(cfg, P, proj, xt, torch.zeros(3, dtype=torch.float64), sm_k)
        centre = float(neg_h[xt == cfg.mask_id].mean())
        raw32 = np.array([math.log(0.6 / 0.4), math.log(math.expm1(-centre - 1e-6)),
                          math.log(math.expm1(1.5))], np.float32)
        raw = torch.tensor(raw32, dtype=torch.float64, requires_grad=True)
        emb, _ = sm_input(cfg, P, proj, xt, raw, sm_k)
        logits = R.forward(cfg, P, inputs_embeds=emb, proj=proj)
    else:
        logits = R.forward(cfg, P, ids=xt, proj=proj)
    loss = loss_of(cfg, logits, xt, x0, t)
    loss.backward()
    grads = {k: v.grad.float() for k, v in params.items()}
    for i, n in enumerate(("raw_scale", "raw_centre", "raw_steepness")):  # 0 without SM
        grads["softmask." + n] = (raw.grad[i:i + 1] if raw is not None else torch.zeros(1)).float()
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "xt.npy"), xt.numpy().astype(np.int32))
    np.save(os.path.join(d, "x0.npy"), x0.numpy().astype(np.int32))
    np.save(os.path.join(d, "t.npy"), np.array([t], np.float32))
    np.save(os.path.join(d, "loss.npy"), np.array([loss.item()], np.float32))
    if raw is not None:
        np.save(os.path.join(d, "sm_raw.npy"), raw32)
    R.save_safetensors(os.path.join(d, "grads.safetensors"), grads, {"format": "pt"})
    worst = max(float(g.abs().max()) for g in grads.values())
    print(f"{name}: loss {loss.item():.6f}, {len(grads)} gradients, max |g| {worst:.3g}")


def main():
    # t as float32 values, the C side reads them from t.npy
    t = float(np.float32(0.37))
    make_case("dream-lora", "tiny-dream", "tiny-dream-lora", 21, t)
    make_case("dream-dora", "tiny-dream", "tiny-dream-dora", 22, t)
    make_case("dream-bf16-dora", "tiny-dream-bf16", "tiny-dream-bf16-dora", 23, t)
    make_case("llada-dora", "tiny-llada", "tiny-llada-dora", 24, t)
    make_case("dream-lora-sm", "tiny-dream", "tiny-dream-lora", 25, t, sm_k=1)
    make_case("llada-dora-sm", "tiny-llada", "tiny-llada-dora", 26, t, sm_k=2)


if __name__ == "__main__":
    main()
