//! Serves the CLI API (`crate::api`) on `<state-dir>/picolet.sock`.
//!
//! One request line, one response line, per connection. Bounded, so that
//! a local client cannot exhaust the agent's memory or fds ([`Limits`]):
//! - a request line is at most [`crate::api::MAX_REQUEST_LINE`] bytes
//!   (64 KiB): a longer one gets an error line and the connection is
//!   closed, having buffered no more than that;
//! - at most 64 connections are served at once. When a new one arrives
//!   at the cap, the oldest connection still *sending its request* is
//!   closed to make room (a real client sends its request at once, so a
//!   flood of idle or slow connections cannot lock `picolet get pods` out);
//!   if all 64 are waiting for answers (e.g. long `exec`s), the new one
//!   gets an error line and is closed;
//! - a connection must deliver its whole request within 30 s, and take
//!   its response within 30 s; a request being answered (an `exec` that
//!   runs for minutes) has no time limit. A client that hangs up while
//!   its `exec` runs (Ctrl-C on `picolet exec`) frees its connection at
//!   once (other requests are answered at once, and their clients may
//!   half-close after sending);
//! - a request may carry at most [`MAX_REQUEST_FDS`] fds (`SCM_RIGHTS`:
//!   an `exec`'s stdio, passed on to the pod's shim and closed here once
//!   sent); more is refused like an over-long line. So 64 connections
//!   hold at most 64 × 3 passed fds, and only until their request is read.
//!
//! The agent holds an [`ApiServer`]: where it listens, its limits, and the
//! CLI execs waiting for their shim's `ExecDone`. The connections
//! themselves ([`Conns`]) belong to the accept task. The requests are
//! answered by `Agent::on_api`, below: it reads the lifecycle core, the
//! desired state and the shims.

use super::{Agent, Msg, workloads};
use crate::api::{PodEntry, Request, Response};
use crate::desired::Owner;
use crate::reactor::{self, Async};
use crate::runtime::shim::proto;
use crate::vecmap::VecMap;
use async_channel::{Receiver, Sender};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// Bounds on the API socket's connections (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line, newline included.
    pub max_request: usize,
    /// Connections open at once.
    pub max_conns: usize,
    /// Time from accept until the whole request line has arrived.
    pub request_timeout: Duration,
    /// Time to hand over a response (a client that stops reading).
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request: crate::api::MAX_REQUEST_LINE,
            max_conns: 64,
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// The open connections, in accept order.
#[derive(Debug, Default)]
struct Conns {
    next: u64,
    live: VecMap<u64, Slot>,
}

#[derive(Debug)]
struct Slot {
    /// Still receiving its request line.
    reading: bool,
    /// Dropping it ends the connection's task.
    _close: Sender<()>,
}

impl Conns {
    /// Makes room for a new connection and registers it: its id and the
    /// receiver that closes when the connection is evicted. `None` when
    /// `max` connections are all being answered.
    fn admit(&mut self, max: usize) -> Option<(u64, Receiver<()>)> {
        while self.live.len() >= max.max(1) {
            let oldest_reading = self
                .live
                .iter()
                .find(|(_, s)| s.reading)
                .map(|(id, _)| *id)?;
            self.live.remove(&oldest_reading);
        }
        let (close, closed) = async_channel::bounded(1);
        let id = self.next;
        self.next += 1;
        self.live.insert(
            id,
            Slot {
                reading: true,
                _close: close,
            },
        );
        Some((id, closed))
    }

    fn request_read(&mut self, id: u64) {
        if let Some(s) = self.live.get_mut(&id) {
            s.reading = false;
        }
    }
}

/// Unregisters a connection when its task ends (or is dropped).
struct Registered {
    conns: Rc<RefCell<Conns>>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.borrow_mut().live.remove(&self.id);
    }
}

