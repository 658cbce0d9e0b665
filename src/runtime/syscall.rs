//! The system calls of container setup, behind one narrow trait (as
//! youki's `Syscall`): [`super::rootfs::setup`] and
//! [`super::security::Plan::apply`] make every mount, `pivot_root`,
//! device node, set-id and capability call through a `&dyn Syscall`.
//! The post-clone child passes [`Linux`]; unit tests pass [`Recording`],
//! which performs nothing and records each call, so the exact order of a
//! container's setup is tested without root.
//!
//! Path walks inside the rootfs (`openat(O_PATH)`, see
//! [`super::rootfs::resolve`]) are not behind the trait: they are what
//! makes mounts land inside the rootfs, and the fake runs them on a
//! temporary directory.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;

use nix::Result;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

/// What a setup step asks of the kernel.
pub(crate) trait Syscall {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> Result<()>;
    /// `mount_setattr(AT_RECURSIVE)` setting `attr_set` on a mount tree.
    fn mount_setattr_recursive(&self, path: &CStr, attr_set: u64) -> Result<()>;
    /// The `ST_*` flags of the mount at `path` (`statvfs`).
    fn mount_flags(&self, path: &CStr) -> Result<libc::c_ulong>;
    fn umount_detach(&self, target: &CStr) -> Result<()>;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()>;
    fn chroot(&self, dir: &CStr) -> Result<()>;
    /// The text of `/proc/self/mountinfo`.
    fn mountinfo(&self) -> std::io::Result<String>;
    fn chdir(&self, dir: &CStr) -> Result<()>;
    fn fchdir(&self, dir: BorrowedFd<'_>) -> Result<()>;
    fn mkdir(&self, dir: &CStr, mode: u32) -> Result<()>;
    /// `mkdir -p` of an absolute path (the working directory), 0755.
    fn create_dir_all(&self, dir: &str) -> std::io::Result<()>;
    /// `Some(true)` for a directory, `Some(false)` for anything else,
    /// `None` when `path` does not exist.
    fn path_kind(&self, path: &CStr) -> Option<bool>;
    fn mknod_char(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        mode: u32,
        dev: (u32, u32),
    ) -> Result<()>;
    fn symlink(&self, target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<()>;
    fn setns(&self, fd: BorrowedFd<'_>, nstype: libc::c_int) -> Result<()>;
    fn sethostname(&self, name: &str) -> Result<()>;
    fn setgroups(&self, groups: &[u32]) -> Result<()>;
    fn setresgid(&self, gid: u32) -> Result<()>;
    fn setresuid(&self, uid: u32) -> Result<()>;
    /// Drops capability `cap` from the bounding set.
    fn drop_bounding(&self, cap: u8) -> Result<()>;
    /// effective = permitted = `caps` (a bit mask), inheritable empty.
    fn capset(&self, caps: u64) -> Result<()>;
    fn clear_ambient(&self) -> Result<()>;
    /// `prctl(option, arg2, 0, 0, 0)` with integer arguments.
    fn prctl(&self, option: libc::c_int, arg2: libc::c_ulong) -> Result<()>;
    /// Installs a seccomp filter (`PR_SET_SECCOMP`).
    fn seccomp(&self, prog: &[crate::sys::seccomp::SockFilter]) -> Result<()>;
}

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Linux;

fn errno_of(e: &crate::sys::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.errno())
}

fn capability(cap: u8) -> Result<caps::Capability> {
    caps::all()
        .into_iter()
        .find(|c| c.index() == cap)
        .ok_or(nix::errno::Errno::EINVAL)
}

impl Syscall for Linux {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> Result<()> {
        nix::mount::mount(
            source,
            target,
            fstype,
            MsFlags::from_bits_retain(flags),
            data,
        )
    }
    fn mount_setattr_recursive(&self, path: &CStr, attr_set: u64) -> Result<()> {
        crate::sys::fs::mount_setattr_recursive(path, attr_set).map_err(|e| errno_of(&e))
    }
    fn mount_flags(&self, path: &CStr) -> Result<libc::c_ulong> {
        nix::sys::statvfs::statvfs(path).map(|st| st.flags().bits())
    }
    fn umount_detach(&self, target: &CStr) -> Result<()> {
        nix::mount::umount2(target, MntFlags::MNT_DETACH)
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }
    fn chroot(&self, dir: &CStr) -> Result<()> {
        nix::unistd::chroot(dir)
    }
    fn mountinfo(&self) -> std::io::Result<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
    }
    fn chdir(&self, dir: &CStr) -> Result<()> {
        nix::unistd::chdir(dir)
    }
    fn fchdir(&self, dir: BorrowedFd<'_>) -> Result<()> {
        nix::unistd::fchdir(dir)
    }
    fn mkdir(&self, dir: &CStr, mode: u32) -> Result<()> {
        nix::unistd::mkdir(dir, Mode::from_bits_truncate(mode))
    }
    fn create_dir_all(&self, dir: &str) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
    }
    fn path_kind(&self, path: &CStr) -> Option<bool> {
        let st = nix::sys::stat::stat(path).ok()?;
        Some(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }
    fn mknod_char(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        mode: u32,
        dev: (u32, u32),
    ) -> Result<()> {
        let dev = nix::sys::stat::makedev(dev.0.into(), dev.1.into());
        nix::sys::stat::mknodat(
            dir,
            name,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(mode),
            dev,
        )
    }
    fn symlink(&self, target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        nix::unistd::symlinkat(target, dir, name)
    }
    fn setns(&self, fd: BorrowedFd<'_>, nstype: libc::c_int) -> Result<()> {
        nix::sched::setns(fd, CloneFlags::from_bits_retain(nstype))
    }
    fn sethostname(&self, name: &str) -> Result<()> {
        nix::unistd::sethostname(name)
    }
    fn setgroups(&self, groups: &[u32]) -> Result<()> {
        let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
        nix::unistd::setgroups(&groups)
    }
    fn setresgid(&self, gid: u32) -> Result<()> {
        let gid = Gid::from_raw(gid);
        nix::unistd::setresgid(gid, gid, gid)
    }
    fn setresuid(&self, uid: u32) -> Result<()> {
        let uid = Uid::from_raw(uid);
        nix::unistd::setresuid(uid, uid, uid)
    }
    fn drop_bounding(&self, cap: u8) -> Result<()> {
        caps::drop(None, caps::CapSet::Bounding, capability(cap)?)
            .map_err(|_| nix::errno::Errno::last())
    }
    fn capset(&self, mask: u64) -> Result<()> {
        let set: caps::CapsHashSet = caps::all()
            .into_iter()
            .filter(|c| mask & (1u64 << c.index()) != 0)
            .collect();
        // Effective first: it must stay a subset of permitted.
        caps::set(None, caps::CapSet::Effective, &set)
            .and_then(|()| caps::set(None, caps::CapSet::Permitted, &set))
            .and_then(|()| caps::set(None, caps::CapSet::Inheritable, &caps::CapsHashSet::new()))
            .map_err(|_| nix::errno::Errno::last())
    }
    fn clear_ambient(&self) -> Result<()> {
        caps::clear(None, caps::CapSet::Ambient).map_err(|_| nix::errno::Errno::last())
    }
    fn prctl(&self, option: libc::c_int, arg2: libc::c_ulong) -> Result<()> {
        crate::sys::process::prctl(option, arg2, "prctl").map_err(|e| errno_of(&e))
    }
    fn seccomp(&self, prog: &[crate::sys::seccomp::SockFilter]) -> Result<()> {
        crate::sys::seccomp::install(prog)
    }
}

/// A fake kernel for tests: performs nothing, succeeds (but `pivot_root`
/// fails with `pivot_root_error` when set), and records each call as one
/// line; `mountinfo` is the mount table it reports. Paths of the form `/proc/self/fd/N` (mount targets
/// reached through a resolved fd) are recorded as the path they name,
/// relative to `root` (the temporary directory that plays the rootfs);
/// fds are recorded as the path they name likewise.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Recording {
    pub root: std::path::PathBuf,
    pub calls: std::cell::RefCell<Vec<String>>,
    pub pivot_root_error: Option<nix::errno::Errno>,
    pub mountinfo: String,
}

