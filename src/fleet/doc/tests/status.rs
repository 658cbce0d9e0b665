use super::*;
use crate::fleet::topics::Source;
use crate::lifecycle::{Phase, PodCondition, PodStatus};

fn ready(yes: bool) -> PodStatus {
    PodStatus {
        phase: Phase::Running,
        conditions: vec![PodCondition {
            kind: "Ready".into(),
            status: if yes { "True" } else { "False" }.into(),
            last_probe_time: None,
            last_transition_time: Some("2026-11-22T10:00:00Z".into()),
            reason: String::new(),
            message: String::new(),
        }],
        ..PodStatus::default()
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        architecture: "aarch64".into(),
        kernel: "6.6.31".into(),
        memory_bytes: 1 << 30,
        cgroup_controllers: vec!["cpu".into(), "memory".into()],
        picolet_version: "0.1.0".into(),
        uptime_seconds: 100,
        ..NodeInfo::default()
    }
}

fn sample() -> DeviceStatus {
    let mut p = pod("web");
    p["metadata"]["labels"] = json!({"app": "web"});
    let doc = decode(&doc_json(1, vec![p, pod("db")])).unwrap();
    let mut seen = ObservedRevision::default();
    seen.record(&Source::Device("pi-1".into()), 7);
    seen.record(&Source::Group("kitchen".into()), 3);
    let err = StatusError::for_doc(
        "picolet/devices/pi-1/desired",
        &DocError::field("kind", "\"Foo\" is not DeviceState"),
        1_700_000_000_000,
    );
    DeviceStatus::new(
        "pi-1",
        &seen,
        vec![
            PodReport::new(&doc.pods[0], "uid-web", ready(true)),
            PodReport::new(&doc.pods[1], "uid-db", ready(false)),
        ],
        node(),
        vec![err],
        1_700_000_000_000,
    )
}

#[test]
fn the_status_document_has_the_documented_shape() {
    let v: Value = serde_json::from_slice(&sample().to_json()).unwrap();
    assert_eq!(v["apiVersion"], "picolet.io/v1");
    assert_eq!(v["kind"], "DeviceStatus");
    assert_eq!(v["deviceId"], "pi-1");
    assert_eq!(
        v["observedRevision"],
        json!({"device": 7, "groups": {"kitchen": 3}})
    );
    assert_eq!(
        v["pods"][0]["metadata"],
        json!({"name": "web", "namespace": "default", "uid": "uid-web", "labels": {"app": "web"}})
    );
    assert_eq!(v["pods"][0]["status"]["phase"], "Running");
    assert_eq!(v["pods"][0]["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(v["node"]["memoryBytes"], 1 << 30);
    assert_eq!(v["node"]["cgroupControllers"], json!(["cpu", "memory"]));
    assert_eq!(
        v["errors"][0],
        json!({
            "topic": "picolet/devices/pi-1/desired",
            "reason": "Invalid",
            "message": "kind: \"Foo\" is not DeviceState",
            "time": "2023-11-14T22:13:20Z"
        })
    );
    assert_eq!(v["time"], "2023-11-14T22:13:20Z");
}

#[test]
fn the_status_document_reads_back_on_the_controller_side() {
    let s = sample();
    let back = DeviceStatus::from_json(&s.to_json()).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.pods_ready(), (1, 2));
    assert!(
        back.observed_revision
            .reached(&Source::Device("x".into()), 7)
    );
}

#[test]
fn reading_a_status_document_names_the_bad_field() {
    let mut v: Value = serde_json::from_slice(&sample().to_json()).unwrap();
    v["node"]["memoryBytes"] = json!("lots");
    let err = DeviceStatus::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("node.memoryBytes: invalid type"),
        "{err}"
    );
    v["node"]["memoryBytes"] = json!(1);
    v["kind"] = json!("DeviceState");
    let err = DeviceStatus::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "kind: \"DeviceState\" is not DeviceStatus");
    let err = DeviceStatus::from_json(b"{\"kind\":").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("malformed JSON at line 1 column 8"),
        "{err}"
    );
}

#[test]
fn same_content_ignores_the_time_and_uptime_but_not_the_pods() {
    let a = sample();
    let mut b = a.clone();
    b.time = "2030-01-01T00:00:00Z".into();
    b.node.uptime_seconds += 3600;
    assert!(a.same_content(&b));
    b.pods[1].status = ready(true);
    assert!(!a.same_content(&b));
    let mut c = a.clone();
    c.observed_revision.device = Some(8);
    assert!(!a.same_content(&c));
}

fn status_error(topic: &str, pod: Option<&str>, message: &str) -> StatusError {
    StatusError {
        topic: topic.into(),
        pod: pod.map(str::to_string),
        reason: "PolicyViolation".into(),
        message: message.into(),
        ..StatusError::default()
    }
}

#[test]
fn the_error_log_keeps_the_latest_error_per_topic_and_pod() {
    let mut log: ErrorLog = ErrorLog::default();
    log.push(status_error("t1", None, "old"));
    log.push(status_error("t1", Some("default/a"), "pod a"));
    log.push(status_error("t1", None, "new"));
    let msgs: Vec<&str> = log.items().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs, ["pod a", "new"]);
    log.push(status_error("t2", None, "other"));
    log.clear_topic("t1");
    assert_eq!(log.to_vec(), [status_error("t2", None, "other")]);
    log.clear_topic("t2");
    assert!(log.is_empty());
}

#[test]
fn the_error_log_drops_the_oldest_when_full() {
    let mut log = ErrorLog::<2>::new();
    for i in 0..3 {
        log.push(status_error(&format!("t{i}"), None, "x"));
    }
    let topics: Vec<&str> = log.items().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["t1", "t2"]);
}

#[test]
fn pod_and_clash_errors_name_the_pod_and_the_revision() {
    use crate::fleet::policy::NodePolicy;
    let mut p = pod("web");
    p["spec"]["hostNetwork"] = json!(true);
    let doc = decode(&doc_json(4, vec![p])).unwrap();
    let violations = NodePolicy::default().check(&doc.pods[0]).unwrap_err();
    let message = crate::fleet::policy::describe(&violations);
    let e = StatusError::for_pod("t", 4, &doc.pods[0], "PolicyViolation", &message, 0);
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["pod"], "default/web");
    assert_eq!(v["revision"], 4);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.hostNetwork: ")
    );
    let clash = Clash {
        namespace: "default".into(),
        name: "web".into(),
        kept: Source::Device("pi-1".into()),
        dropped: Source::Group("g".into()),
    };
    let e = StatusError::for_clash("picolet/groups/g/desired", 2, &clash, 0);
    assert_eq!(
        (e.reason.as_str(), e.pod.as_deref()),
        ("NameClash", Some("default/web"))
    );
    assert_eq!(e.message, clash.to_string());
}

#[test]
fn free_memory_and_disk_use_alone_do_not_make_a_new_status() {
    let a = sample();
    let mut b = a.clone();
    b.node.memory_available_bytes = 123;
    b.node.state_disk.used_bytes = 5;
    b.node.image_disk.size_bytes = 6;
    assert!(a.same_content(&b));
    b.node
        .labels
        .insert("picolet.io/board".into(), "rpi5".into());
    assert!(!a.same_content(&b));
}

#[test]
fn deployments_round_trip_through_the_status_document() {
    let mut s = sample();
    let v = serde_json::to_value(&s).unwrap();
    assert!(v.get("deployments").is_none());
    s.deployments
        .push(json!({"source": "group/kitchen", "revision": 4, "state": "Healthy"}));
    let back = DeviceStatus::from_json(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(back.deployments, s.deployments);
}
