//! Signals: signalfd, masks, handlers, and the post-clone reset.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SfdFlags;

use super::error::{Error, Op, Result};

fn set_of(signals: &[i32]) -> Result<SigSet> {
    let mut set = SigSet::empty();
    for &sig in signals {
        set.add(Signal::try_from(sig).map_err(|e| Error::new("sigaddset", e))?);
    }
    Ok(set)
}

/// A non-blocking, close-on-exec signalfd for a set of blocked signals.
#[derive(Debug)]
pub struct SignalFd(nix::sys::signalfd::SignalFd);

impl SignalFd {
    /// Blocks `signals` on the calling thread and opens a signalfd that
    /// reports them.
    pub fn new(signals: &[i32]) -> Result<SignalFd> {
        let set = set_of(signals)?;
        set.thread_block().op("sigprocmask(SIG_BLOCK)")?;
        let fd = nix::sys::signalfd::SignalFd::with_flags(
            &set,
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )
        .op("signalfd")?;
        Ok(SignalFd(fd))
    }

    /// One pending signal number, if any.
    pub fn read(&self) -> Result<Option<i32>> {
        match self.0.read_signal() {
            Ok(info) => Ok(info.map(|i| i.ssi_signo as i32)),
            Err(e) => Err(Error::new("read signalfd", e)),
        }
    }

    /// Every pending signal number.
    pub fn read_all(&self) -> Vec<u32> {
        let mut out = Vec::new();
        while let Ok(Some(sig)) = self.read() {
            out.push(sig as u32);
        }
        out
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Installs a handler that does nothing for each of `signals`. Unlike
/// `SIG_IGN`, a handler is reset to the default by `execve`, so children
/// do not inherit an ignored `SIGPIPE` or `SIGTERM`.
pub fn set_noop_handlers(signals: &[i32]) -> Result<()> {
    set_handlers(signals, ignore_signal)
}

/// Installs `handler` (with `SA_RESTART`) for each of `signals`. The
/// handler must be async-signal-safe.
pub fn set_handlers(signals: &[i32], handler: extern "C" fn(libc::c_int)) -> Result<()> {
    set_action(signals, Action::Handler(handler))
}

/// Restores `SIGPIPE`'s default action (the process ends when it writes
/// to a pipe nobody reads), as Unix tools have it: the Rust runtime
/// ignores `SIGPIPE`, which turns `picolet get … | head -1` into an
/// `EPIPE` on every write. For the local commands only: the agent and the
/// shim keep it ignored (a closed socket must not end them), and the
/// commands' own sockets are written with `MSG_NOSIGNAL`
/// ([`super::net::send_all`]).
pub fn default_sigpipe() -> Result<()> {
    set_action(&[libc::SIGPIPE], Action::Default)
}

/// What [`set_action`] installs: only safe choices.
enum Action {
    Handler(extern "C" fn(libc::c_int)),
    Default,
}

fn set_action(signals: &[i32], action: Action) -> Result<()> {
    let handler = match action {
        Action::Handler(h) => SigHandler::Handler(h),
        Action::Default => SigHandler::SigDfl,
    };
    let act = SigAction::new(handler, SaFlags::SA_RESTART, SigSet::empty());
    for &sig in signals {
        let sig = Signal::try_from(sig).map_err(|e| Error::new("sigaction", e))?;
        // SAFETY: the handlers given here (a no-op; a kill(2) forwarder
        // reading an atomic) are async-signal-safe and touch no Rust state
        // that the interrupted code could hold; the default action runs no
        // code of ours.
        unsafe { nix::sys::signal::sigaction(sig, &act) }.op("sigaction")?;
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
    old: SigSet,
}

impl SignalsUnblocked {
    pub fn new() -> Result<SignalsUnblocked> {
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::empty()),
            Some(&mut old),
        )
        .op("sigprocmask(SIG_SETMASK)")?;
        Ok(SignalsUnblocked { old })
    }
}

impl Drop for SignalsUnblocked {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// The kernel's `struct sigaction` for `rt_sigaction` (same field order
/// on x86_64, aarch64 and arm).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Default dispositions for every signal and an empty signal mask (for a
/// post-clone child: the shim blocks signals for its signalfd and ignores
/// SIGPIPE, and both would survive `execve`). Raw syscalls, because libc
/// refuses to touch its reserved signals (32, 33), which an ignoring
/// ancestor may have left ignored. Allocates nothing.
pub fn reset_all() {
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction with a valid kernel sigaction and the
        // kernel's sigset size; no old action requested.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
