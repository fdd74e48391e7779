#!/bin/sh
# Installs the Debian packages smdlm builds and tests with (as root, or through sudo).
# WITH_PYTHON=1 also installs what the reference fixtures and benchmarks use (PyTorch; jinja2
# for the chat templates of tests/gen_harness_fixtures.py; oneDNN for the GEMM comparison of
# bench/gemm_options.sh).
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="build-essential pkg-config groff-base libopenblas-openmp-dev libcjson-dev libpcre2-dev libutf8proc-dev libcmocka-dev zlib1g-dev libzip-dev python3 gnuplot-nox libopenmpi-dev openmpi-bin"
# smdlm serve (libmicrohttpd) and its tests (libcurl); the OpenAI client test needs npm
pkgs="$pkgs libmicrohttpd-dev libcurl4-openssl-dev"
# the fuzz targets (make fuzz, make fuzz-smoke): clang with compiler-rt's libFuzzer and sanitizers, LLVM's OpenMP
pkgs="$pkgs clang-14 libclang-rt-14-dev libomp-14-dev"
# the web playground's test: headless Chromium (driven by playwright-core from npm)
pkgs="$pkgs chromium"
# the reproduction's corpora (make repro, make repro-quick): the KJV Bible, npm for the @stdlib datasets
pkgs="$pkgs bible-kjv"
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
if [ "${WITH_PYTHON:-0}" = 1 ]; then
    pkgs="$pkgs python3-torch python3-numpy python3-scipy python3-jinja2 libdnnl-dev"
fi
as_root=""
[ "$(id -u)" = 0 ] || as_root=sudo
$as_root apt-get update -q
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs
