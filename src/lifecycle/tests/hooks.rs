//! Sidecars (`initContainers[*].restartPolicy: Always`), lifecycle hooks
//! and `activeDeadlineSeconds`, on a virtual clock.

use super::*;
use crate::lifecycle::Phase;
use crate::spec::{ExecAction, Lifecycle, SleepAction};

fn sidecar(name: &str) -> Container {
    Container {
        restart_policy: Some(RestartPolicy::Always),
        ..container(name, "side:1")
    }
}

fn exec_hook() -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec!["sh".into(), "-c".into(), "hook".into()],
        }),
        ..Probe::default()
    }
}

fn sleep_hook(seconds: i64) -> Probe {
    Probe {
        sleep: Some(SleepAction { seconds }),
        ..Probe::default()
    }
}

fn with_hooks(mut c: Container, post: Option<Probe>, pre: Option<Probe>) -> Container {
    c.lifecycle = Some(Lifecycle {
        post_start: post,
        pre_stop: pre,
        stop_signal: None,
    });
    c
}

fn delete(a: &mut Agent, name: &str) {
    a.handle(Input::DeletePod {
        namespace: "default".into(),
        name: name.into(),
    });
}

/// `(mono ms, container, signal)` of every signal since `from`.
fn signal_log(a: &Agent, from: u64) -> Vec<(u64, String, i32)> {
    a.history
        .iter()
        .filter(|(t, _)| *t >= from)
        .filter_map(|(t, o)| match o {
            Output::Signal {
                container, signal, ..
            } => Some((*t - from, container.clone(), *signal)),
            _ => None,
        })
        .collect()
}

fn hook_out(a: &Agent, uid: &str, c: &str, kind: ProbeKind) -> bool {
    a.probe_out(uid, c, kind)
}

#[test]
fn a_sidecar_starts_in_order_and_the_next_container_waits_for_its_startup_probe() {
    let mut a = Agent::new();
    let mut side = sidecar("side");
    side.startup_probe = Some(probe(0, 1, 1, 3));
    let mut p = pod("web", &[("main", "app:1")]);
    p.spec.init_containers = vec![side, container("setup", "setup:1")];
    let uid = a.apply(p);
    let log = a.take();
    assert_eq!(starts(&log, "side"), [1]);
    assert!(starts(&log, "setup").is_empty(), "waits for side to start");
    let cs = a.cs(&uid, "side");
    assert!(is_running(&cs));
    assert_eq!(cs.started, Some(false));
    assert_eq!(a.status(&uid).phase, Phase::Pending);
    assert!(hook_out(&a, &uid, "side", ProbeKind::Startup));
    a.probe(&uid, "side", ProbeKind::Startup, true);
    let log = a.take();
    assert_eq!(starts(&log, "setup"), [1], "side started: next init runs");
    assert!(starts(&log, "main").is_empty());
    a.exit(&uid, "setup", 0);
    let log = a.take();
    assert_eq!(starts(&log, "main"), [1]);
    let s = a.status(&uid);
    assert_eq!(s.phase, Phase::Running);
    let side = s.init_container_statuses.iter().find(|c| c.name == "side");
    let side = side.unwrap();
    assert!(is_running(side));
    assert_eq!((side.started, side.ready), (Some(true), true));
    assert_eq!(a.condition(&uid, "Initialized").0, "True");
    assert_eq!(a.condition(&uid, "Ready").0, "True");
}

#[test]
fn a_sidecar_counts_in_readiness() {
    let mut a = Agent::new();
    let mut side = sidecar("side");
    side.readiness_probe = Some(probe(0, 1, 1, 1));
    let mut p = pod("web", &[("main", "app:1")]);
    p.spec.init_containers = vec![side];
    let uid = a.apply(p);
    assert_eq!(starts(&a.take(), "main"), [1], "readiness does not gate");
    let (status, reason, message) = a.condition(&uid, "ContainersReady");
    assert_eq!(
        (status.as_str(), reason.as_str(), message.as_str()),
        (
            "False",
            "ContainersNotReady",
            "containers with unready status: [side]"
        )
    );
    a.probe(&uid, "side", ProbeKind::Readiness, true);
    assert_eq!(a.condition(&uid, "Ready").0, "True");
}

