//! The StatefulSet controller on one node, as Kubernetes' (`stateful_set_control.go`):
//!
//! - pods `<set>-<ordinal>`, ordinals `start..start+replicas`;
//! - `OrderedReady`: created one at a time in ascending order, each
//!   Running and available (ready for `minReadySeconds`) before the next;
//!   scaled down from the highest ordinal, one at a time, each gone
//!   before the next; nothing moves while a pod is unhealthy. `Parallel`:
//!   all at once;
//! - `RollingUpdate`: from the highest ordinal down to `partition`, one
//!   pod at a time, each healthy again before the next; a pod (re)made
//!   below the partition gets the current revision (its template is kept
//!   in the state). `OnDelete`: a pod gets the new template when it is
//!   deleted;
//! - each claim of `volumeClaimTemplates` is the directory of
//!   `<claim>-<set>-<ordinal>` (a `persistentVolumeClaim` volume of the
//!   pod, see `crate::lifecycle::container_config::claim_dir`): it
//!   survives the pod's restarts and updates; it is deleted
//!   ([`super::Intent::DeleteVolume`]) after its pod is gone only under
//!   `persistentVolumeClaimRetentionPolicy` `whenScaled: Delete` (scaled
//!   away) or `whenDeleted: Delete` (the set removed);
//! - `hostname: <pod>` and `subdomain: <serviceName>`.

use super::daemonset::{available, delete, generation, wake_when_available};
use super::{Cx, Intent, PodObs};
use crate::clock::Now;
use crate::lifecycle::{EventType, Phase};
use crate::spec::Pod;
use crate::spec::workload::PodTemplate;
use crate::spec::workload::statefulset::StatefulSetSpec;
use serde::{Deserialize, Serialize};

/// `controller-revision-hash`: `<set>-<template hash>`.
pub const REVISION_LABEL: &str = super::daemonset::REVISION_LABEL;
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub generation: i64,
    pub sig: u32,
    /// `currentRevision` and its pod template (JSON).
    pub current: String,
    pub current_template: String,
    /// The ordinals whose claims exist (a pod was made for them).
    pub claimed: Vec<i32>,
    /// Scaled-away ordinals whose claims go once their pod is gone.
    pub doomed: Vec<i32>,
}

/// The claims of `ordinal`: `<claim>-<set>-<ordinal>`.
pub fn claim_names<'a>(
    spec: &'a StatefulSetSpec,
    set: &'a str,
    ordinal: i32,
) -> impl Iterator<Item = String> + 'a {
    spec.claims
        .iter()
        .map(move |c| format!("{c}-{set}-{ordinal}"))
}

fn ordinal(set: &str, pod: &str) -> Option<i32> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    let o: i32 = n.parse().ok()?;
    (o.to_string() == n).then_some(o)
}

fn healthy(p: &PodObs, min_ready: i32, now_ms: u64) -> bool {
    !p.terminating && p.phase == Phase::Running && available(p, min_ready, now_ms)
}

pub(crate) fn sync(cx: &mut Cx<'_>, spec: &StatefulSetSpec, st: &mut State, pods: &[PodObs]) {
    let fields = format!(
        "{} {} {} {:?} {} {} {} {:?} {} {} {}",
        spec.template.hash,
        spec.replicas,
        spec.service_name,
        spec.partition,
        spec.parallel,
        spec.min_ready_seconds,
        spec.revision_history_limit,
        spec.claims,
        spec.delete_claims_when_deleted,
        spec.delete_claims_when_scaled,
        spec.start
    );
    generation(&mut st.generation, &mut st.sig, &fields);
    let set = cx.meta.name.clone();
    let now = cx.now.mono_ms;
    let min_ready = spec.min_ready_seconds;
    let update = format!("{set}-{}", spec.template.hash);
    if st.current.is_empty() {
        st.current = update.clone();
        st.current_template = serde_json::to_string(&spec.template.pod).unwrap_or_default();
    }
    // Claims of scaled-away ordinals whose pods are gone.
    let mut doomed = std::mem::take(&mut st.doomed);
    doomed.retain(|o| {
        if pods.iter().any(|p| ordinal(&set, &p.name) == Some(*o)) {
            return true;
        }
        for claim in claim_names(spec, &set, *o) {
            cx.out.push(Intent::DeleteVolume {
                namespace: cx.meta.namespace.clone(),
                claim,
            });
        }
        st.claimed.retain(|c| c != o);
        false
    });
    st.doomed = doomed;
    let (start, end) = (spec.start, spec.start.saturating_add(spec.replicas));
    let mut present: crate::vecmap::VecMap<i32, &PodObs> = Default::default();
    let mut condemned: Vec<(i32, &PodObs)> = Vec::new();
    for p in pods {
        match ordinal(&set, &p.name) {
            Some(o) if (start..end).contains(&o) => {
                present.insert(o, p);
            }
            Some(o) => condemned.push((o, p)),
            None if !p.terminating => delete(cx, &p.name),
            None => {}
        }
    }
    let monotonic = !spec.parallel;
    // The failed-pod back-off: reset once every pod is healthy.
    if (start..end).all(|o| present.get(&o).is_some_and(|p| healthy(p, min_ready, now))) {
        cx.reset_backoff();
    }
    let mut failed: Vec<&PodObs> = Vec::new();
    let mut stop = false;
    for o in start..end {
        match present.get(&o) {
            Some(p) if !p.terminating && matches!(p.phase, Phase::Failed | Phase::Succeeded) => {
                cx.event(
                    EventType::Warning,
                    "RecreatingFailedPod",
                    format!(
                        "StatefulSet {}/{set} is recreating failed Pod {}",
                        cx.meta.namespace, p.name
                    ),
                );
                delete(cx, &p.name);
                if p.phase == Phase::Failed {
                    failed.push(p);
                }
                stop = monotonic;
            }
            None => {
                if cx.may_create() {
                    create(cx, spec, st, &update, o);
                }
                stop = monotonic;
            }
            Some(p) if !healthy(p, min_ready, now) => {
                wake_when_available(cx, p, min_ready);
                stop = monotonic;
            }
            Some(_) => {}
        }
        if stop {
            break;
        }
    }
    cx.pods_failed(&failed);
    if stop {
        return;
    }
    // Scale down: the highest ordinal first (OrderedReady: only it).
    if let Some(top) = condemned
        .iter()
        .map(|(o, _)| *o)
        .max()
        .filter(|_| monotonic)
    {
        condemned.retain(|(o, _)| *o == top);
    }
    for (o, p) in condemned {
        if !p.terminating {
            delete(cx, &p.name);
            if spec.delete_claims_when_scaled && !st.doomed.contains(&o) {
                st.doomed.push(o);
            }
        }
        if monotonic {
            return;
        }
    }
    // Rolling update: from the highest ordinal down to the partition.
    if let Some(partition) = spec.partition {
        for o in (partition.max(start)..end).rev() {
            let Some(p) = present.get(&o) else {
                return;
            };
            if p.labels.get(REVISION_LABEL) != Some(&update) && !p.terminating {
                delete(cx, &p.name);
                return;
            }
            if !healthy(p, min_ready, now) {
                return;
            }
        }
    }
    // Every pod at the update revision and ready: it is the current one.
    if st.current != update
        && (start..end).all(|o| {
            present
                .get(&o)
                .is_some_and(|p| p.ready && p.labels.get(REVISION_LABEL) == Some(&update))
        })
    {
        st.current = update;
        st.current_template = serde_json::to_string(&spec.template.pod).unwrap_or_default();
    }
}

