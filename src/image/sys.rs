//! The syscalls the image store needs that `std` does not wrap: mknod,
//! xattrs, `utimensat(AT_SYMLINK_NOFOLLOW)`, `syncfs`, `fstatvfs`, `flock`,
//! and a liveness check for stale temp entries, from [`crate::sys`] as
//! `io::Result`s.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::sys::stat::{Mode, SFlag};

use crate::sys::Op;

/// `mknod(path, mode, makedev(major, minor))`; `mode` includes the file type.
pub(crate) fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let kind = SFlag::from_bits_truncate(mode & libc::S_IFMT);
    let perm = Mode::from_bits_truncate(mode & !libc::S_IFMT);
    let dev = nix::sys::stat::makedev(major.into(), minor.into());
    Ok(nix::sys::stat::mknod(path, kind, perm, dev).op("mknod")?)
}

/// `lsetxattr(path, name, value, 0)`: does not follow a final symlink.
pub(crate) fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    Ok(crate::sys::fs::lsetxattr(path, name, value)?)
}

/// `lgetxattr(path, name)` into a small buffer; `Ok(None)` when the
/// attribute does not exist.
pub(crate) fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    Ok(crate::sys::fs::lgetxattr(path, name)?)
}

/// Sets atime and mtime of `path` (not following a final symlink).
pub(crate) fn set_mtime_nofollow(path: &Path, mtime: u64) -> io::Result<()> {
    Ok(crate::sys::fs::set_times_nofollow(path, mtime)?)
}

/// `syncfs` on the filesystem holding `file`.
pub(crate) fn syncfs(file: &File) -> io::Result<()> {
    Ok(nix::unistd::syncfs(file).op("syncfs")?)
}

/// Bytes available to unprivileged writers and total size of the
/// filesystem holding `file` (`fstatvfs`: `f_bavail` and `f_blocks`, in
/// `f_frsize` units).
pub(crate) fn fs_space(file: &File) -> io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::fstatvfs(file).op("fstatvfs")?;
    let unit = st.fragment_size() as u64;
    #[allow(clippy::unnecessary_cast)]
    Ok((
        (st.blocks_available() as u64).saturating_mul(unit),
        (st.blocks() as u64).saturating_mul(unit),
    ))
}

/// Takes an exclusive `flock` on `file`; released when the file is closed.
pub(crate) fn flock_exclusive(file: &File) -> io::Result<()> {
    Ok(crate::sys::fs::flock_exclusive(file)?)
}

/// Tries to take an exclusive `flock` on `file` without waiting:
/// `Ok(false)` when another open file holds it.
pub(crate) fn flock_try_exclusive(file: &File) -> io::Result<bool> {
    Ok(crate::sys::fs::flock_try_exclusive(file)?)
}

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    crate::sys::process::euid()
}

/// Whether a process with this PID exists (it may have been reused).
pub(crate) fn pid_alive(pid: i32) -> bool {
    crate::sys::process::pid_alive(pid)
}
