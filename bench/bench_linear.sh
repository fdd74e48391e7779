#!/bin/sh
# Low-precision linear kernels vs sgemm on fp32 weights, for OpenBLAS's AVX2 (Haswell) and
# AVX-512 (SkylakeX) core types. Usage:
#   sh bench/bench_linear.sh [THREADS] [SHAPES] [N_LIST] [TYPES]
# (default all cores, the Qwen2.5-0.5B and 7B shapes, N = 1,16,512, bf16,f16,q8).
# Prints one table per core type; best of 3 calls after a warm-up. The machine's read
# bandwidth heads each table (compare it with GB/s at N = 1).
set -eu
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
shapes=${2:-all}
ns=${3:-1,16,512}
types=${4:-bf16,f16,q8}
make -s -j2 build/smdlm
for core in Haswell SkylakeX; do
    echo "== OPENBLAS_CORETYPE=$core"
    OPENBLAS_CORETYPE=$core ./build/smdlm bench linear -t "$threads" --shapes "$shapes" -n "$ns" --types "$types"
done
