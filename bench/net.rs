//! Issue 10's per-pod network budget, measured on real namespaces (run
//! as root; nothing outside a namespace the bench makes is touched):
//!
//!     cargo bench --bench net
//!
//! For each of N pods (a `sleep` in a new network namespace, started
//! before the clock runs): the veth pair into the pod, its address, `lo`
//! and `eth0` up, the default route, an IPAM file, and one hostPort DNAT
//! rule pair (one nftables batch); then the agent's teardown (rules,
//! address; the veth goes with the pod's namespace). Budget: setup p50 ≤ 3 ms, p99 ≤ 10 ms. Also checks that
//! nothing is left after the N cycles (veths, rules, IPAM files).
//!
//! Then, in a fresh namespace (a veth pair holds the default route, so
//! the agent has a node address), the agent itself:
//! - idle RSS and threads with `--pod-network=bridge` against `none`
//!   (budget: +128 KiB, 1 thread);
//! - a 2-container pod's start with networking (manifest written → both
//!   containers' first output line), p50 over PICOLET_BENCH_RUNS (default
//!   20; budget p50 ≤ 25 ms), and podman's 2-container pod with its default
//!   bridge network (netavark, in the same namespace) in the same run, as a
//!   ratio (PICOLET_BENCH_PODMAN=0 skips it).
//!
//! Env: PICOLET_BENCH_NET_PODS (default 100).

