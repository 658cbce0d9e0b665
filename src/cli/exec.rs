//! `picolet exec`: a command in a container, as `kubectl exec`.
//!
//! The CLI makes one pipe for stdout, one for stderr and, with `-i`, one for
//! stdin, and sends the container's ends with the request (`SCM_RIGHTS`);
//! the agent passes them on to the pod's shim, which makes them the
//! command's 0, 1 and 2 (stdin is `/dev/null` without `-i`). The CLI's own
//! stdio never enters the container (a terminal fd there would allow
//! `TIOCSTI` input injection). The CLI then relays: its stdin → the stdin
//! pipe, the output pipes → its stdout and stderr, as the bytes come, until
//! both output pipes are closed and the agent has sent the exit code.
//!
//! When the CLI goes away (Ctrl-C, a closed pipe), its ends close: the
//! command reads EOF and its writes fail with `EPIPE` (`SIGPIPE`), as with
//! kubectl. Exit status: the command's own; `command terminated with exit
//! code N` on stderr when N is not 0; 127 for a command that does not
//! exist, 126 for one that cannot run (with the reason); 1 when the pod or
//! container does not exist or is not running.
//!
//! With `-it` on a terminal stdin (kubectl's rule: `-t` alone, or a stdin
//! that is not a terminal, runs without one; the latter says so), the CLI
//! passes one end of a socket pair instead, with its terminal's size: the
//! exec's child makes a pty of the container's devpts, sends the master
//! back on that socket (runc's console socket) and makes the slave the
//! command's 0, 1, 2 and controlling terminal. The CLI puts its own
//! terminal in raw mode (restored on every way out, signals included) and
//! relays its stdin → the master → its stdout; `SIGWINCH` resizes the
//! master. Neither the agent nor the shim is in the data path.

use super::parse_api;
use crate::api::{self, Request, Response};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: picolet exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]";

/// Bytes moved per read.
const CHUNK: usize = 64 << 10;

pub(super) fn exec(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(args, &["c", "container"], &["i", "stdin", "t", "tty"])?;
    let pod = a.free.first().ok_or(USAGE)?.clone();
    let argv: Vec<String> = a.free.iter().skip(1).cloned().collect();
    if argv.is_empty() {
        return Err(USAGE.into());
    }
    let stdin = a.has(&["i", "stdin"]);
    // kubectl's SetupTTY: -t counts only with -i, and on a terminal.
    let mut tty = None;
    if stdin && a.has(&["t", "tty"]) {
        // Not a terminal (or one without a size): no TTY, as kubectl.
        match crate::sys::tty::winsize(io::stdin()) {
            Ok(size) => tty = Some(size),
            Err(_) => {
                eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file")
            }
        }
    }
    let req = Request::Exec {
        namespace: common.namespace.clone(),
        name: pod,
        container: a.one(&["c", "container"]).map(str::to_string),
        argv,
        stdin,
        tty: tty.is_some(),
    };
    let outcome = if let Some(size) = tty {
        tty_session(&common.state_dir, &req, size)
    } else {
        pipes_session(&common.state_dir, &req, stdin)
    }?;
    let resp = match outcome {
        Outcome::Done(line) => api::parse_response(&line).map_err(|e| e.to_string())?,
        // Our stdout was closed (`| head`): stop, as a Unix tool does
        // on SIGPIPE; the command gets EPIPE on its next write.
        Outcome::BrokenPipe => return Ok(ExitCode::from(128 + libc::SIGPIPE as u8)),
        // SIGTERM, SIGHUP, ... while our terminal was raw: it is restored.
        Outcome::Signal(sig) => return Ok(ExitCode::from(128 + sig as u8)),
    };
    let Response::Exec { exit_code, error } = resp else {
        return Err("unexpected response".into());
    };
    let mut err = io::stderr().lock();
    if let Some(e) = error {
        let _ = writeln!(err, "{}", e.trim_end());
    }
    if exit_code != 0 {
        let _ = writeln!(err, "command terminated with exit code {exit_code}");
    }
    Ok(ExitCode::from(exit_code.clamp(0, 255) as u8))
}

