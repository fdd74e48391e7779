#!/bin/sh
# compare_builds.sh — shows that a change (a refactor) changed no behaviour of smdlm.
#
#   sh scripts/compare_builds.sh REV_A [REV_B]
#
# Builds REV_A and REV_B (any commit-ish; without REV_B: the working tree as it is now,
# uncommitted changes and untracked, non-ignored files included) in temporary directories —
# REV_A and REV_B in `git worktree add --detach` worktrees, the working tree as a copy of its
# files — with `make BUILD=<tmpdir>`, then runs the same commands with both binaries and
# compares what they write byte for byte (cmp). The user's build/ and ./smdlm are not touched;
# the worktrees and temporary files are removed on exit.
#
# Every case prints one line, `same` or `DIFFERENT`, then its name (and why it differs); a
# summary follows. A case is the same when both builds exit with the same status and
#   - status 0: stdout and every output file of the case are identical;
#   - status ≠ 0: stderr is identical (after dropping lines with timings).
# JSON outputs (train logs, `eval ppl --json`, …) are compared without their timing keys
# (…_s, …_ms, seconds, elapsed); stderr of a successful run (statistics, tokens/s) is never
# compared. Every command runs with -t 1 (some also with -t 2) and fixed seeds.
#
# Cases: generate on models/default (ddpm, ddpm_cache, remdm-cap, remdm-loop; soft-masking
# on, --no-sm, hand-set; -t 1 and -t 2), models/demo and the tiny MDLM fixture; generate on
# tiny Dream (f32 shards, bf16) and LLaDA fixtures (every --alg, --threshold, --block-length,
# --remasking, --cache prefix/dual, soft-masking on/off, q8, chat); forward on the tiny
# fixtures (MDLM tiny, tiny-tc, bf16, sharded, causal, Dream, LLaDA; with --feedback soft-
# masking); grad (plain, two-pass soft-masking, causal); tokenize; data prepare (the shards);
# train from scratch (with and without soft-masking, causal, -t 2) compared by checkpoint
# and log; eval ppl / genppl; and a few commands that must fail with the same message.
# Inputs (models, fixtures, texts) are taken from REV_A's tree for both builds.
#
# Exit status: 0 all cases the same, 1 some case differs, 2 usage or build failure.
# Environment: JOBS (make -j, default: the number of CPUs), KEEP=1 keeps the outputs
# (printed at the end) for a look at the differences, TMPDIR.
# Takes about a minute on 2 cores (two builds included).

# shellcheck disable=SC2086  # option lists ($G, $DG, $SMF, $TR, …) are split into words on purpose
set -u

usage() {
    echo "usage: sh scripts/compare_builds.sh REV_A [REV_B]   (REV_B default: the working tree)" >&2
    exit 2
}
die() { echo "compare_builds: $*" >&2; exit 2; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
case $1 in -h|--help) usage ;; esac

