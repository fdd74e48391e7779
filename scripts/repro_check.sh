#!/bin/sh
# repro_check.sh OUT — the loose sanity assertions of `make repro-quick`: every stage ran,
# training lowered the loss, and every sweep cell produced a finite score.
set -eu
OUT=$1
fail() { printf 'repro-quick: FAILED: %s\n' "$*" >&2; exit 1; }
. "$(dirname "$0")/../repro/repro.conf"
for c in $REPRO_CORPORA; do
    for s in corpus tokenizer data base arm-baseline arm-sm compute-match arm-baseline-matched evaluator val-ppl reference sweep; do
        [ -e "$OUT/.done-$c-$s" ] || fail "stage $c-$s did not complete"
    done
    for run in base baseline sm baseline-matched evaluator; do
        log=$OUT/$c/$run/train_log.jsonl
        [ -s "$log" ] || fail "$log is missing"
        # mean loss of the first and of the last logged updates (three each, fewer in short logs)
        awk -v run="$c/$run" '/"loss"/ { match($0, /"loss":[-0-9.e+]*/); v = substr($0, RSTART + 7, RLENGTH - 7) + 0;
              n++; a[n] = v } END { if (n < 2) { print run ": fewer than two loss lines"; exit 1 }
              f = 0; l = 0; k = n >= 6 ? 3 : int(n / 2); for (i = 1; i <= k; i++) { f += a[i]; l += a[n - i + 1] }
              if (!(l < f)) { printf "%s: loss did not go down (%.4f -> %.4f)\n", run, f / k, l / k; exit 1 }
              printf "%s: loss %.3f -> %.3f\n", run, f / k, l / k }' "$log" || fail "training $c/$run"
    done
    cells=$OUT/$c/sweep/cells.jsonl
    [ -s "$cells" ] || fail "$cells is missing"
    bad=$(grep -c -v '"gen_ppl":[0-9]' "$cells" || true)
    [ "$bad" = 0 ] || fail "$cells: $bad cells without a finite generative perplexity"
    [ -s "$OUT/$c/sweep/sweep.png" ] || fail "$c: no sweep figure"
    echo "$c: $(wc -l < "$cells") sweep cells scored; figure $OUT/$c/sweep/sweep.png"
done
echo "repro-quick: all stages ran and the sanity checks passed"
