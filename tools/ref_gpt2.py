"""PyTorch reference of Hugging Face GPT-2 and of MDLM's generative-perplexity scoring.

Written from the architecture description (docs/DESIGN.md §4, NOTES.md "GPT-2"), not from the HF
source: learned positions, pre-LayerNorm blocks with bias, Conv1D weights stored [in, out]
(y = x·W + b), causal attention scaled by 1/√hd, GELU with the tanh approximation
("gelu_new"), final LayerNorm, head tied to the token embedding. Used offline by
tests/gen_gpt2_fixtures.py; run with Debian's /usr/bin/python3.
"""
import math

import torch
import torch.nn.functional as F


def param_names(n_layer):
    names = ["wte.weight", "wpe.weight"]
    for i in range(n_layer):
        for s in ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                  "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                  "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]:
            names.append(f"h.{i}.{s}")
    return names + ["ln_f.weight", "ln_f.bias"]


def random_params(cfg, gen):
    """Every parameter non-zero: weights N(0, 0.2²) shifted away from 0, LN weights ~1."""
    V, D, P, L = cfg["vocab_size"], cfg["n_embd"], cfg["n_positions"], cfg["n_layer"]
    shapes = {"wte.weight": (V, D), "wpe.weight": (P, D), "ln_f.weight": (D,), "ln_f.bias": (D,)}
    for i in range(L):
        shapes.update({
            f"h.{i}.ln_1.weight": (D,), f"h.{i}.ln_1.bias": (D,),
            f"h.{i}.attn.c_attn.weight": (D, 3 * D), f"h.{i}.attn.c_attn.bias": (3 * D,),
            f"h.{i}.attn.c_proj.weight": (D, D), f"h.{i}.attn.c_proj.bias": (D,),
            f"h.{i}.ln_2.weight": (D,), f"h.{i}.ln_2.bias": (D,),
            f"h.{i}.mlp.c_fc.weight": (D, 4 * D), f"h.{i}.mlp.c_fc.bias": (4 * D,),
            f"h.{i}.mlp.c_proj.weight": (4 * D, D), f"h.{i}.mlp.c_proj.bias": (D,),
        })
    out = {}
    for name in param_names(L):
        t = torch.randn(shapes[name], generator=gen) * 0.2
        t = torch.where(t.abs() < 1e-3, torch.full_like(t, 1e-3), t)
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            t = 1.0 + 0.5 * t
        out[name] = t.float()
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(p, cfg, ids):
    """ids [B, T] int64 → logits [B, T, V] (float64 internally for a clean reference)."""
    return hidden(p, cfg, ids) @ p["wte.weight"].double().T


def hidden(p, cfg, ids):
    """ids [B, T] int64 → final hidden states [B, T, D] after ln_f (HF hidden_states[-1]),
    float64."""
    p = {k: v.double() for k, v in p.items()}
    B, T = ids.shape
    D, H, eps = cfg["n_embd"], cfg["n_head"], cfg.get("layer_norm_epsilon", 1e-5)
    hd = D // H
    x = p["wte.weight"][ids] + p["wpe.weight"][torch.arange(T)][None]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(cfg["n_layer"]):
        g = lambda s: p[f"h.{i}.{s}"]  # noqa: E731
        h = layer_norm(x, g("ln_1.weight"), g("ln_1.bias"), eps)
        qkv = h @ g("attn.c_attn.weight") + g("attn.c_attn.bias")  # Conv1D: [in, out]
        q, k, v = qkv.split(D, dim=-1)
        q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))
        a = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        a = a.masked_fill(~causal, float("-inf")).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(B, T, D)
        x = x + o @ g("attn.c_proj.weight") + g("attn.c_proj.bias")
        h = layer_norm(x, g("ln_2.weight"), g("ln_2.bias"), eps)
        h = gelu_tanh(h @ g("mlp.c_fc.weight") + g("mlp.c_fc.bias"))
        x = x + h @ g("mlp.c_proj.weight") + g("mlp.c_proj.bias")
    return layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], eps)


def score(logits_of, ids, ctx, eos):
    """MDLM compute_generative_perplexity for one unpadded sample under a causal model
    (logits_of: ids [1, L] -> logits [1, L, V]): torch.split into chunks of ctx tokens, each
    scored on its own; targets counted where (target != eos) or (cumsum(chunk == eos) == 1)
    at the target. Returns (nll_sum, count)."""
    ids = torch.tensor(ids, dtype=torch.long)[None]
    total, count = 0.0, 0
    for chunk in torch.split(ids, ctx, dim=-1):
        if chunk.shape[-1] < 2:
            continue
        logits = logits_of(chunk).transpose(-1, -2)
        nlls = F.cross_entropy(logits[..., :-1], chunk[..., 1:], reduction="none")
        first_eos = (chunk == eos).cumsum(-1) == 1
        token_mask = chunk != eos
        valid = first_eos[..., 1:] | token_mask[..., 1:]
        total += float((nlls * valid).sum())
        count += int(valid.sum())
    return total, count


def unigram_entropy(ids):
    """duo metrics.py record_entropy: entropy (nats) of the sample's token-count distribution."""
    _, counts = torch.unique(torch.tensor(ids), return_counts=True)
    pr = counts.double() / counts.sum()
    return float(torch.special.entr(pr).sum())