/// Without a terminal: a pipe for each stream.
fn pipes_session(state_dir: &Path, req: &Request, stdin: bool) -> Result<Outcome, String> {
    let pipe = || crate::sys::fd::pipe().map_err(|e| e.to_string());
    // (container's end, ours) for each stream.
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let input = if stdin { Some(pipe()?) } else { None };
    let sock = {
        let mut theirs = Vec::new();
        if let Some((r, _)) = &input {
            theirs.push(r.as_fd());
        }
        theirs.push(out_w.as_fd());
        theirs.push(err_w.as_fd());
        api::send(state_dir, req, &theirs).map_err(|e| e.to_string())?
    };
    // Only the command holds the container's ends now.
    drop((out_w, err_w));
    let in_w = input.map(|(r, w)| {
        drop(r);
        w
    });
    Relay::new(sock, out_r, err_r, in_w)
        .and_then(Relay::run)
        .map_err(|e| format!("exec: {e}"))
}

enum Outcome {
    /// Output finished and the agent answered: its response line (empty
    /// when it hung up without one).
    Done(Vec<u8>),
    /// Writing our stdout failed with `EPIPE`.
    BrokenPipe,
    /// A terminating signal came during a terminal session.
    Signal(i32),
}

/// The relay between the command's pipes and the CLI's stdio.
struct Relay {
    answer: Answer,
    /// stdout and stderr pipes, closed (`None`) at end of file.
    out: [Option<File>; 2],
    /// The command's stdin pipe; `None` once closed.
    input: Option<File>,
    /// Read from our stdin, not yet written to the pipe.
    pending: Vec<u8>,
    stdin_eof: bool,
    buf: Vec<u8>,
}

impl Relay {
    fn new(
        sock: UnixStream,
        out_r: OwnedFd,
        err_r: OwnedFd,
        in_w: Option<OwnedFd>,
    ) -> io::Result<Relay> {
        sock.set_nonblocking(true)?;
        for fd in [Some(&out_r), Some(&err_r), in_w.as_ref()]
            .into_iter()
            .flatten()
        {
            crate::sys::fd::set_nonblocking(fd.as_fd())?;
        }
        Ok(Relay {
            answer: Answer::new(sock),
            out: [Some(File::from(out_r)), Some(File::from(err_r))],
            input: in_w.map(File::from),
            pending: Vec::new(),
            stdin_eof: false,
            buf: vec![0; CHUNK],
        })
    }

    fn done(&self) -> bool {
        self.answer.sock.is_none() && self.out.iter().all(Option::is_none)
    }

    fn run(mut self) -> io::Result<Outcome> {
        // Tokens: 0 stdout pipe, 1 stderr pipe, 2 socket, 3 our stdin,
        // 4 the stdin pipe.
        let mut fds = Vec::with_capacity(5);
        let mut tokens = Vec::with_capacity(5);
        while !self.done() {
            fds.clear();
            tokens.clear();
            let mut add = |fd: i32, events: libc::c_short, token: u8| {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                tokens.push(token);
            };
            for (i, p) in self.out.iter().enumerate() {
                if let Some(p) = p {
                    add(p.as_raw_fd(), libc::POLLIN, i as u8);
                }
            }
            if let Some(s) = &self.answer.sock {
                add(s.as_raw_fd(), libc::POLLIN, 2);
            }
            if let Some(p) = &self.input {
                if self.pending.is_empty() && !self.stdin_eof {
                    add(0, libc::POLLIN, 3);
                }
                // POLLERR alone tells that the command closed its stdin.
                let events = if self.pending.is_empty() {
                    0
                } else {
                    libc::POLLOUT
                };
                add(p.as_raw_fd(), events, 4);
            }
            crate::sys::fd::poll(&mut fds, -1)?;
            for (p, &t) in fds.iter().zip(&tokens) {
                if p.revents == 0 {
                    continue;
                }
                match t {
                    0 | 1 => {
                        if self.pump_output(t as usize)? {
                            return Ok(Outcome::BrokenPipe);
                        }
                    }
                    2 => {
                        // An answer other than `Exec` (no such pod, an
                        // error) ends the relay: no command has our pipes.
                        if self.answer.read()? {
                            self.out = [None, None];
                            self.input = None;
                        }
                    }
                    3 => self.read_stdin(),
                    _ => self.write_stdin(p.revents),
                }
            }
        }
        Ok(Outcome::Done(self.answer.response))
    }

