//! `picolet exec`: a command in a container, as `kubectl exec` without a
//! terminal.
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

use super::parse_api;
use crate::api::{self, Request, Response};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

/// `picolet exec --help`.
pub const HELP: &str =
    "Run a command in a running container (as `kubectl exec`, without a terminal).

Usage:
  picolet exec POD [-c CONTAINER] [-i] [-n NAMESPACE] [--state-dir DIR] -- COMMAND [ARG...]

The command's stdout and stderr stream to picolet's stdout and stderr as it
writes them, without a size limit. Its stdin is empty unless -i is given.
picolet exits with the command's exit code, and prints \"command terminated
with exit code N\" on stderr when it is not 0 (127: no such command, 126: the
command cannot run). A pod or container that does not exist is an error
(exit 1).

Options:
  -c, --container NAME   the container (default: the pod's first container)
  -i, --stdin            pass picolet's stdin to the command
  -t, --tty              refused: a terminal (pty) is not supported yet
  -n, --namespace NS     the pod's namespace (default: default)
      --state-dir DIR    the agent's state directory

Examples:
  picolet exec web -- cat /etc/os-release
  echo hi | picolet exec -i web -c app -- cat
  picolet exec web -- sh -c 'tar cf - /data' > data.tar
";

const USAGE: &str = "usage: picolet exec POD [-c CONTAINER] [-i] -- COMMAND [ARG...]";

/// Bytes moved per read.
const CHUNK: usize = 64 << 10;

pub(super) fn exec(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(args, &["c", "container"], &["i", "stdin", "t", "tty"])?;
    if a.has(&["t", "tty"]) {
        return Err(
            "-t/--tty is not supported yet: picolet exec runs commands without a terminal \
             (use -i to pass stdin)"
                .into(),
        );
    }
    let pod = a.free.first().ok_or(USAGE)?.clone();
    let argv: Vec<String> = a.free.iter().skip(1).cloned().collect();
    if argv.is_empty() {
        return Err(USAGE.into());
    }
    let stdin = a.has(&["i", "stdin"]);
    let req = Request::Exec {
        namespace: common.namespace.clone(),
        name: pod,
        container: a.one(&["c", "container"]).map(str::to_string),
        argv,
        stdin,
    };
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
        api::send(&common.state_dir, &req, &theirs).map_err(|e| e.to_string())?
    };
    // Only the command holds the container's ends now.
    drop((out_w, err_w));
    let in_w = input.map(|(r, w)| {
        drop(r);
        w
    });
    let outcome = Relay::new(sock, out_r, err_r, in_w)
        .and_then(Relay::run)
        .map_err(|e| format!("exec: {e}"))?;
    let resp = match outcome {
        Outcome::Done(line) => api::parse_response(&line).map_err(|e| e.to_string())?,
        // Our stdout was closed (`| head`): stop, as a Unix tool does
        // on SIGPIPE; the command gets EPIPE on its next write.
        Outcome::BrokenPipe => return Ok(ExitCode::from(128 + libc::SIGPIPE as u8)),
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

enum Outcome {
    /// Output finished and the agent answered: its response line (empty
    /// when it hung up without one).
    Done(Vec<u8>),
    /// Writing our stdout failed with `EPIPE`.
    BrokenPipe,
}

/// The relay between the command's pipes and the CLI's stdio.
struct Relay {
    sock: Option<UnixStream>,
    /// The agent's answer, once a whole line came.
    response: Vec<u8>,
    lines: crate::jsonl::LineBuffer,
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
            sock: Some(sock),
            response: Vec::new(),
            lines: crate::jsonl::LineBuffer::default(),
            out: [Some(File::from(out_r)), Some(File::from(err_r))],
            input: in_w.map(File::from),
            pending: Vec::new(),
            stdin_eof: false,
            buf: vec![0; CHUNK],
        })
    }

    fn done(&self) -> bool {
        self.sock.is_none() && self.out.iter().all(Option::is_none)
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
            if let Some(s) = &self.sock {
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
                        self.read_response()?;
                        self.stop_if_refused();
                    }
                    3 => self.read_stdin(),
                    _ => self.write_stdin(p.revents),
                }
            }
        }
        Ok(Outcome::Done(std::mem::take(&mut self.response)))
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

    fn read_response(&mut self) -> io::Result<()> {
        let Some(s) = &mut self.sock else {
            return Ok(());
        };
        loop {
            match self.lines.read_from(s) {
                // Hung up: without a line, `parse_response` says so.
                Ok(0) => {
                    self.sock = None;
                    return Ok(());
                }
                Ok(_) => {
                    if let Some(line) = self.lines.next_line() {
                        self.response = line;
                        self.sock = None;
                        return Ok(());
                    }
                    if self.lines.pending() > 1 << 20 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the agent's response is over 1 MiB",
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// An answer other than `Exec` (no such pod, an error) ends the relay:
    /// no command runs with our pipes.
    fn stop_if_refused(&mut self) {
        if self.sock.is_some() {
            return;
        }
        let exec = serde_json::from_slice::<Response>(&self.response)
            .is_ok_and(|r| matches!(r, Response::Exec { .. }));
        if !exec {
            self.out = [None, None];
            self.input = None;
        }
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