/// The API server as the agent holds it (see the module doc).
#[derive(Debug)]
pub(super) struct ApiServer {
    /// `<state-dir>/picolet.sock`.
    path: PathBuf,
    limits: Limits,
    /// Per exec id: the pod's uid and the CLI waiting for the exit code.
    execs: HashMap<u64, (String, Sender<Response>)>,
}

impl ApiServer {
    /// The server of `<state_dir>/picolet.sock`, with the default limits;
    /// not listening yet.
    pub(super) fn new(state_dir: &Path) -> ApiServer {
        ApiServer {
            path: crate::api::socket_path(state_dir),
            limits: Limits::default(),
            execs: HashMap::new(),
        }
    }

    /// Where it listens.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Binds the socket (replacing a stale one) and starts accepting;
    /// each request comes to the agent as a [`Msg::Api`].
    pub(super) fn listen(&self, tx: Sender<Msg>) -> io::Result<()> {
        spawn_at(&self.path, tx, self.limits)
    }

    /// Removes the socket (the agent is stopping).
    pub(super) fn stop(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// The CLI's exec `id` runs in pod `uid`; `reply` gets its exit code.
    pub(super) fn wait_exec(&mut self, id: u64, uid: &str, reply: Sender<Response>) {
        self.execs.insert(id, (uid.to_string(), reply));
    }

    /// The shim's `ExecDone` for exec `id`: answers the CLI waiting for
    /// it, if any.
    pub(super) fn exec_done(&mut self, id: u64, exit_code: i32, output: String, not_started: bool) {
        let Some((_, reply)) = self.execs.remove(&id) else {
            return;
        };
        let resp = if not_started || exit_code < 0 {
            // Never ran: 127/126 as a shell or kubectl reports it (older
            // shims say -1), and the reason as an error.
            Response::Exec {
                exit_code: if exit_code < 0 {
                    crate::runtime::shim::EXEC_CANNOT_RUN
                } else {
                    exit_code
                },
                error: Some(output),
            }
        } else {
            // The output went to the CLI's pipes, not here.
            Response::Exec {
                exit_code,
                error: None,
            }
        };
        let _ = reply.try_send(resp);
    }

    /// Pod `uid`'s shim connection is gone: no `ExecDone` will come for
    /// its execs; their CLIs are told.
    pub(super) fn shim_gone(&mut self, uid: &str) {
        self.execs.retain(|_, (u, reply)| {
            if u != uid {
                return true;
            }
            let _ = reply.try_send(Response::Error(
                "the pod's shim went away while the command ran".into(),
            ));
            false
        });
    }
}

/// Binds the socket at `path` (replacing a stale one) and starts accepting,
/// with `limits`.
pub(crate) fn spawn_at(path: &Path, tx: Sender<Msg>, limits: Limits) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = Async::new(UnixListener::bind(path)?)?;
    let conns = Rc::new(RefCell::new(Conns::default()));
    reactor::spawn(async move {
        loop {
            let stream = match listener.read_with(|l| l.accept()).await {
                Ok((s, _)) => s,
                Err(e) => {
                    log::warn!("api accept: {e}");
                    reactor::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Let an evicted connection's task end (and free its fd and
            // buffer) before the next accept: a backlog of thousands of
            // connections must never be alive at once.
            futures_lite::future::yield_now().await;
            let admitted = conns.borrow_mut().admit(limits.max_conns);
            let Some((id, closed)) = admitted else {
                refuse(stream, limits.max_conns);
                continue;
            };
            let tx = tx.clone();
            let registered = Registered {
                conns: conns.clone(),
                id,
            };
            reactor::spawn(async move {
                let serve = serve(stream, tx, limits, &registered);
                let evicted = async {
                    let _ = closed.recv().await;
                    Err(io::Error::other("closed to make room for a new connection"))
                };
                if let Err(e) = futures_lite::future::or(serve, evicted).await {
                    log::debug!("api connection: {e}");
                }
                drop(registered);
            })
            .detach();
        }
    })
    .detach();
    Ok(())
}

/// Answers a connection over the cap with an error line, without waiting.
fn refuse(stream: UnixStream, max: usize) {
    log::debug!("api: {max} connections are being answered; refusing a new one");
    let resp = Response::Error(format!(
        "the agent is answering {max} requests already; try again"
    ));
    if let Ok(line) = crate::jsonl::encode(&resp) {
        if stream.set_nonblocking(true).is_ok() {
            let _ = (&stream).write(&line);
        }
    }
}

/// Most fds one request may carry (an `exec`'s stdin, stdout, stderr).
pub const MAX_REQUEST_FDS: usize = 3;

/// Reads one request line and the fds that came with it: `Ok(None)` on
/// EOF before a newline, an `InvalidData` error past `max` bytes or
/// [`MAX_REQUEST_FDS`] fds. Holds at most `max` bytes plus one 4 KiB read.
async fn read_request(
    s: &Async<UnixStream>,
    max: usize,
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Option<Vec<u8>>> {
    let mut lines = crate::jsonl::LineBuffer::default();
    let too_long = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("request line over {max} bytes"),
        )
    };
    loop {
        // The read buffer is on `read_with`'s call, not in this future.
        let n = s
            .read_with(|s| {
                let mut chunk = [0u8; 4096];
                let n = crate::sys::net::recv_with_fds(s.as_fd(), &mut chunk, fds)?;
                lines.extend(&chunk[..n]);
                Ok(n)
            })
            .await?;
        if fds.len() > MAX_REQUEST_FDS {
            fds.clear();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {MAX_REQUEST_FDS} fds with a request"),
            ));
        }
        if n == 0 {
            return Ok(None);
        }
        // `max` counts the line with its newline.
        match lines.next_line() {
            Some(line) if line.len() < max => return Ok(Some(line)),
            Some(_) => return Err(too_long()),
            None if lines.pending() >= max => return Err(too_long()),
            None => {}
        }
    }
}

