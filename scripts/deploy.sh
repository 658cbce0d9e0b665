#!/usr/bin/env bash
# Cross-build picolet for a board and install it on a device over ssh.
#
#   scripts/deploy.sh BOARD HOST          e.g. scripts/deploy.sh raspberry-pi-4 pi@raspberrypi.local
#
# BOARD is a file name in boards/ (without .toml); HOST is anything ssh takes.
# Steps: scripts/build-arm.sh BOARD (static musl binary for the board's
# rust_target), scp it to the device, then on the device
# `sudo picolet install --board BOARD` (binary to /usr/local/bin, the systemd
# unit, /etc/picolet/config.yaml once, systemctl enable --now picolet) and
# `picolet check`, which prints the exact kernel command-line fix if cgroup v2
# or a controller is missing.
#
# Environment: SSH_OPTS (extra ssh/scp options, e.g. "-p 2222 -i key"),
# PICOLET_DEPLOY_BIN (skip the build and send this binary).
# Needs scripts/setup-arm-toolchain.sh once on this machine, and sudo (or
# root) on the device.
set -euo pipefail

cd "$(dirname "$0")/.."
log() { printf '[deploy] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -eq 2 ] || die "usage: $0 BOARD HOST   (boards: $(cd boards && ls *.toml | sed 's/\.toml$//' | tr '\n' ' '))"
board=$1
host=$2
file="boards/$board.toml"
[ -f "$file" ] || die "no board $board (no $file)"
target="$(sed -n 's/^rust_target *= *"\(.*\)".*/\1/p' "$file")"
# shellcheck disable=SC2206
ssh_opts=(${SSH_OPTS:-})

bin="${PICOLET_DEPLOY_BIN:-}"
if [ -z "$bin" ]; then
    log "building for $board ($target)"
    scripts/build-arm.sh "$board"
    bin="target/arm/$target/release/picolet"
fi
[ -f "$bin" ] || die "no binary at $bin"
file -b "$bin" | grep -q 'statically linked\|static-pie linked' || die "$bin is not statically linked"

# scp's -P and ssh's -p differ; translate a "-p N" in SSH_OPTS for scp.
scp_opts=()
for ((i = 0; i < ${#ssh_opts[@]}; i++)); do
    if [ "${ssh_opts[$i]}" = -p ]; then
        scp_opts+=(-P "${ssh_opts[$((i + 1))]}")
        i=$((i + 1))
    else
        scp_opts+=("${ssh_opts[$i]}")
    fi
done

remote_tmp="/tmp/picolet.deploy.$$"
log "copying $(stat -c %s "$bin") bytes to $host:$remote_tmp"
scp -q "${scp_opts[@]+"${scp_opts[@]}"}" "$bin" "$host:$remote_tmp"
log "installing on $host"
# shellcheck disable=SC2029  # expanded here on purpose
ssh "${ssh_opts[@]+"${ssh_opts[@]}"}" "$host" "
    set -e
    SUDO=; [ \"\$(id -u)\" = 0 ] || SUDO=sudo
    chmod 0755 $remote_tmp
    \$SUDO $remote_tmp install --board $board
    rm -f $remote_tmp
    /usr/local/bin/picolet --version
    /usr/local/bin/picolet check || echo 'picolet check: see the fixes above, then reboot'
"
log "done: $host runs picolet (sudo picolet get pods; static pods go to /etc/picolet/manifests/)"
