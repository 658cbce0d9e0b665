//! The shim's `poll(2)` loop and request handling.
//!
//! Polled fds: the listening socket, the signalfd (`SIGCHLD`, and `SIGTERM`,
//! `SIGINT`, `SIGHUP`, which are read and ignored: only `Shutdown` ends the
//! shim), the agent connection (at most one; a new one replaces it), and the
//! read ends of every container's stdout/stderr pipes and every exec's
//! output pipe. The only timer is the nearest exec deadline.
//!
//! Each wakeup handles pipes first, then reaps children, then reads the
//! agent's requests, then accepts a new connection, so output is logged
//! before the exit that ends it is reported.

use super::children::{Container, ExecRun, READS_PER_WAKEUP};
use super::conn::Conn;
use super::proto::{ContainerConfig, Event, ExecStdio, PodConfig, Request};
use super::sys;
use crate::runtime::container::{self, Stdio};
use crate::runtime::log::{CriLog, Stream};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// Kubernetes' reason for a container whose setup failed.
pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
/// `ExecDone::exit_code` when the command could not be started at all
/// for a reason outside it (no such running container, a pipe failed).
pub const EXEC_NOT_STARTED: i32 = -1;
/// `ExecDone::exit_code` for a command that does not exist (as a shell,
/// runc and `kubectl exec` report it).
pub const EXEC_NOT_FOUND: i32 = 127;
/// `ExecDone::exit_code` for a command that exists but cannot be run (not
/// executable, a directory, a bad binary) or whose process setup failed.
pub const EXEC_CANNOT_RUN: i32 = 126;

/// The exit code of an exec whose process could not run the command.
pub fn exec_failure_code(e: &container::ContainerError) -> i32 {
    use container::ContainerError as E;
    match e {
        E::NotFound { .. } => EXEC_NOT_FOUND,
        E::Exec { errno, .. } if *errno == libc::ENOENT => EXEC_NOT_FOUND,
        _ => EXEC_CANNOT_RUN,
    }
}
/// Size of the buffer pipes are read into.
const READ_BUF: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
enum Token {
    Listener,
    Signals,
    Conn,
    Pipe(u64, Stream),
    Exec(u64),
}

/// Everything the running shim holds.
#[derive(Debug)]
pub struct Server {
    pod: PodConfig,
    socket_path: PathBuf,
    listener: UnixListener,
    signals: sys::SignalFd,
    hello: Event,
    conn: Option<Conn>,
    containers: Vec<Container>,
    execs: Vec<ExecRun>,
    next_key: u64,
    buf: Vec<u8>,
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

impl Server {
    pub fn new(
        pod: PodConfig,
        socket_path: PathBuf,
        listener: UnixListener,
        signals: sys::SignalFd,
        hello: Event,
    ) -> Server {
        Server {
            pod,
            socket_path,
            listener,
            signals,
            hello,
            conn: None,
            containers: Vec::new(),
            execs: Vec::new(),
            next_key: 0,
            buf: vec![0; READ_BUF],
        }
    }