#[test]
fn a_sidecar_restarts_with_back_off_even_under_restart_policy_never() {
    let mut a = Agent::new();
    let mut p = with_policy(pod("job", &[("main", "app:1")]), RestartPolicy::Never);
    p.spec.init_containers = vec![sidecar("side")];
    let uid = a.apply(p);
    a.take();
    a.exit(&uid, "side", 1);
    let log = a.take();
    assert_eq!(starts(&log, "side"), [2], "first restart at once");
    assert!(is_running(&a.cs(&uid, "main")), "main untouched");
    a.exit(&uid, "side", 1);
    let log = a.take();
    assert!(starts(&log, "side").is_empty());
    assert_eq!(waiting(&a.cs(&uid, "side")).0, "CrashLoopBackOff");
    assert_eq!(a.status(&uid).phase, Phase::Running);
    a.advance(10_000);
    assert_eq!(starts(&a.take(), "side"), [3], "after 10 s of back-off");
}

#[test]
fn a_job_pod_completes_when_its_app_containers_finish_and_its_sidecars_are_stopped() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let mut p = with_policy(pod("job", &[("main", "app:1")]), RestartPolicy::Never);
    p.spec.init_containers = vec![sidecar("s1"), sidecar("s2")];
    let uid = a.apply(p);
    a.take();
    a.exit(&uid, "main", 0);
    let log = a.take();
    assert_eq!(signals(&log, "s2"), [15], "the last sidecar first");
    assert!(signals(&log, "s1").is_empty());
    assert_eq!(
        events(&log, "Killing"),
        ["Stopping container s1", "Stopping container s2"]
    );
    assert_eq!(a.status(&uid).phase, Phase::Running, "sidecars still run");
    a.exit(&uid, "s2", 143);
    assert_eq!(signals(&a.take(), "s1"), [15]);
    a.exit(&uid, "s1", 143);
    let log = a.take();
    assert!(log.contains(&Output::RemoveSandbox { uid: uid.clone() }));
    let s = a.status(&uid);
    assert_eq!(s.phase, Phase::Succeeded, "sidecars' exits do not count");
    assert!(starts(&log, "s1").is_empty() && starts(&log, "s2").is_empty());
}

#[test]
fn deletion_stops_app_containers_first_then_sidecars_in_reverse_order() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let mut p = with_grace(pod("web", &[("main", "app:1"), ("b", "app:1")]), 30);
    p.spec.init_containers = vec![sidecar("s1"), container("setup", "x:1"), sidecar("s2")];
    let uid = a.apply(p);
    a.exit(&uid, "setup", 0);
    a.take();
    let t0 = a.now.mono_ms;
    delete(&mut a, "web");
    assert_eq!(
        signal_log(&a, t0),
        [(0, "main".into(), 15), (0, "b".into(), 15)]
    );
    a.advance(1_000);
    a.exit(&uid, "main", 143);
    a.exit(&uid, "b", 143);
    a.advance(1_000);
    a.exit(&uid, "s2", 143);
    a.advance(1_000);
    a.exit(&uid, "s1", 143);
    assert_eq!(
        signal_log(&a, t0),
        [
            (0, "main".into(), 15),
            (0, "b".into(), 15),
            (1_000, "s2".into(), 15),
            (2_000, "s1".into(), 15),
        ]
    );
    assert!(a.take().contains(&Output::RemoveSandbox { uid }));
}

