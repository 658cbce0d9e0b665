//! Deletion and terminal pods.

use super::*;
use crate::lifecycle::Phase;

fn delete(a: &mut Agent, name: &str) {
    a.handle(Input::DeletePod {
        namespace: "default".into(),
        name: name.into(),
    });
}

#[test]
fn delete_pod_sigterms_then_sigkills_after_grace_then_removes_sandbox() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    a.auto_remove = false;
    let uid = a.apply(with_grace(
        pod("web", &[("a", "app:1"), ("b", "app:1")]),
        10,
    ));
    a.take();
    assert_eq!(a.node.pod(&uid).unwrap().deletion_deadline(), None);
    delete(&mut a, "web");
    let log = a.take();
    assert_eq!(log[0], Output::Persist, "the desired set changed");
    assert_eq!(
        a.node.pod(&uid).unwrap().deletion_deadline(),
        Some(a.now.mono_ms + 10_000),
        "deletionTimestamp: the end of the grace period"
    );
    assert_eq!(signals(&log, "a"), [15]);
    assert_eq!(signals(&log, "b"), [15]);
    assert_eq!(
        events(&log, "Killing"),
        ["Stopping container a", "Stopping container b"]
    );
    assert_eq!(
        event_kinds(&log, "Killing"),
        HashSet::from([EventType::Normal])
    );
    assert!(a.node.pod(&uid).unwrap().is_terminating());
    assert_eq!(a.node.poll_timeout(), Some(a.now.mono_ms + 10_000));

    a.exit(&uid, "a", 0);
    let log = a.take();
    assert!(starts(&log, "a").is_empty(), "no restart while terminating");
    assert!(
        !log.contains(&Output::RemoveSandbox { uid: uid.clone() }),
        "b still runs"
    );

    a.advance(10_000);
    let log = a.take();
    assert_eq!(signals(&log, "b"), [9]);
    assert!(signals(&log, "a").is_empty());
    a.exit(&uid, "b", 137);
    let log = a.take();
    assert!(log.contains(&Output::RemoveSandbox { uid: uid.clone() }));
    assert!(
        a.node.pod(&uid).is_some(),
        "listed until the sandbox is removed"
    );
    a.handle(Input::SandboxRemoved { uid: uid.clone() });
    let log = a.take();
    assert!(log.contains(&Output::PodRemoved { uid: uid.clone() }));
    assert_eq!(log[0], Output::Persist);
    assert!(
        !log.iter()
            .any(|o| matches!(o, Output::StatusChanged { .. }))
    );
    assert!(a.node.pod(&uid).is_none());
    assert_eq!(a.node.pods().count(), 0);
    assert_eq!(a.node.snapshot().pods.len(), 0);
}

#[test]
fn grace_zero_sends_sigkill_immediately() {
    let mut a = Agent::new();
    let uid = a.apply(with_grace(pod("web", &[("app", "app:1")]), 0));
    a.take();
    delete(&mut a, "web");
    let log = a.take();
    assert_eq!(signals(&log, "app"), [9]);
    assert!(log.contains(&Output::PodRemoved { uid }));
}

#[test]
fn delete_waits_for_an_in_flight_start_then_kills_it() {
    let mut a = Agent::new();
    a.auto_start = false;
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    assert_eq!(starts(&a.take(), "app"), [1]);
    delete(&mut a, "web");
    let log = a.take();
    assert!(signals(&log, "app").is_empty());
    assert!(!log.contains(&Output::RemoveSandbox { uid: uid.clone() }));
    a.running.insert(
        (uid.clone(), "app".into()),
        Running {
            instance: 1,
            started_at: a.now.wall_ms,
        },
    );
    a.handle(Input::ContainerStarted {
        uid: uid.clone(),
        container: "app".into(),
        instance: 1,
        started_at_ms: a.now.wall_ms,
    });
    let log = a.take();
    assert_eq!(signals(&log, "app"), [15]);
    assert!(log.contains(&Output::PodRemoved { uid }));
}