    /// Serves until `Shutdown`; returns the process exit code.
    pub fn run(mut self) -> i32 {
        let mut fds = Vec::new();
        let mut tokens = Vec::new();
        loop {
            self.enforce_deadlines();
            fds.clear();
            tokens.clear();
            fds.push(pollfd(self.listener.as_raw_fd(), libc::POLLIN));
            tokens.push(Token::Listener);
            fds.push(pollfd(self.signals.as_raw_fd(), libc::POLLIN));
            tokens.push(Token::Signals);
            if let Some(c) = &self.conn {
                let out = if c.wants_write() { libc::POLLOUT } else { 0 };
                fds.push(pollfd(c.fd(), libc::POLLIN | out));
                tokens.push(Token::Conn);
            }
            for c in &self.containers {
                for s in [Stream::Stdout, Stream::Stderr] {
                    if let Some(p) = c.pipe(s) {
                        fds.push(pollfd(p.as_raw_fd(), libc::POLLIN));
                        tokens.push(Token::Pipe(c.key, s));
                    }
                }
            }
            for e in &self.execs {
                if let Some(p) = &e.out {
                    fds.push(pollfd(p.as_raw_fd(), libc::POLLIN));
                    tokens.push(Token::Exec(e.key));
                }
            }
            if let Err(e) = sys::poll(&mut fds, self.poll_timeout()) {
                eprintln!("picolet shim: poll: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            let (mut signals, mut conn, mut listener) = (false, 0, false);
            for (p, t) in fds.iter().zip(&tokens) {
                if p.revents == 0 {
                    continue;
                }
                match *t {
                    Token::Pipe(key, s) => self.pump_container(key, s),
                    Token::Exec(key) => self.pump_exec(key),
                    Token::Signals => signals = true,
                    Token::Conn => conn = p.revents,
                    Token::Listener => listener = true,
                }
            }
            if signals {
                for sig in sys::read_signals(&mut self.signals) {
                    if sig != libc::SIGCHLD as u32 {
                        eprintln!("picolet shim: ignoring signal {sig}");
                    }
                }
                self.reap();
            }
            if conn != 0 && self.on_conn(conn) {
                return self.shutdown();
            }
            if listener {
                self.accept();
            }
        }
    }

    fn poll_timeout(&self) -> libc::c_int {
        let now = crate::clock::boottime_ms();
        self.execs
            .iter()
            .filter(|e| !e.timed_out)
            .filter_map(|e| e.deadline_ms)
            .map(|d| d.saturating_sub(now).min(i32::MAX as u64) as libc::c_int)
            .min()
            .unwrap_or(-1)
    }

    fn enforce_deadlines(&mut self) {
        let now = crate::clock::boottime_ms();
        for e in &mut self.execs {
            if !e.timed_out && e.deadline_ms.is_some_and(|d| d <= now) {
                e.timed_out = true;
                if let Err(err) = sys::kill(e.pid, libc::SIGKILL) {
                    eprintln!("picolet shim: kill exec {}: {err}", e.id);
                }
            }
        }
    }

    fn pump_container(&mut self, key: u64, stream: Stream) {
        if let Some(c) = self.containers.iter_mut().find(|c| c.key == key) {
            c.pump(stream, &mut self.buf, READS_PER_WAKEUP);
        }
    }

    fn pump_exec(&mut self, key: u64) {
        if let Some(e) = self.execs.iter_mut().find(|e| e.key == key) {
            e.pump(&mut self.buf, READS_PER_WAKEUP);
        }
    }

    /// Reaps every child that has exited.
    fn reap(&mut self) {
        while let Some((pid, status)) = sys::try_wait(-1) {
            self.reaped(pid, status);
        }
    }

    fn reaped(&mut self, pid: libc::pid_t, status: libc::c_int) {
        if let Some(c) = self
            .containers
            .iter_mut()
            .find(|c| c.pid == pid && c.running())
        {
            let exit = c.reaped(status, &mut self.buf);
            let event = Event::Exited {
                name: c.cfg.name.clone(),
                instance: c.cfg.instance,
                started_at_ns: c.started_at_ns,
                exit,
            };
            self.send(&event);
        } else if let Some(i) = self.execs.iter().position(|e| e.pid == pid) {
            let event = self.execs.swap_remove(i).finish(status, &mut self.buf);
            self.send(&event);
            drop(event);
            // Up to 1 MiB of output was just freed: keep the shim small.
            sys::trim_heap();
        }
        // Anything else is an orphan the shim inherited as PID 1 or
        // subreaper: reaping it is all there is to do.
    }

    /// Sends to the agent if one is connected; drops a broken connection.
    fn send(&mut self, event: &Event) {
        if let Some(c) = &mut self.conn {
            if let Err(e) = c.send(event) {
                eprintln!("picolet shim: agent connection lost: {e}");
                self.conn = None;
            }
        }
    }

    fn report(&self) -> Event {
        Event::Report {
            containers: self.containers.iter().map(Container::report).collect(),
        }
    }

    fn accept(&mut self) {
        let stream = match self.listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    eprintln!("picolet shim: accept: {e}");
                }
                return;
            }
        };
        match Conn::new(stream) {
            Ok(c) => self.conn = Some(c),
            Err(e) => {
                eprintln!("picolet shim: new connection: {e}");
                return;
            }
        }
        let hello = self.hello.clone();
        self.send(&hello);
        let report = self.report();
        self.send(&report);
    }

    /// Handles readiness of the agent connection; `true` on `Shutdown`.
    fn on_conn(&mut self, revents: libc::c_short) -> bool {
        let Some(conn) = &mut self.conn else {
            return false;
        };
        if revents & libc::POLLOUT != 0 && conn.flush().is_err() {
            self.conn = None;
            return false;
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return false;
        }
        let incoming = conn.read();
        for (request, fds) in incoming.requests {
            if self.handle(request, fds) {
                return true;
            }
        }
        if incoming.closed {
            self.conn = None;
        }
        false
    }