    /// Moves what pipe `i` holds to our stdout (0) or stderr (1); `true`
    /// when our stdout is a broken pipe.
    fn pump_output(&mut self, i: usize) -> io::Result<bool> {
        let Some(pipe) = &mut self.out[i] else {
            return Ok(false);
        };
        let n = match pipe.read(&mut self.buf) {
            Ok(0) => {
                self.out[i] = None;
                return Ok(false);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        };
        let chunk = &self.buf[..n];
        if i == 0 {
            let mut out = io::stdout().lock();
            match out.write_all(chunk).and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(true),
                Err(e) => return Err(e),
            }
        } else {
            // A closed stderr loses the command's stderr, nothing more.
            let _ = io::stderr().lock().write_all(chunk);
        }
        Ok(false)
    }

    fn read_stdin(&mut self) {
        let mut stdin = io::stdin().lock();
        self.pending.resize(CHUNK, 0);
        match stdin.read(&mut self.pending) {
            Ok(0) | Err(_) => {
                self.pending.clear();
                self.stdin_eof = true;
            }
            Ok(n) => self.pending.truncate(n),
        }
        if self.stdin_eof {
            // Nothing more to send: the command reads EOF.
            self.input = None;
        }
    }

    fn write_stdin(&mut self, revents: libc::c_short) {
        let Some(p) = &mut self.input else { return };
        if revents & libc::POLLOUT == 0 {
            // POLLERR: the command closed its stdin; drop what is left.
            self.input = None;
            self.pending.clear();
            self.stdin_eof = true;
            return;
        }
        match p.write(&self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                self.input = None;
                self.pending.clear();
                self.stdin_eof = true;
            }
        }
    }
}

/// The agent's answer on the API connection.
struct Answer {
    /// `None` once the answer came or the agent hung up.
    sock: Option<UnixStream>,
    lines: crate::jsonl::LineBuffer,
    /// The answer line (empty when the agent hung up without one).
    response: Vec<u8>,
}

impl Answer {
    fn new(sock: UnixStream) -> Answer {
        Answer {
            sock: Some(sock),
            lines: crate::jsonl::LineBuffer::default(),
            response: Vec::new(),
        }
    }

