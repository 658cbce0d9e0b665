//! The Job controller on one node, as Kubernetes' (1.31+):
//!
//! - pods `<job>-<5 chars>` (Indexed: `<job>-<index>-<5 chars>`, with the
//!   index as label and annotation `batch.kubernetes.io/job-completion-index`,
//!   `JOB_COMPLETION_INDEX` in every container's env and hostname
//!   `<job>-<index>`), labelled `batch.kubernetes.io/controller-uid`,
//!   `batch.kubernetes.io/job-name` and the legacy `controller-uid`, `job-name`;
//! - at most `parallelism` active; done at `completions` succeeded pods
//!   (Indexed: every index succeeded; no `completions`: one succeeded pod
//!   and none active);
//! - each failed pod counts against `backoffLimit` (with `OnFailure`, the
//!   active pods' container restarts do); a failed pod is replaced after
//!   the controller's back-off, 10 s doubling up to 6 min, reset by a
//!   success;
//! - `podFailurePolicy` rules (`FailJob`, `Ignore`, `Count`) on exit codes
//!   and the `DisruptionTarget` condition (an evicted pod);
//! - `activeDeadlineSeconds` from `startTime`; `suspend` deletes the active
//!   pods, and resuming restarts `startTime`;
//! - a finishing Job first gets `SuccessCriteriaMet` or `FailureTarget`,
//!   its active pods are deleted, and once none is left, `Complete` or
//!   `Failed`; `ttlSecondsAfterFinished` later the Job deletes itself (its
//!   pods go with it).
//!
//! Pods the controller deleted (suspend, excess, a finished Job) are not
//! counted, whatever they end as.

use super::{Cx, PodObs};
use crate::clock::Now;
use crate::lifecycle::{EventType, Phase};
use crate::spec::EnvVar;
use crate::spec::workload::job::{FailureAction, FailureMatch, JobSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
const BACKOFF_MS: u64 = 10_000;
const MAX_BACKOFF_MS: u64 = 360_000;

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// `startTime` (wall ms) and the same instant on the mono clock.
    pub start: Option<(i64, u64)>,
    pub succeeded: u32,
    pub failed: u32,
    /// Indexed: the succeeded indexes, sorted.
    pub indexes: Vec<u32>,
    /// Pods (uids) already counted, while they exist.
    pub counted: Vec<String>,
    /// Failures since the last success, and when the last was (mono ms).
    pub backoff: (u32, u64),
    pub conditions: Vec<Cond>,
    /// Decided: `(complete, reason, message)`; the pods are going.
    pub target: Option<(bool, String, String)>,
    /// Finished: `(complete, wall ms, mono ms)`.
    pub done: Option<(bool, i64, u64)>,
}

/// A condition, `status` True unless `off`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cond {
    pub kind: String,
    pub off: bool,
    pub reason: String,
    pub message: String,
    pub at_ms: i64,
}

fn set_cond(st: &mut State, now: Now, kind: &str, off: bool, reason: &str, message: &str) {
    let c = Cond {
        kind: kind.into(),
        off,
        reason: reason.into(),
        message: message.into(),
        at_ms: now.wall_ms,
    };
    match st.conditions.iter_mut().find(|c| c.kind == kind) {
        Some(old) if old.off == off => {}
        Some(old) => *old = c,
        None => st.conditions.push(c),
    }
}

fn index_of(p: &PodObs) -> Option<u32> {
    p.labels.get(INDEX_KEY)?.parse().ok()
}

fn active(p: &PodObs) -> bool {
    !p.terminating && matches!(p.phase, Phase::Pending | Phase::Running)
}

