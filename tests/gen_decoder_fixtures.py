#!/usr/bin/python3
"""Writes tests/fixtures/decoder/: decoder trajectories of the tiny DiT (tests/fixtures/tiny,
mask id V − 1) computed by tools/ref_decoder.py, which tests/test_decoder.c must reproduce
token for token, and torch.linspace values for Dream's schedule.

The tiny DiT is run at σ = 0 as a stand-in for Dream (shift = 1: position i reads row i − 1)
and for LLaDA (shift = 0). Each case draws its prompts from its seed; a case whose smallest
decision margin (ref_decoder's `margin`) is below MIN_MARGIN moves to the next seed, so that
float32 differences between PyTorch and the C forward cannot flip a decision.
Run with Debian's /usr/bin/python3 (python3-torch) after tests/gen_fixtures.py.
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import ref_dit as R  # noqa: E402
import ref_decoder as D  # noqa: E402

OUT = os.path.join(HERE, "fixtures", "decoder")
MIN_MARGIN = 2e-5
SM = dict(scale=0.7, centre=-1.0, steepness=5.0, k=1)
SM3 = dict(scale=0.5, centre=-0.75, steepness=6.66, k=3)


def cases():
    out = []
    for shift in (1, 0):
        for sm in (None, SM):
            for alg in D.ALGS:
                out.append(dict(style="dream", shift=shift, alg=alg, steps=10, sm=sm))
            out.append(dict(style="dream", shift=shift, alg="origin", steps=10, sm=sm,
                            temperature=0.8))
            out.append(dict(style="dream", shift=shift, alg="entropy", steps=8, sm=sm,
                            temperature=1.5, top_p=0.8))
            out.append(dict(style="dream", shift=shift, alg="maskgit_plus", tokens_per_step=3,
                            sm=sm, temperature=1.2, top_k=5))
            out.append(dict(style="dream", shift=shift, alg="topk_margin", steps=6, sm=sm,
                            alg_temp=0.3, temperature=0.7))
            out.append(dict(style="dream", shift=shift, alg="maskgit_plus", threshold=0.09, sm=sm))
            out.append(dict(style="llada", shift=shift, steps=24, block_length=8, sm=sm))
            out.append(dict(style="llada", shift=shift, steps=6, block_length=12, sm=sm,
                            temperature=0.9))
            out.append(dict(style="llada", shift=shift, steps=12, block_length=24, sm=sm,
                            remasking="random", temperature=0.5))
            out.append(dict(style="llada", shift=shift, steps=4, block_length=8, sm=sm,
                            threshold=0.08))
    # more steps than tokens (steps that reveal nothing reuse the forward without SM),
    # soft-masking with k = 3, and EOS handling (stop, penalty)
    out.append(dict(style="dream", shift=1, alg="maskgit_plus", steps=40))
    out.append(dict(style="dream", shift=1, alg="maskgit_plus", steps=40, sm=SM))
    out.append(dict(style="dream", shift=1, alg="entropy", steps=12, sm=SM3))
    out.append(dict(style="dream", shift=1, alg="maskgit_plus", steps=12, eos=True))
    out.append(dict(style="dream", shift=1, alg="maskgit_plus", steps=12, eos=True,
                    eos_penalty=1.5, sm=SM))
    out.append(dict(style="llada", shift=0, steps=24, block_length=8, eos=True, temperature=1.0))
    out.append(dict(style="dream", shift=0, alg="origin", steps=12, eos=True, temperature=1.0))
    # Fast-dLLM's block-wise Dream: tempered tokens (the block head draws one uniform), sampled
    # positions, threshold decoding, soft-masking, an EOS that ends the row early
    out.append(dict(style="dream", shift=1, alg="entropy", steps=12, block_length=8,
                    temperature=0.8, top_p=0.9))
    out.append(dict(style="dream", shift=1, alg="maskgit_plus", steps=12, block_length=6, sm=SM,
                    alg_temp=0.4, temperature=0.6))
    out.append(dict(style="dream", shift=1, alg="topk_margin", block_length=12, threshold=0.1,
                    sm=SM))
    out.append(dict(style="dream", shift=0, alg="entropy", tokens_per_step=2, block_length=8,
                    sm=SM3))
    out.append(dict(style="dream", shift=1, alg="maskgit_plus", steps=12, block_length=4,
                    eos=True, temperature=1.0))
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    tiny = os.path.join(HERE, "fixtures", "tiny")
    cfg = json.load(open(os.path.join(tiny, "config.json")))
    model = R.DiT(R.load_safetensors(os.path.join(tiny, "model.safetensors")), cfg)
    V, mask = cfg["vocab_size"], cfg["mask_token_id"]
    fwd = D.dit_forward(model)
    B, P, G = 2, 4, 24
    # the most frequent argmax token of an all-mask canvas stands in for EOS
    with torch.no_grad():
        lg = fwd(torch.full((1, P + G), mask, dtype=torch.int64), None)[0, :, :mask]
    eos_id = int(torch.bincount(lg.argmax(-1), minlength=V).argmax())
    lines = []
    for ci, c in enumerate(cases()):
        for seed in range(100 + 10 * ci, 110 + 10 * ci):
            prompt = np.random.default_rng(seed).integers(0, V - 1, size=(B, P))
            traj = []
            kw = dict(style=c["style"], steps=c.get("steps", 0),
                      tokens_per_step=c.get("tokens_per_step", 0),
                      temperature=c.get("temperature", 0.0), top_p=c.get("top_p", 1.0),
                      top_k=c.get("top_k", 0), alg=c.get("alg", "origin"),
                      alg_temp=c.get("alg_temp", 0.0), block_length=c.get("block_length", 0),
                      remasking=c.get("remasking", "low_confidence"),
                      threshold=c.get("threshold", 0.0), eos_id=eos_id if c.get("eos") else -1,
                      eos_penalty=c.get("eos_penalty", 0.0), seed=seed, sm=c.get("sm"))
            x, gens, forwards, steps, margin = D.decode(fwd, V, mask, c["shift"], prompt, G,
                                                        on_step=traj.append, **kw)
            if margin >= MIN_MARGIN:
                break
        else:
            raise SystemExit(f"case {ci}: no seed with margin ≥ {MIN_MARGIN}")
        kw.update(case=ci, shift=c["shift"], prompt=prompt.tolist(), gen_len=G, margin=margin,
                  forwards=forwards, steps_run=steps, gen=gens, traj=np.stack(traj).tolist())
        lines.append(kw)
        print(f"case {ci:2d} {c['style']:5s} shift {c['shift']} {kw['alg'] if c['style'] == 'dream' else kw['remasking']:14s}"
              f" sm {'on ' if c.get('sm') else 'off'} T {kw['temperature']:.1f} seed {seed}: forwards {forwards:2d}"
              f" steps {steps:2d} gen {gens} margin {margin:.2e}")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(dict(version=1, model="tiny", eos_id=eos_id, cases=lines), f, separators=(",", ":"))
    # torch.linspace(1, 1e-3, n + 1) for n = 1..300, concatenated
    ls = np.concatenate([D.torch_linspace(n) for n in range(1, 301)]).astype(np.float32)
    np.save(os.path.join(OUT, "linspace.npy"), ls)


if __name__ == "__main__":
    main()
