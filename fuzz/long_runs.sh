#!/bin/sh
# fuzz/long_runs.sh SECONDS TARGET... — the longer runs of fuzz/README.md's table: each target in
# turn (one at a time, at the lowest priority) for SECONDS from its seed corpus, keeping the
# corpus it grows in build/fuzz/long/TARGET and its output in build/fuzz/long/TARGET.log. A
# finding stops that target's run (libFuzzer stops at the first) and the next one starts.
set -u
seconds=$1
shift
long=build/fuzz/long
mkdir -p "$long/bin"
for t in "$@"; do
    cp "build/fuzz/$t" "$long/bin/$t" # a rebuild meanwhile does not touch the running binary
    mkdir -p "$long/$t"
    dict=
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    echo "$(date -u +%H:%M:%S) $t start" >>"$long/runs.txt"
    # shellcheck disable=SC2086
    nice -n 19 "$long/bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$long/$t-" $dict "$long/$t" \
        "fuzz/corpus/$t" >"$long/$t.log" 2>&1
    echo "$(date -u +%H:%M:%S) $t exit $?" >>"$long/runs.txt"
done
