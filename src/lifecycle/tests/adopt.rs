//! Adopting a running sandbox after the state file was lost (`AdoptPod`).

use super::*;
use crate::clock::rfc3339;
use crate::lifecycle::{AdoptedContainer, AdoptedExit, NodeSnapshot, Phase};

const UID: &str = "shim-uid";

/// An hour before `T0`, in wall ms.
const EARLIER: i64 = T0.wall_ms - 3_600_000;

fn running(name: &str, instance: u64, started_at_ms: i64) -> AdoptedContainer {
    AdoptedContainer {
        name: name.into(),
        instance,
        started_at_ms,
        exit: None,
    }
}

fn exited(name: &str, instance: u64, exit_code: i32, finished_at_ms: i64) -> AdoptedContainer {
    AdoptedContainer {
        name: name.into(),
        instance,
        started_at_ms: EARLIER,
        exit: Some(AdoptedExit {
            exit_code,
            signal: None,
            oom_killed: false,
            finished_at_ms,
        }),
    }
}

/// Feeds `AdoptPod` for sandbox `uid` (the fake shim runs the reported
/// running containers) and returns the outputs.
fn adopt_as(a: &mut Agent, pod: Pod, uid: &str, containers: Vec<AdoptedContainer>) -> Vec<Output> {
    for c in containers.iter().filter(|c| c.exit.is_none()) {
        a.running.insert(
            (uid.to_string(), c.name.clone()),
            Running {
                instance: c.instance,
                started_at: c.started_at_ms,
            },
        );
    }
    a.take();
    a.handle(Input::AdoptPod {
        pod,
        uid: uid.into(),
        containers,
    });
    a.take()
}

fn adopt(a: &mut Agent, pod: Pod, containers: Vec<AdoptedContainer>) -> Vec<Output> {
    adopt_as(a, pod, UID, containers)
}

/// Outputs that make the agent act on the runtime.
fn runtime_commands(log: &[Output]) -> Vec<&Output> {
    log.iter()
        .filter(|o| {
            matches!(
                o,
                Output::CreateSandbox { .. }
                    | Output::EnsureImage { .. }
                    | Output::StartContainer { .. }
                    | Output::Signal { .. }
                    | Output::RemoveSandbox { .. }
                    | Output::AckExit { .. }
            )
        })
        .collect()
}

fn acks(log: &[Output]) -> Vec<(String, u64)> {
    log.iter()
        .filter_map(|o| match o {
            Output::AckExit {
                container,
                instance,
                ..
            } => Some((container.clone(), *instance)),
            _ => None,
        })
        .collect()
}

fn started_at(cs: &ContainerStatus) -> String {
    let r = cs.state.running.as_ref();
    r.and_then(|r| r.started_at.clone())
        .unwrap_or_else(|| panic!("{} not running: {cs:#?}", cs.name))
}

#[test]
fn adopting_a_running_two_container_pod_starts_nothing_and_keeps_started_at() {
    let mut a = Agent::new();
    let p = pod("web", &[("a", "app:1"), ("b", "app:2")]);
    let log = adopt(
        &mut a,
        p,
        vec![running("a", 3, EARLIER), running("b", 1, EARLIER + 500)],
    );
    assert_eq!(log[0], Output::Persist);
    assert!(runtime_commands(&log).is_empty(), "{log:#?}");
    assert!(log.contains(&Output::StatusChanged { uid: UID.into() }));

    let view = a.node.find("default", "web").expect("adopted");
    assert_eq!(
        (view.uid.as_str(), view.spec.metadata.uid.as_str()),
        (UID, UID)
    );
    let ca = a.cs(UID, "a");
    assert_eq!(started_at(&ca), rfc3339(EARLIER));
    assert_eq!(ca.restart_count, 2, "instances count from 1");
    assert_eq!(ca.container_id, format!("picolet://{UID}/a/3"));
    assert!(ca.ready && ca.started == Some(true));
    let cb = a.cs(UID, "b");
    assert_eq!(started_at(&cb), rfc3339(EARLIER + 500));
    assert_eq!(cb.restart_count, 0);
    let s = a.status(UID);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.start_time.as_deref(), Some(rfc3339(EARLIER).as_str()));
    assert_eq!(a.condition(UID, "PodReadyToStartContainers").0, "True");
    assert_eq!(a.condition(UID, "Ready").0, "True");

    // The next start of `a` gets a higher instance than the adopted one.
    a.advance(1_000);
    a.take();
    a.exit(UID, "a", 1);
    assert_eq!(starts(&a.log, "a"), [4]);
    let ca = a.cs(UID, "a");
    assert_eq!(ca.restart_count, 3);
    assert_eq!(ca.last_state.terminated.as_ref().unwrap().exit_code, 1);
    assert!(starts(&a.log, "b").is_empty());
}

