#!/usr/bin/python3
"""Writes the reference fixtures of the C tests (run: make fixtures, Debian python3-torch).

For two tiny random DiTs (every parameter non-zero; one without time conditioning and
`backbone.` names, one with time conditioning and bare names) it stores the model directory
and the PyTorch results the C code must reproduce: raw logits, SUBS log-probs, soft-masking
λ / top-k / π / soft input / pass-2 logits, and whole sampler trajectories drawn with the
project's RNG (mirrored in tools/ref_dit.py).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ref_dit as R  # noqa: E402
import ref_dream as RD  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
FIXTURE_VERSION = 1


def save(d, name, a):
    np.save(os.path.join(d, name), np.ascontiguousarray(a))


def make_model(name, cfg, seed, prefix):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    params = R.random_params(cfg, gen, with_prefix=prefix)
    R.save_safetensors(os.path.join(d, "model.safetensors"), params, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return d, R.DiT(params, cfg)


# ---------------------------------------------------------------------------------------
# sampler reference: a line-by-line mirror of src/generate/sampler.c's draws

def step_probs(kind, t, dt, eta, t_on, t_off, a_on):
    s = t - dt
    if kind == "remdm-cap":
        a_t, a_s = 1 - t, 1 - s
        sigma = min(eta, (1 - a_s) / a_t) if a_t > 0 else eta
        return (1 - a_s - sigma * a_t) / (1 - a_t), sigma
    if kind == "remdm-loop":
        if t > t_on:
            mt = 1 - (1 - t) * a_on / (1 - t_on)
            ms = 1 - (1 - t + dt) * a_on / (1 - t_on)
            return ms / mt, 0.0
        if t <= t_off:
            mt = t * (1 - a_on) / t_off
            ms = (t - dt) * (1 - a_on) / t_off
            return (ms / mt if mt > 0 else 0.0), 0.0
        return (1 - a_on - a_on * eta) / (1 - a_on), eta
    return s / t, 0.0


def draw_token(logp_row, u, top_p):
    p = torch.exp(logp_row).numpy().astype(np.float32)
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order], dtype=np.float32)
        keep = np.ones_like(p, dtype=bool)
        keep_sorted = cum <= np.float32(top_p)
        keep_sorted[0] = True
        keep[order] = keep_sorted
        p = np.where(keep, p, 0).astype(np.float32)
    return R.categorical_inverse_cdf(p, u)


def reference_sample(model, cfg, x0, fixed, kind, steps, seed, top_p=1.0, sm=None,
                     eta=0.02, t_on=0.55, t_off=0.05, a_on=0.9, rngs=None, semi_ar=False):
    """semi_ar: one round of MDLM's sample_subs_guidance, int(1/dt) + 1 updates at
    t = 1 − i·dt with dt = 1/steps (the last, at t ≈ 0, reveals everything) and the argmax at
    t = 0; rngs then carries the per-sequence generators from round to round."""
    mask = cfg["mask_token_id"]
    B, T = x0.shape
    x = x0.clone()
    if rngs is None:
        rngs = [R.Rng(seed + b) for b in range(B)]
    eps = 0.0 if semi_ar else 1e-5
    dt = 1.0 / steps if semi_ar else (1 - eps) / steps
    updates = int(1 / dt) + 1 if semi_ar else steps
    cache_ok = kind != "ddpm" and not cfg["time_conditioning"]
    prev_logp, prev_x = None, None
    forwards = 0
    traj = []

    masked0 = (x0 == mask).sum(dim=1)

    def real_forward(x, t):
        nonlocal prev_logp, prev_x, forwards
        sigma = R.sigma_of_t(torch.full((B,), t, dtype=torch.float64)).float()
        if sm is not None and prev_logp is not None:
            scale, centre, steep, k = sm[:4]
            if len(sm) > 4:  # the λ schedule, per canvas (smdlm's rule for MDLM)
                masked = (x == mask).sum(dim=1)
                scale = torch.tensor([[RD.time_dependence(int(masked0[b]), int(masked[b]),
                                                          float(scale), sm[4])]
                                      for b in range(B)], dtype=torch.float32)
            lam, _, _, idx, w, _ = R.sm_feedback(prev_logp, x, mask, scale, centre, steep, k)
            logits = model.forward(x, sigma, soft=(idx, w))
        else:
            logits = model.forward(x, sigma)
        prev_logp = R.subs(logits, x, mask)
        prev_x = x.clone()
        forwards += 1

    cached = False
    for i in range(updates):
        t = 1.0 - i * dt
        if not cached:
            real_forward(x, t)
        # the semi-autoregressive grid's last update (s ≤ 0) reveals everything
        stay, remask = step_probs(kind, t, dt, eta, t_on, t_off, a_on) if t - dt > 0 else (0, 0)
        changed = 0
        for b in range(B):
            r = rngs[b]
            for j in range(T):
                if fixed[b, j]:
                    continue
                if x[b, j] == mask:
                    if r.uniform() < stay:
                        continue
                    x[b, j] = draw_token(prev_logp[b, j], r.uniform(), top_p)
                    changed += 1
                elif remask > 0 and r.uniform() < remask:
                    x[b, j] = mask
                    changed += 1
        cached = cache_ok and changed == 0
        traj.append(x.clone())
    if (x == mask).any():
        real_forward(x, eps)
        x = torch.where(x == mask, prev_logp.argmax(-1), x)
    traj.append(x.clone())
    return torch.stack(traj).to(torch.int32), forwards


def sm_values(scale, centre, steep, k, schedule=None):
    """Transformed values as float32 scalars, as the C side reads them from JSON; then the λ
    schedule, if any."""
    f = lambda v: torch.tensor(v, dtype=torch.float32)
    return (f(scale), f(centre), f(steep), k) + ((schedule,) if schedule else ())


def write_variants(cfg, seed):
    """The `tiny` weights again as BF16 (logits from the bf16-rounded weights) and as a
    two-shard checkpoint with model.safetensors.index.json (logits equal to `tiny`)."""
    gen = torch.Generator().manual_seed(seed)
    params = R.random_params(cfg, gen, with_prefix=True)
    ids = torch.from_numpy(np.load(os.path.join(OUT, "tiny", "ref", "ids.npy")).astype(np.int64))
    sigma = torch.from_numpy(np.load(os.path.join(OUT, "tiny", "ref", "sigma.npy")))

    d = os.path.join(OUT, "tiny-bf16")
    os.makedirs(os.path.join(d, "ref"), exist_ok=True)
    bf = {k: v.to(torch.bfloat16) for k, v in params.items()}
    R.save_safetensors(os.path.join(d, "model.safetensors"), bf)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with torch.no_grad():
        logits = R.DiT({k: v.float() for k, v in bf.items()}, cfg).forward(ids, sigma)
    save(os.path.join(d, "ref"), "logits.npy", logits.numpy())

    d = os.path.join(OUT, "tiny-sharded")
    os.makedirs(d, exist_ok=True)
    names = sorted(params)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for fname, keys in shards.items():
        R.save_safetensors(os.path.join(d, fname), {k: params[k] for k in keys})
        weight_map.update({k: fname for k in keys})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(v.numel() * 4 for v in params.values())},
                   "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def main():
    torch.manual_seed(0)
    base = dict(model_type="mdlm", vocab_size=67, hidden_dim=64, n_heads=4, n_blocks=2,
                cond_dim=32, model_length=32, mask_token_id=66)
    models = [("tiny", dict(base, time_conditioning=False), 1, True),
              ("tiny-tc", dict(base, time_conditioning=True), 2, False)]
    for name, cfg, seed, prefix in models:
        d, model = make_model(name, cfg, seed, prefix)
        ref = os.path.join(d, "ref")
        os.makedirs(ref, exist_ok=True)
        gen = torch.Generator().manual_seed(100 + seed)
        B, T, V, mask = 2, 24, cfg["vocab_size"], cfg["mask_token_id"]
        ids = torch.randint(0, V - 1, (B, T), generator=gen)
        masked = torch.rand(B, T, generator=gen) < 0.6
        ids = torch.where(masked, torch.full_like(ids, mask), ids)
        t = torch.tensor([0.3, 0.8])
        sigma = R.sigma_of_t(t)
        with torch.no_grad():
            logits = model.forward(ids, sigma)
            subs = R.subs(logits, ids, mask)
            # soft-masking: feedback from this forward into a canvas with a few more tokens
            ids2 = ids.clone()
            reveal = masked & (torch.rand(B, T, generator=gen) < 0.3)
            ids2[reveal] = torch.randint(0, V - 1, (int(reveal.sum()),), generator=gen)
            smv = sm_values(0.7, -1.2, 4.0, 3)
            lam, top_i, pi, idx, w, neg_h = R.sm_feedback(subs, ids2, mask, *smv)
            soft_x = model.embed_soft(idx, w)
            logits2 = model.forward(ids2, sigma, soft=(idx, w))
            causal = model.forward(ids, sigma, causal=True)
        save(ref, "ids.npy", ids.numpy().astype(np.int32))
        save(ref, "t.npy", t.numpy().astype(np.float32))
        save(ref, "sigma.npy", sigma.numpy().astype(np.float32))
        save(ref, "logits.npy", logits.numpy())
        save(ref, "subs.npy", subs.numpy())
        save(ref, "ids2.npy", ids2.numpy().astype(np.int64))
        save(ref, "sm_lambda.npy", lam.numpy())
        save(ref, "sm_neg_entropy.npy", neg_h.numpy())
        save(ref, "sm_topk_idx.npy", top_i.numpy().astype(np.int32))
        save(ref, "sm_topk_pi.npy", pi.numpy())
        save(ref, "sm_soft_input.npy", soft_x.numpy())
        save(ref, "logits_pass2.npy", logits2.numpy())
        save(ref, "logits_causal.npy", causal.numpy())
        with open(os.path.join(ref, "sm_config.json"), "w") as f:
            json.dump({"transparency_alg": "mixinputs_with_topk", "transparency_scale": 0.7,
                       "transparency_centre": -1.2, "transparency_steepness": 4.0,
                       "mixinputs_k": 3, "mixture_temp": 1.0,
                       "transparency_scheduling": "none"}, f)

        # sampler trajectories (same RNG stream as the C sampler)
        cases = [("ddpm_cache", 8, 1.0, None, 0), ("ddpm_cache", 40, 1.0, None, 0),
                 ("ddpm_cache", 12, 0.9, None, 4), ("ddpm", 10, 1.0, None, 0),
                 ("ddpm_cache", 12, 1.0, sm_values(0.9, -2.0, 3.0, 3), 4),
                 ("remdm-cap", 16, 1.0, None, 4), ("remdm-loop", 20, 1.0, None, 0),
                 ("remdm-loop", 20, 1.0, sm_values(0.6, -1.0, 5.0, 2), 3),
                 ("ddpm_cache", 12, 1.0, sm_values(0.9, -2.0, 3.0, 3, "linear"), 4),
                 ("remdm-loop", 20, 1.0, sm_values(0.6, -1.0, 5.0, 2, "stepwise"), 3)]
        lines = []
        for ci, (kind, steps, top_p, sm, prompt) in enumerate(cases):
            x0 = torch.full((B, T), mask, dtype=torch.long)
            fixed = torch.zeros(B, T, dtype=torch.bool)
            if prompt:
                x0[:, :prompt] = torch.randint(0, V - 1, (B, prompt), generator=gen)
                fixed[:, :prompt] = True
            with torch.no_grad():
                traj, forwards = reference_sample(model, cfg, x0, fixed, kind, steps, 1234 + ci,
                                                  top_p=top_p, sm=sm)
            save(ref, f"sample{ci}_x0.npy", x0.numpy().astype(np.int32))
            save(ref, f"sample{ci}_traj.npy", traj.numpy())
            lines.append(dict(case=ci, sampler=kind, steps=steps, top_p=top_p, prompt=prompt,
                              seed=1234 + ci, forwards=forwards,
                              sm=None if sm is None else dict(
                                  scale=float(sm[0]), centre=float(sm[1]),
                                  steepness=float(sm[2]), k=sm[3],
                                  **({"schedule": sm[4]} if len(sm) > 4 else {}))))
        with open(os.path.join(ref, "samplers.json"), "w") as f:
            json.dump(dict(version=FIXTURE_VERSION, cases=lines), f, indent=1)
        print(f"{name}: wrote {ref}")
    write_variants(models[0][1], models[0][2])
    print("tiny-bf16, tiny-sharded: written")


if __name__ == "__main__":
    main()
