//! The CronJob controller with a virtual (and jumping) wall clock.

use crate::lifecycle::Phase;
use crate::spec::workload::{WorkloadKey, WorkloadKind};
use crate::workloads::cron::days_from_civil;
use crate::workloads::testkit::Sim;
use crate::workloads::{Intent, PodObs};
use serde_json::Value;

const MIN: u64 = 60_000;
const DAY: i64 = 86_400_000;

fn cronjob(spec: &str) -> String {
    format!(
        "
apiVersion: batch/v1
kind: CronJob
metadata: {{name: hello}}
spec:
{spec}
  jobTemplate:
    metadata: {{labels: {{team: a}}}}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{{name: main, image: busybox}}]
"
    )
}

/// Applies and syncs, as the agent does.
fn apply(s: &mut Sim, yaml: &str) {
    s.apply(yaml);
    s.sync();
}

fn key() -> WorkloadKey {
    WorkloadKey {
        kind: WorkloadKind::CronJob,
        namespace: "default".into(),
        name: "hello".into(),
    }
}

/// A Sim whose wall clock reads 2026-12-06 `hh:mm:ss` UTC.
fn sim_at(h: i64, m: i64, sec: i64) -> Sim {
    let mut s = Sim::new();
    s.now.wall_ms = (days_from_civil(2026, 12, 6) * 86_400 + h * 3600 + m * 60 + sec) * 1000;
    s
}

fn jobs(s: &Sim) -> Vec<String> {
    s.w.children(&key())
        .iter()
        .map(|e| e.workload.metadata.name.clone())
        .collect()
}

fn minutes(s: &Sim) -> i64 {
    s.now.wall_ms.div_euclid(60_000)
}

fn events(s: &Sim, reason: &str) -> usize {
    s.log
        .iter()
        .filter(|i| matches!(i, Intent::Event { reason: r, .. } if r == reason))
        .count()
}

/// The running pod of Job `job`.
fn pod_of(s: &Sim, job: &str) -> Option<String> {
    s.live()
        .iter()
        .find(|p| p.labels.get("job-name").map(String::as_str) == Some(job))
        .map(|p| p.name.clone())
}

fn status(s: &Sim) -> Value {
    let obs: Vec<PodObs> = s.pods.values().map(|(_, o)| o.clone()).collect();
    s.w.view(&key(), &obs, s.now).unwrap().object["status"].clone()
}

#[test]
fn every_minute_makes_a_job_named_after_its_scheduled_minute() {
    let mut s = sim_at(10, 0, 30);
    apply(&mut s, &cronjob("  schedule: '* * * * *'"));
    s.sync();
    assert!(jobs(&s).is_empty());
    assert_eq!(s.w.poll_timeout(), Some(s.now.mono_ms + 30_000));
    s.advance(30_000);
    let j = jobs(&s);
    assert_eq!(j, [format!("hello-{}", minutes(&s))]);
    let e = s.w.children(&key())[0];
    assert_eq!(e.workload.metadata.labels["team"], "a");
    assert_eq!(
        e.workload.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        "2026-12-06T10:01:00Z"
    );
    assert!(pod_of(&s, &j[0]).is_some(), "the Job runs its pod");
    assert_eq!(status(&s)["lastScheduleTime"], "2026-12-06T10:01:00Z");
    assert_eq!(status(&s)["active"][0]["name"], j[0]);
    assert_eq!(events(&s, "SuccessfulCreate"), 1);
    // Finishing: lastSuccessfulTime, out of `active`.
    let p = pod_of(&s, &j[0]).unwrap();
    s.exit(&p, 0);
    s.advance(5000);
    assert!(status(&s).get("active").is_none());
    assert!(status(&s)["lastSuccessfulTime"].is_string());
    assert_eq!(events(&s, "SawCompletedJob"), 1);
}

#[test]
fn a_three_day_clock_jump_runs_one_job_not_a_burst() {
    let mut s = sim_at(10, 0, 30);
    apply(&mut s, &cronjob("  schedule: '*/5 * * * *'"));
    s.advance(5 * MIN);
    assert_eq!(jobs(&s).len(), 1);
    let p = pod_of(&s, &jobs(&s)[0]).unwrap();
    s.exit(&p, 0);
    s.sync();
    // NTP steps the wall clock 3 days forward; mono moves 1 s.
    s.now.wall_ms += 3 * DAY;
    s.now.mono_ms += 1000;
    s.sync();
    let j = jobs(&s);
    assert_eq!(j.len(), 2, "{j:?}");
    // The most recent schedule: 10:05 three days later.
    let latest = (s.now.wall_ms / 1000 / 300) * 5;
    assert!(j.contains(&format!("hello-{latest}")), "{j:?}");
    assert_eq!(events(&s, "TooManyMissedTimes"), 1);
    assert_eq!(
        s.advance(10_000)
            .iter()
            .filter(|i| matches!(i, Intent::CreatePod(_)))
            .count(),
        0
    );
    assert_eq!(jobs(&s).len(), 2);
}

