//! Issue 7's budgets, measured on real pods (run as root):
//!
//!     cargo bench --bench security
//!
//! - the agent's RSS and PSS with `maxPods` (110) running pods (budget
//!   ≤ 12 MiB);
//! - the agent's RSS with those pods under an API socket flood: N
//!   connections each sending 1 MiB without a newline (budget ≤ 16 MiB),
//!   and `get pods` during it;
//! - `get pods` latency, p50/p99, while a 1,000-pod manifest is being
//!   refused beyond `maxPods` (budget p99 < 100 ms), how many pods run, and
//!   what the refused pods cost in memory;
//! - SIGTERM to exit with those pods.
//! - Issue 11: what the `RuntimeDefault` seccomp filter adds to a container
//!   start (budget p50 ≤ 1 ms): building containerd's profile as a BPF
//!   program (in the shim, before `clone`) plus installing it (in the
//!   child), as forked children that install it and exit against children
//!   that only exit. `PICOLET_BENCH_SECCOMP_ONLY=1` stops after it.
//!
//! Peer in the same run: podman's `ps` with one 2-container pod, and the
//! resident memory of its per-pod processes (conmon × 3, catatonit) times
//! 110, against picolet's agent and shims.
//!
//! Env: PICOLET_BENCH_PODS (default 110), PICOLET_BENCH_BIG (default 1000),
//! PICOLET_BENCH_FLOOD (connections, default 500), PICOLET_BENCH_CALLS
//! (`get pods` calls per phase, default 200), PICOLET_BENCH_PODMAN=0.

mod common;
use common::{Env, Podman, env_num, percentile, proc_field, shim_pids, status_field, wait_for};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn sleeper(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: picolet.test/busybox:1
    command: ["sleep", "100000"]
"#
    )
}

/// `get pods` `calls` times; returns (p50, p99) in ms.
fn get_pods_latency(env: &Env, calls: usize) -> (f64, f64) {
    let mut ms = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let out = env.cli(&["get", "pods", "-A"]);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(out.status.success(), "{out:?}");
    }
    (percentile(&mut ms, 0.5), percentile(&mut ms, 0.99))
}

fn running(env: &Env) -> usize {
    env.pods()
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count()
}

