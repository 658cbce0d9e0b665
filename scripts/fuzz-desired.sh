#!/usr/bin/env bash
# Fuzz the desired-document decoder (fleet::doc::decode_desired) for longer
# than the test suite does.
#
#   scripts/fuzz-desired.sh [ITERATIONS] [SEED]     randomized mutation test
#                                                   (stable toolchain; default
#                                                   1000000 iterations, random seed)
#   scripts/fuzz-desired.sh libfuzzer [SECONDS]     the libFuzzer target in fuzz/,
#                                                   through scripts/fuzz.sh (stable)
#
# The mutation test prints "fuzz: N executions, …"; a failure prints the seed,
# the iteration and the failing input in base64. Set CARGO_FLAGS=--release for
# an optimized build (slow to build: the release profile uses LTO).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == libfuzzer ]]; then
    MAX_SECONDS="${2:-300}" exec scripts/fuzz.sh 1000000000 desired_doc
fi

export PICOLET_FUZZ_ITERS="${1:-1000000}"
export PICOLET_FUZZ_SEED="${2:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
echo "fuzz-desired: $PICOLET_FUZZ_ITERS iterations, seed $PICOLET_FUZZ_SEED"
# shellcheck disable=SC2086
exec cargo test --lib ${CARGO_FLAGS:-} fleet::doc::tests::fuzz -- --nocapture
