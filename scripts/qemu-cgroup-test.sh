#!/usr/bin/env bash
# Run picolet's tests as root on a real arm64 kernel with every cgroup v2
# controller: Debian's cloud arm64 kernel booted by qemu-system-aarch64
# (boards/qemu-virt.toml), with a busybox initramfs whose /init mounts cgroup2,
# enables cpu/memory/pids/io/cpuset for children (as systemd would) and runs
# the static aarch64 test binary.
#
#   scripts/qemu-cgroup-test.sh [test filter]     (default: runtime::cgroup::)
#
# Needs scripts/setup-arm-toolchain.sh first. Work files go to target/qemu.
# Exit status: the test binary's.
set -euo pipefail

cd "$(dirname "$0")/.."
FILTER="${1:-runtime::cgroup::}"
WORK="$PWD/target/qemu"
TIMEOUT="${PICOLET_QEMU_TIMEOUT:-900}"

log() { printf '[qemu-test] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
for tool in cpio:cpio qemu-system-aarch64:qemu-system-arm; do
    command -v "${tool%%:*}" >/dev/null || $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${tool#*:}"
done

# --- kernel and busybox (arm64 .debs, extracted, never installed) ---------------
mkdir -p "$WORK/debs" "$WORK/x"
if [ ! -f "$WORK/vmlinuz" ] || [ ! -x "$WORK/x/bin/busybox" ]; then
    kpkg="$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-cloud-arm64-unsigned$' \
        | awk '{print $1}' | sort -V | tail -n1)"
    [ -n "$kpkg" ] || die "no linux-image-*-cloud-arm64-unsigned in apt (run setup-arm-toolchain.sh)"
    log "downloading $kpkg and busybox-static (arm64)"
    (cd "$WORK/debs" && rm -f ./*.deb && apt-get download "$kpkg:arm64" busybox-static:arm64)
    for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/x"; done
    cp "$(ls "$WORK"/x/boot/vmlinuz-* | head -n1)" "$WORK/vmlinuz"
fi

# --- the aarch64 test binary -------------------------------------------------------
log "building the aarch64 test binary (Debian rustc 1.85, -Zbuild-std)"
scripts/build-arm.sh aarch64 test --lib --no-run 2>&1 | tee "$WORK/build.log" >&2
bin="$(sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))$/\1/p' "$WORK/build.log" | tail -n1)"
[ -n "$bin" ] && [ -f "$bin" ] || die "test binary not found in $WORK/build.log"

# --- initramfs -----------------------------------------------------------------------
root="$WORK/initramfs"
rm -rf "$root"
mkdir -p "$root"/{bin,proc,sys,dev,tmp}
cp "$WORK/x/bin/busybox" "$root/bin/busybox"
cp "$bin" "$root/picolet-tests"
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup
echo "cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
echo "+cpu +memory +pids +io +cpuset" > /sys/fs/cgroup/cgroup.subtree_control
cd /tmp
/picolet-tests --test-threads=1 --nocapture '$FILTER'
echo "PICOLET-TESTS-EXIT=\$?"
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"

# --- boot ----------------------------------------------------------------------------
log "booting $(basename "$(ls "$WORK"/x/boot/vmlinuz-* | head -n1)") (timeout ${TIMEOUT}s)"
set +e
timeout "$TIMEOUT" qemu-system-aarch64 -M virt -cpu cortex-a53 -m 512 -smp 1 -nographic \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.gz" \
    -append "console=ttyAMA0 quiet panic=-1" -no-reboot -nic none </dev/null \
    | tee "$WORK/console.log"
set -e
rc="$(sed -n 's/.*PICOLET-TESTS-EXIT=\([0-9]*\).*/\1/p' "$WORK/console.log" | tail -n1)"
[ -n "$rc" ] || die "the guest did not report the tests' exit status (see $WORK/console.log)"
log "tests in the guest exited with $rc"
exit "$rc"
