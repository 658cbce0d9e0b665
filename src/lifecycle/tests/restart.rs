//! Restart policy and CrashLoopBackOff (`doBackOff` + `flowcontrol.Backoff`).

use super::*;
use crate::lifecycle::Phase;

fn is_start(o: &Output) -> bool {
    matches!(o, Output::StartContainer { container, .. } if container == "app")
}

/// Crashes `app` and returns how long until it is started again.
fn crash(a: &mut Agent, uid: &str) -> Option<u64> {
    a.take();
    a.exit(uid, "app", 1);
    a.advance_until(1_000_000, is_start)
}

#[test]
fn first_restart_is_immediate_then_backoff_doubles_to_300s() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    let delays: Vec<u64> = (0..9)
        .map(|_| crash(&mut a, &uid).unwrap() / 1000)
        .collect();
    assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(a.cs(&uid, "app").restart_count, 9);
}

#[test]
fn crash_loop_back_off_shows_kubelet_reason_message_and_event() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.take();
    a.exit(&uid, "app", 1);
    let cs = a.cs(&uid, "app");
    assert!(is_running(&cs), "first restart is immediate");
    assert_eq!(cs.restart_count, 1);
    assert_eq!(
        exit_code(&ContainerStatus {
            state: cs.last_state.clone(),
            ..cs.clone()
        }),
        1
    );

    a.take();
    a.exit(&uid, "app", 2);
    let log = a.take();
    let cs = a.cs(&uid, "app");
    assert_eq!(
        waiting(&cs),
        (
            "CrashLoopBackOff".into(),
            "back-off 10s restarting failed container=app pod=web_default(uid-1)".into()
        )
    );
    let last = cs.last_state.terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (2, "Error"));
    assert_eq!(last.container_id, "picolet://uid-1/app/2");
    assert_eq!(cs.restart_count, 1, "counts starts, not exits");
    assert!(!cs.ready && cs.started == Some(false));
    assert_eq!(
        events(&log, "BackOff"),
        ["Back-off restarting failed container app in pod web_default(uid-1)"]
    );
    assert_eq!(
        event_kinds(&log, "BackOff"),
        HashSet::from([EventType::Warning])
    );
    assert_eq!(
        a.status(&uid).phase,
        Phase::Running,
        "Always: restarting counts as running"
    );
    assert_eq!(a.node.poll_timeout(), Some(a.now.mono_ms + 10_000));

    a.advance(10_000);
    a.take();
    a.exit(&uid, "app", 1);
    assert_eq!(
        waiting(&a.cs(&uid, "app")).1,
        "back-off 20s restarting failed container=app pod=web_default(uid-1)"
    );
    assert_eq!(a.advance_until(60_000, is_start), Some(20_000));
    for _ in 0..4 {
        crash(&mut a, &uid);
    }
    a.exit(&uid, "app", 1);
    assert_eq!(
        waiting(&a.cs(&uid, "app")).1,
        "back-off 5m0s restarting failed container=app pod=web_default(uid-1)"
    );
}

#[test]
fn backoff_resets_after_container_ran_ten_minutes() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    for want in [0, 10, 20, 40] {
        assert_eq!(crash(&mut a, &uid), Some(want * 1000));
    }
    // ran exactly 10 minutes: not yet stable
    a.advance(600_000);
    assert_eq!(crash(&mut a, &uid), Some(80_000));
    // ran 10 minutes and a bit: stable, so the next restart is immediate
    a.advance(600_001);
    assert_eq!(crash(&mut a, &uid), Some(0));
    assert_eq!(crash(&mut a, &uid), Some(10_000));
}