    /// Handles one request (with the fds that came for it); `true` on
    /// `Shutdown`.
    fn handle(&mut self, request: Request, fds: Vec<OwnedFd>) -> bool {
        match request {
            Request::Start(cfg) => {
                let event = self.start(cfg);
                self.send(&event);
                // A SIGCHLD taken while the container was spawned with
                // signals unblocked never reaches the signalfd; the exit
                // comes after `Started`.
                self.reap();
            }
            Request::Signal {
                name,
                instance,
                signal,
            } => {
                let target = self
                    .containers
                    .iter()
                    .find(|c| c.cfg.name == name && c.cfg.instance == instance && c.running());
                match target {
                    Some(c) => {
                        // A graceful stop uses the container's stop signal.
                        let signal = match (signal, c.cfg.stop_signal) {
                            (libc::SIGTERM, Some(s)) => s,
                            _ => signal,
                        };
                        if let Err(e) = sys::kill(c.pid, signal) {
                            eprintln!("picolet shim: kill {name}/{instance} with {signal}: {e}");
                        }
                    }
                    None => eprintln!("picolet shim: signal for {name}/{instance}, not running"),
                }
            }
            Request::Ack { name, instance } => self
                .containers
                .retain(|c| c.running() || c.cfg.name != name || c.cfg.instance != instance),
            Request::Exec {
                id,
                name,
                argv,
                timeout_ms,
                stdio,
            } => {
                let run = self.exec(id, &name, &argv, timeout_ms, stdio, fds);
                if let Err((exit_code, message)) = run {
                    let event = Event::ExecDone {
                        id,
                        exit_code,
                        timed_out: false,
                        output: message,
                        not_started: true,
                    };
                    self.send(&event);
                }
                // As for `Start`.
                self.reap();
            }
            Request::Report => {
                let event = self.report();
                self.send(&event);
            }
            Request::Shutdown => return true,
        }
        false
    }

    fn start(&mut self, cfg: Box<ContainerConfig>) -> Event {
        let clash = self
            .containers
            .iter()
            .find(|c| c.cfg.name == cfg.name && (c.running() || c.cfg.instance == cfg.instance));
        let result = match clash {
            Some(c) => Err((
                CREATE_CONTAINER_ERROR,
                format!(
                    "container {} instance {} is already {}",
                    c.cfg.name,
                    c.cfg.instance,
                    if c.running() { "running" } else { "known" }
                ),
            )),
            None => self.launch(&cfg),
        };
        match result {
            Ok((pid, stdout, stderr, log, oom_base)) => {
                let key = self.next_key;
                self.next_key += 1;
                let started_at_ns = crate::clock::wall_ns();
                let c = Container::new(key, cfg, pid, started_at_ns, oom_base, stdout, stderr, log);
                let event = Event::Started {
                    name: c.cfg.name.clone(),
                    instance: c.cfg.instance,
                    pid: c.proc_pid,
                    started_at_ns,
                };
                self.containers.push(c);
                event
            }
            Err((reason, message)) => Event::StartFailed {
                name: cfg.name.clone(),
                instance: cfg.instance,
                reason: reason.to_string(),
                message,
            },
        }
    }

    /// Opens the log and pipes and spawns the container.
    #[allow(clippy::type_complexity)]
    fn launch(
        &mut self,
        cfg: &ContainerConfig,
    ) -> Result<(libc::pid_t, File, File, CriLog, u64), (&'static str, String)> {
        let create_err = |what: &str, e: &dyn std::fmt::Display| {
            (CREATE_CONTAINER_ERROR, format!("{what}: {e}"))
        };
        let log = CriLog::create(&cfg.log_path, cfg.log_max_bytes, cfg.log_max_files)
            .map_err(|e| create_err("log", &e))?;
        let (out_r, out_w) = sys::pipe().map_err(|e| create_err("pipe", &e))?;
        let (err_r, err_w) = sys::pipe().map_err(|e| create_err("pipe", &e))?;
        let stdin = dev_null().map_err(|e| create_err("/dev/null", &e))?;
        sys::set_nonblocking(out_r.as_fd()).map_err(|e| create_err("pipe", &e))?;
        sys::set_nonblocking(err_r.as_fd()).map_err(|e| create_err("pipe", &e))?;
        let oom_base = cfg
            .cgroup
            .as_deref()
            .and_then(super::children::oom_kills)
            .unwrap_or(0);
        let stdio = Stdio {
            stdin,
            stdout: out_w,
            stderr: err_w,
            console: None,
        };
        let spawned = {
            let _unblocked = sys::SignalsUnblocked::new().map_err(|e| create_err("sigmask", &e))?;
            container::spawn(&self.pod, cfg, stdio)
        };
        let pid = spawned.map_err(|e| (e.reason(), e.to_string()))?;
        Ok((pid, File::from(out_r), File::from(err_r), log, oom_base))
    }

