"""PyTorch reference of Dream (modeling_dream.py) and LLaDA (modeling_llada.py, LLaMA block),
their logit shift and Dream's soft-masking input (IBM coding/patches/dream_sm.patch).

Written from the reference modeling files, operation for operation, without transformers:
used offline by tests/gen_dream_fixtures.py (fixtures for tests/test_transformer.c) and
bench/bench_dream_torch.py. Run with Debian's /usr/bin/python3. Computation is fp32; a
bf16 checkpoint is upcast (the "bf16 weights, fp32 compute" reference).
"""
import glob
import json
import math
import os

import torch
import torch.nn.functional as F

import ref_dit  # safetensors reader/writer

load_safetensors = ref_dit.load_safetensors
save_safetensors = ref_dit.save_safetensors


# ----------------------------------------------------------------------------------------
# config

class Cfg:
    """The fields both families need, from a config.json dict."""

    def __init__(self, d):
        self.family = d["model_type"]
        if self.family == "Dream":
            self.V = d["vocab_size"]
            self.D = d["hidden_size"]
            self.L = d["num_hidden_layers"]
            self.H = d["num_attention_heads"]
            self.KVH = d.get("num_key_value_heads") or self.H
            self.F = d["intermediate_size"]
            self.eps = d.get("rms_norm_eps", 1e-6)
            self.theta = d.get("rope_theta", 10000.0)
            self.tie = d.get("tie_word_embeddings", False)
            self.qkv_bias = True
            self.mask_id = d["mask_token_id"]
            self.shift = True
        elif self.family == "llada":
            self.V = d.get("embedding_size") or d["vocab_size"]
            self.D = d["d_model"]
            self.L = d["n_layers"]
            self.H = d["n_heads"]
            self.KVH = d.get("n_kv_heads") or self.H
            self.F = d.get("mlp_hidden_size") or d.get("mlp_ratio", 4) * self.D
            self.eps = d.get("rms_norm_eps", 1e-5)
            self.theta = d.get("rope_theta", 10000.0)
            self.tie = d.get("weight_tying", True)
            self.qkv_bias = d.get("include_qkv_bias", False)
            self.mask_id = d.get("mask_token_id", 126336)
            self.shift = False
        else:
            raise ValueError(d["model_type"])
        self.hd = self.D // self.H


def load_dir(path):
    """config.json + model.safetensors or its shards (listed by the index) → (Cfg, params)."""
    with open(os.path.join(path, "config.json")) as f:
        cfg = Cfg(json.load(f))
    index = os.path.join(path, "model.safetensors.index.json")
    params = {}
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for fn in files:
        params.update(load_safetensors(os.path.join(path, fn)))
    return cfg, {k: v.float() for k, v in params.items()}


# ----------------------------------------------------------------------------------------
# shared pieces (modeling_dream.py names)

def rms_norm(x, w, eps):
    """DreamRMSNorm / LLaDA RMSLayerNorm: fp32 variance, x·rsqrt(var + eps), times weight
    (float64 stays float64)."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    variance = x.pow(2).mean(-1, keepdim=True)
    x = x * torch.rsqrt(variance + eps)
    return w * x


def rotary_cos_sin(T, dim, base):
    """Default rope init: inv_freq in fp32, freqs = inv_freq ⊗ positions, cos/sin in fp32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    pos = torch.arange(T).float()
    freqs = (inv_freq[:, None] @ pos[None, :]).transpose(0, 1)  # [T, dim/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(h, n_rep):
    b, kvh, t, hd = h.shape
    if n_rep == 1:
        return h
    return h[:, :, None, :, :].expand(b, kvh, n_rep, t, hd).reshape(b, kvh * n_rep, t, hd)


def names(cfg, i):
    """(attn_norm, q, k, v, o, ffn_norm, gate, up, down) tensor names of layer i."""
    if cfg.family == "Dream":
        p = f"model.layers.{i}."
        return (p + "input_layernorm.weight", p + "self_attn.q_proj", p + "self_attn.k_proj",
                p + "self_attn.v_proj", p + "self_attn.o_proj.weight",
                p + "post_attention_layernorm.weight", p + "mlp.gate_proj.weight",
                p + "mlp.up_proj.weight", p + "mlp.down_proj.weight")
    p = f"model.transformer.blocks.{i}."
    return (p + "attn_norm.weight", p + "q_proj", p + "k_proj", p + "v_proj",
            p + "attn_out.weight", p + "ff_norm.weight", p + "ff_proj.weight",
            p + "up_proj.weight", p + "ff_out.weight")


def embed_name(cfg):
    return "model.embed_tokens.weight" if cfg.family == "Dream" else "model.transformer.wte.weight"


def head_name(cfg):
    if cfg.tie:
        return embed_name(cfg)
    return "lm_head.weight" if cfg.family == "Dream" else "model.transformer.ff_out.weight"


def final_norm_name(cfg):
    return "model.norm.weight" if cfg.family == "Dream" else "model.transformer.ln_f.weight"


