"""Fixtures for tests/test_adapter.c: PEFT LoRA and DoRA adapters on the tiny Dream and LLaDA
models (tests/gen_dream_fixtures.py), in the layout PEFT's save_pretrained writes
(adapter_config.json, adapter_model.safetensors with base_model.model.<module>.lora_A.weight,
.lora_B.weight, .lora_magnitude_vector), and the adapted models' logits.

The reference applies PEFT's published formulas: for W [out, in], A [r, in], B [out, r],
s = lora_alpha / r (use_rslora: / sqrt(r)),
  LoRA  y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ
  DoRA  y = (m / ‖W + s·B·A‖_row) ⊙ (x·Wᵀ + s·(x·Aᵀ)·Bᵀ) + b
The script checks that each adapted projection's on-the-fly form equals the merged weight
diag(m / ‖W + s·B·A‖)·(W + s·B·A) (PEFT's merge), then runs tools/ref_dream.py's forward on the
merged weights (computed in float64). Run with Debian's /usr/bin/python3 after
tests/gen_dream_fixtures.py (`make fixtures`).
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
PREFIX = "base_model.model."


def peft_config(base, r, alpha, targets, dora=False, rslora=False, layers=None):
    """adapter_config.json as PEFT 0.13 writes it for a LoraConfig."""
    return {"alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": base,
            "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
            "init_lora_weights": True, "layer_replication": None, "layers_pattern": None,
            "layers_to_transform": layers, "loftq_config": {}, "lora_alpha": alpha,
            "lora_dropout": 0.05, "megatron_config": None, "megatron_core": "megatron.core",
            "modules_to_save": None, "peft_type": "LORA", "r": r, "rank_pattern": {},
            "revision": None, "target_modules": targets, "task_type": "CAUSAL_LM",
            "use_dora": dora, "use_rslora": rslora}


def modules(cfg, P):
    """(module name, layer) of every layer projection, as the base model names them."""
    out = []
    for i in range(cfg.L):
        for n in R.names(cfg, i)[1:]:
            mod = n[:-len(".weight")] if n.endswith(".weight") else n
            if mod + ".weight" in P:
                out.append((mod, i))
    return out


def is_target(mod, layer, targets, layers):
    if layers is not None and layer not in layers:
        return False
    return any(mod == t or mod.endswith("." + t) for t in targets)


def on_the_fly(x, W, b, A, B, s, mag):
    """PEFT's forward of a LoRA / DoRA Linear (lora/layer.py, dora.py)."""
    base = F.linear(x, W, b)
    lora = F.linear(F.linear(x, A), B) * s
    if mag is None:
        return base + lora
    norm = torch.linalg.norm(W + s * (B @ A), dim=1)
    f = mag / norm
    base_nobias = base - b if b is not None else base
    return base + (f - 1) * base_nobias + f * lora


def make_adapter(name, base_name, cfg_kwargs, seed):
    base_dir = os.path.join(FIX, base_name)
    cfg, P = R.load_dir(base_dir)
    conf = peft_config(os.path.join("..", base_name), **cfg_kwargs)
    gen = torch.Generator().manual_seed(seed)
    r, s = conf["r"], conf["lora_alpha"] / (math.sqrt(conf["r"]) if conf["use_rslora"]
                                            else conf["r"])
    tensors, merged = {}, dict(P)
    for mod, layer in modules(cfg, P):
        if not is_target(mod, layer, conf["target_modules"], conf["layers_to_transform"]):
            continue
        W = P[mod + ".weight"].double()
        out, inp = W.shape
        A = torch.randn(r, inp, generator=gen, dtype=torch.float64) * 0.2
        B = torch.randn(out, r, generator=gen, dtype=torch.float64) * 0.2
        Wd = W + s * (B @ A)
        mag = None
        if conf["use_dora"]:
            mag = torch.linalg.norm(Wd, dim=1) * (1 + 0.3 * torch.rand(out, generator=gen,
                                                                     dtype=torch.float64))
            Wd = (mag / torch.linalg.norm(Wd, dim=1))[:, None] * Wd
            tensors[PREFIX + mod + ".lora_magnitude_vector"] = mag.float()
        tensors[PREFIX + mod + ".lora_A.weight"] = A.float()
        tensors[PREFIX + mod + ".lora_B.weight"] = B.float()
        b = P.get(mod + ".bias")
        x = torch.randn(5, inp, generator=gen, dtype=torch.float64)
        y = on_the_fly(x, W, b.double() if b is not None else None, A, B, s, mag)
        ref = F.linear(x, Wd, b.double() if b is not None else None)
        assert torch.allclose(y, ref, atol=1e-10), mod
        merged[mod + ".weight"] = Wd
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)
    R.save_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors, {"format": "pt"})
    ids = torch.from_numpy(np.load(os.path.join(base_dir, "ids.npy"))).long()
    with torch.no_grad():
        logits = R.forward(cfg, {k: v.float() for k, v in merged.items()}, ids)
    np.save(os.path.join(d, "logits.npy"), logits.numpy().astype(np.float32))
    if "bf16" in base_name:  # what `smdlm merge` writes: the merged targets rounded to bf16
        rounded = {k: v.float().to(torch.bfloat16).float() for k, v in merged.items()}
        with torch.no_grad():
            logits = R.forward(cfg, rounded, ids)
        np.save(os.path.join(d, "logits_merged_bf16.npy"), logits.numpy().astype(np.float32))


def main():
    qkvo = ["q_proj", "k_proj", "v_proj", "o_proj"]
    make_adapter("tiny-dream-lora", "tiny-dream", dict(r=4, alpha=8, targets=qkvo), 11)
    make_adapter("tiny-dream-dora", "tiny-dream",
                 dict(r=4, alpha=4, targets=qkvo + ["gate_proj", "down_proj"], dora=True,
                      layers=[1]), 12)
    make_adapter("tiny-dream-bf16-dora", "tiny-dream-bf16",
                 dict(r=2, alpha=2, targets=qkvo, dora=True), 13)
    make_adapter("tiny-llada-dora", "tiny-llada",
                 dict(r=4, alpha=4, targets=["q_proj", "k_proj", "v_proj", "attn_out", "ff_out"],
                      dora=True, rslora=True), 14)
    print("wrote tiny-dream-lora, tiny-dream-dora, tiny-dream-bf16-dora, tiny-llada-dora")


if __name__ == "__main__":
    main()