/// Makes the pod of ordinal `o`: the current revision below a rolling
/// update's partition, else the update revision.
fn create(cx: &mut Cx<'_>, spec: &StatefulSetSpec, st: &mut State, update: &str, o: i32) {
    let set = cx.meta.name.clone();
    let old = spec.partition.is_some_and(|p| o < p) && st.current != update;
    let (revision, template) = match old {
        // Text → one `Value` → typed: the one instantiation of `Pod`'s
        // `Deserialize` (docs/design-deviations.md §12).
        true => match serde_json::from_slice::<crate::spec::strict::StrictValue>(
            st.current_template.as_bytes(),
        )
        .map_err(|e| e.to_string())
        .and_then(|v| crate::serde_path::from_value::<Pod>(v.0).map_err(|e| e.to_string()))
        {
            Ok(pod) => (
                st.current.clone(),
                PodTemplate {
                    pod,
                    hash: String::new(),
                },
            ),
            Err(_) => (update.to_string(), spec.template.clone()),
        },
        false => (update.to_string(), spec.template.clone()),
    };
    let name = format!("{set}-{o}");
    let index = o.to_string();
    let mut pod = cx.pod(
        &template,
        name.clone(),
        &[
            (REVISION_LABEL, &revision),
            (POD_NAME_LABEL, &name),
            (POD_INDEX_LABEL, &index),
        ],
        None,
    );
    pod.spec.hostname = Some(name.clone());
    if !spec.service_name.is_empty() {
        pod.spec.subdomain = Some(spec.service_name.clone());
    }
    for v in &mut pod.spec.volumes {
        if let Some(c) = &mut v.persistent_volume_claim {
            c.claim_name = format!("{}-{set}-{o}", v.name);
        }
    }
    if !st.claimed.contains(&o) {
        st.claimed.push(o);
    }
    st.doomed.retain(|d| *d != o);
    cx.create_pod(pod);
    cx.event(
        EventType::Normal,
        "SuccessfulCreate",
        format!("create Pod {name} in StatefulSet {set} successful"),
    );
}

/// The `status` object, as Kubernetes writes it.
pub(crate) fn status(
    spec: &StatefulSetSpec,
    st: &State,
    pods: &[PodObs],
    now: Now,
) -> serde_json::Value {
    let live: Vec<&PodObs> = pods.iter().filter(|p| !p.terminating).collect();
    let count = |f: &dyn Fn(&PodObs) -> bool| live.iter().filter(|p| f(p)).count();
    let update = format!("{}-{}", spec.template.pod.metadata.name, spec.template.hash);
    let rev = |p: &PodObs| p.labels.get(REVISION_LABEL).cloned().unwrap_or_default();
    serde_json::json!({
        "replicas": live.len(),
        "readyReplicas": count(&|p| p.ready),
        "currentReplicas": count(&|p| rev(p) == st.current),
        "updatedReplicas": count(&|p| rev(p) == update),
        "availableReplicas": count(&|p| available(p, spec.min_ready_seconds, now.mono_ms)),
        "currentRevision": st.current,
        "updateRevision": update,
        "observedGeneration": st.generation,
        "collisionCount": 0,
    })
}
