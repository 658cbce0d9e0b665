//! ApplyPod for a pod that exists: nothing, image-only restarts, or a new pod.

use super::*;
use crate::lifecycle::Phase;

fn web(b_image: &str) -> Pod {
    pod("web", &[("a", "app:1"), ("b", b_image)])
}

#[test]
fn identical_spec_does_nothing() {
    let mut a = Agent::new();
    a.apply(web("b:1"));
    a.take();
    let persists = a.persists;
    a.apply(web("b:1"));
    assert!(a.take().is_empty());
    assert_eq!(a.persists, persists);
}

#[test]
fn label_change_is_persisted_without_restarting_anything() {
    let mut a = Agent::new();
    let uid = a.apply(web("b:1"));
    a.take();
    let mut p = web("b:1");
    p.metadata.labels.insert("tier".into(), "edge".into());
    a.apply(p);
    let log = a.take();
    assert_eq!(log, [Output::Persist]);
    let view = a.node.pod(&uid).unwrap();
    assert_eq!(view.spec.metadata.labels["tier"], "edge");
    assert_eq!(view.spec.metadata.uid, uid);
}

#[test]
fn image_only_change_restarts_only_that_container() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let uid = a.apply(web("b:1"));
    a.take();
    assert_eq!(a.apply(web("b:2")), uid, "same pod");
    let log = a.take();
    assert_eq!(log[0], Output::Persist);
    assert_eq!(
        events(&log, "Killing"),
        ["Container b definition changed, will be restarted"]
    );
    assert_eq!(signals(&log, "b"), [15]);
    assert!(signals(&log, "a").is_empty());
    assert_eq!(a.node.poll_timeout(), Some(a.now.mono_ms + 30_000));
    a.advance(30_000);
    assert_eq!(signals(&a.take(), "b"), [9]);
    a.exit(&uid, "b", 137);
    let log = a.take();
    assert_eq!(pulls(&log), [("b".into(), "b:2".into())]);
    assert_eq!(starts(&log, "b"), [2], "restarted at once");
    assert!(starts(&log, "a").is_empty());
    let b = a.cs(&uid, "b");
    assert_eq!((b.image.as_str(), b.restart_count), ("b:2", 1));
    assert_eq!(b.image_id, "sha256:b:2");
    assert_eq!(b.last_state.terminated.unwrap().exit_code, 137);
    assert_eq!(a.cs(&uid, "a").restart_count, 0);
    assert!(is_running(&a.cs(&uid, "a")));
}

#[test]
fn image_change_restarts_even_with_never_policy() {
    let mut a = Agent::new();
    let uid = a.apply(with_policy(web("b:1"), RestartPolicy::Never));
    a.take();
    a.apply(with_policy(web("b:2"), RestartPolicy::Never));
    let log = a.take();
    assert_eq!(starts(&log, "b"), [2]);
    assert_eq!(a.status(&uid).phase, Phase::Running);
}

#[test]
fn image_change_during_crash_loop_restarts_at_once_with_fresh_backoff() {
    let mut a = Agent::new();
    let uid = a.apply(web("b:1"));
    a.exit(&uid, "b", 1);
    a.exit(&uid, "b", 1);
    assert_eq!(waiting(&a.cs(&uid, "b")).0, "CrashLoopBackOff");
    a.take();
    a.apply(web("b:2"));
    let log = a.take();
    assert_eq!(pulls(&log), [("b".into(), "b:2".into())]);
    assert_eq!(starts(&log, "b"), [3], "a new spec is a new back-off key");
    a.take();
    a.exit(&uid, "b", 1);
    assert_eq!(
        waiting(&a.cs(&uid, "b")).1,
        "back-off 10s restarting failed container=b pod=web_default(uid-1)",
        "the window starts over at 10 s (it would be 20 s otherwise)"
    );
}

#[test]
fn image_change_while_pulling_pulls_the_new_image() {
    let mut a = Agent::new();
    a.auto_image = false;
    let uid = a.apply(web("b:1"));
    a.take();
    a.apply(web("b:2"));
    assert!(pulls(&a.take()).is_empty(), "one pull at a time");
    a.handle(Input::ImageReady {
        uid: uid.clone(),
        container: "b".into(),
        image_id: "sha256:old".into(),
        pulled_ms: None,
    });
    let log = a.take();
    assert_eq!(pulls(&log), [("b".into(), "b:2".into())]);
    assert!(starts(&log, "b").is_empty(), "the old image is not started");
    a.handle(Input::ImageReady {
        uid: uid.clone(),
        container: "b".into(),
        image_id: "sha256:new".into(),
        pulled_ms: None,
    });
    assert_eq!(starts(&a.take(), "b"), [1]);
    assert_eq!(a.node.pod(&uid).unwrap().image_id("b"), Some("sha256:new"));
}

