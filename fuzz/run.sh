#!/bin/sh
# fuzz/run.sh BUILD SECONDS TARGET... — runs each fuzz target BUILD/TARGET for SECONDS from its
# seed corpus fuzz/corpus/TARGET (read only: new inputs go to a scratch directory) with its
# dictionary fuzz/TARGET.dict when there is one. A crash, sanitizer report, leak, timeout (10 s
# per input) or out-of-memory (2 GiB) fails the run; the reproducer is left as
# BUILD/TARGET-crash-… (or -leak-, -timeout-, -oom-) and the fuzzer's output in BUILD/TARGET.log.
set -u
build=$1 seconds=$2
shift 2
failed=0
for t in "$@"; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/smdlm-fuzz-corpus-XXXXXX")
    dict=
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    # shellcheck disable=SC2086
    if "$build/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$build/$t-" $dict "$work" "fuzz/corpus/$t" \
        >"$build/$t.log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$t.log")
        cov=$(grep -o 'cov: [0-9]*' "$build/$t.log" | tail -1)
        echo "$t: ok, $execs inputs in ${seconds} s, $cov"
    else
        echo "$t: FAILED (fuzzer output: $build/$t.log)"
        grep -A 30 -m 1 'ERROR\|==[0-9]*==\|deadly signal\|timeout' "$build/$t.log" | head -40
        failed=1
    fi
    rm -rf "$work"
done
exit $failed
