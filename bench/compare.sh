#!/bin/sh
# smdlm beside PyTorch at PyTorch's best setting on this machine, for every workload with a
# target in docs/PERFORMANCE.md: the mdlm-small forward (T = 1024), the Dream-0.5B forward
# (T = 64 and 512; smdlm on its bf16 weights, PyTorch on the same weights upcast to fp32) and the
# train-small step (plain and two-pass soft-masked). Usage:
#   sh bench/compare.sh [THREADS]            (default: all cores)
#   WORKLOADS="mdlm train" sh bench/compare.sh 2   (a subset: mdlm, dream64, dream512, train)
#
# PyTorch (Debian's python3-torch) runs its products in OpenBLAS (through libblas.so.3) and its
# other kernels in ATen. It runs under each candidate setting and its fastest run counts:
#   default                       what a user gets: OpenBLAS's own table of CPU models, ATen AVX2
#   OPENBLAS_CORETYPE=CORE        the OpenBLAS core smdlm chooses from cpuid (smdlm --version)
#   + ATEN_CPU_CAPABILITY=avx512  ATen's AVX-512 kernels too, where the CPU has AVX-512
# smdlm runs with no setting at all. Each side reports its best of several forwards or steps;
# the shares of the limit are of the fp32 FMA loop (`smdlm bench peak`). Raw lines go to
# bench/out/compare.jsonl; the table goes to standard output.
set -eu
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
workloads=${WORKLOADS:-mdlm dream64 dream512 train}
out=bench/out
mkdir -p "$out"
make -s build/smdlm
smdlm=./build/smdlm
core=$($smdlm --version | sed -n 's/^compute: *OpenBLAS, core //p')
settings="default"
[ -n "$core" ] && settings="$settings OPENBLAS_CORETYPE=$core"
grep -qw avx512f /proc/cpuinfo && [ -n "$core" ] &&
    settings="$settings OPENBLAS_CORETYPE=$core,ATEN_CPU_CAPABILITY=avx512"
log=$out/compare.jsonl
: >"$log"

# torch_best NAME CMD...: runs CMD under every setting, appends each JSON line to the log with
# its setting, prints "tokens_per_s setting" of the fastest.
torch_best() {
    name=$1
    shift
    for s in $settings; do
        envs=$(echo "$s" | sed 's/^default$//; s/,/ /g')
        # shellcheck disable=SC2086
        line=$(env $envs "$@" | tail -n 1)
        echo "{\"side\":\"pytorch\",\"workload\":\"$name\",\"setting\":\"$s\",\"result\":$line}" >>"$log"
        echo "$line" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"], sys.argv[1])' "$s"
    done | sort -g -r | head -n 1
}

row() { # workload, smdlm JSON line, torch "tok/s setting"
    echo "{\"side\":\"smdlm\",\"workload\":\"$1\",\"result\":$2}" >>"$log"
    /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import json, sys
name, c, (t, setting) = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split()
t = float(t)
share = f"{100 * c['limit_fraction']:.0f} %" if "limit_fraction" in c else "-"
print(f"{name:24s} {c['tokens_per_s']:10.1f} {share:>7s} {t:10.1f}  {c['tokens_per_s'] / t:5.2f}x  {setting}")
PY
}

echo "machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), $threads threads; PyTorch settings tried: $settings"
printf '%-24s %10s %7s %10s  %6s  %s\n' workload "smdlm t/s" "limit" "torch t/s" ratio "PyTorch's best setting"
for w in $workloads; do
    case $w in
    mdlm)
        target=mdlm-small
        . bench/model.sh
        c=$($smdlm bench forward -m "$model" -t "$threads" --len 1024 --json --save-logits "$out/cmp_logits.npy")
        t=$(torch_best mdlm /usr/bin/python3 bench/bench_torch.py "$model" --ids "$out/cmp_logits.npy.ids.npy" --threads "$threads")
        row "mdlm-small forward T=1024" "$c" "$t"
        ;;
    dream64 | dream512)
        len=${w#dream}
        c=$($smdlm bench forward --shape dream-0.5b --len "$len" -t "$threads" | tail -n 1)
        t=$(torch_best "$w" /usr/bin/python3 bench/bench_dream_torch.py "$HOME/.cache/smdlm/bench/dream-0.5b" "$threads" "$len" 2)
        row "dream-0.5b forward T=$len" "$c" "$t"
        ;;
    train)
        target=train-small
        . bench/model.sh
        c=$($smdlm bench train -m "$model" -t "$threads" --json)
        t=$(torch_best train /usr/bin/python3 bench/bench_train_torch.py "$model" --threads "$threads")
        row "train-small step (plain)" "$c" "$t"
        /usr/bin/python3 - "$c" <<'PY'
import json, sys
c = json.loads(sys.argv[1])
print(f"{'':24s} smdlm soft-masked step / plain step: {c['sm_step_s'] / c['plain_step_s']:.2f}x")
PY
        ;;
    *)
        echo "compare.sh: unknown workload '$w' (mdlm, dream64, dream512, train)" >&2
        exit 2
        ;;
    esac
done