#[test]
fn a_sidecar_waiting_for_its_turn_gets_sigterm_when_the_grace_period_ends() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let mut p = with_grace(pod("web", &[("main", "app:1")]), 10);
    p.spec.init_containers = vec![sidecar("side")];
    let _uid = a.apply(p);
    a.take();
    let t0 = a.now.mono_ms;
    delete(&mut a, "web");
    a.advance(20_000);
    assert_eq!(
        signal_log(&a, t0),
        [
            (0, "main".into(), 15),
            (10_000, "main".into(), 9),
            (10_000, "side".into(), 15),
            (12_000, "side".into(), 9),
        ],
        "the kubelet's 2 s minimum after SIGTERM"
    );
}

#[test]
fn post_start_runs_before_the_container_counts_as_running_and_started() {
    let mut a = Agent::new();
    let mut c = with_hooks(container("app", "app:1"), Some(exec_hook()), None);
    c.readiness_probe = Some(probe(0, 1, 1, 1));
    let mut p = pod("web", &[]);
    p.spec.containers = vec![c];
    let uid = a.apply(p);
    let log = a.take();
    assert_eq!(events(&log, "Started"), ["Started container app"]);
    assert!(hook_out(&a, &uid, "app", ProbeKind::PostStart));
    assert!(
        !hook_out(&a, &uid, "app", ProbeKind::Readiness),
        "no probe yet"
    );
    let cs = a.cs(&uid, "app");
    assert_eq!(waiting(&cs).0, "ContainerCreating");
    assert_eq!(cs.started, Some(false));
    assert_eq!(a.status(&uid).phase, Phase::Pending);
    a.probe(&uid, "app", ProbeKind::PostStart, true);
    let cs = a.cs(&uid, "app");
    assert!(is_running(&cs));
    assert_eq!(cs.started, Some(true));
    assert!(hook_out(&a, &uid, "app", ProbeKind::Readiness));
    assert_eq!(a.status(&uid).phase, Phase::Running);
}

#[test]
fn a_failed_post_start_kills_the_container_and_it_restarts_per_policy() {
    let mut a = Agent::new();
    let c = with_hooks(container("app", "app:1"), Some(exec_hook()), None);
    let mut p = with_grace(pod("web", &[]), 5);
    p.spec.containers = vec![c];
    let uid = a.apply(p);
    a.take();
    a.probe(&uid, "app", ProbeKind::PostStart, false);
    let log = a.take();
    assert_eq!(
        events(&log, "FailedPostStartHook"),
        [format!(
            "Exec lifecycle hook ([sh -c hook]) for Container \"app\" in Pod \
             \"web_default({uid})\" failed - error: exit 1"
        )]
    );
    assert_eq!(
        event_kinds(&log, "FailedPostStartHook"),
        HashSet::from([EventType::Warning])
    );
    assert_eq!(events(&log, "Killing"), ["FailedPostStartHook"]);
    assert_eq!(signals(&log, "app")[0], 15);
    assert_eq!(
        starts(&log, "app"),
        [2],
        "killed, exited, restarted at once"
    );
    assert_eq!(a.cs(&uid, "app").restart_count, 1);
    assert!(
        hook_out(&a, &uid, "app", ProbeKind::PostStart),
        "runs again"
    );
}

#[test]
fn a_failed_post_start_under_restart_policy_never_fails_the_pod() {
    let mut a = Agent::new();
    let c = with_hooks(container("app", "app:1"), Some(exec_hook()), None);
    let mut p = with_policy(pod("web", &[]), RestartPolicy::Never);
    p.spec.containers = vec![c];
    let uid = a.apply(p);
    a.take();
    a.probe(&uid, "app", ProbeKind::PostStart, false);
    let log = a.take();
    assert_eq!(starts(&log, "app"), Vec::<u64>::new());
    assert_eq!(a.status(&uid).phase, Phase::Failed);
}

