//! Snapshot and restore: an agent restart restarts nothing.

use super::*;
use crate::lifecycle::{LifecycleError, NodeSnapshot, Phase};

/// Restores the last persisted snapshot at `now` and drains the outputs.
fn restart(a: &mut Agent, now: Now) -> Vec<Output> {
    let bytes = a.persisted.clone().expect("something was persisted");
    let snap: NodeSnapshot = postcard::from_bytes(&bytes).unwrap();
    a.node = Node::restore(snap, "edge-1".into(), now).unwrap();
    a.now = now;
    let mut out = Vec::new();
    while let Some(o) = a.node.poll_output() {
        out.push(o);
    }
    out
}

fn commands(log: &[Output]) -> Vec<&Output> {
    log.iter()
        .filter(|o| {
            !matches!(
                o,
                Output::StatusChanged { .. } | Output::Persist | Output::RunProbe { .. }
            )
        })
        .collect()
}

#[test]
fn snapshot_round_trips_through_postcard_without_restarting_anything() {
    let mut a = Agent::new();
    let p = with_init(
        pod("web", &[("a", "app:1"), ("b", "app:2")]),
        &[("init", "init:1")],
    );
    let uid = a.apply(p);
    a.advance(1_000);
    a.exit(&uid, "init", 0);
    a.advance(1_000);
    a.exit(&uid, "a", 1);
    a.advance(1_000);
    a.exit(&uid, "a", 1);
    assert_eq!(waiting(&a.cs(&uid, "a")).0, "CrashLoopBackOff");
    let before = a.status(&uid);
    let snap = a.node.snapshot();
    assert_eq!(
        postcard::from_bytes::<NodeSnapshot>(a.persisted.as_ref().unwrap()).unwrap(),
        snap
    );

    a.advance(4_000);
    let out = {
        let now = a.now;
        restart(&mut a, now)
    };
    assert!(
        commands(&out).is_empty(),
        "nothing is started, signalled or created: {out:#?}"
    );
    assert!(out.contains(&Output::StatusChanged { uid: uid.clone() }));
    assert_eq!(a.status(&uid), before);
    let b = a.cs(&uid, "b");
    assert!(is_running(&b) && b.ready);
    // The back-off goes on where it was: 10 s after the exit, 4 s of it gone.
    a.take();
    let is_a =
        |o: &Output| matches!(o, Output::StartContainer { container, .. } if container == "a");
    assert_eq!(a.advance_until(60_000, is_a), Some(6_000));
    assert_eq!(starts(&a.log, "a"), [3]);
    assert_eq!(a.cs(&uid, "a").restart_count, 2);
    assert_eq!(a.cs(&uid, "init").restart_count, 0);
    assert!(starts(&a.log, "init").is_empty());
}

#[test]
fn restore_reissues_in_flight_operations_with_the_same_instance() {
    let mut a = Agent::manual();
    let uid = a.apply(pod("web", &[("a", "app:1"), ("b", "app:2")]));
    a.handle(Input::SandboxReady { uid: uid.clone() });
    a.handle(Input::ImageReady {
        uid: uid.clone(),
        container: "a".into(),
        image_id: "sha256:a".into(),
        pulled_ms: None,
    });
    let other = a.apply(pod("other", &[("c", "app:1")]));
    let out = {
        let now = a.now;
        restart(&mut a, now)
    };
    let cmds = commands(&out);
    assert!(cmds.contains(&&Output::StartContainer {
        uid: uid.clone(),
        container: "a".into(),
        instance: 1
    }));
    assert!(
        cmds.iter()
            .any(|o| matches!(o, Output::EnsureImage { container, .. } if container == "b"))
    );
    assert!(cmds.contains(&&Output::CreateSandbox { uid: other.clone() }));
    assert_eq!(cmds.len(), 3, "{cmds:#?}");
    assert_eq!(a.node.pod(&uid).unwrap().image_id("a"), Some("sha256:a"));
}

#[test]
fn readiness_starts_false_after_restore_and_probes_start_over() {
    let mut a = Agent::new();
    let mut p = pod("web", &[("app", "app:1")]);
    p.spec.containers[0].readiness_probe = Some(probe(0, 10, 1, 3));
    let uid = a.apply(p);
    a.probe(&uid, "app", ProbeKind::Readiness, true);
    assert!(a.cs(&uid, "app").ready);
    a.advance(3_000);
    let out = {
        let now = a.now;
        restart(&mut a, now)
    };
    assert!(!a.cs(&uid, "app").ready);
    assert!(is_running(&a.cs(&uid, "app")));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::RunProbe {
            kind: ProbeKind::Readiness,
            instance: 1,
            ..
        }
    )));
    assert!(commands(&out).is_empty());
}

