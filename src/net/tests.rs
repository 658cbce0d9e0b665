//! Real namespaces: the test thread moves to a new network namespace (the
//! "node"; `unshare(CLONE_NEWNET)` affects only the calling thread) and
//! each "pod" is a `sleep` in a namespace of its own. The host's network
//! is never touched. `ip`/`nft` (via `nsenter`) only inspect.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use super::*;
use crate::probe::{NetNs, with_netns};

struct Pod(Child);

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Pod {
    fn new() -> Pod {
        let c = Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pod = Pod(c);
        // Wait for unshare to exec sleep (a new namespace).
        let own = NetNs::current().unwrap().id().unwrap();
        for _ in 0..500 {
            if let Ok(ns) = pod.ns() {
                if ns.id().unwrap() != own {
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        pod
    }

    fn ns(&self) -> std::io::Result<NetNs> {
        NetNs::of_pid(self.0.id() as i32)
    }

    fn sh(&self, cmd: &str) -> String {
        run_in(&format!("/proc/{}/ns/net", self.0.id()), cmd)
    }
}

fn node_ns() -> String {
    format!(
        "/proc/{}/task/{}/ns/net",
        std::process::id(),
        nix::unistd::gettid()
    )
}

fn run_in(ns: &str, cmd: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(["sh", "-c", cmd])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn enter_new_node_ns() -> bool {
    if let Some(why) = crate::check::qemu_user() {
        eprintln!(
            "skipped: {why}: qemu-user has no nfnetlink (socket(AF_NETLINK, NETLINK_NETFILTER) \
             fails with EPROTONOSUPPORT); these run natively and in tests/net.rs"
        );
        return false;
    }
    if crate::testutil::needs_root("creating network namespaces") {
        return false;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let mut s = Sock::open(Netlink::Route).unwrap();
    let lo = rt::link_index(&mut s, "lo").unwrap().unwrap();
    rt::set_up(&mut s, lo).unwrap();
    true
}

#[test]
fn the_cidr_parses_and_names_its_gateway_and_refuses_host_bits() {
    let c: Cidr = "10.87.0.0/24".parse().unwrap();
    assert_eq!((c.gateway(), c.hosts()), (Ipv4Addr::new(10, 87, 0, 1), 254));
    assert!(c.contains(Ipv4Addr::new(10, 87, 0, 200)));
    assert!(!c.contains(Ipv4Addr::new(10, 88, 0, 2)));
    let e = "10.87.0.1/24".parse::<Cidr>().unwrap_err();
    assert!(e.contains("host bits"), "{e}");
    assert!("10.87.0.0".parse::<Cidr>().is_err());
    assert!("10.87.0.0/31".parse::<Cidr>().is_err());
    assert_eq!(
        DEFAULT_POD_CIDR.parse::<Cidr>().unwrap().to_string(),
        DEFAULT_POD_CIDR
    );
    assert_eq!(host_veth("abc").len(), 14);
    assert_ne!(host_veth("abc"), host_veth("abd"));
}

#[test]
fn node_setup_makes_the_bridge_forwarding_and_the_table_idempotently() {
    if !enter_new_node_ns() {
        return;
    }
    let cidr: Cidr = "10.87.0.0/24".parse().unwrap();
    NodeNet::setup(cidr).unwrap();
    let ns = node_ns();
    let handles = run_in(&ns, "nft -s -a list table ip picolet");
    let _again = NodeNet::setup(cidr).unwrap();
    // Kept as it was: same rules, same handles.
    assert_eq!(run_in(&ns, "nft -s -a list table ip picolet"), handles);
    let addr = run_in(&ns, "ip -o -4 addr show picolet0");
    assert!(addr.contains("inet 10.87.0.1/24 brd 10.87.0.255"), "{addr}");
    assert!(run_in(&ns, "ip -o link show picolet0").contains(",UP"));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        "1\n"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/picolet0/accept_dad").unwrap(),
        "0\n"
    );
    let mut nf = Sock::open(Netlink::Netfilter).unwrap();
    let tags = nft::rule_tags(&mut nf, nft::NFPROTO_IPV4, TABLE).unwrap();
    assert_eq!(tags, base_tags(cidr));
    let listed = run_in(&ns, "nft -s list table ip picolet");
    for want in [
        "type filter hook forward priority filter; policy accept;",
        "ip saddr 10.87.0.0/24 counter accept comment \"picolet egress 10.87.0.0/24\"",
        "ip daddr 10.87.0.0/24 counter accept comment \"picolet ingress 10.87.0.0/24\"",
        "type nat hook postrouting priority srcnat; policy accept;",
        "ip saddr 10.87.0.0/24 ip daddr != 10.87.0.0/24 counter masquerade",
    ] {
        assert!(listed.contains(want), "{want:?} missing from:\n{listed}");
    }
    // A FORWARD policy of drop in another table is found (picolet's
    // accept cannot override it).
    assert_eq!(nft::forward_drop_chains(&mut nf).unwrap(), []);
    run_in(
        &ns,
        "nft add table ip filter && nft 'add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }' && nft 'add chain ip filter INPUT { type filter hook input priority 0; policy drop; }'",
    );
    let drops = nft::forward_drop_chains(&mut nf).unwrap();
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(
        (
            drops[0].family.as_str(),
            drops[0].table.as_str(),
            drops[0].name.as_str()
        ),
        ("ip", "filter", "FORWARD")
    );
    run_in(&ns, "nft delete table ip filter");
    // Another CIDR: the table is rebuilt for it.
    let other: Cidr = "10.86.0.0/24".parse().unwrap();
    NodeNet::setup(other).unwrap();
    let tags = nft::rule_tags(&mut nf, nft::NFPROTO_IPV4, TABLE).unwrap();
    assert_eq!(tags, base_tags(other));
    let removed = reset().unwrap();
    assert_eq!(removed, ["nftables table ip picolet", "bridge picolet0"]);
    assert!(!run_in(&ns, "ip -o link").contains("picolet0"));
    assert!(!run_in(&ns, "nft list tables").contains("picolet"));
    assert_eq!(reset().unwrap(), Vec::<String>::new());
}

#[test]
fn two_attached_pods_have_eth0_an_address_a_default_route_and_reach_each_other() {
    if !enter_new_node_ns() {
        return;
    }
    let cidr: Cidr = "10.87.5.0/24".parse().unwrap();
    let mut node = NodeNet::setup(cidr).unwrap();
    let (a, b) = (Pod::new(), Pod::new());
    let (ipa, ipb) = (Ipv4Addr::new(10, 87, 5, 2), Ipv4Addr::new(10, 87, 5, 3));
    node.attach("uid-a", &a.ns().unwrap(), ipa).unwrap();
    node.attach("uid-b", &b.ns().unwrap(), ipb).unwrap();
    let addr = a.sh("ip -o -4 addr show eth0");
    assert!(addr.contains("inet 10.87.5.2/24"), "{addr}");
    let route = a.sh("ip -4 route show default");
    assert!(route.contains("default via 10.87.5.1 dev eth0"), "{route}");
    assert!(a.sh("ip -o link show lo").contains(",UP"));
    assert_eq!(
        a.sh("cat /proc/sys/net/ipv6/conf/eth0/accept_dad").trim(),
        "0"
    );
    let host = host_veth("uid-a");
    let port = run_in(&node_ns(), &format!("ip -o link show {host}"));
    assert!(
        port.contains("master picolet0") && port.contains("state UP"),
        "{port}"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{host}/accept_dad")).unwrap(),
        "0\n"
    );

    // b listens; a connects to b's pod IP.
    let listener = with_netns(&b.ns().unwrap(), || TcpListener::bind((ipb, 8080)))
        .unwrap()
        .unwrap();
    let mut out = with_netns(&a.ns().unwrap(), || TcpStream::connect((ipb, 8080)))
        .unwrap()
        .unwrap();
    out.write_all(b"hi").unwrap();
    let (mut conn, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), ipa);
    let mut got = [0; 2];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi");
    // And the node reaches a pod through the bridge.
    TcpStream::connect((ipb, 8080)).unwrap();

    // Attaching again (a retried sandbox) replaces the pair.
    node.attach("uid-a", &a.ns().unwrap(), ipa).unwrap();
    node.detach("uid-a").unwrap();
    assert!(!run_in(&node_ns(), "ip -o link").contains(&host));
    assert!(!a.sh("ip -o link").contains("eth0"));
    node.detach("uid-a").unwrap();
    let removed = reset().unwrap();
    assert!(
        removed.contains(&format!("veth {}", host_veth("uid-b"))),
        "{removed:?}"
    );
}

/// Accepts one connection on `l` and returns the peer's address.
fn accept_peer(l: &TcpListener) -> Ipv4Addr {
    l.set_nonblocking(false).unwrap();
    let (mut c, peer) = l.accept().unwrap();
    let _ = c.write_all(b"ok");
    match peer.ip() {
        std::net::IpAddr::V4(a) => a,
        other => panic!("{other}"),
    }
}

#[test]
fn host_ports_reach_the_pod_from_the_node_localhost_other_pods_and_itself() {
    if !enter_new_node_ns() {
        return;
    }
    let cidr: Cidr = "10.87.6.0/24".parse().unwrap();
    let mut node = NodeNet::setup(cidr).unwrap();
    let (a, b) = (Pod::new(), Pod::new());
    let (ipa, ipb) = (Ipv4Addr::new(10, 87, 6, 2), Ipv4Addr::new(10, 87, 6, 3));
    node.attach("uid-a", &a.ns().unwrap(), ipa).unwrap();
    node.attach("uid-b", &b.ns().unwrap(), ipb).unwrap();
    let tcp = HostPort {
        proto: 6,
        host_port: 18080,
        container_port: 8080,
        host_ip: None,
    };
    node.add_host_ports("uid-a", ipa, &[tcp]).unwrap();
    let port = run_in(
        &node_ns(),
        &format!("ip -d link show {}", host_veth("uid-a")),
    );
    assert!(port.contains("hairpin on"), "{port}");
    let listed = run_in(&node_ns(), "nft -s list table ip picolet");
    for want in [
        "fib daddr type local tcp dport 18080 counter dnat to 10.87.6.2:8080 comment \"pod uid-a hostport 18080/tcp\"",
        "ct status dnat ip saddr 10.87.6.0/24 ip daddr 10.87.6.0/24 counter masquerade comment \"picolet hairpin 10.87.6.0/24\"",
        "ip saddr 127.0.0.0/8 ip daddr 10.87.6.0/24 counter masquerade comment \"picolet localhost 10.87.6.0/24\"",
    ] {
        assert!(listed.contains(want), "{want:?} missing from:\n{listed}");
    }
    assert_eq!(listed.matches("dport 18080").count(), 2, "{listed}");
    let l = with_netns(&a.ns().unwrap(), || TcpListener::bind(("0.0.0.0", 8080)))
        .unwrap()
        .unwrap();
    let gw = cidr.gateway();
    // From the node: its own address and 127.0.0.1.
    for to in [gw, Ipv4Addr::LOCALHOST] {
        let _c = TcpStream::connect((to, 18080)).unwrap();
        assert_eq!(accept_peer(&l), gw, "from the node to {to}");
    }
    // From another pod, to the node's address: masqueraded, so that the
    // answer comes back through the node.
    let _c = with_netns(&b.ns().unwrap(), || TcpStream::connect((gw, 18080)))
        .unwrap()
        .unwrap();
    assert_eq!(accept_peer(&l), gw);
    // Hairpin: the pod through its own hostPort.
    let to = std::net::SocketAddr::from((gw, 18080));
    let c = with_netns(&a.ns().unwrap(), || {
        TcpStream::connect_timeout(&to, std::time::Duration::from_secs(2))
    })
    .unwrap();
    let _c = c.unwrap();
    assert_eq!(accept_peer(&l), gw);

    // Adding again replaces (no duplicates); another pod's rules on the
    // same address (a reused IP) survive the first pod's removal.
    node.add_host_ports("uid-a", ipa, &[tcp]).unwrap();
    let udp = HostPort {
        proto: 17,
        host_port: 5353,
        container_port: 53,
        host_ip: Some(Ipv4Addr::new(10, 87, 6, 1)),
    };
    node.add_host_ports("uid-c", ipa, &[udp]).unwrap();
    assert_eq!(node.pods_with_rules().unwrap(), ["uid-a", "uid-c"]);
    let listed = run_in(&node_ns(), "nft -s list table ip picolet");
    assert_eq!(listed.matches("dport 18080").count(), 2, "{listed}");
    assert!(
        listed.contains("ip daddr 10.87.6.1 udp dport 5353 counter dnat to 10.87.6.2:53"),
        "{listed}"
    );
    node.remove_host_ports("uid-a").unwrap();
    let listed = run_in(&node_ns(), "nft -s list table ip picolet");
    assert!(!listed.contains("uid-a"), "{listed}");
    assert_eq!(listed.matches("pod uid-c").count(), 2, "{listed}");
    assert_eq!(node.pods_with_rules().unwrap(), ["uid-c"]);
    node.remove_host_ports("uid-a").unwrap();
    reset().unwrap();
}
