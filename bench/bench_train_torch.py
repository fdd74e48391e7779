#!/usr/bin/python3
"""PyTorch side of bench/bench_train.sh: one training step (forward, backward, AdamW) of the
same DiT (tools/ref_dit.py) on the same weights, batch shape and thread count, plain and
two-pass soft-masked. Prints one JSON line."""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ref_dit as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--len", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    params = {k: v.float().clone().requires_grad_(True)
              for k, v in R.load_safetensors(os.path.join(a.model, "model.safetensors")).items()}
    raw = [r.clone().requires_grad_(True) for r in R.sm_raw_from_values(0.0, -0.75, 10 / 1.5)]
    model = R.DiT(params, cfg)
    T = a.len or cfg["model_length"]
    V, mask = cfg["vocab_size"], cfg["mask_token_id"]
    x0 = torch.randint(0, V - 1, (a.batch, T))
    u = torch.rand(())
    t = (1 - 1e-3) * ((u + torch.arange(a.batch) / a.batch) % 1) + 1e-3
    xt = torch.where(torch.rand(a.batch, T) < (1 - 1e-3) * t[:, None], torch.full_like(x0, mask), x0)
    opt = torch.optim.AdamW([{"params": list(params.values()), "lr": 3e-4, "weight_decay": 0.0},
                             {"params": raw, "lr": 1e-2, "weight_decay": 0.0}], foreach=False)
    everything = list(params.values()) + raw

    def step(sm):
        opt.zero_grad()
        if sm:
            loss = R.sm_two_pass_loss(model, xt, x0, t, mask, raw, 3)
        else:
            loss = R.nelbo(model.forward(xt, R.sigma_of_t(t)), xt, x0, t, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(everything, 1.0)
        opt.step()

    res = {}
    for sm in (False, True):
        times = []
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            step(sm)
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        res["sm_step_s" if sm else "plain_step_s"] = min(times)  # best: shared machines are noisy
    BT = a.batch * T
    print(json.dumps(dict(bench="train-torch", torch=torch.__version__, B=a.batch, T=T,
                          threads=a.threads, tokens_per_s=BT / res["plain_step_s"],
                          sm_tokens_per_s=BT / res["sm_step_s"],
                          peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                          **res)))


if __name__ == "__main__":
    main()