async fn serve(
    stream: UnixStream,
    tx: Sender<Msg>,
    limits: Limits,
    registered: &Registered,
) -> io::Result<()> {
    let s = Async::new(stream)?;
    let mut fds = Vec::new();
    let read = reactor::timeout(
        limits.request_timeout,
        read_request(&s, limits.max_request, &mut fds),
    )
    .await;
    let buf = match read {
        Ok(Ok(Some(buf))) => buf,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
            let resp = Response::Error(e.to_string());
            let _ = reactor::timeout(Duration::from_secs(1), respond(&s, &resp)).await;
            return Err(e);
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            let secs = limits.request_timeout.as_secs_f64();
            let resp = Response::Error(format!("no complete request within {secs} s"));
            let _ = reactor::timeout(Duration::from_secs(1), respond(&s, &resp)).await;
            return Err(io::Error::new(io::ErrorKind::TimedOut, "idle connection"));
        }
    };
    registered.conns.borrow_mut().request_read(registered.id);
    let resp = match serde_json::from_slice::<Request>(&buf) {
        Ok(req) => {
            // Only an exec waits long for its answer; other clients may
            // half-close their end once the request is sent.
            let watch_hangup = matches!(req, Request::Exec { .. });
            let (reply, rx) = async_channel::bounded(1);
            if tx.send(Msg::Api { req, fds, reply }).await.is_err() {
                return Ok(());
            }
            let answer = async {
                Some(
                    rx.recv()
                        .await
                        .unwrap_or_else(|_| Response::Error("the agent is stopping".into())),
                )
            };
            let hangup = async {
                if watch_hangup {
                    hung_up(&s).await;
                } else {
                    std::future::pending::<()>().await;
                }
                None
            };
            match futures_lite::future::or(answer, hangup).await {
                Some(resp) => resp,
                None => return Ok(()),
            }
        }
        Err(e) => Response::Error(format!("malformed request: {e}")),
    };
    reactor::timeout(limits.write_timeout, respond(&s, &resp)).await?
}

