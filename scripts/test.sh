#!/bin/sh
# Sets up everything the tests need (apt packages, toolchains, test images)
# and runs all the tests. Run as root on Debian 12:  sudo ./scripts/test.sh
# .ci/run calls exactly this.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. "$ROOT/scripts/lib.sh"

[ "$(id -u)" = 0 ] || { echo "the tests need root (namespaces, mounts, cgroups)" >&2; exit 1; }

step() { printf '\n== %s (%ss)\n' "$1" "$(($(date +%s) - START))"; }
START=$(date +%s)

step "packages"
need_packages busybox-static iproute2 procps file ca-certificates mosquitto openssl
need_cargo

step "format and lints"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

step "test images"
sh tests/images/build-busybox.sh "$ROOT/target/images"

step "tests (unit + integration, real namespaces and cgroups)"
# Root-only tests must run here, never skip.
export PICOLET_REQUIRE_ROOT=1
export PICOLET_TEST_IMAGES="$ROOT/target/images"
cargo test --locked -- --test-threads=2

step "done"
