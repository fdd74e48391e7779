#!/bin/sh
# The GEMM comparison of docs/PERFORMANCE.md: OpenBLAS on the core smdlm chooses here (and on
# Haswell and Prescott kernels), oneDNN when libdnnl-dev is installed, and the own-kernel
# prototype; ROUNDS interleaved rounds at 1 and 2 threads, best GFLOP/s per option and shape
# (the machine is shared). Usage: sh bench/gemm_options.sh [ROUNDS]   (default 5)
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-5}
BLASDIR=${BLASDIR:-/usr/lib/x86_64-linux-gnu/openblas-openmp}
mkdir -p build/bench
dnnl=""
if [ -f /usr/include/oneapi/dnnl/dnnl.h ]; then dnnl="-DWITH_DNNL -ldnnl"; fi
# shellcheck disable=SC2086
gcc -std=c11 -O2 -fopenmp -Wall -Wextra -D_GNU_SOURCE -I/usr/include/x86_64-linux-gnu/openblas-openmp \
    bench/gemm_options.c -L"$BLASDIR" -Wl,-rpath,"$BLASDIR" -lopenblas $dnnl -lm -o build/bench/gemm_options
make -s build/smdlm
core=$(./build/smdlm bench peak --json | sed 's/.*"gemm_core":"\([^"]*\)".*/\1/')
out=build/bench/gemm_options.txt
: >"$out"
i=0
while [ "$i" -lt "$rounds" ]; do
    for t in 1 2; do
        OPENBLAS_CORETYPE=$core ./build/bench/gemm_options "$t" openblas >>"$out"
        OPENBLAS_CORETYPE=Haswell ./build/bench/gemm_options "$t" openblas >>"$out"
        OPENBLAS_CORETYPE=Prescott ./build/bench/gemm_options "$t" openblas >>"$out"
        [ -z "$dnnl" ] || OMP_WAIT_POLICY=passive ./build/bench/gemm_options "$t" onednn >>"$out"
        grep -q avx512f /proc/cpuinfo && ./build/bench/gemm_options "$t" own >>"$out"
    done
    i=$((i + 1))
done
# best per (option, core, threads, shape)
awk '{k = $1 " " $2 " " $3 " " $4 " " $5 " " $6; if ($7 > b[k]) b[k] = $7}
     END {for (k in b) print k, b[k]}' "$out" | sort -k3,3n -k1,2 -k4,6
