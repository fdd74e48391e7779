#!/usr/bin/python3
"""PyTorch side of `bench/bench_forward.sh`: the same DiT (tools/ref_dit.py) on the same
safetensors file, the same ids and thread count. Prints one JSON line (tokens/s, peak RSS)
and optionally saves the logits so the C output can be compared element by element."""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ref_dit as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--ids", required=True, help="int32 .npy [B,T]")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--save-logits")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    params = R.load_safetensors(os.path.join(a.model, "model.safetensors"))
    model = R.DiT(params, cfg)
    del params
    ids = torch.from_numpy(np.load(a.ids).astype(np.int64))
    B, T = ids.shape
    sigma = torch.zeros(B)
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            logits = model.forward(ids, sigma)
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    if a.save_logits:
        np.save(a.save_logits, logits.numpy())
    best = min(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(dict(bench="forward-torch", torch=torch.__version__, B=B, T=T,
                          threads=a.threads, best_s=best, mean_s=sum(times) / len(times),
                          tokens_per_s=B * T / best, peak_rss_bytes=rss)))


if __name__ == "__main__":
    main()
