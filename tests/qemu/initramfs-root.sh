#!/bin/sh
# A pod on a root that is the initramfs itself (no switch_root), run by
# init.sh's stage 1 when the kernel command line has picolet.initramfs-root.
# pivot_root(2) refuses such a root (EINVAL), so picolet must fall back to
# MS_MOVE + chroot (runc's --no-pivot) and `picolet check` must warn.
#
# Prints `E2E initramfs-<name> PASS|FAIL <detail>` lines, like guest-e2e.sh,
# and leaves nothing behind for stage 2: every mount, cgroup and file it made
# is removed again (the kernel's overlay module stays loaded).

P=/picolet
D=/initramfs-root
export PICOLET_STATE_DIR=$D/state
CG=/sys/fs/cgroup/initramfs-root
AGENT=

result() { echo "E2E initramfs-$1 $2 $3"; }
wait_for() {
    n=$1
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 1
        n=$((n - 1))
    done
    return 1
}

START=$(awk '{ print int($1 * 1000) }' /proc/uptime)
echo "== a pod with / the initramfs: $(awk '$5 == "/"' /proc/self/mountinfo)"
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t cgroup2 none /sys/fs/cgroup
echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p $D/man $CG
modprobe overlay || echo "E2E initramfs-modules FAIL modprobe overlay"

# The premise: pivot_root(2) refuses this root, as it refuses every
# container's (busybox's own pivot_root, in a new mount namespace).
out=$(unshare -m sh -c "mkdir -p $D/new && mount -t tmpfs new $D/new && mkdir $D/new/old &&
    cd $D/new && pivot_root . old" 2>&1)
case "$out" in
*"Invalid argument"*) result pivot-refused PASS "pivot_root . old on the initramfs: $out" ;;
*) result pivot-refused FAIL "pivot_root did not fail with EINVAL: ${out:-it worked}" ;;
esac

$P check --board qemu-virt >$D/check.out 2>&1
line=$(grep -E '^ +warn +pivot_root ' $D/check.out)
if [ -n "$line" ] && grep -q "^result: PASS" $D/check.out; then
    result check PASS "$(echo "$line" | tr -s ' ' | cut -c1-160)…"
else
    result check FAIL "$(tr '\n' ' ' <$D/check.out)"
fi

# The container checks its own root: the image's file is there, the
# initramfs' files are not, and / is the overlay in its mount table; then
# it stays up for an exec session, which must land in the same root.
cat >$D/man/initramfs-root.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: initramfs-root
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: picolet.test/busybox:1
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      for f in /init /picolet /e2e /initramfs-root; do
        if [ -e "$f" ]; then echo "the host's $f is visible"; exit 1; fi
      done
      fs=$(awk '$5 == "/" { for (i = 7; i < NF; i++) if ($i == "-") print $(i + 1) }' /proc/self/mountinfo)
      echo "image-version=$(cat /etc/picolet-image-version) root=$fs mounts=$(wc -l </proc/self/mountinfo)"
      [ "$(cat /etc/picolet-image-version)" = 1 ] && [ "$fs" = overlay ] && exec sleep 600
EOF
$P image import /e2e/busybox.oci.tar >$D/import.out 2>&1 || echo "E2E initramfs-pod FAIL import: $(cat $D/import.out)"
RUST_LOG=info $P agent --manifests $D/man --run-dir $D/run --cgroup-root $CG --pod-network none \
    --node-name initramfs-root --metrics-interval 0 >$D/agent.log 2>&1 &
AGENT=$!
phase() { $P get pods initramfs-root -o 'jsonpath={.status.phase}' 2>/dev/null; }
pod_log() { $P logs initramfs-root 2>&1 | tr '\n' ' '; }
settled() { pod_log | grep -q 'image-version=' || [ "$(phase)" = Failed ]; }
t0=$(awk '{ print int($1) }' /proc/uptime)
wait_for 90 settled
sleep 1
if [ "$(phase)" = Running ] && pod_log | grep -q 'image-version=1 root=overlay '; then
    result pod PASS "Running after $(($(awk '{ print int($1) }' /proc/uptime) - t0))s; the container saw: $(pod_log)"
else
    result pod FAIL "phase $(phase); logs: $(pod_log); $($P describe pod initramfs-root 2>&1 | grep -E 'State|Reason|Message|Exit' | tr -s ' \n' ' ')"
    tail -n 30 $D/agent.log | sed 's/^/  agent| /'
fi
out=$($P exec initramfs-root -- sh -c 'cat /etc/picolet-image-version; ls -d /init /picolet /e2e 2>/dev/null; true' 2>&1)
if [ "$out" = 1 ]; then
    result exec PASS "picolet exec lands in the container's root: /etc/picolet-image-version is 1, no /init, /picolet, /e2e"
else
    result exec FAIL "picolet exec saw: $(echo "$out" | tr '\n' ' ')"
fi

# Nothing left for stage 2.
rm -f $D/man/initramfs-root.yaml
wait_for 60 sh -c "! $P get pods 2>/dev/null | grep -q '^initramfs-root '"
kill "$AGENT" 2>/dev/null
wait "$AGENT" 2>/dev/null
find $CG -depth -type d -exec rmdir {} + 2>/dev/null
awk '{ print $5 }' /proc/self/mountinfo | grep "^$D/" | sort -r | while read -r m; do umount -l "$m"; done
umount /sys/fs/cgroup /sys /dev
rm -rf $D /e2e/busybox.oci.tar
echo "E2E-MEASURE initramfs-phase $(($(awk '{ print int($1 * 1000) }' /proc/uptime) - START)) ms"
