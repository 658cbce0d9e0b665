//! The kernel filesystems of a container, mounted inside the new root
//! before `pivot_root`: `/proc`, `/dev` (tmpfs with device nodes, devpts,
//! shm, mqueue and the usual symlinks) and `/sys`.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::super::container::{ContainerError, sys};
use super::resolve::{Create, open_in_root};
use super::{mount_in, remount_readonly};
use crate::runtime::syscall::Syscall;

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// A fresh procfs of the current PID namespace.
pub(super) fn mount_proc(sc: &dyn Syscall, root: &OwnedFd) -> Result<(), ContainerError> {
    mount_in(
        sc,
        root,
        "/proc",
        Create::Dir,
        Some(c"proc"),
        Some(c"proc"),
        NOSUID_NODEV_NOEXEC,
        None,
    )
}

/// Character devices every container gets: name, major, minor.
const DEVICES: [(&CStr, &CStr, u32, u32); 6] = [
    (c"null", c"/dev/null", 1, 3),
    (c"zero", c"/dev/zero", 1, 5),
    (c"full", c"/dev/full", 1, 7),
    (c"random", c"/dev/random", 1, 8),
    (c"urandom", c"/dev/urandom", 1, 9),
    (c"tty", c"/dev/tty", 5, 0),
];

const LINKS: [(&CStr, &CStr); 5] = [
    (c"pts/ptmx", c"ptmx"),
    (c"/proc/self/fd", c"fd"),
    (c"/proc/self/fd/0", c"stdin"),
    (c"/proc/self/fd/1", c"stdout"),
    (c"/proc/self/fd/2", c"stderr"),
];

/// `/dev` as a tmpfs with the standard nodes, links and submounts.
pub(super) fn mount_dev(sc: &dyn Syscall, root: &OwnedFd) -> Result<(), ContainerError> {
    mount_in(
        sc,
        root,
        "/dev",
        Create::Dir,
        Some(c"tmpfs"),
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some(c"mode=755,size=65536k"),
    )?;
    // Resolve again: the walk now crosses into the new tmpfs.
    let dev = open_in_root(root, "/dev", Create::Nothing)?;
    for (name, host, major, minor) in DEVICES {
        make_device(sc, &dev, name, host, major, minor)?;
    }
    for (target, name) in LINKS {
        sys::step(sc.symlink(target, dev.as_fd(), name), || {
            format!("symlink /dev/{name:?} -> {target:?}")
        })?;
    }
    let pts_opts = c"newinstance,ptmxmode=0666,mode=0620,gid=5";
    let pts = mount_in(
        sc,
        root,
        "/dev/pts",
        Create::Dir,
        Some(c"devpts"),
        Some(c"devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(pts_opts),
    );
    if pts.is_err() {
        // gid=5 is refused where that gid is not mapped; try without it.
        let opts = c"newinstance,ptmxmode=0666,mode=0620";
        mount_in(
            sc,
            root,
            "/dev/pts",
            Create::Dir,
            Some(c"devpts"),
            Some(c"devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some(opts),
        )?;
    }
    mount_in(
        sc,
        root,
        "/dev/shm",
        Create::Dir,
        Some(c"shm"),
        Some(c"tmpfs"),
        NOSUID_NODEV_NOEXEC,
        Some(c"mode=1777,size=65536k"),
    )?;
    mount_in(
        sc,
        root,
        "/dev/mqueue",
        Create::Dir,
        Some(c"mqueue"),
        Some(c"mqueue"),
        NOSUID_NODEV_NOEXEC,
        None,
    )
}

/// `mknod` a character device 0666, or bind the host's node over an
/// empty file where `mknod` is not allowed.
fn make_device(
    sc: &dyn Syscall,
    dev: &OwnedFd,
    name: &CStr,
    host: &CStr,
    major: u32,
    minor: u32,
) -> Result<(), ContainerError> {
    let step = || format!("create device /dev/{}", name.to_string_lossy());
    let rw = Mode::from_bits_truncate(0o666);
    if sc
        .mknod_char(dev.as_fd(), name, 0o666, (major, minor))
        .is_ok()
    {
        return Ok(());
    }
    let flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    let file = sys::step(nix::fcntl::openat(dev, name, flags, rw), step)?;
    let target = sys::fd_path(&file);
    sys::mount(sc, Some(host), &target, None, libc::MS_BIND, None, step)
}

/// sysfs, read-only unless privileged. With `hostNetwork` in a namespace
/// that may not mount sysfs, bind the host's `/sys` read-only instead.
pub(super) fn mount_sys(
    sc: &dyn Syscall,
    root: &OwnedFd,
    privileged: bool,
    host_network: bool,
) -> Result<(), ContainerError> {
    let ro = if privileged { 0 } else { libc::MS_RDONLY };
    let fresh = mount_in(
        sc,
        root,
        "/sys",
        Create::Dir,
        Some(c"sysfs"),
        Some(c"sysfs"),
        NOSUID_NODEV_NOEXEC | ro,
        None,
    );
    match fresh {
        Ok(()) => Ok(()),
        Err(_) if host_network => {
            mount_in(
                sc,
                root,
                "/sys",
                Create::Dir,
                Some(c"/sys"),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
            if !privileged {
                let sys_dir = open_in_root(root, "/sys", Create::Nothing)?;
                remount_readonly(sc, &sys::fd_path(&sys_dir), true, "/sys")?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The OCI default masked paths: `/dev/null` over files, an empty
/// read-only tmpfs over directories. Missing paths are skipped.
const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The OCI default read-only paths.
const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Masks and read-only paths, applied after `pivot_root` (paths are the
/// container's own).
pub(super) fn protect_kernel_paths(sc: &dyn Syscall) -> Result<(), ContainerError> {
    for path in MASKED {
        let c = CString::new(path).expect("constant without NUL");
        let Some(is_dir) = sc.path_kind(&c) else {
            continue;
        };
        let step = || format!("mask {path}");
        if is_dir {
            sys::mount(
                sc,
                Some(c"tmpfs"),
                &c,
                Some(c"tmpfs"),
                libc::MS_RDONLY,
                None,
                step,
            )?;
        } else {
            sys::mount(sc, Some(c"/dev/null"), &c, None, libc::MS_BIND, None, step)?;
        }
    }
    for path in READ_ONLY {
        let c = CString::new(path).expect("constant without NUL");
        if sc.path_kind(&c).is_none() {
            continue;
        }
        sys::mount(
            sc,
            Some(&c),
            &c,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
            || format!("bind {path} read-only"),
        )?;
        remount_readonly(sc, &c, false, path)?;
    }
    Ok(())
}