pub(crate) fn sync(cx: &mut Cx<'_>, spec: &JobSpec, st: &mut State, pods: &[PodObs]) {
    let now = cx.now;
    if let Some((_, _, at)) = st.done {
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let due = at + ttl as u64 * 1000;
            if now.mono_ms >= due {
                cx.delete_self();
            } else {
                cx.wake_at(due);
            }
        }
        return;
    }
    st.counted.retain(|u| pods.iter().any(|p| &p.uid == u));
    // Count the pods that ended: successes first, so that a failure seen
    // with them counts as after them for the back-off.
    let ok = |p: &&PodObs| !p.terminating && p.phase == Phase::Succeeded;
    let ko = |p: &&PodObs| !p.terminating && p.phase != Phase::Succeeded;
    for p in pods.iter().filter(ok).chain(pods.iter().filter(ko)) {
        if !matches!(p.phase, Phase::Succeeded | Phase::Failed) || st.counted.contains(&p.uid) {
            continue;
        }
        st.counted.push(p.uid.clone());
        if p.phase == Phase::Succeeded {
            match index_of(p).filter(|_| spec.indexed) {
                Some(i) => {
                    if let Err(at) = st.indexes.binary_search(&i) {
                        st.indexes.insert(at, i);
                    }
                    st.succeeded = st.indexes.len() as u32;
                }
                None => st.succeeded += 1,
            }
            st.backoff.0 = 0;
            continue;
        }
        match failure_rule(spec, p, &cx.meta.namespace) {
            Some((FailureAction::Ignore, _)) => {}
            Some((FailureAction::FailJob, msg)) => {
                st.failed += 1;
                if st.target.is_none() {
                    st.target = Some((false, "PodFailurePolicy".into(), msg));
                }
            }
            _ => {
                st.failed += 1;
                st.backoff = (st.backoff.0 + 1, now.mono_ms);
            }
        }
    }
    let live: Vec<&PodObs> = pods.iter().filter(|p| active(p)).collect();
    if spec.suspend {
        if st.target.is_none() {
            for p in &live {
                cx.delete_pod(&p.name);
            }
            if st.start.take().is_some() || !st.conditions.iter().any(|c| c.kind == "Suspended") {
                set_cond(st, now, "Suspended", false, "JobSuspended", "Job suspended");
                cx.event(EventType::Normal, "Suspended", "Job suspended".into());
            }
            return;
        }
    } else if st.start.is_none() && st.target.is_none() {
        st.start = Some((now.wall_ms, now.mono_ms));
        if st
            .conditions
            .iter()
            .any(|c| c.kind == "Suspended" && !c.off)
        {
            set_cond(st, now, "Suspended", true, "JobResumed", "Job resumed");
            cx.event(EventType::Normal, "Resumed", "Job resumed".into());
        }
    }
    if st.target.is_none() {
        let restarts: u32 = live.iter().map(|p| p.restarts).sum();
        let on_failure =
            spec.template.pod.spec.restart_policy == crate::spec::types::RestartPolicy::OnFailure;
        let limit = spec.backoff_limit as u32;
        let past = st.failed > limit
            || on_failure
                && if limit == 0 {
                    restarts > 0
                } else {
                    restarts >= limit
                };
        if past {
            st.target = Some((
                false,
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into(),
            ));
        } else if let (Some(d), Some((_, at))) = (spec.active_deadline_seconds, st.start) {
            let due = at + d as u64 * 1000;
            if now.mono_ms >= due {
                st.target = Some((
                    false,
                    "DeadlineExceeded".into(),
                    "Job was active longer than specified deadline".into(),
                ));
            } else {
                cx.wake_at(due);
            }
        }
    }
    if st.target.is_none() {
        manage(cx, spec, st, &live, pods);
        let done = match spec.completions {
            None => st.succeeded > 0 && live.iter().all(|p| p.terminating),
            Some(c) => st.succeeded >= c as u32,
        };
        if done {
            st.target = Some((
                true,
                "CompletionsReached".into(),
                "Reached expected number of succeeded pods".into(),
            ));
        }
    }
    let Some((complete, reason, message)) = st.target.clone() else {
        return;
    };
    let (pre, fin) = if complete {
        ("SuccessCriteriaMet", "Complete")
    } else {
        ("FailureTarget", "Failed")
    };
    if !st.conditions.iter().any(|c| c.kind == pre) {
        set_cond(st, now, pre, false, &reason, &message);
        if !complete {
            cx.event(EventType::Warning, &reason, message.clone());
        }
    }
    for p in &live {
        cx.delete_pod(&p.name);
    }
    // Done once no pod of the Job runs or terminates.
    let running = pods
        .iter()
        .any(|p| matches!(p.phase, Phase::Pending | Phase::Running));
    if live.is_empty() && !running {
        set_cond(st, now, fin, false, &reason, &message);
        st.done = Some((complete, now.wall_ms, now.mono_ms));
        cx.event(
            if complete {
                EventType::Normal
            } else {
                EventType::Warning
            },
            if complete { "Completed" } else { &reason },
            if complete {
                "Job completed".into()
            } else {
                message
            },
        );
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            cx.wake_at(now.mono_ms + ttl as u64 * 1000);
        }
    }
}