#[test]
fn a_sleep_post_start_delays_started_by_its_seconds() {
    let mut a = Agent::new();
    let c = with_hooks(container("app", "app:1"), Some(sleep_hook(5)), None);
    let mut p = pod("web", &[]);
    p.spec.containers = vec![c];
    let uid = a.apply(p);
    assert!(a.probes_out.is_empty(), "sleep runs in the core");
    a.advance(4_999);
    assert_eq!(a.cs(&uid, "app").started, Some(false));
    a.advance(1);
    assert_eq!(a.cs(&uid, "app").started, Some(true));
    assert!(is_running(&a.cs(&uid, "app")));
}

#[test]
fn pre_stop_runs_before_sigterm_and_its_failure_is_an_event() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let c = with_hooks(container("app", "app:1"), None, Some(exec_hook()));
    let mut p = with_grace(pod("web", &[]), 30);
    p.spec.containers = vec![c];
    let uid = a.apply(p);
    a.take();
    let t0 = a.now.mono_ms;
    delete(&mut a, "web");
    let log = a.take();
    assert_eq!(events(&log, "Killing"), ["Stopping container app"]);
    assert!(signals(&log, "app").is_empty(), "no SIGTERM during preStop");
    let hook = log.iter().find_map(|o| match o {
        Output::RunProbe {
            kind: ProbeKind::PreStop,
            timeout_ms,
            ..
        } => Some(*timeout_ms),
        _ => None,
    });
    assert_eq!(hook, Some(31_000), "bounded by the grace period");
    a.advance(4_000);
    a.probe(&uid, "app", ProbeKind::PreStop, false);
    let log = a.take();
    assert_eq!(events(&log, "FailedPreStopHook").len(), 1);
    a.advance(30_000);
    assert_eq!(
        signal_log(&a, t0),
        [(4_000, "app".into(), 15), (30_000, "app".into(), 9)],
        "SIGTERM when the hook ended; SIGKILL at the end of the grace period"
    );
}

#[test]
fn a_pre_stop_hook_past_the_grace_period_gets_sigterm_then_sigkill_two_seconds_later() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let c = with_hooks(container("app", "app:1"), None, Some(exec_hook()));
    let mut p = with_grace(pod("web", &[]), 10);
    p.spec.containers = vec![c];
    let uid = a.apply(p);
    a.take();
    let t0 = a.now.mono_ms;
    delete(&mut a, "web");
    a.advance(20_000);
    assert_eq!(
        signal_log(&a, t0),
        [(10_000, "app".into(), 15), (12_000, "app".into(), 9)]
    );
    // The hook's late answer changes nothing.
    a.probe(&uid, "app", ProbeKind::PreStop, false);
    assert!(events(&a.take(), "FailedPreStopHook").is_empty());
}

#[test]
fn a_sleep_pre_stop_holds_sigterm_for_its_seconds() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let c = with_hooks(container("app", "app:1"), None, Some(sleep_hook(3)));
    let mut p = with_grace(pod("web", &[]), 10);
    p.spec.containers = vec![c];
    a.apply(p);
    let t0 = a.now.mono_ms;
    delete(&mut a, "web");
    a.advance(20_000);
    assert_eq!(
        signal_log(&a, t0),
        [(3_000, "app".into(), 15), (10_000, "app".into(), 9)]
    );
}

#[test]
fn grace_zero_skips_the_pre_stop_hook() {
    let mut a = Agent::new();
    let c = with_hooks(container("app", "app:1"), None, Some(exec_hook()));
    let mut p = with_grace(pod("web", &[]), 0);
    p.spec.containers = vec![c];
    a.apply(p);
    a.take();
    delete(&mut a, "web");
    let log = a.take();
    assert_eq!(signals(&log, "app"), [9]);
    assert!(a.probes_out.is_empty());
}