mod common;
use common::{Env, Podman, env_num, first_line_ns, percentile, status_field, wait_for};
use picolet::net::{Cidr, HostPort, NodeNet, ipam::Ipam};
use picolet::probe::NetNs;
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("bench net: needs root (network namespaces)");
        return;
    }
    let n = env_num("PICOLET_BENCH_NET_PODS", 100) as usize;
    // The node: a namespace of this thread's own.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let own = NetNs::current().unwrap().id().unwrap();
    let cidr: Cidr = "10.87.0.0/24".parse().unwrap();
    let t = Instant::now();
    let mut node = NodeNet::setup(cidr).unwrap();
    let node_setup = t.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let mut ipam = Ipam::open(dir.path(), cidr).unwrap();
    let mut holders: Vec<std::process::Child> = (0..n)
        .map(|_| {
            Command::new("unshare")
                .args(["--net", "sleep", "600"])
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let nss: Vec<NetNs> = holders
        .iter()
        .map(|c| {
            loop {
                if let Ok(ns) = NetNs::of_pid(c.id() as i32) {
                    if ns.id().unwrap() != own {
                        break ns;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
        .collect();
    let port = |i: usize| HostPort {
        proto: 6,
        host_port: 20000 + i as u16,
        container_port: 80,
        host_ip: None,
    };
    let (mut up, mut down) = (Vec::new(), Vec::new());
    let (mut rules_up, mut rules_down, mut link_down) = (Vec::new(), Vec::new(), Vec::new());
    for (i, ns) in nss.iter().enumerate() {
        let uid = format!("bench-pod-{i}");
        let t = Instant::now();
        let ip = ipam.allocate(&uid).unwrap();
        node.attach(&uid, ns, ip).unwrap();
        let r = Instant::now();
        node.add_host_ports(&uid, ip, &[port(i)]).unwrap();
        rules_up.push(r.elapsed().as_secs_f64() * 1e3);
        up.push(t.elapsed().as_secs_f64() * 1e3);
        // What the agent does when a pod is removed: its rules and its
        // address. The veth pair goes with the pod's namespace, in the
        // kernel's own cleanup work, once the pod's last process is gone;
        // deleting it here (RTM_DELLINK) is timed apart, on every 10th pod.
        let t = Instant::now();
        node.remove_host_ports(&uid).unwrap();
        rules_down.push(t.elapsed().as_secs_f64() * 1e3);
        ipam.release(&uid);
        down.push(t.elapsed().as_secs_f64() * 1e3);
        if i % 10 == 0 {
            let l = Instant::now();
            node.detach(&uid).unwrap();
            link_down.push(l.elapsed().as_secs_f64() * 1e3);
        }
    }
    for c in &mut holders {
        let _ = c.kill();
        let _ = c.wait();
    }
    drop(nss);
    let links = || {
        Command::new("ip")
            .args(["-o", "link", "show", "master", "picolet0"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(usize::MAX)
    };
    let t = Instant::now();
    let mut left_links = links();
    while left_links > 0 && t.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        left_links = links();
    }
    let gone_after = t.elapsed();
    let left_rules = node.pods_with_rules().unwrap().len();
    let left_ips = ipam.allocations().count();
    let left_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("10.")
        })
        .count();
    let (p50, p99) = (percentile(&mut up, 0.5), percentile(&mut up, 0.99));
    println!("node setup (bridge, forwarding, table): {node_setup:?}");
    println!(
        "pod network setup (ipam + veth + address + routes + 1 hostPort batch), {n} pods: \
         p50 {p50:.2} ms, p99 {p99:.2} ms (budget p50 <= 3, p99 <= 10)"
    );
    println!(
        "pod network teardown on the agent (rules + address): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&mut down, 0.5),
        percentile(&mut down, 0.99)
    );
    println!(
        "  hostPort batch p50 {:.2} ms; rule deletion p50 {:.2} ms; an explicit veth deletion \
         (not on the agent's path) p50 {:.2} ms; all veths gone with their namespaces {gone_after:?} \
         after the last pod process",
        percentile(&mut rules_up, 0.5),
        percentile(&mut rules_down, 0.5),
        percentile(&mut link_down, 0.5)
    );
    println!(
        "left after {n} cycles: {left_links} veths, {left_rules} pods with rules, \
         {left_ips} addresses, {left_files} IPAM files"
    );
    picolet::net::reset().unwrap();
    if p50 > 3.0 || p99 > 10.0 {
        println!("OVER BUDGET (setup): check the machine's load (/proc/loadavg) and run again");
    }
    assert_eq!((left_links, left_rules, left_ips, left_files), (0, 0, 0, 0));
    agent_with_network();
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

/// The agent with the pod network, in a namespace of this thread's own
/// (its children, the agent and podman, start in it).
fn agent_with_network() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let ip = |args: &str| {
        let st = Command::new("ip").args(args.split(' ')).status().unwrap();
        assert!(st.success(), "ip {args}");
    };
    ip("link set lo up");
    ip("link add node0 type veth peer name node1");
    ip("link set node1 up");
    ip("addr add 10.99.0.1/24 dev node0");
    ip("link set node0 up");
    ip("route add default via 10.99.0.2");
    // VmRSS, and its parts: RssAnon (heap, stacks) and RssFile (the
    // binary's pages read so far, shared with every other picolet process).
    let rss = |extra: &[&str]| {
        let env = Env::start("net", extra);
        std::thread::sleep(std::time::Duration::from_secs(2));
        let pid = env.agent_pid();
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count();
        let m = ["VmRSS:", "RssAnon:", "RssFile:"].map(|k| status_field(pid, k) as i64);
        (m, threads, env)
    };
    let runs = env_num("PICOLET_BENCH_RUNS", 20) as usize;
    let (none, _, env) = rss(&["--pod-network=none"]);
    // The same pods without a network first: what the network adds.
    let mut plain = pod_starts(&env, runs, None);
    drop(env);
    let (bridge, threads, env) = rss(&["--pod-network=bridge", "--pod-cidr=10.87.5.0/24"]);
    println!(
        "agent idle with the pod network vs --pod-network none: VmRSS {} vs {} KiB ({:+} KiB; budget +128), \
         of which RssAnon {} vs {} ({:+}) and RssFile {} vs {} ({:+}); threads {threads} (must be 1)",
        bridge[0],
        none[0],
        bridge[0] - none[0],
        bridge[1],
        none[1],
        bridge[1] - none[1],
        bridge[2],
        none[2],
        bridge[2] - none[2]
    );
    let mut start_ms = pod_starts(&env, runs, Some("10.87.5."));
    let p50 = percentile(&mut start_ms, 0.5);
    println!(
        "2-container pod start with the pod network, {runs} runs: p50 {p50:.1} ms, p90 {:.1} ms \
         (budget p50 <= 25 ms); with --pod-network none p50 {:.1} ms; load average {}",
        percentile(&mut start_ms, 0.9),
        percentile(&mut plain, 0.5),
        load().trim()
    );
    drop(env);
    if env_num("PICOLET_BENCH_PODMAN", 1) == 1 {
        podman_bridge(runs.min(10), p50);
    }
    picolet::net::reset().unwrap();
}

/// Starts (manifest written → both containers' first output line) and
/// removes `runs` 2-container pods, one at a time; with `net`, each pod's
/// IP must start so.
fn pod_starts(env: &Env, runs: usize, net: Option<&str>) -> Vec<f64> {
    let mut start_ms = Vec::new();
    for i in 0..runs {
        let uid = format!("00000000-0000-4000-8000-{i:012}");
        let name = format!("net{i}");
        let tmp = env.dir.join(".m.tmp");
        std::fs::write(&tmp, two_container_pod(&name, &uid)).unwrap();
        let t0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let file = env.manifests().join(format!("{name}.yaml"));
        std::fs::rename(&tmp, &file).unwrap();
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
        let pod = env
            .pods()
            .into_iter()
            .find(|p| p["metadata"]["name"] == name.as_str())
            .unwrap();
        assert!(
            net.is_none_or(|n| pod["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| ip.starts_with(n))),
            "{}",
            pod["status"]
        );
        std::fs::remove_file(&file).unwrap();
        let pod_dir = env.state().join("pods").join(&uid);
        wait_for(30, "pod removed", || (!pod_dir.exists()).then_some(()));
    }
    start_ms
}

fn two_container_pod(name: &str, uid: &str) -> String {
    let c = |n: &str| {
        format!(
            "  - name: {n}\n    image: picolet.test/busybox:1\n    \
             command: [\"sh\", \"-c\", \"echo up; exec sleep 100000\"]\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, uid: {uid}}}\nspec:\n  \
         terminationGracePeriodSeconds: 0\n  containers:\n{}{}",
        c("a"),
        c("b")
    )
}

/// podman's 2-container pod with its default bridge network (`podman pod
/// create` without `--network`), in this thread's namespace.
fn podman_bridge(runs: usize, ours_p50: f64) {
    let Some(podman) = Podman::setup() else {
        return;
    };
    let mut up = Vec::new();
    for i in 0..runs {
        let name = format!("picolet-bench-net-{i}");
        let run = || {
            let args = [
                "run",
                "-d",
                "--pod",
                &name,
                "localhost/bb:1",
                "sleep",
                "3600",
            ];
            podman.run(&args).status.success()
        };
        let t = Instant::now();
        let created = podman.run(&["pod", "create", "--name", &name]);
        let ok = created.status.success() && run() && run();
        let e = t.elapsed().as_secs_f64() * 1e3;
        let ip = podman.run(&[
            "pod",
            "inspect",
            &name,
            "--format",
            "{{.InfraConfig.Networks}}",
        ]);
        podman.run(&["pod", "rm", "-f", "-t", "0", &name]);
        if !ok {
            println!(
                "podman with its bridge network failed: {}",
                String::from_utf8_lossy(&created.stderr)
            );
            return;
        }
        if i == 0 {
            println!(
                "podman pod networks: {}",
                String::from_utf8_lossy(&ip.stdout).trim()
            );
        }
        up.push(e);
    }
    let p50 = percentile(&mut up, 0.5);
    println!(
        "podman 2-container pod up with its default bridge network (create + 2 × run -d), \
         {runs} runs: p50 {p50:.0} ms; load average {}",
        load().trim()
    );
    println!(
        "ratio podman / picolet pod start, both with a bridge network: {:.1}×",
        p50 / ours_p50.max(0.001)
    );
}
