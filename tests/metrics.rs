//! Resource metrics with a real agent: `picolet top`, the Prometheus
//! endpoint (checked by `promtool check metrics`), figures against the
//! cgroup files. This host's cgroup v2 has no memory controller (hybrid
//! v1/v2): memory is `<unknown>` here and its series are absent; the QEMU
//! test (scripts/qemu-e2e.sh) checks real memory figures.

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `request` raw and returns the whole response.
fn http(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8(out).unwrap()
}

fn scrape(port: u16) -> String {
    let r = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// The value of the series `name{labels}` in `text`.
fn value(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.parse().unwrap())
}

/// The cgroup of pod `name` (`pod<uid>` under the agent's root).
fn pod_cgroup(a: &Agent, name: &str) -> PathBuf {
    let uid = a.pod(name).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    a.cgroup.as_ref().unwrap().join(format!("pod{uid}"))
}

fn usage_usec(cg: &Path) -> u64 {
    let t = std::fs::read_to_string(cg.join("cpu.stat")).unwrap();
    t.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .unwrap()
        .parse()
        .unwrap()
}

const TWO: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: busy
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: spin
    image: picolet.test/busybox:1
    command: ["sh", "-c", "while :; do :; done"]
  - name: idle
    image: picolet.test/busybox:1
    command: ["sleep", "3600"]
"#;