top=$(git rev-parse --show-toplevel 2>/dev/null) || die "not inside a git repository"
cd "$top" || die "cannot cd to $top"
rev_a=$(git rev-parse --verify --quiet "$1^{commit}") || die "unknown revision: $1"
if [ $# -eq 2 ]; then
    rev_b=$(git rev-parse --verify --quiet "$2^{commit}") || die "unknown revision: $2"
    label_b="$2 ($(git rev-parse --short "$rev_b"))"
else
    rev_b=
    label_b="working tree (HEAD $(git rev-parse --short HEAD) + uncommitted changes)"
fi
label_a="$1 ($(git rev-parse --short "$rev_a"))"
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
start=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/smdlm-compare.XXXXXX") || die "mktemp failed"
case $work in *[[:space:]]*) rmdir "$work"; die "TMPDIR must not contain white space" ;; esac
cleanup() {
    for t in "$work/tree.A" "$work/tree.B"; do
        if [ -d "$t" ]; then git -C "$top" worktree remove --force "$t" >/dev/null 2>&1 || rm -rf "$t"; fi
    done
    git -C "$top" worktree prune >/dev/null 2>&1
    if [ "${KEEP:-0}" = 1 ]; then
        rm -rf "$work/tree.A" "$work/tree.B" "$work/build.A" "$work/build.B"
        echo "outputs kept in $work (out.A, out.B)" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- the two source trees and builds ----------------------------------------------------

git worktree add --detach "$work/tree.A" "$rev_a" >/dev/null 2>&1 || die "git worktree add $rev_a failed"
if [ -n "$rev_b" ]; then
    git worktree add --detach "$work/tree.B" "$rev_b" >/dev/null 2>&1 || die "git worktree add $rev_b failed"
else
    # a copy of the working tree: tracked files as they are now, plus untracked non-ignored ones
    mkdir "$work/tree.B" || die "mkdir failed"
    git -c core.quotepath=off ls-files --cached --others --exclude-standard | sort -u |
        while IFS= read -r f; do
            if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi
        done >"$work/files.B"
    tar -cf - -T "$work/files.B" | tar -xf - -C "$work/tree.B" || die "copying the working tree failed"
fi

for s in A B; do
    echo "building $s ..." >&2
    if ! make -C "$work/tree.$s" -j"$JOBS" BUILD="$work/build.$s" >"$work/make.$s.log" 2>&1 ||
        [ ! -x "$work/build.$s/smdlm" ]; then
        tail -20 "$work/make.$s.log" >&2
        die "build $s failed"
    fi
done

# ---- inputs (from REV_A's tree, the same files for both builds) --------------------------

IN=$work/tree.A
F=$IN/tests/fixtures
M=$IN/models
mkdir -p "$work/in" "$work/out.A" "$work/out.B"

# Dream / LLaDA model directories: the tiny weights and a tokenizer covering their vocabulary
# (as tests/test_generate_dream.c assembles them)
mkmodel() { # NAME WEIGHTS TOKENIZER
    mkdir -p "$work/in/$1"
    for f in "$F/$2"/* "$F/$3"/*; do
        case $f in *.npy|*/sm_config.json) continue ;; esac
        [ -f "$f" ] && ln -s "$f" "$work/in/$1/"
    done
}
mkmodel dream tiny-dream tiny-dream-tokenizer
mkmodel dream-bf16 tiny-dream-bf16 tiny-dream-tokenizer
mkmodel llada tiny-llada tiny-llada-tokenizer

# ---- running and comparing -------------------------------------------------------------

ncase=0 nsame=0 ndiff=0 nfail=0

# JSON without timing keys ("elapsed_s": 0.3, "seconds": 1.2, "tok_s": …)
json_norm() {
    sed -E 's/"[A-Za-z0-9_]*(_s|_ms|_us|_sec|_secs|seconds|elapsed)"[[:space:]]*:[[:space:]]*-?[0-9][0-9.eE+-]*[[:space:]]*,?//g' "$1"
}
# stderr without progress lines and lines that carry timings or throughput
err_norm() {
    tr '\r' '\n' <"$1" |
        grep -Ev '[0-9] ?(s|ms|us|µs|min)([^A-Za-z]|$)|[0-9] ?[A-Za-z]*/s([^A-Za-z]|$)|ETA|elapsed' || true
}
same_file() { # A B: 0 when equal (timing keys ignored in JSON files)
    case $1 in
    *.json|*.jsonl) json_norm "$1" >"$work/na" && json_norm "$2" >"$work/nb" && cmp -s "$work/na" "$work/nb" ;;
    *) cmp -s "$1" "$2" ;;
    esac
}

