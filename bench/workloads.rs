//! Workload controllers' budgets (issue 13), as printed figures: 10
//! Deployments × 3 replicas from the manifests directory — time to all
//! available, agent RSS (budget ≤ 6 MiB on x86), idle CPU (≤ 0.3 %), the
//! state file's size (≤ 64 KiB) and its writes at steady state (none) —
//! and one rolling update. There is no single-node peer with Deployments
//! (docs: PEERS.md); the published peers' resident sizes are printed as
//! ratios. As root: `cargo bench --bench workloads`.

#[path = "common.rs"]
mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn deployment(i: usize, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: d{i}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: d{i}}}
  template:
    metadata:
      labels: {{app: d{i}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: picolet.test/busybox:1
        command: ["sh", "-c", "echo {version}; exec sleep 100000"]
"#
    )
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn io_write_bytes(pid: u32) -> u64 {
    proc_field(pid, "io", "write_bytes:")
}

/// `get deployments -o json` items.
fn deployments(env: &Env) -> Vec<serde_json::Value> {
    let out = env.cli(&["get", "deployments", "-o", "json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn all_available(env: &Env, n: usize) -> bool {
    let d = deployments(env);
    d.len() == n
        && d.iter().all(|d| {
            d["status"]["availableReplicas"] == 3
                && d["status"]["updatedReplicas"] == 3
                && d["status"]["replicas"] == 3
        })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !picolet::sys::process::is_root() {
        eprintln!("the workloads benchmark needs root (namespaces, mounts)");
        std::process::exit(1);
    }
    let n = env_num("PICOLET_BENCH_DEPLOYMENTS", 10) as usize;
    let idle_secs = env_num("PICOLET_BENCH_IDLE_SECS", 60);
    let env = Env::start("workloads", &[]);
    let pid = env.agent_pid();
    println!(
        "binary: {} ({} KiB)",
        bin(),
        std::fs::metadata(bin()).unwrap().len() / 1024
    );
    let rss_idle = status_field(pid, "VmRSS:");
    println!("agent RSS idle, no workloads: {rss_idle} KiB");

    let t = Instant::now();
    for i in 0..n {
        std::fs::write(
            env.manifests().join(format!("d{i}.yaml")),
            deployment(i, "v1"),
        )
        .unwrap();
    }
    wait_for(300, "every Deployment available", || {
        all_available(&env, n).then_some(())
    });
    println!(
        "{n} Deployments × 3 replicas available in {:.1} s ({} pods)",
        t.elapsed().as_secs_f64(),
        env.pods().len()
    );
    std::thread::sleep(Duration::from_secs(3));
    let rss = status_field(pid, "VmRSS:");
    let state = std::fs::metadata(env.state().join("state.bin"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("agent RSS with {n} × 3: {rss} KiB (budget 6144)");
    println!(
        "  vs published peers: Greengrass nucleus lite 12.3 MB PSS ({:.1}× ours), k3s agent 268 MB ({:.0}× ours)",
        12.3e6 / (rss as f64 * 1024.0),
        268e6 / (rss as f64 * 1024.0)
    );
    println!("state file: {state} bytes (budget 65536)");
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    println!("agent threads: {threads} (must be 1)");

    // Idle: CPU and writes.
    let before = state_stamp(&env.state());
    let wb0 = io_write_bytes(pid);
    let cpu0 = cpu_ticks(pid);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let secs = t.elapsed().as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / hz / secs * 100.0;
    let wb = io_write_bytes(pid) - wb0;
    println!(
        "idle {secs:.0} s with {n} × 3: agent CPU {cpu:.2} % of a core (budget 0.3); state file {} ; agent write_bytes {wb} (budget 0)",
        if state_stamp(&env.state()) == before {
            "not written"
        } else {
            "WRITTEN"
        }
    );

    // One rolling update (maxSurge/maxUnavailable 25 %: 1 and 0 of 3):
    // from the file written to every pod of the new template running and
    // the old ones gone.
    let hash_of = |p: &serde_json::Value| {
        p["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let d0_pods = |env: &Env| -> Vec<serde_json::Value> {
        env.pods()
            .into_iter()
            .filter(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("d0-")
            })
            .collect()
    };
    let old_hash = hash_of(&d0_pods(&env)[0]);
    let t = Instant::now();
    std::fs::write(env.manifests().join("d0.yaml"), deployment(0, "v2")).unwrap();
    wait_for(120, "d0 rolled out", || {
        let pods = d0_pods(&env);
        let new_running = pods
            .iter()
            .filter(|p| hash_of(p) != old_hash && p["status"]["phase"] == "Running")
            .count();
        (new_running == 3 && pods.iter().all(|p| hash_of(p) != old_hash)).then_some(())
    });
    println!(
        "rolling update of one Deployment (3 replicas, surge 1, unavailable 0) complete in {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

/// The state file's size and mtime.
fn state_stamp(state: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(state.join("state.bin")).ok()?;
    Some((m.len(), m.modified().ok()?))
}
