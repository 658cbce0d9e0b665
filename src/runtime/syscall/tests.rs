//! The order of a container's setup calls, asserted without root: the
//! rootfs plan and the security plan run against [`Recording`], on a
//! temporary directory that plays the rootfs.

use std::path::{Path, PathBuf};

use super::Recording;
use crate::runtime::config::{ContainerConfig, Mount, MountKind, PodConfig, Rootfs};
use crate::runtime::{rootfs, security};

fn pod(dir: &Path) -> PodConfig {
    PodConfig {
        uid: "u".into(),
        name: "p".into(),
        pod_dir: dir.to_path_buf(),
        hostname: "p".into(),
        host_network: false,
        share_pid: false,
        cgroup: None,
        shim_log: dir.join("shim.log"),
        sysctls: vec![],
    }
}

fn container(dir: &Path) -> ContainerConfig {
    ContainerConfig {
        name: "c".into(),
        instance: 0,
        rootfs: Rootfs {
            layers: vec![dir.join("layer")],
            upper: Some((dir.join("upper"), dir.join("work"))),
            target: dir.join("rootfs"),
        },
        argv: vec!["sh".into()],
        env: vec![],
        cwd: "/app".into(),
        uid: 0,
        gid: 0,
        capabilities: security::default_caps(),
        no_new_privs: false,
        seccomp: false,
        groups: vec![],
        privileged: false,
        mounts: Vec::new(),
        cgroup: None,
        log_path: PathBuf::from("/dev/null"),
        log_max_bytes: 0,
        log_max_files: 1,
        oom_score_adj: None,
        stop_signal: None,
    }
}

/// Runs `rootfs::setup` for `cfg` against the fake and returns the calls,
/// with the temporary directory shown as `<root>`.
fn setup_calls(dir: &Path, cfg: &ContainerConfig) -> Vec<String> {
    std::fs::create_dir_all(&cfg.rootfs.target).unwrap();
    let plan = rootfs::Plan::new(&pod(dir), cfg).unwrap();
    let fake = Recording::new(dir);
    rootfs::setup(&fake, &plan).unwrap();
    fake.calls()
}

/// /proc, /dev (nodes, links, devpts, shm, mqueue): every container's.
const KERNEL_FILESYSTEMS: [&str; 16] = [
    "mount proc <root>/rootfs/proc proc nosuid,nodev,noexec -",
    "mount tmpfs <root>/rootfs/dev tmpfs nosuid,strictatime mode=755,size=65536k",
    "mknod <root>/rootfs/dev/null c 666 1:3",
    "mknod <root>/rootfs/dev/zero c 666 1:5",
    "mknod <root>/rootfs/dev/full c 666 1:7",
    "mknod <root>/rootfs/dev/random c 666 1:8",
    "mknod <root>/rootfs/dev/urandom c 666 1:9",
    "mknod <root>/rootfs/dev/tty c 666 5:0",
    "symlink <root>/rootfs/dev/ptmx -> pts/ptmx",
    "symlink <root>/rootfs/dev/fd -> /proc/self/fd",
    "symlink <root>/rootfs/dev/stdin -> /proc/self/fd/0",
    "symlink <root>/rootfs/dev/stdout -> /proc/self/fd/1",
    "symlink <root>/rootfs/dev/stderr -> /proc/self/fd/2",
    "mount devpts <root>/rootfs/dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5",
    "mount shm <root>/rootfs/dev/shm tmpfs nosuid,nodev,noexec mode=1777,size=65536k",
    "mount mqueue <root>/rootfs/dev/mqueue mqueue nosuid,nodev,noexec -",
];

const PIVOT: [&str; 4] = [
    "fchdir <root>/rootfs",
    "pivot_root . .",
    "umount2 . detach",
    "chdir /",
];

fn expected(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn a_privileged_container_gets_a_writable_sys_no_masks_and_its_binds_keep_devices() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = container(t.path());
    cfg.privileged = true;
    std::fs::create_dir_all(t.path().join("data")).unwrap();
    cfg.mounts.push(Mount {
        destination: "/data".into(),
        kind: MountKind::Bind {
            source: t.path().join("data"),
        },
        read_only: true,
    });
    let want = expected(&[
        &[
            "mount - / - rec,private -",
            "mount overlay <root>/rootfs overlay nodev \
             lowerdir=<root>/layer,upperdir=<root>/upper,workdir=<root>/work",
        ],
        &KERNEL_FILESYSTEMS,
        &[
            "mount sysfs <root>/rootfs/sys sysfs nosuid,nodev,noexec -",
            "mount <root>/data <root>/rootfs/data - bind,rec -",
            // read-only, but no nodev: a privileged container may use devices.
            "mount_setattr <root>/rootfs/data rec 0x1",
        ],
        &PIVOT,
        // No masked or read-only kernel paths.
        &["mkdir -p /app"],
    ]);
    assert_eq!(setup_calls(t.path(), &cfg), want);
}

