//! [`Node`]: every pod on this device, the input dispatcher and the output
//! queue.

use super::pod::{Change, PodView, StopWhy, classify, normalize_ns};
use super::status::PodStatus;
use super::{Fx, Input, Now, Output};
use crate::spec::Pod;
use std::collections::VecDeque;

/// The pods of this node and their state machines (sans-IO).
#[derive(Debug)]
pub struct Node {
    pub(crate) node_name: String,
    pub(crate) host_ip: Option<String>,
    pub(crate) pods: Vec<PodView>,
    out: VecDeque<Output>,
    /// The latest `now` seen (the snapshot records it).
    pub(crate) last_now: Now,
    /// Re-evaluate every pod on the next `handle` (after a restore).
    settle_all: bool,
}

impl Node {
    pub fn new(node_name: String) -> Node {
        Node::from_parts(node_name, None, Vec::new(), Now::default())
    }

    pub(crate) fn from_parts(
        node_name: String,
        host_ip: Option<String>,
        pods: Vec<PodView>,
        now: Now,
    ) -> Node {
        Node {
            node_name,
            host_ip,
            pods,
            out: VecDeque::new(),
            last_now: now,
            settle_all: true,
        }
    }

    pub(crate) fn push_output(&mut self, o: Output) {
        self.out.push_back(o);
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Feeds one input. Timers due at `now` fire first, whatever the input.
    pub fn handle(&mut self, input: Input, now: Now) {
        if now > self.last_now {
            self.last_now = now;
        }
        let mut fx = Fx::default();
        // Only the pods this input or a due timer touches are re-evaluated:
        // with many pods probed often, settling every pod on every probe
        // result is what the agent's CPU would be spent on.
        let mut touched = match target_uid(&input) {
            _ if std::mem::take(&mut self.settle_all) => Touched::All,
            Some(uid) => Touched::Some(vec![uid.to_string()]),
            None if matches!(input, Input::Tick) => Touched::Some(Vec::new()),
            None => Touched::All,
        };
        for p in &mut self.pods {
            if p.next_timeout().is_some_and(|t| t <= now.mono_ms) {
                touched.add(&p.uid);
                p.fire_timers(&mut fx, now);
            }
        }
        self.apply(input, &mut fx, now);
        let mut changed = self.settle(&mut fx, now, &mut touched);
        // Timers the input itself armed for `now` (a probe's first run).
        for p in &mut self.pods {
            if p.next_timeout().is_some_and(|t| t <= now.mono_ms) {
                touched.add(&p.uid);
                p.fire_timers(&mut fx, now);
            }
        }
        for uid in self.settle(&mut fx, now, &mut touched) {
            if !changed.contains(&uid) {
                changed.push(uid);
            }
        }
        changed.retain(|u| self.pods.iter().any(|p| p.uid == *u));
        if fx.persist {
            self.out.push_back(Output::Persist);
        }
        self.out.extend(fx.out);
        self.out.extend(fx.acks);
        self.out
            .extend(changed.into_iter().map(|uid| Output::StatusChanged { uid }));
    }

    /// The next output, in order. Drain after every `handle`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The mono time at which `handle(Input::Tick, now)` is due next.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.pods.iter().filter_map(PodView::next_timeout).min()
    }

    /// Every pod, in the order they were created.
    pub fn pods(&self) -> impl Iterator<Item = &PodView> {
        self.pods.iter()
    }

    pub fn pod(&self, uid: &str) -> Option<&PodView> {
        self.pods.iter().find(|p| p.uid == uid)
    }

    /// The pod `namespace/name` (an empty namespace means `default`).
    pub fn find(&self, namespace: &str, name: &str) -> Option<&PodView> {
        let ns = normalize_ns(namespace);
        self.pods
            .iter()
            .find(|p| p.namespace() == ns && p.name() == name)
    }

    /// The pod's `v1.PodStatus` as of the last `handle`.
    pub fn status(&self, uid: &str) -> Option<PodStatus> {
        self.pod(uid).map(|p| p.status.clone())
    }

    fn by_uid(&mut self, uid: &str) -> Option<&mut PodView> {
        self.pods.iter_mut().find(|p| p.uid == uid)
    }

