//! The Deployment controller on one node: Kubernetes' deployment
//! controller and its ReplicaSet controller folded into one pure core.
//!
//! Each template hash is a revision (a ReplicaSet `<deployment>-<hash>`,
//! without an object of its own): [`Revision`] keeps its number, its pod
//! template, its `change-cause` and its `spec.replicas`. A pass of
//! [`sync`] does what the two Kubernetes controllers do:
//! 1. the status from the observed pods, and the `Progressing`/`Available`
//!    conditions (`syncRolloutStatus`); past `progressDeadlineSeconds`,
//!    the auto-rollback (beyond Kubernetes, see [`AUTO_ROLLBACK`]);
//! 2. the revision of the template it runs (found, re-numbered or made);
//! 3. the revisions' replica counts, by the strategy (`rolloutRolling`,
//!    `rolloutRecreate`, or `scale` when paused);
//! 4. the pods of each revision made or deleted to match its count
//!    (the ReplicaSet controller, with its choice of pods to delete);
//! 5. the history cleanup (`revisionHistoryLimit`).
//!
//! The template it runs is the source's, unless a local override is set
//! ([`Override`]: `rollout undo`, `rollout restart`, an auto-rollback);
//! an override holds while the source's template keeps the hash it was
//! made against.

mod rollout;
mod scale;
pub use rollout::history_text;
#[cfg(test)]
mod tests;

use super::{Cx, PodObs, replica_set_uid};
use crate::clock::Now;
use crate::lifecycle::{EventType, Phase};
use crate::spec::workload::PodTemplate;
use crate::spec::workload::deployment::{DeploymentSpec, Strategy};
use scale::{fenceposts, host_port, max_unavailable, rolling, scale, scale_paused};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::cmp::Reverse;

/// `pod-template-hash`.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The Deployment's (and its ReplicaSets') revision annotation.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Recorded with each revision.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// `"true"`: a rollout that passes its progress deadline rolls back to the
/// last healthy revision; `"false"`: never; absent: the node's default
/// ([`super::Env::auto_rollback`]).
pub const AUTO_ROLLBACK: &str = "picolet.io/auto-rollback";
/// The template annotation `rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `progressDeadlineSeconds: 2147483647`: no deadline.
const NO_DEADLINE: i32 = i32::MAX;

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Kubernetes' ReplicaSets, by revision number (ascending).
    pub revisions: Vec<Revision>,
    /// The local override of the source's template, if any.
    pub over: Option<Box<Override>>,
    pub progressing: Option<Box<Cond>>,
    pub available: Option<Box<Cond>>,
    /// The best status counts of this rollout (`replicas`: the fewest old
    /// replicas): progress is an improvement on them.
    pub seen: Counts,
    /// The `Progressing` condition's last update (mono ms): the progress
    /// deadline runs from it.
    pub progress_ms: u64,
    /// `spec.replicas` last acted on (a change while paused is a scaling
    /// event).
    pub desired: i32,
}

/// A template the Deployment ran (a ReplicaSet `<deployment>-<hash>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub number: i64,
    pub hash: String,
    /// The template as a Pod (JSON), to run it again.
    pub template: String,
    pub change_cause: String,
    /// The ReplicaSet's `spec.replicas`.
    pub replicas: i32,
    /// All its replicas were available at some point while it was current.
    pub healthy: bool,
}

/// A template run instead of the source's while the source's template
/// hash is `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub source: String,
    pub hash: String,
    pub template: String,
    pub change_cause: String,
    /// Made by an auto-rollback: `Progressing` stays `RolledBack`.
    pub auto: bool,
}

/// A Deployment condition; its status follows from its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cond {
    pub reason: String,
    pub message: String,
    pub update_ms: i64,
    pub transition_ms: i64,
}

/// The status counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
}

/// The template hashes whose pods this Deployment owns.
pub fn owned_hashes(st: &State) -> impl Iterator<Item = &str> {
    st.revisions.iter().map(|r| r.hash.as_str())
}

/// The hash of the template the Deployment runs.
fn current_hash<'a>(spec: &'a DeploymentSpec, st: &'a State) -> &'a str {
    match &st.over {
        Some(o) if o.source == spec.template.hash => &o.hash,
        _ => &spec.template.hash,
    }
}