#[test]
fn image_change_while_starting_restarts_once_started() {
    let mut a = Agent::new();
    a.auto_start = false;
    let uid = a.apply(web("b:1"));
    a.apply(web("b:2"));
    a.take();
    a.running.insert(
        (uid.clone(), "b".into()),
        Running {
            instance: 1,
            started_at: a.now.wall_ms,
        },
    );
    a.handle(Input::ContainerStarted {
        uid: uid.clone(),
        container: "b".into(),
        instance: 1,
        started_at_ms: a.now.wall_ms,
    });
    let log = a.take();
    assert_eq!(signals(&log, "b"), [15]);
    assert_eq!(starts(&log, "b"), [2]);
}

#[test]
fn init_image_change_does_not_rerun_completed_init_containers() {
    let mut a = Agent::new();
    let p = |img: &str| with_init(pod("web", &[("app", "app:1")]), &[("init", img)]);
    let uid = a.apply(p("init:1"));
    a.exit(&uid, "init", 0);
    a.take();
    a.apply(p("init:2"));
    let log = a.take();
    assert_eq!(log, [Output::Persist]);
    assert!(is_running(&a.cs(&uid, "app")));
}

#[test]
fn other_change_recreates_pod() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let uid = a.apply(web("b:1"));
    a.take();
    let mut p = web("b:1");
    p.spec.containers[0].args = Some(vec!["--verbose".into()]);
    let same_name = a.apply(p.clone());
    assert_eq!(same_name, uid, "the old pod is listed while it stops");
    let log = a.take();
    assert_eq!(
        events(&log, "Killing"),
        ["Stopping container a", "Stopping container b"]
    );
    assert_eq!(signals(&log, "a"), [15]);
    assert!(a.node.pod(&uid).unwrap().is_terminating());
    // The old pod is being deleted, as Kubernetes deletes it before it
    // creates the new one: `get pods` shows it Terminating, not Running.
    assert_eq!(
        a.node.pod(&uid).unwrap().deletion_deadline(),
        Some(a.now.mono_ms + 30_000)
    );
    assert_eq!(
        a.node.pods().count(),
        1,
        "only the old pod, until it is gone"
    );
    a.exit(&uid, "a", 143);
    a.exit(&uid, "b", 143);
    let log = a.take();
    let removed = log
        .iter()
        .position(|o| *o == Output::PodRemoved { uid: uid.clone() });
    let created = log
        .iter()
        .position(|o| matches!(o, Output::CreateSandbox { uid } if uid == "uid-2"));
    assert!(removed.unwrap() < created.unwrap(), "{log:#?}");
    let new = a.node.find("default", "web").unwrap();
    assert_eq!(new.uid, "uid-2", "fresh_uid of the update");
    assert_eq!(new.spec.spec.containers[0].args, p.spec.containers[0].args);
    assert_eq!(a.cs("uid-2", "a").restart_count, 0);
    assert!(is_running(&a.cs("uid-2", "a")));
    assert_eq!(
        new.deletion_deadline(),
        None,
        "the new pod is not terminating"
    );
}

#[test]
fn a_new_metadata_uid_recreates_pod() {
    let mut a = Agent::new();
    let mut p = web("b:1");
    p.metadata.uid = "u1".into();
    a.apply(p.clone());
    a.take();
    p.metadata.uid = "u2".into();
    a.apply(p);
    let log = a.take();
    assert!(log.contains(&Output::PodRemoved { uid: "u1".into() }));
    assert_eq!(a.node.find("", "web").unwrap().uid, "u2");
}

#[test]
fn apply_during_deletion_creates_the_pod_again_once_removed() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let uid = a.apply(web("b:1"));
    a.handle(Input::DeletePod {
        namespace: "default".into(),
        name: "web".into(),
    });
    a.apply(web("b:1"));
    a.take();
    a.exit(&uid, "a", 0);
    a.exit(&uid, "b", 0);
    let log = a.take();
    assert!(log.contains(&Output::PodRemoved { uid: uid.clone() }));
    assert!(log.contains(&Output::CreateSandbox {
        uid: "uid-2".into()
    }));
    // and a delete during a replacement cancels the replacement
    a.apply({
        let mut p = web("b:1");
        p.spec.hostname = Some("x".into());
        p
    });
    a.handle(Input::DeletePod {
        namespace: "default".into(),
        name: "web".into(),
    });
    a.take();
    a.exit("uid-2", "a", 143);
    a.exit("uid-2", "b", 143);
    let log = a.take();
    assert!(log.contains(&Output::PodRemoved {
        uid: "uid-2".into()
    }));
    assert!(
        !log.iter()
            .any(|o| matches!(o, Output::CreateSandbox { .. }))
    );
    assert_eq!(a.node.pods().count(), 0);
}

#[test]
fn image_change_of_a_terminal_pod_recreates_it() {
    let mut a = Agent::new();
    let uid = a.apply(with_policy(web("b:1"), RestartPolicy::OnFailure));
    a.exit(&uid, "a", 0);
    a.exit(&uid, "b", 0);
    assert_eq!(a.status(&uid).phase, Phase::Succeeded);
    a.take();
    a.apply(with_policy(web("b:2"), RestartPolicy::OnFailure));
    let log = a.take();
    assert!(log.contains(&Output::PodRemoved { uid }));
    let new = a.node.find("", "web").unwrap();
    assert_eq!(new.status.phase, Phase::Running);
}