#[test]
fn identical_apply_after_adoption_is_a_no_op() {
    let mut a = Agent::new();
    let p = pod("web", &[("a", "app:1"), ("b", "app:2")]);
    adopt(
        &mut a,
        p.clone(),
        vec![running("a", 1, EARLIER), running("b", 1, EARLIER)],
    );
    a.advance(5_000);
    a.take();
    let persists = a.persists;
    let uid = a.apply(p);
    assert_eq!(uid, UID, "the fresh uid is not used");
    assert_eq!(a.take(), [], "nothing to do");
    assert_eq!(a.persists, persists);
    assert_eq!(a.node.pods().count(), 1);

    // A changed spec still replaces the adopted pod.
    let uid = a.apply(pod("web", &[("a", "app:1"), ("c", "app:3")]));
    assert_ne!(uid, UID);
    assert!(a.log.contains(&Output::RemoveSandbox { uid: UID.into() }));
    assert!(a.log.contains(&Output::PodRemoved { uid: UID.into() }));
}

#[test]
fn container_that_exited_unwatched_is_restarted_per_policy_and_acked_after_persist() {
    let mut a = Agent::new();
    let p = pod("web", &[("a", "app:1"), ("b", "app:2")]);
    let finished = T0.wall_ms - 20_000;
    let log = adopt(
        &mut a,
        p,
        vec![running("a", 2, EARLIER), exited("b", 4, 1, finished)],
    );
    assert_eq!(log[0], Output::Persist);
    assert_eq!(starts(&log, "b"), [5]);
    assert!(starts(&log, "a").is_empty());
    assert_eq!(acks(&log), [("b".to_string(), 4)]);
    // The fake agent checks that each `AckExit` follows a `Persist` of its
    // batch; the ack also comes after the batch's commands.
    let ack = log.iter().position(|o| matches!(o, Output::AckExit { .. }));
    let pull = log
        .iter()
        .position(|o| matches!(o, Output::EnsureImage { .. }));
    assert!(ack > pull, "acks come after the commands: {log:#?}");
    let cb = a.cs(UID, "b");
    assert!(is_running(&cb));
    assert_eq!(cb.restart_count, 4);
    let last = cb.last_state.terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (1, "Error"));
    assert_eq!(
        last.finished_at.as_deref(),
        Some(rfc3339(finished).as_str())
    );
    assert_eq!(last.container_id, format!("picolet://{UID}/b/4"));

    // The next crash is the second one: CrashLoopBackOff.
    a.take();
    a.exit(UID, "b", 1);
    assert_eq!(waiting(&a.cs(UID, "b")).0, "CrashLoopBackOff");
}

#[test]
fn exit_zero_seen_unwatched_is_not_restarted_under_on_failure_but_is_acked() {
    let mut a = Agent::new();
    let p = with_policy(
        pod("job", &[("a", "app:1"), ("b", "app:2")]),
        RestartPolicy::OnFailure,
    );
    let log = adopt(
        &mut a,
        p,
        vec![running("a", 1, EARLIER), exited("b", 1, 0, T0.wall_ms - 5)],
    );
    assert!(starts(&log, "b").is_empty());
    assert_eq!(acks(&log), [("b".to_string(), 1)]);
    let cb = a.cs(UID, "b");
    assert_eq!(exit_code(&cb), 0);
    assert_eq!(cb.state.terminated.as_ref().unwrap().reason, "Completed");
    assert_eq!(a.status(UID).phase, Phase::Running);

    // Once `a` succeeds too, the pod is done and its sandbox goes.
    a.take();
    a.exit(UID, "a", 0);
    assert_eq!(a.status(UID).phase, Phase::Succeeded);
    assert!(a.log.contains(&Output::RemoveSandbox { uid: UID.into() }));
}

