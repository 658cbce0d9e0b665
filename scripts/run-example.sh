#!/bin/sh
# Sets up and runs the main job: the picolet agent with the example static
# pods in examples/, no broker needed. Run as root on Debian / Ubuntu /
# Raspberry Pi OS:   sudo ./scripts/run-example.sh
# Ctrl-C stops the agent; the pods keep running under their shims (as with
# systemd's KillMode=process).
#
# ./scripts/run-example.sh --stop   stops the example pods (the example
#   Deployment's too) and removes their manifests; pods of your own in the
#   manifests dir are left alone. When
#   the agent is not running (after Ctrl-C) it starts it just long enough to
#   stop them.
#
# Environment (all optional): PICOLET_STATE_DIR, PICOLET_RUN_DIR,
# PICOLET_MANIFESTS (default: the state dir's manifests/), and, for
# the tests, PICOLET_BIN (a built picolet: no build), PICOLET_TEST_IMAGES
# (where busybox-oci is), PICOLET_CGROUP_ROOT (the agent's --cgroup-root) and
# PICOLET_POD_NETWORK (the agent's --pod-network: `none` keeps the tests off
# the host's network).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE=${PICOLET_STATE_DIR:-/var/lib/picolet-example}
RUN=${PICOLET_RUN_DIR:-/run/picolet-example}
MANIFESTS=${PICOLET_MANIFESTS:-$STATE/manifests}
export PICOLET_STATE_DIR=$STATE

[ "$(id -u)" = 0 ] || { echo "run as root (pods need namespaces and mounts)" >&2; exit 1; }

. "$ROOT/scripts/lib.sh"
need_packages busybox-static ca-certificates
if [ -n "${PICOLET_BIN:-}" ]; then
    BIN=$PICOLET_BIN
else
    need_cargo
    cargo build --release --locked
    BIN=$ROOT/target/release/picolet
fi

# Replaces the (sub)shell with the agent: `agent &` leaves the agent's own
# PID in $!, and the script's last line becomes the agent.
agent() {
    set -- agent --manifests "$MANIFESTS" --run-dir "$RUN"
    if [ -n "${PICOLET_CGROUP_ROOT:-}" ]; then
        set -- "$@" --cgroup-root "$PICOLET_CGROUP_ROOT"
    fi
    if [ -n "${PICOLET_POD_NETWORK:-}" ]; then
        set -- "$@" --pod-network "$PICOLET_POD_NETWORK"
    fi
    exec "$BIN" "$@"
}

# The examples' objects, "KIND NAME" per document of examples/*.yaml.
example_objects() {
    for f in "$ROOT"/examples/*.yaml; do
        awk '
            function out() { if (k != "" && n != "") print k, n; k = ""; n = ""; m = 0 }
            /^---/ { out(); next }
            /^kind:/ { k = $2 }
            /^metadata:/ { m = 1; next }
            m && /^  name:/ { n = $2; gsub(/["\047]/, "", n); m = 0 }
            m && /^[^ #]/ { m = 0 }
            END { out() }
        ' "$f"
    done
}

# Whether the agent lists a pod of the examples: an example Pod by its
# name, or a pod an example workload owns (a Deployment's through its
# ReplicaSet <deployment>-<pod-template-hash>, a CronJob's through its Job
# <cronjob>-<minutes>, the other kinds directly).
examples_listed() {
    cols='NAME:.metadata.name,KIND:.metadata.ownerReferences[0].kind'
    cols="$cols,OWNER:.metadata.ownerReferences[0].name,HASH:.metadata.labels.pod-template-hash"
    "$BIN" get pods -o "custom-columns=$cols" >"$STATE/.listed" 2>/dev/null || return 0
    example_objects >"$STATE/.examples"
    awk '
        NR == FNR { want[$1 " " $2] = 1; next }
        FNR == 1 { next }
        ("Pod " $1) in want || ($2 " " $3) in want { found = 1 }
        $2 == "ReplicaSet" && $4 != "<none>" && substr($3, length($3) - length($4)) == "-" $4 {
            if (("Deployment " substr($3, 1, length($3) - length($4) - 1)) in want) found = 1
        }
        $2 == "Job" { j = $3; if (sub(/-[0-9]+$/, "", j) && ("CronJob " j) in want) found = 1 }
        END { exit !found }
    ' "$STATE/.examples" "$STATE/.listed"
}

if [ "${1:-}" = "--stop" ]; then
    for f in "$ROOT"/examples/*.yaml; do
        rm -f "$MANIFESTS/$(basename "$f")"
    done
    echo "example manifests removed from $MANIFESTS (your own files are kept)"
    started=""
    if ! "$BIN" get pods >/dev/null 2>&1; then
        echo "the agent is not running: starting it to stop the example pods"
        agent >>"$STATE/stop-agent.log" 2>&1 &
        started=$!
        i=0
        until "$BIN" get pods >/dev/null 2>&1; do
            i=$((i + 1))
            [ $i -lt 100 ] || { echo "the agent did not start; see $STATE/stop-agent.log" >&2; kill "$started"; exit 1; }
            sleep 0.1
        done
    fi
    i=0
    while examples_listed; do
        i=$((i + 1))
        [ $i -lt 600 ] || { echo "the example pods did not stop within 60 s" >&2; break; }
        sleep 0.1
    done
    rm -f "$STATE/.listed" "$STATE/.examples"
    if [ -n "$started" ]; then
        kill -TERM "$started"
        wait "$started" || true
        echo "example pods stopped; the agent is stopped again"
    else
        echo "example pods stopped"
    fi
    exit 0
fi

mkdir -p "$STATE" "$MANIFESTS"
IMG=${PICOLET_TEST_IMAGES:-$ROOT/target/images}
if [ ! -d "$IMG/busybox-oci" ]; then
    sh "$ROOT/tests/images/build-busybox.sh" "$IMG"
fi
"$BIN" image import "$IMG/busybox-oci"
cp "$ROOT"/examples/*.yaml "$MANIFESTS"/
echo "agent starting; in another shell:  PICOLET_STATE_DIR=$STATE $BIN get pods"
agent
