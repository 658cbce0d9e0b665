//! The shim's system calls: re-exports of [`crate::sys`] plus the few that
//! only the shim makes (loopback up, `poll`, `send`, `/proc` stat parsing).
//! Nothing here is `unsafe`.
//!
//! Every fd is `O_CLOEXEC`, so containers inherit none of them.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub use crate::sys::fd::{pipe, set_nonblocking};
pub use crate::sys::net::recv_with_fds;
pub use crate::sys::process::{exit_of, fork, kill, set_child_subreaper, try_wait, wait_any};
pub use crate::sys::signal::{SignalFd, SignalsUnblocked, set_noop_handlers};
use crate::sys::{Errno, Op};

/// Blocks `signals` and returns a non-blocking signalfd that reports them.
pub fn signalfd(signals: &[libc::c_int]) -> crate::sys::Result<SignalFd> {
    SignalFd::new(signals)
}

/// Every pending signal number of the signalfd.
pub fn read_signals(sfd: &mut SignalFd) -> Vec<u32> {
    sfd.read_all()
}

pub fn unshare(flags: libc::c_int) -> crate::sys::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(flags)).op("unshare")
}

pub fn sethostname(name: &str) -> crate::sys::Result<()> {
    use crate::runtime::syscall::{Linux, Syscall};
    Linux.sethostname(name).op("sethostname")
}

pub fn setsid() -> crate::sys::Result<()> {
    nix::unistd::setsid().op("setsid").map(drop)
}

/// Makes `target` (0, 1 or 2) a copy of `fd`.
pub fn dup2(fd: BorrowedFd<'_>, target: i32) -> crate::sys::Result<()> {
    let r = match target {
        0 => nix::unistd::dup2_stdin(fd),
        1 => nix::unistd::dup2_stdout(fd),
        2 => nix::unistd::dup2_stderr(fd),
        _ => Err(Errno::EINVAL),
    };
    r.op("dup2")
}

/// Sets `IFF_UP` on `lo` of the current network namespace.
pub fn loopback_up() -> crate::sys::Result<()> {
    crate::sys::net::interface_up("lo")
}

/// `poll(2)`; an interrupted call counts as "nothing ready".
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    crate::sys::fd::poll(fds, timeout_ms).map_err(Into::into)
}

/// Sends on a socket without raising `SIGPIPE` and without blocking.
pub fn send_nosignal(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    use nix::sys::socket::MsgFlags;
    nix::sys::socket::send(
        fd.as_raw_fd(),
        buf,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(|e| io::Error::from_raw_os_error(e as i32))
}

/// PID (as `/proc` shows it) and start time (field 22, clock ticks after
/// boot) of a `/proc/<pid>/stat` line.
pub fn parse_stat(stat: &str) -> Option<(libc::pid_t, u64)> {
    let pid = stat.split(' ').next()?.parse().ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: field 3 is the first of them, so field 22 is index 19.
    let rest = &stat[stat.rfind(')')? + 2..];
    let start = rest.split(' ').nth(19)?.parse().ok()?;
    Some((pid, start))
}

/// This process's PID in the PID namespace of `/proc` (the host's, even
/// when the shim is PID 1 of a pod namespace) and its start time.
pub fn self_stat() -> io::Result<(libc::pid_t, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    parse_stat(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/self/stat"))
}

/// The PID of our child `pid` as `/proc` numbers it (the host's view), from
/// a pidfd's fdinfo. Falls back to `pid` when the kernel cannot tell.
pub fn proc_pid(pid: libc::pid_t) -> libc::pid_t {
    let Ok(fd) = crate::sys::fd::pidfd_open(pid) else {
        return pid;
    };
    let info = match std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())) {
        Ok(s) => s,
        Err(_) => return pid,
    };
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&p: &libc::pid_t| p > 0)
        .unwrap_or(pid)
}

/// Hands freed heap memory back to the kernel. glibc keeps it after a large
/// exec output is freed; musl's allocator unmaps large blocks by itself.
pub fn trim_heap() {
    crate::sys::process::trim_heap()
}
