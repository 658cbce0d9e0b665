//! Processes: fork, the raw clone, `_exit`, waiting, signalling, ids.

use nix::sys::signal::Signal;
use nix::sys::wait::WaitPidFlag;
use nix::unistd::Pid;

use super::error::{Errno, Error, Op, Result};

/// `fork(2)`: `Ok(0)` in the child, the child's PID in the parent.
///
/// The caller must be single-threaded, or call only async-signal-safe code
/// in the child before `execve` or [`exit_now`] (no allocation, no locks).
pub fn fork() -> Result<i32> {
    // SAFETY: the precondition above is the caller's: the shim and the
    // container setup fork from a single-threaded process; `check`'s probe
    // child only calls unshare(2) and _exit(2).
    let r = unsafe { libc::fork() };
    if r < 0 {
        return Err(Error::last("fork"));
    }
    Ok(r)
}

/// `clone(flags)` with a NULL stack: returns 0 in the child and the child's
/// PID in the parent. `flags` must include the exit signal (`SIGCHLD`).
/// Call it only from a single-threaded process: no `atfork` handlers run.
pub fn clone_fork(flags: libc::c_int) -> Result<i32> {
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
        return Err(Error::last("clone"));
    }
    Ok(r as i32)
}

/// `_exit(code)`: ends the process without running destructors, atexit
/// hooks or stdio flushes (the only way out of a forked child).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn signal(sig: i32) -> Result<Option<Signal>> {
    if sig == 0 {
        return Ok(None);
    }
    Signal::try_from(sig)
        .map(Some)
        .map_err(|e| Error::new("kill", e))
}

/// `kill(pid, sig)`; `sig == 0` only checks that `pid` exists.
pub fn kill(pid: i32, sig: i32) -> Result<()> {
    nix::sys::signal::kill(Pid::from_raw(pid), signal(sig)?).op("kill")
}

/// Whether a process with this PID exists (it may have been reused).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(pid, 0) {
        Ok(()) => true,
        Err(e) => e.errno() == libc::EPERM,
    }
}

fn waitpid(pid: i32, flags: libc::c_int) -> std::result::Result<(i32, i32), Errno> {
    let mut status = 0;
    // Raw status (not nix's WaitStatus): callers store and compare it.
    // nix has no raw-status waitpid, so this is libc; it takes a pointer
    // to a local int only.
    // SAFETY: waitpid writes the status into the int we own.
    let r = unsafe { libc::waitpid(pid, &mut status, flags) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok((r, status))
    }
}

/// `waitpid(pid, WNOHANG)` (`pid == -1`: any child): the reaped child and
/// its raw status, or `None` when no child has changed state.
pub fn try_wait(pid: i32) -> Option<(i32, i32)> {
    match waitpid(pid, WaitPidFlag::WNOHANG.bits()) {
        Ok((r, status)) if r > 0 => Some((r, status)),
        _ => None,
    }
}

/// Blocking `waitpid(pid)`, retried on `EINTR`: the raw wait status, or
/// the error (`ECHILD` if `pid` is no child of ours).
pub fn wait(pid: i32) -> Result<i32> {
    loop {
        match waitpid(pid, 0) {
            Ok((_, status)) => return Ok(status),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::new("waitpid", e)),
        }
    }
}

/// Blocking `waitpid(-1)`, retried on `EINTR`: the child reaped and its raw
/// wait status; `None` when there is no child left (`ECHILD`).
pub fn wait_any() -> Option<(i32, i32)> {
    loop {
        match waitpid(-1, 0) {
            Ok(r) => return Some(r),
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Exit code as Kubernetes reports it (the code, or 128 + signal) and the signal.
pub fn exit_of(status: i32) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(status), None)
    }
}

/// A child process that is killed (`SIGKILL`) and reaped when dropped,
/// unless [`ChildGuard::release`] hands it on (crun's rule: no early
/// return leaves a half-set-up child behind).
#[derive(Debug)]
pub struct ChildGuard {
    pid: i32,
}

impl ChildGuard {
    pub fn new(pid: i32) -> ChildGuard {
        ChildGuard { pid }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Reaps the child (it has ended or is about to) and returns its raw
    /// wait status; nothing is left to do on drop.
    pub fn reap(self) -> i32 {
        let status = wait(self.pid).unwrap_or(0);
        std::mem::forget(self);
        status
    }

    /// The child lives on; the caller owns its PID.
    pub fn release(self) -> i32 {
        let pid = self.pid;
        std::mem::forget(self);
        pid
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = kill(self.pid, libc::SIGKILL);
        let _ = wait(self.pid);
    }
}

/// `prctl(option, arg2, 0, 0, 0)` with every argument a full `unsigned
/// long`, as the kernel reads them (some options insist the rest are 0).
pub fn prctl(option: libc::c_int, arg2: libc::c_ulong, op: &'static str) -> Result<()> {
    let zero: libc::c_ulong = 0;
    // SAFETY: prctl with integer arguments only (no option used here takes
    // a pointer).
    let r = unsafe { libc::prctl(option, arg2, zero, zero, zero) };
    if r < 0 {
        return Err(Error::last(op));
    }
    Ok(())
}

/// `PR_SET_CHILD_SUBREAPER`.
pub fn set_child_subreaper() -> Result<()> {
    prctl(
        libc::PR_SET_CHILD_SUBREAPER,
        1,
        "prctl(PR_SET_CHILD_SUBREAPER)",
    )
}

/// No core dumps from this process (`RLIMIT_CORE` = 0).
pub fn no_core_dumps() -> Result<()> {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
        .op("setrlimit(RLIMIT_CORE)")
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).op("getrlimit(RLIMIT_NOFILE)")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).op("setrlimit(RLIMIT_NOFILE)")?;
    }
    // `rlim_t` is 32 bits on 32-bit glibc targets.
    #[allow(clippy::unnecessary_cast)]
    Ok(hard.max(soft) as u64)
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> Result<(u64, u64)> {
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .op("getrlimit(RLIMIT_NOFILE)")?;
    #[allow(clippy::unnecessary_cast)]
    Ok((soft as u64, hard as u64))
}

/// Sleeps until a signal arrives, forever.
pub fn pause_forever() -> ! {
    loop {
        nix::unistd::pause();
    }
}

/// Fills `buf` from the kernel's random pool; `false` if it cannot.
pub fn getrandom(buf: &mut [u8]) -> bool {
    let len = buf.len();
    rustix::rand::getrandom(buf, rustix::rand::GetRandomFlags::empty()).is_ok_and(|n| n == len)
}

/// Hands freed heap memory back to the kernel. glibc keeps it after a large
/// output is freed; musl's allocator unmaps large blocks by itself.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only reorganises the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