#[cfg(test)]
impl Recording {
    pub(crate) fn new(root: &std::path::Path) -> Recording {
        Recording {
            root: root.to_path_buf(),
            calls: Default::default(),
            pivot_root_error: None,
            mountinfo: String::new(),
        }
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: String) -> Result<()> {
        let root = self.root.display().to_string();
        self.calls.borrow_mut().push(call.replace(&root, "<root>"));
        Ok(())
    }

    fn show_path(&self, p: &std::path::Path) -> String {
        match p.strip_prefix(&self.root) {
            Ok(rel) => format!("<root>/{}", rel.display()),
            Err(_) => p.display().to_string(),
        }
    }

    fn show(&self, c: &CStr) -> String {
        let text = c.to_string_lossy();
        if text.starts_with("/proc/self/fd/") {
            if let Ok(p) = std::fs::read_link(&*text) {
                return self.show_path(&p);
            }
        }
        self.show_path(std::path::Path::new(&*text))
    }

    fn show_fd(&self, fd: BorrowedFd<'_>) -> String {
        std::fs::read_link(crate::sys::fd::proc_path(fd))
            .map_or_else(|_| "?".to_string(), |p| self.show_path(&p))
    }
}

#[cfg(test)]
fn opt(c: Option<&CStr>) -> String {
    c.map_or_else(|| "-".to_string(), |c| c.to_string_lossy().into_owned())
}

