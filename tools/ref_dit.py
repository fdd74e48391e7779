"""PyTorch reference of the MDLM DiT, SUBS, soft-masking and the MDLM samplers (docs/DESIGN.md §2-4).

Written independently from the description in docs/DESIGN.md and used only offline: by
tests/gen_fixtures.py (reference fixtures for the C tests) and bench/bench_torch.py (speed and
logit comparison on the same safetensors file). Run with Debian's /usr/bin/python3.
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

NEG_INF = -1e6  # SUBS: added to the mask logit and written to carried-over rows


# ----------------------------------------------------------------------------------------
# safetensors (tiny writer/reader so the scripts need nothing beyond torch + numpy)

_ST_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
              torch.int64: "I64", torch.int32: "I32"}
_ST_TORCH = {v: k for k, v in _ST_DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = _ST_TORCH[info["dtype"]]
        buf = bytearray(data[a:b])
        if dt == torch.bfloat16:
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16)
        else:
            t = torch.frombuffer(buf, dtype=dt)
        out[name] = t.reshape(info["shape"]).clone()
    return out


# ----------------------------------------------------------------------------------------
# the network

def timestep_embedding(sigma, dim=256, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = sigma[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary_cos_sin(T, head_dim, base=10000.0):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
    t = torch.arange(T, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def layer_norm(x, w):
    return F.layer_norm(x.float(), [x.shape[-1]], eps=1e-5) * w


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class DiT:
    """Functional DiT over a dict of named fp32 tensors (names without `backbone.`)."""

    def __init__(self, params, cfg):
        self.p = {k[len("backbone."):] if k.startswith("backbone.") else k: v.float()
                  for k, v in params.items()}
        self.cfg = cfg
        self.D = cfg["hidden_dim"]
        self.H = cfg["n_heads"]
        self.L = cfg["n_blocks"]

    def cond(self, sigma):
        p = self.p
        if not self.cfg.get("time_conditioning", False):
            sigma = torch.zeros_like(sigma)
        h = timestep_embedding(sigma)
        h = F.linear(h, p["sigma_map.mlp.0.weight"], p["sigma_map.mlp.0.bias"])
        h = F.silu(h)
        h = F.linear(h, p["sigma_map.mlp.2.weight"], p["sigma_map.mlp.2.bias"])
        return F.silu(h)

    def embed(self, ids):
        return self.p["vocab_embed.embedding"][ids]

    def embed_soft(self, indices, weights):
        """Sparse soft input: Σ_j weights[...,j]·E[indices[...,j]] (IBM's k+1-row mix)."""
        return (self.p["vocab_embed.embedding"][indices] * weights.unsqueeze(-1)).sum(dim=2)

    def backbone(self, x, sigma, causal=False):
        pre = "output_layer."
        h = self.hidden(x, sigma, causal)
        return F.linear(h, self.p[pre + "linear.weight"], self.p[pre + "linear.bias"])

    def hidden(self, x, sigma, causal=False):
        """The last hidden state: the input of the output linear (after the final norm and
        modulation)."""
        p, D, H = self.p, self.D, self.H
        B, T, _ = x.shape
        hd = D // H
        c = self.cond(sigma)
        cos, sin = rotary_cos_sin(T, hd)
        for i in range(self.L):
            pre = f"blocks.{i}."
            mod = F.linear(c, p[pre + "adaLN_modulation.weight"], p[pre + "adaLN_modulation.bias"])
            sh1, sc1, g1, sh2, sc2, g2 = mod[:, None].chunk(6, dim=2)
            h = modulate(layer_norm(x, p[pre + "norm1.weight"]), sh1, sc1)
            qkv = F.linear(h, p[pre + "attn_qkv.weight"]).view(B, T, 3, H, hd)
            q, k, v = qkv.unbind(2)  # [B,T,H,hd]
            q = q * cos[None, :, None] + rotate_half(q) * sin[None, :, None]
            k = k * cos[None, :, None] + rotate_half(k) * sin[None, :, None]
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B,H,T,hd]
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            if causal:
                att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
            x = x + g1 * F.linear(o, p[pre + "attn_out.weight"])
            h = modulate(layer_norm(x, p[pre + "norm2.weight"]), sh2, sc2)
            h = F.linear(h, p[pre + "mlp.0.weight"], p[pre + "mlp.0.bias"])
            h = F.gelu(h, approximate="tanh")
            h = F.linear(h, p[pre + "mlp.2.weight"], p[pre + "mlp.2.bias"])
            x = x + g2 * h
        pre = "output_layer."
        sh, sc = F.linear(c, p[pre + "adaLN_modulation.weight"],
                          p[pre + "adaLN_modulation.bias"])[:, None].chunk(2, dim=2)
        return modulate(layer_norm(x, p[pre + "norm_final.weight"]), sh, sc)

    def forward(self, ids, sigma, soft=None, causal=False):
        x = self.embed(ids) if soft is None else self.embed_soft(*soft)
        return self.backbone(x, sigma, causal)


