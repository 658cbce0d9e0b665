//! The shim's children: container instances and exec sessions.
//!
//! Each container holds the read ends of its stdout and stderr pipes
//! (non-blocking) and its [`CriLog`]; each exec session holds the read end
//! of its combined output pipe. When a child is reaped its pipes are drained
//! of what is already written, then closed, so the log (or the exec output)
//! is complete before the exit is reported.

use super::proto::{ContainerConfig, ContainerReport, Event, Exit};
use super::sys;
use crate::runtime::log::{CriLog, Stream};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Most exec output kept (combined stdout + stderr); the rest is read and dropped.
pub const EXEC_OUTPUT_MAX: usize = 1 << 20;
/// Reads per pipe per poll wakeup, so one chatty container cannot starve the loop.
pub const READS_PER_WAKEUP: usize = 4;
/// Reads when draining a pipe after its process exited (16 MiB with a 16 KiB buffer).
pub const READS_TO_DRAIN: usize = 1024;

/// Reads up to `max_reads` chunks from `pipe` into `sink`; closes the pipe
/// (sets it to `None`) at end of file or on error.
fn pump(pipe: &mut Option<File>, buf: &mut [u8], max_reads: usize, mut sink: impl FnMut(&[u8])) {
    let Some(file) = pipe.as_mut() else { return };
    for _ in 0..max_reads {
        match file.read(buf) {
            Ok(0) => {
                *pipe = None;
                return;
            }
            Ok(n) => sink(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                *pipe = None;
                return;
            }
        }
    }
}

/// The `oom_kill` counter of a cgroup's `memory.events`, if the file exists.
pub fn oom_kills(cgroup: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(cgroup.join("memory.events")).ok()?;
    parse_oom_kill(&text)
}

/// Finds `oom_kill N` in the text of a `memory.events` file.
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// One started container instance.
#[derive(Debug)]
pub struct Container {
    /// Unique within this shim, for poll tokens.
    pub key: u64,
    pub cfg: Box<ContainerConfig>,
    /// PID as the shim sees it (what `kill` and `waitpid` take).
    pub pid: libc::pid_t,
    /// PID as `/proc` numbers it (the host's view; reported to the agent).
    pub proc_pid: libc::pid_t,
    pub started_at_ns: i64,
    pub exit: Option<Exit>,
    /// `oom_kill` of the container cgroup before it started.
    oom_base: u64,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    log: CriLog,
    log_failed: bool,
}

impl Container {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: u64,
        cfg: Box<ContainerConfig>,
        pid: libc::pid_t,
        started_at_ns: i64,
        oom_base: u64,
        stdout: File,
        stderr: File,
        log: CriLog,
    ) -> Container {
        Container {
            key,
            cfg,
            pid,
            proc_pid: sys::proc_pid(pid),
            started_at_ns,
            exit: None,
            oom_base,
            stdout: Some(stdout),
            stderr: Some(stderr),
            log,
            log_failed: false,
        }
    }

    pub fn running(&self) -> bool {
        self.exit.is_none()
    }

    pub fn report(&self) -> ContainerReport {
        ContainerReport {
            name: self.cfg.name.clone(),
            instance: self.cfg.instance,
            pid: self.proc_pid,
            started_at_ns: self.started_at_ns,
            exit: self.exit.clone(),
        }
    }

    pub fn pipe(&self, stream: Stream) -> Option<&File> {
        match stream {
            Stream::Stdout => self.stdout.as_ref(),
            Stream::Stderr => self.stderr.as_ref(),
        }
    }

    /// Moves output of `stream` into the log; at end of file, writes the
    /// unfinished last line.
    pub fn pump(&mut self, stream: Stream, buf: &mut [u8], max_reads: usize) {
        let now = crate::clock::wall_ns();
        let pipe = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let (log, failed) = (&mut self.log, &mut self.log_failed);
        let was_open = pipe.is_some();
        let mut result = Ok(());
        pump(pipe, buf, max_reads, |chunk| {
            if result.is_ok() {
                result = log.write(stream, chunk, now);
            }
        });
        if was_open && pipe.is_none() && result.is_ok() {
            result = log.finish(stream, now);
        }
        if let Err(e) = result {
            if !*failed {
                eprintln!("picolet shim: container {}: {e}", self.cfg.name);
                *failed = true;
            }
        }
    }

    /// The container's process was reaped with `status`: drains and closes
    /// its pipes and records the exit.
    pub fn reaped(&mut self, status: libc::c_int, buf: &mut [u8]) -> Exit {
        let finished_at_ns = crate::clock::wall_ns();
        for stream in [Stream::Stdout, Stream::Stderr] {
            self.pump(stream, buf, READS_TO_DRAIN);
            if self.pipe(stream).is_some() {
                // A process outside the container still holds the pipe:
                // stop at what was written until now.
                let _ = self.log.finish(stream, finished_at_ns);
            }
        }
        self.stdout = None;
        self.stderr = None;
        let (exit_code, signal) = sys::exit_of(status);
        let oom_killed = match &self.cfg.cgroup {
            Some(cg) => oom_kills(cg).is_some_and(|n| n > self.oom_base),
            None => false,
        };
        let exit = Exit {
            exit_code,
            signal,
            oom_killed,
            finished_at_ns,
        };
        self.exit = Some(exit.clone());
        exit
    }
}

/// One `Exec` request being served.
#[derive(Debug)]
pub struct ExecRun {
    /// Unique within this shim, for poll tokens.
    pub key: u64,
    /// The agent's id, echoed in `ExecDone`.
    pub id: u64,
    pub pid: libc::pid_t,
    pub out: Option<File>,
    output: Vec<u8>,
    /// `CLOCK_BOOTTIME` ms after which the command is killed.
    pub deadline_ms: Option<u64>,
    pub timed_out: bool,
}

impl ExecRun {
    /// `out`: the captured output's pipe, `None` when the command's stdio
    /// were passed in (see [`super::proto::ExecStdio`]).
    pub fn new(
        key: u64,
        id: u64,
        pid: libc::pid_t,
        out: Option<File>,
        deadline_ms: Option<u64>,
    ) -> Self {
        ExecRun {
            key,
            id,
            pid,
            out,
            output: Vec::new(),
            deadline_ms,
            timed_out: false,
        }
    }

    pub fn pump(&mut self, buf: &mut [u8], max_reads: usize) {
        let output = &mut self.output;
        pump(&mut self.out, buf, max_reads, |chunk| {
            let room = EXEC_OUTPUT_MAX - output.len();
            output.extend_from_slice(&chunk[..chunk.len().min(room)]);
        });
    }

    /// The command was reaped with `status`: drains its output and builds the reply.
    pub fn finish(mut self, status: libc::c_int, buf: &mut [u8]) -> Event {
        self.pump(buf, READS_TO_DRAIN);
        let (exit_code, _) = sys::exit_of(status);
        Event::ExecDone {
            id: self.id,
            exit_code,
            timed_out: self.timed_out,
            output: String::from_utf8(self.output)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            not_started: false,
        }
    }
}
