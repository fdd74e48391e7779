#!/bin/sh
# Forward-pass benchmark, smdlm and PyTorch side by side on the same weights, ids and
# thread count, plus the agreement of their logits. Usage:
#   sh bench/bench_forward.sh [SHAPE_OR_MODEL_DIR] [THREADS] [LEN]
# (default mdlm-small, all cores, the model's length). Needs python3-torch for the
# PyTorch column (WITH_PYTHON=1 sh scripts/install-deps.sh).
set -eu
cd "$(dirname "$0")/.."
target=${1:-mdlm-small}
threads=${2:-$(nproc)}
len=${3:-}
. bench/model.sh
lenflag=${len:+--len $len}
# shellcheck disable=SC2086
./build/smdlm bench forward -m "$model" -t "$threads" $lenflag --json --save-logits "$out/c_logits.npy" >"$out/c.json"
/usr/bin/python3 bench/bench_torch.py "$model" --ids "$out/c_logits.npy.ids.npy" --threads "$threads" \
    --save-logits "$out/t_logits.npy" >"$out/torch.json"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
import numpy as np
out = sys.argv[1]
c = json.load(open(f"{out}/c.json"))
t = json.load(open(f"{out}/torch.json"))
a = np.load(f"{out}/c_logits.npy"); b = np.load(f"{out}/t_logits.npy")
rel = float(np.abs(a - b).max() / np.abs(b).max())
print(f"forward B={c['B']} T={c['T']} threads={c['threads']} (smdlm simd={c['simd']} blas={c['blas_core']}, torch {t['torch']})")
print(f"  {'':10s} {'tokens/s':>10s} {'best s':>8s} {'peak RSS MiB':>13s}")
print(f"  {'smdlm':10s} {c['tokens_per_s']:10.1f} {c['best_s']:8.3f} {c['peak_rss_bytes']/2**20:13.1f}")
print(f"  {'pytorch':10s} {t['tokens_per_s']:10.1f} {t['best_s']:8.3f} {t['peak_rss_bytes']/2**20:13.1f}")
print(f"  speed ratio smdlm/pytorch {c['tokens_per_s']/t['tokens_per_s']:.2f}x; "
      f"memory ratio {c['peak_rss_bytes']/t['peak_rss_bytes']:.2f}x")
print(f"  smdlm {c['gflops']:.1f} GFLOP/s = {100*c['limit_fraction']:.0f}% of the fp32 FMA limit {c['fma_limit_gflops']:.1f} "
      f"(sgemm 2048³: {c['sgemm_gflops']:.1f}); "
      f"peak RSS {c['rss_over_weights']:.2f}x the weights")
print(f"  soft-masked input for a fully masked canvas: {100*c['sm_fraction']:.1f}% of a forward")
print(f"  logits: max |smdlm - pytorch| / max |pytorch| = {rel:.2e}")
json.dump(dict(smdlm=c, pytorch=t, logits_max_rel_diff=rel), open(f"{out}/summary.json", "w"), indent=1)
PY
