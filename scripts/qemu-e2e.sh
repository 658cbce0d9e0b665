#!/usr/bin/env bash
# End-to-end test of the static aarch64 picolet on a real arm64 kernel with
# cgroup v2: Debian's cloud arm64 kernel under qemu-system-aarch64 -M virt
# -cpu cortex-a53 -m 512 (boards/qemu-virt.toml), busybox, the kernel modules
# it needs and the static picolet in an initramfs. The pods' arm64 busybox
# image is pulled by the guest's agent from a docker-registry on this host
# (guestfwd 10.0.2.100:5000, plain HTTP), as a device pulls on a fleet.
#
# The pods come from this host over MQTT, as on a real fleet: a mosquitto on
# a free loopback port with mutual TLS (certificates made here with openssl)
# is the guest's only reachable address (-netdev user,restrict=on,guestfwd=
# 10.0.2.100:8883 -> the broker). When the guest prints `E2E-SYNC agent-up`,
# this script runs `picolet apply` (signed with a fleet key made here), then
# asserts the pods' states through the device's retained status topic,
# compares the containers' startedAt in the status of the agent restarted
# in the guest, and deletes the pods again with `picolet delete pod`.
#
# The guest (tests/qemu/guest-e2e.sh) and this script print
#   E2E <name> PASS|FAIL <detail>      and      E2E-MEASURE <name> <value> <unit>
# lines; this script checks that every expected test passed and prints the
# measurements against the budgets.
#
#   scripts/qemu-e2e.sh            (needs scripts/setup-arm-toolchain.sh first)
#   PICOLET_E2E_BIN=path           use this aarch64 binary instead of building
#   PICOLET_E2E_HOST_BIN=path      the host's picolet (the controller; default:
#                                  target/debug/picolet, built if missing)
#   PICOLET_E2E_TIMEOUT=seconds    guest time limit (default 270)
#
# Work files: target/qemu-e2e/: console.log (the whole guest output),
# host.log (this script's checks), mqtt.log (every message on the device's
# topics), mosquitto.log.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK="$ROOT/target/qemu-e2e"
TIMEOUT="${PICOLET_E2E_TIMEOUT:-270}"
DEVICE=qemu-e2e
# The tests the guest and this script must report, all PASS.
EXPECTED=(version install check agent-start fleet-connect check-delegated
    fleet-apply fleet-delivery status-two-ready two-containers status-oom-killed oom-killed
    status-cpu-running cpu-throttled status-forkbomb-running pids-max top-memory status-usage
    oom-score-adj agent-restart
    status-after-restart fleet-delete-applied status-deleted fleet-delete
    check-network pod-network pod-egress host-served-pod host-port image-pull
    initramfs-pivot-refused initramfs-check initramfs-pod initramfs-exec)

