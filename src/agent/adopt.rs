//! Re-adoption of running shims after an agent restart (DESIGN §1).
//!
//! Every shim under `<state-dir>/pods/` is reconnected before anything new
//! is decided, and its `Report` is heard first:
//! - pods the state file knows keep their containers (no restart, same
//!   `startedAt` and `restartCount`); exits the shim saw while the agent was
//!   away are reported with their real codes;
//! - shims the state file does not know (it was lost or is older) are
//!   matched against the manifests by `namespace/name`: a desired pod is
//!   adopted as it runs ([`Input::AdoptPod`]), any other is stopped.

use super::{Agent, Msg, manifests, sandbox};
use crate::clock::Now;
use crate::lifecycle::Input;
use crate::lifecycle::{AdoptedContainer, AdoptedExit};
use crate::reactor;
use crate::runtime::shim::proto::{self, Event, PodConfig};
use crate::vecmap::VecMap;
use async_channel::Receiver;
use std::collections::HashMap;
use std::collections::HashSet;
use std::time::Duration;

impl Agent {
    /// Reconnects to every shim and waits (at most 3 s) for their reports.
    pub(super) async fn adopt(&mut self, rx: &Receiver<Msg>) {
        let known: HashSet<String> = self.node.pods().map(|p| p.uid.clone()).collect();
        let pods_dir = self.cfg.state_dir.join("pods");
        let mut uids: Vec<String> = std::fs::read_dir(&pods_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        uids.extend(known.iter().cloned());
        uids.sort();
        uids.dedup();
        // What the manifests want now, for shims the state file lost.
        let scan = match &self.cfg.manifests {
            Some(dir) => manifests::scan(dir).unwrap_or_default(),
            None => manifests::Scan::default(),
        };
        let mut desired: VecMap<String, crate::spec::Pod> = VecMap::new();
        for s in crate::desired::static_pods(&scan.files) {
            desired.insert(s.key, s.pod);
        }
        let mut orphans: HashMap<String, String> = HashMap::new();
        let mut waiting = HashSet::new();
        for uid in &uids {
            let dir = pods_dir.join(uid);
            if let Some(root) = self.cgroups.root() {
                let cg = root.pod_path(uid);
                if cg.exists() {
                    self.shims.rt(uid).cgroup = Some(cg);
                }
            }
            let generation = self.shims.next_generation();
            let conn =
                sandbox::connect(uid, &dir.join("shim.sock"), generation, self.tx.clone()).await;
            match (conn, known.contains(uid)) {
                (Ok(conn), true) => {
                    log::info!("pod {uid}: re-adopted its shim");
                    self.shims.rt(uid).conn = Some(conn);
                    waiting.insert(uid.clone());
                }
                (Err(e), true) => {
                    if self.shims.pods.get(uid).is_some_and(|p| p.record.is_some()) {
                        log::warn!("pod {uid}: shim gone ({e}); its containers are lost");
                    }
                    self.shims.rt(uid).record = None;
                    self.pending
                        .push_back(Input::SandboxGone { uid: uid.clone() });
                }
                (Ok(conn), false) => {
                    let name = std::fs::read(dir.join("shim.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice::<PodConfig>(&b).ok())
                        .map(|c| c.name)
                        .unwrap_or_default();
                    self.shims.rt(uid).conn = Some(conn);
                    orphans.insert(uid.clone(), name);
                    waiting.insert(uid.clone());
                }
                (Err(_), false) => {
                    // A pod dir without a live shim and unknown to the core.
                    self.finish_remove(uid);
                }
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(Ok(msg)) = reactor::timeout(left, rx.recv()).await else {
                log::warn!("no report from the shims of {waiting:?}");
                break;
            };
            if let Msg::Shim {
                uid,
                event: Event::Report { containers },
                ..
            } = &msg
            {
                waiting.remove(uid);
                if let Some(key) = orphans.remove(uid) {
                    self.adopt_orphan(uid, &key, containers, &desired);
                    continue;
                }
            }
            if let Msg::ShimClosed { uid, .. } = &msg {
                waiting.remove(uid);
            }
            self.on_msg(msg);
        }
        for uid in orphans.keys() {
            self.stop_orphan(uid);
        }
    }

    /// A shim the state file did not know: adopt it if the manifests want
    /// its pod, stop it otherwise.
    fn adopt_orphan(
        &mut self,
        uid: &str,
        key: &str,
        containers: &[proto::ContainerReport],
        desired: &VecMap<String, crate::spec::Pod>,
    ) {
        let taken = self
            .node
            .pods()
            .any(|p| format!("{}/{}", p.spec.metadata.namespace, p.spec.metadata.name) == key);
        let Some(pod) = desired.get(key).filter(|_| !taken) else {
            log::warn!("pod {key} ({uid}): its shim is not wanted by the manifests; stopping it");
            self.stop_orphan(uid);
            return;
        };
        log::warn!("pod {key} ({uid}): state file lost; adopting its running shim");
        let ms = |ns: i64| ns / 1_000_000;
        let rt = self.shims.rt(uid);
        let adopted = containers
            .iter()
            .map(|c| {
                if c.exit.is_none() {
                    rt.running
                        .insert(c.name.clone(), (c.instance, ms(c.started_at_ns)));
                }
                AdoptedContainer {
                    name: c.name.clone(),
                    instance: c.instance,
                    started_at_ms: ms(c.started_at_ns),
                    exit: c.exit.as_ref().map(|e| AdoptedExit {
                        exit_code: e.exit_code,
                        signal: e.signal,
                        oom_killed: e.oom_killed,
                        finished_at_ms: ms(e.finished_at_ns),
                    }),
                }
            })
            .collect();
        self.node.handle(
            Input::AdoptPod {
                pod: pod.clone(),
                uid: uid.to_string(),
                containers: adopted,
            },
            Now::read(),
        );
        self.dirty = true;
    }

    fn stop_orphan(&mut self, uid: &str) {
        let conn = self.shims.pods.get(uid).and_then(|p| p.conn.clone());
        match conn {
            Some(c) if c.send(proto::Request::Shutdown) => {
                self.shims.rt(uid).removing = true;
            }
            _ => self.finish_remove(uid),
        }
    }
}
