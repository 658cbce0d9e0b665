#!/bin/sh
# Runs the agent benchmark (as root): budgets of issue 2, podman in the same run.
# It measures this build's binary (glibc, dynamically linked). To measure a
# static musl build, as shipped, instead:
#   rustup target add x86_64-unknown-linux-musl
#   CC_x86_64_unknown_linux_musl=gcc cargo build --release --target x86_64-unknown-linux-musl
#   PICOLET_BENCH_BIN=target/x86_64-unknown-linux-musl/release/picolet bench/run.sh
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench agent "$@"
