#!/bin/busybox sh
# /init of the QEMU end-to-end guest (scripts/qemu-e2e.sh builds the
# initramfs). Stage 1 copies the initramfs into a tmpfs and switch_roots into
# it: pivot_root(2) refuses to work while the root is the initramfs' rootfs,
# and containers on such a root take picolet's MS_MOVE + chroot fallback,
# which initramfs-root.sh tests first when the kernel command line has
# picolet.initramfs-root (the rest of the test wants the normal path). Stage 2 (PICOLET_E2E_STAGE=2) mounts what
# systemd would (proc, sys, cgroup2 with the controllers enabled for
# children), loads the kernel modules and runs /e2e/guest-e2e.sh, then
# powers the guest off. Everything goes to the serial console.
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/bin
if [ "${PICOLET_E2E_STAGE:-1}" = 1 ]; then
    mount -t proc proc /proc
    if grep -qw picolet.initramfs-root /proc/cmdline; then
        sh /e2e/initramfs-root.sh
    fi
    mkdir -p /newroot
    mount -t tmpfs -o mode=0755 root /newroot
    for d in /*; do
        case "$d" in /newroot | /proc | /sys | /dev) continue ;; esac
        cp -a "$d" /newroot/
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev
    umount /proc
    export PICOLET_E2E_STAGE=2
    exec switch_root /newroot /init
fi

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /tmp /run /var/lib/picolet
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=0755 run /run
mount -t cgroup2 none /sys/fs/cgroup
# As systemd does at boot: every controller enabled for the children of the
# top cgroup (the guest has no systemd; picolet.service is emulated by the
# test with a cgroup of that name).
echo "+cpu +memory +pids +io +cpuset" >/sys/fs/cgroup/cgroup.subtree_control
echo /bin/modprobe >/proc/sys/kernel/modprobe
hostname picolet-e2e
ip link set lo up

# overlay is needed by every container; the network modules are loaded when
# the host asks for them: PICOLET_E2E_NET=1 on the kernel command line (the
# kernel hands unknown NAME=value parameters to /init as environment).
modprobe overlay || echo "E2E modules FAIL modprobe overlay"
if [ "${PICOLET_E2E_NET:-0}" = 1 ]; then
    # Pod networking (picolet check lists them): nf_tables with the nat
    # chain type and the expressions of picolet's table, each after what
    # it needs (modprobe would load that from modules.dep; insmod cannot).
    for m in llc stp bridge veth virtio virtio_ring virtio_mmio failover net_failover virtio_net \
        nfnetlink libcrc32c nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack nf_nat nf_tables \
        nft_chain_nat nft_nat nft_masq nft_fib nft_fib_ipv4 nft_ct; do
        modprobe "$m" 2>/dev/null || insmod "$(find /lib/modules -name "$m.ko")" || echo "E2E modules FAIL $m"
    done
    # QEMU's user network: the guest is 10.0.2.15 with the default route via
    # 10.0.2.2 (what makes eth0 the node's address for picolet, and its
    # hostIP); 10.0.2.100:8883 is forwarded to the host's broker and
    # 10.0.2.100:8080 to an HTTP server (guestfwd); nothing else is reachable.
    { ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2; } ||
        echo "E2E network FAIL eth0"
fi
# TLS needs the right time: the host passes its clock, used when the RTC
# did not set one.
if [ -n "${PICOLET_E2E_NOW:-}" ] && [ "$(date +%Y)" -lt 2025 ]; then
    date -s "@$PICOLET_E2E_NOW" >/dev/null
fi

sh /e2e/guest-e2e.sh
echo "E2E-DONE rc=$?"
sync
poweroff -f
