//! The CronJob controller on one node, as Kubernetes' (`cronjob_controllerv2`):
//!
//! - the Jobs it made are reconciled first: a finished one leaves
//!   `active` (`SawCompletedJob`; `lastSuccessfulTime` when Complete), and
//!   the finished ones past `successfulJobsHistoryLimit` /
//!   `failedJobsHistoryLimit` are deleted, oldest first;
//! - then, unless suspended, the most recent unmet schedule time since
//!   `lastScheduleTime` (or since the CronJob was first seen with a
//!   synchronized clock) runs as the Job `<cronjob>-<minutes since epoch>`:
//!   only the most recent one, however many were missed (more than 100:
//!   the `TooManyMissedTimes` warning), and not at all when it is older
//!   than `startingDeadlineSeconds` (`MissSchedule`);
//! - `concurrencyPolicy`: `Forbid` skips a run while a Job is active
//!   (`JobAlreadyActive`), `Replace` deletes the active ones first.
//!
//! **Devices without a real-time clock.** Nothing is scheduled while
//! [`super::Env::clock_synced`] is false (one `ClockNotSynchronized`
//! event). A wall clock jump forward (NTP sync after a stale boot) thus
//! runs at most one Job. The wall time is `now.wall_ms`; the timer is
//! on the mono clock, at most a minute away so that a jump is seen.

use super::cron::{civil, rfc3339_in};
use super::tz::Zone;
use super::{Cx, Entry};
use crate::clock::Now;
use crate::lifecycle::EventType;
use crate::spec::workload::cronjob::{Concurrency, CronJobSpec};
use crate::spec::workload::{WorkloadSpec, workload_from_value};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const SCHEDULED_KEY: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// `lastScheduleTime` (Unix seconds).
    pub last_schedule: Option<i64>,
    /// `lastSuccessfulTime` (wall ms).
    pub last_successful_ms: Option<i64>,
    /// When the controller first ran with a synchronized clock (Unix
    /// seconds): the earliest schedule time before any run.
    pub since: Option<i64>,
    /// `status.active`: the Jobs it started that have not finished.
    pub active: Vec<String>,
    /// The last warning given, not to repeat it at every sync.
    pub noted: String,
}

/// What a CronJob sees of one of its Jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobObs {
    pub name: String,
    pub created_wall_ms: i64,
    /// `Some((complete, wall_ms))` once finished.
    pub finished: Option<(bool, i64)>,
}

impl JobObs {
    pub(crate) fn of(e: &Entry, st: &super::job::State) -> JobObs {
        JobObs {
            name: e.workload.metadata.name.clone(),
            created_wall_ms: e.created_wall_ms,
            finished: super::job::finished(st),
        }
    }
}

/// An event once per distinct `key`.
fn note(cx: &mut Cx<'_>, st: &mut State, key: String, kind: EventType, reason: &str, msg: String) {
    if st.noted != key {
        st.noted = key;
        cx.event(kind, reason, msg);
    }
}

