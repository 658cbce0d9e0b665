//! Image pulls: ErrImagePull, ImagePullBackOff, ErrImageNeverPull.

use super::*;
use crate::lifecycle::Phase;

fn is_pull(o: &Output) -> bool {
    matches!(o, Output::EnsureImage { .. })
}

fn failing(a: &mut Agent, image: &str, reason: &str) {
    a.failing_images
        .insert(image.into(), (reason.into(), "connection refused".into()));
}

#[test]
fn image_pull_failure_retries_after_10s_doubling_to_300s() {
    let mut a = Agent::new();
    failing(&mut a, "app:1", "ErrImagePull");
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    assert_eq!(pulls(&a.take()).len(), 1);
    let persists = a.persists;
    let mut delays = Vec::new();
    for _ in 0..8 {
        a.take();
        delays.push(a.advance_until(1_000_000, is_pull).unwrap() / 1000);
    }
    assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(a.status(&uid).phase, Phase::Pending);
    assert_eq!(a.persists, persists, "image failures are not persisted");
}

#[test]
fn err_image_pull_turns_into_image_pull_back_off_while_waiting() {
    let mut a = Agent::new();
    failing(&mut a, "app:1", "ErrImagePull");
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    let log = a.take();
    assert_eq!(
        waiting(&a.cs(&uid, "app")),
        (
            "ErrImagePull".into(),
            "Failed to pull image \"app:1\": connection refused".into()
        )
    );
    assert_eq!(
        events(&log, "Failed"),
        [
            "Failed to pull image \"app:1\": connection refused",
            "Error: ErrImagePull"
        ]
    );
    assert_eq!(
        event_kinds(&log, "Failed"),
        HashSet::from([EventType::Warning])
    );
    // The first retry (10 s) comes before the kubelet's 10 s resync shows a back-off.
    a.advance(9_999);
    assert_eq!(waiting(&a.cs(&uid, "app")).0, "ErrImagePull");
    a.advance(1);
    assert_eq!(pulls(&a.take()).len(), 1);
    assert_eq!(waiting(&a.cs(&uid, "app")).0, "ErrImagePull");
    // Now the window is 20 s: after 10 s the reason turns into ImagePullBackOff.
    a.advance(10_000);
    let log = a.take();
    assert_eq!(
        waiting(&a.cs(&uid, "app")),
        (
            "ImagePullBackOff".into(),
            "Back-off pulling image \"app:1\"".into()
        )
    );
    assert_eq!(
        events(&log, "BackOff"),
        ["Back-off pulling image \"app:1\""]
    );
    assert_eq!(
        event_kinds(&log, "BackOff"),
        HashSet::from([EventType::Normal])
    );
    assert_eq!(events(&log, "Failed"), ["Error: ImagePullBackOff"]);
    assert!(pulls(&log).is_empty());
    a.advance(10_000);
    assert_eq!(pulls(&a.take()).len(), 1, "retried 20 s after the failure");
}

#[test]
fn image_ready_after_failures_starts_the_container() {
    let mut a = Agent::new();
    failing(&mut a, "app:1", "ErrImagePull");
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.advance(10_000);
    a.failing_images.clear();
    a.take();
    a.advance(20_000);
    let log = a.take();
    assert_eq!(starts(&log, "app"), [1]);
    let cs = a.cs(&uid, "app");
    assert!(is_running(&cs));
    assert_eq!(cs.restart_count, 0);
    assert!(cs.last_state.terminated.is_none());
}

#[test]
fn err_image_never_pull_stays_err_image_never_pull() {
    let mut a = Agent::new();
    failing(&mut a, "local:1", "ErrImageNeverPull");
    let uid = a.apply(pod("web", &[("app", "local:1")]));
    let log = a.take();
    let want = (
        "ErrImageNeverPull".to_string(),
        "Container image \"local:1\" is not present with pull policy of Never".to_string(),
    );
    assert_eq!(waiting(&a.cs(&uid, "app")), want);
    assert_eq!(events(&log, "ErrImageNeverPull"), vec![want.1.clone()]);
    assert_eq!(events(&log, "Failed"), ["Error: ErrImageNeverPull"]);
    for _ in 0..4 {
        a.advance(15_000);
        assert_eq!(waiting(&a.cs(&uid, "app")), want);
    }
    assert!(events(&a.log, "BackOff").is_empty());
    assert!(
        pulls(&a.log).len() >= 2,
        "still retried, in case the image is side-loaded"
    );
}

#[test]
fn invalid_image_name_is_shown_with_kubelet_message() {
    let mut a = Agent::new();
    failing(&mut a, "Bad Image", "InvalidImageName");
    let uid = a.apply(pod("web", &[("app", "Bad Image")]));
    let log = a.take();
    assert_eq!(
        waiting(&a.cs(&uid, "app")),
        (
            "InvalidImageName".into(),
            "Failed to apply default image tag \"Bad Image\": connection refused".into()
        )
    );
    assert_eq!(events(&log, "InspectFailed").len(), 1);
}

#[test]
fn image_pull_failure_of_a_restart_keeps_the_last_termination() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    failing(&mut a, "app:1", "ErrImagePull");
    a.exit(&uid, "app", 1);
    let cs = a.cs(&uid, "app");
    assert_eq!(waiting(&cs).0, "ErrImagePull");
    assert_eq!(cs.last_state.terminated.unwrap().exit_code, 1);
    assert_eq!(
        a.status(&uid).phase,
        Phase::Running,
        "waiting with a last termination is stopped"
    );
}

#[test]
fn every_restart_ensures_the_image_again() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:latest")]));
    a.take();
    a.exit(&uid, "app", 1);
    let log = a.take();
    assert_eq!(pulls(&log), [("app".into(), "app:latest".into())]);
    assert!(log.iter().any(|o| matches!(
        o,
        Output::EnsureImage {
            policy: crate::spec::PullPolicy::Always,
            ..
        }
    )));
}
