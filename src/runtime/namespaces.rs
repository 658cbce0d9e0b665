//! Process creation and namespace joins for containers.
//!
//! - [`clone_fork`]: the raw `clone` syscall with fork semantics (NULL
//!   stack), so the child can be PID 1 of a new PID namespace. No libc
//!   `atfork` handlers run: call it only from a single-threaded process.
//! - [`fork`]: plain `fork(2)`.
//! - [`open_ns`] / [`join`]: open `/proc/<pid>/ns/<kind>` and `setns` into it.
//!
//! Touches no files except the `/proc/<pid>/ns/*` it is asked to open.

use std::os::fd::{AsRawFd, OwnedFd};

use super::container::{ContainerError, owned, sys};

/// `clone(flags)` with a NULL stack: returns 0 in the child and the child's
/// PID in the parent. `flags` must include the exit signal (`SIGCHLD`).
pub(crate) fn clone_fork(flags: libc::c_int) -> Result<libc::pid_t, ContainerError> {
    // The argument order after `stack` differs between architectures
    // (x86_64: parent_tid, child_tid, tls; aarch64: parent_tid, tls,
    // child_tid); all of them are zero here, so one call fits both.
    // SAFETY: with a NULL stack the child runs on a copy-on-write copy of
    // the caller's stack like after fork(2); no tid pointers are passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(ContainerError::Sys {
            op: "clone",
            errno: sys::errno(),
        });
    }
    Ok(r as libc::pid_t)
}

/// `fork(2)`: 0 in the child, the child's PID in the parent.
pub(crate) fn fork() -> Result<libc::pid_t, ContainerError> {
    // SAFETY: the caller is single-threaded (the shim) or only calls
    // async-signal-safe-enough code in the child before exec or _exit.
    let r = unsafe { libc::fork() };
    if r < 0 {
        return Err(ContainerError::Sys {
            op: "fork",
            errno: sys::errno(),
        });
    }
    Ok(r)
}

/// Opens a namespace file such as `/proc/123/ns/mnt`.
pub(crate) fn open_ns(ns_dir: &str, kind: &str) -> Result<OwnedFd, ContainerError> {
    let path = format!("{ns_dir}/{kind}");
    let c = sys::cstr_of("namespace", &path)?;
    // SAFETY: opening a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    sys::check(fd, || format!("open {path:?}"))?;
    Ok(owned(fd))
}

/// `setns(fd, nstype)`. Joining a mount namespace needs a single-threaded
/// caller; joining a PID namespace only affects children created later.
pub(crate) fn join(fd: &OwnedFd, nstype: libc::c_int, what: &str) -> Result<(), ContainerError> {
    // SAFETY: `fd` is an open namespace file.
    let r = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    sys::check(r, || format!("setns {what}")).map(|_| ())
}