    /// Reads what the socket holds; `true` when the answer is complete and
    /// is not an `Exec` one (the command never ran).
    fn read(&mut self) -> io::Result<bool> {
        let Some(s) = &mut self.sock else {
            return Ok(false);
        };
        loop {
            match self.lines.read_from(s) {
                // Hung up: without a line, `parse_response` says so.
                Ok(0) => break,
                Ok(_) => {
                    if let Some(line) = self.lines.next_line() {
                        self.response = line;
                        break;
                    }
                    if self.lines.pending() > 1 << 20 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the agent's response is over 1 MiB",
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.sock = None;
        let exec = serde_json::from_slice::<Response>(&self.response)
            .is_ok_and(|r| matches!(r, Response::Exec { .. }));
        Ok(!exec)
    }
}

/// How long the pty's last output may take to arrive once the command's
/// exit is known (a background process holding the terminal does not keep
/// the session open, as with kubectl).
const TTY_DRAIN_MS: libc::c_int = 200;

/// With a terminal: our stdin is one; the command's side makes a pty and
/// sends us its master on the console socket.
fn tty_session(state_dir: &Path, req: &Request, size: (u16, u16)) -> Result<Outcome, String> {
    use crate::sys::{signal::SignalFd, tty};
    let sys = |e: crate::sys::Error| format!("exec: {e}");
    let io_err = |e: io::Error| format!("exec: console socket: {e}");
    let (mut console, theirs) = UnixStream::pair().map_err(io_err)?;
    // The pty's first size waits on the socket for the command's side.
    let [r0, r1] = size.0.to_le_bytes();
    let [c0, c1] = size.1.to_le_bytes();
    console.write_all(&[r0, r1, c0, c1]).map_err(io_err)?;
    let sock = api::send(state_dir, req, &[theirs.as_fd()]).map_err(|e| e.to_string())?;
    drop(theirs);
    // The master, once the pty is made; end of file (or a reset, when the
    // size was left unread) when the command cannot run: the agent's
    // answer says why.
    let mut fds = Vec::new();
    let _ = crate::sys::net::recv_with_fds(console.as_fd(), &mut [0], &mut fds);
    drop(console);
    let master = fds.pop().map(File::from);
    // From here on, terminating signals are read from this fd (so that raw
    // mode is undone first); SIGWINCH resizes.
    let signals = SignalFd::new(&[
        libc::SIGWINCH,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
    ])
    .map_err(sys)?;
    let _raw = match master {
        Some(_) => Some(tty::RawStdin::new().map_err(sys)?),
        None => None,
    };
    tty_relay(sock, master, &signals).map_err(|e| format!("exec: {e}"))
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Relays our stdin → the pty master → our stdout until the command has
/// exited and its output is drained.
fn tty_relay(
    sock: UnixStream,
    master: Option<File>,
    signals: &crate::sys::signal::SignalFd,
) -> io::Result<Outcome> {
    sock.set_nonblocking(true)?;
    let master_open = master.is_some();
    // A placeholder (never polled) when the command never ran.
    let mut master = match master {
        Some(m) => m,
        None => File::from(crate::sys::fd::pipe()?.0),
    };
    crate::sys::fd::set_nonblocking(master.as_fd())?;
    let mut answer = Answer::new(sock);
    let mut drain_until = None;
    let mut buf = vec![0; CHUNK];
    // Read from our stdin, not yet written to the master.
    let mut pending: Vec<u8> = Vec::new();
    let (mut master_open, mut stdin_open) = (master_open, true);
    loop {
        let waiting = answer.sock.is_some();
        if !waiting {
            let until = *drain_until.get_or_insert_with(|| {
                std::time::Instant::now() + std::time::Duration::from_millis(TTY_DRAIN_MS as u64)
            });
            if !master_open || std::time::Instant::now() >= until {
                break;
            }
        }
        let mut fds = [
            pollfd(signals.as_raw_fd(), libc::POLLIN),
            pollfd(
                answer.sock.as_ref().map_or(-1, |s| s.as_raw_fd()),
                libc::POLLIN,
            ),
            pollfd(
                if master_open { master.as_raw_fd() } else { -1 },
                if pending.is_empty() {
                    libc::POLLIN
                } else {
                    libc::POLLIN | libc::POLLOUT
                },
            ),
            pollfd(
                if master_open && stdin_open && pending.is_empty() {
                    0
                } else {
                    -1
                },
                libc::POLLIN,
            ),
        ];
        let timeout = if waiting { -1 } else { TTY_DRAIN_MS };
        if crate::sys::fd::poll(&mut fds, timeout)? == 0 {
            break;
        }
        if fds[0].revents != 0 {
            for sig in signals.read_all() {
                if sig == libc::SIGWINCH as u32 {
                    if let Ok(size) = crate::sys::tty::winsize(io::stdin()) {
                        let _ = crate::sys::tty::set_winsize(master.as_fd(), size);
                    }
                } else {
                    return Ok(Outcome::Signal(sig as i32));
                }
            }
        }
        if fds[1].revents != 0 && answer.read()? {
            break;
        }
        if fds[2].revents & libc::POLLOUT != 0 {
            match master.write(&pending) {
                Ok(n) => drop(pending.drain(..n)),
                Err(e) if retry(&e) => {}
                Err(_) => pending.clear(),
            }
        }
        if fds[2].revents & !libc::POLLOUT != 0 {
            match master.read(&mut buf) {
                Err(e) if retry(&e) => {}
                // EIO: every slave fd is closed (the command is gone).
                Ok(0) | Err(_) => master_open = false,
                Ok(n) => {
                    let mut out = io::stdout().lock();
                    match out.write_all(&buf[..n]).and_then(|()| out.flush()) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                            return Ok(Outcome::BrokenPipe);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if fds[3].revents != 0 {
            pending.resize(CHUNK, 0);
            match io::stdin().lock().read(&mut pending) {
                Ok(n) if n > 0 => pending.truncate(n),
                // Our terminal went away.
                _ => {
                    pending.clear();
                    stdin_open = false;
                }
            }
        }
    }
    Ok(Outcome::Done(answer.response))
}
