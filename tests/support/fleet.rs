//! Fleet test support: a real mosquitto on free loopback ports and a test
//! PKI (both from `src/fleet/test_broker.rs`), agents with `--broker`, the
//! controller commands, and raw publishes through the library's client.
//!
//! When mosquitto or openssl is missing, tests print SKIP and return, or
//! panic when `PICOLET_REQUIRE_ROOT` is set (CI).

#[path = "../../src/fleet/test_broker.rs"]
mod test_broker;

pub(crate) use test_broker::{Broker, Pki};

use super::{Agent, BIN, IMAGE, wait_for};
use picolet::controller::client::{Client, ClientOptions};
use picolet::fleet::transport::{BrokerUrl, TlsSettings};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

/// A plain-MQTT broker, or `None` (test skipped).
pub fn plain_broker() -> Option<Broker> {
    Broker::start(&[""])
}

pub fn url(b: &Broker, listener: usize) -> String {
    format!("mqtt://127.0.0.1:{}", b.ports[listener])
}

/// An agent of device `device` on broker `url`, with a short keepalive.
pub fn fleet_agent(url: &str, device: &str, extra: &[&str]) -> Agent {
    let mut args = vec!["--broker", url, "--device-id", device, "--keepalive", "2"];
    args.extend_from_slice(extra);
    Agent::start_with(&args)
}

/// Runs `picolet ARGS` (a controller command).
pub fn ctl(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

/// Writes pod manifests into the agent's dir (not the watched manifests
/// dir) and returns the file's path.
pub fn manifest(a: &Agent, file: &str, yaml: &str) -> String {
    let p = a.dir.path().join(file);
    std::fs::write(&p, yaml).unwrap();
    p.display().to_string()
}

/// A pod that prints a line and sleeps.
pub fn sleeper(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "echo up; exec sleep 100000"]
"#
    )
}

/// `picolet apply -f FILE --device|--group TARGET --broker URL EXTRA…`.
pub fn apply(url: &str, target: (&str, &str), files: &[&str], extra: &[&str]) -> Output {
    let mut args = vec!["apply", target.0, target.1, "--broker", url];
    for f in files {
        args.extend(["-f", f]);
    }
    args.extend_from_slice(extra);
    ctl(&args)
}

/// Asserts that a command succeeded and returns its output.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "command failed: {}", text(&o));
    text(&o)
}

/// `picolet fleet status --device ID -o json`: the device's entry.
pub fn device_entry(url: &str, device: &str) -> Option<Value> {
    let o = ctl(&[
        "fleet", "status", "--device", device, "--broker", url, "-o", "json",
    ]);
    if !o.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&o.stdout).ok()?;
    v.as_array()?
        .iter()
        .find(|e| e["device"] == device)
        .cloned()
}

/// Waits until the device's retained status satisfies `pred`.
pub fn wait_status(
    url: &str,
    device: &str,
    secs: u64,
    what: &str,
    mut pred: impl FnMut(&Value) -> bool,
) -> Value {
    wait_for(secs, what, || {
        let e = device_entry(url, device)?;
        pred(&e["status"]).then_some(e["status"].clone())
    })
}

/// The device's status errors about `topic`, as (reason, message).
pub fn errors_on(status: &Value, topic: &str) -> Vec<(String, String)> {
    status["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["topic"] == topic)
                .map(|e| {
                    (
                        e["reason"].as_str().unwrap_or("").to_string(),
                        e["message"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Publishes `payload` (retained, QoS 1) as another controller would.
pub fn publish_raw(url: &str, topic: &str, payload: Vec<u8>) {
    publish_many(url, vec![(topic.to_string(), payload, true)]);
}

/// Publishes each (topic, payload, retain) with QoS 1 over one
/// connection, in order, each acknowledged by the broker before the next.
pub fn publish_many(url: &str, messages: Vec<(String, Vec<u8>, bool)>) {
    let opts = ClientOptions::new(BrokerUrl::parse(url).unwrap());
    picolet::reactor::block_on(async {
        let mut c = Client::connect(&opts, Duration::from_secs(10))
            .await
            .unwrap();
        for (topic, payload, retain) in messages {
            c.publish(&topic, payload, retain, Duration::from_secs(10))
                .await
                .unwrap();
        }
        c.disconnect().await;
    });
}

/// The retained message on `topic` (read after a sync barrier), if any.
pub fn retained(url: &str, topic: &str) -> Option<Vec<u8>> {
    let opts = ClientOptions::new(BrokerUrl::parse(url).unwrap());
    picolet::reactor::block_on(async {
        let limit = Duration::from_secs(10);
        let mut c = Client::connect(&opts, limit).await.unwrap();
        c.subscribe(vec![topic.to_string()]);
        c.sync("picolet", limit).await.unwrap();
        let mut found = None;
        while let Some(m) = c.next_message(std::time::Instant::now()).await.unwrap() {
            if m.topic == topic && !m.payload.is_empty() {
                found = Some(m.payload);
            }
        }
        c.disconnect().await;
        found
    })
}

/// mosquitto's own limits, written out: no payload limit
/// (`message_size_limit 0` is mosquitto's default: any payload MQTT can
/// carry, up to 256 MiB, is delivered) and no cap on the messages queued
/// for a client (the default, 1,000, would drop some of a flood).
pub const UNLIMITED_BROKER: &str = "message_size_limit 0\nmax_queued_messages 0\n";

/// The process's peak resident set (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kb * 1024
}

/// TLS files of the test PKI: the right CA, or `other-ca.crt`.
pub fn mtls_args(pki: &Pki, ca: &str) -> Vec<String> {
    [
        ("--ca", ca),
        ("--cert", "client.crt"),
        ("--key", "client.key"),
    ]
    .iter()
    .flat_map(|(flag, file)| [flag.to_string(), pki.path(file).display().to_string()])
    .collect()
}

/// TLS settings for the library client.
pub fn mtls_settings(pki: &Pki) -> TlsSettings {
    TlsSettings {
        ca_file: Some(pki.path("ca.crt")),
        client_cert: Some(pki.path("client.crt")),
        client_key: Some(pki.path("client.key")),
    }
}

/// `startedAt` of the pod's only container, once it runs.
pub fn started_at(a: &Agent, pod: &str) -> String {
    let s = a.wait_running(pod, "main", 30);
    s["state"]["running"]["startedAt"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Asserts the pod still runs the same container instance.
pub fn assert_untouched(a: &Agent, pod: &str, started: &str) {
    let s = a.container(pod, "main").expect("pod is gone");
    assert_eq!(
        s["state"]["running"]["startedAt"].as_str(),
        Some(started),
        "pod {pod} was restarted: {s}"
    );
    assert_eq!(s["restartCount"], 0, "{s}");
}