/// Resolves when the client hangs up (or breaks) its connection while its
/// exec runs; what it sends meanwhile is read and dropped.
async fn hung_up(s: &Async<UnixStream>) {
    let mut chunk = [0u8; 512];
    loop {
        match s.read_with(|s| (&*s).read(&mut chunk)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn respond(s: &Async<UnixStream>, resp: &Response) -> io::Result<()> {
    let line = crate::jsonl::encode(resp).map_err(io::Error::other)?;
    super::sandbox::write_all(s, &line).await
}

impl Agent {
    fn entry(&self, uid: &str) -> Option<PodEntry> {
        let view = self.node.pod(uid)?;
        let mut pod = serde_json::to_value(&view.spec).ok()?;
        pod["metadata"]["uid"] = serde_json::Value::String(uid.to_string());
        if let Some(deadline) = view.deletion_deadline() {
            // As the API server does: when the grace period ends, and its length.
            let now = crate::clock::Now::read();
            let wall = now.wall_ms + (deadline as i64 - now.mono_ms as i64);
            pod["metadata"]["deletionTimestamp"] = crate::clock::rfc3339(wall).into();
            let grace = view.spec.spec.termination_grace_period_seconds;
            pod["metadata"]["deletionGracePeriodSeconds"] = grace.unwrap_or(30).max(0).into();
        }
        if pod["apiVersion"].as_str().unwrap_or("").is_empty() {
            pod["apiVersion"] = "v1".into();
            pod["kind"] = "Pod".into();
        }
        let status = self
            .node
            .status(uid)
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(serde_json::Value::Null);
        let key = format!(
            "{}/{}",
            view.spec.metadata.namespace, view.spec.metadata.name
        );
        Some(PodEntry {
            pod,
            status,
            source: self
                .desired
                .owner(&key)
                .map(Owner::label)
                .unwrap_or_else(|| "unknown".into()),
        })
    }

    /// Answers one API request; `fds` are those that came with it (an
    /// exec's stdio; closed here when the request takes none).
    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    pub(super) fn on_api(&mut self, req: Request, fds: Vec<OwnedFd>, reply: Sender<Response>) {
        let node = self.cfg.node_name.clone();
        let find = |ns: &str, name: &str| {
            self.node
                .find(ns, name)
                .map(|v| v.uid.clone())
                .ok_or_else(|| format!("pod \"{name}\" not found in namespace \"{ns}\""))
        };
        let resp = match req {
            Request::GetWorkloads { kind } => {
                let now = crate::clock::Now::read();
                let pods = workloads::observe(&self.node, now);
                let keys: Vec<_> = self
                    .workloads
                    .entries()
                    .map(|e| e.key())
                    .filter(|k| k.kind == kind)
                    .collect();
                Response::Workloads {
                    items: keys
                        .iter()
                        .filter_map(|k| self.workloads.view(k, &pods, now))
                        .map(|v| crate::api::WorkloadEntry {
                            object: v.object,
                            source: v.source,
                        })
                        .collect(),
                }
            }
            Request::DescribeWorkload {
                kind,
                namespace,
                name,
            } => {
                let now = crate::clock::Now::read();
                let pods = workloads::observe(&self.node, now);
                let key = crate::spec::workload::WorkloadKey {
                    kind,
                    namespace,
                    name,
                };
                match self.workloads.view(&key, &pods, now) {
                    None => Response::Error(format!(
                        "{}.{} \"{}\" not found in namespace \"{}\"",
                        kind.plural(),
                        kind.api_version().split('/').next().unwrap_or(""),
                        key.name,
                        key.namespace
                    )),
                    Some(v) => Response::DescribeWorkload {
                        pods: if kind == crate::spec::workload::WorkloadKind::CronJob {
                            self.workloads
                                .children(&key)
                                .iter()
                                .map(|e| e.workload.metadata.name.clone())
                                .collect()
                        } else {
                            self.workloads.pods_of(&key, &pods)
                        },
                        events: v
                            .events
                            .iter()
                            .map(|e| crate::api::EventEntry {
                                time_ms: e.last_ms,
                                kind: format!("{:?}", e.kind),
                                reason: e.reason.clone(),
                                message: e.message.clone(),
                                object: format!("{}/{}", kind.name(), key.name),
                            })
                            .collect(),
                        item: crate::api::WorkloadEntry {
                            object: v.object,
                            source: v.source,
                        },
                    },
                }
            }
            Request::Rollout(action, to, kind, namespace, name) => {
                use crate::api::RolloutAction as A;
                let now = crate::clock::Now::read();
                let key = crate::spec::workload::WorkloadKey {
                    kind,
                    namespace,
                    name,
                };
                let w = &mut self.workloads;
                let r = match action {
                    A::Status => w.rollout_status(&key, &workloads::observe(&self.node, now), now),
                    A::History => w
                        .rollout_history(&key)
                        .map(|h| (crate::workloads::deployment::history_text(&key, &h), true)),
                    A::Undo => w.rollout_undo(&key, to, now).map(|t| (t, true)),
                    A::Restart => w.rollout_restart(&key, now).map(|t| (t, true)),
                };
                match r {
                    Ok((text, done)) => Response::Rollout(text, done),
                    Err(e) => Response::Error(e),
                }
            }
            Request::GetObjects { secrets } => {
                let kind = if secrets {
                    crate::spec::ObjectKind::Secret
                } else {
                    crate::spec::ObjectKind::ConfigMap
                };
                Response::Objects {
                    objects: self
                        .objects
                        .iter()
                        .filter(|o| o.kind == kind)
                        .map(|o| crate::api::ObjectEntry {
                            namespace: o.namespace.clone(),
                            name: o.name.clone(),
                            secret_type: o.secret_type.clone(),
                            keys: o.data.keys().cloned().collect(),
                            since_ms: self
                                .objects_seen
                                .get(&(o.kind, o.key()))
                                .copied()
                                .unwrap_or(0),
                        })
                        .collect(),
                }
            }
            Request::GetPods => {
                let mut uids: Vec<(String, String)> = self
                    .node
                    .pods()
                    .map(|p| {
                        (
                            format!("{}/{}", p.spec.metadata.namespace, p.spec.metadata.name),
                            p.uid.clone(),
                        )
                    })
                    .collect();
                uids.sort();
                Response::Pods {
                    node,
                    pods: uids.iter().filter_map(|(_, u)| self.entry(u)).collect(),
                    errors: self
                        .statics
                        .errors()
                        .iter()
                        .map(|(p, e)| (p.display().to_string(), e.clone()))
                        .collect(),
                }
            }
            Request::Describe { namespace, name } => match find(&namespace, &name) {
                Ok(uid) => {
                    let key = format!("{namespace}/{name}");
                    let manifest_error = self
                        .desired
                        .owner(&key)
                        .and_then(Owner::static_path)
                        .and_then(|src| self.statics.errors().get(Path::new(src)).cloned());
                    match self.entry(&uid) {
                        Some(pod) => Response::Describe {
                            node,
                            pod,
                            events: self
                                .shims
                                .pods
                                .get(&uid)
                                .map(|p| p.events.iter().cloned().collect())
                                .unwrap_or_default(),
                            manifest_error,
                        },
                        None => Response::Error(format!("pod {name} vanished")),
                    }
                }
                Err(e) => Response::Error(e),
            },
            Request::Logs {
                namespace,
                name,
                container,
                previous,
            } => match find(&namespace, &name) {
                Ok(uid) => self.log_files(&uid, container, previous),
                Err(e) => Response::Error(e),
            },
            Request::Exec {
                namespace,
                name,
                container,
                argv,
                stdin,
                tty,
            } => match self.start_exec(&namespace, &name, container, argv, (stdin, tty), fds) {
                Ok((uid, id)) => {
                    self.api.wait_exec(id, &uid, reply);
                    return;
                }
                Err(e) => Response::Error(e),
            },
            Request::Top => self.top(),
        };
        let _ = reply.try_send(resp);
    }

    /// Sends an `exec` with its passed stdio to the pod's shim; returns its
    /// pod's uid and the exec id. The agent keeps no copy of the fds.
    fn start_exec(
        &mut self,
        namespace: &str,
        name: &str,
        container: Option<String>,
        argv: Vec<String>,
        (stdin, tty): (bool, bool),
        fds: Vec<OwnedFd>,
    ) -> Result<(String, u64), String> {
        let (stdio, what) = match (tty, stdin) {
            (true, _) => (proto::ExecStdio::Tty, "console socket"),
            (false, true) => (
                proto::ExecStdio::PassedWithStdin,
                "stdin, stdout and stderr",
            ),
            (false, false) => (proto::ExecStdio::Passed, "stdout and stderr"),
        };
        if fds.len() != stdio.fds() {
            return Err(format!(
                "exec needs the command's {what} passed with the request (SCM_RIGHTS); {} came",
                fds.len()
            ));
        }
        let uid = self
            .node
            .find(namespace, name)
            .map(|v| v.uid.clone())
            .ok_or_else(|| format!("pod \"{name}\" not found in namespace \"{namespace}\""))?;
        let c = self.pick_container(&uid, container)?;
        let rt = self.shims.pods.get(&uid);
        let conn = rt
            .filter(|p| p.running.contains_key(&c))
            .and_then(|p| p.conn.clone())
            .ok_or_else(|| format!("container {c} is not running"))?;
        let id = self.shims.exec_id();
        let req = proto::Request::Exec {
            id,
            name: c.clone(),
            argv,
            timeout_ms: 0,
            stdio,
        };
        if !conn.send_with_fds(req, fds) {
            return Err(format!("container {c}: the pod's shim is gone"));
        }
        Ok((uid, id))
    }

    fn pick_container(&self, uid: &str, container: Option<String>) -> Result<String, String> {
        let view = self.node.pod(uid).ok_or("pod vanished")?;
        let spec = &view.spec.spec;
        match container {
            Some(c) => {
                if spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter())
                    .any(|x| x.name == c)
                {
                    Ok(c)
                } else {
                    Err(format!(
                        "container {c} is not valid for pod {}",
                        view.spec.metadata.name
                    ))
                }
            }
            None => spec
                .containers
                .first()
                .map(|c| c.name.clone())
                .ok_or_else(|| "pod has no containers".to_string()),
        }
    }

    fn log_files(&self, uid: &str, container: Option<String>, previous: bool) -> Response {
        let c = match self.pick_container(uid, container) {
            Ok(c) => c,
            Err(e) => return Response::Error(e),
        };
        let Some(view) = self.node.pod(uid) else {
            return Response::Error("pod vanished".into());
        };
        let dir = super::container::log_dir(&self.cfg.run_dir, &view.spec, uid, &c);
        let mut instances: Vec<u64> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        n.strip_suffix(".log").and_then(|i| i.parse().ok())
                    })
                    .collect()
            })
            .unwrap_or_default();
        instances.sort_unstable();
        let pick = if previous {
            if instances.len() < 2 {
                return Response::Error(format!(
                    "previous terminated container \"{c}\" in pod \"{}\" not found",
                    view.spec.metadata.name
                ));
            }
            instances[instances.len() - 2]
        } else {
            match instances.last() {
                Some(i) => *i,
                None => {
                    return Response::Error(format!(
                        "container \"{c}\" in pod \"{}\" has no logs yet",
                        view.spec.metadata.name
                    ));
                }
            }
        };
        let mut files = Vec::new();
        // Rotated files: N.log.K, the highest K is the oldest.
        let mut rotated: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        let k = n.strip_prefix(&format!("{pick}.log."))?.parse().ok()?;
                        Some((k, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
        files.extend(rotated.into_iter().map(|(_, p)| p));
        files.push(dir.join(format!("{pick}.log")));
        Response::Logs { files }
    }
}

#[cfg(test)]
mod tests;
