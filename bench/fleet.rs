//! The fleet channel's budgets (issue 3), on a loopback mosquitto, as root:
//!
//!     cargo bench --bench fleet
//!
//! - desired published → both containers of a 2-container pod exec'd
//!   (first output line, timestamped by the shim), p50/p90 over N runs
//!   (budget p50 ≤ 100 ms). The agent talks mTLS to the broker; the
//!   controller publishes over a plain listener of the same broker.
//! - agent RSS with the TLS connection up, idle (budget ≤ 5 MiB);
//! - threads (must be 1);
//! - an idle window with a 2 s keepalive: bytes written under the state
//!   dir (files changed and the agent's write_bytes, budget 0) and
//!   messages the agent published (status unchanged: budget 0).
//!
//! Env: PICOLET_BENCH_RUNS (default 20), PICOLET_BENCH_IDLE_SECS (default 20).

#[path = "../src/fleet/test_broker.rs"]
#[allow(dead_code)]
mod test_broker;

mod common;
use common::{env_num, first_line_ns, percentile, proc_field, remove_tree, wait_for};
use picolet::controller::client::{Client, ClientOptions};
use picolet::fleet::transport::BrokerUrl;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_broker::{Broker, Pki};

const BIN: &str = env!("CARGO_BIN_EXE_picolet");

/// VmRSS, and what it is made of: anonymous memory (heap, stacks) and
/// file pages (the binary's text and the shared libraries).
fn rss(pid: u32) -> String {
    let f = |k| proc_field(pid, "status", k);
    format!(
        "{} KiB (anonymous {} KiB, file-backed {} KiB)",
        f("VmRSS:"),
        f("RssAnon:"),
        f("RssFile:")
    )
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn snapshot(dir: &Path, out: &mut Vec<(PathBuf, u64, i64)>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            snapshot(&e.path(), out);
        } else if m.is_file() {
            out.push((
                e.path(),
                m.len(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ));
        }
    }
}

fn doc(revision: u64, pod: Option<(&str, &str)>) -> Vec<u8> {
    let pods: Vec<serde_json::Value> = pod
        .map(|(name, uid)| {
            let c = |n: &str| {
                serde_json::json!({"name": n, "image": "picolet.test/busybox:1",
                    "command": ["sh", "-c", "echo up; exec sleep 100000"]})
            };
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "uid": uid},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [c("a"), c("b")]}})
        })
        .into_iter()
        .collect();
    serde_json::to_vec(&serde_json::json!({"apiVersion": "picolet.io/v1",
        "kind": "DeviceState", "revision": revision, "pods": pods}))
    .unwrap()
}