#[test]
fn on_failure_does_not_restart_exit_zero() {
    let mut a = Agent::new();
    let p = with_policy(pod("job", &[("app", "app:1")]), RestartPolicy::OnFailure);
    let uid = a.apply(p);
    a.exit(&uid, "app", 1);
    assert!(is_running(&a.cs(&uid, "app")), "a failure is restarted");
    a.take();
    a.exit(&uid, "app", 0);
    let log = a.take();
    assert!(starts(&log, "app").is_empty());
    let cs = a.cs(&uid, "app");
    let t = cs.state.terminated.as_ref().unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (0, "Completed"));
    assert_eq!(a.status(&uid).phase, Phase::Succeeded);
    assert!(log.contains(&Output::RemoveSandbox { uid: uid.clone() }));
    assert_eq!(
        a.condition(&uid, "Ready"),
        ("False".into(), "PodCompleted".into(), String::new())
    );
    a.advance(1_000_000);
    assert!(starts(&a.take(), "app").is_empty());
}

#[test]
fn never_does_not_restart_and_the_pod_fails() {
    let mut a = Agent::new();
    let p = with_policy(
        pod("job", &[("a", "app:1"), ("b", "app:1")]),
        RestartPolicy::Never,
    );
    let uid = a.apply(p);
    a.take();
    a.exit(&uid, "a", 1);
    assert!(starts(&a.take(), "a").is_empty());
    assert_eq!(a.status(&uid).phase, Phase::Running, "b still runs");
    a.exit(&uid, "b", 0);
    let log = a.take();
    assert_eq!(a.status(&uid).phase, Phase::Failed);
    assert_eq!(
        a.condition(&uid, "ContainersReady"),
        ("False".into(), "PodFailed".into(), String::new())
    );
    assert!(log.contains(&Output::RemoveSandbox { uid: uid.clone() }));
    assert_eq!(a.node.pods().count(), 1);
}

#[test]
fn never_with_every_container_succeeding_is_succeeded() {
    let mut a = Agent::new();
    let p = with_policy(pod("job", &[("a", "app:1")]), RestartPolicy::Never);
    let uid = a.apply(p);
    a.exit(&uid, "a", 0);
    assert_eq!(a.status(&uid).phase, Phase::Succeeded);
}

#[test]
fn always_restarts_exit_zero_too() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.take();
    a.exit(&uid, "app", 0);
    assert_eq!(starts(&a.take(), "app"), [2]);
    assert_eq!(a.status(&uid).phase, Phase::Running);
}

#[test]
fn oom_killed_exit_is_reported_as_oom_killed() {
    let mut a = Agent::new();
    let p = with_policy(pod("web", &[("app", "app:1")]), RestartPolicy::Never);
    let uid = a.apply(p);
    let r = a.running.remove(&(uid.clone(), "app".to_string())).unwrap();
    a.handle(Input::ContainerExited {
        uid: uid.clone(),
        container: "app".into(),
        instance: r.instance,
        exit_code: 137,
        signal: Some(9),
        oom_killed: true,
        started_at_ms: r.started_at,
        finished_at_ms: a.now.wall_ms,
        message: String::new(),
    });
    let t = a.cs(&uid, "app").state.terminated.unwrap();
    assert_eq!(
        (t.exit_code, t.signal, t.reason.as_str()),
        (137, Some(9), "OOMKilled")
    );
}

#[test]
fn exit_is_persisted_before_it_is_acked() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.auto_image = false;
    a.take();
    let before = a.persists;
    a.exit(&uid, "app", 1);
    let log = a.take();
    assert_eq!(
        a.persists,
        before + 1,
        "one Persist for the exit and the back-off entry"
    );
    assert_eq!(log[0], Output::Persist);
    let ack = log
        .iter()
        .position(|o| matches!(o, Output::AckExit { instance: 1, .. }))
        .unwrap();
    let pull = log
        .iter()
        .position(|o| matches!(o, Output::EnsureImage { .. }))
        .unwrap();
    assert!(pull < ack, "acks come after the commands of the batch");
    assert_eq!(log[ack + 1..], [Output::StatusChanged { uid }]);
}

#[test]
fn duplicate_or_stale_exits_are_only_acked() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.exit(&uid, "app", 1);
    let status = a.status(&uid);
    a.take();
    let persists = a.persists;
    a.handle(Input::ContainerExited {
        uid: uid.clone(),
        container: "app".into(),
        instance: 1,
        exit_code: 1,
        signal: None,
        oom_killed: false,
        started_at_ms: T0.wall_ms,
        finished_at_ms: a.now.wall_ms,
        message: String::new(),
    });
    let log = a.take();
    assert_eq!(
        log,
        [Output::AckExit {
            uid: uid.clone(),
            container: "app".into(),
            instance: 1
        }]
    );
    assert_eq!(a.persists, persists);
    assert_eq!(a.status(&uid), status);
}

