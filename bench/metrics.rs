//! Resource metrics' budgets (issue 14), as root:
//!
//!     cargo bench --bench metrics
//!
//! - one sampling round over 50 pods' cgroups (pod + container: 100
//!   cgroups, 5 files each), timed in this process with the agent's own
//!   reader (median of 20 rounds), and what that is at the default 30 s
//!   interval (budget ≤ 0.1 % of a core);
//! - the agent's CPU (`/proc/PID/schedstat`, ns) over a window with 50
//!   idle pods, metrics off (`--metrics-interval 0`) then every second
//!   (`--metrics-interval 1`, the same pods adopted by a restarted agent):
//!   the difference per round, and what it is at 30 s;
//! - the agent's RSS, metrics off and on (budget: +64 KiB);
//! - MQTT bytes a steady device with 5 pods sends and receives, metrics
//!   off and at the default interval, keepalives included (payload bytes
//!   of the agent's TCP connection to a loopback mosquitto, from `ss`;
//!   budget ≤ 20 KB/h).
//!
//! Env: PICOLET_BENCH_CPU_SECS (default 60), PICOLET_BENCH_MQTT_SECS
//! (default 300).

#[path = "../src/fleet/test_broker.rs"]
#[allow(dead_code)]
mod test_broker;

mod common;
use common::{Env, env_num, status_field, wait_for};
use std::process::Command;
use std::time::{Duration, Instant};

fn pod(i: usize, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: m{i}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: picolet.test/busybox:1\n    command: [\"sh\", \"-c\", {script:?}]\n"
    )
}

/// ns the process has run on a CPU.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn running(env: &Env, n: usize) {
    wait_for(300, "all pods running", || {
        let pods = env.pods();
        (pods.len() == n && pods.iter().all(|p| p["status"]["phase"] == "Running")).then_some(())
    });
}

/// Stops the agent (its pods keep running) and starts it with the
/// `--metrics-interval` `secs` (adopting them).
fn restart_with(env: &mut Env, secs: u64) {
    if let Some(mut a) = env.agent.take() {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
        let _ = a.wait();
    }
    env.args.retain(|a| !a.starts_with("--metrics-interval="));
    env.args.push(format!("--metrics-interval={secs}"));
    env.restart();
}