/// The template the Deployment runs and its change-cause.
fn current<'a>(
    spec: &'a DeploymentSpec,
    st: &State,
    meta: &crate::spec::ObjectMeta,
) -> (Cow<'a, PodTemplate>, String) {
    let over = st.over.as_ref().filter(|o| o.source == spec.template.hash);
    if let Some((o, t)) =
        over.and_then(|o| Some((o, PodTemplate::from_json(&o.template, &o.hash)?)))
    {
        return (Cow::Owned(t), o.change_cause.clone());
    }
    let cause = meta.annotations.get(CHANGE_CAUSE).cloned();
    (Cow::Borrowed(&spec.template), cause.unwrap_or_default())
}

/// What one revision's pods look like.
#[derive(Default)]
struct Obs<'a> {
    /// Not terminating, not finished.
    active: Vec<&'a PodObs>,
    ready: i32,
    available: i32,
    /// Any pod at all that is not finished (terminating ones too).
    running: bool,
}

fn available(p: &PodObs, min_ready_ms: u64, now: u64) -> bool {
    p.ready && p.ready_since_ms.is_some_and(|t| t + min_ready_ms <= now)
}

fn finished(p: &PodObs) -> bool {
    matches!(p.phase, Phase::Succeeded | Phase::Failed)
}

/// The pods of each revision, and the status counts (`calculateStatus`);
/// `new`: the index of the current revision.
fn observe<'a>(
    st: &State,
    pods: &'a [PodObs],
    new: Option<usize>,
    min_ready_ms: u64,
    now: u64,
) -> (Vec<Obs<'a>>, Counts) {
    let mut obs: Vec<Obs<'_>> = st.revisions.iter().map(|_| Obs::default()).collect();
    for p in pods.iter().filter(|p| !finished(p)) {
        let Some(i) = st
            .revisions
            .iter()
            .position(|r| p.labels.get(HASH_LABEL) == Some(&r.hash))
        else {
            continue;
        };
        let o = &mut obs[i];
        o.running = true;
        if !p.terminating {
            o.active.push(p);
            o.ready += i32::from(p.ready);
            o.available += i32::from(available(p, min_ready_ms, now));
        }
    }
    let mut c = Counts::default();
    for (i, o) in obs.iter().enumerate() {
        c.replicas += o.active.len() as i32;
        c.ready += o.ready;
        c.available += o.available;
        if Some(i) == new {
            c.updated = o.active.len() as i32;
        }
    }
    (obs, c)
}

fn auto_rollback(cx: &Cx<'_>) -> bool {
    match cx.meta.annotations.get(AUTO_ROLLBACK).map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        _ => cx.env.auto_rollback,
    }
}

impl Cond {
    /// `True`, `False` or `Unknown`.
    pub fn status(&self) -> &'static str {
        match self.reason.as_str() {
            "ProgressDeadlineExceeded" | "RolledBack" | "MinimumReplicasUnavailable" => "False",
            "DeploymentPaused" | "DeploymentResumed" => "Unknown",
            _ => "True",
        }
    }
}

impl State {
    /// Sets a condition as `SetDeploymentCondition`: the same status and
    /// reason change nothing (unless `force`); the transition time is kept
    /// while the status is.
    fn set(&mut self, progressing: bool, reason: &str, message: String, now: Now) {
        self.set_cond(progressing, reason, message, now, false);
    }

    fn set_cond(
        &mut self,
        progressing: bool,
        reason: &str,
        message: String,
        now: Now,
        force: bool,
    ) {
        let slot = if progressing {
            &mut self.progressing
        } else {
            &mut self.available
        };
        if !force && slot.as_ref().is_some_and(|c| c.reason == reason) {
            return;
        }
        let mut new = Cond {
            reason: reason.into(),
            message,
            update_ms: now.wall_ms,
            transition_ms: now.wall_ms,
        };
        if let Some(c) = slot.as_ref().filter(|c| c.status() == new.status()) {
            new.transition_ms = c.transition_ms;
        }
        *slot = Some(Box::new(new));
        if progressing {
            self.progress_ms = now.mono_ms;
        }
    }

    fn reason(&self) -> &str {
        self.progressing.as_ref().map_or("", |c| c.reason.as_str())
    }

    fn max_number(&self) -> i64 {
        self.revisions.last().map_or(0, |r| r.number)
    }
}

fn rs_name(cx: &Cx<'_>, hash: &str) -> String {
    format!("{}-{hash}", cx.meta.name)
}

