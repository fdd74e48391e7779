#!/bin/sh
# Runs every test binary given, then the CLI tests; prints "N passed, N failed" and exits
# non-zero if anything failed. Each binary is a cmocka group; a failing group counts once
# per failing test (cmocka's own summary is kept in the log above).
passed=0
failed=0
failed_names=""
for t in "$@"; do
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | grep -c '^\[       OK \]')
    f=$(printf '%s\n' "$out" | grep -c '^\[  FAILED  \]\|^\[  ERROR   \]')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$rc" -ne 0 ] && failed_names="$failed_names $(basename "$t")"
done
for s in tests/cli/*.sh; do
    [ -f "$s" ] || continue
    if out=$(SMDLM="${BUILD:-build}/smdlm" sh "$s" 2>&1); then
        printf '%s\n' "$out"
        passed=$((passed + 1))
    else
        printf '%s\n[  FAILED  ] %s\n' "$out" "$s"
        failed=$((failed + 1))
        failed_names="$failed_names $(basename "$s")"
    fi
done
echo "$passed passed, $failed failed"
[ -n "$failed_names" ] && echo "failing:$failed_names"
[ "$failed" -eq 0 ]
