//! Sandbox first, init containers one at a time, then the app containers.

use super::*;
use crate::lifecycle::Phase;
use crate::lifecycle::pull_policy;
use crate::spec::PullPolicy;

#[test]
fn new_pod_creates_sandbox_then_pulls_and_starts_every_app_container() {
    let mut a = Agent::manual();
    let uid = a.apply(pod("web", &[("a", "nginx:1.25"), ("b", "redis")]));
    assert_eq!(uid, "uid-1");
    let log = a.take();
    assert_eq!(log[0], Output::Persist, "the desired set changed");
    assert!(log.contains(&Output::CreateSandbox { uid: uid.clone() }));
    assert!(pulls(&log).is_empty(), "no image before the sandbox");
    assert_eq!(waiting(&a.cs(&uid, "a")).0, "ContainerCreating");
    assert_eq!(a.status(&uid).phase, Phase::Pending);

    a.handle(Input::SandboxReady { uid: uid.clone() });
    let log = a.take();
    assert_eq!(
        pulls(&log),
        [
            ("a".into(), "nginx:1.25".into()),
            ("b".into(), "redis".into())
        ]
    );
    let policies: Vec<PullPolicy> = log
        .iter()
        .filter_map(|o| match o {
            Output::EnsureImage { policy, .. } => Some(*policy),
            _ => None,
        })
        .collect();
    assert_eq!(policies, [PullPolicy::IfNotPresent, PullPolicy::Always]);

    a.handle(Input::ImageReady {
        uid: uid.clone(),
        container: "b".into(),
        image_id: "sha256:b".into(),
        pulled_ms: Some(1_500),
    });
    let log = a.take();
    assert_eq!(
        log[0],
        Output::Persist,
        "instance numbers are persisted before use"
    );
    assert_eq!(starts(&log, "b"), [1]);
    assert_eq!(
        events(&log, "Pulled"),
        ["Successfully pulled image \"redis\" in 1.5s (1.5s including waiting)"]
    );
    assert_eq!(a.node.pod(&uid).unwrap().image_id("b"), Some("sha256:b"));

    a.handle(Input::ContainerStarted {
        uid: uid.clone(),
        container: "b".into(),
        instance: 1,
        started_at_ms: a.now.wall_ms,
    });
    let log = a.take();
    assert_eq!(events(&log, "Created"), ["Created container: b"]);
    assert_eq!(events(&log, "Started"), ["Started container b"]);
    assert!(is_running(&a.cs(&uid, "b")));
    assert_eq!(a.status(&uid).phase, Phase::Pending, "a is still waiting");

    a.handle(Input::ImageReady {
        uid: uid.clone(),
        container: "a".into(),
        image_id: "sha256:a".into(),
        pulled_ms: None,
    });
    assert_eq!(
        events(&a.log, "Pulled"),
        ["Container image \"nginx:1.25\" already present on machine"]
    );
    a.handle(Input::ContainerStarted {
        uid: uid.clone(),
        container: "a".into(),
        instance: 1,
        started_at_ms: a.now.wall_ms,
    });
    assert_eq!(a.status(&uid).phase, Phase::Running);
    assert_eq!(a.condition(&uid, "Ready").0, "True");
    assert_eq!(a.node.poll_timeout(), None, "nothing to wait for");
}

