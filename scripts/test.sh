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
# bounded MINUTES COMMAND...: a hung test fails the run with a message
# instead of using up CI's time (timeout signals the whole process group).
bounded() {
    limit=$1
    shift
    rc=0
    timeout --kill-after=30 "$((limit * 60))" "$@" || rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "error: '$*' did not finish within $limit minutes" >&2
    fi
    return "$rc"
}
START=$(date +%s)

step "packages"
need_packages busybox-static iproute2 procps file ca-certificates mosquitto openssl skopeo docker-registry prometheus
# tests/registry.rs starts its own registries on loopback; the package's
# service (port 5000, /var/lib/docker-registry) is not wanted: stop it and
# keep it from starting at boot (without systemd, policy-rc.d usually kept
# it from starting at all). Likewise prometheus (tests/metrics.rs only
# runs its promtool) and the node exporter it recommends.
if command -v systemctl >/dev/null 2>&1; then
    for unit in docker-registry prometheus prometheus-node-exporter; do
        systemctl stop "$unit" >/dev/null 2>&1 || true
        systemctl disable "$unit" >/dev/null 2>&1 || true
    done
fi
need_cargo
# The second MQTT broker of the fleet tests: aedes 0.51 (Node.js >= 16:
# Debian 12's nodejs is 18), pinned by tests/aedes/package-lock.json, into
# target/aedes. A machine without node gets Debian's nodejs and npm.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need_packages nodejs npm
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 16 ] || {
    echo "the second-broker tests need Node.js >= 16 and npm (aedes); found: $(node --version 2>/dev/null || echo none)" >&2
    exit 1
}
mkdir -p target/aedes
cp tests/aedes/package.json tests/aedes/package-lock.json target/aedes/
(cd target/aedes && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
# The grpc probe tests' server: grpcio's own grpc.health.v1 servicer
# (tests/grpc/health_server.py), pinned by tests/grpc/requirements.txt,
# in a venv in target/grpc-venv (Debian 12's python3 is 3.11).
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_packages python3 python3-venv
[ -x target/grpc-venv/bin/python ] || python3 -m venv target/grpc-venv
target/grpc-venv/bin/pip install --quiet --disable-pip-version-check -r tests/grpc/requirements.txt

step "format and lints"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
sh scripts/count-unsafe.sh

step "test images"
sh tests/images/build-busybox.sh "$ROOT/target/images"

step "tests (unit + integration, real namespaces and cgroups)"
# Root-only tests must run here, never skip.
export PICOLET_REQUIRE_ROOT=1
export PICOLET_TEST_IMAGES="$ROOT/target/images"
# The parsers write what the tests feed them: the fuzz corpus (see below).
rm -rf "$ROOT/fuzz/corpus"
export PICOLET_FUZZ_CORPUS="$ROOT/fuzz/corpus"
bounded 30 cargo test --locked -- --test-threads=2
unset PICOLET_FUZZ_CORPUS

step "fleet tests again, against a second MQTT broker (aedes)"
# Nothing may depend on a mosquitto quirk: the session's broker tests and
# the fleet end-to-end tests run again on aedes (src/fleet/test_broker.rs;
# TLS and mosquitto-limit tests stay on mosquitto).
bounded 10 env PICOLET_TEST_BROKER=aedes cargo test --locked --lib -- --test-threads=2 fleet::session::tests::broker
bounded 10 env PICOLET_TEST_BROKER=aedes cargo test --locked --test fleet --test apply -- --test-threads=2

step "fuzz smoke: every libFuzzer target for a few seconds, from the tests' inputs"
# scripts/fuzz.sh with no arguments runs each target 10 M times.
bounded 15 env FUZZ_SEED_TESTS=0 MAX_SECONDS=4 scripts/fuzz.sh 200000

step "systemd unit: systemd-analyze verify against a staged install"
# The unit's ExecStart must exist: stage an install (what `picolet install`
# does on a device) and verify inside that root, with the host's units
# (sysinit.target, network-online.target, …) copied in.
need_packages systemd
cargo build --locked --bin picolet
STAGE=$(mktemp -d)
# --force: the x86_64 test build stands in for the board's binary (install
# refuses a binary of another architecture); only the units are checked here.
target/debug/picolet install --root "$STAGE/root" --board raspberry-pi-4 --force
mkdir -p "$STAGE/root/usr/lib/systemd"
cp -a /lib/systemd/system "$STAGE/root/usr/lib/systemd/"
systemd-analyze verify --root="$STAGE/root" picolet.service picolet-pods.service
echo "systemd-analyze verify: ok"
# What `picolet install --root` tells the user to run for a staged image.
systemctl --root="$STAGE/root" enable picolet.service
test -L "$STAGE/root/etc/systemd/system/multi-user.target.wants/picolet.service"
# picolet-pods.service has no [Install]: picolet.service's Requires= starts it.
grep -q '^Requires=picolet-pods.service' "$STAGE/root/etc/systemd/system/picolet.service"
rm -rf "$STAGE"

step "ARM toolchain (Debian rustc 1.85, musl, -Zbuild-std)"
scripts/setup-arm-toolchain.sh

step "ARM builds: aarch64 and armv7, static, stripped sizes"
scripts/build-arm.sh all

step "library unit tests for aarch64 under qemu-aarch64-static"
# Tests that qemu-user cannot emulate (namespaces, clone flags) skip, saying
# so, only when check::qemu_user() detects the emulator.
bounded 20 scripts/build-arm.sh aarch64 test --lib -- --test-threads=2

step "QEMU end-to-end: static aarch64 picolet on a real arm64 kernel"
PICOLET_E2E_BIN="$ROOT/target/arm/aarch64-unknown-linux-musl/release/picolet" \
    scripts/qemu-e2e.sh

step "done"