pub(crate) fn sync(cx: &mut Cx<'_>, spec: &CronJobSpec, st: &mut State, jobs: &[JobObs]) {
    let now = cx.now;
    // The Jobs it made.
    let mut active = std::mem::take(&mut st.active);
    active.retain(|name| match jobs.iter().find(|j| &j.name == name) {
        None => {
            cx.event(
                EventType::Normal,
                "MissingJob",
                format!("Active job went missing: {name}"),
            );
            false
        }
        Some(JobObs {
            finished: Some((complete, at)),
            ..
        }) => {
            if *complete {
                st.last_successful_ms = Some(st.last_successful_ms.map_or(*at, |l| l.max(*at)));
            }
            cx.event(
                EventType::Normal,
                "SawCompletedJob",
                format!(
                    "Saw completed job: {name}, condition: {}",
                    if *complete { "Complete" } else { "Failed" }
                ),
            );
            false
        }
        Some(_) => true,
    });
    st.active = active;
    for complete in [true, false] {
        let limit = if complete {
            spec.successful_jobs_history_limit
        } else {
            spec.failed_jobs_history_limit
        } as usize;
        let mut done: Vec<&JobObs> = jobs
            .iter()
            .filter(|j| j.finished.is_some_and(|f| f.0 == complete))
            .collect();
        // The oldest go first.
        while done.len() > limit {
            let oldest = (0..done.len())
                .min_by_key(|&i| (done[i].created_wall_ms, &done[i].name))
                .unwrap_or(0);
            let j = done.swap_remove(oldest);
            cx.delete_job(&j.name);
            cx.event(
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted job {}", j.name),
            );
        }
    }
    let now_s = now.wall_ms.div_euclid(1000);
    if cx.env.clock_synced {
        st.since.get_or_insert(now_s);
    }
    if spec.suspend {
        return;
    }
    if !cx.env.clock_synced {
        note(
            cx,
            st,
            "unsynced".into(),
            EventType::Warning,
            "ClockNotSynchronized",
            "Not scheduling: the system clock is not synchronized yet".into(),
        );
        cx.wake_at(now.mono_ms + 60_000);
        return;
    }
    let utc = Zone::utc();
    let env = cx.env;
    let zone = match &spec.time_zone {
        None => &utc,
        Some(name) => match env.zones.get(name) {
            Some(Ok(z)) => z,
            other => {
                let why = match other {
                    Some(Err(e)) => e.clone(),
                    _ => format!("unknown time zone {name}: not loaded"),
                };
                note(
                    cx,
                    st,
                    format!("tz {why}"),
                    EventType::Warning,
                    "UnknownTimeZone",
                    format!("invalid spec.timeZone {name:?}: {why}"),
                );
                return;
            }
        },
    };
    let mut earliest = st.last_schedule.or(st.since).unwrap_or(now_s);
    if let Some(d) = spec.starting_deadline_seconds {
        earliest = earliest.max(now_s - d);
    }
    let sched = &spec.schedule;
    let wake = |cx: &mut Cx<'_>| {
        if let Some(n) = sched.next(now_s, zone) {
            let ms = (n * 1000 - now.wall_ms).clamp(0, 60_000) as u64;
            cx.wake_at(now.mono_ms + ms);
        } else {
            cx.wake_at(now.mono_ms + 60_000);
        }
    };
    let Some(scheduled) = most_recent(sched, zone, earliest, now_s, cx, st) else {
        wake(cx);
        return;
    };
    if spec
        .starting_deadline_seconds
        .is_some_and(|d| scheduled + d < now_s)
    {
        note(
            cx,
            st,
            format!("miss {scheduled}"),
            EventType::Warning,
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                rfc1123z(scheduled)
            ),
        );
        wake(cx);
        return;
    }
    let name = format!("{}-{}", cx.meta.name, scheduled.div_euclid(60));
    if st.active.contains(&name) || st.last_schedule == Some(scheduled) {
        wake(cx);
        return;
    }
    if spec.concurrency == Concurrency::Forbid && !st.active.is_empty() {
        note(
            cx,
            st,
            format!("forbid {scheduled}"),
            EventType::Normal,
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        );
        wake(cx);
        return;
    }
    if spec.concurrency == Concurrency::Replace {
        for j in std::mem::take(&mut st.active) {
            cx.delete_job(&j);
            cx.event(
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted job {j}"),
            );
        }
    }
    let mut t = spec.job_template.clone();
    let meta = t
        .as_object_mut()
        .map(|m| m.remove("metadata").unwrap_or(json!({})))
        .unwrap_or(json!({}));
    let mut meta = if meta.is_object() { meta } else { json!({}) };
    meta["name"] = name.clone().into();
    meta["namespace"] = cx.meta.namespace.clone().into();
    if !meta.get("annotations").is_some_and(Value::is_object) {
        meta["annotations"] = json!({});
    }
    meta["annotations"][SCHEDULED_KEY] =
        rfc3339_in(scheduled, zone, spec.time_zone.is_none()).into();
    let doc = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
        "spec": t.get("spec").cloned().unwrap_or(Value::Null),
    });
    let text = doc.to_string();
    match workload_from_value(doc) {
        Ok(mut job) => {
            // The template as checked and hardened (node policy) with the
            // CronJob.
            if let WorkloadSpec::Job(j) = &mut job.spec {
                j.template.pod.spec = spec.job.template.pod.spec.clone();
            }
            cx.create_job(job, text);
            cx.event(
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created job {name}"),
            );
            st.active.push(name);
            st.last_schedule = Some(scheduled);
            st.noted.clear();
        }
        Err(e) => note(
            cx,
            st,
            format!("create {e}"),
            EventType::Warning,
            "FailedCreate",
            format!("Error creating job: {e}"),
        ),
    }
    wake(cx);
}

/// The most recent schedule time in `(earliest, now]`, if any; more than
/// 100 of them gives the `TooManyMissedTimes` warning.
fn most_recent(
    sched: &super::cron::Schedule,
    zone: &Zone,
    earliest: i64,
    now: i64,
    cx: &mut Cx<'_>,
    st: &mut State,
) -> Option<i64> {
    let t1 = sched.next(earliest, zone).filter(|t| *t <= now)?;
    let Some(t2) = sched.next(t1, zone).filter(|t| *t <= now) else {
        return Some(t1);
    };
    // Kubernetes' estimate of the number missed, for its warning.
    let missed = (now - t1) / (t2 - t1).max(1) + 1;
    if missed > 100 {
        note(
            cx,
            st,
            format!("many {t1}"),
            EventType::Warning,
            "TooManyMissedTimes",
            format!(
                "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            ),
        );
    }
    // The last one: searched from windows back from now, growing.
    for back in [3600, 86_400, 31 * 86_400, 366 * 86_400, now - t2] {
        if let Some(mut t) = sched
            .next(now - back.min(now - t2) - 1, zone)
            .filter(|t| *t <= now)
        {
            while let Some(n) = sched.next(t, zone).filter(|n| *n <= now) {
                t = n;
            }
            return Some(t);
        }
    }
    Some(t2)
}

/// Go's `time.RFC1123Z` of a UTC time: `Mon, 02 Jan 2006 15:04:05 +0000`.
fn rfc1123z(t: i64) -> String {
    let (y, mo, d, h, mi, wd) = civil(t);
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {h:02}:{mi:02}:{:02} +0000",
        DAYS[wd as usize],
        MONTHS[mo as usize - 1],
        t.rem_euclid(60)
    )
}

/// The `status` object, as Kubernetes writes it.
pub(crate) fn status(_spec: &CronJobSpec, st: &State, _jobs: &[JobObs], _now: Now) -> Value {
    let mut s = json!({});
    if !st.active.is_empty() {
        s["active"] = st
            .active
            .iter()
            .map(|n| json!({"apiVersion": "batch/v1", "kind": "Job", "name": n}))
            .collect();
    }
    if let Some(t) = st.last_schedule {
        s["lastScheduleTime"] = crate::clock::rfc3339(t * 1000).into();
    }
    if let Some(t) = st.last_successful_ms {
        s["lastSuccessfulTime"] = crate::clock::rfc3339(t).into();
    }
    s
}

#[cfg(test)]
mod tests;
