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

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A helper process of the test, killed (by its PID) and reaped on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn missing(what: &str) {
    assert!(
        std::env::var_os("PICOLET_REQUIRE_ROOT").is_none(),
        "{what} is missing, and PICOLET_REQUIRE_ROOT is set: CI must run this test"
    );
    eprintln!("SKIP: {what} is missing");
}

/// `openssl s_server -www` on 127.0.0.1:`port` with a fresh self-signed
/// certificate (nothing verifies it: the probe must not care).
fn https_server(dir: &std::path::Path, port: u16) -> Option<Server> {
    use std::process::{Command, Stdio};
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=probe.test",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        missing("openssl");
        return None;
    }
    let child = Command::new("openssl")
        .args([
            "s_server", "-quiet", "-www", "-cert", "c.pem", "-key", "k.pem",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    wait_for(10, "openssl s_server listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    Some(server)
}

/// grpcio's own health server (tests/grpc/health_server.py) on
/// 127.0.0.1:`port`: "" SERVING, "down" NOT_SERVING.
fn grpc_server(port: u16) -> Option<Server> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("PICOLET_GRPC_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/grpc-venv/bin/python"));
    if !python.exists() {
        missing(&format!("{} (scripts/test.sh makes it)", python.display()));
        return None;
    }
    let mut child = Command::new(python)
        .arg(root.join("tests/grpc/health_server.py"))
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    assert_eq!(line.trim(), port.to_string(), "health_server.py");
    Some(server)
}

#[test]
fn https_grpc_and_named_host_probes_run_from_the_agent() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (https_port, grpc_port, web_port) = (free_port(), free_port(), free_port());
    let Some(_https) = https_server(dir.path(), https_port) else {
        return;
    };
    let Some(_grpc) = grpc_server(grpc_port) else {
        return;
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let a = Agent::start();
    a.apply(
        "probed.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: https
    image: picolet.test/busybox:1
    command: ["sleep", "100000"]
    readinessProbe:
      httpGet: {{scheme: HTTPS, host: 127.0.0.1, port: {https_port}, path: /}}
      periodSeconds: 1
  - name: grpc
    image: picolet.test/busybox:1
    command: ["sleep", "100000"]
    readinessProbe:
      grpc: {{port: {grpc_port}}}
      periodSeconds: 1
  - name: grpc-down
    image: picolet.test/busybox:1
    command: ["sleep", "100000"]
    readinessProbe:
      grpc: {{port: {grpc_port}, service: down}}
      periodSeconds: 1
  - name: named
    image: picolet.test/busybox:1
    command: ["sh", "-c", "mkdir -p /w && exec httpd -f -p {web_port} -h /w"]
    readinessProbe:
      tcpSocket: {{host: {host}, port: {web_port}}}
      periodSeconds: 1
  - name: nowhere
    image: picolet.test/busybox:1
    command: ["sleep", "100000"]
    readinessProbe:
      httpGet: {{host: no-such-host.invalid, port: {web_port}}}
      periodSeconds: 1
"#
        ),
    );
    for c in ["https", "grpc", "named"] {
        wait_for(30, &format!("{c} ready"), || {
            a.container("probed", c).filter(|s| s["ready"] == true)
        });
    }
    let d = wait_for(20, "the failing probes' events", || {
        let d = String::from_utf8(a.cli(&["describe", "pod", "probed"]).stdout).unwrap();
        (d.contains("NOT_SERVING") && d.contains("no-such-host.invalid")).then_some(d)
    });
    assert!(
        d.contains("Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
        "{d}"
    );
    assert!(
        d.contains(&format!(
            "Readiness probe failed: Get \"http://no-such-host.invalid:{web_port}/\": dial tcp: lookup no-such-host.invalid: no such host"
        )),
        "{d}"
    );
    for c in ["grpc-down", "nowhere"] {
        assert_eq!(a.container("probed", c).unwrap()["ready"], false, "{c}");
    }
    a.assert_one_thread();
}
