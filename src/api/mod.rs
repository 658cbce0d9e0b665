//! The local API used by the CLI: one JSON line per request and per
//! response, over the Unix socket `<state-dir>/picolet.sock`.
//!
//! The agent serves it on its reactor (see `agent::api_server`); the CLI side
//! here is plain blocking std I/O, since the CLI is a separate short-lived
//! process.

pub mod print;

use serde::{Deserialize, Serialize};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Names the socket inside a state dir.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("picolet.sock")
}

/// CLI → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    GetPods,
    /// The ConfigMaps (`secrets: false`) or Secrets the agent knows:
    /// names, keys and types, never values.
    GetObjects {
        secrets: bool,
    },
    Describe {
        namespace: String,
        name: String,
    },
    /// Every workload of a kind, in every namespace (the CLI filters).
    GetWorkloads {
        kind: crate::spec::workload::WorkloadKind,
    },
    /// One workload, with its events and its pods' names.
    DescribeWorkload {
        kind: crate::spec::workload::WorkloadKind,
        namespace: String,
        name: String,
    },
    /// `rollout status|history|undo|restart` of a workload: the action,
    /// `undo --to-revision`, kind, namespace, name (a tuple: cheaper to
    /// decode than named fields).
    Rollout(
        RolloutAction,
        Option<i64>,
        crate::spec::workload::WorkloadKind,
        String,
        String,
    ),
    /// Where a container's log files are; the CLI reads them itself.
    Logs {
        namespace: String,
        name: String,
        container: Option<String>,
        previous: bool,
    },
    /// Runs a command in a container. The request line carries, as
    /// `SCM_RIGHTS`, the container's ends of the CLI's pipes: stdin (when
    /// `stdin`), stdout, stderr, in that order. The agent passes them on to
    /// the pod's shim, which makes them the command's 0, 1 and 2 (stdin is
    /// `/dev/null` without `stdin`); the output never goes through the
    /// agent. With `tty`, one fd comes instead: a console socket, holding
    /// the window size (rows, columns: 2 × u16 little-endian), on which the
    /// command's side sends the master of the pty it made (runc's
    /// `--console-socket`). The response comes when the command has exited.
    Exec {
        namespace: String,
        name: String,
        container: Option<String>,
        argv: Vec<String>,
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        tty: bool,
    },
    /// `picolet top`: every pod's usage (the CLI filters).
    Top,
}

/// What `rollout` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutAction {
    Status,
    History,
    Undo,
    Restart,
}

/// A ConfigMap or Secret as the API shows it: no values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub namespace: String,
    pub name: String,
    /// A Secret's `type`; empty for a ConfigMap.
    pub secret_type: String,
    pub keys: Vec<String>,
    /// When the agent first saw it (Unix ms).
    pub since_ms: i64,
}

/// A workload as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadEntry {
    /// The object as loaded, with `metadata.uid`, `creationTimestamp` and
    /// `status` filled in.
    pub object: serde_json::Value,
    /// Where it came from: a manifest file, `fleet:…`, or empty for a
    /// CronJob's Job.
    pub source: String,
}

/// One pod as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodEntry {
    /// The Pod as given (JSON), with its uid filled in.
    pub pod: serde_json::Value,
    /// The Kubernetes `PodStatus` (JSON).
    pub status: serde_json::Value,
    /// Where it came from: a manifest file, or `fleet`.
    pub source: String,
}

/// A Kubernetes-style event kept for `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEntry {
    /// Unix ms.
    pub time_ms: i64,
    /// `Normal` or `Warning`.
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub object: String,
}

/// A pod's recent events, newest last: the last [`EventHistory::KEPT`],
/// held in place (a `heapless::Deque`: the bound is fixed, and recording
/// an event never grows a buffer). The slots hold boxes: 50 entries in
/// place would be 5 KB for every pod, most of it empty (a pod records
/// about ten events in a normal life); boxed, a pod pays 400 bytes plus
/// the events it has.
#[derive(Debug, Default)]
pub struct EventHistory(heapless::Deque<Box<EventEntry>, { EventHistory::KEPT }>);

impl EventHistory {
    /// Events kept per pod.
    pub const KEPT: usize = 50;

