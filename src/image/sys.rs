//! The syscalls the image store needs that `std` does not wrap: mknod,
//! xattrs, `utimensat(AT_SYMLINK_NOFOLLOW)`, `syncfs`, `fstatvfs`, `flock`,
//! and a liveness check for stale temp entries. Each wrapper is one `unsafe`
//! call on a NUL-terminated copy of its path.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mknod(path, mode, makedev(major, minor))`; `mode` includes the file type.
pub(crate) fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is a valid NUL-terminated string alive for the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev) };
    check(rc)
}

/// `lsetxattr(path, name, value, 0)`: does not follow a final symlink.
pub(crate) fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: `c` and `n` are valid NUL-terminated strings and `value`
    // points to `value.len()` readable bytes, all alive for the call.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(rc)
}

/// `lgetxattr(path, name)` into a small buffer; `Ok(None)` when the
/// attribute does not exist.
pub(crate) fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let c = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: `c` and `n` are valid NUL-terminated strings; `buf` has
    // `buf.len()` writable bytes. All are alive for the call.
    let rc = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            _ => Err(err),
        };
    }
    buf.truncate(rc as usize);
    Ok(Some(buf))
}

/// Sets atime and mtime of `path` (not following a final symlink).
pub(crate) fn set_mtime_nofollow(path: &Path, mtime: u64) -> io::Result<()> {
    let c = cpath(path)?;
    let t = libc::timespec {
        tv_sec: mtime.try_into().unwrap_or(i32::MAX.into()),
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: `c` is a valid NUL-terminated string and `times` is an array
    // of two timespecs, both alive for the call.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(rc)
}

/// `syncfs` on the filesystem holding `file`.
pub(crate) fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: the fd is owned by `file` and open for the whole call.
    let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
    check(rc)
}

/// Bytes available to unprivileged writers and total size of the
/// filesystem holding `file` (`fstatvfs`: `f_bavail` and `f_blocks`, in
/// `f_frsize` units).
pub(crate) fn fs_space(file: &File) -> io::Result<(u64, u64)> {
    // SAFETY: an all-zero statvfs is a valid out-buffer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is owned by `file` and open for the whole call; `st`
    // is a valid, writable statvfs.
    let rc = unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) };
    check(rc)?;
    let unit = st.f_frsize as u64;
    Ok((
        (st.f_bavail as u64).saturating_mul(unit),
        (st.f_blocks as u64).saturating_mul(unit),
    ))
}

/// Takes an exclusive `flock` on `file`; released when the file is closed.
pub(crate) fn flock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: the fd is owned by `file` and open for the whole call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        match check(rc) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Tries to take an exclusive `flock` on `file` without waiting:
/// `Ok(false)` when another open file holds it.
pub(crate) fn flock_try_exclusive(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: the fd is owned by `file` and open for the whole call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        match check(rc) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a process with this PID exists (it may have been reused).
pub(crate) fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence; nothing is delivered.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
