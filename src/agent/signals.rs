//! SIGTERM, SIGINT and SIGHUP through a signalfd on the reactor.
//!
//! The signals are blocked on the agent's one thread (so there is no async
//! signal handler at all) and read as data. Children started with
//! `std::process::Command` get an empty signal mask from std.
//!
//! The agent holds a [`Stop`]: the flag the signal task sets on SIGTERM or
//! SIGINT, checked between messages, and whether the stop's message was
//! handled.

use super::Msg;
use crate::reactor::{self, Async};
use crate::sys::signal::SignalFd;
use async_channel::Sender;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

/// A signalfd for the agent's signals.
#[derive(Debug)]
struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks SIGTERM, SIGINT and SIGHUP and opens a signalfd for them.
    fn new() -> io::Result<Signals> {
        let fd = SignalFd::new(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
        Ok(Signals { fd })
    }

    /// Reads one pending signal number, if any.
    fn read(&self) -> io::Result<Option<i32>> {
        Ok(self.fd.read()?)
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What a signal asks of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    /// SIGHUP: read the manifests again.
    Rescan,
    /// SIGTERM, SIGINT: stop (the pods keep running).
    Stop,
}

/// The signals' event source in the agent: whether it was asked to stop.
#[derive(Debug, Default)]
pub(super) struct Stop {
    /// Set by the signal task on SIGTERM/SIGINT, checked between messages
    /// (the `Msg::Signal` may queue behind many others).
    flag: Rc<Cell<bool>>,
    /// The stop signal's `Msg::Signal` was handled.
    handled: bool,
}

impl Stop {
    /// Opens the signalfd and starts the task that sends a
    /// [`Msg::Signal`] for each signal (setting the flag first for a stop).
    pub(super) fn listen(&self, tx: Sender<Msg>) -> io::Result<()> {
        let sigs = Signals::new()?;
        let flag = self.flag.clone();
        reactor::spawn(async move {
            let Ok(sigs) = Async::new(sigs) else { return };
            loop {
                if sigs.readable().await.is_err() {
                    return;
                }
                while let Ok(Some(s)) = sigs.get_ref().read() {
                    if s != libc::SIGHUP {
                        flag.set(true);
                    }
                    let _ = tx.send(Msg::Signal(s)).await;
                }
            }
        })
        .detach();
        Ok(())
    }

    /// A signal's message: what it asks.
    pub(super) fn on_signal(&mut self, s: i32) -> Asked {
        if s == libc::SIGHUP {
            Asked::Rescan
        } else {
            self.handled = true;
            Asked::Stop
        }
    }

    /// A stop signal arrived (its message may still be queued).
    pub(super) fn flagged(&self) -> bool {
        self.flag.get()
    }

    /// A stop signal's message was handled.
    pub(super) fn handled(&self) -> bool {
        self.handled
    }

    /// Time to stop.
    pub(super) fn now(&self) -> bool {
        self.handled || self.flag.get()
    }
}

#[cfg(test)]
mod tests {
    use super::{Asked, Stop};

    #[test]
    fn sighup_asks_for_a_rescan_and_sigterm_or_sigint_for_a_stop() {
        let mut stop = Stop::default();
        assert_eq!(stop.on_signal(libc::SIGHUP), Asked::Rescan);
        assert!(!stop.now() && !stop.handled());
        // The signal task sets the flag before the message is handled.
        stop.flag.set(true);
        assert!(stop.flagged() && stop.now() && !stop.handled());
        assert_eq!(stop.on_signal(libc::SIGTERM), Asked::Stop);
        assert!(stop.handled());
        let mut stop = Stop::default();
        assert_eq!(stop.on_signal(libc::SIGINT), Asked::Stop);
        assert!(stop.now());
    }
}
