//! `scripts/run-example.sh`: the README's first command, and its `--stop`.

mod support;
use std::path::Path;
use std::process::Command;
use support::*;

/// The PIDs of the shims whose title names `ns/pod`.
fn shims_of(pod: &str) -> Vec<u32> {
    let want = format!("picolet shim default/{pod}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == want)
                .unwrap_or(false)
        })
        .collect()
}

/// The PIDs of the shims of the pods named `prefix…` (a Deployment's).
fn shims_like(prefix: &str) -> Vec<u32> {
    let want = format!("picolet shim default/{prefix}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .starts_with(&want)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The pods of the example Deployment `web` (`web-<hash>-<x>`).
fn web_pods(a: &Agent) -> Vec<serde_json::Value> {
    a.pods()
        .into_iter()
        .filter(|p| p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet")
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("web-"))
        })
        .collect()
}

const EXAMPLES: [&str; 3] = ["hello.yaml", "counter.yaml", "web-deployment.yaml"];

fn run_example(a: &Agent, args: &[&str]) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("sh");
    cmd.arg(root.join("scripts/run-example.sh"))
        .args(args)
        .env("PICOLET_BIN", BIN)
        .env("PICOLET_STATE_DIR", a.state())
        .env("PICOLET_RUN_DIR", a.run_dir())
        .env("PICOLET_MANIFESTS", a.manifests())
        .env("PICOLET_TEST_IMAGES", images())
        // Never the host's network (tests/net.rs tests the pod network in
        // namespaces of its own).
        .env("PICOLET_POD_NETWORK", "none");
    if let Some(cg) = &a.cgroup {
        cmd.env("PICOLET_CGROUP_ROOT", cg);
    }
    cmd.output().unwrap()
}

#[test]
fn stop_ends_only_the_example_pods_even_while_the_agent_is_down() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    let manifests = a.manifests();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in EXAMPLES {
        std::fs::copy(root.join("examples").join(f), manifests.join(f)).unwrap();
    }
    std::fs::write(
        manifests.join("mine.yaml"),
        sh_pod("mine", "Always", "sleep 1000"),
    )
    .unwrap();
    a.wait_running("hello", "web", 30);
    a.wait_running("counter", "count", 30);
    a.wait_running("mine", "main", 30);
    wait_for(30, "web's 3 pods running", || {
        let p = web_pods(&a);
        (p.len() == 3 && p.iter().all(|p| p["status"]["phase"] == "Running")).then_some(())
    });
    // Ctrl-C: the agent goes, the pods stay.
    a.kill9();
    assert!(!shims_of("hello").is_empty() && !shims_of("counter").is_empty());
    assert_eq!(shims_like("web-").len(), 3);

    let out = run_example(&a, &["--stop"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("the agent is not running"), "{text}");
    // The examples' manifests and pods are gone; the user's are not.
    assert!(!manifests.join("hello.yaml").exists());
    assert!(!manifests.join("counter.yaml").exists());
    assert!(manifests.join("mine.yaml").exists());
    assert!(shims_of("hello").is_empty(), "hello's shim still runs");
    assert!(shims_of("counter").is_empty(), "counter's shim still runs");
    assert!(
        shims_like("web-").is_empty(),
        "a shim of web's pods still runs"
    );
    assert!(!manifests.join("web-deployment.yaml").exists());
    assert_eq!(
        shims_of("mine").len(),
        1,
        "the user's pod must keep running"
    );
    // The agent it started is stopped again.
    assert!(a.cli(&["get", "pods"]).status.code() != Some(0));

    // With the agent running, --stop leaves it running.
    a.spawn();
    for f in EXAMPLES {
        std::fs::copy(root.join("examples").join(f), manifests.join(f)).unwrap();
    }
    a.wait_running("counter", "count", 30);
    wait_for(30, "web's 3 pods", || {
        (web_pods(&a).len() == 3).then_some(())
    });
    let out = run_example(&a, &["--stop"]);
    assert!(out.status.success());
    assert!(a.pod("counter").is_none() && a.pod("hello").is_none());
    assert!(
        web_pods(&a).is_empty(),
        "--stop returned before web's pods went"
    );
    assert!(a.pod("mine").is_some());
    // The Deployment alone: --stop waits for its pods (5 s of grace each,
    // their httpd ignores SIGTERM), not only for pods named as examples.
    std::fs::copy(
        root.join("examples/web-deployment.yaml"),
        manifests.join("web-deployment.yaml"),
    )
    .unwrap();
    wait_for(30, "web's 3 pods again", || {
        (web_pods(&a).len() == 3).then_some(())
    });
    let out = run_example(&a, &["--stop"]);
    assert!(out.status.success());
    assert!(
        web_pods(&a).is_empty(),
        "--stop returned before web's pods went"
    );
    std::fs::remove_file(manifests.join("mine.yaml")).unwrap();
    wait_for(20, "mine to stop", || a.pod("mine").is_none().then_some(()));
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `scripts/broker.sh [--tls]` in the background; killed on drop.
struct TryBroker(std::process::Child, tempfile::TempDir);

impl TryBroker {
    fn start(args: &[&str]) -> TryBroker {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let child = Command::new("sh")
            .arg(root.join("scripts/broker.sh"))
            .args(args)
            .env("PICOLET_BROKER_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        TryBroker(child, dir)
    }
    fn file(&self, name: &str) -> String {
        self.1.path().join(name).display().to_string()
    }
}

impl Drop for TryBroker {
    fn drop(&mut self) {
        // The script execs mosquitto: this is mosquitto's PID.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fleet_status(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["fleet", "status"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_broker_script_serves_plain_mqtt_and_mutual_tls_on_loopback() {
    if !root_or_skip() {
        return;
    }
    let port = free_port().to_string();
    let plain = TryBroker::start(&["--port", &port]);
    let url = format!("mqtt://127.0.0.1:{port}");
    let out = wait_for(10, "the plain broker", || {
        let o = fleet_status(&["--broker", &url]);
        o.status.success().then_some(o)
    });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("No devices"), "{said}");
    drop(plain);

    let port = free_port().to_string();
    let tls = TryBroker::start(&["--tls", "--port", &port]);
    let url = format!("mqtts://localhost:{port}");
    let (ca, cert, key) = (
        tls.file("ca.pem"),
        tls.file("device.pem"),
        tls.file("device.key"),
    );
    wait_for(20, "the TLS broker", || {
        let o = fleet_status(&[
            "--broker", &url, "--ca", &ca, "--cert", &cert, "--key", &key,
        ]);
        o.status.success().then_some(())
    });
    // Without the client certificate the broker refuses (mutual TLS).
    let o = fleet_status(&["--broker", &url, "--ca", &ca]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("CertificateRequired"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
