//! The status JSON, compared with what Kubernetes prints.

use super::*;
use crate::spec::Quantity;
use serde_json::json;

fn as_json(a: &Agent, uid: &str) -> serde_json::Value {
    let s = a.status(uid);
    let v = serde_json::to_value(&s).unwrap();
    let back: PodStatus = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(back, s, "status round-trips through JSON");
    v
}

#[test]
fn status_json_shape_matches_kubernetes() {
    let mut a = Agent::new();
    let mut p = with_init(
        pod("web", &[("b-app", "nginx:1.25"), ("a-side", "redis:7")]),
        &[("init", "busybox:1.36")],
    );
    p.spec.containers[0].readiness_probe = Some(probe(0, 10, 1, 3));
    p.spec.containers[1]
        .resources
        .requests
        .insert("cpu".into(), Quantity("100m".into()));
    let uid = a.apply(p);
    a.handle(Input::NodeAddress {
        host_ip: Some("192.168.1.10".into()),
    });
    a.handle(Input::PodAddress {
        uid: uid.clone(),
        pod_ip: Some("10.42.0.5".into()),
    });
    a.advance(2_000);
    a.exit(&uid, "init", 0);
    a.advance(3_000);
    a.probe(&uid, "b-app", ProbeKind::Readiness, true);

    let t = |s: u32| format!("2023-11-14T22:13:{}Z", 20 + s);
    let cond = |kind: &str, at: u32| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": t(at)});
    let want = json!({
        "phase": "Running",
        "conditions": [
            cond("PodReadyToStartContainers", 0),
            cond("Initialized", 2),
            cond("Ready", 5),
            cond("ContainersReady", 5),
            cond("PodScheduled", 0),
        ],
        "hostIP": "192.168.1.10",
        "hostIPs": [{"ip": "192.168.1.10"}],
        "podIP": "10.42.0.5",
        "podIPs": [{"ip": "10.42.0.5"}],
        "startTime": T0_STR,
        "initContainerStatuses": [{
            "name": "init",
            "state": {"terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": t(0),
                "finishedAt": t(2),
                "containerID": "picolet://uid-1/init/1"
            }},
            "lastState": {},
            "ready": true,
            "restartCount": 0,
            "image": "busybox:1.36",
            "imageID": "sha256:busybox:1.36",
            "containerID": "picolet://uid-1/init/1",
            "started": false
        }],
        "containerStatuses": [
            {
                "name": "a-side",
                "state": {"running": {"startedAt": t(2)}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": "redis:7",
                "imageID": "sha256:redis:7",
                "containerID": "picolet://uid-1/a-side/1",
                "started": true
            },
            {
                "name": "b-app",
                "state": {"running": {"startedAt": t(2)}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": "nginx:1.25",
                "imageID": "sha256:nginx:1.25",
                "containerID": "picolet://uid-1/b-app/1",
                "started": true
            }
        ],
        "qosClass": "Burstable"
    });
    assert_eq!(as_json(&a, &uid), want);
    let text = serde_json::to_string(&a.status(&uid)).unwrap();
    let order = [
        "\"phase\"",
        "\"conditions\"",
        "\"hostIP\"",
        "\"podIP\"",
        "\"startTime\"",
        "\"initContainerStatuses\"",
        "\"containerStatuses\"",
        "\"qosClass\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "Kubernetes' field order: {text}"
    );
}

#[test]
fn pending_status_json_shape_matches_kubernetes() {
    let mut a = Agent::manual();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    let not_ready = |kind: &str| {
        json!({
            "type": kind, "status": "False", "lastProbeTime": null, "lastTransitionTime": T0_STR,
            "reason": "ContainersNotReady", "message": "containers with unready status: [app]"
        })
    };
    let want = json!({
        "phase": "Pending",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": null, "lastTransitionTime": T0_STR},
            {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": T0_STR},
            not_ready("Ready"),
            not_ready("ContainersReady"),
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": T0_STR}
        ],
        "startTime": T0_STR,
        "containerStatuses": [{
            "name": "app",
            "state": {"waiting": {"reason": "ContainerCreating"}},
            "lastState": {},
            "ready": false,
            "restartCount": 0,
            "image": "app:1",
            "imageID": "",
            "started": false
        }],
        "qosClass": "BestEffort"
    });
    assert_eq!(as_json(&a, &uid), want);
}

#[test]
fn crash_loop_status_json_shape_matches_kubernetes() {
    let mut a = Agent::new();
    let mut p = pod("web", &[("app", "app:1")]);
    for (k, v) in [("cpu", "250m"), ("memory", "64Mi")] {
        p.spec.containers[0]
            .resources
            .limits
            .insert(k.into(), Quantity(v.into()));
    }
    let uid = a.apply(p);
    a.advance(1_000);
    a.exit(&uid, "app", 1);
    a.advance(1_000);
    a.exit(&uid, "app", 2);
    let s = as_json(&a, &uid);
    assert_eq!(
        s["containerStatuses"][0],
        json!({
            "name": "app",
            "state": {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": "back-off 10s restarting failed container=app pod=web_default(uid-1)"
            }},
            "lastState": {"terminated": {
                "exitCode": 2,
                "reason": "Error",
                "startedAt": "2023-11-14T22:13:21Z",
                "finishedAt": "2023-11-14T22:13:22Z",
                "containerID": "picolet://uid-1/app/2"
            }},
            "ready": false,
            "restartCount": 1,
            "image": "app:1",
            "imageID": "sha256:app:1",
            "containerID": "picolet://uid-1/app/2",
            "started": false
        })
    );
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["qosClass"], "Guaranteed");
    assert_eq!(
        s["conditions"][2]["message"],
        "containers with unready status: [app]"
    );
}