#[test]
fn top_and_the_prometheus_endpoint_show_the_cgroup_figures() {
    if !root_or_skip() {
        return;
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let a = Agent::start_with(&["--metrics-interval", "1", "--metrics-addr", &addr]);
    a.apply("busy.yaml", TWO);
    a.wait_running("busy", "spin", 60);
    a.wait_running("busy", "idle", 60);
    let cg = pod_cgroup(&a, "busy");
    // Two samples with both containers running: CPU is known.
    let out = wait_for(30, "top with both containers", || {
        let o = a.cli(&["top", "pod", "busy", "--containers"]);
        let t = String::from_utf8(o.stdout).unwrap();
        (o.status.success() && t.lines().count() == 3).then_some(t)
    });
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        "{out}"
    );
    assert!(
        out.starts_with("POD    NAME   CPU(cores)   MEMORY(bytes)\n"),
        "{out:?}"
    );
    let cpu = |name: &str| -> u64 {
        let l = lines.iter().find(|l| l[1] == name).unwrap();
        assert_eq!(l[0], "busy");
        // No memory controller in this host's cgroup v2.
        assert_eq!(l[3], "<unknown>", "{out}");
        l[2].strip_suffix('m').unwrap().parse().unwrap()
    };
    // A spinning shell uses a good part of a core (the host is shared);
    // a sleeping one none.
    assert!(cpu("spin") >= 100, "{out}");
    assert_eq!(cpu("idle"), 0, "{out}");
    let pods = String::from_utf8(a.cli(&["top", "pods"]).stdout).unwrap();
    let row: Vec<&str> = pods.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        pods.lines().next().unwrap(),
        "NAME   CPU(cores)   MEMORY(bytes)"
    );
    assert_eq!(row[0], "busy");
    assert!(row[1].ends_with('m') && row[2] == "<unknown>", "{pods}");
    let all = String::from_utf8(a.cli(&["top", "pods", "-A"]).stdout).unwrap();
    assert!(all.starts_with("NAMESPACE   NAME   CPU(cores)"), "{all}");
    // kubectl's answers for a missing pod and an empty namespace.
    let o = a.cli(&["top", "pod", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let o = a.cli(&["top", "pods", "-n", "empty"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "No resources found in empty namespace.\n"
    );

    // The endpoint: cAdvisor's names and labels, the files' values.
    let text = scrape(port);
    let labels = |c: &str| format!("namespace=\"default\",pod=\"busy\",container=\"{c}\"");
    // The idle container's counter does not move: it is the file's.
    let idle = usage_usec(&cg.join("idle"));
    let got = value(&text, "container_cpu_usage_seconds_total", &labels("idle")).unwrap();
    assert_eq!((got * 1e6).round() as u64, idle, "{text}");
    let spin = value(&text, "container_cpu_usage_seconds_total", &labels("spin")).unwrap();
    let spin_now = usage_usec(&cg.join("spin")) as f64 / 1e6;
    assert!(spin > 0.0 && spin <= spin_now, "{spin} {spin_now}");
    // The pod's own cgroup, as cAdvisor: container="".
    assert!(value(&text, "container_cpu_usage_seconds_total", &labels("")).unwrap() >= spin);
    // No memory controller: no memory series, never a 0.
    assert!(
        !text.contains("container_memory_working_set_bytes"),
        "{text}"
    );
    assert!(!text.contains("container_oom_events_total"), "{text}");
    let rss = value(&text, "process_resident_memory_bytes", "");
    assert!(rss.is_none(), "a bare name has no braces");
    let rss: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss > 500e3 && rss < 64e6, "{rss}");
    assert!(
        !text.contains("picolet_fleet_connected"),
        "no broker: {text}"
    );
    promtool_check(&text);

    // Anything but GET /metrics is 404; an over-long head is 400.
    let r = http(port, b"GET / HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    let r = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
    let r = http(port, b"GET /metrics\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    let r = http(port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 5000));
    let r = http(port, &big);
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    // Still served after all that, by the one thread.
    scrape(port);
    a.assert_one_thread();
}

/// `promtool check metrics` on `text`: exit 0 and no complaint.
fn promtool_check(text: &str) {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = p.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

#[test]
fn top_says_when_metrics_are_not_available_yet_or_off() {
    if !root_or_skip() {
        return;
    }
    // One sample at start (no pod yet), the next in an hour.
    let a = Agent::start_with(&["--metrics-interval", "3600"]);
    a.apply("s.yaml", &sh_pod("s", "Always", "sleep 3600"));
    a.wait_running("s", "main", 60);
    let o = a.cli(&["top", "pod", "s"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: metrics not available yet\n"
    );
    let off = Agent::start_with(&["--metrics-interval", "0"]);
    let o = off.cli(&["top", "pods"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("metrics are off"),
        "{o:?}"
    );
}

#[test]
fn a_bad_metrics_address_is_refused_naming_the_flag() {
    let o = Command::new(BIN)
        .args([
            "agent",
            "--config",
            "/dev/null",
            "--metrics-addr",
            "localhost:9100",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--metrics-addr: \"localhost:9100\""), "{e}");
}

#[test]
fn the_fleet_status_carries_each_pods_usage_and_a_steady_device_publishes_nothing() {
    if !root_or_skip() {
        return;
    }
    use support::fleet::{fleet_agent, plain_broker, url, wait_status};
    let Some(b) = plain_broker() else {
        assert!(
            std::env::var_os("PICOLET_REQUIRE_ROOT").is_none(),
            "mosquitto is needed"
        );
        return;
    };
    let url = url(&b, 0);
    let a = fleet_agent(&url, "metrics-1", &["--metrics-interval", "1"]);
    // A few millicores, never the same two rounds running.
    a.apply(
        "w.yaml",
        &sh_pod(
            "ticker",
            "Always",
            "while :; do sleep 0.2; echo x > /dev/null; done",
        ),
    );
    let ticker = |s: &serde_json::Value| {
        s["pods"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["metadata"]["name"] == "ticker"))
            .cloned()
    };
    let st = wait_status(
        &url,
        "metrics-1",
        60,
        "the pod's usage in the status",
        |s| ticker(s).is_some_and(|p| p["usage"]["cpuMilli"].is_u64()),
    );
    let usage = ticker(&st).unwrap()["usage"].clone();
    // No memory controller on this host: no memBytes at all, never a 0.
    assert!(usage.get("memBytes").is_none(), "{usage}");
    assert!(usage["cpuMilli"].as_u64().unwrap() < 100, "{usage}");
    // Steady: rounds every second, but no status published for 6 s.
    let opts = picolet::controller::client::ClientOptions::new(
        picolet::fleet::transport::BrokerUrl::parse(&url).unwrap(),
    );
    let published = picolet::reactor::block_on(async {
        let t = std::time::Duration::from_secs(10);
        let mut c = picolet::controller::client::Client::connect(&opts, t)
            .await
            .unwrap();
        c.subscribe(vec!["picolet/devices/metrics-1/status".into()]);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(6);
        let mut n = Vec::new();
        while let Some(m) = c.next_message(end).await.unwrap() {
            if !m.retained {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                n.push(ticker(&v).unwrap()["usage"].to_string());
            }
        }
        c.disconnect().await;
        n
    });
    assert!(
        published.is_empty(),
        "a steady device published: {published:?}"
    );
}