    /// Appends `e`, dropping the oldest event when full.
    pub fn push(&mut self, e: EventEntry) {
        if self.0.is_full() {
            self.0.pop_front();
        }
        // Cannot fail: there is room now.
        let _ = self.0.push_back(Box::new(e));
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &EventEntry> {
        self.0.iter().map(|e| &**e)
    }
}

/// Agent → CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Objects {
        objects: Vec<ObjectEntry>,
    },
    Pods {
        node: String,
        pods: Vec<PodEntry>,
        /// Manifest files that failed to load, with their errors.
        errors: Vec<(String, String)>,
    },
    Describe {
        node: String,
        pod: PodEntry,
        events: Vec<EventEntry>,
        /// The error of the manifest file that defines it, if its latest
        /// edit was refused.
        manifest_error: Option<String>,
    },
    Workloads {
        items: Vec<WorkloadEntry>,
    },
    DescribeWorkload {
        item: WorkloadEntry,
        events: Vec<EventEntry>,
        /// The names of its pods (a CronJob: of its Jobs).
        pods: Vec<String>,
    },
    /// `rollout`'s text, and whether a `status` is complete.
    Rollout(String, bool),
    Logs {
        /// Oldest first: rotated files, then the current one.
        files: Vec<PathBuf>,
    },
    Exec {
        /// The command's exit code: 127 when it does not exist, 126 when
        /// it could not be run (then `error` says why).
        exit_code: i32,
        /// Set when the command never started.
        #[serde(default)]
        error: Option<String>,
    },
    /// `picolet top`: one line per pod, `NAMESPACE NAME` then
    /// ` CONTAINER:MILLICORES:BYTES` per container (`-`: not known yet;
    /// lines, not nested tuples: no serde code of their own).
    Top(Vec<String>),
    Error(String),
}

/// Errors the CLI reports.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "cannot reach the picolet agent at {path}: {source} (is `picolet agent` running with this --state-dir?)"
    )]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the agent at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the agent sent a malformed response: {0}")]
    Malformed(String),
    #[error("{0}")]
    Agent(String),
}

/// The longest request line the agent reads (with its newline). The
/// largest real request is an `exec` with a long command line; 64 KiB is
/// far above that and keeps 64 connections under 4 MiB of buffers.
pub const MAX_REQUEST_LINE: usize = 64 << 10;

/// Sends one request and waits for its response (blocking; CLI only).
pub fn call(state_dir: &Path, req: &Request) -> Result<Response, ApiError> {
    let mut s = send(state_dir, req, &[])?;
    let mut lines = crate::jsonl::LineBuffer::default();
    loop {
        if let Some(line) = lines.next_line() {
            return parse_response(&line);
        }
        let n = lines.read_from(&mut s).map_err(|source| ApiError::Io {
            path: socket_path(state_dir),
            source,
        })?;
        if n == 0 {
            // Hung up without a whole line: no response.
            return parse_response(&[]);
        }
    }
}

/// Connects and sends one request with `fds` attached (`SCM_RIGHTS`, on
/// the line's first bytes); returns the connection, for the response.
pub fn send(
    state_dir: &Path,
    req: &Request,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<UnixStream, ApiError> {
    let path = socket_path(state_dir);
    let s = UnixStream::connect(&path).map_err(|source| ApiError::NotRunning {
        path: path.clone(),
        source,
    })?;
    let io = |source| ApiError::Io {
        path: path.clone(),
        source,
    };
    let line = crate::jsonl::encode(req).map_err(|e| ApiError::Malformed(e.to_string()))?;
    if line.len() > MAX_REQUEST_LINE {
        return Err(ApiError::Agent(format!(
            "the request is {} bytes, over the agent's {MAX_REQUEST_LINE}-byte limit (a command that long cannot be sent)",
            line.len()
        )));
    }
    let mut sent = 0;
    if !fds.is_empty() {
        sent = crate::sys::net::send_with_fds(std::os::fd::AsFd::as_fd(&s), &line[..], fds)
            .map_err(io)?;
    }
    // MSG_NOSIGNAL: the local commands run with SIGPIPE's default action.
    crate::sys::net::send_all(std::os::fd::AsFd::as_fd(&s), &line[sent..]).map_err(io)?;
    Ok(s)
}

/// Parses a response line (an empty one: the agent hung up).
pub fn parse_response(line: &[u8]) -> Result<Response, ApiError> {
    if line.is_empty() {
        return Err(ApiError::Malformed(
            "connection closed without a response".into(),
        ));
    }
    match serde_json::from_slice(line) {
        Ok(Response::Error(e)) => Err(ApiError::Agent(e)),
        Ok(r) => Ok(r),
        Err(e) => Err(ApiError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_history_keeps_the_last_fifty_oldest_first() {
        let mut h = EventHistory::default();
        for i in 0..60 {
            h.push(EventEntry {
                time_ms: i,
                kind: "Normal".into(),
                reason: "Started".into(),
                message: String::new(),
                object: "pod".into(),
            });
        }
        let times: Vec<i64> = h.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, (10..60).collect::<Vec<_>>());
    }
}