def random_params(cfg, gen, with_prefix=True):
    """Tiny random DiT with every parameter non-zero (adaLN and output layer included)."""
    D, C, V, F4 = cfg["hidden_dim"], cfg["cond_dim"], cfg["vocab_size"], 4 * cfg["hidden_dim"]

    def r(*shape, s=0.02, mean=0.0):
        return mean + s * torch.randn(*shape, generator=gen)

    p = {"vocab_embed.embedding": r(V, D, s=1.0),
         "sigma_map.mlp.0.weight": r(C, 256, s=0.1), "sigma_map.mlp.0.bias": r(C, s=0.1),
         "sigma_map.mlp.2.weight": r(C, C, s=0.1), "sigma_map.mlp.2.bias": r(C, s=0.1)}
    for i in range(cfg["n_blocks"]):
        pre = f"blocks.{i}."
        p[pre + "norm1.weight"] = r(D, s=0.1, mean=1.0)
        p[pre + "norm2.weight"] = r(D, s=0.1, mean=1.0)
        p[pre + "attn_qkv.weight"] = r(3 * D, D, s=D ** -0.5)
        p[pre + "attn_out.weight"] = r(D, D, s=D ** -0.5)
        p[pre + "mlp.0.weight"] = r(F4, D, s=D ** -0.5)
        p[pre + "mlp.0.bias"] = r(F4, s=0.1)
        p[pre + "mlp.2.weight"] = r(D, F4, s=F4 ** -0.5)
        p[pre + "mlp.2.bias"] = r(D, s=0.1)
        p[pre + "adaLN_modulation.weight"] = r(6 * D, C, s=0.2)
        p[pre + "adaLN_modulation.bias"] = r(6 * D, s=0.2, mean=0.3)
    pre = "output_layer."
    p[pre + "norm_final.weight"] = r(D, s=0.1, mean=1.0)
    p[pre + "linear.weight"] = r(V, D, s=D ** -0.5)
    p[pre + "linear.bias"] = r(V, s=0.1)
    p[pre + "adaLN_modulation.weight"] = r(2 * D, C, s=0.2)
    p[pre + "adaLN_modulation.bias"] = r(2 * D, s=0.2)
    if with_prefix:
        p = {"backbone." + k: v for k, v in p.items()}
    return p


# ----------------------------------------------------------------------------------------
# MDLM pieces (docs/DESIGN.md §2)

EPS_NOISE = 1e-3


def sigma_of_t(t):
    return -torch.log1p(-(1 - EPS_NOISE) * t)


def subs(logits, xt, mask_id):
    logits = logits.clone()
    logits[..., mask_id] += NEG_INF
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    unmasked = xt != mask_id
    logp[unmasked] = NEG_INF
    logp[unmasked, xt[unmasked]] = 0.0
    return logp