# run_case NAME 'OUTPUT FILES' SMDLM-ARGUMENTS...
# Runs `smdlm ARGS` with each build in its own empty directory (so relative output names
# are the same), then compares. $case_a is the directory of build A's run afterwards.
run_case() {
    name=$1 files=$2
    shift 2
    ncase=$((ncase + 1))
    for s in A B; do
        d=$work/out.$s/$ncase
        mkdir -p "$d"
        (cd "$d" && PATH="$work/build.$s:$PATH" smdlm "$@" >stdout 2>stderr; echo $? >rc)
    done
    a=$work/out.A/$ncase b=$work/out.B/$ncase case_a=$a
    ra=$(cat "$a/rc") rb=$(cat "$b/rc")
    why='' note=''
    if [ "$ra" != "$rb" ]; then
        why="exit status $ra vs $rb"
        nfail=$((nfail + 1))
    elif [ "$ra" != 0 ]; then
        err_norm "$a/stderr" >"$work/ea"
        err_norm "$b/stderr" >"$work/eb"
        cmp -s "$work/ea" "$work/eb" || why="stderr (both exit $ra)"
        note="  (both exit $ra)"
    else
        json_norm "$a/stdout" >"$work/sa"
        json_norm "$b/stdout" >"$work/sb"
        cmp -s "$work/sa" "$work/sb" || why="stdout"
        for f in $files; do
            if [ -e "$a/$f" ] && [ -e "$b/$f" ]; then
                same_file "$a/$f" "$b/$f" || why="${why:+$why, }$f"
            elif [ -e "$a/$f" ] || [ -e "$b/$f" ]; then
                why="${why:+$why, }$f written by one build only"
            else
                note="${note:-  (}${note:+, }$f not written"
            fi
        done
        [ -n "$note" ] && note="$note)"
    fi
    if [ -n "$why" ]; then
        ndiff=$((ndiff + 1))
        printf 'DIFFERENT  %s  [%s]\n' "$name" "$why"
    else
        nsame=$((nsame + 1))
        printf 'same       %s%s\n' "$name" "$note"
    fi
}

# ---- generate: MDLM ---------------------------------------------------------------------

G="--len 32 --steps 16 -n 2 --seed 11 -o out.jsonl"
for smp in ddpm ddpm_cache remdm-cap remdm-loop; do
    run_case "generate default $smp" out.jsonl generate -m "$M/default" -p "The nation" --sampler $smp $G -t 1
    run_case "generate default $smp --no-sm" out.jsonl generate -m "$M/default" -p "The nation" --sampler $smp $G --no-sm -t 1
    run_case "generate default $smp -t 2" out.jsonl generate -m "$M/default" -p "The nation" --sampler $smp $G -t 2
    # the default's learnt λ barely changes a token here: a strong soft-masking as well
    run_case "generate default $smp strong sm" out.jsonl generate -m "$M/default" -p "The nation" --sampler $smp $G \
        --sm-scale 0.9 --sm-centre -6 --sm-steepness 3 --sm-k 3 -t 1
done
run_case "generate default unconditional --top-p 0.9" out.jsonl generate -m "$M/default" $G --top-p 0.9 -t 1
run_case "generate default remdm-loop --eta/--t-on/--t-off/--alpha-on" out.jsonl generate -m "$M/default" \
    -p "The nation" --sampler remdm-loop --eta 0.05 --t-on 0.6 --t-off 0.1 --alpha-on 0.8 $G -t 1
run_case "generate default --sm-scale/--sm-centre/--sm-steepness/--sm-k" out.jsonl generate -m "$M/default" \
    -p "The nation" --sm-scale 0.6 --sm-centre -1 --sm-steepness 5 --sm-k 3 $G -t 1
run_case "generate default --no-noise-removal" out.jsonl generate -m "$M/default" --no-noise-removal $G -t 1
run_case "generate default stdout -q" "" generate -m "$M/default" -p "The nation" --len 24 --steps 8 --seed 2 -q -t 1
run_case "generate demo ddpm_cache" out.jsonl generate -m "$M/demo" -p "And God said" $G -t 1
run_case "generate demo remdm-cap --no-sm -t 2" out.jsonl generate -m "$M/demo" -p "And God said" --sampler remdm-cap $G --no-sm -t 2
run_case "generate tiny fixture" out.jsonl generate -m "$F/tiny" --len 20 --steps 8 --seed 5 -n 2 -o out.jsonl -q -t 1
run_case "generate tiny fixture remdm-loop --sm-scale 0.5" out.jsonl generate -m "$F/tiny" --len 20 --steps 8 \
    --seed 5 --sampler remdm-loop --sm-scale 0.5 -n 2 -o out.jsonl -q -t 1

# ---- generate: Dream / LLaDA --------------------------------------------------------------