#[test]
fn exit_seen_while_the_agent_was_down_is_applied_after_restore() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.advance(60_000);
    {
        let now = a.now;
        restart(&mut a, now)
    };
    a.take();
    let r = a.running.remove(&(uid.clone(), "app".to_string())).unwrap();
    a.handle(Input::ContainerExited {
        uid: uid.clone(),
        container: "app".into(),
        instance: r.instance,
        exit_code: 1,
        signal: None,
        oom_killed: false,
        started_at_ms: r.started_at,
        finished_at_ms: a.now.wall_ms - 30_000,
        message: String::new(),
    });
    let log = a.take();
    assert_eq!(starts(&log, "app"), [2]);
    let cs = a.cs(&uid, "app");
    assert_eq!(cs.restart_count, 1);
    assert_eq!(
        cs.last_state.terminated.unwrap().finished_at.as_deref(),
        Some("2023-11-14T22:13:50Z")
    );
}

#[test]
fn restore_of_a_pod_being_deleted_signals_again_and_keeps_the_deadline() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    a.apply(with_grace(pod("web", &[("app", "app:1")]), 20));
    a.handle(Input::DeletePod {
        namespace: String::new(),
        name: "web".into(),
    });
    a.advance(5_000);
    let out = {
        let now = a.now;
        restart(&mut a, now)
    };
    assert_eq!(signals(&out, "app"), [15]);
    assert_eq!(a.node.poll_timeout(), Some(T0.mono_ms + 20_000));
}

#[test]
fn restore_after_a_reboot_keeps_the_age_of_mono_times() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.exit(&uid, "app", 1);
    a.exit(&uid, "app", 1);
    assert_eq!(a.node.poll_timeout(), Some(a.now.mono_ms + 10_000));
    a.advance(3_000);
    // The device rebooted: mono starts again from a small value.
    let now = Now {
        mono_ms: 7_000,
        wall_ms: a.now.wall_ms + 3_600_000,
    };
    restart(&mut a, now);
    assert_eq!(
        a.node.poll_timeout(),
        Some(7_000 + 10_000),
        "ages as of the last handle"
    );
    a.handle(Input::SandboxGone { uid: uid.clone() });
    assert_eq!(a.status(&uid).phase, Phase::Running);
}

#[test]
fn restore_rejects_bad_pod_json_and_duplicates() {
    let mut a = Agent::new();
    a.apply(pod("web", &[("app", "app:1")]));
    let snap = a.node.snapshot();

    let mut bad = snap.clone();
    bad.pods[0].pod_json = "{".into();
    let err = Node::restore(bad, "n".into(), T0).unwrap_err();
    assert!(
        matches!(err, LifecycleError::PodJson { ref uid, .. } if uid == "uid-1"),
        "{err}"
    );

    let mut twice = snap.clone();
    twice.pods.push(snap.pods[0].clone());
    let err = Node::restore(twice, "n".into(), T0).unwrap_err();
    assert!(matches!(err, LifecycleError::Duplicate { .. }), "{err}");

    let mut short = snap;
    short.pods[0].containers.clear();
    let err = Node::restore(short, "n".into(), T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pod uid-1: stored with 0 containers but its spec has 1"
    );
}

#[test]
fn persist_happens_for_lifecycle_changes_only() {
    let mut a = Agent::new();
    let mut p = pod("web", &[("app", "app:1")]);
    p.spec.containers[0].liveness_probe = Some(probe(0, 10, 1, 3));
    let uid = a.apply(p);
    let n = a.persists;
    for _ in 0..10 {
        a.advance(10_000);
        a.probe(&uid, "app", ProbeKind::Liveness, true);
    }
    a.advance(3_600_000 - 100_000);
    assert_eq!(a.persists, n, "a quiet hour writes nothing");
    a.exit(&uid, "app", 1);
    assert_eq!(a.persists, n + 3, "the exit, the new instance, its start");
}

#[test]
fn an_exit_that_overtakes_its_start_report_counts_as_a_run() {
    let mut a = Agent::manual();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.handle(Input::SandboxReady { uid: uid.clone() });
    a.handle(Input::ImageReady {
        uid: uid.clone(),
        container: "app".into(),
        image_id: "sha256:a".into(),
        pulled_ms: None,
    });
    let out = {
        let now = a.now;
        restart(&mut a, now)
    };
    assert_eq!(starts(&out, "app"), [1]);
    a.advance(5_000);
    a.take();
    // The shim had started it and it exited while the agent was down.
    a.handle(Input::ContainerExited {
        uid: uid.clone(),
        container: "app".into(),
        instance: 1,
        exit_code: 3,
        signal: None,
        oom_killed: false,
        started_at_ms: a.now.wall_ms - 4_000,
        finished_at_ms: a.now.wall_ms - 1_000,
        message: String::new(),
    });
    let log = a.take();
    assert_eq!(log[0], Output::Persist);
    assert!(log.contains(&Output::AckExit {
        uid: uid.clone(),
        container: "app".into(),
        instance: 1
    }));
    let cs = a.cs(&uid, "app");
    let t = cs.state.terminated.as_ref().unwrap();
    assert_eq!(
        (t.exit_code, t.started_at.as_deref()),
        (3, Some("2023-11-14T22:13:21Z"))
    );
    assert_eq!(
        pulls(&log).len(),
        1,
        "restarted per policy (first restart is immediate)"
    );
}