#[test]
fn container_statuses_are_sorted_by_name_and_init_statuses_keep_spec_order() {
    let mut a = Agent::manual();
    let p = with_init(
        pod("web", &[("zeta", "i"), ("alpha", "i"), ("mid", "i")]),
        &[("second", "i"), ("first", "i")],
    );
    let uid = a.apply(p);
    let s = a.status(&uid);
    let names = |v: &[ContainerStatus]| v.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&s.container_statuses), ["alpha", "mid", "zeta"]);
    assert_eq!(names(&s.init_container_statuses), ["second", "first"]);
}

#[test]
fn status_changed_is_emitted_only_when_the_status_changes() {
    let mut a = Agent::new();
    let uid = a.apply(pod("web", &[("app", "app:1")]));
    let changed = |log: &[Output]| {
        count(log, |o| {
            *o == Output::StatusChanged {
                uid: "uid-1".into(),
            }
        })
    };
    assert!(changed(&a.take()) >= 1);
    a.handle(Input::Tick);
    a.advance(100_000);
    assert_eq!(changed(&a.take()), 0);
    a.exit(&uid, "app", 1);
    assert!(changed(&a.take()) >= 1);
}

#[test]
fn addresses_show_up_in_every_status() {
    let mut a = Agent::new();
    let u1 = a.apply(pod("one", &[("app", "app:1")]));
    let u2 = a.apply(pod("two", &[("app", "app:1")]));
    a.take();
    a.handle(Input::NodeAddress {
        host_ip: Some("10.0.0.2".into()),
    });
    let log = a.take();
    assert_eq!(
        log,
        [
            Output::StatusChanged { uid: u1.clone() },
            Output::StatusChanged { uid: u2.clone() }
        ],
        "the host address is not persisted"
    );
    a.handle(Input::PodAddress {
        uid: u2.clone(),
        pod_ip: Some("10.42.0.9".into()),
    });
    assert_eq!(a.take()[0], Output::Persist);
    assert_eq!(a.status(&u1).host_ip, "10.0.0.2");
    assert_eq!(a.status(&u1).pod_ip, "");
    assert_eq!(a.status(&u2).pod_ips[0].ip, "10.42.0.9");
    assert!(a.node.status("nope").is_none());
}