    /// Starts an exec session; `Err` is the exit code and message for a
    /// failed `ExecDone` (see [`exec_failure_code`]). With passed stdio
    /// (`fds`), the shim keeps no copy of them once the command runs: its
    /// output never goes through the shim, and when the other ends close
    /// (the CLI went away) the command sees EOF and EPIPE.
    fn exec(
        &mut self,
        id: u64,
        name: &str,
        argv: &[String],
        timeout_ms: u64,
        mode: ExecStdio,
        fds: Vec<OwnedFd>,
    ) -> Result<(), (i32, String)> {
        let not_started = |m: String| (EXEC_NOT_STARTED, m);
        let Some(c) = self
            .containers
            .iter()
            .rev()
            .find(|c| c.cfg.name == name && c.running())
        else {
            return Err(not_started(format!("container {name} is not running")));
        };
        if fds.len() != mode.fds() {
            return Err(not_started(format!(
                "the exec's stdio did not come with the request ({} of {} fds)",
                fds.len(),
                mode.fds()
            )));
        }
        let null = || dev_null().map_err(|e| not_started(format!("/dev/null: {e}")));
        let mut fds = fds.into_iter();
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| not_started(format!("dup: {e}")));
        let (stdio, out_r) = match (mode, fds.next(), fds.next(), fds.next()) {
            (ExecStdio::Passed, Some(stdout), Some(stderr), None) => {
                let stdin = null()?;
                (
                    Stdio {
                        stdin,
                        stdout,
                        stderr,
                        console: None,
                    },
                    None,
                )
            }
            (ExecStdio::PassedWithStdin, Some(stdin), Some(stdout), Some(stderr)) => (
                Stdio {
                    stdin,
                    stdout,
                    stderr,
                    console: None,
                },
                None,
            ),
            (ExecStdio::Tty, Some(socket), None, None) => (
                Stdio {
                    stdin: null()?,
                    stdout: null()?,
                    stderr: null()?,
                    console: Some(socket),
                },
                None,
            ),
            _ => {
                let (out_r, out_w) = sys::pipe().map_err(|e| not_started(format!("pipe: {e}")))?;
                sys::set_nonblocking(out_r.as_fd())
                    .map_err(|e| not_started(format!("pipe: {e}")))?;
                let stdio = Stdio {
                    stdin: null()?,
                    stderr: dup(&out_w)?,
                    stdout: out_w,
                    console: None,
                };
                (stdio, Some(File::from(out_r)))
            }
        };
        let spawned = {
            let _unblocked =
                sys::SignalsUnblocked::new().map_err(|e| not_started(format!("sigmask: {e}")))?;
            container::exec_in(&self.pod, &c.cfg, c.proc_pid, argv, stdio)
        };
        let pid = spawned.map_err(|e| (exec_failure_code(&e), e.to_string()))?;
        let deadline = (timeout_ms > 0).then(|| crate::clock::boottime_ms() + timeout_ms);
        let key = self.next_key;
        self.next_key += 1;
        self.execs.push(ExecRun::new(key, id, pid, out_r, deadline));
        Ok(())
    }

    /// SIGKILLs and reaps every child the shim started, reports their exits,
    /// removes the socket and returns the exit code.
    fn shutdown(mut self) -> i32 {
        let pids: Vec<libc::pid_t> = self
            .containers
            .iter()
            .filter(|c| c.running())
            .map(|c| c.pid)
            .chain(self.execs.iter().map(|e| e.pid))
            .collect();
        for &pid in &pids {
            if let Err(e) = sys::kill(pid, libc::SIGKILL) {
                eprintln!("picolet shim: kill {pid}: {e}");
            }
        }
        // Reap any child until those are gone, not each one in turn: a
        // container's PID-namespace init does not finish exiting before
        // the zombies in its namespace are reaped, and an exec's command
        // whose intermediate died first (a timed-out probe) is such a
        // zombie, reparented to the shim. Waiting for the init alone
        // would wait forever.
        let mut left = pids;
        while !left.is_empty() {
            let Some((pid, status)) = sys::wait_any() else {
                break;
            };
            left.retain(|&p| p != pid);
            self.reaped(pid, status);
        }
        self.reap();
        self.flush_before_exit();
        if let Err(e) = std::fs::remove_file(&self.socket_path) {
            eprintln!("picolet shim: remove {}: {e}", self.socket_path.display());
        }
        0
    }

    /// Gives the agent up to a second to take the last events.
    fn flush_before_exit(&mut self) {
        let deadline = crate::clock::boottime_ms() + 1000;
        while let Some(c) = &mut self.conn {
            if c.flush().is_err() || !c.wants_write() {
                return;
            }
            let left = deadline.saturating_sub(crate::clock::boottime_ms());
            if left == 0 {
                return;
            }
            let mut fds = [pollfd(c.fd(), libc::POLLOUT)];
            if sys::poll(&mut fds, left as libc::c_int).is_err() {
                return;
            }
        }
    }
}

fn dev_null() -> std::io::Result<OwnedFd> {
    Ok(OwnedFd::from(File::open("/dev/null")?))
}
