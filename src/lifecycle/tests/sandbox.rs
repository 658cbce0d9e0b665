//! A sandbox that vanishes (shim killed, reboot).

use super::*;
use crate::lifecycle::Phase;

fn gone(a: &mut Agent, uid: &str) {
    a.running.retain(|(u, _), _| u != uid);
    a.handle(Input::SandboxGone { uid: uid.into() });
}

#[test]
fn sandbox_gone_marks_containers_unknown_and_recreates_the_sandbox() {
    let mut a = Agent::new();
    a.auto_sandbox = false;
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.handle(Input::SandboxReady { uid: uid.clone() });
    a.take();
    gone(&mut a, &uid);
    let log = a.take();
    assert_eq!(log[0], Output::Persist);
    assert!(log.contains(&Output::CreateSandbox { uid: uid.clone() }));
    let cs = a.cs(&uid, "app");
    let t = cs.state.terminated.as_ref().unwrap();
    assert_eq!(t.exit_code, 137);
    assert_eq!(t.reason, "ContainerStatusUnknown");
    assert_eq!(
        t.message,
        "The container could not be located when the pod was terminated"
    );
    assert_eq!(
        (t.started_at.as_deref(), t.finished_at.as_deref()),
        (None, None)
    );
    assert_eq!(a.status(&uid).phase, Phase::Running, "stopped with Always");
    assert_eq!(a.condition(&uid, "PodReadyToStartContainers").0, "False");
    assert!(
        !log.iter().any(|o| matches!(o, Output::AckExit { .. })),
        "nothing to ack"
    );

    a.handle(Input::SandboxReady { uid: uid.clone() });
    let log = a.take();
    assert_eq!(starts(&log, "app"), [2], "first restart is immediate");
    let cs = a.cs(&uid, "app");
    assert!(is_running(&cs));
    assert_eq!(cs.restart_count, 1);
    assert_eq!(
        cs.last_state.terminated.unwrap().reason,
        "ContainerStatusUnknown"
    );
}

#[test]
fn sandbox_gone_with_never_fails_the_pod_without_a_new_sandbox() {
    let mut a = Agent::new();
    let uid = a.apply(with_policy(
        pod("job", &[("app", "app:1")]),
        RestartPolicy::Never,
    ));
    a.take();
    gone(&mut a, &uid);
    let log = a.take();
    assert!(
        !log.iter()
            .any(|o| matches!(o, Output::CreateSandbox { .. }))
    );
    assert_eq!(a.status(&uid).phase, Phase::Failed);
    assert_eq!(exit_code(&a.cs(&uid, "app")), 137);
    assert!(
        log.contains(&Output::RemoveSandbox { uid }),
        "clean up what is left"
    );
}

#[test]
fn sandbox_gone_with_on_failure_after_success_needs_no_new_sandbox() {
    let mut a = Agent::new();
    let p = with_policy(
        pod("job", &[("a", "app:1"), ("b", "app:1")]),
        RestartPolicy::OnFailure,
    );
    let uid = a.apply(p);
    a.exit(&uid, "a", 0);
    a.take();
    gone(&mut a, &uid);
    let log = a.take();
    assert!(
        log.contains(&Output::CreateSandbox { uid: uid.clone() }),
        "b failed"
    );
    assert!(starts(&log, "a").is_empty(), "a succeeded: not restarted");
    assert_eq!(starts(&log, "b"), [2]);
    assert!(is_running(&a.cs(&uid, "b")));
    a.exit(&uid, "b", 0);
    assert_eq!(a.status(&uid).phase, Phase::Succeeded);
}

#[test]
fn sandbox_gone_reruns_init_containers_in_the_new_sandbox() {
    let mut a = Agent::new();
    let p = with_init(
        pod("web", &[("app", "app:1")]),
        &[("i1", "init:1"), ("i2", "init:2")],
    );
    let uid = a.apply(p);
    a.exit(&uid, "i1", 0);
    a.exit(&uid, "i2", 0);
    a.take();
    gone(&mut a, &uid);
    let log = a.take();
    assert_eq!(starts(&log, "i1"), [2]);
    assert!(starts(&log, "app").is_empty(), "init runs first again");
    assert_eq!(a.cs(&uid, "i1").restart_count, 1);
    a.exit(&uid, "i1", 0);
    a.exit(&uid, "i2", 0);
    assert_eq!(starts(&a.take(), "app"), [2]);
}

#[test]
fn image_answer_from_before_the_sandbox_vanished_does_not_skip_init() {
    let mut a = Agent::new();
    let p = with_init(pod("web", &[("app", "app:1")]), &[("init", "init:1")]);
    let uid = a.apply(p);
    a.exit(&uid, "init", 0);
    a.auto_image = false;
    a.exit(&uid, "app", 1); // restart: EnsureImage out
    a.auto_start = false;
    a.take();
    gone(&mut a, &uid);
    a.handle(Input::ImageReady {
        uid: uid.clone(),
        container: "app".into(),
        image_id: "sha256:app".into(),
        pulled_ms: None,
    });
    let log = a.take();
    assert!(starts(&log, "app").is_empty(), "{log:#?}");
    assert_eq!(pulls(&log), [("init".into(), "init:1".into())]);
}

#[test]
fn sandbox_gone_while_starting_forgets_the_start() {
    let mut a = Agent::new();
    a.auto_start = false;
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    assert_eq!(starts(&a.take(), "app"), [1]);
    gone(&mut a, &uid);
    let log = a.take();
    assert_eq!(
        starts(&log, "app"),
        [2],
        "a fresh instance in the new sandbox"
    );
    a.handle(Input::ContainerStarted {
        uid: uid.clone(),
        container: "app".into(),
        instance: 1,
        started_at_ms: a.now.wall_ms,
    });
    assert!(
        !is_running(&a.cs(&uid, "app")),
        "the stale start report is ignored"
    );
    assert_eq!(waiting(&a.cs(&uid, "app")).0, "ContainerCreating");
}