struct Guard {
    agent: Option<Child>,
    dir: PathBuf,
    cgroup: Option<PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
            let _ = a.wait();
        }
        if let Ok(rd) = std::fs::read_dir(self.dir.join("state/pods")) {
            for e in rd.flatten() {
                use std::io::{Read, Write};
                if let Ok(mut s) =
                    std::os::unix::net::UnixStream::connect(e.path().join("shim.sock"))
                {
                    let _ = s.write_all(b"\"Shutdown\"\n");
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.read_to_end(&mut Vec::new());
                }
            }
        }
        if let Some(cg) = &self.cgroup {
            remove_tree(cg);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !picolet::sys::process::is_root() {
        eprintln!("the fleet benchmark needs root (namespaces, mounts)");
        std::process::exit(1);
    }
    let runs = env_num("PICOLET_BENCH_RUNS", 20) as usize;
    let idle_secs = env_num("PICOLET_BENCH_IDLE_SECS", 20);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let images = std::env::var_os("PICOLET_TEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/images"));
    if !images.join("busybox-oci").exists() {
        let st = Command::new("sh")
            .arg(root.join("tests/images/build-busybox.sh"))
            .arg(&images)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let dir = std::env::temp_dir().join(format!("picolet-bench-fleet-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("pki")).unwrap();
    let pki = Pki::generate(&dir.join("pki")).expect("openssl is needed");
    let broker = Broker::start(&[&pki.listener("server", true), ""]).expect("mosquitto is needed");
    let cg = Path::new("/sys/fs/cgroup/unified");
    let cgroup = cg
        .join("cgroup.procs")
        .exists()
        .then(|| cg.join(format!("picolet-bench-fleet-{}", std::process::id())));
    if let Some(c) = &cgroup {
        std::fs::create_dir_all(c).unwrap();
    }
    let mut g = Guard {
        agent: None,
        dir: dir.clone(),
        cgroup: cgroup.clone(),
    };
    let state = dir.join("state");
    let out = Command::new(BIN)
        .args(["image", "import"])
        .arg(images.join("busybox-oci"))
        .env("PICOLET_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls_url = format!("mqtts://127.0.0.1:{}", broker.ports[0]);
    let mut cmd = Command::new(BIN);
    cmd.args(["agent", "--config", "/dev/null", "--node-name", "bench"])
        .args([
            "--broker",
            &tls_url,
            "--device-id",
            "bench",
            "--keepalive",
            "2",
        ])
        .arg("--ca")
        .arg(pki.path("ca.crt"))
        .arg("--cert")
        .arg(pki.path("client.crt"))
        .arg("--key")
        .arg(pki.path("client.key"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log")).unwrap());
    if let Some(c) = &cgroup {
        cmd.arg("--cgroup-root").arg(c);
    }
    g.agent = Some(cmd.spawn().unwrap());
    let pid = g.agent.as_ref().unwrap().id();
    let log = || std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    wait_for(20, "the agent's TLS connection", || {
        log().contains("(TLS) as device bench").then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "binary: {BIN} ({} KiB)",
        std::fs::metadata(BIN).unwrap().len() / 1024
    );
    println!(
        "agent RSS, TLS connection up, no pods: {} (budget 5120); threads {}",
        rss(pid),
        threads(pid)
    );

    let opts = ClientOptions::new(
        BrokerUrl::parse(&format!("mqtt://127.0.0.1:{}", broker.ports[1])).unwrap(),
    );
    let topic = "picolet/devices/bench/desired";
    let mut lat = Vec::new();
    let mut thread_max = 0;
    picolet::reactor::block_on(async {
        let mut c = Client::connect(&opts, Duration::from_secs(10))
            .await
            .unwrap();
        let mut revision = 0;
        for i in 0..runs {
            let (name, uid) = (
                format!("run{i}"),
                format!("00000000-0000-4000-8000-{i:012}"),
            );
            revision += 1;
            let t0 = picolet::clock::wall_ns();
            c.publish(
                topic,
                doc(revision, Some((&name, &uid))),
                true,
                Duration::from_secs(10),
            )
            .await
            .unwrap();
            let logs = dir.join("run/logs").join(format!("default_{name}_{uid}"));
            let (a, b) = wait_for(20, "both containers' first output", || {
                Some((
                    first_line_ns(&logs.join("a"))?,
                    first_line_ns(&logs.join("b"))?,
                ))
            });
            lat.push((a.max(b) - t0) as f64 / 1e6);
            thread_max = thread_max.max(threads(pid));
            revision += 1;
            c.publish(topic, doc(revision, None), true, Duration::from_secs(10))
                .await
                .unwrap();
            let pod_dir = state.join("pods").join(&uid);
            wait_for(30, "pod removed", || (!pod_dir.exists()).then_some(()));
        }
        c.disconnect().await;
    });
    let p50 = percentile(&mut lat, 0.5);
    let p90 = percentile(&mut lat, 0.9);
    println!(
        "desired published → 2 containers exec'd (agent on mTLS), {runs} runs: p50 {p50:.1} ms, p90 {p90:.1} ms (budget p50 ≤ 100 ms)"
    );
    println!("agent threads during the runs: at most {thread_max} (must be 1)");
    std::thread::sleep(Duration::from_secs(2));

    // Idle window: keepalives only.
    let mut before = Vec::new();
    snapshot(&state, &mut before);
    let wb0 = proc_field(pid, "io", "write_bytes:");
    let rss = rss(pid);
    let connects = log().matches("fleet: connected to").count();
    let published = picolet::reactor::block_on(async {
        let mut c = Client::connect(&opts, Duration::from_secs(10))
            .await
            .unwrap();
        c.subscribe(vec![
            "picolet/devices/bench/status".into(),
            "picolet/devices/bench/events".into(),
            "picolet/devices/bench/online".into(),
        ]);
        let end = Instant::now() + Duration::from_secs(idle_secs);
        let mut n = 0;
        while let Some(m) = c.next_message(end).await.unwrap() {
            if !m.retained {
                n += 1;
            }
        }
        c.disconnect().await;
        n
    });
    let mut after = Vec::new();
    snapshot(&state, &mut after);
    let changed = after.iter().filter(|f| !before.contains(f)).count();
    let wb = proc_field(pid, "io", "write_bytes:") - wb0;
    println!("agent RSS after the runs, TLS up, idle: {rss} (budget 5120)");
    println!(
        "idle {idle_secs} s, keepalive 2 s: {changed} files changed under the state dir, agent write_bytes {wb} (budget 0); {published} messages published by the agent (budget 0); reconnects {}",
        log().matches("fleet: connected to").count() - connects
    );
    println!("agent threads: {} (must be 1)", threads(pid));
    drop(g);
    drop(broker);
}