/// One sync of the Deployment (see the module doc). `pods`: the pods of
/// its revisions.
pub(crate) fn sync(cx: &mut Cx<'_>, spec: &DeploymentSpec, st: &mut State, pods: &[PodObs]) {
    let now = cx.now;
    // Never ahead of now (a reboot's times are moved at the restore:
    // `super::Rebase`).
    st.progress_ms = st.progress_ms.min(now.mono_ms);
    if st
        .over
        .as_ref()
        .is_some_and(|o| o.source != spec.template.hash)
    {
        st.over = None;
    }
    // Finished pods are not active: gone at once on a device (PodGC). A
    // failed one (rejected at admission, evicted) is replaced after the
    // failed-pod back-off, reset once the Deployment is complete.
    let ended: Vec<&PodObs> = pods
        .iter()
        .filter(|p| finished(p) && !p.terminating)
        .collect();
    for p in &ended {
        cx.delete_pod(&p.name);
    }
    let failed: Vec<&PodObs> = ended
        .into_iter()
        .filter(|p| p.phase == Phase::Failed)
        .collect();
    let min_ready_ms = spec.min_ready_seconds as u64 * 1000;
    let desired = spec.replicas;

    // 1. Status and conditions, from what is observed.
    let hash = current_hash(spec, st);
    let new = st.revisions.iter().position(|r| r.hash == hash);
    let (_, counts) = observe(st, pods, new, min_ready_ms, now.mono_ms);
    let complete =
        counts.updated == desired && counts.replicas == desired && counts.available == desired;
    if complete {
        cx.reset_backoff();
    }
    cx.pods_failed(&failed);
    let deadline = spec.progress_deadline_seconds != NO_DEADLINE;
    if spec.paused {
        if st.reason() != "DeploymentPaused" {
            st.set(true, "DeploymentPaused", "Deployment is paused".into(), now);
        }
    } else if st.reason() == "DeploymentPaused" {
        st.set(
            true,
            "DeploymentResumed",
            "Deployment is resumed".into(),
            now,
        );
    } else if st.over.as_ref().is_some_and(|o| o.auto) {
        // Rolled back: the condition says so until the source changes.
    } else if deadline
        && !(counts.replicas == counts.updated && st.reason() == "NewReplicaSetAvailable")
    {
        let name = new.map(|i| rs_name(cx, &st.revisions[i].hash));
        let what = name.as_deref().map_or_else(
            || format!("Deployment {:?}", cx.meta.name),
            |n| format!("ReplicaSet {n:?}"),
        );
        let seen = st.seen;
        if complete {
            let msg = format!("{what} has successfully progressed.");
            st.set(true, "NewReplicaSetAvailable", msg, now);
        } else if counts.replicas - counts.updated < seen.replicas
            || counts.updated > seen.updated
            || counts.ready > seen.ready
            || counts.available > seen.available
        {
            let msg = format!("{what} is progressing.");
            st.set_cond(true, "ReplicaSetUpdated", msg, now, true);
        } else if st.progressing.is_some()
            && st.reason() != "NewReplicaSetAvailable"
            && (st.reason() == "ProgressDeadlineExceeded"
                || now.mono_ms > st.progress_ms + spec.progress_deadline_seconds as u64 * 1000)
        {
            let msg = format!("{what} has timed out progressing.");
            st.set(true, "ProgressDeadlineExceeded", msg, now);
            if auto_rollback(cx) {
                rollback(cx, spec, st, new);
            }
        }
    }
    if let Some(i) = new.filter(|_| complete) {
        st.revisions[i].healthy = true;
    }
    // Progress is measured against the best counts of this rollout: a
    // crash-looping pod that is ready again for a moment is no progress.
    let old = counts.replicas - counts.updated;
    st.seen = if complete {
        Counts {
            replicas: old,
            ..counts
        }
    } else {
        let s = st.seen;
        Counts {
            replicas: s.replicas.min(old),
            updated: s.updated.max(counts.updated),
            ready: s.ready.max(counts.ready),
            available: s.available.max(counts.available),
        }
    };

    // 2. The revision of the template it runs.
    let (tmpl, cause) = current(spec, st, cx.meta);
    let mut new = st.revisions.iter().position(|r| r.hash == tmpl.hash);
    let (surge, unavailable) = fenceposts(spec, &tmpl);
    if !spec.paused {
        let max = st.max_number();
        match new {
            None => {
                let total: i32 = st.revisions.iter().map(|r| r.replicas).sum();
                let replicas = match spec.strategy {
                    Strategy::Recreate => 0,
                    _ => (desired + surge - total).clamp(0, desired),
                };
                let hash = tmpl.hash.clone();
                let template = serde_json::to_string(&tmpl.pod).unwrap_or_default();
                st.revisions.push(Revision {
                    number: max + 1,
                    hash: hash.clone(),
                    template,
                    change_cause: cause,
                    replicas: 0,
                    healthy: false,
                });
                new = Some(st.revisions.len() - 1);
                st.seen.replicas = i32::MAX;
                let name = rs_name(cx, &hash);
                scale(cx, st, st.revisions.len() - 1, replicas);
                if !st.over.as_ref().is_some_and(|o| o.auto) {
                    let msg = format!("Created new replica set {name:?}");
                    st.set_cond(true, "NewReplicaSetCreated", msg, now, true);
                }
            }
            Some(i) if st.revisions[i].number != max => {
                // An old template again: its revision takes the next number.
                let mut r = st.revisions.remove(i);
                r.number = max + 1;
                r.change_cause = cause;
                let name = rs_name(cx, &r.hash);
                st.revisions.push(r);
                new = Some(st.revisions.len() - 1);
                st.seen.replicas = i32::MAX;
                if !st.over.as_ref().is_some_and(|o| o.auto) {
                    let msg = format!("Found new replica set {name:?}");
                    st.set_cond(true, "FoundNewReplicaSet", msg, now, true);
                }
            }
            Some(i) if st.progressing.is_none() => {
                let msg = format!(
                    "Found new replica set {:?}",
                    rs_name(cx, &st.revisions[i].hash)
                );
                st.set(true, "FoundNewReplicaSet", msg, now);
            }
            _ => {}
        }
    }

    // 3. The revisions' replica counts.
    let (obs, _) = observe(st, pods, new, min_ready_ms, now.mono_ms);
    match (new, spec.strategy) {
        (Some(n), _) if !spec.paused && spec.strategy == Strategy::Recreate => {
            let olds: Vec<usize> = (0..st.revisions.len()).filter(|&i| i != n).collect();
            if olds.iter().any(|&i| st.revisions[i].replicas > 0) {
                for i in olds {
                    scale(cx, st, i, 0);
                }
            } else if !olds.iter().any(|&i| obs[i].running) {
                scale(cx, st, n, desired);
            }
        }
        (Some(n), _) if !spec.paused => {
            rolling(cx, st, &obs, n, desired, surge, unavailable);
        }
        _ => scale_paused(cx, st, new, desired, surge),
    }
    st.desired = desired;

    // 4. The pods of each revision (the ReplicaSet controller).
    let blocked = host_port(&tmpl) && pods.iter().any(|p| p.terminating);
    let mut made: Vec<String> = Vec::new();
    for (i, o) in obs.iter().enumerate() {
        let r = &st.revisions[i];
        let have = o.active.len() as i32;
        if have > r.replicas {
            // The ReplicaSet controller's order: Pending, Unknown, then
            // Running; not ready first; ready for less time; more
            // restarts; newest.
            let mut victims = o.active.clone();
            for _ in r.replicas..have {
                let k = (0..victims.len()).min_by_key(|&k| {
                    let p = victims[k];
                    (
                        match p.phase {
                            Phase::Pending => 0,
                            Phase::Unknown => 1,
                            _ => 2,
                        },
                        p.ready,
                        Reverse(p.ready_since_ms),
                        Reverse(p.restarts),
                        Reverse(p.created_ms),
                    )
                });
                if let Some(k) = k {
                    cx.delete_pod(&victims.swap_remove(k).name);
                }
            }
        } else if have < r.replicas && !blocked && cx.may_create() {
            let t = if r.hash == tmpl.hash {
                Cow::Borrowed(&*tmpl)
            } else {
                match PodTemplate::from_json(&r.template, &r.hash) {
                    Some(t) => Cow::Owned(t),
                    None => continue,
                }
            };
            let rs = rs_name(cx, &r.hash);
            let uid = replica_set_uid(cx.uid, &r.hash);
            for _ in have..r.replicas {
                let name = loop {
                    let n = format!("{rs}-{}", cx.suffix());
                    if !pods.iter().any(|p| p.name == n) && !made.contains(&n) {
                        break n;
                    }
                };
                made.push(name.clone());
                let pod = cx.pod(
                    &t,
                    name,
                    &[(HASH_LABEL, &r.hash)],
                    Some(("ReplicaSet", &rs, &uid)),
                );
                cx.create_pod(pod);
            }
        }
    }

    // 5. History cleanup, once the rollout is complete (`cleanupDeployment`:
    // the oldest revisions past the limit, if they have no pods).
    if let Some(n) = new.filter(|_| complete) {
        let olds: Vec<usize> = (0..st.revisions.len()).filter(|&i| i != n).collect();
        let excess = olds
            .len()
            .saturating_sub(spec.revision_history_limit.max(0) as usize);
        for &i in olds[..excess].iter().rev() {
            if st.revisions[i].replicas == 0 && !obs[i].running {
                st.revisions.remove(i);
            }
        }
    }

    // Timers: minReadySeconds, the progress deadline.
    for p in pods {
        let since = p.ready_since_ms.filter(|_| p.ready && !p.terminating);
        if let Some(t) = since.filter(|t| t + min_ready_ms > now.mono_ms) {
            cx.wake_at(t + min_ready_ms);
        }
    }
    if deadline
        && !spec.paused
        && matches!(
            st.reason(),
            "NewReplicaSetCreated"
                | "FoundNewReplicaSet"
                | "ReplicaSetUpdated"
                | "DeploymentResumed"
        )
    {
        cx.wake_at(st.progress_ms + spec.progress_deadline_seconds as u64 * 1000 + 1);
    }
    // The Available condition.
    let min_available = desired - max_unavailable(spec, &tmpl);
    if counts.available >= min_available {
        st.set(
            false,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        );
    } else {
        st.set(
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        );
    }
}