P="Hello there"
DG="--max-new-tokens 16 --seed 3 -n 2 -o out.jsonl"
SMF="--sm-scale 0.5 --sm-centre -8 --sm-steepness 4 --sm-k 2" # centre -8: λ > 0 for these near-uniform models
dream=$work/in/dream llada=$work/in/llada dbf16=$work/in/dream-bf16
run_case "generate dream origin" out.jsonl generate -m "$dream" -p "$P" $DG -t 1
run_case "generate dream origin --no-sm --sm-config" out.jsonl generate -m "$dream" -p "$P" $DG --sm-config "$F/tiny-dream/sm_config.json" --no-sm -t 1
run_case "generate dream maskgit_plus T=0.7 top-p" out.jsonl generate -m "$dream" -p "$P" $DG --alg maskgit_plus --temperature 0.7 --top-p 0.9 -t 1
run_case "generate dream topk_margin --threshold 0.2" out.jsonl generate -m "$dream" -p "$P" $DG --alg topk_margin --threshold 0.2 -t 1
run_case "generate dream maskgit_plus --threshold sm" out.jsonl generate -m "$dream" -p "$P" $DG --alg maskgit_plus --threshold 0.2 $SMF --temperature 0.7 -t 1
run_case "generate dream entropy sm flags" out.jsonl generate -m "$dream" -p "$P" $DG --alg entropy $SMF -t 1
run_case "generate dream entropy sm flags -t 2" out.jsonl generate -m "$dream" -p "$P" $DG --alg entropy $SMF -t 2
run_case "generate dream entropy --sm-config --tokens-per-step 2" out.jsonl generate -m "$dream" -p "$P" $DG --alg entropy \
    --sm-config "$F/tiny-dream/sm_config.json" --tokens-per-step 2 -t 1
run_case "generate dream maskgit_plus alg-temp top-k eos-penalty" out.jsonl generate -m "$dream" -p "$P" $DG --alg maskgit_plus \
    --alg-temp 0.5 --temperature 0.5 --top-k 20 --eos-penalty 1 -t 1
run_case "generate dream entropy --cache prefix" out.jsonl generate -m "$dream" -p "$P" $DG --alg entropy --cache prefix -t 1
run_case "generate dream entropy --cache prefix sm -t 2" out.jsonl generate -m "$dream" -p "$P" $DG --alg entropy --cache prefix $SMF -t 2
run_case "generate dream --quant q8" out.jsonl generate -m "$dream" -p "$P" $DG --alg entropy --quant q8 -t 1
run_case "generate dream --chat --system" out.jsonl generate -m "$dream" --chat --system "Be brief." -p "Hi" $DG -t 1
run_case "generate dream-bf16 origin" out.jsonl generate -m "$dbf16" -p "$P" $DG -t 1
run_case "generate dream-bf16 entropy sm" out.jsonl generate -m "$dbf16" -p "$P" $DG --alg entropy $SMF --temperature 0.4 -t 1
run_case "generate dream-bf16 topk_margin -t 2" out.jsonl generate -m "$dbf16" -p "$P" $DG --alg topk_margin -t 2
run_case "generate llada --block-length 8" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 8 -t 1
run_case "generate llada --remasking random T=0.5" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 8 --remasking random --temperature 0.5 -t 1
run_case "generate llada --threshold 0.3 --block-length 4" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 4 --threshold 0.3 -t 1
run_case "generate llada sm flags" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 8 $SMF --temperature 0.5 -t 1
run_case "generate llada --sm-config --no-sm" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 8 --sm-config "$F/tiny-llada/sm_config.json" --no-sm -t 1
run_case "generate llada --cache prefix" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 4 --cache prefix -t 1
run_case "generate llada --cache dual" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 4 --cache dual --temperature 0.5 -t 1
run_case "generate llada --cache dual --cache-refresh 2 sm" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 4 --cache dual --cache-refresh 2 $SMF -t 1
run_case "generate llada --cache dual --threshold -t 2" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 4 --cache dual --threshold 0.3 -t 2
run_case "generate llada sm -t 2" out.jsonl generate -m "$llada" -p "$P" $DG --block-length 8 $SMF --temperature 0.5 -t 2
run_case "generate llada --chat --quant q8" out.jsonl generate -m "$llada" --chat -p "Hi" $DG --block-length 8 --quant q8 -t 1
run_case "generate llada stdout" "" generate -m "$llada" -p "$P" --max-new-tokens 16 --block-length 8 --seed 3 -q -t 1

# ---- forward -----------------------------------------------------------------------------