fn pss(pid: u32) -> u64 {
    proc_field(pid, "smaps_rollup", "Pss:")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !picolet::sys::process::is_root() {
        eprintln!("the security benchmark needs root (namespaces, mounts)");
        std::process::exit(1);
    }
    seccomp_cost(env_num("PICOLET_BENCH_SECCOMP_RUNS", 500) as usize);
    if env_num("PICOLET_BENCH_SECCOMP_ONLY", 0) == 1 {
        return;
    }
    let n = env_num("PICOLET_BENCH_PODS", 110) as usize;
    let big = env_num("PICOLET_BENCH_BIG", 1000) as usize;
    let flood = env_num("PICOLET_BENCH_FLOOD", 500) as usize;
    let calls = env_num("PICOLET_BENCH_CALLS", 200) as usize;
    let mut env = Env::start("security", &[]);
    let pid = env.agent_pid();

    let t = Instant::now();
    for i in 0..n {
        std::fs::write(
            env.manifests().join(format!("s{i}.yaml")),
            sleeper(&format!("s{i}")),
        )
        .unwrap();
    }
    wait_for(300, "all pods running", || {
        (running(&env) == n).then_some(())
    });
    println!("{n} pods running in {:.1} s", t.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(2));
    let (rss, agent_pss) = (status_field(pid, "VmRSS:"), pss(pid));
    println!("agent with {n} pods: VmRSS {rss} KiB, PSS {agent_pss} KiB (budget 12288)");
    let (p50, p99) = get_pods_latency(&env, calls);
    println!("get pods with {n} pods: p50 {p50:.1} ms, p99 {p99:.1} ms");

    // The API socket flood: `flood` connections, 1 MiB each, no newline.
    let sock = env.state().join("picolet.sock");
    let chunk = vec![b'x'; 64 * 1024];
    let mut conns = Vec::new();
    let mut refused = 0usize;
    let t = Instant::now();
    for _ in 0..flood {
        let Ok(mut s) = UnixStream::connect(&sock) else {
            refused += 1;
            continue;
        };
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut sent = 0;
        while sent < (1 << 20) {
            match s.write(&chunk) {
                Ok(k) => sent += k,
                Err(_) => break,
            }
        }
        conns.push(s);
    }
    let rss_flood = status_field(pid, "VmRSS:");
    let (p50, p99) = get_pods_latency(&env, calls.min(50));
    println!(
        "socket flood: {flood} connections × 1 MiB without a newline in {:.1} s ({refused} refused at connect): agent VmRSS {rss_flood} KiB (budget 16384); get pods p50 {p50:.1} ms, p99 {p99:.1} ms",
        t.elapsed().as_secs_f64()
    );
    drop(conns);
    // A file of `big` pods on top: all but none of them refused (OutOfpods).
    let mut text = String::new();
    for i in 0..big {
        text.push_str("---\n");
        text.push_str(&sleeper(&format!("big{i}")));
    }
    let t = Instant::now();
    std::fs::write(env.manifests().join("big.yaml"), text).unwrap();
    let (p50, p99) = get_pods_latency(&env, calls);
    println!(
        "get pods while a {big}-pod file is refused: p50 {p50:.1} ms, p99 {p99:.1} ms (budget p99 < 100 ms), {:.1} s of calls",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(3));
    let pods = env.pods();
    let out_of_pods = pods
        .iter()
        .filter(|p| p["status"]["reason"] == "OutOfpods")
        .count();
    let rss_big = status_field(pid, "VmRSS:");
    println!(
        "after the big file: {} running (must be {n}), {out_of_pods} OutOfpods, agent VmRSS {rss_big} KiB ({:.1} KiB more per refused pod)",
        running(&env),
        (rss_big as f64 - rss as f64) / big.max(1) as f64
    );
    std::fs::remove_file(env.manifests().join("big.yaml")).unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    println!("agent threads: {threads} (must be 1)");

    // Shims' memory, for the peer comparison.
    let shims: u64 = shim_pids(&env.state()).into_iter().map(pss).sum();
    let ours = agent_pss + shims;
    println!("picolet agent + shims for {n} pods: PSS {ours} KiB");

    // SIGTERM with the pods running (they stay, under their shims).
    let t = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut agent = env.agent.take().unwrap();
    agent.wait().unwrap();
    println!(
        "SIGTERM → agent exit with {n} pods: {:.0} ms (budget 2000)",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Restart it so that the pods are cleaned up by Env's drop.
    env.restart();

    if env_num("PICOLET_BENCH_PODMAN", 1) == 1 {
        podman_peer(n, ours);
    }
}

/// The `RuntimeDefault` filter's share of a container start: p50 of
/// build + fork + install + exit, against fork + exit, `runs` each,
/// interleaved (this process is still single-threaded: no agent yet).
fn seccomp_cost(runs: usize) {
    use picolet::sys::process::{exit_now, fork, wait};
    let caps = 0xa80425fb; // containerd's default capabilities
    let (mut build, mut with, mut without) = (Vec::new(), Vec::new(), Vec::new());
    let mut len = 0;
    for i in 0..2 * runs {
        let filtered = i % 2 == 0;
        let t = Instant::now();
        let prog = filtered.then(|| picolet::runtime::seccomp::program(caps));
        let built = t.elapsed().as_secs_f64() * 1e6;
        let pid = fork().unwrap();
        if pid == 0 {
            let ok = prog
                .as_deref()
                .is_none_or(|p| picolet::sys::seccomp::install(p).is_ok());
            exit_now(if ok { 0 } else { 1 })
        }
        let status = wait(pid).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match prog {
            Some(p) => {
                len = p.len();
                build.push(built);
                with.push(ms);
            }
            None => without.push(ms),
        }
    }
    let (w, wo) = (percentile(&mut with, 0.5), percentile(&mut without, 0.5));
    println!(
        "RuntimeDefault seccomp: {len} instructions, built in {:.0} µs (p50); fork+install+exit p50 {w:.3} ms vs fork+exit {wo:.3} ms: +{:.3} ms per container start (budget ≤ 1 ms)",
        percentile(&mut build, 0.5),
        w - wo
    );
}

/// podman with one 2-container pod: `ps` latency and per-pod overhead.
fn podman_peer(n: usize, ours_pss: u64) {
    let Some(pm) = Podman::setup() else {
        return;
    };
    let name = "picolet-bench-sec";
    let ok = pm
        .run(&["pod", "create", "--name", name, "--network=none"])
        .status
        .success()
        && (0..2).all(|_| {
            pm.run(&[
                "run",
                "-d",
                "--pod",
                name,
                "localhost/bb:1",
                "sleep",
                "3600",
            ])
            .status
            .success()
        });
    if !ok {
        println!("podman run failed; see PEERS.md for this host's setup");
        return;
    }
    let mut ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        pm.run(&["ps", "-a"]);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let p50 = percentile(&mut ms, 0.5);
    // conmon and catatonit of this pod.
    let overhead: u64 = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| matches!(c.trim(), "conmon" | "catatonit"))
        })
        .map(pss)
        .sum();
    pm.run(&["pod", "rm", "-f", "-t", "0", name]);
    println!(
        "podman, 1 pod: `ps -a` p50 {p50:.0} ms; per-pod processes PSS {overhead} KiB, × {n} = {} KiB",
        overhead * n as u64
    );
    println!(
        "ratio podman / picolet resident memory for {n} pods: {:.1}×",
        (overhead * n as u64) as f64 / ours_pss.max(1) as f64
    );
}