log() { printf '[qemu-e2e] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
START=$(date +%s)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
for tool in cpio:cpio qemu-system-aarch64:qemu-system-arm strings:binutils mosquitto:mosquitto \
    mosquitto_sub:mosquitto-clients jq:jq openssl:openssl ss:iproute2 socat:socat \
    docker-registry:docker-registry skopeo:skopeo; do
    command -v "${tool%%:*}" >/dev/null || $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${tool#*:}"
done

# --- 1. the static aarch64 binary ------------------------------------------------------
bin="${PICOLET_E2E_BIN:-}"
if [ -z "$bin" ]; then
    log "building the static aarch64 picolet (scripts/build-arm.sh aarch64)"
    scripts/build-arm.sh aarch64 >&2
    bin="$ROOT/target/arm/aarch64-unknown-linux-musl/release/picolet"
fi
[ -x "$bin" ] || die "no binary at $bin"
host_bin="${PICOLET_E2E_HOST_BIN:-$ROOT/target/debug/picolet}"
if [ -z "${PICOLET_E2E_HOST_BIN:-}" ]; then
    cargo build --locked --bin picolet >&2
fi
[ -x "$host_bin" ] || die "no host picolet at $host_bin"

# --- 2. kernel and busybox (arm64 .debs, extracted, never installed) ---------------------
mkdir -p "$WORK/debs" "$WORK/x"
if [ ! -f "$WORK/vmlinuz" ] || [ ! -x "$WORK/x/bin/busybox" ]; then
    kpkg="$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-cloud-arm64-unsigned$' \
        | awk '{print $1}' | sort -V | tail -n1)"
    [ -n "$kpkg" ] || die "no linux-image-*-cloud-arm64-unsigned in apt (run scripts/setup-arm-toolchain.sh)"
    log "downloading $kpkg and busybox-static (arm64)"
    rm -rf "$WORK/x" && mkdir -p "$WORK/x"
    (cd "$WORK/debs" && rm -f ./*.deb && apt-get download "$kpkg:arm64" busybox-static:arm64)
    for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/x"; done
    cp "$(ls "$WORK"/x/boot/vmlinuz-* | head -n1)" "$WORK/vmlinuz"
fi
kver="$(ls "$WORK/x/lib/modules" | head -n1)"

# --- 3. the arm64 busybox image ----------------------------------------------------------
log "building the arm64 busybox image"
BUSYBOX="$WORK/x/bin/busybox" sh tests/images/build-busybox.sh "$WORK/images" arm64 >&2

# --- 4. initramfs --------------------------------------------------------------------------
root="$WORK/initramfs"
rm -rf "$root"
mkdir -p "$root"/{bin,proc,sys,dev,etc,e2e,usr/local/bin}
cp "$WORK/x/bin/busybox" "$root/bin/busybox"
cp "$bin" "$root/picolet"
# No image archive: the guest's agent pulls the pods' image from a registry
# on this host (10.0.2.100:5000 through guestfwd, plain HTTP, listed as such
# in registries.yaml as k3s lists an insecure registry).
mkdir -p "$root/etc/picolet"
cat >"$root/etc/picolet/registries.yaml" <<'EOF'
mirrors:
  "10.0.2.100:5000":
    endpoint: ["http://10.0.2.100:5000"]
EOF

# The fleet's secrets: a CA, the broker's certificate (for 10.0.2.100, as
# the guest sees it, and 127.0.0.1, as this host does), client certificates
# for the device and the controller, and the fleet signing key.
tls="$WORK/tls"
rm -rf "$tls" && mkdir -p "$tls" "$root/e2e/tls"
ossl() { openssl "$@" 2>>"$tls/openssl.log" || die "openssl $*: $(tail -n3 "$tls/openssl.log")"; }
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
ossl req -x509 "${ec[@]}" -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 2 -subj "/CN=picolet e2e CA"
leaf() { # NAME EXTENSIONS
    printf '%b' "$2" >"$tls/$1.ext"
    ossl req "${ec[@]}" -keyout "$tls/$1.key" -out "$tls/$1.csr" -subj "/CN=picolet e2e $1"
    ossl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
        -out "$tls/$1.crt" -days 2 -extfile "$tls/$1.ext"
}
leaf server "subjectAltName=IP:10.0.2.100,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
leaf device "extendedKeyUsage=clientAuth\n"
leaf controller "extendedKeyUsage=clientAuth\n"
cp "$tls/ca.crt" "$tls/device.crt" "$tls/device.key" "$root/e2e/tls/"
rm -f "$WORK/fleet.key" "$WORK/fleet.pub"
"$host_bin" keygen "$WORK/fleet" >&2
cp "$WORK/fleet.pub" "$root/e2e/fleet.pub"
cp tests/qemu/guest-e2e.sh "$root/e2e/guest-e2e.sh"
# A pod on the initramfs itself before the switch_root (init.sh's stage 1):
# its image is imported (the network is only set up in stage 2).
cp tests/qemu/initramfs-root.sh "$root/e2e/initramfs-root.sh"
cp "$WORK/images/busybox.oci.tar" "$root/e2e/busybox.oci.tar"
cp tests/qemu/init.sh "$root/init"
chmod 0755 "$root/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"

# Kernel modules with their dependencies (read from each .ko's modinfo
# `depends=`), and a modules.dep for them, so that busybox modprobe and
# `picolet check` find them as on a normal system.
mods="$WORK/x/lib/modules/$kver"
moddst="$root/lib/modules/$kver"
mkdir -p "$moddst"
cp "$mods/modules.builtin" "$moddst/"
declare -A ko_path=()
while IFS= read -r p; do
    n="$(basename "$p")"; n="${n%%.ko*}"
    ko_path[$n]="${p#"$mods"/}"
done < <(find "$mods/kernel" -name '*.ko*')
deps_of() { strings -a "$mods/${ko_path[$1]}" | sed -n 's/^depends=//p' | tr ',' ' '; }
# Every module MODULE needs, directly or not, as depmod lists them in
# modules.dep: each one before its own dependencies (modprobe, busybox's
# too, loads the list from its end and does not look further).
closure_of() {
    local -A seen=()
    local -a post=()
    visit() {
        local d
        for d in $(deps_of "$1"); do
            [ -n "${seen[$d]:-}" ] && continue
            seen[$d]=1
            visit "$d"
            post+=("$d")
        done
    }
    visit "$1"
    local i
    for ((i = ${#post[@]} - 1; i >= 0; i--)); do printf '%s ' "${post[i]}"; done
}
: >"$moddst/modules.dep"
# Pod networking: the bridge and veth, nf_tables with the nat chain type
# and the expressions picolet's table uses (nat, masq, fib, ct; payload,
# cmp, bitwise, meta, immediate and counter are built into nf_tables).
for m in overlay bridge veth virtio_mmio virtio_net nf_tables nft_chain_nat nft_nat nft_masq \
    nft_fib_ipv4 nft_ct; do
    for x in $m $(closure_of "$m"); do
        [ -n "${ko_path[$x]:-}" ] || die "module $x not in $kver"
        grep -q "^${ko_path[$x]}:" "$moddst/modules.dep" && continue
        mkdir -p "$moddst/$(dirname "${ko_path[$x]}")"
        cp "$mods/${ko_path[$x]}" "$moddst/${ko_path[$x]}"
        line="${ko_path[$x]}:"
        for d in $(closure_of "$x"); do line="$line ${ko_path[$d]}"; done
        echo "$line" >>"$moddst/modules.dep"
    done
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"
log "initramfs: $(du -h "$WORK/initrd.gz" | cut -f1) (kernel $kver); prepared in $(( $(date +%s) - START ))s"

# --- 5. the broker ----------------------------------------------------------------------------
# mosquitto with mutual TLS on a free loopback port; every message on the
# device's topics is recorded, one `topic payload` line each, in mqtt.log.
: >"$WORK/host.log"
: >"$WORK/mqtt.log"
MOSQ=""
SUB=""
REG=""
QEMU_JOB=""
cleanup() {
    # Only the processes this script started, by PID.
    for pid in $SUB $MOSQ $REG; do kill "$pid" 2>/dev/null || true; done
    # timeout(1) passes the signal on to QEMU.
    [ -z "$QEMU_JOB" ] || kill "$(cat "$WORK/qemu.pid" 2>/dev/null)" 2>/dev/null || true
}
trap cleanup EXIT
for port in $(shuf -i 20000-60000 -n 20); do
    ss -Hltn "sport = :$port" | grep -q . && continue
    cat >"$WORK/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
persistence false
user root
log_dest file $WORK/mosquitto.log
listener $port 127.0.0.1
cafile $tls/ca.crt
certfile $tls/server.crt
keyfile $tls/server.key
require_certificate true
EOF
    : >"$WORK/mosquitto.log"
    mosquitto -c "$WORK/mosquitto.conf" &
    MOSQ=$!
    for _ in $(seq 50); do
        ss -Hltn "sport = :$port" | grep -q . && break
        kill -0 "$MOSQ" 2>/dev/null || break
        sleep 0.1
    done
    ss -Hltn "sport = :$port" | grep -q . && kill -0 "$MOSQ" 2>/dev/null && break
    kill "$MOSQ" 2>/dev/null || true
    MOSQ=""
done
[ -n "$MOSQ" ] || die "mosquitto did not start (see $WORK/mosquitto.log)"
log "mosquitto (mutual TLS) on 127.0.0.1:$port, pid $MOSQ"

# The registry the guest pulls from: Debian's docker-registry on loopback,
# with the arm64 busybox image pushed by skopeo.
for regport in $(shuf -i 20000-60000 -n 20); do
    ss -Hltn "sport = :$regport" | grep -q . && continue
    rm -rf "$WORK/registry"
    mkdir -p "$WORK/registry"
    cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: "127.0.0.1:$regport"}
EOF
    docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
    REG=$!
    for _ in $(seq 50); do
        ss -Hltn "sport = :$regport" | grep -q . && break
        kill -0 "$REG" 2>/dev/null || break
        sleep 0.1
    done
    ss -Hltn "sport = :$regport" | grep -q . && kill -0 "$REG" 2>/dev/null && break
    kill "$REG" 2>/dev/null || true
    REG=""
done
[ -n "$REG" ] || die "docker-registry did not start (see $WORK/registry.log)"
skopeo copy -q --dest-tls-verify=false "oci-archive:$WORK/images/busybox.oci.tar" \
    "docker://127.0.0.1:$regport/e2e/busybox:1" >&2 || die "skopeo could not push the busybox image"
log "docker-registry on 127.0.0.1:$regport (guest: 10.0.2.100:5000), pid $REG, e2e/busybox:1 pushed"
TLS_ARGS=(--ca "$tls/ca.crt" --cert "$tls/controller.crt" --key "$tls/controller.key")
FLEET_ARGS=(--device "$DEVICE" --broker "mqtts://127.0.0.1:$port" "${TLS_ARGS[@]}")
stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$port" --cafile "$tls/ca.crt" --cert "$tls/controller.crt" \
    --key "$tls/controller.key" -i e2e-recorder -q 1 -v -t "picolet/devices/$DEVICE/#" >>"$WORK/mqtt.log" &
SUB=$!

# A tiny HTTP server on this host for the pods: QEMU runs it for every
# guest connection to 10.0.2.100:8080 (guestfwd, stdio is the connection);
# it records the request line in http.log and answers `host-ok`. A pod
# reaches it through picolet0, picolet's masquerade and the guest's eth0.
cat >"$WORK/http.sh" <<'EOF'
#!/bin/sh
first=""
while IFS= read -r line; do
    line="$(printf '%s' "$line" | tr -d '\r')"
    [ -n "$first" ] || first="$line"
    [ -n "$line" ] || break
done
echo "$first" >>"$(dirname "$0")/http.log"
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nhost-ok\n'
EOF
chmod 0755 "$WORK/http.sh"
: >"$WORK/http.log"

# --- 6. boot, and the host's side of the test ----------------------------------------------------
append="console=ttyAMA0 quiet loglevel=3 panic=-1 picolet.initramfs-root PICOLET_E2E_NET=1 PICOLET_E2E_NOW=$(date +%s)"
# cmd: runs socat per guest connection (a -tcp: chardev would be one host
# connection for the whole boot, and the restarted agent's TLS handshake
# would land in the first agent's stream).
qemu_net=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8883-cmd:socat STDIO TCP:127.0.0.1:$port,guestfwd=tcp:10.0.2.100:8080-cmd:$WORK/http.sh,guestfwd=tcp:10.0.2.100:5000-cmd:socat STDIO TCP:127.0.0.1:$regport"
    -device virtio-net-device,netdev=n0)
log "booting (time limit ${TIMEOUT}s)"
boot_start=$(date +%s)
rm -f "$WORK/qemu.rc" "$WORK/qemu.pid"
(
    set +e
    timeout "$TIMEOUT" qemu-system-aarch64 -M virt -cpu cortex-a53 -m 512 -smp 1 -nographic \
        -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.gz" -append "$append" -no-reboot \
        "${qemu_net[@]}" </dev/null &
    echo $! >"$WORK/qemu.pid"
    wait $!
    echo $? >"$WORK/qemu.rc"
) | stdbuf -oL tr -d '\r' | tee "$WORK/console.log" >&2 &
QEMU_JOB=$!

host_result() { # NAME PASS|FAIL DETAIL
    echo "E2E $1 $2 $3" | tee -a "$WORK/host.log" >&2
}
guest_done() { [ -f "$WORK/qemu.rc" ]; }
# wait_console PATTERN SECONDS: the guest printed PATTERN (false if it ended first).
wait_console() {
    local until=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -lt "$until" ]; do
        grep -q "$1" "$WORK/console.log" && return 0
        guest_done && return 1
        sleep 0.2
    done
    return 1
}
# The device's statuses, oldest first, one JSON document per line; with an
# argument N, only those published after the N-th `online true`.
statuses() {
    awk -v topic="picolet/devices/$DEVICE" -v after="${1:-0}" '
        $1 == topic "/online" && $2 == "true" { onlines++ }
        $1 == topic "/status" && onlines >= after { sub(/^[^ ]+ /, ""); print }
    ' "$WORK/mqtt.log"
}
# check_status SECONDS JQ-FILTER [N]: the latest status (after the N-th
# connection) satisfies the filter; the filter's value is left in $STATUS_VALUE.
check_status() {
    local until=$(( $(date +%s) + $1 )) doc
    while :; do
        doc="$(statuses "${3:-0}" | tail -n1)"
        if [ -n "$doc" ] && jq -e "$2" <<<"$doc" >/dev/null 2>&1; then
            STATUS_VALUE="$(jq -c "$2" <<<"$doc")"
            return 0
        fi
        [ "$(date +%s)" -lt "$until" ] || break
        guest_done && break
        sleep 0.5
    done
    STATUS_VALUE="$(jq -c '[.pods[] | {(.metadata.name): [.status.phase, (.status.containerStatuses // [] | map({name, ready, restartCount, state, lastState}))]}] | add' <<<"${doc:-null}" 2>/dev/null || echo "no status")"
    return 1
}
pod() { printf '.pods[] | select(.metadata.name == "%s")' "$1"; }
# The startedAt of every running container of pods two and cpu, sorted.
STARTED='[.pods[] | select(.metadata.name == "two" or .metadata.name == "cpu") | .status.containerStatuses[]
    | "\(.name)=\(.state.running.startedAt // "not-running")"] | sort | join(" ")'

host_side() {
    if ! wait_console "E2E-SYNC agent-up" "$TIMEOUT"; then
        host_result fleet-apply FAIL "the guest never printed E2E-SYNC agent-up"
        return
    fi
    local t0 out rc
    t0=$(date +%s%N)
    set +e
    out="$("$host_bin" apply -f tests/qemu/manifests/two.yaml -f tests/qemu/manifests/oom.yaml \
        -f tests/qemu/manifests/cpu.yaml -f tests/qemu/manifests/forkbomb.yaml \
        -f tests/qemu/manifests/mem.yaml \
        "${FLEET_ARGS[@]}" --sign-key "$WORK/fleet.key" --timeout 90 2>&1)"
    rc=$?
    set -e
    if [ $rc = 0 ]; then
        host_result fleet-apply PASS "$(tr '\n' ' ' <<<"$out")($(( ($(date +%s%N) - t0) / 1000000 )) ms to observedRevision)"
    else
        host_result fleet-apply FAIL "exit $rc: $(tr '\n' ' ' <<<"$out")"
        return
    fi

    if check_status 90 "($(pod two) | [.status.conditions[] | select(.type == \"Ready\") | .status] == [\"True\"])
        and ([$(pod two) | .status.containerStatuses[] | select(.ready)] | length == 2)"; then
        host_result status-two-ready PASS "status: pod two Ready=True, 2/2 containers ready"
    else
        host_result status-two-ready FAIL "latest status: $STATUS_VALUE"
    fi
    if check_status 90 "$(pod oom) | .status.containerStatuses[0]
        | select(.restartCount >= 1 and (.lastState.terminated // .state.terminated // {}).reason == \"OOMKilled\")
        | {restartCount, terminated: (.lastState.terminated // .state.terminated | {reason, exitCode})}
        | select(.terminated.exitCode == 137)"; then
        host_result status-oom-killed PASS "status: $STATUS_VALUE"
    else
        host_result status-oom-killed FAIL "latest status: $STATUS_VALUE"
    fi
    for p in cpu forkbomb; do
        if check_status 60 "$(pod $p) | .status.containerStatuses[0].state.running.startedAt"; then
            host_result "status-$p-running" PASS "status: running since $STATUS_VALUE"
        else
            host_result "status-$p-running" FAIL "latest status: $STATUS_VALUE"
        fi
    done

    # Pod mem's usage in the status: its 20 MiB (docs/metrics.md).
    if check_status 120 "$(pod mem) | .usage | select(.memBytes >= 18 * 1048576 and .memBytes <= 22 * 1048576)"; then
        host_result status-usage PASS "status: pod mem usage $STATUS_VALUE"
    else
        host_result status-usage FAIL "latest status: $(statuses 0 | tail -n1 | jq -c "$(pod mem) | .usage" 2>/dev/null)"
    fi

    # The guest kills the agent with SIGKILL and starts it again: the broker
    # publishes the old connection's will (online=false), the new agent says
    # online=true and publishes its status, which must show the containers
    # with the startedAt they had.
    check_status 5 "$STARTED" || true
    local before="$STATUS_VALUE"
    if ! wait_console "E2E-SYNC agent-restarted" "$TIMEOUT"; then
        host_result status-after-restart FAIL "the guest never printed E2E-SYNC agent-restarted"
        return
    fi
    local onlines same=no
    check_status 60 "select(($(pod two) | .status.conditions[] | select(.type == \"Ready\") | .status) == \"True\") | $STARTED" 2 &&
        [ "$STATUS_VALUE" = "$before" ] && [[ "$before" == *=2* ]] && same=yes
    onlines="$(awk -v t="picolet/devices/$DEVICE/online" '$1 == t { printf "%s ", $2 }' "$WORK/mqtt.log")"
    if [ $same = yes ] && [[ "$onlines" == *"true false true"* ]]; then
        host_result status-after-restart PASS "online: $onlines; the new agent's status has the same startedAt: $before"
    else
        host_result status-after-restart FAIL "online: $onlines; startedAt before $before, after $STATUS_VALUE"
    fi

    local failed=""
    for p in two oom cpu forkbomb mem; do
        "$host_bin" delete pod "$p" "${FLEET_ARGS[@]}" --sign-key "$WORK/fleet.key" --timeout 60 \
            >>"$WORK/delete.log" 2>&1 || failed="$failed $p"
    done
    if [ -z "$failed" ]; then
        host_result fleet-delete-applied PASS "picolet delete pod: two, oom, cpu, forkbomb, mem observed by the device"
    else
        host_result fleet-delete-applied FAIL "delete of$failed: $(tail -n3 "$WORK/delete.log" | tr '\n' ' ')"
    fi
    if check_status 90 '.pods | length == 0' 2; then
        host_result status-deleted PASS "status: no pods"
    else
        host_result status-deleted FAIL "latest status: $STATUS_VALUE"
    fi
}
host_side
wait "$QEMU_JOB" || true
# The pod's request (the guest checked the answer: pod-egress).
if grep -q '^GET /from-pod ' "$WORK/http.log"; then
    host_result host-served-pod PASS "this host's server (guestfwd 10.0.2.100:8080) got: $(grep -m1 '^GET /from-pod ' "$WORK/http.log")"
else
    host_result host-served-pod FAIL "no request from the pod in $WORK/http.log: $(tr '\n' ';' <"$WORK/http.log")"
fi
QEMU_JOB=""
qemu_rc="$(cat "$WORK/qemu.rc" 2>/dev/null || echo "?")"
boot_secs=$(( $(date +%s) - boot_start ))
[ "$qemu_rc" = 124 ] && log "the guest hit the ${TIMEOUT}s time limit"

# --- 7. verdict ------------------------------------------------------------------------------
results="$(cat "$WORK/console.log" "$WORK/host.log" | grep -o 'E2E [a-z0-9-]* \(PASS\|FAIL\) .*' || true)"
measures="$(grep -o 'E2E-MEASURE [a-z0-9-]* [^ ]* [^ ]*' "$WORK/console.log" || true)"
status=0
echo
echo "== QEMU end-to-end (aarch64, $kver, ${boot_secs}s in the guest, $(( $(date +%s) - START ))s in all)"
for name in "${EXPECTED[@]}"; do
    line="$(grep "^E2E $name " <<<"$results" | tail -n1 || true)"
    if [ -z "$line" ]; then
        printf '  %-24s FAIL  (not reported)\n' "$name"
        status=1
    else
        verdict="$(cut -d' ' -f3 <<<"$line")"
        printf "  %-24s %s  %s\n" "$name" "$verdict" "$(cut -d' ' -f4- <<<"$line")"
        [ "$verdict" = PASS ] || status=1
    fi
done
extra="$(grep 'FAIL' <<<"$results" | grep -v -E "^E2E ($(IFS='|'; echo "${EXPECTED[*]}")) " || true)"
[ -z "$extra" ] || { echo "$extra" | sed 's/^/  /'; status=1; }
grep -q 'E2E-DONE' "$WORK/console.log" || { echo "  the guest did not finish (see $WORK/console.log)"; status=1; }

m() { awk -v n="$1" '$2 == n { print $3 }' <<<"$measures"; }
stripped="$WORK/picolet.stripped"
aarch64-linux-gnu-strip -o "$stripped" "$bin" 2>/dev/null || cp "$bin" "$stripped"
size=$(stat -c %s "$stripped")
budget() {
    if [ -z "$1" ]; then echo "not measured"
    elif [ "$1" -le "$2" ]; then echo "within $3"
    else echo "OVER $3"; fi
}
echo
echo "== measured in the guest"
printf '  %-22s %s bytes (%s KiB)  %s\n' "binary (stripped)" "$size" $(( size / 1024 )) "$(budget "$size" 2621440 "2.5 MiB budget")"
mem() {
    printf '%6s KiB RSS %6s KiB anon %6s KiB PSS %6s KiB USS' "$(m "$1-rss")" "$(m "$1-anon")" \
        "$(m "$1-pss")" "$(m "$1-uss")"
}
printf '  %-22s %s  %s\n' "agent idle" "$(mem agent-idle)" "$(budget "$(m agent-idle-rss)" 4096 "4 MiB budget (RSS)")"
printf '  %-22s %s\n' "agent with 4 pods" "$(mem agent-pods)"
printf '  %-22s %s\n' "agent after restart" "$(mem agent-restarted)"
v="$(m agent-threads)"; [ -n "$v" ] && printf '  %-22s %s\n' "agent threads" "$v"
for pod in two oom cpu forkbomb; do
    [ -n "$(m "shim-$pod-rss")" ] || continue
    printf '  %-22s %s  RSS %s, USS %s\n' "shim of pod $pod" "$(mem "shim-$pod")" \
        "$(budget "$(m "shim-$pod-rss")" 400 "400 KiB")" "$(budget "$(m "shim-$pod-uss")" 400 "400 KiB")"
done
v="$(m cpu-usage-percent)"; [ -n "$v" ] && printf '  %-22s %s %% of one CPU (limit 200m), nr_throttled +%s\n' "busy loop" "$v" "$(m cpu-nr-throttled)"
v="$(m forkbomb-pids-current)"; [ -n "$v" ] && printf '  %-22s %s (pids.max 64)\n' "fork bomb pids" "$v"
v="$(m initramfs-phase)"; [ -n "$v" ] && printf '  %-22s %s ms (budget +60 s)\n' "initramfs-root phase" "$v"
notes="$(grep -o 'E2E-NOTE .*' "$WORK/console.log" | cut -d' ' -f2- || true)"
[ -z "$notes" ] || { echo; echo "== notes"; echo "$notes" | sed 's/^/  /'; }
echo
if [ $status = 0 ]; then echo "QEMU end-to-end: PASS"; else echo "QEMU end-to-end: FAIL (console: $WORK/console.log)"; fi
exit $status
