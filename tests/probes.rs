//! Liveness, readiness and startup probes of the exec, tcpSocket and
//! httpGet kinds, end to end.

mod support;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn liveness_http_get_failure_restarts_the_container() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "live.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: picolet.test/busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/healthz && (sleep 3; rm /www/healthz) & exec httpd -f -p 18090 -h /www"]
    ports: [{containerPort: 18090, name: http}]
    livenessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    a.wait_running("live", "web", 30);
    let st = wait_for(30, "a liveness restart", || {
        a.container("live", "web")
            .filter(|s| s["restartCount"].as_i64().unwrap_or(0) >= 1)
    });
    assert!(st["lastState"]["terminated"].is_object(), "{st:#}");
    let d = String::from_utf8(a.cli(&["describe", "pod", "live"]).stdout).unwrap();
    assert!(
        d.contains("Unhealthy") && d.contains("Liveness probe failed"),
        "{d}"
    );
    a.assert_one_thread();
}

#[test]
fn readiness_exec_probe_flips_ready_and_tcp_probe_works() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "ready.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: gate
    image: picolet.test/busybox:1
    command: ["sh", "-c", "while true; do sleep 1; done"]
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
  - name: tcp
    image: picolet.test/busybox:1
    command: ["sh", "-c", "mkdir -p /www; exec httpd -f -p 18091 -h /www"]
    readinessProbe:
      tcpSocket: {port: 18091}
      periodSeconds: 1
"#,
    );
    a.wait_running("ready", "gate", 30);
    wait_for(15, "tcp ready", || {
        a.container("ready", "tcp").filter(|s| s["ready"] == true)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.container("ready", "gate").unwrap()["ready"], false);
    let p = a.pod("ready").unwrap();
    let cond = |p: &serde_json::Value, t: &str| {
        p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(cond(&p, "Ready"), "False");
    assert_eq!(cond(&p, "ContainersReady"), "False");
    assert_eq!(a.exec("ready", "gate", &["touch", "/tmp/ready"]).0, 0);
    wait_for(10, "gate ready", || {
        a.container("ready", "gate").filter(|s| s["ready"] == true)
    });
    let p = wait_for(5, "pod Ready", || {
        a.pod("ready").filter(|p| cond(p, "Ready") == "True")
    });
    assert_eq!(cond(&p, "ContainersReady"), "True");
    let table = String::from_utf8(a.cli(&["get", "pods"]).stdout).unwrap();
    assert!(table.contains("2/2"), "{table}");
    assert_eq!(a.exec("ready", "gate", &["rm", "/tmp/ready"]).0, 0);
    wait_for(10, "gate unready", || {
        a.container("ready", "gate").filter(|s| s["ready"] == false)
    });
    let table = String::from_utf8(a.cli(&["get", "pods"]).stdout).unwrap();
    assert!(table.contains("1/2"), "{table}");
}

#[test]
fn startup_probe_gates_liveness_until_it_succeeds() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "slow.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: picolet.test/busybox:1
    command: ["sh", "-c", "sleep 4; touch /tmp/started; while true; do sleep 1; done"]
    startupProbe:
      exec: {command: ["test", "-f", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    a.wait_running("slow", "app", 30);
    let t0 = Instant::now();
    // While the startup probe has not passed, the failing liveness probe must not run.
    while t0.elapsed() < Duration::from_millis(3000) {
        let s = a.container("slow", "app").unwrap();
        assert_eq!(
            s["restartCount"], 0,
            "liveness ran before startup passed: {s:#}"
        );
        assert_eq!(s["started"], false);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Once started, liveness runs and (always failing) restarts it.
    wait_for(20, "a liveness restart after startup", || {
        a.container("slow", "app")
            .filter(|s| s["restartCount"].as_i64().unwrap_or(0) >= 1)
    });
}