#[test]
fn init_containers_are_not_rerun_when_app_containers_are_reported() {
    let mut a = Agent::new();
    let p = with_init(
        pod("web", &[("a", "app:1"), ("b", "app:2")]),
        &[("i1", "init:1"), ("i2", "init:2")],
    );
    let log = adopt(&mut a, p, vec![running("a", 1, EARLIER)]);
    assert!(starts(&log, "i1").is_empty() && starts(&log, "i2").is_empty());
    assert_eq!(
        starts(&log, "b"),
        [1],
        "the unreported app container starts"
    );
    assert!(starts(&log, "a").is_empty());
    assert_eq!(a.condition(UID, "Initialized").0, "True");
    assert_eq!(a.status(UID).phase, Phase::Running);
    assert_eq!(waiting(&a.cs(UID, "i1")).0, "PodInitializing");
    let snap = a.node.snapshot();
    assert_eq!(snap.pods[0].init_done, 2);
}

#[test]
fn reported_init_container_that_exited_zero_lets_the_next_init_container_start() {
    let mut a = Agent::new();
    let p = with_init(
        pod("web", &[("a", "app:1")]),
        &[("i1", "init:1"), ("i2", "init:2"), ("i3", "init:3")],
    );
    let log = adopt(&mut a, p, vec![exited("i2", 1, 0, T0.wall_ms - 10)]);
    assert!(starts(&log, "i1").is_empty(), "ran before i2");
    assert!(starts(&log, "i2").is_empty());
    assert_eq!(starts(&log, "i3"), [1]);
    assert!(starts(&log, "a").is_empty(), "init is not done yet");
    assert_eq!(acks(&log), [("i2".to_string(), 1)]);
    assert_eq!(a.status(UID).phase, Phase::Pending);

    a.take();
    a.exit(UID, "i3", 0);
    assert_eq!(starts(&a.log, "a"), [1]);
    assert!(starts(&a.log, "i1").is_empty());
    assert_eq!(a.condition(UID, "Initialized").0, "True");
}

#[test]
fn reported_running_init_container_is_awaited_before_the_next_one() {
    let mut a = Agent::new();
    let p = with_init(
        pod("web", &[("a", "app:1")]),
        &[("i1", "init:1"), ("i2", "init:2"), ("i3", "init:3")],
    );
    let log = adopt(&mut a, p, vec![running("i2", 2, EARLIER)]);
    assert!(runtime_commands(&log).is_empty(), "{log:#?}");
    assert_eq!(a.cs(UID, "i2").restart_count, 1);
    a.exit(UID, "i2", 0);
    assert_eq!(starts(&a.log, "i3"), [1]);
    assert!(starts(&a.log, "i1").is_empty());
}

#[test]
fn reported_failed_init_container_follows_the_restart_policy() {
    let mut a = Agent::new();
    let p = with_init(pod("web", &[("a", "app:1")]), &[("i1", "init:1")]);
    let log = adopt(&mut a, p.clone(), vec![exited("i1", 1, 1, T0.wall_ms - 10)]);
    assert_eq!(starts(&log, "i1"), [2], "Always: run it again");
    assert!(starts(&log, "a").is_empty());

    let mut a = Agent::new();
    let p = with_policy(p, RestartPolicy::Never);
    let log = adopt(&mut a, p, vec![exited("i1", 1, 1, T0.wall_ms - 10)]);
    assert!(starts(&log, "i1").is_empty() && starts(&log, "a").is_empty());
    assert_eq!(acks(&log), [("i1".to_string(), 1)]);
    assert_eq!(a.status(UID).phase, Phase::Failed);
    assert!(log.contains(&Output::RemoveSandbox { uid: UID.into() }));
}

#[test]
fn adopted_container_probes_start_fresh() {
    let mut a = Agent::new();
    let mut p = pod("web", &[("app", "app:1")]);
    p.spec.containers[0].readiness_probe = Some(probe(0, 10, 1, 3));
    let log = adopt(&mut a, p, vec![running("app", 1, EARLIER)]);
    assert!(!a.cs(UID, "app").ready, "readiness false until a success");
    assert!(log.iter().any(|o| matches!(
        o,
        Output::RunProbe {
            kind: ProbeKind::Readiness,
            instance: 1,
            ..
        }
    )));
    a.probe(UID, "app", ProbeKind::Readiness, true);
    assert!(a.cs(UID, "app").ready);
}