    fn apply(&mut self, input: Input, fx: &mut Fx, now: Now) {
        match input {
            Input::Tick => {}
            Input::ApplyPod { pod, fresh_uid } => self.apply_pod(pod, fresh_uid, fx, now),
            Input::AdoptPod {
                pod,
                uid,
                containers,
            } => self.adopt_pod(pod, uid, containers, fx, now),
            Input::DeletePod { namespace, name } => {
                let ns = normalize_ns(&namespace).to_string();
                let Some(p) = self
                    .pods
                    .iter_mut()
                    .find(|p| p.namespace() == ns && p.name() == name)
                else {
                    return;
                };
                match p.st.stopping.map(|s| s.why) {
                    Some(StopWhy::Delete) => {}
                    _ => {
                        p.st.replacement = None;
                        p.stop(StopWhy::Delete, fx, now);
                    }
                }
            }
            Input::EvictPod {
                uid,
                message,
                container,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    if p.st.terminal.is_none() && p.st.stopping.is_none() {
                        fx.event(
                            &uid,
                            super::EventType::Warning,
                            super::eviction::REASON,
                            message.clone(),
                            container.as_deref(),
                        );
                        p.st.terminal = Some(super::status::Phase::Failed);
                        p.st.evicted = Some(message);
                        p.stop(StopWhy::Terminal, fx, now);
                    }
                }
            }
            Input::SandboxReady { uid } => {
                if let Some(p) = self.by_uid(&uid) {
                    if p.st.sandbox == super::pod::Sandbox::Creating {
                        p.st.sandbox = super::pod::Sandbox::Ready;
                        fx.persist = true;
                    }
                }
            }
            Input::SandboxFailed { uid, message } => {
                if let Some(p) = self.by_uid(&uid) {
                    p.on_sandbox_failed(&message, fx, now);
                }
            }
            Input::SandboxGone { uid } => {
                if let Some(p) = self.by_uid(&uid) {
                    p.on_sandbox_gone(fx, now);
                }
            }
            Input::SandboxRemoved { uid } => {
                if let Some(p) = self.by_uid(&uid) {
                    if p.st.sandbox == super::pod::Sandbox::Removing {
                        p.st.sandbox = super::pod::Sandbox::Removed;
                        fx.persist = true;
                    }
                }
            }
            Input::ImageReady {
                uid,
                container,
                image_id,
                pulled_ms,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    p.on_image_ready(&container, image_id, pulled_ms, fx, now);
                }
            }
            Input::ImageFailed {
                uid,
                container,
                reason,
                message,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    p.on_image_failed(&container, &reason, &message, fx, now);
                }
            }
            Input::ContainerStarted {
                uid,
                container,
                instance,
                started_at_ms,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    p.on_started(&container, instance, started_at_ms, fx, now);
                }
            }
            Input::ContainerStartFailed {
                uid,
                container,
                instance,
                reason,
                message,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    p.on_start_failed(&container, instance, &reason, &message, fx, now);
                }
            }
            Input::ContainerExited {
                uid,
                container,
                instance,
                exit_code,
                signal,
                oom_killed,
                started_at_ms,
                finished_at_ms,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    let times = (started_at_ms, finished_at_ms);
                    p.on_exited(
                        &container, instance, exit_code, signal, oom_killed, times, fx, now,
                    );
                }
                fx.acks.push(Output::AckExit {
                    uid,
                    container,
                    instance,
                });
            }
            Input::ProbeResult {
                uid,
                container,
                instance,
                kind,
                success,
                message,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    p.on_probe_result(&container, instance, kind, success, &message, fx, now);
                }
            }
            Input::NodeAddress { host_ip } => self.host_ip = host_ip,
            Input::PodAddress { uid, pod_ip } => {
                if let Some(p) = self.by_uid(&uid) {
                    if p.st.pod_ip != pod_ip {
                        p.st.pod_ip = pod_ip;
                        fx.persist = true;
                    }
                }
            }
        }
    }

    fn apply_pod(&mut self, pod: Pod, fresh_uid: String, fx: &mut Fx, now: Now) {
        let ns = normalize_ns(&pod.metadata.namespace).to_string();
        let new_uid = if pod.metadata.uid.is_empty() {
            fresh_uid
        } else {
            pod.metadata.uid.clone()
        };
        let existing = self
            .pods
            .iter_mut()
            .find(|p| p.namespace() == ns && p.name() == pod.metadata.name);
        let Some(p) = existing else {
            if self.pods.iter().any(|p| p.uid == new_uid) {
                log::warn!(
                    "pod {ns}/{}: uid {new_uid} is already in use; ignored",
                    pod.metadata.name
                );
                return;
            }
            self.pods.push(PodView::new(pod, new_uid, now));
            fx.persist = true;
            return;
        };
        if p.is_terminating() {
            p.st.replacement = Some((pod, new_uid));
            p.stop(StopWhy::Replace, fx, now);
            return;
        }
        let same_object = pod.metadata.uid.is_empty() || pod.metadata.uid == p.uid;
        let change = classify(&p.spec.spec, &pod.spec);
        match change {
            Change::Same if same_object => {
                let mut pod = pod;
                pod.metadata.uid = p.uid.clone();
                if pod != p.spec {
                    p.spec = pod;
                    fx.persist = true;
                }
            }
            Change::ImagesOnly if same_object && p.st.terminal.is_none() => p.apply_images(pod, fx),
            _ => {
                p.st.replacement = Some((pod, new_uid));
                p.stop(StopWhy::Replace, fx, now);
            }
        }
    }

    /// Syncs every pod until it is stable, notices terminal phases, removes
    /// finished pods (creating their replacements), and stores statuses.
    /// Returns the uids whose status changed.
    fn settle(&mut self, fx: &mut Fx, now: Now, touched: &mut Touched) -> Vec<String> {
        let mut changed = Vec::new();
        let mut i = 0;
        while i < self.pods.len() {
            let p = &mut self.pods[i];
            if !touched.contains(&p.uid) {
                i += 1;
                continue;
            }
            let mut removed = false;
            for _ in 0..4 {
                if p.sync(fx, now) {
                    removed = true;
                    break;
                }
                let status = p.build_status(self.host_ip.as_deref(), now);
                if status.phase.is_terminal() && p.st.terminal.is_none() && p.st.stopping.is_none()
                {
                    p.st.terminal = Some(status.phase);
                    p.stop(StopWhy::Terminal, fx, now);
                    continue;
                }
                if p.store_status(status, now) {
                    changed.push(p.uid.clone());
                }
                break;
            }
            if removed {
                let gone = self.pods.remove(i);
                changed.retain(|u| *u != gone.uid);
                fx.out.push(Output::PodRemoved {
                    uid: gone.uid.clone(),
                });
                fx.persist = true;
                if let Some((pod, uid)) = gone.st.replacement {
                    touched.add(&uid);
                    self.pods.insert(i, PodView::new(pod, uid, now));
                }
                continue;
            }
            i += 1;
        }
        changed
    }
}

