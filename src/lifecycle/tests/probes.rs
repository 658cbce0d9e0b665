//! Probe schedule and thresholds.

use super::*;
use ProbeKind::*;

fn with_probes(startup: Option<Probe>, liveness: Option<Probe>, readiness: Option<Probe>) -> Pod {
    let mut p = pod("web", &[("app", "app:1")]);
    let c = &mut p.spec.containers[0];
    c.startup_probe = startup;
    c.liveness_probe = liveness;
    c.readiness_probe = readiness;
    p
}

fn transition(a: &Agent, uid: &str, kind: &str) -> String {
    a.status(uid)
        .conditions
        .into_iter()
        .find(|c| c.kind == kind)
        .and_then(|c| c.last_transition_time)
        .unwrap()
}

#[test]
fn readiness_flips_ready_and_pod_conditions() {
    let mut a = Agent::new();
    let uid = a.apply(with_probes(None, None, Some(probe(0, 5, 1, 3))));
    let cs = a.cs(&uid, "app");
    assert!(is_running(&cs) && cs.started == Some(true) && !cs.ready);
    assert_eq!(
        a.condition(&uid, "ContainersReady"),
        (
            "False".into(),
            "ContainersNotReady".into(),
            "containers with unready status: [app]".into()
        )
    );
    assert_eq!(
        a.condition(&uid, "Ready"),
        a.condition(&uid, "ContainersReady"),
        "no readiness gates: Ready mirrors ContainersReady"
    );
    assert!(
        a.probe_out(&uid, "app", Readiness),
        "first run right at start"
    );
    let t0 = transition(&a, &uid, "Ready");

    a.advance(2_000);
    let persists = a.persists;
    a.take();
    a.probe(&uid, "app", Readiness, true);
    let log = a.take();
    assert!(a.cs(&uid, "app").ready);
    assert_eq!(a.condition(&uid, "Ready").0, "True");
    assert_eq!(a.condition(&uid, "ContainersReady").0, "True");
    assert_eq!(
        log,
        [Output::StatusChanged { uid: uid.clone() }],
        "readiness is not persisted"
    );
    let t1 = transition(&a, &uid, "Ready");
    assert_ne!(t0, t1);
    assert_eq!(t1, crate::clock::rfc3339(a.now.wall_ms));

    for i in 0..3 {
        assert!(!a.probe_out(&uid, "app", Readiness));
        a.advance(5_000);
        assert!(
            a.probe_out(&uid, "app", Readiness),
            "every period after the result"
        );
        a.probe(&uid, "app", Readiness, false);
        assert_eq!(
            a.cs(&uid, "app").ready,
            i < 2,
            "false after 3 failures in a row"
        );
        if i < 2 {
            assert_eq!(
                transition(&a, &uid, "Ready"),
                t1,
                "unchanged while status is unchanged"
            );
        }
    }
    assert_eq!(a.condition(&uid, "Ready").0, "False");
    assert_eq!(
        events(&a.log, "Unhealthy"),
        ["Readiness probe failed: exit 1"; 3]
    );
    assert_eq!(a.persists, persists, "probe results never persist");
    assert!(starts(&a.log, "app").is_empty(), "readiness never restarts");
}

#[test]
fn readiness_success_threshold_needs_consecutive_successes() {
    let mut a = Agent::new();
    let uid = a.apply(with_probes(None, None, Some(probe(0, 1, 3, 1))));
    for (ok, ready) in [
        (true, false),
        (true, false),
        (false, false),
        (true, false),
        (true, false),
        (true, true),
    ] {
        a.advance(1_000);
        a.probe(&uid, "app", Readiness, ok);
        assert_eq!(a.cs(&uid, "app").ready, ready);
    }
}

