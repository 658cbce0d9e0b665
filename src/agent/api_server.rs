//! Serves the CLI API (`crate::api`) on `<state-dir>/picolet.sock`.

use super::{Agent, ExecWaiter, Msg};
use crate::api::{PodEntry, Request, Response};
use crate::reactor::{self, Async};
use crate::runtime::shim::proto;
use async_channel::Sender;
use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;

/// Binds the socket (replacing a stale one) and starts accepting.
pub fn spawn(state_dir: &Path, tx: Sender<Msg>) -> io::Result<()> {
    let path = crate::api::socket_path(state_dir);
    let _ = std::fs::remove_file(&path);
    let listener = Async::new(UnixListener::bind(&path)?)?;
    reactor::spawn(async move {
        loop {
            let stream = match listener.read_with(|l| l.accept()).await {
                Ok((s, _)) => s,
                Err(e) => {
                    log::warn!("api accept: {e}");
                    reactor::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let tx = tx.clone();
            reactor::spawn(async move {
                if let Err(e) = serve(stream, tx).await {
                    log::debug!("api connection: {e}");
                }
            })
            .detach();
        }
    })
    .detach();
    Ok(())
}

async fn serve(stream: UnixStream, tx: Sender<Msg>) -> io::Result<()> {
    let s = Rc::new(Async::new(stream)?);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.contains(&b'\n') {
        let n = s.read_with(|s| (&*s).read(&mut chunk)).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 1 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large",
            ));
        }
    }
    let resp = match serde_json::from_slice::<Request>(&buf) {
        Ok(req) => {
            let (reply, rx) = async_channel::bounded(1);
            if tx.send(Msg::Api { req, reply }).await.is_err() {
                return Ok(());
            }
            rx.recv()
                .await
                .unwrap_or_else(|_| Response::Error("the agent is stopping".into()))
        }
        Err(e) => Response::Error(format!("malformed request: {e}")),
    };
    let mut line = serde_json::to_vec(&resp).map_err(io::Error::other)?;
    line.push(b'\n');
    super::sandbox::write_all(&s, &line).await
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
                .sources
                .get(&key)
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
        })
    }

    pub(super) fn on_api(&mut self, req: Request, reply: Sender<Response>) {
        let node = self.cfg.node_name.clone();
        let find = |ns: &str, name: &str| {
            self.node
                .find(ns, name)
                .map(|v| v.uid.clone())
                .ok_or_else(|| format!("pod \"{name}\" not found in namespace \"{ns}\""))
        };
        let resp = match req {
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
                        .scan
                        .errors
                        .iter()
                        .map(|(p, e)| (p.display().to_string(), e.clone()))
                        .collect(),
                }
            }
            Request::Describe { namespace, name } => match find(&namespace, &name) {
                Ok(uid) => {
                    let key = format!("{namespace}/{name}");
                    let manifest_error = self
                        .sources
                        .get(&key)
                        .and_then(|src| self.scan.errors.get(Path::new(src)).cloned());
                    match self.entry(&uid) {
                        Some(pod) => Response::Describe {
                            node,
                            pod,
                            events: self
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
            } => match find(&namespace, &name) {
                Ok(uid) => {
                    let c = match self.pick_container(&uid, container) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = reply.try_send(Response::Error(e));
                            return;
                        }
                    };
                    let running = self
                        .pods
                        .get(&uid)
                        .is_some_and(|p| p.running.contains_key(&c));
                    let conn = self.pods.get(&uid).and_then(|p| p.conn.clone());
                    match conn {
                        Some(conn) if running => {
                            let id = self.next_exec;
                            self.next_exec += 1;
                            conn.send(proto::Request::Exec {
                                id,
                                name: c,
                                argv,
                                timeout_ms: 0,
                            });
                            self.execs.insert(id, ExecWaiter::Api(reply));
                            return;
                        }
                        _ => Response::Error(format!("container {c} is not running")),
                    }
                }
                Err(e) => Response::Error(e),
            },
        };
        let _ = reply.try_send(resp);
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
        let dir = self
            .cfg
            .run_dir
            .join("logs")
            .join(format!(
                "{}_{}_{}",
                view.spec.metadata.namespace, view.spec.metadata.name, uid
            ))
            .join(&c);
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
