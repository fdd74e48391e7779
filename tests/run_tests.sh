#!/bin/sh
# Runs every test binary given (cmocka groups) and prints "N passed, N failed"; exits
# non-zero if anything failed. A binary that fails without cmocka's report (a crash) counts
# as one failure. The CLI tests run the smdlm program of the same build ($SMDLM).
export SMDLM="${BUILD:-build}/smdlm"
passed=0
failed=0
failing=""
for t in "$@"; do
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | grep -c '^\[       OK \]')
    f=$(printf '%s\n' "$out" | grep -c '^\[  FAILED  \] [a-z_]*$')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$rc" -ne 0 ] && failing="$failing $(basename "$t")"
done
echo "$passed passed, $failed failed"
[ -n "$failing" ] && echo "failing:$failing"
[ "$failed" -eq 0 ]