#[test]
fn init_containers_run_strictly_in_order() {
    let mut a = Agent::new();
    a.auto_start = false;
    let p = with_init(
        pod("web", &[("app", "app:1")]),
        &[("i1", "init:1"), ("i2", "init:2")],
    );
    let uid = a.apply(p);
    let log = a.take();
    assert_eq!(starts(&log, "i1"), [1]);
    assert!(starts(&log, "i2").is_empty() && starts(&log, "app").is_empty());
    assert_eq!(
        pulls(&log),
        [("i1".into(), "init:1".into())],
        "only the first init image"
    );
    assert_eq!(waiting(&a.cs(&uid, "app")).0, "PodInitializing");
    assert_eq!(waiting(&a.cs(&uid, "i1")).0, "PodInitializing");
    assert_eq!(
        a.condition(&uid, "Initialized"),
        (
            "False".into(),
            "ContainersNotInitialized".into(),
            "containers with incomplete status: [i1 i2]".into()
        )
    );

    let started = |a: &mut Agent, name: &str| {
        a.running.insert(
            (uid.clone(), name.into()),
            Running {
                instance: 1,
                started_at: a.now.wall_ms,
            },
        );
        a.handle(Input::ContainerStarted {
            uid: uid.clone(),
            container: name.into(),
            instance: 1,
            started_at_ms: a.now.wall_ms,
        });
    };
    started(&mut a, "i1");
    assert!(is_running(&a.cs(&uid, "i1")));
    assert_eq!(a.status(&uid).phase, Phase::Pending);
    a.take();
    a.advance(5_000);
    assert!(
        starts(&a.take(), "i2").is_empty(),
        "i2 waits for i1 to exit"
    );

    a.exit(&uid, "i1", 0);
    let log = a.take();
    assert_eq!(starts(&log, "i2"), [1]);
    assert!(starts(&log, "app").is_empty());
    assert!(
        a.cs(&uid, "i1").ready,
        "a completed init container is ready"
    );
    assert_eq!(
        a.condition(&uid, "Initialized").2,
        "containers with incomplete status: [i2]"
    );

    started(&mut a, "i2");
    a.exit(&uid, "i2", 0);
    let log = a.take();
    assert_eq!(starts(&log, "app"), [1]);
    assert_eq!(a.condition(&uid, "Initialized").0, "True");
    assert_eq!(exit_code(&a.cs(&uid, "i2")), 0);
    assert_eq!(
        a.cs(&uid, "i2").state.terminated.unwrap().reason,
        "Completed"
    );
}

#[test]
fn failed_init_container_with_never_fails_pod() {
    let mut a = Agent::new();
    let p = with_policy(
        with_init(pod("job", &[("app", "app:1")]), &[("init", "init:1")]),
        RestartPolicy::Never,
    );
    let uid = a.apply(p);
    a.take();
    a.exit(&uid, "init", 3);
    let log = a.take();
    assert!(starts(&log, "app").is_empty(), "no app container starts");
    assert!(starts(&log, "init").is_empty(), "never restarted");
    assert!(log.contains(&Output::RemoveSandbox { uid: uid.clone() }));
    let s = a.status(&uid);
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(waiting(&a.cs(&uid, "app")).0, "PodInitializing");
    let t = a.cs(&uid, "init").state.terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (3, "Error"));
    assert!(a.node.pod(&uid).is_some(), "a terminal pod stays listed");
    assert_eq!(a.node.poll_timeout(), None);
}

#[test]
fn failed_init_container_with_on_failure_restarts_with_backoff_and_blocks_app() {
    let mut a = Agent::new();
    let p = with_policy(
        with_init(pod("web", &[("app", "app:1")]), &[("init", "init:1")]),
        RestartPolicy::OnFailure,
    );
    let uid = a.apply(p);
    a.take();
    a.exit(&uid, "init", 1);
    assert_eq!(starts(&a.take(), "init"), [2], "first restart is immediate");
    a.exit(&uid, "init", 1);
    assert!(starts(&a.take(), "init").is_empty());
    let cs = a.cs(&uid, "init");
    assert_eq!(waiting(&cs).0, "CrashLoopBackOff");
    assert_eq!(cs.restart_count, 1);
    assert_eq!(a.status(&uid).phase, Phase::Pending);
    assert_eq!(waiting(&a.cs(&uid, "app")).0, "PodInitializing");

    let waited = a.advance_until(
        60_000,
        |o| matches!(o, Output::StartContainer { container, .. } if container == "init"),
    );
    assert_eq!(waited, Some(10_000));
    a.exit(&uid, "init", 0);
    assert_eq!(starts(&a.take(), "app"), [1]);
    assert_eq!(a.status(&uid).phase, Phase::Running);
}

#[test]
fn successful_init_container_is_never_rerun() {
    let mut a = Agent::new();
    let p = with_init(pod("web", &[("app", "app:1")]), &[("init", "init:1")]);
    let uid = a.apply(p);
    a.exit(&uid, "init", 0);
    a.take();
    for _ in 0..3 {
        a.exit(&uid, "app", 1);
        a.advance(400_000);
    }
    let log = a.take();
    assert!(starts(&log, "init").is_empty());
    assert_eq!(starts(&log, "app"), [2, 3, 4]);
    assert_eq!(a.cs(&uid, "init").restart_count, 0);
    assert_eq!(a.condition(&uid, "Initialized").0, "True");
}

#[test]
fn pull_policy_defaults_follow_the_tag() {
    use PullPolicy::*;
    assert_eq!(pull_policy("nginx", None), Always);
    assert_eq!(pull_policy("nginx:latest", None), Always);
    assert_eq!(pull_policy("nginx:1.25", None), IfNotPresent);
    assert_eq!(pull_policy("registry:5000/nginx", None), Always);
    assert_eq!(pull_policy("registry:5000/nginx:2", None), IfNotPresent);
    assert_eq!(pull_policy("nginx@sha256:abcd", None), IfNotPresent);
    assert_eq!(pull_policy("nginx:latest", Some(Never)), Never);
}