def nelbo(logits, xt, x0, t, mask_id):
    """Mean over all tokens of (1/t)·(−log p(x0)) on masked positions (SUBS), 0 elsewhere."""
    logp = subs(logits, xt, mask_id)
    nll = -logp.gather(-1, x0[..., None]).squeeze(-1)
    w = (xt == mask_id).float() / t[:, None]
    return (nll * w).mean()


def causal_loss(logits, x0):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), x0[:, 1:].reshape(-1))


# ----------------------------------------------------------------------------------------
# soft-masking (docs/DESIGN.md §3)

def sm_transform(raw_scale, raw_centre, raw_steep):
    scale = torch.sigmoid(raw_scale)
    centre = -F.softplus(raw_centre) - 1e-6
    steep = F.softplus(raw_steep) + 1e-6
    return scale, centre, steep


def sm_raw_from_values(scale, centre, steep):
    """Inverse of sm_transform (IBM's initialisation: logit with eps 1e-6, softplus⁻¹)."""
    raw_scale = torch.logit(torch.tensor(scale, dtype=torch.float32), eps=1e-6)
    raw_centre = torch.log(torch.expm1(torch.tensor(-centre, dtype=torch.float32)))
    raw_steep = torch.log(torch.expm1(torch.tensor(steep, dtype=torch.float32)))
    return raw_scale, raw_centre, raw_steep


def sm_feedback(prev, xt, mask_id, scale, centre, steep, k):
    """prev: [B,T,V] previous prediction (SUBS log-probs for MDLM). Returns λ [B,T],
    top-k indices [B,T,k], π [B,T,k] and the (k+1)-row (indices, weights) soft input."""
    p = torch.softmax(prev, dim=-1)
    neg_h = (p * torch.log(p + 1e-10)).sum(-1)
    masked = xt == mask_id
    lam = scale * torch.sigmoid(steep * (neg_h - centre))
    lam = torch.where(masked, lam, torch.zeros_like(lam))
    top_v, top_i = torch.topk(prev, k, dim=-1)
    pi = torch.softmax(top_v, dim=-1)
    top_i = torch.where(masked[..., None], top_i, torch.zeros_like(top_i))
    pi = torch.where(masked[..., None], pi, torch.zeros_like(pi))
    indices = torch.cat([xt[..., None], top_i], dim=-1)
    weights = torch.cat([(1 - lam)[..., None], lam[..., None] * pi], dim=-1)
    return lam, top_i, pi, indices, weights, neg_h


def sm_two_pass_loss(model, xt, x0, t, mask_id, raw, k):
    """docs/DESIGN.md §3 training step: pass 1 without gradient, SUBS log-probs (detached) → λ from
    the differentiable raw scalars, top-k and π → pass 2 on the soft input → NELBO."""
    sigma = sigma_of_t(t)
    with torch.no_grad():
        prev = subs(model.forward(xt, sigma), xt, mask_id)
    scale, centre, steep = sm_transform(*raw)
    _, _, _, idx, w, _ = sm_feedback(prev, xt, mask_id, scale, centre, steep, k)
    return nelbo(model.forward(xt, sigma, soft=(idx, w)), xt, x0, t, mask_id)


# ----------------------------------------------------------------------------------------
# the project's RNG (xoshiro256** seeded by splitmix64), mirrored from src/base/rng.c so the
# sampler reference consumes exactly the same uniforms as the C sampler.

M64 = (1 << 64) - 1


class Rng:
    def __init__(self, seed):
        s = seed & M64
        self.s = []
        for _ in range(4):
            s = (s + 0x9E3779B97F4A7C15) & M64
            z = s
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    def next_u64(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        """double in [0, 1) with 53 random bits"""
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))


def categorical_inverse_cdf(p, u):
    """Smallest index whose cumulative probability exceeds u·Σp (accumulated in float64)."""
    c = np.cumsum(p.astype(np.float64))
    target = u * c[-1]
    i = int(np.searchsorted(c, target, side="right"))
    return min(i, len(p) - 1)
