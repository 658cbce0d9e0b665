//! The DaemonSet controller on one node: one pod `<ds>-<5 chars>` when
//! the template's `nodeSelector` and node affinity match the node's
//! labels ([`super::Env::node_labels`]), none otherwise (a Normal event
//! `NodeSelectorMismatch` once, and a condition in the status).
//!
//! `RollingUpdate` on one node: with a `maxSurge` the new pod starts
//! beside the old one, which is deleted once the new one is available
//! (ready for `minReadySeconds`); without, the old pod is deleted first
//! and the new one created when it is gone. `OnDelete`: a new template
//! applies when the pod is deleted. A failed pod is deleted and made
//! again after a back-off (1 s doubling to 15 min, as the controller's
//! `failedPodsBackoff`).

use super::{Cx, PodObs};
use crate::clock::Now;
use crate::lifecycle::{EventType, Phase};
use crate::spec::workload::daemonset::DaemonSetSpec;
use crate::spec::workload::fnv1a32;
use serde::{Deserialize, Serialize};

/// `controller-revision-hash` (the template hash).
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// `pod-template-generation`.
pub const GENERATION_LABEL: &str = "pod-template-generation";
/// The event of a DaemonSet whose template does not match this node.
pub const MISMATCH: &str = "NodeSelectorMismatch";

const BACKOFF_MAX_MS: u64 = 15 * 60 * 1000;

/// The failed-pod back-off, as the DaemonSet controller's
/// `failedPodsBackoff`: 1 s doubling to 15 min, reset once a pod is
/// available. Also a Deployment's and a StatefulSet's (beyond Kubernetes,
/// kept per workload in [`super::Entry`], not in the state file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    /// The current length (ms; 0: none).
    pub len_ms: u64,
    /// When a pod may be made again (mono ms).
    pub retry_at_ms: u64,
}

impl Backoff {
    /// A pod failed at `now`: the next one waits, twice as long as last.
    pub fn failed(&mut self, now: u64) {
        self.len_ms = (self.len_ms * 2).clamp(1000, BACKOFF_MAX_MS);
        self.retry_at_ms = now + self.len_ms;
    }

    /// Whether a pod may be made at `now`; if not, `cx` wakes when it may.
    pub fn allows(&self, cx: &mut Cx<'_>) -> bool {
        let ok = cx.now.mono_ms >= self.retry_at_ms;
        if !ok {
            cx.wake_at(self.retry_at_ms);
        }
        ok
    }
}

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// `metadata.generation`: bumped when the spec changes.
    pub generation: i64,
    /// FNV-1a of the spec the generation is for.
    pub sig: u32,
    /// The template did not match the node at the last sync.
    pub mismatch: bool,
    /// The failed-pod back-off: its length and when it ends (mono ms).
    pub backoff_ms: u64,
    pub retry_at_ms: u64,
}

/// Ready for `min_ready_seconds` at `now_ms` (`podutil.IsPodAvailable`).
pub(crate) fn available(p: &PodObs, min_ready_seconds: i32, now_ms: u64) -> bool {
    p.ready
        && p.ready_since_ms
            .is_some_and(|t| t + min_ready_seconds as u64 * 1000 <= now_ms)
}

/// Asks to be woken when `p` becomes available, if it is ready but not yet.
pub(crate) fn wake_when_available(cx: &mut Cx<'_>, p: &PodObs, min_ready_seconds: i32) {
    if let (true, Some(t)) = (p.ready, p.ready_since_ms) {
        cx.wake_at(t + min_ready_seconds as u64 * 1000);
    }
}

/// `metadata.generation` of a spec: 1, then bumped when `spec` (the
/// spec's fields, as text) changes.
pub(crate) fn generation(g: &mut i64, sig: &mut u32, spec: &str) {
    let s = fnv1a32(spec.as_bytes());
    if *g == 0 || *sig != s {
        *g += 1;
        *sig = s;
    }
}

pub(crate) fn delete(cx: &mut Cx<'_>, name: &str) {
    cx.delete_pod(name);
    cx.event(
        EventType::Normal,
        "SuccessfulDelete",
        format!("Deleted pod: {name}"),
    );
}

/// Whether the template's `nodeSelector` and node affinity match the node.
pub fn fits(cx: &Cx<'_>, spec: &DaemonSetSpec) -> bool {
    let s = &spec.template.pod.spec;
    crate::spec::affinity::matches(
        &s.node_selector,
        s.affinity.as_ref(),
        &cx.env.node_name,
        &cx.env.node_labels,
    )
}

