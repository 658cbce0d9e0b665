#!/bin/sh
# Runs every libFuzzer target in fuzz/ for a fixed number of executions and
# prints, per target, the executions, the crashes and the time taken.
#
#   scripts/fuzz.sh [RUNS [TARGET...]]    default 10000000 runs, all targets
#
# Targets: manifest (YAML and JSON), oci_json (index, manifest, config,
# Docker manifest.json), tar_unpack (path and link escapes), mqtt_packets
# (the session's receive path), state_file, shim_wire, desired_doc, yaml
# (the YAML reader and writer against serde_norway), hpack (the grpc
# probe's header decoder).
#
# The corpus (fuzz/corpus/<target>/, not committed) starts from the inputs
# the unit tests give each parser: with PICOLET_FUZZ_CORPUS set, the
# parsers write what they are fed under cfg(test) (testutil::fuzz_seed).
# scripts/test.sh sets it for its test run; here, a target whose corpus is
# empty gets it from the unit tests that feed it (set FUZZ_SEED_TESTS=0 to
# skip). desired_doc also starts from fuzz/seeds/.
#
# The targets build on stable Rust with the sanitizer-coverage flags
# cargo-fuzz uses (no AddressSanitizer: picolet's only unsafe code is
# syscalls), plus debug assertions and overflow checks. A crash leaves its
# input in fuzz/artifacts/<target>/ and makes the script exit 1 after all
# targets ran. MAX_SECONDS (default none) also bounds each run.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RUNS=${1:-10000000}
[ $# -gt 0 ] && shift
TARGETS=${*:-manifest oci_json tar_unpack mqtt_packets state_file shim_wire desired_doc yaml hpack}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
CORPUS="$ROOT/fuzz/corpus"

# The unit tests whose inputs seed each target (libtest filters).
seed_tests() {
    case "$1" in
        manifest) echo "spec::" ;;
        oci_json | tar_unpack) echo "image::" ;;
        mqtt_packets) echo "fleet::session" ;;
        state_file) echo "store:: agent::statefile" ;;
        shim_wire) echo "runtime::shim" ;;
        hpack) echo "probe::" ;;
        yaml) echo "yaml:: spec:: serde_path" ;;
        *) echo "" ;;
    esac
}

missing=""
for t in $TARGETS; do
    mkdir -p "$CORPUS/$t"
    [ -n "$(ls -A "$CORPUS/$t")" ] || missing="$missing $(seed_tests "$t")"
done
if [ -n "$missing" ] && [ "${FUZZ_SEED_TESTS:-1}" != 0 ]; then
    echo "fuzz: seeding the corpus from the unit tests:$missing"
    # shellcheck disable=SC2086
    PICOLET_FUZZ_CORPUS="$CORPUS" cargo test --lib -q -- --test-threads=2 $missing >/dev/null
fi
mkdir -p "$CORPUS/desired_doc"
cp fuzz/seeds/* "$CORPUS/desired_doc/"

echo "fuzz: building the targets"
export CARGO_TARGET_DIR="$ROOT/fuzz/target"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --manifest-path fuzz/Cargo.toml --release --target "$TRIPLE" -q

# The unpacker target writes a layer per execution: keep that in RAM.
[ -d /dev/shm ] && TMPDIR=${TMPDIR:-/dev/shm} && export TMPDIR

failed=0
printf '%-14s %10s %8s %8s %10s %8s\n' target execs crashes seconds execs/s corpus
for t in $TARGETS; do
    mkdir -p "fuzz/artifacts/$t"
    log=$(mktemp)
    start=$(date +%s)
    rc=0
    # 16 KiB is 32 tar blocks: room for a dozen entries, links and PAX headers.
    case "$t" in tar_unpack) max_len=16384 ;; *) max_len=65536 ;; esac
    "$CARGO_TARGET_DIR/$TRIPLE/release/$t" "$CORPUS/$t" -runs="$RUNS" \
        ${MAX_SECONDS:+-max_total_time=$MAX_SECONDS} -max_len="$max_len" -rss_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$(find "fuzz/artifacts/$t" -type f -newer "$log" | wc -l)
    if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then crashes=1; fi
    rate=$((${execs:-0} / (secs > 0 ? secs : 1)))
    printf '%-14s %10s %8s %8s %10s %8s\n' "$t" "${execs:-?}" "$crashes" "$secs" "$rate" \
        "$(ls "$CORPUS/$t" | wc -l)"
    if [ "$crashes" != 0 ]; then
        failed=1
        grep -E '^(==|SUMMARY|thread|panicked|.*panicked at)' "$log" | head -5 || true
        tail -5 "$log"
    fi
    rm -f "$log"
done
exit "$failed"
