//! The container's filesystem view, built in its new mount namespace:
//! overlay rootfs, `/proc` `/dev` `/sys`, the configured mounts,
//! `pivot_root`, masked and read-only kernel paths, the working directory.
//!
//! Order (all in the child, see [`setup`]):
//! 1. `/` becomes recursively private, so nothing propagates to the host.
//! 2. overlayfs on `rootfs.target` (`lowerdir` = the layers, top-most
//!    first). With `rootfs.upper = None` (`readOnlyRootFilesystem`) the
//!    upper and work dirs are on a small tmpfs mounted on the target first
//!    (covered by the overlay), so mount points missing from the image can
//!    still be created; `/` is remounted read-only once everything is set
//!    up. This also makes a single-layer read-only rootfs a valid overlay.
//! 3. `/proc`, `/dev`, `/sys` ([`system`]), then `mounts` in order. Every
//!    destination is resolved inside the rootfs ([`resolve`]) and mounted
//!    through its fd, so image symlinks cannot redirect a mount to the host.
//! 4. `pivot_root(".", ".")` and a lazy unmount of the old root; where `/`
//!    is the initramfs (`pivot_root` fails with `EINVAL`), the host's other
//!    mounts are detached and the new root is moved onto `/` and
//!    `chroot`ed into instead ([`move_root`], runc's `--no-pivot`).
//! 5. Unless privileged: OCI masked and read-only paths.
//! 6. The working directory is created (0755) if missing.
//!
//! Host files touched: only `rootfs.target` (mounted over) and the bind
//! mount sources (read). Everything else happens in the private mount
//! namespace and disappears with it.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::config::{ContainerConfig, MountKind, PodConfig};
use super::container::{ContainerError, sys};
use super::syscall::Syscall;
use resolve::{Create, open_in_root};

pub(crate) mod overlay;
pub(crate) mod resolve;
mod system;

/// Size of the scratch tmpfs that holds upper/work of a read-only rootfs.
const SCRATCH_OPTS: &CStr = c"mode=755,size=1m";

#[derive(Debug, Clone)]
enum PreparedKind {
    Bind { source: CString },
    Tmpfs { data: CString },
}

#[derive(Debug, Clone)]
struct PreparedMount {
    destination: String,
    kind: PreparedKind,
    read_only: bool,
}

/// Everything [`setup`] needs, converted to C strings before `clone`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    target: CString,
    /// `<target>/upper`, `<target>/work` on a scratch tmpfs (read-only rootfs).
    scratch: Option<(CString, CString)>,
    overlay_chdir: Option<CString>,
    overlay_data: CString,
    mounts: Vec<PreparedMount>,
    privileged: bool,
    host_network: bool,
    cwd: String,
}

impl Plan {
    pub(crate) fn new(pod: &PodConfig, cfg: &ContainerConfig) -> Result<Self, ContainerError> {
        let rootfs = &cfg.rootfs;
        if !rootfs.target.is_absolute() {
            return Err(ContainerError::InvalidConfig {
                field: "rootfs.target",
                value: rootfs.target.display().to_string(),
                why: "must be an absolute path",
            });
        }
        let scratch_dirs = (rootfs.target.join("upper"), rootfs.target.join("work"));
        let upper = match &rootfs.upper {
            Some((u, w)) => (u.as_path(), w.as_path()),
            None => (scratch_dirs.0.as_path(), scratch_dirs.1.as_path()),
        };
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| usize::try_from(p).ok())
            .unwrap_or(4096);
        let opts = overlay::options(&rootfs.layers, Some(upper), page)?;
        let scratch = match rootfs.upper {
            Some(_) => None,
            None => Some((
                sys::cpath("rootfs.target", &scratch_dirs.0)?,
                sys::cpath("rootfs.target", &scratch_dirs.1)?,
            )),
        };
        let mut mounts = Vec::with_capacity(cfg.mounts.len());
        for m in &cfg.mounts {
            if m.destination.is_empty() {
                return Err(ContainerError::InvalidConfig {
                    field: "mount destination",
                    value: String::new(),
                    why: "must not be empty",
                });
            }
            let kind = match &m.kind {
                MountKind::Bind { source } => PreparedKind::Bind {
                    source: sys::cpath("mount source", source)?,
                },
                MountKind::Tmpfs { size } => {
                    let data = match size {
                        0 => "mode=1777".to_string(),
                        n => format!("mode=1777,size={n}"),
                    };
                    PreparedKind::Tmpfs {
                        data: sys::cstr_of("tmpfs size", &data)?,
                    }
                }
            };
            mounts.push(PreparedMount {
                destination: m.destination.clone(),
                kind,
                read_only: m.read_only,
            });
        }
        Ok(Plan {
            target: sys::cpath("rootfs.target", &rootfs.target)?,
            scratch,
            overlay_chdir: opts
                .chdir
                .as_deref()
                .map(|d| sys::cpath("rootfs.layers", d))
                .transpose()?,
            overlay_data: sys::cstr_of("rootfs.layers", &opts.data)?,
            mounts,
            privileged: cfg.privileged,
            host_network: pod.host_network,
            cwd: cfg.cwd.clone(),
        })
    }
}

