//! The device side of fleet rollouts (issue 14): deployment records in
//! status, the health gate and the device's own rollback with no
//! controller connected, the decision kept across a kill -9, and the
//! per-device group override topic. A real mosquitto, real agents and pods;
//! documents are published raw, as a controller would. As root.

mod support;
use serde_json::{Value, json};
use support::fleet::*;
use support::*;

const GROUP_TOPIC: &str = "picolet/groups/kitchen/desired";

/// Pod `web` printing `version`; never Ready when `ready` is false (a
/// readiness probe that always fails).
fn web(version: &str, ready: bool) -> Value {
    let mut c = json!({
        "name": "main", "image": IMAGE,
        "command": ["sh", "-c", format!("echo {version}; exec sleep 100000")],
    });
    if !ready {
        c["readinessProbe"] = json!({"exec": {"command": ["false"]}, "periodSeconds": 1});
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [c]},
    })
}

fn doc(revision: u64, pods: Vec<Value>, rollout: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState",
        "revision": revision, "pods": pods, "rollout": rollout,
    }))
    .unwrap()
}

fn rollback(deadline: u32) -> Value {
    json!({"healthDeadlineSeconds": deadline, "verifySeconds": 1, "onFailure": "Rollback"})
}

/// The record of `group/kitchen` in a status.
fn record(status: &Value) -> Value {
    status["deployments"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["source"] == "group/kitchen"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_record(url: &str, dev: &str, secs: u64, revision: u64, state: &str) -> Value {
    let what = format!("group/kitchen revision {revision} {state}");
    let status = wait_status(url, dev, secs, &what, |s| {
        let r = record(s);
        r["revision"] == revision && r["state"] == state
    });
    record(&status)
}

/// The command line of the running `web` pod's container.
fn web_command(a: &Agent) -> String {
    let p = a.pod("web").expect("pod web");
    p["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn wait_web(a: &Agent, version: &str) -> Value {
    wait_for(60, &format!("web {version} ready"), || {
        let p = a.pod("web")?;
        let ready = p["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && web_command(a).contains(version)).then_some(p)
    })
}

#[test]
fn a_revision_that_never_becomes_ready_is_rolled_back_by_the_device_alone() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &["--group", "kitchen"]);
    publish_raw(
        &url,
        GROUP_TOPIC,
        doc(1, vec![web("v1", true)], rollback(30)),
    );
    let r = wait_record(&url, "dev1", 60, 1, "Healthy");
    assert!(r["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{r}");
    wait_web(&a, "v1");

    // Revision 2 never becomes Ready: Applying, then back to revision 1
    // by the device's deadline, with nothing but the agent running.
    publish_raw(
        &url,
        GROUP_TOPIC,
        doc(2, vec![web("v2", false)], rollback(8)),
    );
    wait_record(&url, "dev1", 20, 2, "Applying");
    let r = wait_record(&url, "dev1", 40, 2, "FailedRollbackComplete");
    assert_eq!(r["rolledBackTo"], 1, "{r}");
    assert_eq!(r["reason"], "HealthDeadlineExceeded", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("revision 2 is not tried again until a newer revision arrives"),
        "{r}"
    );
    let p = wait_web(&a, "v1");
    assert_eq!(p["spec"]["containers"][0]["image"], IMAGE);
    let status = device_entry(&url, "dev1").unwrap()["status"].clone();
    assert_eq!(status["observedRevision"]["groups"]["kitchen"], 2);
    // The node facts of issue 14.
    let node = &status["node"];
    assert!(node["memoryAvailableBytes"].as_u64().unwrap() > 0, "{node}");
    let disk = &node["stateDisk"];
    assert!(
        disk["usedBytes"].as_u64().unwrap() <= disk["sizeBytes"].as_u64().unwrap()
            && disk["sizeBytes"].as_u64().unwrap() > 0,
        "{node}"
    );
    assert!(
        node["imageDisk"]["sizeBytes"].as_u64().unwrap() > 0,
        "{node}"
    );
    assert_eq!(
        node["labels"]["kubernetes.io/hostname"], "testnode",
        "{node}"
    );
    assert_eq!(node["board"], node["labels"]["picolet.io/board"], "{node}");

    // The same failed revision again is not retried; a newer one is taken.
    publish_raw(
        &url,
        GROUP_TOPIC,
        doc(3, vec![web("v3", true)], rollback(30)),
    );
    wait_record(&url, "dev1", 60, 3, "Healthy");
    wait_web(&a, "v3");
    a.assert_one_thread();
}

#[test]
fn a_kill_during_applying_keeps_the_record_and_the_decision() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let mut a = fleet_agent(&url, "dev1", &["--group", "kitchen"]);
    publish_raw(
        &url,
        GROUP_TOPIC,
        doc(1, vec![web("v1", true)], rollback(30)),
    );
    wait_record(&url, "dev1", 60, 1, "Healthy");
    wait_web(&a, "v1");
    publish_raw(
        &url,
        GROUP_TOPIC,
        doc(2, vec![web("v2", false)], rollback(15)),
    );
    let applying = wait_record(&url, "dev1", 20, 2, "Applying");

    // kill -9 while Applying; the deadline still runs from the acceptance.
    a.kill9();
    std::thread::sleep(std::time::Duration::from_secs(2));
    a.spawn();
    let r = wait_record(&url, "dev1", 40, 2, "FailedRollbackComplete");
    assert_eq!(r["rolledBackTo"], 1, "{r}");
    let since = |r: &Value| picolet::clock::parse_rfc3339_ms(r["since"].as_str().unwrap()).unwrap();
    let took = since(&r) - since(&applying);
    assert!(
        (14_000..=25_000).contains(&took),
        "the deadline restarted at the agent's restart: {took} ms after Applying"
    );
    let p = wait_web(&a, "v1");
    let uid = p["metadata"]["uid"].clone();

    // Again: the finished rollback is not run again, the pod is left alone.
    a.kill9();
    a.spawn();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let status = device_entry(&url, "dev1").unwrap()["status"].clone();
    let again = record(&status);
    assert_eq!(again, r, "the record changed after a restart");
    let p = wait_web(&a, "v1");
    assert_eq!(p["metadata"]["uid"], uid, "the pod was replaced");
    assert!(!a.agent_log().contains("panicked"));
}

#[test]
fn the_override_topic_runs_a_revision_on_one_device_until_cleared() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &["--group", "kitchen"]);
    let b = fleet_agent(&url, "dev2", &["--group", "kitchen"]);
    publish_raw(
        &url,
        GROUP_TOPIC,
        doc(1, vec![web("v1", true)], rollback(30)),
    );
    wait_web(&a, "v1");
    wait_web(&b, "v1");

    let over = "picolet/devices/dev1/groups/kitchen/desired";
    publish_raw(&url, over, doc(2, vec![web("v2", true)], rollback(30)));
    wait_web(&a, "v2");
    let r = wait_record(&url, "dev1", 30, 2, "Healthy");
    assert!(r["rolledBackTo"].is_null(), "{r}");
    let s = device_entry(&url, "dev1").unwrap()["status"].clone();
    assert_eq!(s["observedRevision"]["groups"]["kitchen"], 2);
    // The other device of the group is untouched.
    let s2 = device_entry(&url, "dev2").unwrap()["status"].clone();
    assert_eq!(s2["observedRevision"]["groups"]["kitchen"], 1);
    assert!(web_command(&b).contains("v1"));

    // Cleared (an empty retained message): back to the group's document.
    publish_raw(&url, over, Vec::new());
    wait_web(&a, "v1");
    let r = wait_record(&url, "dev1", 30, 2, "RolledBack");
    assert_eq!(r["rolledBackTo"], 1, "{r}");
    let s = device_entry(&url, "dev1").unwrap()["status"].clone();
    assert_eq!(s["observedRevision"]["groups"]["kitchen"], 1);
}

