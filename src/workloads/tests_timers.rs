//! The failed-pod back-off of Deployments and StatefulSets, and the
//! controllers' timers across a reboot, on the simulated node.

use super::testkit::Sim;
use super::*;
use crate::lifecycle::Phase;

const REJECTED: (&str, &str) = (
    "NodeAffinity",
    "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector",
);

fn deployment(replicas: i32) -> String {
    format!(
        "
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeSelector: {{disk: ssd}}
      containers: [{{name: main, image: busybox}}]
"
    )
}

fn statefulset(replicas: i32) -> String {
    format!(
        "
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  replicas: {replicas}
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: main, image: busybox}}]
"
    )
}

fn reject(s: &mut Sim) {
    s.reject = Some((REJECTED.0.into(), REJECTED.1.into()));
}

fn backoff_events(out: &[Intent]) -> Vec<String> {
    out.iter()
        .filter_map(|i| match i {
            Intent::Event {
                kind: EventType::Warning,
                reason,
                message,
                ..
            } if reason == "BackOff" => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn created(out: &[Intent]) -> usize {
    out.iter()
        .filter(|i| matches!(i, Intent::CreatePod(_)))
        .count()
}

/// Follows the controllers' timers as the agent does (a sync at each
/// `poll_timeout`) until `n` more syncs made pods. Returns when each of
/// those was (mono ms) and the `BackOff` events of each. A sync that makes
/// no pod does nothing at all (no intent) and, but for the one at the
/// progress deadline, changes no saved state (no state file write).
fn attempts(s: &mut Sim, n: usize) -> (Vec<u64>, Vec<Vec<String>>) {
    let mut at = Vec::new();
    let mut events = Vec::new();
    let mut idle_writes = 0;
    let mut idle = 0;
    while at.len() < n {
        let w = s.w.poll_timeout().expect("a timer is set");
        assert!(w > s.now.mono_ms, "a timer due at once: a hot loop");
        let out = s.advance(w - s.now.mono_ms);
        let dirty = s.w.take_dirty();
        if created(&out) > 0 {
            at.push(s.now.mono_ms);
            events.push(backoff_events(&out));
            idle = 0;
        } else {
            assert!(out.is_empty(), "intents between attempts: {out:?}");
            idle += 1;
            idle_writes += usize::from(dirty);
            assert!(idle <= 2, "woken for nothing");
        }
    }
    assert!(
        idle_writes <= 1,
        "{idle_writes} state writes between attempts"
    );
    (at, events)
}

fn gaps(at: &[u64]) -> Vec<u64> {
    at.windows(2).map(|w| (w[1] - w[0]) / 1000).collect()
}

/// 1 s doubling, capped at 15 min (s).
const EXPECTED: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900];

#[test]
fn a_deployment_rejected_at_admission_backs_off_then_runs_and_resets() {
    let mut s = Sim::new();
    reject(&mut s);
    s.apply(&deployment(2));
    let out = s.sync();
    let t0 = s.now.mono_ms;
    // Both pods were made, rejected, deleted; one event for the attempt.
    assert_eq!(created(&out), 2);
    let ev = backoff_events(&out);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(
        ev[0].starts_with("Back-off 1s before replacing failed pod web-"),
        "{}",
        ev[0]
    );
    assert!(
        ev[0].ends_with(&format!("({}: {})", REJECTED.0, REJECTED.1)),
        "{}",
        ev[0]
    );
    assert!(s.live().is_empty());
    s.w.take_dirty();
    let (mut at, events) = attempts(&mut s, 12);
    at.insert(0, t0);
    assert_eq!(gaps(&at), EXPECTED);
    // One BackOff event per attempt, saying how long the next wait is.
    for (e, secs) in events.iter().zip(EXPECTED.iter().skip(1).chain([&900])) {
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with(&format!("Back-off {secs}s ")), "{}", e[0]);
    }
    // The node's labels change: the next attempt (15 min later) runs.
    s.reject = None;
    let (at2, _) = attempts(&mut s, 1);
    assert_eq!(at2[0] - at.last().unwrap(), 900_000);
    assert_eq!(s.live().len(), 2);
    s.all_ready();
    s.sync();
    // Available: the back-off is reset; a later failure (eviction) is
    // replaced after 1 s again.
    let p = s.live()[0].name.clone();
    {
        let o = &mut s.pods.get_mut(&p).unwrap().1;
        o.phase = Phase::Failed;
        o.ready = false;
        o.reason = "Evicted".into();
        o.message = "The node was low on resource: memory.".into();
    }
    let out = s.sync();
    let t = s.now.mono_ms;
    assert_eq!(created(&out), 0);
    assert_eq!(
        backoff_events(&out),
        [format!(
            "Back-off 1s before replacing failed pod {p} (Evicted: The node was low on resource: memory.)"
        )]
    );
    let (at3, _) = attempts(&mut s, 1);
    assert_eq!(at3[0] - t, 1000);
    assert_eq!(s.live().len(), 2);
}

#[test]
fn a_statefulset_rejected_at_admission_backs_off_then_runs_and_resets() {
    let mut s = Sim::new();
    reject(&mut s);
    s.apply(&statefulset(2));
    let out = s.sync();
    let t0 = s.now.mono_ms;
    // OrderedReady: db-0 only, rejected, deleted.
    assert_eq!(created(&out), 1);
    assert_eq!(
        backoff_events(&out),
        [format!(
            "Back-off 1s before replacing failed pod db-0 ({}: {})",
            REJECTED.0, REJECTED.1
        )]
    );
    s.w.take_dirty();
    let (mut at, events) = attempts(&mut s, 12);
    at.insert(0, t0);
    assert_eq!(gaps(&at), EXPECTED);
    assert!(events.iter().all(|e| e.len() == 1));
    s.reject = None;
    let (at2, _) = attempts(&mut s, 1);
    assert_eq!(at2[0] - at.last().unwrap(), 900_000);
    s.ready("db-0");
    // db-1 follows at once: the back-off only delays replacements.
    let out = s.sync();
    assert_eq!(created(&out), 1);
    s.ready("db-1");
    s.sync();
    // Both healthy: reset. db-1 evicted: replaced 1 s later.
    {
        let o = &mut s.pods.get_mut("db-1").unwrap().1;
        o.phase = Phase::Failed;
        o.ready = false;
        o.reason = "Evicted".into();
    }
    let out = s.sync();
    let t = s.now.mono_ms;
    assert_eq!(
        backoff_events(&out),
        ["Back-off 1s before replacing failed pod db-1 (Evicted)"]
    );
    let (at3, _) = attempts(&mut s, 1);
    assert_eq!(at3[0] - t, 1000);
    assert!(s.pods.contains_key("db-1"));
}

// ---- Timers across a reboot: the mono clock starts again at a small
// value, the wall clock goes on (or is behind: no real-time clock).

/// Ten minutes after the Sim's start the device reboots; the mono clock is
/// at 20 s when the agent restores.
const BOOT_MONO: u64 = 20_000;

fn job(name: &str, spec: &str) -> String {
    format!(
        "
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
{spec}
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: main, image: busybox}}]
"
    )
}