#[cfg(test)]
fn ms_flags(flags: libc::c_ulong) -> String {
    let names = [
        (libc::MS_RDONLY, "ro"),
        (libc::MS_NOSUID, "nosuid"),
        (libc::MS_NODEV, "nodev"),
        (libc::MS_NOEXEC, "noexec"),
        (libc::MS_REMOUNT, "remount"),
        (libc::MS_NOATIME, "noatime"),
        (libc::MS_NODIRATIME, "nodiratime"),
        (libc::MS_BIND, "bind"),
        (libc::MS_MOVE, "move"),
        (libc::MS_REC, "rec"),
        (libc::MS_PRIVATE, "private"),
        (libc::MS_RELATIME, "relatime"),
        (libc::MS_STRICTATIME, "strictatime"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "0".to_string()
    } else {
        v.join(",")
    }
}

#[cfg(test)]
impl Syscall for Recording {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> Result<()> {
        let source = source.map_or_else(|| "-".to_string(), |s| self.show(s));
        self.record(format!(
            "mount {source} {} {} {} {}",
            self.show(target),
            opt(fstype),
            ms_flags(flags),
            opt(data)
        ))
    }
    fn mount_setattr_recursive(&self, path: &CStr, attr_set: u64) -> Result<()> {
        self.record(format!(
            "mount_setattr {} rec {attr_set:#x}",
            self.show(path)
        ))
    }
    fn mount_flags(&self, path: &CStr) -> Result<libc::c_ulong> {
        self.record(format!("statvfs {}", self.show(path)))?;
        Ok(libc::ST_NOSUID)
    }
    fn umount_detach(&self, target: &CStr) -> Result<()> {
        self.record(format!("umount2 {} detach", opt(Some(target))))
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()> {
        self.record(format!(
            "pivot_root {} {}",
            opt(Some(new_root)),
            opt(Some(put_old))
        ))?;
        self.pivot_root_error.map_or(Ok(()), Err)
    }
    fn chroot(&self, dir: &CStr) -> Result<()> {
        self.record(format!("chroot {}", opt(Some(dir))))
    }
    fn mountinfo(&self) -> std::io::Result<String> {
        self.calls.borrow_mut().push("read mountinfo".to_string());
        Ok(self.mountinfo.clone())
    }
    fn chdir(&self, dir: &CStr) -> Result<()> {
        self.record(format!("chdir {}", self.show(dir)))
    }
    fn fchdir(&self, dir: BorrowedFd<'_>) -> Result<()> {
        self.record(format!("fchdir {}", self.show_fd(dir)))
    }
    fn mkdir(&self, dir: &CStr, mode: u32) -> Result<()> {
        self.record(format!("mkdir {} {mode:o}", self.show(dir)))
    }
    fn create_dir_all(&self, dir: &str) -> std::io::Result<()> {
        self.calls.borrow_mut().push(format!("mkdir -p {dir}"));
        Ok(())
    }
    fn path_kind(&self, path: &CStr) -> Option<bool> {
        // Every masked or read-only kernel path "exists" as a file, except
        // the ones the OCI defaults name as directories.
        let dirs = [
            "/proc/acpi",
            "/proc/scsi",
            "/sys/firmware",
            "/proc/bus",
            "/proc/fs",
        ];
        let p = path.to_string_lossy();
        Some(dirs.contains(&&*p))
    }
    fn mknod_char(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        mode: u32,
        dev: (u32, u32),
    ) -> Result<()> {
        self.record(format!(
            "mknod {}/{} c {mode:o} {}:{}",
            self.show_fd(dir),
            opt(Some(name)),
            dev.0,
            dev.1
        ))
    }
    fn symlink(&self, target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        self.record(format!(
            "symlink {}/{} -> {}",
            self.show_fd(dir),
            opt(Some(name)),
            opt(Some(target))
        ))
    }
    fn setns(&self, fd: BorrowedFd<'_>, nstype: libc::c_int) -> Result<()> {
        self.record(format!("setns {} {nstype:#x}", self.show_fd(fd)))
    }
    fn sethostname(&self, name: &str) -> Result<()> {
        self.record(format!("sethostname {name}"))
    }
    fn setgroups(&self, groups: &[u32]) -> Result<()> {
        self.record(format!("setgroups {groups:?}"))
    }
    fn setresgid(&self, gid: u32) -> Result<()> {
        self.record(format!("setresgid {gid}"))
    }
    fn setresuid(&self, uid: u32) -> Result<()> {
        self.record(format!("setresuid {uid}"))
    }
    fn drop_bounding(&self, cap: u8) -> Result<()> {
        self.record(format!("capbset_drop {cap}"))
    }
    fn capset(&self, caps: u64) -> Result<()> {
        self.record(format!("capset {caps:#x}"))
    }
    fn clear_ambient(&self) -> Result<()> {
        self.record("ambient_clear_all".to_string())
    }
    fn prctl(&self, option: libc::c_int, arg2: libc::c_ulong) -> Result<()> {
        let name = match option {
            libc::PR_SET_KEEPCAPS => "PR_SET_KEEPCAPS".to_string(),
            libc::PR_SET_NO_NEW_PRIVS => "PR_SET_NO_NEW_PRIVS".to_string(),
            o => o.to_string(),
        };
        self.record(format!("prctl {name} {arg2}"))
    }
    fn seccomp(&self, prog: &[crate::sys::seccomp::SockFilter]) -> Result<()> {
        self.record(format!("seccomp {} instructions", prog.len()))
    }
}

#[cfg(test)]
mod tests;