#[test]
fn start_error_counts_as_exit_128_and_follows_the_policy() {
    let mut a = Agent::new();
    a.auto_start = false;
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.take();
    let fail = |a: &mut Agent, instance: u64| {
        a.handle(Input::ContainerStartFailed {
            uid: uid.clone(),
            container: "app".into(),
            instance,
            reason: "RunContainerError".into(),
            message: "exec: \"foo\": not found".into(),
        })
    };
    fail(&mut a, 1);
    let log = a.take();
    assert_eq!(events(&log, "Failed"), ["Error: exec: \"foo\": not found"]);
    assert_eq!(starts(&log, "app"), [2], "first restart is immediate");
    let cs = a.cs(&uid, "app");
    assert_eq!(waiting(&cs).0, "RunContainerError");
    let last = cs.last_state.terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (128, "StartError"));
    fail(&mut a, 2);
    assert_eq!(waiting(&a.cs(&uid, "app")).0, "CrashLoopBackOff");
    assert_eq!(a.cs(&uid, "app").restart_count, 1);
}

#[test]
fn create_container_config_error_waits_and_retries_every_10s() {
    let mut a = Agent::new();
    a.auto_start = false;
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.take();
    a.handle(Input::ContainerStartFailed {
        uid: uid.clone(),
        container: "app".into(),
        instance: 1,
        reason: "CreateContainerConfigError".into(),
        message: "container has runAsNonRoot and image will run as root".into(),
    });
    let cs = a.cs(&uid, "app");
    assert_eq!(
        waiting(&cs),
        (
            "CreateContainerConfigError".into(),
            "container has runAsNonRoot and image will run as root".into()
        )
    );
    assert_eq!(cs.restart_count, 0);
    assert!(cs.last_state.terminated.is_none());
    assert_eq!(a.status(&uid).phase, Phase::Pending);
    let waited = a.advance_until(60_000, is_start);
    assert_eq!(waited, Some(10_000));
    assert_eq!(starts(&a.log, "app"), [2]);
    a.handle(Input::ContainerStarted {
        uid: uid.clone(),
        container: "app".into(),
        instance: 2,
        started_at_ms: a.now.wall_ms,
    });
    let cs = a.cs(&uid, "app");
    assert!(is_running(&cs));
    assert_eq!(
        cs.restart_count, 0,
        "an instance that was never created does not count"
    );
}

#[test]
fn restart_count_and_container_ids_track_instances() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    crash(&mut a, &uid);
    crash(&mut a, &uid);
    let cs = a.cs(&uid, "app");
    assert_eq!(cs.restart_count, 2);
    assert_eq!(cs.container_id, "picolet://uid-1/app/3");
    assert_eq!(cs.image_id, "sha256:app:1");
    assert_eq!(
        cs.last_state.terminated.unwrap().container_id,
        "picolet://uid-1/app/2"
    );
    let info = &a.node.pod(&uid).unwrap().containers()[0];
    assert_eq!(
        (info.instance, info.running, info.restart_count),
        (Some(3), true, 2)
    );
}

#[test]
fn exit_reported_late_uses_its_own_finish_time_for_backoff() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    crash(&mut a, &uid); // immediate restart: back-off entry of 10 s
    a.advance(60_000);
    // The container finished 8 s ago but we hear of it only now.
    let r = a.running.remove(&(uid.clone(), "app".to_string())).unwrap();
    a.take();
    a.handle(Input::ContainerExited {
        uid: uid.clone(),
        container: "app".into(),
        instance: r.instance,
        exit_code: 1,
        signal: None,
        oom_killed: false,
        started_at_ms: r.started_at,
        finished_at_ms: a.now.wall_ms - 8_000,
        message: String::new(),
    });
    assert_eq!(a.advance_until(60_000, is_start), Some(2_000));
}
