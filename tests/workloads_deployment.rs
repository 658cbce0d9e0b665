//! The Deployment controller end to end, real pods as root: a rolling
//! update keeps `replicas - maxUnavailable` pods ready (sampled through the
//! API) and survives a kill -9 of the agent without duplicate pods; `rollout
//! status|history|undo`; a bad image, then a crash-looping version, roll
//! back by themselves while the old pods keep serving.

mod support;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::*;

/// A Deployment whose pods print `version` and become ready after
/// `ready_after` seconds (a readiness probe on a file).
fn deployment(name: &str, replicas: u32, version: &str, image: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations:
    kubernetes.io/change-cause: "version {version}"
    picolet.io/auto-rollback: "true"
spec:
  replicas: {replicas}
{extra}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {image}
        command: ["sh", "-c", "echo {version}; sleep 2; touch /tmp/ready; exec sleep 3600"]
        readinessProbe:
          exec: {{command: ["test", "-f", "/tmp/ready"]}}
          periodSeconds: 1
"#
    )
}

/// The pods of Deployment `name` that are not terminating.
fn live(a: &Agent, name: &str) -> Vec<Value> {
    a.pods()
        .into_iter()
        .filter(|p| {
            p["metadata"]["ownerReferences"][0]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{name}-")))
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn version(p: &Value) -> String {
    let cmd = p["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap_or("");
    cmd.split(';').next().unwrap_or("").replace("echo ", "")
}

fn versions(pods: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = pods.iter().map(version).collect();
    v.sort();
    v
}

fn rollout(a: &Agent, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["rollout"];
    all.extend_from_slice(args);
    let out = a.cli(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn wait_rolled_out(a: &Agent, name: &str) {
    let (code, out, err) = rollout(
        a,
        &["status", &format!("deploy/{name}"), "--timeout", "90s"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.ends_with(&format!("deployment \"{name}\" successfully rolled out\n")),
        "{out}"
    );
}

#[test]
fn a_rolling_update_keeps_pods_ready_survives_a_kill_9_and_is_undone() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    let strategy = "  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}";
    a.apply("web.yaml", &deployment("web", 3, "v1", IMAGE, strategy));
    wait_rolled_out(&a, "web");
    assert_eq!(versions(&live(&a, "web")), ["v1", "v1", "v1"]);

    a.apply("web.yaml", &deployment("web", 3, "v2", IMAGE, strategy));
    let start = Instant::now();
    let mut killed = false;
    let mut seen_v2 = std::collections::BTreeSet::new();
    let mut samples = 0;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the rollout never ended"
        );
        let pods = live(&a, "web");
        if pods.is_empty() && killed {
            // The agent is starting again.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        samples += 1;
        let ready_n = pods.iter().filter(|p| ready(p)).count();
        assert!(ready_n >= 2, "{ready_n} ready of {:?}", versions(&pods));
        assert!(
            pods.len() <= 4,
            "{} pods: {:?}",
            pods.len(),
            versions(&pods)
        );
        for p in pods.iter().filter(|p| version(p) == "v2") {
            seen_v2.insert(p["metadata"]["name"].as_str().unwrap().to_string());
        }
        let v = versions(&pods);
        if !killed && v.contains(&"v1".into()) && v.contains(&"v2".into()) {
            // kill -9 in the middle of the rollout.
            a.kill9();
            a.spawn();
            killed = true;
        }
        if v == ["v2", "v2", "v2"] && pods.iter().all(ready) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(killed && samples > 10);
    assert_eq!(seen_v2.len(), 3, "no v2 pod made twice: {seen_v2:?}");
    wait_rolled_out(&a, "web");

    let (code, out, _) = rollout(&a, &["history", "deployment", "web"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         version v1\n2         version v2\n"
    );
    let (code, out, _) = rollout(&a, &["undo", "deployment/web"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web rolled back\n")
    );
    wait_rolled_out(&a, "web");
    assert_eq!(versions(&live(&a, "web")), ["v1", "v1", "v1"]);
    let (_, out, _) = rollout(&a, &["history", "deploy/web"]);
    assert!(
        out.ends_with("2         version v2\n3         version v1\n"),
        "{out}"
    );
    let (code, out, _) = rollout(&a, &["undo", "deploy/web", "--to-revision", "3"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "deployment.apps/web skipped rollback (current template already matches revision 3)\n"
    );
    let (code, _, err) = rollout(&a, &["undo", "deploy/web", "--to-revision", "7"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: unable to find specified revision 7 in history\n")
    );
    let (code, _, err) = rollout(&a, &["status", "deploy/nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{err}"
    );
    a.assert_one_thread();
}

#[test]
fn a_bad_image_or_a_crash_loop_rolls_back_by_itself_and_the_old_pods_keep_serving() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    let extra = "  progressDeadlineSeconds: 8";
    a.apply("api.yaml", &deployment("api", 2, "v1", IMAGE, extra));
    wait_rolled_out(&a, "api");
    let mut old: Vec<String> = live(&a, "api")
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    old.sort();

    a.apply(
        "api.yaml",
        &deployment("api", 2, "v2", "picolet.test/does-not-exist:1", extra),
    );
    // The rollout fails: `rollout status` says so.
    let (code, out, err) = rollout(&a, &["status", "deploy/api", "--timeout", "60s"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("rolled back"), "{out}{err}");
    // Meanwhile and after, the old pods serve.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let pods = live(&a, "api");
        let ready_old: Vec<String> = pods
            .iter()
            .filter(|p| ready(p))
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect();
        let mut r = ready_old.clone();
        r.sort();
        assert_eq!(r, old, "the same two old pods, ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(20, "the bad pod gone", || {
        (versions(&live(&a, "api")) == ["v1", "v1"]).then_some(())
    });
    let out = a.cli(&["describe", "deployment", "api"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("RolledBack"), "{text}");
    let out = a.cli(&["get", "deploy/api", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let conds = v["status"]["conditions"].as_array().unwrap();
    let p = conds.iter().find(|c| c["type"] == "Progressing").unwrap();
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("False"), Some("RolledBack"))
    );
    assert!(
        p["message"].as_str().unwrap().contains("to revision 1"),
        "{p}"
    );
    assert_eq!(
        v["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    // The same bad template again is not retried.
    a.apply(
        "api.yaml",
        &deployment("api", 2, "v2", "picolet.test/does-not-exist:1", extra),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(versions(&live(&a, "api")), ["v1", "v1"]);

    // A crash-looping new version (its command exits 1): rolled back too,
    // the old pods ready throughout.
    a.apply(
        "api.yaml",
        &deployment("api", 2, "v3; exit 1", IMAGE, extra),
    );
    let start = Instant::now();
    let mut crashed = false;
    let cond = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no rollback of the crash-looping version"
        );
        let pods = live(&a, "api");
        let mut r: Vec<String> = pods
            .iter()
            .filter(|p| ready(p))
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect();
        r.sort();
        assert_eq!(r, old, "the same two old pods, ready");
        for p in pods.iter().filter(|p| version(p) == "v3") {
            let c = &p["status"]["containerStatuses"][0];
            crashed |= c["lastState"]["terminated"]["exitCode"] == 1
                || c["state"]["terminated"]["exitCode"] == 1;
        }
        let out = a.cli(&["get", "deploy/api", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let p = v["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Progressing").cloned());
        if let Some(p) = p.filter(|p| {
            p["reason"] == "RolledBack"
                && p["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("from revision 4"))
        }) {
            assert_eq!(
                v["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
                "5"
            );
            break p;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(crashed, "the v3 pod was seen exiting 1");
    assert_eq!(cond["status"], "False");
    assert!(
        cond["message"].as_str().unwrap().contains("to revision 3"),
        "{cond}"
    );
    let (code, out, err) = rollout(&a, &["status", "deploy/api", "--timeout", "20s"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("rolled back"), "{out}{err}");
    wait_for(20, "the crash-looping pod gone", || {
        (versions(&live(&a, "api")) == ["v1", "v1"]).then_some(())
    });
    let mut now: Vec<String> = live(&a, "api")
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    now.sort();
    assert_eq!(now, old, "the old pods kept running");
}