/// (ms on CPU over `secs`, [VmRSS, RssAnon, RssFile] KiB at the end).
fn window(env: &Env, secs: u64) -> (f64, [u64; 3]) {
    let pid = env.agent_pid();
    let c0 = cpu_ns(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let rss = ["VmRSS:", "RssAnon:", "RssFile:"].map(|k| status_field(pid, k));
    ((cpu_ns(pid) - c0) as f64 / 1e6, rss)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !picolet::sys::process::is_root() {
        eprintln!("the metrics benchmark needs root (namespaces, mounts)");
        std::process::exit(1);
    }
    let cpu_secs = env_num("PICOLET_BENCH_CPU_SECS", 60);
    let mqtt_secs = env_num("PICOLET_BENCH_MQTT_SECS", 300);
    cpu_and_rss(cpu_secs);
    mqtt_bytes(mqtt_secs);
}

/// No node-pressure eviction: the free space of the disk running the bench
/// is not what it is about (as in tests/support).
const NO_EVICTION: [&str; 2] = [
    "--eviction-nodefs-available=0",
    "--eviction-imagefs-available=0",
];

fn cpu_and_rss(secs: u64) {
    let n = 50;
    let mut env = Env::start(
        "metrics",
        &[NO_EVICTION[0], NO_EVICTION[1], "--metrics-interval=0"],
    );
    for i in 0..n {
        std::fs::write(
            env.manifests().join(format!("m{i}.yaml")),
            pod(i, "exec sleep 100000"),
        )
        .unwrap();
    }
    running(&env, n);

    // One round, in this process, with the agent's reader.
    let root = env.cgroup.clone().expect("a cgroup v2 root");
    let cgroups: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("pod"))
        .collect();
    let mut reader = picolet::metrics::read::Reader::default();
    let mut core = picolet::metrics::Metrics::default();
    let mut times = Vec::new();
    for r in 0..21 {
        let t = Instant::now();
        core.begin(r * 1000);
        for cg in &cgroups {
            let uid = cg.file_name().unwrap().to_str().unwrap();
            core.record(uid, "", reader.sample(cg, ""));
            core.record(uid, "main", reader.sample(cg, "main"));
        }
        core.end();
        core.publish(r * 1000, 1000);
        if r > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let one = common::percentile(&mut times, 0.5);
    println!(
        "one round over {} pods ({} cgroups × 5 files), in-process: median {one:.2} ms → {:.4} % of a core at 30 s (budget 0.1 %)",
        cgroups.len(),
        cgroups.len() * 2,
        one / 30_000.0 * 100.0
    );

    restart_with(&mut env, 0);
    std::thread::sleep(Duration::from_secs(5));
    let (off, rss_off) = window(&env, secs);
    restart_with(&mut env, 1);
    std::thread::sleep(Duration::from_secs(5));
    let (on, rss_on) = window(&env, secs);
    let per_round = (on - off) / secs as f64;
    println!(
        "agent CPU over {secs} s with {n} idle pods: metrics off {off:.1} ms, every 1 s {on:.1} ms → {per_round:.2} ms per round → {:.4} % of a core at the default 30 s (budget 0.1 %)",
        per_round / 30_000.0 * 100.0
    );
    let d = |i: usize| rss_on[i] as i64 - rss_off[i] as i64;
    println!(
        "agent RSS with {n} pods: metrics off {} KiB (anon {}, file {}), on {} KiB (anon {}, file {}): {:+} KiB, of which anonymous (heap, stacks) {:+} KiB and file-backed (the binary's text paged in) {:+} KiB (budget +64 KiB)",
        rss_off[0],
        rss_off[1],
        rss_off[2],
        rss_on[0],
        rss_on[1],
        rss_on[2],
        d(0),
        d(1),
        d(2)
    );
    let top = env.cli(&["top", "pods"]);
    let rows = String::from_utf8_lossy(&top.stdout)
        .lines()
        .count()
        .saturating_sub(1);
    println!("picolet top pods: {rows} pods with figures (of {n})");
}

/// (bytes the agent sent, bytes it received) on its connection to `port`.
fn tcp_bytes(port: u16) -> (u64, u64) {
    let out = Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("bytes_acked:"), field("bytes_received:"))
}

fn mqtt_bytes(secs: u64) {
    let broker = test_broker::Broker::start(&[""]).expect("mosquitto is needed");
    let port = broker.ports[0];
    for interval in [0, 30] {
        let url = format!("--broker=mqtt://127.0.0.1:{port}");
        let iv = format!("--metrics-interval={interval}");
        let args = [
            NO_EVICTION[0],
            NO_EVICTION[1],
            &url,
            "--device-id=steady",
            &iv,
        ];
        let env = Env::start("mqtt", &args);
        for i in 0..5 {
            // A little work each second (a few millicores, moving).
            std::fs::write(
                env.manifests().join(format!("m{i}.yaml")),
                pod(i, "while :; do sleep 1; echo x > /dev/null; done"),
            )
            .unwrap();
        }
        running(&env, 5);
        // Past the first two rounds (the first published usage).
        std::thread::sleep(Duration::from_secs(if interval > 0 {
            2 * interval + 5
        } else {
            10
        }));
        let (s0, r0) = tcp_bytes(port);
        std::thread::sleep(Duration::from_secs(secs));
        let (s1, r1) = tcp_bytes(port);
        let per_h = |b: u64| b as f64 * 3600.0 / secs as f64;
        println!(
            "steady device, 5 pods, metrics {}: over {secs} s sent {} B, received {} B → {:.0} B/h sent + {:.0} B/h received (budget 20 KB/h)",
            if interval == 0 {
                "off".to_string()
            } else {
                format!("every {interval} s")
            },
            s1 - s0,
            r1 - r0,
            per_h(s1 - s0),
            per_h(r1 - r0),
        );
        drop(env);
    }
    drop(broker);
}