#[test]
fn an_hourly_schedule_after_a_jump_also_runs_once() {
    let mut s = sim_at(10, 0, 30);
    apply(&mut s, &cronjob("  schedule: '@hourly'"));
    s.sync();
    s.now.wall_ms += 3 * DAY;
    s.now.mono_ms += 1000;
    s.sync();
    assert_eq!(jobs(&s).len(), 1);
    assert_eq!(
        events(&s, "TooManyMissedTimes"),
        0,
        "72 missed is not too many"
    );
}

#[test]
fn nothing_is_scheduled_until_the_clock_is_synchronized() {
    let mut s = sim_at(10, 0, 30);
    s.env.clock_synced = false;
    apply(&mut s, &cronjob("  schedule: '* * * * *'"));
    for _ in 0..5 {
        s.advance(MIN);
    }
    assert!(jobs(&s).is_empty());
    assert_eq!(events(&s, "ClockNotSynchronized"), 1);
    assert!(s.w.poll_timeout().is_some());
    // Synced (and 2 days later): no burst, no run for the time before.
    s.now.wall_ms += 2 * DAY;
    s.env.clock_synced = true;
    s.sync();
    assert!(jobs(&s).is_empty());
    s.advance(MIN);
    assert_eq!(jobs(&s).len(), 1);
}

#[test]
fn forbid_skips_while_a_job_runs_then_runs_the_missed_time() {
    let mut s = sim_at(10, 0, 0);
    apply(
        &mut s,
        &cronjob("  schedule: '* * * * *'\n  concurrencyPolicy: Forbid"),
    );
    s.advance(MIN);
    let first = jobs(&s);
    assert_eq!(first.len(), 1);
    s.advance(MIN);
    s.advance(1000);
    assert_eq!(jobs(&s), first);
    assert_eq!(events(&s, "JobAlreadyActive"), 1);
    let p = pod_of(&s, &first[0]).unwrap();
    s.exit(&p, 0);
    s.sync();
    assert_eq!(jobs(&s).len(), 2, "the 10:02 run starts late");
}

#[test]
fn replace_deletes_the_running_job_and_allow_runs_both() {
    let mut s = sim_at(10, 0, 0);
    apply(
        &mut s,
        &cronjob("  schedule: '* * * * *'\n  concurrencyPolicy: Replace"),
    );
    s.advance(MIN);
    let first = jobs(&s);
    let p = pod_of(&s, &first[0]).unwrap();
    s.advance(MIN);
    let now = jobs(&s);
    assert_eq!(now.len(), 1);
    assert_ne!(now, first);
    assert!(!s.pods.contains_key(&p), "the replaced Job's pod is gone");

    let mut s = sim_at(10, 0, 0);
    apply(&mut s, &cronjob("  schedule: '* * * * *'"));
    s.advance(MIN);
    s.advance(MIN);
    assert_eq!(jobs(&s).len(), 2);
    assert_eq!(s.live().len(), 2);
}

#[test]
fn history_limits_keep_the_newest_finished_jobs() {
    let mut s = sim_at(10, 0, 0);
    apply(
        &mut s,
        &cronjob(
            "  schedule: '* * * * *'\n  successfulJobsHistoryLimit: 2\n  failedJobsHistoryLimit: 1",
        ),
    );
    let mut made = Vec::new();
    for _ in 0..4 {
        s.advance(MIN);
        let j = jobs(&s).into_iter().find(|j| !made.contains(j)).unwrap();
        let p = pod_of(&s, &j).unwrap();
        s.exit(&p, 0);
        s.sync();
        made.push(j);
    }
    assert_eq!(jobs(&s), made[2..]);
    assert_eq!(events(&s, "SuccessfulDelete"), 2);
    // Failures (backoffLimit reached by restarts): one kept.
    let mut failed = Vec::new();
    for _ in 0..2 {
        s.advance(MIN);
        let j = jobs(&s)
            .into_iter()
            .find(|j| !made.contains(j) && !failed.contains(j))
            .unwrap();
        let p = pod_of(&s, &j).unwrap();
        for _ in 0..6 {
            s.crash(&p);
        }
        s.advance(1000);
        failed.push(j);
    }
    let left = jobs(&s);
    assert!(
        left.contains(&failed[1]) && !left.contains(&failed[0]),
        "{left:?}"
    );
    assert_eq!(left.len(), 3);
}