/// Builds the container's filesystem view in the current (new, not yet
/// shared) mount namespace and makes it the root. See the module docs.
pub(crate) fn setup(sc: &dyn Syscall, plan: &Plan) -> Result<(), ContainerError> {
    sys::mount(
        sc,
        None,
        c"/",
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
        || "make / recursively private".to_string(),
    )?;
    let target_text = || plan.target.to_string_lossy().into_owned();
    if let Some((upper, work)) = &plan.scratch {
        sys::mount(
            sc,
            Some(c"tmpfs"),
            &plan.target,
            Some(c"tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(SCRATCH_OPTS),
            || format!("mount scratch tmpfs on {:?}", target_text()),
        )?;
        for dir in [upper, work] {
            sys::step(sc.mkdir(dir, 0o755), || format!("mkdir {dir:?}"))?;
        }
    }
    if let Some(dir) = &plan.overlay_chdir {
        sys::step(sc.chdir(dir), || format!("chdir {dir:?}"))?;
    }
    // nodev: a device node in the image or made with mknod in the
    // writable layer cannot be opened (only /dev's tmpfs allows nodes).
    sys::mount(
        sc,
        Some(c"overlay"),
        &plan.target,
        Some(c"overlay"),
        libc::MS_NODEV,
        Some(&plan.overlay_data),
        || {
            format!(
                "mount overlay on {:?} ({})",
                target_text(),
                plan.overlay_data.to_string_lossy()
            )
        },
    )?;
    let root = resolve::open_dir(&plan.target)?;
    system::mount_proc(sc, &root)?;
    system::mount_dev(sc, &root)?;
    system::mount_sys(sc, &root, plan.privileged, plan.host_network)?;
    for m in &plan.mounts {
        user_mount(sc, &root, m, plan.privileged)?;
    }
    pivot(sc, &root)?;
    drop(root);
    if !plan.privileged {
        system::protect_kernel_paths(sc)?;
    }
    sc.create_dir_all(&plan.cwd).map_err(|e| {
        ContainerError::setup(
            format!("create working directory {:?}", plan.cwd),
            e.raw_os_error().unwrap_or(libc::EIO),
        )
    })?;
    if plan.scratch.is_some() {
        remount_readonly(sc, c"/", false, "/")?;
    }
    Ok(())
}

/// Resolves `dest` inside `root` (creating it as `create` says) and mounts
/// onto it through its fd.
#[allow(clippy::too_many_arguments)]
pub(super) fn mount_in(
    sc: &dyn Syscall,
    root: &OwnedFd,
    dest: &str,
    create: Create,
    source: Option<&CStr>,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), ContainerError> {
    let fd = open_in_root(root, dest, create)?;
    let what = fstype
        .or(source)
        .map_or_else(String::new, |c| c.to_string_lossy().into_owned());
    sys::mount(sc, source, &sys::fd_path(&fd), fstype, flags, data, || {
        format!("mount {what} on {dest:?}")
    })
}

/// Mounts one configured volume. Binds (hostPath, emptyDir, volumes) get
/// `nodev` on every mount they carry, unless the container is privileged
/// (which may use every device anyway, and may be handed `/dev/ttyUSB0`
/// as a hostPath); tmpfs mounts are always `nosuid,nodev`.
fn user_mount(
    sc: &dyn Syscall,
    root: &OwnedFd,
    m: &PreparedMount,
    privileged: bool,
) -> Result<(), ContainerError> {
    let dest = m.destination.as_str();
    match &m.kind {
        PreparedKind::Bind { source } => {
            let src = resolve::open_dir_or_file(source)?;
            let create = if resolve::is_dir(&src) {
                Create::Dir
            } else {
                Create::File
            };
            mount_in(
                sc,
                root,
                dest,
                create,
                Some(source),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
            if m.read_only || !privileged {
                // Resolve again to get the new mount's root, not the dir under it.
                let mounted = open_in_root(root, dest, Create::Nothing)?;
                let attrs = Restrict {
                    read_only: m.read_only,
                    nodev: !privileged,
                };
                restrict(sc, &sys::fd_path(&mounted), true, attrs, dest)?;
            }
            Ok(())
        }
        PreparedKind::Tmpfs { data } => {
            let ro = if m.read_only { libc::MS_RDONLY } else { 0 };
            mount_in(
                sc,
                root,
                dest,
                Create::Dir,
                Some(c"tmpfs"),
                Some(c"tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV | ro,
                Some(data),
            )
        }
    }
}

/// What [`restrict`] adds to a mount.
#[derive(Debug, Clone, Copy)]
pub(super) struct Restrict {
    pub read_only: bool,
    pub nodev: bool,
}

/// Makes the mount at `path` read-only. See [`restrict`].
pub(super) fn remount_readonly(
    sc: &dyn Syscall,
    path: &CStr,
    recursive: bool,
    what: &str,
) -> Result<(), ContainerError> {
    let attrs = Restrict {
        read_only: true,
        nodev: false,
    };
    restrict(sc, path, recursive, attrs, what)
}

/// Adds `ro` and/or `nodev` to the mount at `path`, keeping its
/// nosuid/nodev/noexec flags (the kernel refuses to drop locked ones).
/// `recursive` uses `mount_setattr(AT_RECURSIVE)` where the kernel has it
/// (5.12+), so every mount below gets them too, and falls back to the top
/// mount only.
pub(super) fn restrict(
    sc: &dyn Syscall,
    path: &CStr,
    recursive: bool,
    attrs: Restrict,
    what: &str,
) -> Result<(), ContainerError> {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    let mut set = 0;
    if attrs.read_only {
        set |= MOUNT_ATTR_RDONLY;
    }
    if attrs.nodev {
        set |= MOUNT_ATTR_NODEV;
    }
    if recursive && sc.mount_setattr_recursive(path, set).is_ok() {
        return Ok(());
    }
    let f_flag = sys::step(sc.mount_flags(path), || format!("statvfs {what:?}"))?;
    // Not in libc's musl bindings; the value is the same everywhere.
    const ST_RELATIME: libc::c_ulong = 4096;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT;
    if attrs.read_only {
        flags |= libc::MS_RDONLY;
    }
    if attrs.nodev {
        flags |= libc::MS_NODEV;
    }
    for (st_flag, ms_flag) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    let change = match (attrs.read_only, attrs.nodev) {
        (true, true) => "read-only, nodev",
        (true, false) => "read-only",
        _ => "nodev",
    };
    sys::mount(sc, None, path, None, flags, None, || {
        format!("remount {what:?} {change}")
    })
}

/// `pivot_root` into `root` and detach the old root. Where the kernel
/// refuses (`EINVAL`: `/` is the initramfs, the namespace's first mount,
/// which cannot be moved), [`move_root`] instead; any other error stays
/// an error.
fn pivot(sc: &dyn Syscall, root: &OwnedFd) -> Result<(), ContainerError> {
    sys::step(sc.fchdir(root.as_fd()), || {
        "chdir into the new root".to_string()
    })?;
    match sc.pivot_root(c".", c".") {
        // Lazily unmount the old root, now stacked on ".".
        Ok(()) => sys::step(sc.umount_detach(c"."), || {
            "unmount the old root".to_string()
        })?,
        Err(nix::errno::Errno::EINVAL) => move_root(sc, root)?,
        Err(e) => return Err(ContainerError::setup("pivot_root", e as i32)),
    }
    sys::step(sc.chdir(c"/"), || "chdir /".to_string())
}

/// runc's `--no-pivot`, for a root that `pivot_root` refuses: every mount
/// that neither holds the new root (its ancestors) nor is inside it is
/// detached (the host's `/proc`, `/sys`, `/dev`, other pods' roots…: `/`
/// is already private, so nothing propagates to the host), then the new
/// root is moved onto `/` and `chroot`ed into. The old root's files stay
/// under it in this mount namespace (docs/security.md).
fn move_root(sc: &dyn Syscall, root: &OwnedFd) -> Result<(), ContainerError> {
    let io_err = |what: &str, e: std::io::Error| {
        ContainerError::setup(what.to_string(), e.raw_os_error().unwrap_or(libc::EIO))
    };
    // The new root as the mount table spells it (the configured path may
    // go through a symlink, such as /var/run).
    let target = std::fs::read_link(std::ffi::OsStr::from_bytes(sys::fd_path(root).to_bytes()))
        .map_err(|e| io_err("readlink the new root", e))?;
    let target = target.to_string_lossy();
    let table = sc
        .mountinfo()
        .map_err(|e| io_err("read /proc/self/mountinfo", e))?;
    // Deepest (latest) first; one detached with its parent is EINVAL/ENOENT.
    for line in table.lines().rev() {
        let Some(point) = line.split(' ').nth(4) else {
            continue;
        };
        let point = crate::runtime::cgroup::hierarchy::unescape(point);
        if keeps(&point, &target) {
            continue;
        }
        let Ok(c) = CString::new(point.as_str()) else {
            continue;
        };
        match sc.umount_detach(&c) {
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(ContainerError::setup(
                    format!("unmount {point:?}"),
                    e as i32,
                ));
            }
        }
    }
    sys::mount(sc, Some(c"."), c"/", None, libc::MS_MOVE, None, || {
        "move the new root onto /".to_string()
    })?;
    sys::step(sc.chroot(c"."), || "chroot into the new root".to_string())
}

/// Mount point `point` is the new root `target`, inside it, or one of
/// its ancestors.
fn keeps(point: &str, target: &str) -> bool {
    let under = |a: &str, b: &str| {
        a == b || b == "/" || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
    };
    under(point, target) || under(target, point)
}
