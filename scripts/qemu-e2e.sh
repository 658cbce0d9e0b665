#!/usr/bin/env bash
# End-to-end test of the static aarch64 picolet on a real arm64 kernel with
# cgroup v2: Debian's cloud arm64 kernel under qemu-system-aarch64 -M virt
# -cpu cortex-a53 -m 512 (boards/qemu-virt.toml), busybox, the kernel modules
# it needs, the static picolet, an arm64 busybox image and the test pods
# (tests/qemu/) in an initramfs. The guest (tests/qemu/guest-e2e.sh) prints
#   E2E <name> PASS|FAIL <detail>      and      E2E-MEASURE <name> <value> <unit>
# on the serial console; this script checks that every expected test passed
# and prints the measurements against the budgets.
#
#   scripts/qemu-e2e.sh            (needs scripts/setup-arm-toolchain.sh first)
#   PICOLET_E2E_BIN=path           use this aarch64 binary instead of building
#   PICOLET_E2E_TIMEOUT=seconds    guest time limit (default 240)
#
# Work files: target/qemu-e2e/ (console.log is the whole guest output).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK="$ROOT/target/qemu-e2e"
TIMEOUT="${PICOLET_E2E_TIMEOUT:-240}"
# The tests the guest must report, all PASS.
EXPECTED=(version install check image-import agent-start check-delegated two-containers oom-killed
    cpu-throttled pids-max agent-restart)

log() { printf '[qemu-e2e] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
START=$(date +%s)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
for tool in cpio:cpio qemu-system-aarch64:qemu-system-arm strings:binutils; do
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
mkdir -p "$root"/{bin,proc,sys,dev,etc,e2e/manifests,usr/local/bin}
cp "$WORK/x/bin/busybox" "$root/bin/busybox"
cp "$bin" "$root/picolet"
cp "$WORK/images/busybox.oci.tar" "$root/e2e/"
cp tests/qemu/manifests/*.yaml "$root/e2e/manifests/"
cp tests/qemu/guest-e2e.sh "$root/e2e/guest-e2e.sh"
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
: >"$moddst/modules.dep"
for m in overlay bridge veth virtio_net; do
    # Breadth-first: the module's dependencies, nearest first, as depmod
    # writes them (modprobe loads them from the end of the list).
    queue="$(deps_of "$m")"; all=""
    while [ -n "${queue// /}" ]; do
        next=""
        for d in $queue; do
            case " $all " in *" $d "*) ;; *) all="$all $d"; next="$next $(deps_of "$d")" ;; esac
        done
        queue="$next"
    done
    for x in $m $all; do
        [ -n "${ko_path[$x]:-}" ] || die "module $x not in $kver"
        grep -q "^${ko_path[$x]}:" "$moddst/modules.dep" && continue
        mkdir -p "$moddst/$(dirname "${ko_path[$x]}")"
        cp "$mods/${ko_path[$x]}" "$moddst/${ko_path[$x]}"
        line="${ko_path[$x]}:"
        for d in $(deps_of "$x"); do line="$line ${ko_path[$d]}"; done
        echo "$line" >>"$moddst/modules.dep"
    done
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"
log "initramfs: $(du -h "$WORK/initrd.gz" | cut -f1) (kernel $kver); prepared in $(( $(date +%s) - START ))s"

# --- 5. boot ---------------------------------------------------------------------------------
# The network (-netdev user,restrict=on,guestfwd=… to an MQTT broker on the
# host, PICOLET_E2E_NET=1) is for the fleet version of this test.
qemu_net=(-nic none)
append="console=ttyAMA0 quiet loglevel=3 panic=-1"
log "booting (time limit ${TIMEOUT}s)"
boot_start=$(date +%s)
set +e
timeout "$TIMEOUT" qemu-system-aarch64 -M virt -cpu cortex-a53 -m 512 -smp 1 -nographic \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.gz" -append "$append" -no-reboot \
    "${qemu_net[@]}" </dev/null | tr -d '\r' | tee "$WORK/console.log" >&2
qemu_rc=${PIPESTATUS[0]}
set -e
boot_secs=$(( $(date +%s) - boot_start ))
[ "$qemu_rc" = 124 ] && log "the guest hit the ${TIMEOUT}s time limit"

# --- 6. verdict ------------------------------------------------------------------------------
results="$(grep -o 'E2E [a-z0-9-]* \(PASS\|FAIL\) .*' "$WORK/console.log" || true)"
measures="$(grep -o 'E2E-MEASURE [a-z0-9-]* [^ ]* [^ ]*' "$WORK/console.log" || true)"
status=0
echo
echo "== QEMU end-to-end (aarch64, $kver, ${boot_secs}s in the guest, $(( $(date +%s) - START ))s in all)"
for name in "${EXPECTED[@]}"; do
    line="$(grep "^E2E $name " <<<"$results" | tail -n1 || true)"
    if [ -z "$line" ]; then
        printf '  %-15s FAIL  (not reported by the guest)\n' "$name"
        status=1
    else
        verdict="$(cut -d' ' -f3 <<<"$line")"
        printf '  %-15s %s  %s\n' "$name" "$verdict" "$(cut -d' ' -f4- <<<"$line")"
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
printf '  %-22s %s bytes (%s KiB)  %s\n' "binary (stripped)" "$size" $(( size / 1024 )) "$(budget "$size" 2097152 "2 MiB budget")"
mem() { printf '%6s KiB RSS %6s KiB anon %6s KiB PSS' "$(m "$1-rss")" "$(m "$1-anon")" "$(m "$1-pss")"; }
printf '  %-22s %s  %s\n' "agent idle" "$(mem agent-idle)" "$(budget "$(m agent-idle-rss)" 4096 "4 MiB budget (RSS)")"
printf '  %-22s %s\n' "agent with 4 pods" "$(mem agent-pods)"
printf '  %-22s %s\n' "agent after restart" "$(mem agent-restarted)"
v="$(m agent-threads)"; [ -n "$v" ] && printf '  %-22s %s\n' "agent threads" "$v"
for pod in two oom cpu forkbomb; do
    [ -n "$(m "shim-$pod-rss")" ] || continue
    printf '  %-22s %s  RSS %s, PSS %s\n' "shim of pod $pod" "$(mem "shim-$pod")" \
        "$(budget "$(m "shim-$pod-rss")" 400 "400 KiB")" "$(budget "$(m "shim-$pod-pss")" 400 "400 KiB")"
done
v="$(m cpu-usage-percent)"; [ -n "$v" ] && printf '  %-22s %s %% of one CPU (limit 200m), nr_throttled +%s\n' "busy loop" "$v" "$(m cpu-nr-throttled)"
v="$(m forkbomb-pids-current)"; [ -n "$v" ] && printf '  %-22s %s (pids.max 64)\n' "fork bomb pids" "$v"
notes="$(grep -o 'E2E-NOTE .*' "$WORK/console.log" | cut -d' ' -f2- || true)"
[ -z "$notes" ] || { echo; echo "== notes"; echo "$notes" | sed 's/^/  /'; }
echo
if [ $status = 0 ]; then echo "QEMU end-to-end: PASS"; else echo "QEMU end-to-end: FAIL (console: $WORK/console.log)"; fi
exit $status