pub(crate) fn sync(cx: &mut Cx<'_>, spec: &DaemonSetSpec, st: &mut State, pods: &[PodObs]) {
    let r = spec
        .rolling_update
        .map(|r| (r.max_surge, r.max_unavailable));
    let fields = format!(
        "{} {r:?} {} {}",
        spec.template.hash, spec.min_ready_seconds, spec.revision_history_limit
    );
    generation(&mut st.generation, &mut st.sig, &fields);
    let now = cx.now.mono_ms;
    let hash = &spec.template.hash;
    let min_ready = spec.min_ready_seconds;
    let mut live: Vec<&PodObs> = Vec::new();
    let mut backoff = Backoff {
        len_ms: st.backoff_ms,
        retry_at_ms: st.retry_at_ms,
    };
    for p in pods.iter().filter(|p| !p.terminating) {
        if matches!(p.phase, Phase::Failed | Phase::Succeeded) {
            cx.event(
                EventType::Warning,
                "FailedDaemonPod",
                format!(
                    "Found failed daemon pod {}/{} on node {}, will try to kill it",
                    p.namespace, p.name, cx.env.node_name
                ),
            );
            delete(cx, &p.name);
            backoff.failed(now);
        } else {
            live.push(p);
        }
    }
    if live.iter().any(|p| available(p, min_ready, now)) {
        backoff.len_ms = 0;
    }
    (st.backoff_ms, st.retry_at_ms) = (backoff.len_ms, backoff.retry_at_ms);
    if !fits(cx, spec) {
        if !st.mismatch {
            st.mismatch = true;
            let message = mismatch_message(cx.env.node_name.as_str());
            cx.event(EventType::Normal, MISMATCH, message);
        }
        for p in live {
            delete(cx, &p.name);
        }
        return;
    }
    st.mismatch = false;
    let is_new = |p: &&PodObs| p.labels.get(REVISION_LABEL) == Some(hash);
    let (new, old): (Vec<&PodObs>, Vec<&PodObs>) = live.into_iter().partition(is_new);
    let surge = spec.rolling_update.is_some_and(|r| !r.max_surge.is_zero());
    // Extra pods (after a restart, say): one of each template at most.
    for p in new.iter().skip(1).chain(old.iter().skip(1)) {
        delete(cx, &p.name);
    }
    let create = match (new.first(), old.first(), spec.rolling_update) {
        (None, None, _) => surge || !pods.iter().any(|p| p.terminating),
        (None, Some(_), None) => false, // OnDelete
        (None, Some(_), Some(_)) if surge => true,
        (None, Some(o), Some(_)) => {
            delete(cx, &o.name);
            false
        }
        (Some(n), Some(o), _) => {
            // The surge: the old pod goes once the new one is available.
            if !surge || available(n, min_ready, now) {
                delete(cx, &o.name);
            } else {
                wake_when_available(cx, n, min_ready);
            }
            false
        }
        (Some(_), None, _) => false,
    };
    if create {
        if !backoff.allows(cx) {
            return;
        }
        let name = format!("{}-{}", cx.meta.name, cx.suffix());
        let generation = st.generation.to_string();
        let pod = cx.pod(
            &spec.template,
            name.clone(),
            &[(REVISION_LABEL, hash), (GENERATION_LABEL, &generation)],
            None,
        );
        cx.create_pod(pod);
        cx.event(
            EventType::Normal,
            "SuccessfulCreate",
            format!("Created pod: {name}"),
        );
    }
}

fn mismatch_message(node: &str) -> String {
    format!("node {node} does not match the pod template's nodeSelector/affinity: no pod runs here")
}

/// The `status` object, as Kubernetes writes it (on one node: 0 or 1).
pub(crate) fn status(
    spec: &DaemonSetSpec,
    st: &State,
    pods: &[PodObs],
    now: Now,
) -> serde_json::Value {
    let live: Vec<&PodObs> = pods.iter().filter(|p| !p.terminating).collect();
    let fits = !st.mismatch;
    let any = |f: &dyn Fn(&PodObs) -> bool| i32::from(fits && live.iter().any(|p| f(p)));
    let available = any(&|p| available(p, spec.min_ready_seconds, now.mono_ms));
    let desired = i32::from(fits);
    let mut s = serde_json::json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": any(&|_| true),
        "numberMisscheduled": i32::from(!fits && !live.is_empty()),
        "numberReady": any(&|p| p.ready),
        "updatedNumberScheduled":
            any(&|p| p.labels.get(REVISION_LABEL) == Some(&spec.template.hash)),
        "numberAvailable": available,
        "numberUnavailable": desired - available,
        "observedGeneration": st.generation,
    });
    if st.mismatch {
        s["conditions"] = serde_json::json!([{
            "type": "Scheduled", "status": "False", "reason": MISMATCH,
            "message": "this node does not match the pod template's nodeSelector/affinity",
        }]);
    }
    s
}