#[test]
fn starting_deadline_seconds_skips_a_run_found_too_late() {
    let mut s = sim_at(10, 0, 0);
    apply(
        &mut s,
        &cronjob("  schedule: '*/10 * * * *'\n  startingDeadlineSeconds: 30"),
    );
    s.sync();
    // Clock jumps to 10:10:45: the 10:10 run is 45 s late.
    s.now.wall_ms += 645_000;
    s.now.mono_ms += 1000;
    s.sync();
    assert!(jobs(&s).is_empty());
    // Within the deadline it runs.
    let mut s = sim_at(10, 0, 0);
    apply(
        &mut s,
        &cronjob("  schedule: '*/10 * * * *'\n  startingDeadlineSeconds: 30"),
    );
    s.sync();
    s.now.wall_ms += 620_000;
    s.now.mono_ms += 1000;
    s.sync();
    assert_eq!(jobs(&s).len(), 1);
    // MissSchedule: with a deadline the window starts at now - deadline,
    // so a run older than it is not even seen; check the event's wording
    // by a run missed while Forbid held it.
    let mut s = sim_at(10, 0, 0);
    apply(
        &mut s,
        &cronjob(
            "  schedule: '* * * * *'\n  startingDeadlineSeconds: 30\n  concurrencyPolicy: Forbid",
        ),
    );
    s.advance(MIN);
    s.advance(MIN);
    let p = pod_of(&s, &jobs(&s)[0]).unwrap();
    s.advance(40_000);
    s.exit(&p, 0);
    s.sync();
    assert_eq!(jobs(&s).len(), 1, "10:02 is 40 s old: too late");
}

#[test]
fn a_restart_keeps_the_schedule_without_running_twice() {
    let mut s = sim_at(10, 0, 30);
    apply(&mut s, &cronjob("  schedule: '* * * * *'"));
    s.advance(30_000);
    assert_eq!(jobs(&s).len(), 1);
    s.restart();
    s.sync();
    s.advance(10_000);
    assert_eq!(jobs(&s).len(), 1);
    s.advance(50_000);
    assert_eq!(jobs(&s).len(), 2);
}

#[test]
fn suspend_holds_the_schedule_and_resume_runs_the_latest_missed() {
    let mut s = sim_at(10, 0, 0);
    apply(&mut s, &cronjob("  schedule: '* * * * *'\n  suspend: true"));
    for _ in 0..3 {
        s.advance(MIN);
    }
    assert!(jobs(&s).is_empty());
    apply(
        &mut s,
        &cronjob("  schedule: '* * * * *'\n  suspend: false"),
    );
    s.sync();
    assert_eq!(jobs(&s), [format!("hello-{}", minutes(&s))]);
}

#[test]
fn a_time_zone_schedules_in_local_time() {
    let mut s = sim_at(7, 59, 30);
    let berlin = std::fs::read("/usr/share/zoneinfo/Europe/Berlin").unwrap();
    s.env.zones.insert(
        "Europe/Berlin".into(),
        Ok(crate::workloads::tz::Zone::parse(&berlin).unwrap()),
    );
    apply(
        &mut s,
        &cronjob("  schedule: '0 9 * * *'\n  timeZone: Europe/Berlin"),
    );
    s.advance(30_000);
    let e = s.w.children(&key());
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].workload.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        "2026-12-06T09:00:00+01:00"
    );
    // A zone the agent could not load: no run, one clear event.
    let mut s = sim_at(7, 59, 30);
    s.env.zones.insert(
        "Mars/Olympus".into(),
        Err("unknown time zone Mars/Olympus".into()),
    );
    apply(
        &mut s,
        &cronjob("  schedule: '* * * * *'\n  timeZone: Mars/Olympus"),
    );
    s.advance(MIN);
    s.advance(MIN);
    assert!(jobs(&s).is_empty());
    assert_eq!(events(&s, "UnknownTimeZone"), 1);
    let msg = s.log.iter().find_map(|i| match i {
        Intent::Event {
            reason, message, ..
        } if reason == "UnknownTimeZone" => Some(message.clone()),
        _ => None,
    });
    assert!(msg.unwrap().contains("spec.timeZone"));
}

#[test]
fn removing_the_cronjob_removes_its_jobs_and_their_pods() {
    let mut s = sim_at(10, 0, 0);
    apply(&mut s, &cronjob("  schedule: '* * * * *'"));
    s.advance(MIN);
    assert_eq!(s.live().len(), 1);
    assert!(s.w.remove(&key(), s.now));
    s.sync();
    assert!(s.live().is_empty());
    assert!(s.w.is_empty());
    let _ = Phase::Pending;
}
