//! SIGTERM, SIGINT and SIGHUP through a signalfd on the reactor.
//!
//! The signals are blocked on the agent's one thread (so there is no async
//! signal handler at all) and read as data. Children started with
//! `std::process::Command` get an empty signal mask from std.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use crate::sys::signal::SignalFd;

/// A signalfd for the agent's signals.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks SIGTERM, SIGINT and SIGHUP and opens a signalfd for them.
    pub fn new() -> io::Result<Signals> {
        let fd = SignalFd::new(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
        Ok(Signals { fd })
    }

    /// Reads one pending signal number, if any.
    pub fn read(&self) -> io::Result<Option<i32>> {
        Ok(self.fd.read()?)
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
