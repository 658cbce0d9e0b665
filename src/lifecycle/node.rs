//! [`Node`]: every pod on this device, the input dispatcher and the output
//! queue, and admission (the kubelet's `maxPods`).
//!
//! Admission, as the kubelet's: a pod new to the node is admitted while
//! fewer than `maxPods` admitted pods are not terminal (Succeeded/Failed
//! pods do not count), and while the admitted pods' specs fit the state
//! file's budget for specs ([`DEFAULT_SPEC_BUDGET`]). Otherwise it is
//! rejected: phase `Failed`, reason `OutOfpods` (or `StateFileFull`), a
//! Warning event, no sandbox. Admitted pods are never evicted for a newer
//! one, so which pods run depends only on the order they arrived. A
//! rejected pod stays rejected until its spec changes, it is deleted, or
//! the agent restarts (rejected pods are not in the snapshot: they are
//! admitted again, in order, if there is room then).

use super::pod::{Change, PodView, StopWhy, classify, normalize_ns};
use super::pull::Got;
use super::status::{Phase, PodStatus};
use super::{EventType, Fx, Input, Now, Output};
use crate::spec::Pod;
use crate::vecmap::VecMap;
use std::collections::{HashMap, VecDeque};

/// The kubelet's default `maxPods`.
pub const DEFAULT_MAX_PODS: usize = 110;

/// The bytes that admitted pods' specs (as JSON) may take in the state
/// file: half of its 16 MiB cap ([`crate::store::DEFAULT_MAX_SIZE`]); the
/// other half is headroom for statuses, shim records, sources and the
/// fleet documents. A pod that would go over it is rejected
/// (`StateFileFull`), so the state file can always be saved.
pub const DEFAULT_SPEC_BUDGET: usize = (crate::store::DEFAULT_MAX_SIZE / 2) as usize;

