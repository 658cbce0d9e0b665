//! The one agent connection: JSON lines in, JSON lines out, never blocking.
//!
//! Reads are buffered until a `\n`; writes go to an output buffer that the
//! poll loop flushes when the socket is writable. A peer that sends a line
//! longer than [`MAX_LINE`] or stops reading while [`MAX_BACKLOG`] bytes are
//! queued is dropped: it will get a fresh `Hello` + `Report` when it
//! reconnects, so nothing that matters is lost.
//!
//! fds passed with `SCM_RIGHTS` (an `Exec`'s stdio, see
//! [`super::proto::ExecStdio`]) are queued in arrival order, at most
//! [`MAX_PENDING_FDS`]; each `Exec` line takes its own from the front of
//! the queue when it is parsed. They arrive with the first bytes of their
//! line, so never after it. Those left when the connection drops are closed.

use super::proto::{Event, Request};
use super::sys;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Longest request line accepted (a `Start` with a large environment).
pub const MAX_LINE: usize = 4 << 20;
/// Most output queued for a peer that does not read.
pub const MAX_BACKLOG: usize = 8 << 20;
/// Most passed fds held before their `Exec` lines are complete.
pub const MAX_PENDING_FDS: usize = 64;

/// One connected agent.
#[derive(Debug)]
pub struct Conn {
    stream: UnixStream,
    input: crate::jsonl::LineBuffer,
    output: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

/// What reading the socket produced.
#[derive(Debug, Default)]
pub struct Incoming {
    /// Each request with the fds it takes (an `Exec`'s passed stdio; fewer
    /// than it asks for if they did not arrive).
    pub requests: Vec<(Request, Vec<OwnedFd>)>,
    /// The peer hung up or broke the protocol: drop the connection.
    pub closed: bool,
}

impl Conn {
    pub fn new(stream: UnixStream) -> io::Result<Conn> {
        stream.set_nonblocking(true)?;
        Ok(Conn {
            stream,
            input: crate::jsonl::LineBuffer::default(),
            output: Vec::new(),
            fds: VecDeque::new(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Output is waiting for the socket to become writable.
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    /// Queues one event and tries to send it right away. `Err` means the
    /// connection is unusable and should be dropped.
    pub fn send(&mut self, event: &Event) -> io::Result<()> {
        crate::jsonl::encode_into(&mut self.output, event).map_err(io::Error::from)?;
        #[cfg(test)]
        crate::testutil::fuzz_seed("shim_wire", &serde_json::to_vec(event).unwrap_or_default());
        self.flush()?;
        if self.output.len() > MAX_BACKLOG {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "agent does not read its events",
            ));
        }
        Ok(())
    }

    /// Sends as much queued output as the socket takes without blocking.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut sent = 0;
        while sent < self.output.len() {
            match sys::send_nosignal(self.stream.as_fd(), &self.output[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.output.drain(..sent);
        if self.output.is_empty() && self.output.capacity() > 64 << 10 {
            // A large event (an exec output) went out: give the memory back.
            self.output = Vec::new();
            sys::trim_heap();
        }
        Ok(())
    }

    /// Reads what the socket holds and parses every complete line. Lines
    /// that are not a valid [`Request`] are reported on stderr and skipped.
    pub fn read(&mut self) -> Incoming {
        let mut incoming = Incoming::default();
        let mut buf = [0u8; 4096];
        let mut fds = Vec::new();
        loop {
            let got = sys::recv_with_fds(self.stream.as_fd(), &mut buf, &mut fds);
            self.fds.extend(fds.drain(..));
            match got {
                Ok(0) => {
                    incoming.closed = true;
                    break;
                }
                Ok(n) => self.input.extend(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    incoming.closed = true;
                    break;
                }
            }
        }
        while let Some(line) = self.input.next_line() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            #[cfg(test)]
            crate::testutil::fuzz_seed("shim_wire", &line);
            match serde_json::from_slice::<Request>(&line) {
                Ok(r) => {
                    let n = match &r {
                        Request::Exec { stdio, .. } => stdio.fds(),
                        _ => 0,
                    };
                    let n = n.min(self.fds.len());
                    let taken = self.fds.drain(..n).collect();
                    incoming.requests.push((r, taken));
                }
                Err(e) => eprintln!("picolet shim: ignoring malformed request: {e}"),
            }
        }
        if self.fds.len() > MAX_PENDING_FDS {
            eprintln!(
                "picolet shim: over {MAX_PENDING_FDS} passed fds pending, dropping the agent"
            );
            incoming.closed = true;
        }
        if self.input.pending() > MAX_LINE {
            eprintln!("picolet shim: request line over {MAX_LINE} bytes, dropping the agent");
            incoming.closed = true;
        }
        self.input.shrink_if_empty(64 << 10);
        incoming
    }
}