#[test]
fn a_read_only_rootfs_puts_upper_on_a_scratch_tmpfs_and_remounts_root_read_only_last() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = container(t.path());
    cfg.rootfs.upper = None;
    cfg.mounts.push(Mount {
        destination: "/tmp".into(),
        kind: MountKind::Tmpfs { size: 4096 },
        read_only: false,
    });
    let mut read_only_paths = Vec::new();
    for p in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        read_only_paths.push(format!("mount {p} {p} - bind,rec -"));
        read_only_paths.push(format!("statvfs {p}"));
        read_only_paths.push(format!("mount - {p} - ro,nosuid,remount,bind -"));
    }
    let read_only_paths: Vec<&str> = read_only_paths.iter().map(String::as_str).collect();
    let want = expected(&[
        &[
            "mount - / - rec,private -",
            "mount tmpfs <root>/rootfs tmpfs nosuid,nodev mode=755,size=1m",
            "mkdir <root>/rootfs/upper 755",
            "mkdir <root>/rootfs/work 755",
            "mount overlay <root>/rootfs overlay nodev \
             lowerdir=<root>/layer,upperdir=<root>/rootfs/upper,workdir=<root>/rootfs/work",
        ],
        &KERNEL_FILESYSTEMS,
        &[
            "mount sysfs <root>/rootfs/sys sysfs ro,nosuid,nodev,noexec -",
            "mount tmpfs <root>/rootfs/tmp tmpfs nosuid,nodev mode=1777,size=4096",
        ],
        &PIVOT,
        &[
            "mount tmpfs /proc/acpi tmpfs ro -",
            "mount /dev/null /proc/asound - bind -",
            "mount /dev/null /proc/kcore - bind -",
            "mount /dev/null /proc/keys - bind -",
            "mount /dev/null /proc/latency_stats - bind -",
            "mount /dev/null /proc/timer_list - bind -",
            "mount /dev/null /proc/timer_stats - bind -",
            "mount /dev/null /proc/sched_debug - bind -",
            "mount tmpfs /proc/scsi tmpfs ro -",
            "mount tmpfs /sys/firmware tmpfs ro -",
            "mount /dev/null /sys/devices/virtual/powercap - bind -",
        ],
        &read_only_paths,
        &[
            "mkdir -p /app",
            // Last: the working directory could still be created.
            "statvfs /",
            "mount - / - ro,nosuid,remount,bind -",
        ],
    ]);
    assert_eq!(setup_calls(t.path(), &cfg), want);
}

#[test]
fn a_user_set_pod_drops_the_bounding_set_before_the_ids_and_sets_caps_after() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = container(t.path());
    // runAsUser: 1000, runAsGroup: 2000, allowPrivilegeEscalation: false
    cfg.uid = 1000;
    cfg.gid = 2000;
    cfg.no_new_privs = true;
    let plan = security::Plan::new(&cfg).unwrap();
    let fake = Recording::new(t.path());
    plan.apply(&fake).unwrap();
    let defaults = security::default_caps();
    let mask = defaults.iter().fold(0u64, |m, c| m | 1 << c);
    let mut want = vec!["setgroups []".to_string()];
    for cap in 0..=security::last_cap() {
        if !defaults.contains(&cap) {
            want.push(format!("capbset_drop {cap}"));
        }
    }
    want.extend([
        "prctl PR_SET_KEEPCAPS 1".to_string(),
        "setresgid 2000".to_string(),
        "setresuid 1000".to_string(),
        format!("capset {mask:#x}"),
        "ambient_clear_all".to_string(),
        "prctl PR_SET_NO_NEW_PRIVS 1".to_string(),
    ]);
    assert_eq!(mask, 0xa80425fb);
    assert_eq!(fake.calls(), want);
}

