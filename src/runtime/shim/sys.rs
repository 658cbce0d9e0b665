//! Thin wrappers over the syscalls the shim makes (the only `unsafe` of the shim).
//!
//! Every wrapper turns `-1`/`errno` into `std::io::Error` and returns owned
//! fds (`O_CLOEXEC` always, so containers inherit none of them).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A pipe `(read end, write end)`, both `O_CLOEXEC`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((r, w))
}

/// Sets `O_NONBLOCK` on the open file description of `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL on a valid borrowed fd has no memory effects.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: F_SETFL on a valid borrowed fd has no memory effects.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// `fork(2)`: `Ok(0)` in the child, the child's PID in the parent.
pub fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the shim is single-threaded when it forks (it was just
    // exec'd), so the child may keep running Rust code.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare only changes this process's namespaces.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`, which outlives the call.
    cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// Sets `IFF_UP` on `lo` of the current network namespace (`SIOCSIFFLAGS`).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket creation; the fd is owned right below.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads/writes the ifreq we own.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) })?;
    // SAFETY: after SIOCGIFFLAGS the union holds ifru_flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) })?;
    Ok(())
}

pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid has no memory effects.
    cvt(unsafe { libc::setsid() }).map(drop)
}

/// Makes `target` (0, 1 or 2) a copy of `fd`.
pub fn dup2(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 onto a standard fd number; both are valid fds.
    cvt(unsafe { libc::dup2(fd.as_raw_fd(), target) }).map(drop)
}

pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) }).map(drop)
}

/// Blocks `signals` and returns a non-blocking signalfd that reports them.
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<File> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it right away.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigemptyset(&mut set) };
    for &sig in signals {
        // SAFETY: as above; `sig` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    // SAFETY: blocks the signals of a set we own; no old set requested.
    cvt(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    // SAFETY: creates a new fd from the set we own.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: fd was just returned by signalfd and is owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Reads every pending `signalfd_siginfo` and returns the signal numbers.
pub fn read_signals(sfd: &mut File) -> Vec<u32> {
    let mut out = Vec::new();
    let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    while let Ok(n) = sfd.read(&mut buf) {
        if n < buf.len() {
            break;
        }
        // ssi_signo is the first u32 of signalfd_siginfo.
        out.push(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]));
    }
    out
}

/// `poll(2)`; an interrupted call counts as "nothing ready".
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the slice we borrow mutably.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n == -1 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}

/// `waitpid(pid, WNOHANG)` (`pid == -1`: any child): the reaped child and
/// its raw status, or `None` when no child has changed state.
pub fn try_wait(pid: libc::pid_t) -> Option<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into the int we own.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r > 0 { Some((r, status)) } else { None }
}

/// Blocking `waitpid(pid)`, retried on `EINTR`; `None` if `pid` is no child.
pub fn wait(pid: libc::pid_t) -> Option<libc::c_int> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into the int we own.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Some(status);
        }
        if r == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory effects; callers only pass PIDs of their
    // own un-reaped children, which cannot have been reused.
    cvt(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Exit code as Kubernetes reports it (the code, or 128 + signal) and the signal.
pub fn exit_of(status: libc::c_int) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(status), None)
    }
}

/// Sends on a socket without raising `SIGPIPE` and without blocking.
pub fn send_nosignal(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
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
    // SAFETY: pidfd_open takes integer arguments and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return pid;
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
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

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Installs a handler that does nothing for each of `signals`. Unlike
/// `SIG_IGN`, a handler is reset to the default by `execve`, so containers
/// do not inherit an ignored `SIGPIPE` or `SIGTERM`.
pub fn set_noop_handlers(signals: &[libc::c_int]) -> io::Result<()> {
    for &sig in signals {
        // SAFETY: sigaction is plain data; all-zero is a valid value.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: installs an async-signal-safe handler that touches nothing.
        cvt(unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) })?;
    }
    Ok(())
}

/// Unblocks every signal until dropped, then restores the previous mask.
/// Held while a container is cloned, so the new process starts with an
/// empty mask (masks survive `execve`). Signals that arrive meanwhile run
/// the no-op handlers: the caller must reap children afterwards, because
/// a `SIGCHLD` taken that way no longer shows up on the signalfd.
#[derive(Debug)]
pub struct SignalsUnblocked {
    old: libc::sigset_t,
}

impl SignalsUnblocked {
    pub fn new() -> io::Result<SignalsUnblocked> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `empty` is a sigset_t we own.
        unsafe { libc::sigemptyset(&mut empty) };
        // SAFETY: plain data, filled in by sigprocmask below.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are to sigset_t values we own.
        cvt(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, &mut old) })?;
        Ok(SignalsUnblocked { old })
    }
}

impl Drop for SignalsUnblocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Hands freed heap memory back to the kernel. glibc keeps it after a large
/// exec output is freed; musl's allocator unmaps large blocks by itself.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only reorganises the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
