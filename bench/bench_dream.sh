#!/bin/sh
# Dream forward, smdlm (bf16 weights in place) beside PyTorch fp32 (weights upcast), same
# random checkpoint, same threads: sh bench/bench_dream.sh [dream-0.5b|dream-7b] [THREADS]
# The checkpoint is written once to ~/.cache/smdlm/bench/SHAPE. PyTorch runs only for
# dream-0.5b (the 7B model upcast to fp32 needs 30 GB).
set -e
SHAPE=${1:-dream-0.5b}
THREADS=${2:-2}
DIR=${HOME}/.cache/smdlm/bench/$SHAPE
./build/smdlm bench forward --shape "$SHAPE" -t "$THREADS"
if [ "$SHAPE" = dream-0.5b ]; then
    /usr/bin/python3 bench/bench_dream_torch.py "$DIR" "$THREADS" 512 2
fi
