//! The agent's budgets, measured on real pods (run as root):
//!
//!     cargo bench --bench agent            (or bench/run.sh)
//!
//! - pod start: manifest written → both containers of a 2-container pod
//!   exec'd (first output line, timestamped by the shim), p50/p90 over N runs;
//!   podman (pod create + 2 × run -d) in the same run, and the ratio;
//! - pod removal: manifest deleted → pod gone;
//! - agent RSS idle and with 50 pods, shim RSS, threads;
//! - with 50 pods probed every 10 s: agent and shim CPU, and bytes written
//!   under the state dir during an idle window.
//!
//! Env: PICOLET_BENCH_RUNS (default 20), PICOLET_BENCH_IDLE_SECS (default 60),
//! PICOLET_BENCH_PODS (default 50), PICOLET_BENCH_PODMAN=0 to skip podman.

mod common;
use common::{
    Env, Podman, bin, env_num, first_line_ns, percentile, proc_field, shim_pids, status_field,
    wait_for,
};
use std::path::Path;
use std::time::{Duration, Instant};

fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn io_write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("write_bytes:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn two_container_pod(name: &str, uid: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, uid: {uid}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: a
    image: picolet.test/busybox:1
    command: ["sh", "-c", "echo up; exec sleep 100000"]
  - name: b
    image: picolet.test/busybox:1
    command: ["sh", "-c", "echo up; exec sleep 100000"]
"#
    )
}