for fx in tiny tiny-tc; do
    r=$F/$fx/ref
    run_case "forward $fx" out.npy forward -m "$F/$fx" --ids "$r/ids.npy" --t "$r/t.npy" -o out.npy -t 1
    run_case "forward $fx --feedback --sm-config" out.npy forward -m "$F/$fx" --ids "$r/ids2.npy" --t "$r/t.npy" \
        --feedback "$r/logits.npy" --sm-config "$r/sm_config.json" -o out.npy -t 1
    run_case "forward $fx --feedback sm flags" out.npy forward -m "$F/$fx" --ids "$r/ids2.npy" --t "$r/t.npy" \
        --feedback "$r/logits.npy" --sm-scale 0.7 --sm-centre -1.2 --sm-steepness 4 --sm-k 3 -o out.npy -t 1
done
run_case "forward tiny-tc --t 0.5 -t 2" out.npy forward -m "$F/tiny-tc" --ids "$F/tiny-tc/ref/ids.npy" --t 0.5 -o out.npy -t 2
run_case "forward tiny-bf16" out.npy forward -m "$F/tiny-bf16" --ids "$F/tiny/ref/ids.npy" -o out.npy -t 1
run_case "forward tiny-sharded" out.npy forward -m "$F/tiny-sharded" --ids "$F/tiny/ref/ids.npy" -o out.npy -t 1
run_case "forward tiny-causal" out.npy forward -m "$F/tiny-causal" --ids "$F/tiny-causal/ref/ids.npy" -o out.npy -t 1
for fx in tiny-dream tiny-dream-bf16 tiny-llada; do
    run_case "forward $fx" out.npy forward -m "$F/$fx" --ids "$F/$fx/ids.npy" -o out.npy -t 1
    run_case "forward $fx --feedback --sm-config" out.npy forward -m "$F/$fx" --ids "$F/$fx/ids_sm.npy" \
        --feedback "$F/$fx/logits.npy" --sm-config "$F/$fx/sm_config.json" -o out.npy -t 1
done
run_case "forward tiny-dream -t 2" out.npy forward -m "$F/tiny-dream" --ids "$F/tiny-dream/ids.npy" -o out.npy -t 2
run_case "forward tiny-dream --quant q8" out.npy forward -m "$F/tiny-dream" --ids "$F/tiny-dream/ids.npy" --quant q8 -o out.npy -t 1
run_case "forward tiny-llada --feedback sm flags --quant q8" out.npy forward -m "$F/tiny-llada" --ids "$F/tiny-llada/ids_sm.npy" \
    --feedback "$F/tiny-llada/logits.npy" $SMF --quant q8 -o out.npy -t 1

# ---- grad --------------------------------------------------------------------------------

for fx in tiny tiny-tc; do
    tr=$F/$fx/train
    run_case "grad $fx plain" grads.safetensors grad -m "$F/$fx" --ids "$tr/xt.npy" --targets "$tr/x0.npy" --t "$tr/t.npy" -o grads.safetensors -t 1
    run_case "grad $fx --sm (two-pass) sm flags" grads.safetensors grad -m "$F/$fx" --ids "$tr/xt.npy" --targets "$tr/x0.npy" \
        --t "$tr/t.npy" --sm --sm-scale 0.6 --sm-centre -1.5 --sm-steepness 3 --sm-k 3 -o grads.safetensors -t 1
    run_case "grad $fx --sm --sm-config" grads.safetensors grad -m "$F/$fx" --ids "$tr/xt.npy" --targets "$tr/x0.npy" \
        --t "$tr/t.npy" --sm --sm-config "$F/$fx/ref/sm_config.json" -o grads.safetensors -t 1
    run_case "grad $fx --causal" grads.safetensors grad -m "$F/$fx" --ids "$tr/x0.npy" --targets "$tr/x0.npy" --causal -o grads.safetensors -t 1
done
run_case "grad tiny-tc --sm -t 2" grads.safetensors grad -m "$F/tiny-tc" --ids "$F/tiny-tc/train/xt.npy" --targets "$F/tiny-tc/train/x0.npy" \
    --t "$F/tiny-tc/train/t.npy" --sm --sm-scale 0.6 -o grads.safetensors -t 2

