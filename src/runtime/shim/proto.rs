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
use std::path::PathBuf;

/// Pod-level settings, given to the shim on its command line as JSON
/// (`picolet shim --config <pod-dir>/shim.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodConfig {
    /// The pod's uid.
    pub uid: String,
    /// `namespace/name`, for messages.
    pub name: String,
    /// The pod directory (`<state-dir>/pods/<uid>`): the socket lives here.
    pub pod_dir: PathBuf,
    /// Host name set in the pod's UTS namespace.
    pub hostname: String,
    /// `hostNetwork`: keep the host's network namespace.
    pub host_network: bool,
    /// `shareProcessNamespace`: the shim becomes PID 1 of one pod PID namespace.
    pub share_pid: bool,
    /// The pod cgroup, if cgroups are in use (created by the agent). The
    /// shim moves itself into `<cgroup>/shim` (a leaf), because a cgroup
    /// with controllers enabled may not hold processes itself.
    pub cgroup: Option<PathBuf>,
    /// Where the shim writes its own diagnostics (in the run dir, i.e. RAM).
    pub shim_log: PathBuf,
}

/// One mount into a container, applied in order after the rootfs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: String,
    pub kind: MountKind,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MountKind {
    /// Bind mount of a host path (emptyDir on disk, hostPath, /etc/hosts …).
    Bind { source: PathBuf },
    /// A fresh tmpfs (emptyDir `Memory`); `size` in bytes, 0 = kernel default.
    Tmpfs { size: u64 },
}

/// The rootfs of one container: an overlay of read-only layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rootfs {
    /// Unpacked layer directories, **top-most first** (overlayfs `lowerdir` order).
    pub layers: Vec<PathBuf>,
    /// Upper and work dir; `None` for `readOnlyRootFilesystem`.
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Where the overlay is mounted.
    pub target: PathBuf,
}

/// Everything the shim needs to start one container. Fully resolved by the
/// agent: image config merged, env expanded, user resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Container name, unique in the pod.
    pub name: String,
    /// Increases with every start of this container (restartCount-like).
    pub instance: u64,
    pub rootfs: Rootfs,
    /// argv[0] is resolved against `PATH` from `env` inside the rootfs.
    pub argv: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Effective/permitted/bounding capability numbers (`CAP_*` values).
    pub capabilities: Vec<u8>,
    /// Set `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// No masked or read-only paths, /sys writable.
    pub privileged: bool,
    pub mounts: Vec<Mount>,
    /// The container's own cgroup (child of the pod cgroup), if any.
    pub cgroup: Option<PathBuf>,
    /// CRI log file: `<dir>/<instance>.log`.
    pub log_path: PathBuf,
    /// Rotate when the file reaches this many bytes.
    pub log_max_bytes: u64,
    /// Keep this many files in all (current + rotated).
    pub log_max_files: u32,
    /// Written to `/proc/self/oom_score_adj` of the container's processes
    /// (and of its exec sessions); `None` keeps the shim's.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
}

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
    /// Run a command inside a running container's namespaces and cgroup,
    /// capturing up to 1 MiB of combined stdout+stderr. Answered by `ExecDone`.
    Exec {
        id: u64,
        name: String,
        argv: Vec<String>,
        timeout_ms: u64,
    },
    /// Ask for a fresh `Report`.
    Report,
    /// SIGKILL whatever still runs, unmount, remove the socket and exit.
    Shutdown,
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
        /// The command's output, or why it could not be started.
        output: String,
        /// The command was never started: `output` is the error.
        #[serde(default)]
        not_started: bool,
    },
}
