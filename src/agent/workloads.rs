//! The workload controllers' shell ([`crate::workloads`]): what the node's
//! pods look like to them ([`observe`]), the node's facts ([`Env`]), and
//! their intents carried out as lifecycle inputs and events.

use super::{Agent, new_uid};
use crate::clock::Now;
use crate::fleet::doc::ObjectRef;
use crate::lifecycle::{Input, Node, PodView};
use crate::workloads::{Env, Intent, PodObs};

/// How often the clock's sync state is asked again (ms); the CronJob
/// controller wakes at least every minute.
const CLOCK_RECHECK_MS: u64 = 10_000;

/// Random bits for a fresh controller state's name suffixes.
pub(super) fn seed() -> u64 {
    let mut b = [0u8; 8];
    if !crate::sys::process::getrandom(&mut b) {
        return crate::clock::wall_ns() as u64 ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(b)
}

/// Every pod of the node that a workload made (it has an owner reference).
pub(super) fn observe(node: &Node, now: Now) -> Vec<PodObs> {
    node.pods()
        .filter(|p| !p.spec.metadata.owner_references.is_empty())
        .map(|p| obs(p, now))
        .collect()
}

/// A wall-clock RFC 3339 time as mono ms (clamped to `now`).
fn mono_of(t: Option<&str>, now: Now) -> Option<u64> {
    let wall = crate::clock::parse_rfc3339_ms(t?)?;
    let ago = (now.wall_ms - wall).max(0) as u64;
    Some(now.mono_ms.saturating_sub(ago))
}

fn obs(p: &PodView, now: Now) -> PodObs {
    let ready = p
        .status
        .conditions
        .iter()
        .find(|c| c.kind == "Ready")
        .filter(|c| c.status == "True");
    let statuses = || {
        p.status
            .init_container_statuses
            .iter()
            .chain(&p.status.container_statuses)
    };
    PodObs {
        namespace: p.namespace().to_string(),
        name: p.name().to_string(),
        uid: p.uid.clone(),
        owner_uid: p.spec.metadata.owner_references[0].uid.clone(),
        labels: p.spec.metadata.labels.clone(),
        phase: p.status.phase,
        ready: ready.is_some(),
        ready_since_ms: ready
            .and_then(|c| mono_of(c.last_transition_time.as_deref(), now))
            .or(ready.map(|_| now.mono_ms)),
        terminating: p.is_terminating(),
        restarts: statuses().map(|c| c.restart_count.max(0) as u32).sum(),
        created_ms: mono_of(p.status.start_time.as_deref(), now).unwrap_or(now.mono_ms),
        reason: p.status.reason.clone(),
        message: p.status.message.clone(),
        exit_codes: statuses()
            .filter_map(|c| {
                let t = c
                    .state
                    .terminated
                    .as_ref()
                    .or(c.last_state.terminated.as_ref())?;
                Some((c.name.clone(), t.exit_code))
            })
            .collect(),
    }
}

impl Agent {
    /// The node's facts for the controllers.
    fn workload_env(&mut self, now: Now) -> Env {
        Env {
            node_name: self.cfg.node_name.clone(),
            // Computed at start (`node_labels::node_labels`), as admission's.
            node_labels: self.node.labels().clone(),
            clock_synced: self.clock_synced(now),
            auto_rollback: self.cfg.auto_rollback,
            // Lent for the sync (`sync_workloads` puts them back).
            zones: Default::default(),
        }
    }

    /// Whether the wall clock is synchronized, for the CronJobs: asked of
    /// the kernel only when a CronJob exists, at most every
    /// [`CLOCK_RECHECK_MS`] (not on every turn of the main loop).
    fn clock_synced(&mut self, now: Now) -> bool {
        if self.cfg.assume_clock_synchronized {
            return true;
        }
        let cronjobs = self
            .workloads
            .entries()
            .any(|e| e.key().kind == crate::spec::workload::WorkloadKind::CronJob);
        if !cronjobs {
            return false;
        }
        match self.clock_checked {
            Some((at, synced)) if now.mono_ms < at + CLOCK_RECHECK_MS => synced,
            _ => {
                let synced = crate::sys::time::clock_synchronized();
                self.clock_checked = Some((now.mono_ms, synced));
                synced
            }
        }
    }

    /// Runs the controllers on the node's pods and queues what they ask
    /// for. Only when no input is queued for the lifecycle core: a
    /// controller must see the pods it asked for before it decides again.
    pub(super) fn sync_workloads(&mut self) {
        if !self.pending.is_empty() || self.workloads.is_empty() && !self.has_owned_pods() {
            return;
        }
        let now = Now::read();
        let pods = observe(&self.node, now);
        let mut env = self.workload_env(now);
        env.zones = std::mem::take(&mut self.zones);
        let intents = self.workloads.sync(now, &env, &pods);
        self.zones = env.zones;
        if self.workloads.take_dirty() {
            self.dirty = true;
        }
        for intent in intents {
            match intent {
                Intent::CreatePod(pod) => {
                    let (ns, name) = (&pod.metadata.namespace, &pod.metadata.name);
                    if self.node.find(ns, name).is_some() {
                        // A static or fleet pod has the name: it is not
                        // replaced. The controller tries another name (or,
                        // for a StatefulSet, waits until the name is free).
                        log::warn!(
                            "pod {ns}/{name} of {} not created: a pod of that name exists",
                            pod.metadata.owner_references[0].name
                        );
                        continue;
                    }
                    self.pending.push_back(Input::ApplyPod {
                        pod: *pod,
                        fresh_uid: new_uid(),
                    });
                }
                Intent::DeletePod { namespace, name } => {
                    if self.desired.owner(&format!("{namespace}/{name}")).is_some() {
                        continue; // a static or fleet pod: not the controllers'
                    }
                    self.pending.push_back(Input::DeletePod { namespace, name });
                }
                Intent::DeleteVolume { namespace, claim } => {
                    let dir = crate::lifecycle::container_config::claim_dir(
                        &self.cfg.state_dir.join("volumes"),
                        &namespace,
                        &claim,
                    );
                    log::info!("deleting the claim directory {}", dir.display());
                    if let Err(e) = super::trash::discard(&self.cfg.state_dir, &dir) {
                        log::warn!("deleting {}: {e}", dir.display());
                    }
                }
                Intent::Event {
                    key,
                    kind,
                    reason,
                    message,
                } => {
                    match kind {
                        crate::lifecycle::EventType::Warning => {
                            log::warn!("{key}: {reason}: {message}")
                        }
                        crate::lifecycle::EventType::Normal => {
                            log::info!("{key}: {reason}: {message}")
                        }
                    }
                    let uid = self
                        .workloads
                        .get(&key)
                        .map(|e| e.uid.clone())
                        .unwrap_or_default();
                    let object = ObjectRef {
                        kind: key.kind.name().to_string(),
                        name: key.name.clone(),
                        namespace: key.namespace.clone(),
                        uid,
                        api_version: key.kind.api_version().to_string(),
                        ..ObjectRef::default()
                    };
                    self.publish_event(object, kind, &reason, &message);
                }
            }
        }
    }

    /// Reads the time zones the CronJobs name (once each; a failed one is
    /// read again at the next change).
    pub(super) fn load_zones(&mut self) {
        crate::sys::time::load_zones(
            self.workloads.entries().map(|e| &e.workload),
            &mut self.zones,
        );
    }

    fn has_owned_pods(&self) -> bool {
        self.node
            .pods()
            .any(|p| !p.spec.metadata.owner_references.is_empty())
    }
}
