//! Small helpers shared by the container, rootfs, security and namespaces
//! modules: errno text, C strings, the error pipe, mount. The system calls
//! themselves are [`crate::sys`]'s and `nix`'s; nothing here is `unsafe`.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use super::ContainerError;
use crate::runtime::syscall::Syscall;

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    Errno::last_raw()
}

/// A C string of a config value; NUL bytes are a config error.
pub(crate) fn cstr_of(field: &'static str, s: &str) -> Result<CString, ContainerError> {
    CString::new(s).map_err(|_| ContainerError::InvalidConfig {
        field,
        value: s.to_string(),
        why: "contains a NUL byte",
    })
}

/// A C string of a path; NUL bytes are a config error.
pub(crate) fn cpath(field: &'static str, p: &Path) -> Result<CString, ContainerError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| ContainerError::InvalidConfig {
        field,
        value: p.display().to_string(),
        why: "contains a NUL byte",
    })
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), ContainerError> {
    Ok(crate::sys::fd::pipe()?)
}

/// Reads until EOF or `max` bytes.
pub(crate) fn read_to_end(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<(), ContainerError> {
    let mut chunk = [0u8; 512];
    while buf.len() < max {
        match nix::unistd::read(fd, &mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(ContainerError::Sys {
                    op: "read error pipe",
                    errno: e as i32,
                });
            }
        }
    }
    Ok(())
}

/// Writes all of `data`, ignoring errors (used by a child about to exit).
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(0) => return,
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// A setup step's result: a failed `nix` call becomes a
/// [`ContainerError::Setup`] naming the step.
pub(crate) fn step<T>(
    r: nix::Result<T>,
    step: impl FnOnce() -> String,
) -> Result<T, ContainerError> {
    r.map_err(|e| ContainerError::setup(step(), e as i32))
}

/// `mount(2)`; `step` names the mount in errors.
pub(crate) fn mount(
    sc: &dyn Syscall,
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
    step_name: impl FnOnce() -> String,
) -> Result<(), ContainerError> {
    step(sc.mount(source, target, fstype, flags, data), step_name)
}

/// `/proc/self/fd/<fd>`: a path naming exactly the object behind `fd`, to
/// mount onto without resolving a path again.
pub(crate) fn fd_path(fd: &impl AsFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())).expect("no NUL in a number")
}

/// `prctl(option, arg2, 0, 0, 0)`; `what` names it in errors.
pub(crate) fn prctl(
    option: libc::c_int,
    arg2: libc::c_ulong,
    what: &'static str,
) -> Result<(), ContainerError> {
    crate::sys::process::prctl(option, arg2, what)
        .map_err(|e| ContainerError::setup(what, e.errno()))
}
