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
