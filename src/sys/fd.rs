//! File descriptors: pipes, `O_NONBLOCK`, pidfds, duplicates.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

use super::error::{Error, Op, Result};

/// A pipe `(read end, write end)`, both `O_CLOEXEC`.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).op("pipe2")
}

/// Sets `O_NONBLOCK` on the open file description of `fd`.
///
/// Note that the flag belongs to the file description, so it is shared with
/// every process that holds a duplicate of it (e.g. an inherited stdio pipe).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).op("fcntl(F_GETFL)")?);
    if flags.contains(OFlag::O_NONBLOCK) {
        return Ok(());
    }
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).op("fcntl(F_SETFL)")?;
    Ok(())
}

/// Clears `FD_CLOEXEC` on `fd`, so that it survives `execve`.
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
        .op("fcntl(F_SETFD)")
        .map(drop)
}

/// A close-on-exec duplicate of `fd` numbered `min` or higher.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, min).op("fcntl(F_DUPFD_CLOEXEC)")
}

/// A pidfd for `pid` (Linux ≥ 5.3): readable once the process has exited.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or(Error::new("pidfd_open", super::Errno::EINVAL))?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).op("pidfd_open")
}

/// `/proc/self/fd/<fd>`: a path naming exactly the object behind `fd`.
pub fn proc_path(fd: impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// `poll(2)` on raw `pollfd`s (the shim keeps them in an array it refills
/// each turn); an interrupted call counts as "nothing ready".
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> Result<usize> {
    // SAFETY: the pointer and length describe the slice we borrow mutably;
    // poll(2) only writes `revents` of its elements.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = Error::last("poll");
        if e.errno() == libc::EINTR {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}

/// Closes the fd number `fd`, ignoring errors (`EBADF`). For a forked
/// child that gives up fds it holds by number (its stdio, fds a
/// `close_range` fallback sweeps, an `OwnedFd` whose destructor never runs
/// because the child ends in `_exit`), and never touches them again.
pub fn close_raw(fd: RawFd) {
    // SAFETY: per the contract above, nothing in this process uses fd
    // number `fd` afterwards (no OwnedFd of it is dropped or read);
    // closing an unused number is EBADF.
    unsafe { libc::close(fd) };
}

/// Closes every fd >= `first` except `keep` (`close_range`, or one by one
/// up to the fd limit on kernels before 5.9). For a post-clone child
/// about to `execve`.
pub fn close_from(first: u32, keep: RawFd) {
    let keep = keep as u32;
    let ranges = [(first, keep.saturating_sub(1)), (keep + 1, u32::MAX)];
    for (lo, hi) in ranges {
        if lo > hi {
            continue;
        }
        // SAFETY: close_range only closes fds of this process; the caller
        // is a child that owns all of them and is about to execve.
        let r = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
        if r == 0 {
            continue;
        }
        let max = nix::unistd::sysconf(nix::unistd::SysconfVar::OPEN_MAX)
            .ok()
            .flatten()
            .unwrap_or(1024)
            .clamp(1024, 1 << 20) as u32;
        for fd in lo..=hi.min(max) {
            close_raw(fd as RawFd);
        }
    }
}