#[test]
fn probe_schedule_respects_initial_delay_and_period_without_overlap() {
    let mut a = Agent::new();
    let uid = a.apply(with_probes(None, Some(probe(5, 10, 1, 3)), None));
    assert!(!a.probe_out(&uid, "app", Liveness));
    assert_eq!(a.node.poll_timeout(), Some(T0.mono_ms + 5_000));
    a.advance(4_999);
    assert!(!a.probe_out(&uid, "app", Liveness));
    a.advance(1);
    assert!(a.probe_out(&uid, "app", Liveness));
    let runs = |a: &Agent| count(&a.log, |o| matches!(o, Output::RunProbe { .. }));
    assert_eq!(runs(&a), 1);
    a.advance(60_000);
    assert_eq!(runs(&a), 1, "never two in flight");
    assert_eq!(a.node.poll_timeout(), None);
    a.probe(&uid, "app", Liveness, true);
    assert_eq!(a.node.poll_timeout(), Some(a.now.mono_ms + 10_000));
    let out = a.log.iter().rev().find_map(|o| match o {
        Output::RunProbe {
            timeout_ms,
            probe,
            kind,
            instance,
            ..
        } => Some((*timeout_ms, probe.clone(), *kind, *instance)),
        _ => None,
    });
    assert_eq!(out, Some((1_000, probe(5, 10, 1, 3), Liveness, 1)));
}

#[test]
fn liveness_failure_kills_gracefully_then_sigkill_after_grace() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let uid = a.apply(with_probes(None, Some(probe(0, 10, 1, 3)), None));
    a.take();
    for i in 0..3 {
        if i > 0 {
            a.advance(10_000);
        }
        a.probe(&uid, "app", Liveness, false);
    }
    let log = a.take();
    assert_eq!(
        events(&log, "Unhealthy"),
        ["Liveness probe failed: exit 1"; 3]
    );
    assert_eq!(
        events(&log, "Killing"),
        ["Container app failed liveness probe, will be restarted"]
    );
    assert_eq!(signals(&log, "app"), [15]);
    assert_eq!(
        a.node.poll_timeout(),
        Some(a.now.mono_ms + 30_000),
        "default grace 30 s"
    );
    a.advance(29_999);
    assert!(signals(&a.log, "app").is_empty());
    assert!(
        !a.probe_out(&uid, "app", Liveness),
        "no probes while being killed"
    );
    a.advance(1);
    assert_eq!(signals(&a.take(), "app"), [9]);
    let r = a.running.remove(&(uid.clone(), "app".to_string())).unwrap();
    a.handle(Input::ContainerExited {
        uid: uid.clone(),
        container: "app".into(),
        instance: r.instance,
        exit_code: 137,
        signal: Some(9),
        oom_killed: false,
        started_at_ms: r.started_at,
        finished_at_ms: a.now.wall_ms,
        message: String::new(),
    });
    let log = a.take();
    assert_eq!(
        starts(&log, "app"),
        [2],
        "the restart policy applies to the exit"
    );
    let cs = a.cs(&uid, "app");
    assert_eq!(cs.last_state.terminated.unwrap().exit_code, 137);
    assert!(
        a.probe_out(&uid, "app", Liveness),
        "the new instance is probed"
    );
}

#[test]
fn liveness_success_resets_the_failure_run() {
    let mut a = Agent::new();
    let uid = a.apply(with_probes(None, Some(probe(0, 1, 1, 2)), None));
    for ok in [false, true, false, true, false] {
        a.advance(1_000);
        a.probe(&uid, "app", Liveness, ok);
    }
    assert!(events(&a.log, "Killing").is_empty());
    a.advance(1_000);
    a.probe(&uid, "app", Liveness, false);
    assert_eq!(events(&a.log, "Killing").len(), 1);
}

#[test]
fn liveness_failure_with_never_policy_kills_without_restart() {
    let mut a = Agent::new();
    let p = with_policy(
        with_probes(None, Some(probe(0, 1, 1, 1)), None),
        RestartPolicy::Never,
    );
    let uid = a.apply(p);
    a.take();
    a.probe(&uid, "app", Liveness, false);
    let log = a.take();
    assert_eq!(
        events(&log, "Killing"),
        ["Container app failed liveness probe"]
    );
    assert!(starts(&log, "app").is_empty());
    assert_eq!(exit_code(&a.cs(&uid, "app")), 143);
    assert_eq!(a.status(&uid).phase, crate::lifecycle::Phase::Failed);
}