/// Creates and deletes pods towards `parallelism` and `completions`.
fn manage(cx: &mut Cx<'_>, spec: &JobSpec, st: &State, live: &[&PodObs], pods: &[PodObs]) {
    let remaining = spec
        .completions
        .map(|c| (c as u32).saturating_sub(st.succeeded));
    let want = match remaining {
        None if st.succeeded > 0 => live.len(),
        None => spec.parallelism as usize,
        Some(r) => (r as usize).min(spec.parallelism as usize),
    };
    // Which pods to keep; Indexed: one per pending index.
    let mut keep: Vec<&PodObs> = Vec::new();
    let mut excess: Vec<&PodObs> = Vec::new();
    for p in live {
        let dup = spec.indexed
            && match index_of(p) {
                Some(i) => {
                    st.indexes.binary_search(&i).is_ok()
                        || i >= spec.completions.unwrap_or(0) as u32
                        || keep.iter().any(|k| index_of(k) == Some(i))
                }
                None => true,
            };
        if dup { excess.push(p) } else { keep.push(p) }
    }
    // Excess: the not-ready, newest first (Kubernetes' order).
    while keep.len() > want {
        let worst = (0..keep.len())
            .max_by_key(|&i| (!keep[i].ready, keep[i].created_ms))
            .unwrap_or(0);
        excess.push(keep.swap_remove(worst));
    }
    for p in excess {
        cx.delete_pod(&p.name);
    }
    if keep.len() >= want {
        return;
    }
    let (failures, last) = st.backoff;
    if failures > 0 {
        let delay = (BACKOFF_MS << (failures - 1).min(16)).min(MAX_BACKOFF_MS);
        if cx.now.mono_ms < last + delay {
            cx.wake_at(last + delay);
            return;
        }
    }
    let mut next_index = 0u32;
    for _ in keep.len()..want {
        let index = if spec.indexed {
            let total = spec.completions.unwrap_or(0) as u32;
            while next_index < total
                && (st.indexes.binary_search(&next_index).is_ok()
                    || keep.iter().any(|k| index_of(k) == Some(next_index)))
            {
                next_index += 1;
            }
            if next_index >= total {
                break;
            }
            next_index += 1;
            Some(next_index - 1)
        } else {
            None
        };
        let base = match index {
            Some(i) => format!("{}-{i}", cx.meta.name),
            None => cx.meta.name.clone(),
        };
        let name = loop {
            let n = format!("{base}-{}", cx.suffix());
            if !pods.iter().any(|p| p.name == n) {
                break n;
            }
        };
        let uid = cx.uid.to_string();
        let job = cx.meta.name.clone();
        let idx = index.map(|i| i.to_string());
        let mut labels = vec![
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("batch.kubernetes.io/job-name", job.as_str()),
            ("controller-uid", uid.as_str()),
            ("job-name", job.as_str()),
        ];
        if let Some(i) = &idx {
            labels.push((INDEX_KEY, i));
        }
        let mut pod = cx.pod(&spec.template, name, &labels, None);
        if let Some(i) = idx {
            pod.metadata.annotations.insert(INDEX_KEY.into(), i.clone());
            let s = &mut pod.spec;
            for c in s.containers.iter_mut().chain(s.init_containers.iter_mut()) {
                c.env.retain(|e| e.name != "JOB_COMPLETION_INDEX");
                c.env.push(EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: Some(i.clone()),
                    value_from: None,
                });
            }
            if s.hostname.is_none() {
                s.hostname = Some(format!("{job}-{i}"));
            }
        }
        cx.create_pod(pod);
    }
}

