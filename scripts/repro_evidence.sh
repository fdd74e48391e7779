#!/bin/sh
# repro_evidence.sh OUT DEST — keeps the raw outputs a `make repro` report is computed from,
# gzip-compressed (gzip -n: the same input gives the same bytes), in DEST:
#   stages.jsonl.gz                 every stage's wall-clock time (OUT/stages.jsonl)
#   C-cells.jsonl.gz                the sweep's cells of corpus C: one line per arm × SM × steps
#                                   × seed (gen. PPL, entropy, MAUVE, forwards, seconds)
#   C-sweep_settings.json.gz        what decided the cells (evaluator, reference, arms, sampler)
#   C-val_ppl.jsonl.gz              validation NELBO of each arm, one line per mask seed
#   C-compute_match.jsonl.gz        the SM/plain step-time ratio and the matched update count
#   C-ARM-train_log.jsonl.gz        the training log of each model (base, the three arms, the
#                                   causal evaluator): losses, validation losses, SM values
#   C-sm-transparency_config.json.gz  the sm arm's learnt soft-masking values
# `zcat DEST/C-cells.jsonl.gz` reads one back; scripts/repro_report.sh states which numbers of
# docs/RESULTS.md come from which file.
set -eu
. "$(dirname "$0")/../repro/repro.conf"
OUT=$1
DEST=$2
mkdir -p "$DEST"
keep() { # SRC NAME
    [ -s "$1" ] || { printf 'repro: evidence %s is missing\n' "$1" >&2; exit 1; }
    gzip -n -9 -c "$1" > "$DEST/$2.gz.tmp" && mv "$DEST/$2.gz.tmp" "$DEST/$2.gz"
}
keep "$OUT/stages.jsonl" stages.jsonl
for c in $REPRO_CORPORA; do
    w=$OUT/$c
    keep "$w/sweep/cells.jsonl" "$c-cells.jsonl"
    keep "$w/sweep/settings.json" "$c-sweep_settings.json"
    keep "$w/val_ppl.jsonl" "$c-val_ppl.jsonl"
    cat "$w/compute_match.json" "$w/bench_train.json" > "$w/compute_match.jsonl"
    keep "$w/compute_match.jsonl" "$c-compute_match.jsonl"
    for arm in base baseline sm baseline-matched evaluator; do
        keep "$w/$arm/train_log.jsonl" "$c-$arm-train_log.jsonl"
    done
    keep "$(ls -d "$w/sm"/ckpt-* | sort | tail -1)/transparency_config.json" "$c-sm-transparency_config.json"
done
echo "kept the raw outputs in $DEST ($(du -sh "$DEST" | cut -f1))"