#[test]
fn delete_while_the_sandbox_is_being_created_waits_for_it() {
    let mut a = Agent::new();
    a.auto_sandbox = false;
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    delete(&mut a, "web");
    assert!(
        !a.take()
            .contains(&Output::RemoveSandbox { uid: uid.clone() })
    );
    a.handle(Input::SandboxReady { uid: uid.clone() });
    let log = a.take();
    assert!(pulls(&log).is_empty(), "nothing starts in a deleted pod");
    assert!(log.contains(&Output::PodRemoved { uid }));
}

#[test]
fn delete_of_a_pod_in_crash_loop_cancels_the_restart() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.exit(&uid, "app", 1);
    a.exit(&uid, "app", 1);
    assert_eq!(waiting(&a.cs(&uid, "app")).0, "CrashLoopBackOff");
    a.take();
    delete(&mut a, "web");
    let log = a.take();
    assert!(signals(&log, "app").is_empty(), "nothing runs");
    assert!(log.contains(&Output::PodRemoved { uid }));
    assert_eq!(a.node.poll_timeout(), None);
}

#[test]
fn deleting_twice_or_an_unknown_pod_does_nothing() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    a.apply(pod("web", &[("app", "app:1")]));
    delete(&mut a, "web");
    a.take();
    delete(&mut a, "web");
    delete(&mut a, "nope");
    assert!(a.take().is_empty());
}

#[test]
fn terminal_pod_removes_its_sandbox_but_stays_listed_until_deleted() {
    let mut a = Agent::new();
    let p = with_policy(pod("job", &[("app", "app:1")]), RestartPolicy::Never);
    let uid = a.apply(p);
    a.take();
    a.exit(&uid, "app", 0);
    let log = a.take();
    assert_eq!(
        count(&log, |o| matches!(o, Output::RemoveSandbox { .. })),
        1
    );
    assert!(!log.iter().any(|o| matches!(o, Output::PodRemoved { .. })));
    let s = a.status(&uid);
    assert_eq!(s.phase, Phase::Succeeded);
    assert_eq!(a.condition(&uid, "PodReadyToStartContainers").0, "False");
    assert_eq!(
        a.condition(&uid, "Initialized"),
        ("True".into(), String::new(), String::new())
    );
    assert!(!a.node.pod(&uid).unwrap().is_terminating());
    // Nothing brings it back: not time, not re-applying the same spec.
    a.advance(1_000_000);
    a.apply(with_policy(
        pod("job", &[("app", "app:1")]),
        RestartPolicy::Never,
    ));
    let log = a.take();
    assert!(starts(&log, "app").is_empty() && pulls(&log).is_empty());
    assert_eq!(a.status(&uid).phase, Phase::Succeeded);

    delete(&mut a, "job");
    let log = a.take();
    assert_eq!(
        count(&log, |o| matches!(o, Output::RemoveSandbox { .. })),
        0
    );
    assert!(log.contains(&Output::PodRemoved { uid }));
}

#[test]
fn terminal_phase_never_goes_back() {
    let mut a = Agent::new();
    let p = with_policy(pod("job", &[("app", "app:1")]), RestartPolicy::Never);
    let uid = a.apply(p);
    a.exit(&uid, "app", 1);
    assert_eq!(a.status(&uid).phase, Phase::Failed);
    // A late, stale start report changes nothing.
    a.handle(Input::ContainerStarted {
        uid: uid.clone(),
        container: "app".into(),
        instance: 1,
        started_at_ms: a.now.wall_ms,
    });
    a.handle(Input::SandboxGone { uid: uid.clone() });
    assert_eq!(a.status(&uid).phase, Phase::Failed);
}

#[test]
fn a_pod_stopped_for_being_terminal_has_no_deletion_deadline_until_deleted() {
    let mut a = Agent::new();
    let uid = a.apply(with_policy(
        pod("job", &[("a", "app:1")]),
        RestartPolicy::Never,
    ));
    a.take();
    a.exit(&uid, "a", 0);
    a.take();
    assert_eq!(a.status(&uid).phase, Phase::Succeeded);
    assert_eq!(a.node.pod(&uid).unwrap().deletion_deadline(), None);
    delete(&mut a, "job");
    assert!(
        a.node
            .pod(&uid)
            .is_none_or(|p| p.deletion_deadline().is_some())
    );
}
