#!/bin/sh
# Sets up and runs the main job: the picolet agent with the example static
# pods in examples/, no broker needed. Run as root on Debian / Ubuntu /
# Raspberry Pi OS:   sudo ./scripts/run-example.sh
# Ctrl-C stops the agent; the pods keep running under their shims (as with
# systemd's KillMode=process). `./scripts/run-example.sh --stop` removes them.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE=${PICOLET_STATE_DIR:-/var/lib/picolet-example}
RUN=${PICOLET_RUN_DIR:-/run/picolet-example}
MANIFESTS=$STATE/manifests
export PICOLET_STATE_DIR=$STATE

[ "$(id -u)" = 0 ] || { echo "run as root (pods need namespaces and mounts)" >&2; exit 1; }

. "$ROOT/scripts/lib.sh"
need_packages busybox-static ca-certificates
need_cargo

cargo build --release --locked
BIN=$ROOT/target/release/picolet

if [ "${1:-}" = "--stop" ]; then
    rm -f "$MANIFESTS"/*.yaml
    echo "manifests removed; a running agent stops the pods within a second"
    exit 0
fi

mkdir -p "$STATE" "$MANIFESTS"
IMG=$ROOT/target/images
if [ ! -f "$IMG/busybox.oci.tar" ]; then
    sh "$ROOT/tests/images/build-busybox.sh" "$IMG"
fi
"$BIN" image import "$IMG/busybox-oci"
cp "$ROOT"/examples/*.yaml "$MANIFESTS"/
echo "agent starting; in another shell:  PICOLET_STATE_DIR=$STATE $BIN get pods"
exec "$BIN" agent --manifests "$MANIFESTS" --run-dir "$RUN"