/// The first `podFailurePolicy` rule that matches the failed pod `p`,
/// with the message of a `FailJob`.
fn failure_rule(spec: &JobSpec, p: &PodObs, ns: &str) -> Option<(FailureAction, String)> {
    for (i, r) in spec.pod_failure_policy.iter().enumerate() {
        let what = match &r.on {
            FailureMatch::ExitCodes {
                container,
                is_in,
                values,
            } => p
                .exit_codes
                .iter()
                .find(|(c, code)| {
                    *code != 0
                        && container.as_ref().is_none_or(|n| n == c)
                        && values.contains(code) == *is_in
                })
                .map(|(c, code)| {
                    format!(
                        "Container {c} for pod {ns}/{} failed with exit code {code}",
                        p.name
                    )
                }),
            // Only an evicted pod has the condition, `True`: a pod
            // without it matches no status (absent is not `False`).
            FailureMatch::DisruptionTarget(statuses) => {
                let evicted = p.reason == crate::lifecycle::eviction::REASON;
                (evicted && statuses.iter().any(|x| x == "True")).then(|| {
                    format!(
                        "Pod {ns}/{} has condition DisruptionTarget matching",
                        p.name
                    )
                })
            }
        };
        if let Some(w) = what {
            let action = match r.action {
                FailureAction::FailJob => "FailJob",
                FailureAction::Ignore => "Ignore",
                FailureAction::Count => "Count",
            };
            let w = w.trim_end_matches(" matching");
            return Some((r.action, format!("{w} matching {action} rule at index {i}")));
        }
    }
    None
}

/// The `status` object, as Kubernetes writes it.
pub(crate) fn status(spec: &JobSpec, st: &State, pods: &[PodObs], _now: Now) -> Value {
    let live: Vec<&PodObs> = pods.iter().filter(|p| active(p)).collect();
    let mut s = json!({ "ready": live.iter().filter(|p| p.ready).count() });
    let m = s.as_object_mut().expect("an object");
    let ts = |ms: i64| Value::from(crate::clock::rfc3339(ms));
    if !live.is_empty() {
        m.insert("active".into(), live.len().into());
    }
    if st.succeeded > 0 {
        m.insert("succeeded".into(), st.succeeded.into());
    }
    if st.failed > 0 {
        m.insert("failed".into(), st.failed.into());
    }
    let terminating = pods.iter().filter(|p| p.terminating).count();
    if terminating > 0 {
        m.insert("terminating".into(), terminating.into());
    }
    if let Some((wall, _)) = st.start {
        m.insert("startTime".into(), ts(wall));
    }
    if let Some((true, wall, _)) = st.done {
        m.insert("completionTime".into(), ts(wall));
    }
    if spec.indexed {
        m.insert("completedIndexes".into(), ranges(&st.indexes).into());
    }
    if !st.conditions.is_empty() {
        let c: Vec<Value> = st
            .conditions
            .iter()
            .map(|c| {
                json!({
                    "type": c.kind, "status": if c.off { "False" } else { "True" },
                    "reason": c.reason, "message": c.message,
                    "lastProbeTime": ts(c.at_ms), "lastTransitionTime": ts(c.at_ms),
                })
            })
            .collect();
        m.insert("conditions".into(), c.into());
    }
    s
}

/// `1,3-5,7`, as `completedIndexes`.
fn ranges(v: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if j > i {
            format!("{}-{}", v[i], v[j])
        } else {
            v[i].to_string()
        });
        i = j + 1;
    }
    out.join(",")
}

/// Whether the Job finished: `Some((true, wall_ms))` Complete,
/// `Some((false, wall_ms))` Failed.
pub fn finished(st: &State) -> Option<(bool, i64)> {
    st.done.map(|(c, wall, _)| (c, wall))
}

#[cfg(test)]
mod tests;