fn job_key(name: &str) -> WorkloadKey {
    WorkloadKey {
        kind: WorkloadKind::Job,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn conditions(s: &Sim, key: &WorkloadKey) -> Vec<String> {
    let obs = s.obs();
    let st = s.w.view(key, &obs, s.now).unwrap().object["status"].clone();
    st["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    format!(
                        "{}/{}",
                        c["type"].as_str().unwrap(),
                        c["reason"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn active(s: &Sim) -> Vec<String> {
    s.live()
        .iter()
        .filter(|p| matches!(p.phase, Phase::Pending | Phase::Running))
        .map(|p| p.name.clone())
        .collect()
}

/// Steps `ms` in 1 s ticks, syncing at each due timer (as the agent does);
/// returns after how many ms `done` first held (`None`: never).
fn when(s: &mut Sim, ms: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
    let mut t = 0;
    while t < ms {
        s.advance(1000);
        t += 1000;
        if done(s) {
            return Some(t);
        }
    }
    None
}

#[test]
fn a_job_back_off_keeps_what_was_left_of_it_after_a_reboot() {
    let mut s = Sim::new();
    s.apply(&job("bad", "  backoffLimit: 6"));
    s.sync();
    let p = active(&s)[0].clone();
    s.exit(&p, 1);
    s.sync();
    s.advance(4000);
    assert!(active(&s).is_empty(), "10 s back-off");
    // 6 s left: after the reboot, 6 s left (not the previous uptime).
    let wall = s.now.wall_ms + 60_000;
    s.reboot(BOOT_MONO, wall);
    s.sync();
    assert_eq!(when(&mut s, 60_000, |s| !active(s).is_empty()), Some(6000));
}

#[test]
fn active_deadline_seconds_counts_the_time_off_by_the_wall_clock() {
    for (off_ms, wall_behind, left_ms) in [
        // The wall clock went on 50 s while off: 100 - 30 - 50 = 20 s left.
        (50_000, false, 20_000),
        // Off longer than the deadline: it is past at once.
        (500_000, false, 1000),
        // The wall clock is behind (no real-time clock): the age at the
        // save is kept, 70 s left.
        (50_000, true, 70_000),
    ] {
        let mut s = Sim::new();
        s.apply(&job("slow", "  activeDeadlineSeconds: 100"));
        s.sync();
        s.all_ready();
        s.advance(30_000);
        let wall = if wall_behind {
            s.now.wall_ms - 3_600_000
        } else {
            s.now.wall_ms + off_ms
        };
        s.reboot(BOOT_MONO, wall);
        s.sync();
        let k = job_key("slow");
        let past = |s: &Sim| conditions(s, &k).contains(&"FailureTarget/DeadlineExceeded".into());
        assert!(!past(&s) || left_ms <= 1000);
        assert_eq!(
            when(&mut s, 200_000, past),
            Some(left_ms),
            "off {off_ms} ms"
        );
    }
}

#[test]
fn ttl_after_finished_counts_the_time_off_by_the_wall_clock() {
    for (off_ms, left_ms) in [(40_000, 30_000), (0, 70_000)] {
        let mut s = Sim::new();
        s.apply(&job("ttl", "  ttlSecondsAfterFinished: 100"));
        s.sync();
        let p = active(&s)[0].clone();
        s.exit(&p, 0);
        s.sync();
        assert!(s.w.get(&job_key("ttl")).is_some());
        s.advance(30_000);
        let wall = s.now.wall_ms + off_ms;
        s.reboot(BOOT_MONO, wall);
        s.sync();
        let gone = |s: &Sim| s.w.get(&job_key("ttl")).is_none();
        assert_eq!(
            when(&mut s, 200_000, gone),
            Some(left_ms),
            "off {off_ms} ms"
        );
    }
}

#[test]
fn a_daemonset_back_off_keeps_what_was_left_of_it_after_a_reboot() {
    let mut s = Sim::new();
    s.apply(
        "
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: main, image: busybox}]
",
    );
    s.sync();
    // Three failures: 1 s, 2 s, then 4 s.
    for _ in 0..3 {
        let w = s.w.poll_timeout();
        if s.live().is_empty() {
            s.advance(w.unwrap() - s.now.mono_ms);
        }
        let p = s.live()[0].name.clone();
        s.exit(&p, 1);
        s.sync();
    }
    s.advance(1000);
    assert!(s.live().is_empty());
    let wall = s.now.wall_ms + 60_000;
    s.reboot(BOOT_MONO, wall);
    s.sync();
    assert_eq!(when(&mut s, 60_000, |s| !s.live().is_empty()), Some(3000));
}

#[test]
fn the_progress_deadline_keeps_what_was_left_of_it_after_a_reboot() {
    let mut s = Sim::new();
    s.apply(
        &deployment(1)
            .replace(
                "  replicas: 1",
                "  replicas: 1\n  progressDeadlineSeconds: 60",
            )
            .replace("      nodeSelector: {disk: ssd}\n", ""),
    );
    s.sync();
    // The pod never becomes ready.
    s.advance(40_000);
    let k = WorkloadKey {
        kind: WorkloadKind::Deployment,
        namespace: "default".into(),
        name: "web".into(),
    };
    let past = |s: &Sim| conditions(s, &k).contains(&"Progressing/ProgressDeadlineExceeded".into());
    assert!(!past(&s));
    // Off an hour: the rollout did not fail for it (the time off is not
    // the new revision's fault); 20 s were left.
    let wall = s.now.wall_ms + 3_600_000;
    s.reboot(BOOT_MONO, wall);
    s.sync();
    // Past once mono is more than 60 s after the last progress: at 20 s + 1 ms.
    assert_eq!(when(&mut s, 120_000, past), Some(21_000));
}

#[test]
fn the_failed_pod_back_off_starts_again_after_a_restart() {
    // Not in the state file: an agent restart (or a reboot) starts it at 1 s.
    let mut s = Sim::new();
    reject(&mut s);
    s.apply(&deployment(1));
    s.sync();
    attempts(&mut s, 4); // 1 s, 2 s, 4 s, 8 s: now 16 s
    s.restart();
    let out = s.sync();
    assert_eq!(created(&out), 1, "at once");
    let (at, _) = attempts(&mut s, 1);
    let t = at[0];
    let (at, _) = attempts(&mut s, 1);
    assert_eq!(at[0] - t, 2000);
}

#[test]
fn mono_times_saved_before_the_controllers_clock_still_count() {
    // A state file of a picolet without EPOCH_MS: the Job started at mono
    // 1,000,000 (the Sim's now) with a 100 s deadline.
    let mut s = Sim::new();
    s.apply(&job("old", "  activeDeadlineSeconds: 100"));
    s.sync();
    s.all_ready();
    let mut snap = s.w.snapshot();
    for e in &mut snap.entries {
        if let State::Job(st) = &mut e.state {
            let (wall, mono) = st.start.unwrap();
            assert_eq!(mono, s.now.mono_ms + EPOCH_MS);
            st.start = Some((wall, s.now.mono_ms));
        }
    }
    s.advance(30_000);
    s.w = Workloads::restore(snap, s.now, s.now);
    s.sync();
    let k = job_key("old");
    let past = |s: &Sim| conditions(s, &k).contains(&"FailureTarget/DeadlineExceeded".into());
    assert_eq!(when(&mut s, 200_000, past), Some(70_000));
    // The same file after a reboot: the age at the save is kept.
    let r = Rebase::new(
        Now {
            mono_ms: 1_030_000,
            wall_ms: 0,
        },
        Now {
            mono_ms: BOOT_MONO,
            wall_ms: 0,
        },
    );
    assert_eq!(r.mono(1_000_000), BOOT_MONO + EPOCH_MS - 30_000);
    assert_eq!(r.mono(0), 0);
}