# ----------------------------------------------------------------------------------------
# forward (DreamAttention eager path / LLaDALlamaBlock; no causal mask, no padding)

def q8_linear(x, w, b=None):
    """smdlm's q8 product: each row of x rounded like a q8 weight row (scale max|x|/127,
    round half to even), then the product with the (already rounded) weights."""
    amax = x.abs().amax(dim=-1, keepdim=True)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    return F.linear(torch.round(x * inv) * (amax / 127.0), w, b)


def layer(cfg, P, i, x, cos, sin, kv=None, window=None, proj=None):
    """kv: None, or a list of per-layer (k, v) after rotary: without a window this forward fills
    it (a refresh); with window = (lo, hi), x holds positions [lo, hi) only and attends to the
    stored keys/values of every other position, its own replacing [lo, hi) (Fast-dLLM's prefix
    and dual caches: the cached positions keep the canvas of the refresh). proj(weight name, input,
    bias) computes a projection (default F.linear; forward's linear=q8_linear; an adapter's forward
    in tests/gen_tfgrad_fixtures.py)."""
    proj = proj or (lambda name, h, b: F.linear(h, P[name], b))
    n_norm1, n_q, n_k, n_v, n_o, n_norm2, n_gate, n_up, n_down = names(cfg, i)
    B, T, _ = x.shape
    residual = x
    h = rms_norm(x, P[n_norm1], cfg.eps)
    bias = (lambda n: P[n + ".bias"]) if cfg.qkv_bias else (lambda n: None)
    q = proj(n_q + ".weight", h, bias(n_q))
    k = proj(n_k + ".weight", h, bias(n_k))
    v = proj(n_v + ".weight", h, bias(n_v))
    q = q.view(B, T, cfg.H, cfg.hd).transpose(1, 2)
    k = k.view(B, T, cfg.KVH, cfg.hd).transpose(1, 2)
    v = v.view(B, T, cfg.KVH, cfg.hd).transpose(1, 2)
    c, s = cos[None, None], sin[None, None]
    q = q * c + rotate_half(q) * s
    k = k * c + rotate_half(k) * s
    if kv is not None and window is None:
        kv.append((k, v))
    elif window is not None:
        lo, hi = window
        ck, cv = kv[i]
        k = torch.cat([ck[:, :, :lo], k, ck[:, :, hi:]], dim=2)
        v = torch.cat([cv[:, :, :lo], v, cv[:, :, hi:]], dim=2)
    k = repeat_kv(k, cfg.H // cfg.KVH)
    v = repeat_kv(v, cfg.H // cfg.KVH)
    w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(cfg.hd)
    w = F.softmax(w, dim=-1, dtype=torch.promote_types(w.dtype, torch.float32))
    a = torch.matmul(w, v).transpose(1, 2).reshape(B, T, cfg.H * cfg.hd)
    x = residual + proj(n_o, a, None)
    residual = x
    h = rms_norm(x, P[n_norm2], cfg.eps)
    h = proj(n_down, F.silu(proj(n_gate, h, None)) * proj(n_up, h, None), None)
    return residual + h


def forward(cfg, P, ids=None, inputs_embeds=None, kv=None, window=None, linear=F.linear, proj=None):
    """Raw logits [B, T, V] (no shift). Either ids [B, T] or inputs_embeds [B, T, D]. kv and
    window as layer's; with a window the logits are those of positions [lo, hi).
    linear=q8_linear with q8_params gives smdlm's --quant q8 (every projection and the head);
    proj as for layer() (the head stays `linear`)."""
    proj = proj or (lambda name, h, b: linear(h, P[name], b))
    x = P[embed_name(cfg)][ids] if inputs_embeds is None else inputs_embeds
    cos, sin = rotary_cos_sin(x.shape[1], cfg.hd, cfg.theta)
    if window is not None:
        lo, hi = window
        x, cos, sin = x[:, lo:hi], cos[lo:hi], sin[lo:hi]
    for i in range(cfg.L):
        x = layer(cfg, P, i, x, cos, sin, kv, window, proj)
    x = rms_norm(x, P[final_norm_name(cfg)], cfg.eps)
    return linear(x, P[head_name(cfg)])


def shift_logits(logits):
    """Dream: the prediction for position i is output row i − 1 (generation_utils.py)."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


# ----------------------------------------------------------------------------------------
# soft-masking (dream_sm.patch: softmasking_utils.get_mixing_factors_for_softmasking with
# transparency_alg "mixinputs_with_topk", schedule "none", temperature 1)

def sm_mixing_factors(input_ids, logits, mask_id, scale, steepness, centre, k):
    xt_one_hot = F.one_hot(input_ids, num_classes=logits.shape[-1]).to(logits.dtype)
    p = torch.softmax(logits, dim=-1)
    neg_entropy = torch.sum(p * torch.log(p + 1e-10), dim=-1)
    if scale == 0.0:
        lam = torch.zeros_like(neg_entropy)[..., None]
    else:
        lam = scale * torch.sigmoid(steepness * (neg_entropy - centre))
        lam = torch.where(input_ids == mask_id, lam, torch.zeros_like(lam))[..., None]
    topk_logits, topk_idx = torch.topk(logits, k=k, dim=-1)
    probs = torch.zeros_like(logits)
    probs.scatter_(-1, topk_idx, torch.softmax(topk_logits, dim=-1))
    return (1 - lam) * xt_one_hot + lam * probs


def time_dependence(max_gen_length, num_mask_token, scale, schedule):
    """IBM dream_sm.patch get_time_dependence (sm_to_hm = True, threshold 0.5)."""
    t = num_mask_token / max_gen_length if max_gen_length else 1.0
    if schedule == "none":
        return scale
    if schedule == "linear":
        return scale * t
    if schedule == "stepwise":
        return scale if t > 0.5 else 0
    raise ValueError(f"Unknown schedule: {schedule}")


def sm_forward(cfg, P, ids, prev_raw, sm):
    """The second pass of a sampler: prev_raw is the previous forward's raw output; Dream
    shifts it first (the patch mixes with the shifted `logits` of the step), LLaDA does not.
    inputs_embeds = p_sm @ E as in the patch."""
    prev = shift_logits(prev_raw) if cfg.shift else prev_raw
    p_sm = sm_mixing_factors(ids, prev, cfg.mask_id, sm["transparency_scale"],
                             sm["transparency_steepness"], sm["transparency_centre"],
                             sm["mixinputs_k"])
    return forward(cfg, P, inputs_embeds=torch.matmul(p_sm, P[embed_name(cfg)]))


# ----------------------------------------------------------------------------------------
# random tiny models

def random_params(cfg, gen, dtype=torch.float32):
    """Every parameter non-zero: weights N(0, 0.1²)-ish, norms 1 + N(0, 0.1²), biases
    N(0, 0.1²)."""
    def r(*shape, s=0.1, mean=0.0):
        return (torch.randn(*shape, generator=gen) * s + mean).to(dtype)

    D, QD, KD = cfg.D, cfg.H * cfg.hd, cfg.KVH * cfg.hd
    P = {embed_name(cfg): r(cfg.V, D, s=0.5), final_norm_name(cfg): r(D, mean=1.0)}
    if not cfg.tie:
        P[head_name(cfg)] = r(cfg.V, D, s=0.2)
    for i in range(cfg.L):
        n_norm1, n_q, n_k, n_v, n_o, n_norm2, n_gate, n_up, n_down = names(cfg, i)
        P[n_norm1] = r(D, mean=1.0)
        P[n_q + ".weight"] = r(QD, D, s=0.2)
        P[n_k + ".weight"] = r(KD, D, s=0.2)
        P[n_v + ".weight"] = r(KD, D, s=0.2)
        if cfg.qkv_bias:
            P[n_q + ".bias"] = r(QD)
            P[n_k + ".bias"] = r(KD)
            P[n_v + ".bias"] = r(KD)
        P[n_o] = r(D, QD, s=0.15)
        P[n_norm2] = r(D, mean=1.0)
        P[n_gate] = r(cfg.F, D, s=0.15)
        P[n_up] = r(cfg.F, D, s=0.15)
        P[n_down] = r(D, cfg.F, s=0.15)
    return P


def save_sharded(path, params, nshards):
    """Shards named like Hugging Face's, plus model.safetensors.index.json."""
    for old in glob.glob(os.path.join(path, "model*.safetensors*")):
        os.remove(old)
    names_ = list(params)
    if nshards == 1:
        save_safetensors(os.path.join(path, "model.safetensors"), params, {"format": "pt"})
        return
    per = (len(names_) + nshards - 1) // nshards
    weight_map, total = {}, 0
    for s in range(nshards):
        fn = f"model-{s + 1:05d}-of-{nshards:05d}.safetensors"
        part = {n: params[n] for n in names_[s * per:(s + 1) * per]}
        save_safetensors(os.path.join(path, fn), part, {"format": "pt"})
        for n, t in part.items():
            weight_map[n] = fn
            total += t.numel() * t.element_size()
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def q8_round(w):
    """Symmetric int8 with one scale per output row (smdlm --quant q8): scale = max|row|/127,
    q = round-half-even(w · 127/max|row|), w ≈ scale · q."""
    amax = w.abs().amax(dim=1, keepdim=True)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    q = torch.clamp(torch.round(w * inv), -127, 127)
    return q * (amax / 127.0)


def q8_params(cfg, P):
    """Every projection and the (untied) output head rounded as q8; embeddings, norms and
    biases unchanged."""
    assert not cfg.tie
    out = dict(P)
    for i in range(cfg.L):
        n = names(cfg, i)
        for name in (n[1] + ".weight", n[2] + ".weight", n[3] + ".weight", n[4], n[6], n[7],
                     n[8]):
            out[name] = q8_round(P[name])
    out[head_name(cfg)] = q8_round(P[head_name(cfg)])
    return out
