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
//! Env: PICOLET_BENCH_NET_PODS (default 100).

mod common;
use common::{env_num, percentile};
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
}