#[test]
fn active_deadline_seconds_fails_the_pod_with_deadline_exceeded() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let mut p = with_grace(pod("job", &[("main", "app:1")]), 5);
    p.spec.active_deadline_seconds = Some(30);
    let uid = a.apply(p);
    a.take();
    assert_eq!(a.node.poll_timeout(), Some(a.now.mono_ms + 30_000));
    a.advance(29_999);
    assert_eq!(a.status(&uid).phase, Phase::Running);
    a.advance(1);
    let log = a.take();
    let msg = "Pod was active on the node longer than the specified deadline";
    assert_eq!(events(&log, "DeadlineExceeded"), [msg]);
    assert_eq!(
        event_kinds(&log, "DeadlineExceeded"),
        HashSet::from([EventType::Warning])
    );
    assert_eq!(signals(&log, "main"), [15]);
    let s = a.status(&uid);
    assert_eq!(
        (s.phase, s.reason.as_str(), s.message.as_str()),
        (Phase::Failed, "DeadlineExceeded", msg)
    );
    a.exit(&uid, "main", 143);
    assert!(
        a.take()
            .contains(&Output::RemoveSandbox { uid: uid.clone() })
    );
    assert_eq!(a.status(&uid).phase, Phase::Failed);
}

#[test]
fn active_deadline_seconds_counts_from_start_time_across_a_restore() {
    let mut a = Agent::new();
    let mut p = pod("job", &[("main", "app:1")]);
    p.spec.active_deadline_seconds = Some(30);
    let uid = a.apply(p);
    a.advance(20_000);
    let snap = a.node.snapshot();
    let now = Agent::at(a.now.mono_ms + 1_000);
    let node = crate::lifecycle::Node::restore(snap, "edge-1".into(), now).unwrap();
    assert_eq!(node.poll_timeout(), Some(T0.mono_ms + 30_000));
    assert!(node.pod(&uid).is_some());
}

#[test]
fn a_running_sidecar_stays_started_and_ready_across_a_restore() {
    let mut a = Agent::new();
    let mut p = pod("web", &[("main", "app:1")]);
    p.spec.init_containers = vec![sidecar("side")];
    let uid = a.apply(p);
    assert!(a.cs(&uid, "side").ready);
    let snap = a.node.snapshot();
    let node = crate::lifecycle::Node::restore(snap, "edge-1".into(), a.now).unwrap();
    let s = node.status(&uid).unwrap();
    let side = &s.init_container_statuses[0];
    assert_eq!((side.started, side.ready), (Some(true), true), "{side:#?}");
    assert_eq!(a.status(&uid).phase, Phase::Running);
}

#[test]
fn a_crash_looping_sidecar_does_not_hold_a_finished_job() {
    let mut a = Agent::new();
    let mut p = with_policy(pod("job", &[("main", "app:1")]), RestartPolicy::Never);
    p.spec.init_containers = vec![sidecar("side")];
    let uid = a.apply(p);
    a.exit(&uid, "side", 1);
    a.exit(&uid, "side", 1);
    assert_eq!(waiting(&a.cs(&uid, "side")).0, "CrashLoopBackOff");
    a.take();
    a.exit(&uid, "main", 0);
    let log = a.take();
    assert!(log.contains(&Output::RemoveSandbox { uid: uid.clone() }));
    assert_eq!(a.status(&uid).phase, Phase::Succeeded);
    a.advance(60_000);
    assert!(
        starts(&a.take(), "side").is_empty(),
        "not restarted any more"
    );
}

#[test]
fn a_liveness_kill_runs_the_pre_stop_hook_first() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let mut c = with_hooks(container("app", "app:1"), None, Some(sleep_hook(2)));
    c.liveness_probe = Some(probe(0, 1, 1, 1));
    let mut p = with_grace(pod("web", &[]), 10);
    p.spec.containers = vec![c];
    let uid = a.apply(p);
    let t0 = a.now.mono_ms;
    a.probe(&uid, "app", ProbeKind::Liveness, false);
    a.advance(5_000);
    assert_eq!(signal_log(&a, t0), [(2_000, "app".into(), 15)]);
    assert_eq!(
        events(&a.take(), "Killing"),
        ["Container app failed liveness probe, will be restarted"]
    );
}
