#!/bin/sh
# test_playground.sh — the web playground of `smdlm serve` in headless Chromium
# (tests/browser/playground_test.mjs: Debian's chromium driven by playwright-core from npm,
# installed by `make test` with npm ci). Prints cmocka-style [ OK ] / [ FAILED ] lines for
# tests/run_tests.sh. Environment: SMDLM (the program), BUILD (the screenshot goes to
# $BUILD/playground.png; PLAYGROUND_SCREENSHOT=docs/playground.png rewrites the documented one).
missing=""
command -v node >/dev/null 2>&1 || missing="node (Debian's nodejs)"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing="$missing ${CHROMIUM:-/usr/bin/chromium} (Debian's chromium)"
[ -d tests/browser/node_modules/playwright-core ] || missing="$missing playwright-core (npm ci --prefix tests/browser)"
if [ -n "$missing" ]; then
    echo "  missing:$missing; scripts/install-deps.sh installs the Debian packages, make test runs npm ci"
    echo "[  FAILED  ] playground_test"
    exit 1
fi
exec node tests/browser/playground_test.mjs