#[test]
fn sandbox_failure_retries_with_backoff_and_warns() {
    let mut a = Agent::new();
    a.auto_sandbox = false;
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    let fail = |a: &mut Agent| {
        a.handle(Input::SandboxFailed {
            uid: uid.clone(),
            message: "netns: EPERM".into(),
        })
    };
    fail(&mut a);
    let log = a.take();
    assert_eq!(
        events(&log, "FailedCreatePodSandBox"),
        ["Failed to create pod sandbox: netns: EPERM"]
    );
    assert_eq!(
        event_kinds(&log, "FailedCreatePodSandBox"),
        HashSet::from([EventType::Warning])
    );
    assert_eq!(a.condition(&uid, "PodReadyToStartContainers").0, "False");
    let is_create = |o: &Output| matches!(o, Output::CreateSandbox { .. });
    assert_eq!(a.advance_until(100_000, is_create), Some(10_000));
    fail(&mut a);
    a.take();
    assert_eq!(a.advance_until(100_000, is_create), Some(20_000));
    a.handle(Input::SandboxReady { uid: uid.clone() });
    assert_eq!(starts(&a.take(), "app"), [1]);
    assert_eq!(a.condition(&uid, "PodReadyToStartContainers").0, "True");
}

#[test]
fn unknown_uids_and_containers_are_ignored() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    a.take();
    a.handle(Input::SandboxReady { uid: "nope".into() });
    a.handle(Input::ContainerStarted {
        uid: uid.clone(),
        container: "ghost".into(),
        instance: 1,
        started_at_ms: 0,
    });
    a.handle(Input::ImageReady {
        uid: uid.clone(),
        container: "app".into(),
        image_id: "x".into(),
        pulled_ms: None,
    });
    let log = a.take();
    assert!(log.is_empty(), "{log:#?}");
}

#[test]
fn pods_are_found_by_namespace_and_name_with_default_namespace() {
    let mut a = Agent::new();
    let mut p = pod("web", &[("app", "app:1")]);
    p.metadata.namespace = "edge".into();
    let uid = a.apply(p);
    let q = pod("web", &[("app", "app:1")]);
    let uid2 = a.apply(q);
    assert_ne!(uid, uid2);
    assert_eq!(a.node.find("edge", "web").unwrap().uid, uid);
    assert_eq!(a.node.find("default", "web").unwrap().uid, uid2);
    assert_eq!(a.node.find("", "web").unwrap().uid, uid2);
    assert_eq!(a.node.pods().count(), 2);
    assert_eq!(a.node.pod(&uid).unwrap().spec.metadata.uid, uid);
    let mut with_uid = pod("fixed", &[("app", "app:1")]);
    with_uid.metadata.uid = "given-uid".into();
    assert_eq!(a.apply(with_uid), "given-uid");
}

/// A manifest copied from another pod's `get -o yaml` carries that pod's
/// uid: the new pod runs under a fresh uid (as the API server gives one on
/// create), and applying the same manifest again keeps it (no replacement).
#[test]
fn a_copied_manifest_with_another_pods_uid_runs_under_a_fresh_uid() {
    let mut a = Agent::new();
    let web = a.apply(pod("web", &[("app", "app:1")]));
    let mut copy = pod("web-copy", &[("app", "app:1")]);
    copy.metadata.uid = web.clone();
    a.take();
    let uid = a.apply(copy.clone());
    assert!(!uid.is_empty(), "the copy was ignored");
    let log = a.take();
    assert!(
        log.contains(&Output::CreateSandbox { uid: uid.clone() }),
        "the copy is not started: {log:#?}"
    );
    assert_ne!(uid, web);
    assert_eq!(a.node.pods().count(), 2);
    assert_eq!(a.node.find("default", "web").unwrap().uid, web);
    assert_eq!(a.node.find("default", "web-copy").unwrap().uid, uid);
    // The same manifest again: the same pod, not restarted.
    assert_eq!(a.apply(copy), uid);
    let log = a.take();
    assert_eq!(
        count(&log, |o| matches!(o, Output::RemoveSandbox { .. })),
        0,
        "{log:#?}"
    );
    assert!(signals(&log, "app").is_empty(), "{log:#?}");
}