/// The kubelet's reason for a pod rejected for the node's pod count.
pub const OUT_OF_PODS: &str = "OutOfpods";
/// The kubelet's reason for a pod rejected for a `hostPort` in use (or,
/// here, one the node cannot forward: `podNetwork: none`).
pub const NODE_PORTS: &str = "NodePorts";
/// The reason for a pod rejected because the state file has no room for it.
pub const STATE_FILE_FULL: &str = "StateFileFull";
/// The kubelet's reason for a pod whose `nodeSelector` or required node
/// affinity does not match this node's labels.
pub const NODE_AFFINITY: &str = "NodeAffinity";

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
    /// Admission limits.
    max_pods: usize,
    /// Pods have a network of their own (`podNetwork: bridge`): a
    /// `hostPort` is DNATed to them. Without one only `hostNetwork` pods
    /// may have a `hostPort`.
    pod_network: bool,
    spec_budget: usize,
    /// The node's labels, for `nodeSelector` and node affinity.
    labels: VecMap<String, String>,
    /// Pods refused at admission, by `namespace/name`; never synced, not
    /// in the snapshot.
    rejected: VecMap<String, PodView>,
    /// uid → `namespace/name` of the rejected pods.
    rejected_uids: HashMap<String, String>,
    /// uid → JSON size of an admitted pod's spec (filled lazily).
    spec_bytes: HashMap<String, usize>,
    /// How many times a pod was synced: the tests' measure of work.
    #[cfg(test)]
    pub(crate) syncs: u64,
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
            max_pods: DEFAULT_MAX_PODS,
            pod_network: true,
            spec_budget: DEFAULT_SPEC_BUDGET,
            labels: VecMap::new(),
            rejected: VecMap::new(),
            rejected_uids: HashMap::new(),
            spec_bytes: HashMap::new(),
            #[cfg(test)]
            syncs: 0,
        }
    }

    /// Sets the admission limits: at most `max_pods` admitted pods that are
    /// not terminal, whose specs take at most `spec_budget` bytes as JSON.
    /// Pods already admitted stay (a lower limit applies to new pods).
    pub fn set_limits(&mut self, max_pods: usize, spec_budget: usize) {
        self.max_pods = max_pods;
        self.spec_budget = spec_budget;
    }

    /// The node's labels (`crate::spec::affinity::node_labels`): a new
    /// pod whose `nodeSelector` or required node affinity does not match
    /// them is rejected (`NodeAffinity`). Admitted pods stay (the
    /// affinity is `IgnoredDuringExecution`).
    pub fn set_labels(&mut self, labels: VecMap<String, String>) {
        self.labels = labels;
    }

    /// The node's labels (as [`Node::set_labels`] set them).
    pub fn labels(&self) -> &VecMap<String, String> {
        &self.labels
    }

    /// Whether pods have a network of their own (`podNetwork`), which a
    /// `hostPort` of a pod without `hostNetwork` needs.
    pub fn set_pod_network(&mut self, on: bool) {
        self.pod_network = on;
    }

    /// Why `pod`'s `hostPort`s cannot be had on this node, if so; the
    /// admitted pod at index `except` (the one `pod` would replace) aside.
    fn host_port_refusal(&self, pod: &crate::spec::Pod, except: Option<usize>) -> Option<String> {
        use crate::spec::host_ports;
        if !self.pod_network && !pod.spec.host_network {
            if let Some(p) = host_ports::host_ports(pod).first() {
                return Some(format!(
                    "{}: {}/{} cannot be forwarded: the node runs with podNetwork: none \
                     (pods have no network of their own); use hostNetwork: true",
                    p.field,
                    p.host_port,
                    p.protocol_name()
                ));
            }
        }
        let others = self
            .pods
            .iter()
            .enumerate()
            .filter(|(i, p)| Some(*i) != except && p.st.terminal.is_none())
            .map(|(_, p)| (format!("{}/{}", p.namespace(), p.name()), &p.spec));
        host_ports::conflict(pod, others)
    }

    /// `maxPods`.
    pub fn max_pods(&self) -> usize {
        self.max_pods
    }

    /// Admitted pods that are not terminal (what `maxPods` counts).
    pub fn active_pods(&self) -> usize {
        self.pods.iter().filter(|p| p.st.terminal.is_none()).count()
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
            // Applying or deleting one pod re-evaluates that pod only: with
            // every pod settled per `ApplyPod`, a rescan of n pods was
            // quadratic.
            None => match self.desired_target(&input) {
                Some(uid) => Touched::Some(vec![uid]),
                None => Touched::All,
            },
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
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The mono time at which `handle(Input::Tick, now)` is due next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.pods.iter().filter_map(PodView::next_timeout).min()
    }

    /// Every pod: the admitted ones in the order they were created, then
    /// the rejected ones by `namespace/name`.
    pub fn pods(&self) -> impl Iterator<Item = &PodView> {
        self.pods.iter().chain(self.rejected.values())
    }

    /// The admitted pods, in the order they were created.
    pub fn admitted(&self) -> impl Iterator<Item = &PodView> {
        self.pods.iter()
    }

    pub fn pod(&self, uid: &str) -> Option<&PodView> {
        self.pods.iter().find(|p| p.uid == uid).or_else(|| {
            self.rejected_uids
                .get(uid)
                .and_then(|k| self.rejected.get(k))
        })
    }

    /// The pod `namespace/name` (an empty namespace means `default`).
    pub fn find(&self, namespace: &str, name: &str) -> Option<&PodView> {
        let ns = normalize_ns(namespace);
        self.pods
            .iter()
            .find(|p| p.namespace() == ns && p.name() == name)
            .or_else(|| self.rejected.get(&format!("{ns}/{name}")))
    }

    /// Whether `uid` was rejected at admission.
    pub fn is_rejected(&self, uid: &str) -> bool {
        self.rejected_uids.contains_key(uid)
    }

    /// The admitted pod an `ApplyPod`/`DeletePod`/`AdoptPod` is about.
    fn desired_target(&self, input: &Input) -> Option<String> {
        match input {
            Input::ApplyPod { pod, fresh_uid } => Some(
                self.find_admitted(&pod.metadata.namespace, &pod.metadata.name)
                    .map(|p| p.uid.clone())
                    .unwrap_or_else(|| {
                        let uid = pod.metadata.uid.as_str();
                        let ns = normalize_ns(&pod.metadata.namespace);
                        if uid.is_empty() || self.uid_of_another(uid, ns, &pod.metadata.name) {
                            fresh_uid.clone()
                        } else {
                            uid.to_string()
                        }
                    }),
            ),
            Input::DeletePod { namespace, name } => Some(
                self.find_admitted(namespace, name)
                    .map(|p| p.uid.clone())
                    .unwrap_or_default(),
            ),
            Input::AdoptPod { uid, .. } => Some(uid.clone()),
            _ => None,
        }
    }

    fn find_admitted(&self, namespace: &str, name: &str) -> Option<&PodView> {
        let ns = normalize_ns(namespace);
        self.pods
            .iter()
            .find(|p| p.namespace() == ns && p.name() == name)
    }

    /// Bytes the admitted pods' specs take as JSON.
    fn used_spec_bytes(&mut self) -> usize {
        let mut used = 0usize;
        for p in &self.pods {
            let n = *self
                .spec_bytes
                .entry(p.uid.clone())
                .or_insert_with(|| crate::spec::validate::json_size(&p.spec));
            used = used.saturating_add(n);
        }
        used
    }

    /// Records `pod` as rejected at admission, as the kubelet's
    /// `rejectPod`: phase Failed, the reason, "Pod was rejected: …", and
    /// a Warning event.
    fn reject(
        &mut self,
        pod: Pod,
        uid: String,
        reason: &str,
        message: String,
        fx: &mut Fx,
        now: Now,
    ) {
        let key = format!(
            "{}/{}",
            normalize_ns(&pod.metadata.namespace),
            pod.metadata.name
        );
        let mut view = PodView::new(pod, uid.clone(), now);
        view.st.terminal = Some(Phase::Failed);
        view.status = PodStatus {
            phase: Phase::Failed,
            reason: reason.to_string(),
            message: format!("Pod was rejected: {message}"),
            ..Default::default()
        };
        fx.event(&uid, EventType::Warning, reason, message, None);
        fx.out.push(Output::StatusChanged { uid: uid.clone() });
        self.rejected_uids.insert(uid, key.clone());
        self.rejected.insert(key, view);
    }

    /// Forgets a rejected pod (deleted, or applied again with another spec).
    fn unreject(&mut self, key: &str, fx: &mut Fx) -> Option<PodView> {
        let gone = self.rejected.remove(key)?;
        self.rejected_uids.remove(&gone.uid);
        fx.out.push(Output::PodRemoved {
            uid: gone.uid.clone(),
        });
        Some(gone)
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
                if self.unreject(&format!("{ns}/{name}"), fx).is_some() {
                    return;
                }
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
                    let reason = super::eviction::REASON;
                    p.fail(reason, message, container.as_deref(), fx, now);
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
                let got = match pulled_ms {
                    None => Got::Present,
                    Some(ms) => Got::Pulled {
                        pull_ms: ms,
                        total_ms: ms,
                        size: None,
                    },
                };
                if let Some(p) = self.by_uid(&uid) {
                    p.on_image_ready(&container, image_id, got, fx, now);
                }
            }
            Input::ImagePulling {
                uid,
                container,
                progress,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    p.on_image_pulling(&container, progress, fx);
                }
            }
            Input::ImagePulled {
                uid,
                container,
                image_id,
                pull_ms,
                total_ms,
                size,
                offline,
            } => {
                let got = match offline {
                    Some(e) => Got::Offline(e),
                    None => Got::Pulled {
                        pull_ms,
                        total_ms,
                        size: Some(size),
                    },
                };
                if let Some(p) = self.by_uid(&uid) {
                    p.on_image_ready(&container, image_id, got, fx, now);
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
                message,
            } => {
                if let Some(p) = self.by_uid(&uid) {
                    let times = (started_at_ms, finished_at_ms);
                    let exit = (exit_code, signal, oom_killed, message);
                    p.on_exited(&container, instance, exit, times, fx, now);
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

    /// Whether `uid` is the uid of a pod (running or rejected) other than
    /// `ns/name`.
    fn uid_of_another(&self, uid: &str, ns: &str, name: &str) -> bool {
        let key = format!("{ns}/{name}");
        self.pods
            .iter()
            .any(|p| p.uid == uid && (p.namespace() != ns || p.name() != name))
            || self.rejected_uids.get(uid).is_some_and(|k| *k != key)
    }

    fn apply_pod(&mut self, mut pod: Pod, fresh_uid: String, fx: &mut Fx, now: Now) {
        let ns = normalize_ns(&pod.metadata.namespace).to_string();
        if !pod.metadata.uid.is_empty()
            && self.uid_of_another(&pod.metadata.uid, &ns, &pod.metadata.name)
        {
            // A manifest copied from another pod (`get -o yaml`): as the API
            // server does on create, the pod gets a uid of its own. The
            // uid is dropped from the spec too, so that applying the same
            // manifest again is the same object, not a replacement.
            log::info!(
                "pod {ns}/{}: metadata.uid {} belongs to another pod; it gets a fresh uid",
                pod.metadata.name,
                pod.metadata.uid
            );
            pod.metadata.uid.clear();
        }
        let new_uid = if pod.metadata.uid.is_empty() {
            fresh_uid
        } else {
            pod.metadata.uid.clone()
        };
        let key = format!("{ns}/{}", pod.metadata.name);
        if let Some(r) = self.rejected.get(&key) {
            let same_object = pod.metadata.uid.is_empty() || pod.metadata.uid == r.uid;
            if same_object && classify(&r.spec.spec, &pod.spec) == Change::Same {
                return; // still rejected: a new object or spec is admitted again
            }
            self.unreject(&key, fx);
        }
        let new_size = crate::spec::validate::json_size(&pod);
        let Some(i) = self
            .pods
            .iter()
            .position(|p| p.namespace() == ns && p.name() == pod.metadata.name)
        else {
            if self.pods.iter().any(|p| p.uid == new_uid)
                || self.rejected_uids.contains_key(&new_uid)
            {
                log::warn!(
                    "pod {ns}/{}: uid {new_uid} is already in use; ignored",
                    pod.metadata.name
                );
                return;
            }
            let used = self.active_pods();
            if used >= self.max_pods {
                let message = format!(
                    "Node didn't have enough resource: pods, requested: 1, used: {used}, capacity: {}",
                    self.max_pods
                );
                self.reject(pod, new_uid, OUT_OF_PODS, message, fx, now);
                return;
            }
            if !crate::spec::affinity::matches(
                &pod.spec.node_selector,
                pod.spec.affinity.as_ref(),
                &self.node_name,
                &self.labels,
            ) {
                let message = format!("Predicate {NODE_AFFINITY} failed");
                self.reject(pod, new_uid, NODE_AFFINITY, message, fx, now);
                return;
            }
            if let Some(message) = self.host_port_refusal(&pod, None) {
                self.reject(pod, new_uid, NODE_PORTS, message, fx, now);
                return;
            }
            let bytes = self.used_spec_bytes();
            if bytes.saturating_add(new_size) > self.spec_budget {
                let message = format!(
                    "the node's state file has no room for its spec: {new_size} bytes, \
                     with {bytes} of {} bytes for pod specs in use",
                    self.spec_budget
                );
                self.reject(pod, new_uid, STATE_FILE_FULL, message, fx, now);
                return;
            }
            self.spec_bytes.insert(new_uid.clone(), new_size);
            self.pods.push(PodView::new(pod, new_uid, now));
            fx.persist = true;
            return;
        };
        if self.pods[i].spec != pod {
            // A changed spec is admitted again for its hostPorts and must
            // fit the budget; the running pod is kept when it does not.
            if let Some(message) = self.host_port_refusal(&pod, Some(i)) {
                let uid = self.pods[i].uid.clone();
                let message =
                    format!("the new spec was refused, the pod keeps its spec: {message}");
                fx.event(&uid, EventType::Warning, NODE_PORTS, message, None);
                return;
            }
            let old = crate::spec::validate::json_size(&self.pods[i].spec);
            let bytes = self.used_spec_bytes();
            if bytes.saturating_sub(old).saturating_add(new_size) > self.spec_budget {
                let uid = self.pods[i].uid.clone();
                fx.event(
                    &uid,
                    EventType::Warning,
                    STATE_FILE_FULL,
                    format!(
                        "the new spec ({new_size} bytes) was refused: the node's state file has \
                         room for {} bytes of pod specs and {bytes} are in use; the pod keeps its spec",
                        self.spec_budget
                    ),
                    None,
                );
                return;
            }
            let uid = self.pods[i].uid.clone();
            self.spec_bytes.remove(&uid);
        }
        let p = &mut self.pods[i];
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
                #[cfg(test)]
                {
                    self.syncs += 1;
                }
                if p.sync(fx, now) {
                    removed = true;
                    break;
                }
                let status = p.build_status(self.host_ip.as_deref(), now);
                // A pod stopped because its app containers finished (its
                // sidecars stop) becomes terminal once nothing runs.
                let stopping = p.st.stopping.map(|s| s.why);
                if status.phase.is_terminal()
                    && p.st.terminal.is_none()
                    && stopping.is_none_or(|w| w == StopWhy::Terminal)
                {
                    p.st.terminal = Some(status.phase);
                    if stopping.is_none() {
                        p.stop(StopWhy::Terminal, fx, now);
                    }
                    continue;
                }
                if p.store_status(status, now) {
                    changed.push(p.uid.clone());
                }
                break;
            }
            if removed {
                let gone = self.pods.remove(i);
                self.spec_bytes.remove(&gone.uid);
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
        | Input::ImagePulling { uid, .. }
        | Input::ImagePulled { uid, .. }
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
