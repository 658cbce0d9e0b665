//! The agent ↔ shim protocol.
//!
//! One Unix stream socket per pod, `<pod-dir>/shim.sock`, created by the shim.
//! Each message is one line of JSON (a [`Request`] from the agent or an
//! [`Event`] from the shim). The agent may disconnect and reconnect at any
//! time (agent restart, kill -9): the shim keeps every container exit until
//! the agent sends [`Request::Ack`], and on every new connection it first
//! sends [`Event::Hello`] and then one [`Event::Report`] of all containers.
//!
//! Only one agent connection is served at a time; a new connection replaces
//! the old one.

use serde::{Deserialize, Serialize};

// The configuration types travel on this wire (the shim's `--config`
// file and `Request::Start`) but belong to the runtime: they live in
// `runtime::config`, so that the container code does not import the shim.
pub use crate::runtime::config::{ContainerConfig, Mount, MountKind, PodConfig, Rootfs};

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// Exit code as Kubernetes reports it: the code, or 128 + signal.
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// The container cgroup's `memory.events` `oom_kill` went up.
    pub oom_killed: bool,
    /// Unix ns.
    pub finished_at_ns: i64,
}

/// One container as the shim knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    pub name: String,
    pub instance: u64,
    /// Host PID (the shim's view).
    pub pid: i32,
    /// Unix ns.
    pub started_at_ns: i64,
    /// `None` while it runs; an exit not yet acknowledged otherwise.
    pub exit: Option<Exit>,
}

/// Agent → shim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Start a container. Answered by `Started` or `StartFailed`.
    Start(Box<ContainerConfig>),
    /// Send a signal to a container's init process.
    Signal {
        name: String,
        instance: u64,
        signal: i32,
    },
    /// Forget an exited container (after the agent persisted it).
    Ack { name: String, instance: u64 },
    /// Run a command inside a running container's namespaces and cgroup.
    /// Answered by `ExecDone`. With [`ExecStdio::Capture`] (exec probes),
    /// the shim captures up to 1 MiB of combined stdout+stderr; otherwise
    /// the command's stdio are fds passed with this line (`SCM_RIGHTS`,
    /// see [`ExecStdio`]) and the shim reads none of its output.
    Exec {
        id: u64,
        name: String,
        argv: Vec<String>,
        /// 0: no time limit.
        timeout_ms: u64,
        #[serde(default)]
        stdio: ExecStdio,
    },
    /// Ask for a fresh `Report`.
    Report,
    /// SIGKILL whatever still runs, unmount, remove the socket and exit.
    Shutdown,
}

/// Where an exec's stdin, stdout and stderr go.
///
/// The passed fds travel as `SCM_RIGHTS` on the bytes of the `Exec` line
/// itself, in the order stdin (if passed), stdout, stderr; the shim queues
/// the fds it receives and each `Exec` line takes its own from the front.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecStdio {
    /// stdin `/dev/null`; stdout and stderr into one pipe the shim reads
    /// (up to 1 MiB, returned in `ExecDone::output`).
    #[default]
    Capture,
    /// stdin `/dev/null`; stdout and stderr are 2 passed fds.
    Passed,
    /// stdin, stdout and stderr are 3 passed fds.
    PassedWithStdin,
    /// `picolet exec -it`: one passed fd, a console socket holding the
    /// window size. The command's side makes a pty of the container's
    /// devpts of that size, sends its master there and makes the slave its
    /// stdio and controlling terminal.
    Tty,
}

impl ExecStdio {
    /// How many fds come with the request.
    pub fn fds(self) -> usize {
        match self {
            ExecStdio::Capture => 0,
            ExecStdio::Passed => 2,
            ExecStdio::PassedWithStdin => 3,
            ExecStdio::Tty => 1,
        }
    }
}

/// Shim → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// First message on every connection.
    Hello {
        pid: i32,
        /// Field 22 of `/proc/<pid>/stat`, to detect PID reuse.
        start_time: u64,
        uid: String,
    },
    /// All containers the shim holds, running or exited-not-acked.
    Report { containers: Vec<ContainerReport> },
    Started {
        name: String,
        instance: u64,
        pid: i32,
        started_at_ns: i64,
    },
    /// The container could not be created; `reason` is a Kubernetes waiting
    /// reason (`CreateContainerError`, `RunContainerError`, …).
    StartFailed {
        name: String,
        instance: u64,
        reason: String,
        message: String,
    },
    Exited {
        name: String,
        instance: u64,
        started_at_ns: i64,
        exit: Exit,
    },
    ExecDone {
        id: u64,
        /// The command's exit code; when `not_started`, 127 (command not
        /// found), 126 (found but not executable, or could not be started)
        /// or [`super::EXEC_NOT_STARTED`] (older shims, or no such
        /// container).
        exit_code: i32,
        timed_out: bool,
        /// The command's output ([`ExecStdio::Capture`]; empty otherwise),
        /// or why it could not be started.
        output: String,
        /// The command was never started: `output` is the error.
        #[serde(default)]
        not_started: bool,
    },
}
