#!/usr/bin/python3
"""Writes tests/fixtures/semiar/cases.json: trajectories of MDLM's semi-autoregressive sampler
(kuleshov-group/mdlm diffusion.py `sample_subs_guidance`, docs/DESIGN.md §2.6) on the tiny MDLM
fixtures, which tests/test_sampler.c must reproduce token for token.

Round 0 samples a canvas of L positions; round r keeps the previous round's last L − S positions
as a fixed prefix and samples S new ones, so k strides give L + k·S tokens. Each round is
tests/gen_fixtures.py's sampler mirror on the semi-autoregressive grid (int(1/dt) + 1 updates at
t = 1 − i·dt, dt = 1/steps, then the argmax at t = 0), its per-sequence generators running on
from round to round. Run with Debian's /usr/bin/python3 (python3-torch) after
tests/gen_fixtures.py (it reads the tiny models it wrote).
"""
import json
import os

import numpy as np
import torch

import gen_fixtures as G
from gen_fixtures import R

OUT = os.path.join(G.OUT, "semiar")


def semi_ar(model, cfg, x0, fixed, L, S, kind, steps, seed, top_p=1.0, sm=None):
    """x0, fixed [B, N = L + k·S]. Returns the canvases, every round's trajectory
    [rounds·(updates + 1), B, L] and the number of forwards."""
    B, N = x0.shape
    rngs = [R.Rng(seed + b) for b in range(B)]
    x = x0.clone()
    trajs, forwards = [], 0
    for r in range(1 + (N - L) // S):
        off, keep = r * S, (L - S if r else 0)
        cx, cf = x[:, off:off + L].clone(), fixed[:, off:off + L].clone()
        cf[:, :keep] = True  # the previous round's tail: sample_subs_guidance's target
        traj, f = G.reference_sample(model, cfg, cx, cf, kind, steps, seed, top_p=top_p, sm=sm,
                                     rngs=rngs, semi_ar=True)
        x[:, off:off + L] = traj[-1]
        trajs.append(traj)
        forwards += f
    return x, torch.cat(trajs), forwards


def main():
    os.makedirs(OUT, exist_ok=True)
    # (model, L, stride, strides, sampler, steps, top_p, soft-masking, prompt length)
    cases = [("tiny", 32, 16, 2, "ddpm_cache", 8, 1.0, None, 0),
             ("tiny-tc", 24, 8, 3, "ddpm_cache", 93, 1.0, None, 0),
             ("tiny", 32, 12, 2, "ddpm", 10, 0.9, G.sm_values(0.9, -2.0, 3.0, 3), 5),
             ("tiny", 20, 20, 1, "ddpm_cache", 6, 1.0, G.sm_values(0.6, -1.0, 5.0, 2, "linear"), 3)]
    lines = []
    for ci, (name, L, S, k, kind, steps, top_p, sm, prompt) in enumerate(cases):
        d = os.path.join(G.OUT, name)
        cfg = json.load(open(os.path.join(d, "config.json")))
        model = R.DiT(R.load_safetensors(os.path.join(d, "model.safetensors")), cfg)
        gen = torch.Generator().manual_seed(500 + ci)
        B, N, V, mask = 2, L + k * S, cfg["vocab_size"], cfg["mask_token_id"]
        x0 = torch.full((B, N), mask, dtype=torch.long)
        fixed = torch.zeros(B, N, dtype=torch.bool)
        if prompt:
            x0[:, :prompt] = torch.randint(0, V - 1, (B, prompt), generator=gen)
            fixed[:, :prompt] = True
        with torch.no_grad():
            x, traj, forwards = semi_ar(model, cfg, x0, fixed, L, S, kind, steps, 700 + ci,
                                        top_p=top_p, sm=sm)
        lines.append(dict(case=ci, model=name, length=L, stride=S, sampler=kind, steps=steps,
                          top_p=top_p, seed=700 + ci, forwards=forwards,
                          x0=x0.tolist(), fixed=fixed.int().tolist(), out=x.tolist(),
                          traj=traj.tolist(),
                          sm=None if sm is None else dict(
                              scale=float(sm[0]), centre=float(sm[1]), steepness=float(sm[2]),
                              k=sm[3], **({"schedule": sm[4]} if len(sm) > 4 else {}))))
        print(f"case {ci} {name} L {L} stride {S} × {k} {kind} steps {steps}: "
              f"{traj.shape[0]} recorded steps, {forwards} forwards")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(dict(version=1, cases=lines), f, separators=(",", ":"))


if __name__ == "__main__":
    main()
