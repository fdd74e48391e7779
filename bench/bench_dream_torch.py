"""PyTorch fp32 forward of a Dream/LLaDA model directory (bf16 weights upcast), timed like
`smdlm bench forward --shape dream-0.5b`: B = 1, T = 512, a quarter prompt and the rest
masked, best of N. Prints one JSON line. Run with Debian's /usr/bin/python3:

    python3 bench/bench_dream_torch.py DIR THREADS [T] [ITERS]
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import ref_dream as R  # noqa: E402


def main():
    path, threads = sys.argv[1], int(sys.argv[2])
    T = int(sys.argv[3]) if len(sys.argv) > 3 else 512
    iters = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    torch.set_num_threads(threads)
    cfg, P = R.load_dir(path)
    g = torch.Generator().manual_seed(7)
    ids = torch.full((1, T), cfg.mask_id, dtype=torch.long)
    ids[0, : T // 4] = torch.randint(0, cfg.mask_id, (T // 4,), generator=g)
    best = float("inf")
    with torch.no_grad():
        for _ in range(iters):
            t0 = time.perf_counter()
            R.forward(cfg, P, ids)
            best = min(best, time.perf_counter() - t0)
    print(json.dumps({"bench": "torch_forward", "T": T, "threads": threads,
                      "torch": torch.__version__, "best_s": round(best, 4),
                      "tokens_per_s": round(T / best, 2)}))


if __name__ == "__main__":
    main()