/// Past the deadline: back to the newest healthy revision, unless the
/// failing one was healthy once itself.
fn rollback(cx: &mut Cx<'_>, spec: &DeploymentSpec, st: &mut State, new: Option<usize>) {
    let Some(n) = new else { return };
    let bad = &st.revisions[n];
    let Some(good) = st
        .revisions
        .iter()
        .rev()
        .find(|r| r.healthy && r.hash != bad.hash)
    else {
        return;
    };
    if bad.healthy {
        return;
    }
    let msg = format!(
        "Rolled back from revision {} ({:?}: no progress within {}s) to revision {} ({:?}), now revision {}",
        bad.number,
        rs_name(cx, &bad.hash),
        spec.progress_deadline_seconds,
        good.number,
        rs_name(cx, &good.hash),
        st.max_number() + 1
    );
    st.over = Some(Box::new(Override {
        source: spec.template.hash.clone(),
        hash: good.hash.clone(),
        template: good.template.clone(),
        change_cause: good.change_cause.clone(),
        auto: true,
    }));
    st.set_cond(true, "RolledBack", msg.clone(), cx.now, true);
    cx.event(EventType::Warning, "RolledBack", msg);
}

/// The `status` object, as Kubernetes writes it (zero counts left out).
pub(crate) fn status(spec: &DeploymentSpec, st: &State, pods: &[PodObs], now: Now) -> Value {
    let hash = current_hash(spec, st);
    let new = st.revisions.iter().position(|r| r.hash == hash);
    let min_ready_ms = spec.min_ready_seconds as u64 * 1000;
    let (_, c) = observe(st, pods, new, min_ready_ms, now.mono_ms);
    let total: i32 = st.revisions.iter().map(|r| r.replicas).sum();
    let mut s = serde_json::Map::new();
    for (k, v) in [
        ("replicas", c.replicas),
        ("updatedReplicas", c.updated),
        ("readyReplicas", c.ready),
        ("availableReplicas", c.available),
        ("unavailableReplicas", (total - c.available).max(0)),
    ] {
        if v != 0 {
            s.insert(k.into(), v.into());
        }
    }
    let conds: Vec<Value> = [
        ("Available", &st.available),
        ("Progressing", &st.progressing),
    ]
    .into_iter()
    .filter_map(|(t, c)| {
        let c = c.as_ref()?;
        Some(json!({
            "type": t, "status": c.status(),
            "lastUpdateTime": crate::clock::rfc3339(c.update_ms),
            "lastTransitionTime": crate::clock::rfc3339(c.transition_ms),
            "reason": c.reason, "message": c.message,
        }))
    })
    .collect();
    if !conds.is_empty() {
        s.insert("conditions".into(), conds.into());
    }
    Value::Object(s)
}

/// Adds `deployment.kubernetes.io/revision` to the object's metadata.
pub(crate) fn annotate(object: &mut Value, st: &State) {
    let meta = object.get_mut("metadata").and_then(Value::as_object_mut);
    if let (Some(r), Some(m)) = (st.revisions.last(), meta) {
        let a = m.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = a.as_object_mut() {
            a.insert(REVISION.into(), r.number.to_string().into());
        }
    }
}
