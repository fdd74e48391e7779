"""Fixtures for the transparency_config.json variants (tests/test_transformer.c): the second,
soft-masked pass of the tiny Dream and LLaDA models with `mixinputs_with_temp`, and λ under the
`linear` and `stepwise` schedules, computed as IBM's coding/patches/dream_sm.patch computes them
(get_mixing_factors_for_softmasking, get_time_dependence with sm_to_hm = True, threshold 0.5).

Run with Debian's /usr/bin/python3 from the repository root after tests/gen_dream_fixtures.py
(`make fixtures`): it reads the models and canvases that script wrote.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import ref_dream as R  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "fixtures")


def mixing_factors(input_ids, logits, mask_id, max_gen_length, sm):
    """p_out of the patch: λ from the (tempered) entropy, the scheduled scale, top-k or the full
    tempered softmax as the mixed distribution."""
    alg = sm["transparency_alg"]
    one_hot = F.one_hot(input_ids, num_classes=logits.shape[-1]).to(logits.dtype)
    temperature = sm["mixture_temp"] if alg == "mixinputs_with_temp" else 1.0
    p = torch.softmax(logits / temperature, dim=-1)
    neg_entropy = torch.sum(p * torch.log(p + 1e-10), dim=-1)
    scale = sm["transparency_scale"]
    if sm["transparency_scheduling"] != "none":
        scale = R.time_dependence(max_gen_length, (input_ids == mask_id).sum().item(), scale,
                                sm["transparency_scheduling"])
    if scale == 0.0:
        lam = torch.zeros_like(neg_entropy)[..., None]
    else:
        lam = scale * torch.sigmoid(sm["transparency_steepness"] *
                                    (neg_entropy - sm["transparency_centre"]))
        lam = torch.where(input_ids == mask_id, lam, torch.zeros_like(lam))[..., None]
    if alg == "mixinputs_with_topk":
        top, idx = torch.topk(logits, k=sm["mixinputs_k"], dim=-1)
        p = torch.zeros_like(logits).scatter_(-1, idx, torch.softmax(top, dim=-1))
    return (1 - lam) * one_hot + lam * p, lam[..., 0]


def load_npy(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name)))


def one_model(name, sm_temp, sm_sched):
    d = os.path.join(FIX, name)
    with open(os.path.join(d, "config.json")) as f:
        cfg = R.Cfg(json.load(f))
    _, P = R.load_dir(d)
    P = {k: v.float() for k, v in P.items()}
    x2 = load_npy(d, "ids_sm.npy").long()
    raw = load_npy(d, "logits.npy")
    prev = R.shift_logits(raw) if cfg.shift else raw
    with torch.no_grad():
        p_sm, lam = mixing_factors(x2, prev, cfg.mask_id, 0, sm_temp)
        out = R.forward(cfg, P, inputs_embeds=torch.matmul(p_sm, P[R.embed_name(cfg)]))
    with open(os.path.join(d, "sm_config_temp.json"), "w") as f:
        json.dump(sm_temp, f, indent=2)
    np.save(os.path.join(d, "logits_sm_temp.npy"), out.numpy().astype(np.float32))
    np.save(os.path.join(d, "lambda_temp.npy"), lam.numpy().astype(np.float32))
    # λ of the canvas x2 as if decoding had started from max_gen_length masks: t on both sides
    # of the stepwise threshold; the patch counts the masks of the whole batch
    n_mask = int((x2 == cfg.mask_id).sum())
    rows = []
    for schedule in ("none", "linear", "stepwise"):
        for max_gen in (n_mask, int(n_mask * 1.5), 2 * n_mask, 3 * n_mask):
            _, lam = mixing_factors(x2, prev, cfg.mask_id, max_gen,
                                    dict(sm_sched, transparency_scheduling=schedule))
            rows.append(lam.numpy().astype(np.float32).reshape(-1))
    np.save(os.path.join(d, "lambda_schedules.npy"), np.stack(rows))
    np.save(os.path.join(d, "lambda_schedules_maxgen.npy"),
            np.array([n_mask, int(n_mask * 1.5), 2 * n_mask, 3 * n_mask], np.int32))


def main():
    temp = {"transparency_alg": "mixinputs_with_temp", "transparency_scale": 0.8,
            "transparency_centre": -3.0, "transparency_steepness": 2.0, "mixinputs_k": 1,
            "mixture_temp": 0.7, "transparency_scheduling": "none"}
    sched = {"transparency_alg": "mixinputs_with_topk", "transparency_scale": 0.7,
             "transparency_centre": -4.5, "transparency_steepness": 4.0, "mixinputs_k": 2,
             "mixture_temp": 1.0, "transparency_scheduling": "none"}
    one_model("tiny-dream", temp, sched)
    one_model("tiny-llada", dict(temp, mixture_temp=1.6, transparency_centre=-4.0), sched)
    print("wrote the mixinputs_with_temp and schedule fixtures of tiny-dream and tiny-llada")


if __name__ == "__main__":
    main()