fn probed_pod(i: usize) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: p{i}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: picolet.test/busybox:1
    command: ["sh", "-c", "mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      httpGet: {{path: /, port: 8080}}
      periodSeconds: 10
    livenessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 10
    startupProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 10
"#
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` / list mode
    }
    if !picolet::sys::process::is_root() {
        eprintln!("the agent benchmark needs root (namespaces, mounts)");
        std::process::exit(1);
    }
    let runs = env_num("PICOLET_BENCH_RUNS", 20) as usize;
    let idle_secs = env_num("PICOLET_BENCH_IDLE_SECS", 60);
    let n_pods = env_num("PICOLET_BENCH_PODS", 50) as usize;
    let env = Env::start("bench", &[]);
    let pid = env.agent_pid();
    let rss_idle = status_field(pid, "VmRSS:");
    println!(
        "binary: {} ({} KiB)",
        bin(),
        std::fs::metadata(bin()).unwrap().len() / 1024
    );
    println!("agent RSS idle, no pods: {rss_idle} KiB (budget 4096)");

    // Pod start and removal.
    let mut start_ms = Vec::new();
    let mut rm_ms = Vec::new();
    for i in 0..runs {
        let uid = format!("00000000-0000-4000-8000-{:012}", i);
        let name = format!("start{i}");
        let tmp = env.dir.join(".m.tmp");
        std::fs::write(&tmp, two_container_pod(&name, &uid)).unwrap();
        let t0 = wall_ns();
        std::fs::rename(&tmp, env.manifests().join(format!("{name}.yaml"))).unwrap();
        let logs = env
            .dir
            .join("run/logs")
            .join(format!("default_{name}_{uid}"));
        let (a, b) = wait_for(20, "both containers' first output", || {
            Some((
                first_line_ns(&logs.join("a"))?,
                first_line_ns(&logs.join("b"))?,
            ))
        });
        start_ms.push((a.max(b) - t0) as f64 / 1e6);
        std::thread::sleep(Duration::from_millis(100));
        let t1 = Instant::now();
        std::fs::remove_file(env.manifests().join(format!("{name}.yaml"))).unwrap();
        let pod_dir = env.state().join("pods").join(&uid);
        wait_for(30, "pod removed", || (!pod_dir.exists()).then_some(()));
        rm_ms.push(t1.elapsed().as_secs_f64() * 1e3);
    }
    let p50 = percentile(&mut start_ms, 0.5);
    let p90 = percentile(&mut start_ms, 0.9);
    println!(
        "pod start (manifest written → 2 containers exec'd), {runs} runs: p50 {p50:.1} ms, p90 {p90:.1} ms (budget p50 ≤ 50 ms)"
    );
    println!(
        "pod removal (manifest deleted → sandbox gone): p50 {:.1} ms",
        percentile(&mut rm_ms, 0.5)
    );

    // 50 probed pods.
    let t = Instant::now();
    for i in 0..n_pods {
        std::fs::write(env.manifests().join(format!("p{i}.yaml")), probed_pod(i)).unwrap();
    }
    wait_for(180, "all probed pods ready", || {
        let pods = env.pods();
        (pods.len() == n_pods
            && pods
                .iter()
                .all(|p| p["status"]["containerStatuses"][0]["ready"] == true))
        .then_some(())
    });
    println!(
        "{n_pods} probed pods ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    let rss_50 = status_field(pid, "VmRSS:");
    let shims = shim_pids(&env.state());
    let stats = |f: &dyn Fn(u32) -> u64| {
        let v: Vec<u64> = shims.iter().map(|p| f(*p)).collect();
        (
            v.iter().sum::<u64>() / v.len().max(1) as u64,
            v.iter().copied().max().unwrap_or(0),
        )
    };
    let (rss_avg, rss_max) = stats(&|p| status_field(p, "VmRSS:"));
    let (uss_avg, uss_max) = stats(&|p| {
        proc_field(p, "smaps_rollup", "Private_Clean:")
            + proc_field(p, "smaps_rollup", "Private_Dirty:")
    });
    let (pss_avg, pss_max) = stats(&|p| proc_field(p, "smaps_rollup", "Pss:"));
    println!("agent RSS with {n_pods} pods: {rss_50} KiB (budget 8192)");
    println!(
        "shim memory over {} shims (budget 400 KiB): VmRSS avg {rss_avg} / max {rss_max} KiB (counts the binary's shared pages); private (USS) avg {uss_avg} / max {uss_max} KiB; PSS avg {pss_avg} / max {pss_max} KiB",
        shims.len()
    );
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    println!("agent threads: {threads} (must be 1)");

    // Idle window: CPU and writes.
    let files_before = snapshot_files(&env.state());
    let wb0 = io_write_bytes(pid);
    let cpu0 = cpu_ticks(pid);
    let shim_cpu0: u64 = shims.iter().map(|p| cpu_ticks(*p)).sum();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let secs = t.elapsed().as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / hz / secs * 100.0;
    let shim_cpu =
        (shims.iter().map(|p| cpu_ticks(*p)).sum::<u64>() - shim_cpu0) as f64 / hz / secs * 100.0;
    let changed = changed_files(&files_before, &snapshot_files(&env.state()));
    let wb = io_write_bytes(pid) - wb0;
    println!(
        "idle {secs:.0} s with {n_pods} pods probed every 10 s: agent CPU {cpu:.2} % of a core (budget 0.5), shims {shim_cpu:.2} % in all"
    );
    println!(
        "writes under the state dir in that window: {} files changed, agent write_bytes {wb} (budget 0)",
        changed.len()
    );
    for f in changed.iter().take(5) {
        println!("  changed: {f}");
    }

    if env_num("PICOLET_BENCH_PODMAN", 1) == 1 {
        drop(env);
        podman(runs.min(10), p50);
    }
}

fn snapshot_files(dir: &Path) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<(String, u64, i64)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            use std::os::unix::fs::MetadataExt;
            if m.is_dir() {
                walk(&e.path(), out);
            } else if m.is_file() {
                out.push((
                    e.path().display().to_string(),
                    m.len(),
                    m.mtime_nsec() + m.mtime() * 1_000_000_000,
                ));
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}

fn changed_files(a: &[(String, u64, i64)], b: &[(String, u64, i64)]) -> Vec<String> {
    b.iter()
        .filter(|x| !a.contains(x))
        .map(|x| x.0.clone())
        .collect()
}

/// Podman, set up as ../shared/PEERS.md says, timed the same way.
fn podman(runs: usize, ours_p50: f64) {
    let Some(podman) = Podman::setup() else {
        return;
    };
    let pm = |args: &[&str]| podman.run(args);
    let mut up = Vec::new();
    let mut rm = Vec::new();
    for i in 0..runs {
        let name = format!("picolet-bench-{i}");
        let t = Instant::now();
        let ok = pm(&["pod", "create", "--name", &name, "--network=none"])
            .status
            .success()
            && pm(&[
                "run",
                "-d",
                "--pod",
                &name,
                "localhost/bb:1",
                "sleep",
                "3600",
            ])
            .status
            .success()
            && pm(&[
                "run",
                "-d",
                "--pod",
                &name,
                "localhost/bb:1",
                "sleep",
                "3600",
            ])
            .status
            .success();
        let e = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        pm(&["pod", "rm", "-f", "-t", "0", &name]);
        rm.push(t.elapsed().as_secs_f64() * 1e3);
        if !ok {
            println!("podman run failed; see PEERS.md for this host's setup");
            return;
        }
        up.push(e);
    }
    let p50 = percentile(&mut up, 0.5);
    println!(
        "podman 2-container pod up (create + 2 × run -d), {runs} runs: p50 {p50:.0} ms; `pod rm -f -t 0` p50 {:.0} ms",
        percentile(&mut rm, 0.5)
    );
    println!(
        "ratio podman / picolet pod start: {:.1}×",
        p50 / ours_p50.max(0.001)
    );
}
