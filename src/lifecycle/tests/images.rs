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

/// An agent whose images are answered by hand, with `web` (one container
/// `app`, image `app:1`) waiting for its image.
fn pulling() -> (Agent, String) {
    let mut a = Agent::new();
    a.auto_image = false;
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    assert_eq!(pulls(&a.take()).len(), 1);
    (a, uid)
}

#[test]
fn a_pull_says_pulling_shows_its_progress_then_pulled_with_size_and_waiting() {
    let (mut a, uid) = pulling();
    let pulling = |progress| Input::ImagePulling {
        uid: uid.clone(),
        container: "app".into(),
        progress,
    };
    a.handle(pulling(None));
    let log = a.take();
    assert_eq!(events(&log, "Pulling"), ["Pulling image \"app:1\""]);
    assert_eq!(
        event_kinds(&log, "Pulling"),
        HashSet::from([EventType::Normal])
    );
    assert_eq!(
        waiting(&a.cs(&uid, "app")),
        ("ContainerCreating".into(), String::new())
    );
    a.handle(pulling(Some((3_100_000, 9_800_000))));
    assert_eq!(
        waiting(&a.cs(&uid, "app")),
        (
            "ContainerCreating".into(),
            "Pulling image \"app:1\": 3.1 MB of 9.8 MB".into()
        )
    );
    assert!(
        a.take()
            .iter()
            .all(|o| !matches!(o, Output::Persist | Output::Event { .. }))
    );
    a.handle(Input::ImagePulled {
        uid: uid.clone(),
        container: "app".into(),
        image_id: "sha256:app".into(),
        pull_ms: 1_200,
        total_ms: 4_000,
        size: 9_800_000,
        offline: None,
    });
    let log = a.take();
    assert_eq!(
        events(&log, "Pulled"),
        [
            "Successfully pulled image \"app:1\" in 1.2s (4s including waiting). Image size: 9800000 bytes."
        ]
    );
    assert_eq!(starts(&log, "app"), [1]);
    assert!(is_running(&a.cs(&uid, "app")));
    // A late progress report changes nothing.
    a.handle(pulling(Some((1, 2))));
    assert!(is_running(&a.cs(&uid, "app")));
}

#[test]
fn an_unreachable_registry_with_the_image_present_starts_it_with_a_warning() {
    let (mut a, uid) = pulling();
    a.handle(Input::ImagePulled {
        uid: uid.clone(),
        container: "app".into(),
        image_id: "sha256:app".into(),
        pull_ms: 0,
        total_ms: 0,
        size: 0,
        offline: Some("connection refused".into()),
    });
    let log = a.take();
    assert_eq!(
        events(&log, "PullOffline"),
        [
            "Could not reach the registry for image \"app:1\" (connection refused); using the copy already on this device"
        ]
    );
    assert_eq!(
        event_kinds(&log, "PullOffline"),
        HashSet::from([EventType::Warning])
    );
    assert!(events(&log, "Pulled").is_empty());
    assert_eq!(starts(&log, "app"), [1]);
}

#[test]
fn progress_of_a_pull_that_failed_before_is_shown_then_the_next_failure_backs_off_longer() {
    let (mut a, uid) = pulling();
    let fail = |a: &mut Agent| {
        a.handle(Input::ImageFailed {
            uid: uid.clone(),
            container: "app".into(),
            reason: "ErrImagePull".into(),
            message: "not found: manifest 1".into(),
        })
    };
    fail(&mut a);
    assert_eq!(
        waiting(&a.cs(&uid, "app")).1,
        "Failed to pull image \"app:1\": not found: manifest 1"
    );
    a.take();
    // Retried after 10 s; the retry's progress replaces the old error.
    assert_eq!(a.advance_until(60_000, is_pull), Some(10_000));
    a.handle(Input::ImagePulling {
        uid: uid.clone(),
        container: "app".into(),
        progress: Some((0, 1_000_000)),
    });
    assert_eq!(
        waiting(&a.cs(&uid, "app")).1,
        "Pulling image \"app:1\": 0.0 MB of 1.0 MB"
    );
    fail(&mut a);
    a.take();
    assert_eq!(
        a.advance_until(60_000, is_pull),
        Some(20_000),
        "10 s, then 20 s"
    );
}
