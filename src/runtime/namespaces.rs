//! Process creation and namespace joins for containers.
//!
//! - [`clone_fork`]: the raw `clone` syscall with fork semantics (NULL
//!   stack), so the child can be PID 1 of a new PID namespace. No libc
//!   `atfork` handlers run: call it only from a single-threaded process.
//! - [`fork`]: plain `fork(2)`.
//! - [`open_ns`] / [`join`]: open `/proc/<pid>/ns/<kind>` and `setns` into it.
//!
//! Touches no files except the `/proc/<pid>/ns/*` it is asked to open.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::container::{ContainerError, sys};
use super::syscall::Syscall;

/// `clone(flags)` with a NULL stack: returns 0 in the child and the child's
/// PID in the parent. `flags` must include the exit signal (`SIGCHLD`).
pub(crate) fn clone_fork(flags: libc::c_int) -> Result<libc::pid_t, ContainerError> {
    Ok(crate::sys::process::clone_fork(flags)?)
}

/// `fork(2)`: 0 in the child, the child's PID in the parent.
pub(crate) fn fork() -> Result<libc::pid_t, ContainerError> {
    Ok(crate::sys::process::fork()?)
}

/// Opens a namespace file such as `/proc/123/ns/mnt`.
pub(crate) fn open_ns(ns_dir: &str, kind: &str) -> Result<OwnedFd, ContainerError> {
    let path = format!("{ns_dir}/{kind}");
    let c = sys::cstr_of("namespace", &path)?;
    sys::step(
        nix::fcntl::open(
            c.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ),
        || format!("open {path:?}"),
    )
}

/// `setns(fd, nstype)`. Joining a mount namespace needs a single-threaded
/// caller; joining a PID namespace only affects children created later.
pub(crate) fn join(
    sc: &dyn Syscall,
    fd: &OwnedFd,
    nstype: libc::c_int,
    what: &str,
) -> Result<(), ContainerError> {
    sys::step(sc.setns(fd.as_fd(), nstype), || format!("setns {what}"))
}