# ---- tokenize ----------------------------------------------------------------------------

run_case "tokenize demo" "" tokenize -m "$M/demo" --text "In the beginning God created"
run_case "tokenize demo --decode" "" tokenize -m "$M/demo" --decode --text "638 263 2109"
run_case "tokenize dream --chat" "" tokenize -m "$dream" --chat --system "Be brief." "Hello"
run_case "tokenize llada --allow-special" "" tokenize -m "$llada" --allow-special "Hello there"

# ---- data prepare, train, eval -------------------------------------------------------------

TEXTS="$IN/README.md $IN/NOTES.md $IN/docs/RESULTS.md $IN/docs/TRAINING.md"
run_case "data prepare" "data/meta.json data/train_00000.bin data/val.bin data/tokenizer/tokenizer.json" \
    data prepare --tokenizer "$M/demo" --out data --block-len 64 --val-docs 2 --skip-bad -q -t 1 $TEXTS
data=$case_a/data # build A's shards are the input of both builds from here on
TR="--data $data --out run --hidden 32 --heads 2 --blocks 2 --cond-dim 16 --batch 4 --lr 1e-3 --steps 30
    --val-every 10 --val-batches 2 --ckpt-every 30 --ema 0.9 --samples 1 --log-every 5 --seed 7 -q"
CK="run/ckpt-00000030/model.safetensors run/ckpt-00000030/train_state.safetensors
    run/ckpt-00000030/config.json run/train_log.jsonl"
run_case "train (no soft-masking)" "$CK" train $TR -t 1
CKSM="$CK run/ckpt-00000030/transparency_config.json"
# (an untrained model's predictions are near uniform: centre -9 makes λ, and its gradients, non-zero)
run_case "train --sm-prob 0.5 --sm-scale 0.5 --sm-centre -9" "$CKSM" train $TR --sm-prob 0.5 --sm-scale 0.5 --sm-centre -9 --sm-k 3 -t 1
ckpt_sm=$case_a/run/ckpt-00000030
run_case "train --sm-prob 0.8 cosine warmup clip -t 2" "$CKSM" train $TR --sm-prob 0.8 --sm-scale 0.5 --sm-centre -9 --sm-lr 0.05 \
    --schedule cosine --warmup 5 --clip 0.5 --weight-decay 0.01 -t 2
run_case "train --objective ar" "$CK" train $TR --objective ar -t 1
run_case "eval ppl trained (two-pass)" "" eval ppl -m "$ckpt_sm" --data "$data" --batch 8 --max-blocks 32 -t 1
run_case "eval ppl trained --no-sm --json" "" eval ppl -m "$ckpt_sm" --data "$data" --batch 8 --max-blocks 32 --no-sm --json -t 1
run_case "eval ppl demo --split train" "" eval ppl -m "$M/demo" --data "$data" --split train --batch 8 --max-blocks 16 -t 1
run_case "eval genppl gpt2-tiny" "" eval genppl -m "$F/gpt2-tiny" --samples "$F/gpt2-tiny/ref/samples.jsonl" -t 1

# ---- commands that must fail the same way --------------------------------------------------

run_case "error: unknown sampler" "" generate -m "$F/tiny" --sampler gumbel
run_case "error: no tokenizer for -p" "" generate -m "$F/tiny" -p hello --len 8
run_case "error: --t outside (0, 1]" "" forward -m "$F/tiny" --ids "$F/tiny/ref/ids.npy" --t 1.5 -o x.npy
run_case "error: grad --sm --causal" "" grad -m "$F/tiny" --ids "$F/tiny/ref/ids.npy" --targets "$F/tiny/ref/ids.npy" --sm --causal -o g
run_case "error: data prepare mask token in text" "" data prepare --tokenizer "$M/demo" --out data --block-len 64 -q -t 1 "$IN/NOTES.md"

# ---- summary -------------------------------------------------------------------------------

end=$(date +%s)
echo "A = $label_a"
echo "B = $label_b"
if [ "$ndiff" -eq 0 ]; then
    echo "all $ncase cases the same ($((end - start)) s)"
    exit 0
fi
echo "$ndiff of $ncase cases DIFFERENT ($nfail with a different exit status), $nsame the same ($((end - start)) s)"
exit 1