#[test]
fn two_reported_instances_of_one_container_give_current_and_last_state() {
    let mut a = Agent::new();
    let p = pod("web", &[("app", "app:1")]);
    let log = adopt(
        &mut a,
        p,
        vec![
            running("app", 4, EARLIER + 9),
            exited("app", 3, 2, EARLIER + 8),
        ],
    );
    assert!(starts(&log, "app").is_empty());
    assert_eq!(acks(&log), [("app".to_string(), 3)]);
    let cs = a.cs(UID, "app");
    assert_eq!(started_at(&cs), rfc3339(EARLIER + 9));
    assert_eq!(cs.restart_count, 3);
    assert_eq!(cs.last_state.terminated.as_ref().unwrap().exit_code, 2);
}

#[test]
fn reported_containers_the_spec_lacks_are_killed_and_their_exits_acked() {
    let mut a = Agent::new();
    a.exit_on_signal = false;
    let p = pod("web", &[("app", "app:1")]);
    let log = adopt(
        &mut a,
        p,
        vec![
            running("app", 1, EARLIER),
            running("old", 2, EARLIER),
            exited("gone", 1, 0, EARLIER + 1),
        ],
    );
    assert_eq!(signals(&log, "old"), [9]);
    assert_eq!(events(&log, "Killing").len(), 1);
    assert_eq!(acks(&log), [("gone".to_string(), 1)]);
    assert!(starts(&log, "app").is_empty());

    a.exit(UID, "old", 137);
    assert_eq!(acks(&a.log), [("old".to_string(), 2)]);
    assert!(runtime_commands(&a.log).len() == 1, "{:#?}", a.log);
}

#[test]
fn adopting_a_pod_that_exists_already_is_refused_and_its_sandbox_removed() {
    let mut a = Agent::new();
    let p = pod("web", &[("app", "app:1")]);
    let uid = a.apply(p.clone());
    let before = a.status(&uid);
    let persists = a.persists;
    let log = adopt(&mut a, p.clone(), vec![running("app", 1, EARLIER)]);
    assert_eq!(
        event_kinds(&log, "AdoptionRefused"),
        HashSet::from([EventType::Warning])
    );
    assert!(log.contains(&Output::RemoveSandbox { uid: UID.into() }));
    assert_eq!(runtime_commands(&log).len(), 1, "{log:#?}");
    assert_eq!(a.persists, persists);
    assert_eq!(a.node.pods().count(), 1);
    assert_eq!(a.status(&uid), before);

    // A manifest naming another uid is not this sandbox's pod either.
    let mut a = Agent::new();
    let mut p = p;
    p.metadata.uid = "manifest-uid".into();
    let log = adopt(&mut a, p, vec![running("app", 1, EARLIER)]);
    assert!(log.contains(&Output::RemoveSandbox { uid: UID.into() }));
    assert_eq!(a.node.pods().count(), 0);
}

#[test]
fn snapshot_round_trips_after_adoption() {
    let mut a = Agent::new();
    let p = with_init(
        pod("web", &[("a", "app:1"), ("b", "app:2")]),
        &[("init", "init:1")],
    );
    adopt(
        &mut a,
        p,
        vec![
            running("a", 2, EARLIER),
            exited("b", 3, 1, T0.wall_ms - 100),
        ],
    );
    let bytes = a.persisted.clone().expect("adoption persisted");
    let snap: NodeSnapshot = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(snap, a.node.snapshot());
    let before = a.status(UID);

    a.node = Node::restore(snap, "edge-1".into(), a.now).unwrap();
    let mut out = Vec::new();
    while let Some(o) = a.node.poll_output() {
        out.push(o);
    }
    assert!(runtime_commands(&out).is_empty(), "{out:#?}");
    assert_eq!(a.status(UID), before);
    let view = a.node.pod(UID).unwrap();
    assert_eq!(view.spec.metadata.uid, UID);
    let b = view
        .containers()
        .into_iter()
        .find(|c| c.name == "b")
        .unwrap();
    assert_eq!((b.instance, b.running), (Some(4), true));
}