/// `RuntimeDefault`: the filter is the last step, after no_new_privs;
/// without no_new_privs it needs CAP_SYS_ADMIN, so it comes before the uid
/// changes (runc's order). The supplementary groups come first.
#[test]
fn the_seccomp_filter_is_installed_last_or_before_the_uid_change() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = container(t.path());
    cfg.uid = 1000;
    cfg.gid = 2000;
    cfg.groups = vec![2000, 50000];
    cfg.seccomp = true;
    let prog_len = crate::runtime::seccomp::program(0xa80425fb).len();
    let seccomp = format!("seccomp {prog_len} instructions");
    for nnp in [true, false] {
        cfg.no_new_privs = nnp;
        let plan = security::Plan::new(&cfg).unwrap();
        let fake = Recording::new(t.path());
        plan.apply(&fake).unwrap();
        let calls = fake.calls();
        assert_eq!(calls[0], "setgroups [2000, 50000]");
        let at = calls.iter().position(|c| *c == seccomp).expect("installed");
        if nnp {
            assert_eq!(at, calls.len() - 1, "{calls:?}");
            assert_eq!(calls[at - 1], "prctl PR_SET_NO_NEW_PRIVS 1");
        } else {
            assert_eq!(calls[at + 1], "prctl PR_SET_KEEPCAPS 1", "{calls:?}");
            assert!(!calls.iter().any(|c| c.contains("NO_NEW_PRIVS")));
        }
    }
}

/// The mount table of a container's new mount namespace on a device that
/// runs from its initramfs: `/` is the rootfs (its own parent), the host's
/// kernel filesystems, another pod's root (a name with a space, escaped as
/// mountinfo does), the directory that holds the new root and its
/// ancestor, the new root and what is already mounted inside it.
fn initramfs_mountinfo(dir: &Path) -> String {
    let d = dir.display();
    let parent = dir.parent().unwrap().display();
    format!(
        "1 1 0:2 / / rw - rootfs rootfs rw
20 1 0:20 / /proc rw,nosuid - proc proc rw
21 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
22 21 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
23 1 0:23 / /run rw - tmpfs run rw
24 1 0:24 / {parent} rw - tmpfs tmp rw
30 24 0:30 / {d} rw - tmpfs pods rw
31 30 0:31 / {d}/other\\040pod/rootfs rw - overlay overlay rw
40 30 0:40 / {d}/rootfs rw,nodev - overlay overlay rw
41 40 0:41 / {d}/rootfs/proc rw - proc proc rw
42 40 0:42 / {d}/rootfs/dev rw - tmpfs tmpfs rw
"
    )
}

/// `pivot_root` fails with EINVAL when `/` is the initramfs: the fallback
/// detaches every host mount that neither holds nor is inside the new
/// root, deepest first, then moves the new root onto `/` and chroots into
/// it (runc's `--no-pivot`); the steps after it are the usual ones.
#[test]
fn a_pivot_root_refused_with_einval_falls_back_to_move_and_chroot() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = container(t.path());
    cfg.privileged = true;
    std::fs::create_dir_all(&cfg.rootfs.target).unwrap();
    let plan = rootfs::Plan::new(&pod(t.path()), &cfg).unwrap();
    let mut fake = Recording::new(t.path());
    fake.pivot_root_error = Some(nix::errno::Errno::EINVAL);
    fake.mountinfo = initramfs_mountinfo(t.path());
    rootfs::setup(&fake, &plan).unwrap();
    let want = expected(&[
        &[
            "mount - / - rec,private -",
            "mount overlay <root>/rootfs overlay nodev \
             lowerdir=<root>/layer,upperdir=<root>/upper,workdir=<root>/work",
        ],
        &KERNEL_FILESYSTEMS,
        &[
            "mount sysfs <root>/rootfs/sys sysfs nosuid,nodev,noexec -",
            "fchdir <root>/rootfs",
            "pivot_root . .",
            "read mountinfo",
            "umount2 <root>/other pod/rootfs detach",
            "umount2 /run detach",
            "umount2 /sys/fs/cgroup detach",
            "umount2 /sys detach",
            "umount2 /proc detach",
            "mount . / - move -",
            "chroot .",
            "chdir /",
            "mkdir -p /app",
        ],
    ]);
    assert_eq!(fake.calls(), want);
}

/// Only EINVAL means "the root cannot be pivoted": any other error of
/// `pivot_root` fails the setup, without a fallback.
#[test]
fn a_pivot_root_failing_otherwise_is_an_error_without_fallback() {
    let t = tempfile::tempdir().unwrap();
    let cfg = container(t.path());
    std::fs::create_dir_all(&cfg.rootfs.target).unwrap();
    let plan = rootfs::Plan::new(&pod(t.path()), &cfg).unwrap();
    let mut fake = Recording::new(t.path());
    fake.pivot_root_error = Some(nix::errno::Errno::EPERM);
    fake.mountinfo = initramfs_mountinfo(t.path());
    let err = rootfs::setup(&fake, &plan).unwrap_err();
    assert!(
        matches!(&err, crate::runtime::error::ContainerError::Setup { step, errno }
            if step == "pivot_root" && *errno == libc::EPERM),
        "{err:?}"
    );
    let calls = fake.calls();
    assert_eq!(calls.last().map(String::as_str), Some("pivot_root . ."));
}