/// The pod an input is about, when it names one by uid.
fn target_uid(input: &Input) -> Option<&str> {
    match input {
        Input::SandboxReady { uid }
        | Input::SandboxFailed { uid, .. }
        | Input::SandboxGone { uid }
        | Input::SandboxRemoved { uid }
        | Input::ImageReady { uid, .. }
        | Input::ImageFailed { uid, .. }
        | Input::ContainerStarted { uid, .. }
        | Input::ContainerStartFailed { uid, .. }
        | Input::ContainerExited { uid, .. }
        | Input::ProbeResult { uid, .. }
        | Input::PodAddress { uid, .. }
        | Input::EvictPod { uid, .. } => Some(uid),
        Input::Tick
        | Input::ApplyPod { .. }
        | Input::AdoptPod { .. }
        | Input::DeletePod { .. }
        | Input::NodeAddress { .. } => None,
    }
}

/// Which pods one `handle` must re-evaluate.
enum Touched {
    All,
    Some(Vec<String>),
}

impl Touched {
    fn add(&mut self, uid: &str) {
        if let Touched::Some(v) = self {
            if !v.iter().any(|u| u == uid) {
                v.push(uid.to_string());
            }
        }
    }

    fn contains(&self, uid: &str) -> bool {
        match self {
            Touched::All => true,
            Touched::Some(v) => v.iter().any(|u| u == uid),
        }
    }
}