#[test]
fn startup_probe_gates_liveness_and_readiness() {
    let mut a = Agent::new();
    let p = with_probes(
        Some(probe(0, 2, 1, 5)),
        Some(probe(0, 10, 1, 3)),
        Some(probe(3, 10, 1, 3)),
    );
    let uid = a.apply(p);
    assert!(a.probe_out(&uid, "app", Startup));
    let cs = a.cs(&uid, "app");
    assert_eq!((cs.started, cs.ready), (Some(false), false));
    for _ in 0..3 {
        a.advance(2_000);
        a.probe(&uid, "app", Startup, false);
    }
    assert!(!a.probe_out(&uid, "app", Liveness) && !a.probe_out(&uid, "app", Readiness));
    assert!(
        events(&a.log, "Killing").is_empty(),
        "3 of 5 allowed failures"
    );
    a.advance(2_000);
    a.probe(&uid, "app", Startup, true);
    let cs = a.cs(&uid, "app");
    assert_eq!((cs.started, cs.ready), (Some(true), false));
    assert!(
        a.probe_out(&uid, "app", Liveness),
        "liveness at once: its delay is over"
    );
    assert!(
        a.probe_out(&uid, "app", Readiness),
        "readiness delay 3 s from start is over too"
    );
    assert_eq!(a.node.poll_timeout(), None);
}

#[test]
fn readiness_waits_for_its_initial_delay_even_after_startup() {
    let mut a = Agent::new();
    let uid = a.apply(with_probes(
        Some(probe(0, 1, 1, 3)),
        None,
        Some(probe(20, 10, 1, 3)),
    ));
    a.advance(1_000);
    a.probe(&uid, "app", Startup, true);
    assert!(!a.probe_out(&uid, "app", Readiness));
    assert_eq!(a.node.poll_timeout(), Some(T0.mono_ms + 20_000));
    a.advance(19_000);
    assert!(a.probe_out(&uid, "app", Readiness));
    assert!(
        !a.probe_out(&uid, "app", Startup),
        "startup probing stopped after success"
    );
}

#[test]
fn startup_probe_failure_kills_like_liveness() {
    let mut a = Agent::new();
    let uid = a.apply(with_probes(Some(probe(0, 1, 1, 2)), None, None));
    a.take();
    a.probe(&uid, "app", Startup, false);
    a.advance(1_000);
    a.probe(&uid, "app", Startup, false);
    let log = a.take();
    assert_eq!(
        events(&log, "Unhealthy"),
        ["Startup probe failed: exit 1"; 2]
    );
    assert_eq!(
        events(&log, "Killing"),
        ["Container app failed startup probe, will be restarted"]
    );
    assert_eq!(signals(&log, "app"), [15]);
    assert_eq!(starts(&log, "app"), [2]);
    assert!(
        a.probe_out(&uid, "app", Startup),
        "the new instance starts over"
    );
}

#[test]
fn results_for_an_old_instance_are_ignored() {
    let mut a = Agent::new();
    let uid = a.apply(with_probes(None, None, Some(probe(0, 1, 1, 1))));
    a.exit(&uid, "app", 1);
    assert_eq!(a.instance(&uid, "app"), 2);
    a.take();
    a.handle(Input::ProbeResult {
        uid: uid.clone(),
        container: "app".into(),
        instance: 1,
        kind: Readiness,
        success: true,
        message: String::new(),
    });
    assert!(!a.cs(&uid, "app").ready);
    assert!(a.take().is_empty());
}

#[test]
fn probes_stop_when_the_container_stops() {
    let mut a = Agent::new();
    let p = with_policy(
        with_probes(None, Some(probe(0, 1, 1, 3)), Some(probe(0, 1, 1, 3))),
        RestartPolicy::Never,
    );
    let uid = a.apply(p);
    a.exit(&uid, "app", 0);
    a.probes_out.clear();
    a.take();
    assert_eq!(a.node.poll_timeout(), None);
    a.advance(100_000);
    assert_eq!(count(&a.log, |o| matches!(o, Output::RunProbe { .. })), 0);
}
