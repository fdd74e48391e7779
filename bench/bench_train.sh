#!/bin/sh
# Training-step benchmark, smdlm and PyTorch side by side on the same weights, batch shape
# and thread count (docs/DESIGN.md §6). Usage: sh bench/bench_train.sh [SHAPE_OR_MODEL_DIR] [THREADS]
# (default train-small: hidden 256, 6 blocks, 4 heads, T 256, V 4096, batch 16).
set -eu
cd "$(dirname "$0")/.."
target=${1:-train-small}
threads=${2:-$(nproc)}
. bench/model.sh
./build/smdlm bench train -m "$model" -t "$threads" --json >"$out/train_c.json"
/usr/bin/python3 bench/bench_train_torch.py "$model" --threads "$threads" >"$out/train_torch.json"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
c = json.load(open(f"{out}/train_c.json")); t = json.load(open(f"{out}/train_torch.json"))
print(f"train step B={c['B']} T={c['T']} threads={c['threads']} (smdlm blas={c['blas_core']}, torch {t['torch']})")
print(f"  {'':8s} {'plain tok/s':>12s} {'SM tok/s':>10s} {'SM/plain':>9s} {'peak RSS MiB':>13s}")
for name, r in (("smdlm", c), ("pytorch", t)):
    print(f"  {name:8s} {r['tokens_per_s']:12.1f} {r['sm_tokens_per_s']:10.1f} "
          f"{r['sm_step_s']/r['plain_step_s']:9.2f} {r['peak_rss_bytes']/2**20:13.1f}")
print(f"  speed ratio smdlm/pytorch: plain {c['tokens_per_s']/t['tokens_per_s']:.2f}x, "
      f"soft-masked {c['sm_tokens_per_s']/t['sm_tokens_per_s']:.2f}x")
print(f"  smdlm peak RSS {c['rss_over_expected']:.2f}x parameters + gradients + Adam + activations")
PY