/// The health gate holds the pods to the revision's spec: an old pod
/// still Ready under the same name does not make a revision Healthy when
/// the node refused the new spec (a hostPort with `podNetwork: none`:
/// the pod keeps its spec), and a pod the node policy refuses fails the
/// revision at once.
#[test]
fn a_revision_whose_pod_keeps_the_old_spec_or_is_refused_is_not_healthy() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &["--group", "kitchen"]);
    publish_raw(
        &url,
        GROUP_TOPIC,
        doc(1, vec![web("v1", true)], rollback(30)),
    );
    wait_record(&url, "dev1", 60, 1, "Healthy");
    let uid = wait_web(&a, "v1")["metadata"]["uid"].clone();

    let mut v2 = web("v2", true);
    v2["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080, "hostPort": 8080}]);
    publish_raw(&url, GROUP_TOPIC, doc(2, vec![v2], rollback(6)));
    let r = wait_record(&url, "dev1", 40, 2, "FailedRollbackComplete");
    assert_eq!(r["reason"], "HealthDeadlineExceeded", "{r}");
    assert_eq!(r["rolledBackTo"], 1, "{r}");
    let p = wait_web(&a, "v1");
    assert_eq!(p["metadata"]["uid"], uid, "the v1 pod was replaced");

    let mut v3 = web("v3", true);
    v3["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    publish_raw(&url, GROUP_TOPIC, doc(3, vec![v3], rollback(30)));
    let r = wait_record(&url, "dev1", 20, 3, "FailedRollbackComplete");
    assert_eq!(r["reason"], "PolicyViolation", "{r}");
    assert_eq!(r["pod"], "default/web", "{r}");
    assert_eq!(r["rolledBackTo"], 1, "{r}");
    let p = wait_web(&a, "v1");
    assert_eq!(p["metadata"]["uid"], uid, "the v1 pod was replaced");
}
