#!/bin/sh
# test_install.sh — `make install` as a user runs it: installs into a temporary PREFIX, checks
# the installed layout, `smdlm --version`, that the installed binary finds its data outside the
# source tree, and builds tests/install_example.c against the installation with pkg-config
# alone (shared, and static from a copy without the shared library), run on models/default.
# Prints cmocka-style [ OK ] / [ FAILED ] lines for tests/run_tests.sh. Environment: BUILD
# (build), MAKE (make), CC (cc), SAN (the sanitizer flags the library was built with, which
# the example needs too; empty).
set -u
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
CC=${CC:-cc}
SAN=${SAN:-}
src=$(pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/smdlm-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
status=0
pass() { echo "[       OK ] $1"; }
fail() { echo "[  FAILED  ] $1"; status=1; }
check() { # NAME COMMAND...: runs the command, its output in $tmp/NAME.log
    name=$1
    shift
    if "$@" > "$tmp/$name.log" 2>&1; then pass "$name"; else cat "$tmp/$name.log"; fail "$name"; fi
}

version=$(cat VERSION)
major=${version%%.*}

check install_runs $MAKE -s install "BUILD=$BUILD" "PREFIX=$prefix"

layout() {
    for f in bin/smdlm lib/libsmdlm.a "lib/libsmdlm.so.$version" include/smdlm.h \
             lib/pkgconfig/smdlm.pc share/smdlm/codebench/HumanEval.jsonl.gz \
             share/man/man1/smdlm.1 share/bash-completion/completions/smdlm; do
        [ -f "$prefix/$f" ] || { echo "missing $f"; return 1; }
    done
    [ "$(readlink "$prefix/lib/libsmdlm.so.$major")" = "libsmdlm.so.$version" ] || { echo "bad libsmdlm.so.$major"; return 1; }
    [ "$(readlink "$prefix/lib/libsmdlm.so")" = "libsmdlm.so.$major" ] || { echo "bad libsmdlm.so"; return 1; }
    readelf -d "$prefix/lib/libsmdlm.so.$version" | grep -q "SONAME.*\[libsmdlm.so.$major\]" ||
        { echo "no SONAME libsmdlm.so.$major"; return 1; }
    groff -man -Tutf8 -ww "$prefix/share/man/man1/smdlm.1" > /dev/null || return 1
    bash -c ". '$prefix/share/bash-completion/completions/smdlm'; complete -p smdlm" || return 1
}
check install_layout layout

version_output() {
    out=$(cd "$tmp" && "$prefix/bin/smdlm" --version) || return 1
    printf '%s\n' "$out"
    printf '%s\n' "$out" | head -n 1 | grep -qx "smdlm $version" &&
        printf '%s\n' "$out" | grep -q '^commit: ' &&
        printf '%s\n' "$out" | grep -Eq '^isa: +x86-64 (avx512|avx2|generic) ' &&
        printf '%s\n' "$out" | grep -Eq '^compute: +[A-Za-z]' &&
        printf '%s\n' "$out" | grep -Eq "^data: +$prefix/share/smdlm\$"
}
check install_version version_output

# the installed binary, run outside the source tree, finds the benchmark data it installed;
# $SMDLM_DATA_DIR overrides the place (here: a HumanEval of one problem)
data_found() {
    (cd "$tmp" && "$prefix/bin/smdlm" eval code --bench humaneval --canonical --limit 1 -j 1 -q) || return 1
    mkdir -p "$tmp/mydata/codebench"
    gzip -dc "$prefix/share/smdlm/codebench/HumanEval.jsonl.gz" | head -n 1 | gzip > "$tmp/mydata/codebench/HumanEval.jsonl.gz"
    out=$(cd "$tmp" && SMDLM_DATA_DIR="$tmp/mydata" "$prefix/bin/smdlm" eval code --bench humaneval --canonical -j 1 -q 2>&1) || return 1
    printf '%s\n' "$out"
    printf '%s\n' "$out" | grep -q "on 1/1 problems"
}
check install_data data_found

example_shared() {
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    # shellcheck disable=SC2046  # pkg-config's flags are words
    $CC $SAN -o "$tmp/example" tests/install_example.c $(pkg-config --cflags --libs smdlm) || return 1
    LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/example" | grep -q "libsmdlm.so.$major => $prefix/lib/" || return 1
    LD_LIBRARY_PATH="$prefix/lib" "$tmp/example" "$src/models/default"
}
check install_example_shared example_shared

example_static() {
    cp -R "$prefix" "$tmp/static" && rm -f "$tmp/static/lib/libsmdlm.so"*
    sed -i "s|^prefix=.*|prefix=$tmp/static|" "$tmp/static/lib/pkgconfig/smdlm.pc"
    export PKG_CONFIG_PATH="$tmp/static/lib/pkgconfig"
    # shellcheck disable=SC2046
    $CC $SAN -o "$tmp/example-static" tests/install_example.c $(pkg-config --static --cflags --libs smdlm) || return 1
    ! ldd "$tmp/example-static" | grep -q libsmdlm || return 1
    "$tmp/example-static" "$src/models/default"
}
check install_example_static example_static

exit $status
