#!/bin/sh
# repro_check.sh OUT — the loose sanity assertions of `make repro-quick`: every stage ran, the
# models trained from scratch lowered their loss, the continued-pretraining arms did not
# diverge from the base, and every sweep cell produced a finite score.
set -eu
OUT=$1
fail() { printf 'repro-quick: FAILED: %s\n' "$*" >&2; exit 1; }
. "$(dirname "$0")/../repro/repro.conf"
# the mean over the mask seeds of an arm's validation NELBO
nats() { grep "\"arm\":\"$2\"" "$1" | sed 's/.*"nats_per_token":\([-0-9.e+]*\).*/\1/' | awk '{ s += $1; n++ } END { printf "%.6g", s / n }'; }
for c in $REPRO_CORPORA; do
    for s in corpus tokenizer data base arm-baseline arm-sm compute-match arm-baseline-matched \
             evaluator val-ppl reference sweep; do
        [ -e "$OUT/.done-$c-$s" ] || fail "stage $c-$s did not complete"
    done
    for run in base evaluator; do
        log=$OUT/$c/$run/train_log.jsonl
        [ -s "$log" ] || fail "$log is missing"
        # from scratch: the last logged losses are clearly below the first ones
        awk -v run="$c/$run" '/"loss"/ { match($0, /"loss":[-0-9.e+]*/); n++; a[n] = substr($0, RSTART + 7, RLENGTH - 7) + 0 }
            END { if (n < 4) { print run ": fewer than four loss lines"; exit 1 }
                  k = int(n / 3); f = 0; l = 0; for (i = 1; i <= k; i++) { f += a[i]; l += a[n - i + 1] }
                  f /= k; l /= k; printf "%s: training loss %.3f -> %.3f\n", run, f, l; if (!(l < f - 0.1)) exit 1 }' \
            "$log" || fail "training $c/$run did not lower the loss"
    done
    v=$OUT/$c/val_ppl.jsonl
    base=$(nats "$v" base)
    for arm in baseline sm baseline-matched; do
        x=$(nats "$v" "$arm")
        awk -v b="$base" -v x="$x" -v a="$c/$arm" 'BEGIN { printf "%s: validation NELBO %.4f (base %.4f)\n", a, x, b; exit !(x < b + 0.1) }' ||
            fail "$c/$arm diverged from its base"
    done
    cells=$OUT/$c/sweep/cells.jsonl
    [ -s "$cells" ] || fail "$cells is missing"
    bad=$(grep -c -v '"gen_ppl":[0-9]' "$cells" || true)
    [ "$bad" = 0 ] || fail "$cells: $bad cells without a finite generative perplexity"
    [ -s "$OUT/$c/sweep/sweep.png" ] || fail "$c: no sweep figure"
    echo "$c: $(wc -l < "$cells") sweep cells scored; figure $OUT/$c/sweep/sweep.png"
done
# the raw outputs kept as evidence (scripts/repro_evidence.sh): every file there, each a whole
# gzip stream with the lines of its source
ev=$OUT/evidence
for c in $REPRO_CORPORA; do
    for f in cells.jsonl sweep_settings.json val_ppl.jsonl compute_match.jsonl sm-transparency_config.json \
             base-train_log.jsonl baseline-train_log.jsonl sm-train_log.jsonl baseline-matched-train_log.jsonl \
             evaluator-train_log.jsonl; do
        gzip -t "$ev/$c-$f.gz" 2>/dev/null || fail "evidence $ev/$c-$f.gz is missing or damaged"
    done
    [ "$(zcat "$ev/$c-cells.jsonl.gz" | wc -l)" = "$(wc -l < "$OUT/$c/sweep/cells.jsonl")" ] ||
        fail "$ev/$c-cells.jsonl.gz does not hold every cell"
    n_seeds=$(echo "$REPRO_SEEDS" | tr , '\n' | wc -l)
    [ "$(zcat "$ev/$c-val_ppl.jsonl.gz" | wc -l)" = $((4 * n_seeds)) ] ||
        fail "$ev/$c-val_ppl.jsonl.gz does not hold 4 arms × $n_seeds seeds"
done
gzip -t "$ev/stages.jsonl.gz" 2>/dev/null || fail "evidence $ev/stages.jsonl.gz is missing or damaged"
echo "evidence: $(ls "$ev" | wc -l) files, $(du -sh "$ev" | cut -f1) in $ev"
echo "repro-quick: all stages ran and the sanity checks passed"
