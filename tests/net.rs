//! Pod networking end to end. Every agent here runs inside a network
//! namespace made by the test (the "node"), joined by a veth to another
//! one (the "LAN", 10.99.0.0/24: the node is .1, the LAN host .2 and the
//! node's default gateway). Nothing touches the host's own network.
//! `ip`/`nft` (through `nsenter`) only build the fixture and inspect.

mod support;
use picolet::probe::{NetNs, with_netns};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use support::*;

/// The node and LAN namespaces, each held by a `sleep` we started.
struct World {
    node: Child,
    lan: Child,
}

fn holder() -> Child {
    let c = Command::new("unshare")
        .args(["--net", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let path = format!("/proc/{}/ns/net", c.id());
    wait_for(5, "a new network namespace", || {
        std::fs::read_link(&path).ok().filter(|l| *l != own)
    });
    c
}

fn sh_in(ns: &str, cmd: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .args(["sh", "-c", cmd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl World {
    fn new() -> World {
        let w = World {
            node: holder(),
            lan: holder(),
        };
        sh_in(
            &w.node_ns(),
            &format!(
                "ip link set lo up && ip link add eth0 type veth peer name eth0 netns {} && \
                 ip addr add 10.99.0.1/24 dev eth0 && ip link set eth0 up && \
                 ip route add default via 10.99.0.2",
                w.lan.id()
            ),
        );
        sh_in(
            &w.lan_ns(),
            "ip link set lo up && ip addr add 10.99.0.2/24 dev eth0 && ip link set eth0 up",
        );
        w
    }

    fn node_ns(&self) -> String {
        format!("/proc/{}/ns/net", self.node.id())
    }

    fn lan_ns(&self) -> String {
        format!("/proc/{}/ns/net", self.lan.id())
    }

    fn node_sh(&self, cmd: &str) -> String {
        sh_in(&self.node_ns(), cmd)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for c in [&mut self.node, &mut self.lan] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn pod_ip(a: &Agent, name: &str) -> String {
    wait_for(10, &format!("{name}'s podIP"), || {
        a.pod(name)
            .and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .filter(|ip| !ip.is_empty())
    })
}

const WEB: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  hostAliases:
  - {ip: 10.99.0.2, hostnames: [lan.example, lan]}
  containers:
  - name: main
    image: picolet.test/busybox:1
    command: ["sh", "-c", "mkdir -p /tmp/w && echo pod-web > /tmp/w/index.html && echo $POD_IP $HOST_IP > /tmp/env && exec httpd -f -p 8080 -h /tmp/w"]
    ports: [{containerPort: 8080, hostPort: 18080}]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
"#;

/// `GET /` on `addr` from a socket opened in the namespace `ns`.
fn http_get_from(ns: &str, addr: &str) -> String {
    let ns = NetNs::open(ns).unwrap();
    let mut c = with_netns(&ns, || std::net::TcpStream::connect(addr))
        .unwrap()
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// Serves one HTTP request in the LAN namespace; returns the client's
/// address through the join handle.
fn lan_server(w: &World, port: u16) -> std::thread::JoinHandle<String> {
    let ns = NetNs::open(w.lan_ns()).unwrap();
    let l = with_netns(&ns, || TcpListener::bind(("10.99.0.2", port)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        let (mut c, peer) = l.accept().unwrap();
        let mut buf = [0; 1024];
        let _ = c.read(&mut buf).unwrap();
        c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nlan\n")
            .unwrap();
        peer.ip().to_string()
    })
}

#[test]
fn pods_get_an_address_reach_each_other_and_the_lan_masqueraded_and_keep_it_across_a_restart() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let mut a = Agent::start_in(Some(&w.node_ns()), &["--pod-cidr", "10.87.0.0/24"]);
    a.apply("web.yaml", WEB);
    a.apply("client.yaml", &sh_pod("client", "Always", "exec sleep 600"));
    a.wait_running("web", "main", 30);
    a.wait_running("client", "main", 30);
    let web_ip = pod_ip(&a, "web");
    let client_ip = pod_ip(&a, "client");
    assert!(web_ip.starts_with("10.87.0.") && client_ip.starts_with("10.87.0."));
    assert_ne!(web_ip, client_ip);
    let p = a.pod("web").unwrap();
    assert_eq!(p["status"]["podIPs"][0]["ip"], web_ip.as_str());
    assert_eq!(p["status"]["hostIP"], "10.99.0.1");
    assert_eq!(p["status"]["hostIPs"][0]["ip"], "10.99.0.1");

    // The address inside the pod, and the downward API.
    let (code, addr) = a.exec("web", "main", &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert_eq!(code, 0, "{addr}");
    assert!(addr.contains(&format!("inet {web_ip}/24")), "{addr}");
    let (_, route) = a.exec("web", "main", &["ip", "route"]);
    assert!(route.contains("default via 10.87.0.1 dev eth0"), "{route}");
    let (_, env) = a.exec("web", "main", &["cat", "/tmp/env"]);
    assert_eq!(env.trim(), format!("{web_ip} 10.99.0.1"));
    let (_, hosts) = a.exec("web", "main", &["cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("\n{web_ip}\tweb\n")), "{hosts}");
    assert!(
        hosts.ends_with("\n# Entries added by HostAliases.\n10.99.0.2\tlan.example\tlan\n"),
        "{hosts}"
    );

    // Pod to pod by pod IP.
    let url = format!("http://{web_ip}:8080/");
    let got = wait_for(10, "web serving", || {
        let (code, out) = a.exec("client", "main", &["wget", "-q", "-O-", &url]);
        (code == 0).then_some(out)
    });
    assert_eq!(got, "pod-web\n");

    // Pod to the LAN: the server sees the node's address.
    let server = lan_server(&w, 8081);
    let (code, out) = a.exec(
        "client",
        "main",
        &["wget", "-q", "-O-", "http://10.99.0.2:8081/"],
    );
    assert_eq!((code, out.as_str()), (0, "lan\n"));
    assert_eq!(server.join().unwrap(), "10.99.0.1");

    // The hostPort: from the LAN, from the node to its own address and
    // to 127.0.0.1, and from the pod itself (hairpin).
    for (ns, addr) in [
        (w.lan_ns(), "10.99.0.1:18080"),
        (w.node_ns(), "10.99.0.1:18080"),
        (w.node_ns(), "127.0.0.1:18080"),
    ] {
        let got = http_get_from(&ns, addr);
        assert!(got.ends_with("pod-web\n"), "{addr}: {got}");
    }
    let (code, out) = a.exec(
        "web",
        "main",
        &["wget", "-q", "-O-", "http://10.99.0.1:18080/"],
    );
    assert_eq!((code, out.as_str()), (0, "pod-web\n"), "hairpin");
    let (code, out) = a.exec(
        "client",
        "main",
        &["wget", "-q", "-O-", "http://10.99.0.1:18080/"],
    );
    assert_eq!((code, out.as_str()), (0, "pod-web\n"), "from another pod");

    // A second pod wanting the same hostPort is rejected, naming the field.
    a.apply("web2.yaml", &WEB.replace("name: web}", "name: web2}"));
    let p = wait_for(10, "web2 rejected", || {
        a.pod("web2").filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(p["status"]["reason"], "NodePorts");
    let msg = p["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "spec.containers[0].ports[0].hostPort: 18080/TCP is in use by pod default/web"
        ),
        "{msg}"
    );
    a.remove("web2.yaml");

    // `get pods -o wide` shows the IP.
    let wide = String::from_utf8(a.cli(&["get", "pods", "-o", "wide"]).stdout).unwrap();
    assert!(wide.contains(&web_ip), "{wide}");

    // kill -9 and restart: same addresses, nothing duplicated.
    let rules = w.node_sh("nft -s -a list table ip picolet");
    let links = w.node_sh("ip -o link show master picolet0 | wc -l");
    a.kill9();
    a.spawn();
    wait_for(20, "pods adopted", || {
        a.pod("web").filter(|p| p["status"]["phase"] == "Running")
    });
    assert_eq!(pod_ip(&a, "web"), web_ip);
    assert_eq!(pod_ip(&a, "client"), client_ip);
    assert_eq!(w.node_sh("nft -s -a list table ip picolet"), rules);
    assert_eq!(w.node_sh("ip -o link show master picolet0 | wc -l"), links);
    assert_eq!(links.trim(), "2");
    let ipam = a.state().join("net/ipam");
    let mut files: Vec<String> = std::fs::read_dir(&ipam)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("10."))
        .collect();
    files.sort();
    let mut want = vec![web_ip.clone(), client_ip.clone()];
    want.sort();
    assert_eq!(files, want);
    let (code, _) = a.exec("client", "main", &["wget", "-q", "-O-", &url]);
    assert_eq!(code, 0);

    // Deleting a pod removes its veth and frees its address.
    a.remove("web.yaml");
    wait_for(20, "web gone", || a.pod("web").is_none().then_some(()));
    wait_for(10, "web's address freed", || {
        (!ipam.join(&web_ip).exists()).then_some(())
    });
    // Its veth pair goes with its namespace (the kernel's cleanup work).
    wait_for(10, "web's veth gone", || {
        (w.node_sh("ip -o link show master picolet0 | wc -l").trim() == "1").then_some(())
    });
    let rules = w.node_sh("nft list table ip picolet");
    assert!(!rules.contains("dport 18080"), "{rules}");
    a.assert_one_thread();
}

#[test]
fn a_full_pool_fails_the_sandbox_with_the_reason() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // A /30: one address for pods.
    let a = Agent::start_in(Some(&w.node_ns()), &["--pod-cidr", "10.87.1.0/30"]);
    a.apply("one.yaml", &sh_pod("one", "Always", "exec sleep 600"));
    a.wait_running("one", "main", 30);
    assert_eq!(pod_ip(&a, "one"), "10.87.1.2");
    a.apply("two.yaml", &sh_pod("two", "Always", "exec sleep 600"));
    let d = wait_for(20, "two's sandbox failure", || {
        let d = String::from_utf8(a.cli(&["describe", "pod", "two"]).stdout).unwrap();
        d.contains("FailedCreatePodSandBox").then_some(d)
    });
    assert!(
        d.contains("no IP addresses available in range set 10.87.1.2-10.87.1.2"),
        "{d}"
    );
    // The agent is fine, and the pod starts once an address is free.
    a.remove("one.yaml");
    a.wait_running("two", "main", 60);
    assert_eq!(pod_ip(&a, "two"), "10.87.1.2");
}

#[test]
fn net_reset_is_refused_while_the_agent_runs_then_leaves_nothing_behind() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let mut a = Agent::start_in(Some(&w.node_ns()), &["--pod-cidr", "10.87.2.0/24"]);
    a.apply("web.yaml", WEB);
    a.wait_running("web", "main", 30);
    pod_ip(&a, "web");
    let reset = |a: &Agent| {
        Command::new("nsenter")
            .arg(format!("--net={}", w.node_ns()))
            .args([BIN, "net", "reset", "--state-dir"])
            .arg(a.state())
            .output()
            .unwrap()
    };
    let out = reset(&a);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the agent is running"), "{err}");
    assert!(w.node_sh("ip -o link").contains("picolet0"));
    a.kill9();
    let out = reset(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    for want in [
        "removed nftables table ip picolet",
        "removed veth pl",
        "removed bridge picolet0",
        "removed address files",
    ] {
        assert!(said.contains(want), "{want:?} not in:\n{said}");
    }
    assert!(!w.node_sh("ip -o link").contains("picolet0"));
    assert!(
        !w.node_sh("ip -o link").contains("pl"),
        "{}",
        w.node_sh("ip -o link")
    );
    assert!(!w.node_sh("nft list tables").contains("picolet"));
    assert!(!a.state().join("net/ipam").exists());
    let out = reset(&a);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "nothing to remove: no picolet network on this host\n"
    );
}

#[test]
fn a_hundred_pods_created_and_deleted_leave_no_veth_address_rule_or_ipam_file() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let a = Agent::start_in(Some(&w.node_ns()), &["--pod-cidr", "10.87.3.0/24"]);
    let base = w.node_sh("nft -s list table ip picolet");
    // 10 rounds of 10 pods, each with a hostPort: 100 create/delete cycles.
    for round in 0..10 {
        for i in 0..10 {
            let name = format!("p{round}-{i}");
            let yaml = WEB
                .replace("name: web}", &format!("name: {name}}}"))
                .replace("hostPort: 18080", &format!("hostPort: {}", 19000 + i));
            a.apply(&format!("{name}.yaml"), &yaml);
        }
        for i in 0..10 {
            a.wait_running(&format!("p{round}-{i}"), "main", 60);
        }
        let rules = w.node_sh("nft list table ip picolet");
        assert_eq!(rules.matches("dnat to").count(), 20, "{rules}");
        for i in 0..10 {
            a.remove(&format!("p{round}-{i}.yaml"));
        }
        wait_for(30, "the round's pods gone", || {
            a.pods().is_empty().then_some(())
        });
    }
    wait_for(20, "no veth left", || {
        (w.node_sh("ip -o link show master picolet0 | wc -l").trim() == "0").then_some(())
    });
    assert_eq!(w.node_sh("nft -s list table ip picolet"), base);
    let left: Vec<String> = std::fs::read_dir(a.state().join("net/ipam"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    a.assert_one_thread();
}

#[test]
fn host_aliases_and_dns_config_show_up_in_the_files_and_a_host_port_edit_is_readmitted() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let a = Agent::start_in(Some(&w.node_ns()), &["--pod-cidr", "10.87.4.0/24"]);
    // dnsPolicy None: only the pod's dnsConfig.
    let none = sh_pod("none", "Always", "exec sleep 600").replace(
        "spec:\n",
        "spec:\n  dnsPolicy: None\n  dnsConfig:\n    nameservers: [10.99.0.53]\n    \
         searches: [svc.example, example]\n    options:\n    - {name: ndots, value: '2'}\n    \
         - name: edns0\n  hostAliases:\n  - {ip: 10.99.0.2, hostnames: [lan.example]}\n",
    );
    // The host's resolver with three more nameservers: cut to three, with
    // the kubelet's warning.
    let merged = sh_pod("merged", "Always", "exec sleep 600").replace(
        "spec:\n",
        "spec:\n  dnsPolicy: Default\n  dnsConfig:\n    nameservers: [10.99.0.53, 10.99.0.54, 10.99.0.55]\n    \
         searches: [extra.example]\n",
    );
    a.apply("none.yaml", &none);
    a.apply("merged.yaml", &merged);
    a.apply("web.yaml", WEB);
    a.wait_running("none", "main", 30);
    a.wait_running("merged", "main", 30);
    a.wait_running("web", "main", 30);
    let (_, resolv) = a.exec("none", "main", &["cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        "search svc.example example\nnameserver 10.99.0.53\noptions ndots:2 edns0\n"
    );
    let (_, hosts) = a.exec("none", "main", &["cat", "/etc/hosts"]);
    let ip = pod_ip(&a, "none");
    assert!(hosts.contains(&format!("\n{ip}\tnone\n")), "{hosts}");
    assert!(
        hosts.ends_with("\n# Entries added by HostAliases.\n10.99.0.2\tlan.example\n"),
        "{hosts}"
    );
    // What the host's file gives, then the pod's.
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut want: Vec<String> = host
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .collect();
    for ns in ["10.99.0.53", "10.99.0.54", "10.99.0.55"] {
        if !want.iter().any(|w| w == ns) {
            want.push(ns.into());
        }
    }
    let cut = want.len() > 3;
    want.truncate(3);
    let (_, resolv) = a.exec("merged", "main", &["cat", "/etc/resolv.conf"]);
    let servers: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert_eq!(servers, want, "{resolv}");
    let search: Vec<&str> = resolv.lines().next().unwrap().split(' ').collect();
    assert_eq!(
        (search[0], search.last()),
        ("search", Some(&"extra.example")),
        "{resolv}"
    );
    let d = String::from_utf8(a.cli(&["describe", "pod", "merged"]).stdout).unwrap();
    assert_eq!(
        d.contains("DNSConfigForming") && d.contains(&format!(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
            want.join(" ")
        )),
        cut,
        "{d}"
    );

    // An edit that takes web's hostPort is refused naming the field; the
    // pod keeps running with its old spec.
    let uid = a.pod("none").unwrap()["metadata"]["uid"].clone();
    let taken = none.replace(
        "    command:",
        "    ports: [{containerPort: 8080, hostPort: 18080}]\n    command:",
    );
    assert_ne!(taken, none);
    a.apply("none.yaml", &taken);
    let d = wait_for(10, "the edit refused", || {
        let d = String::from_utf8(a.cli(&["describe", "pod", "none"]).stdout).unwrap();
        d.contains("NodePorts").then_some(d)
    });
    assert!(
        d.contains("spec.containers[0].ports[0].hostPort: 18080/TCP is in use by pod default/web"),
        "{d}"
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let p = a.pod("none").unwrap();
    assert_eq!(p["metadata"]["uid"], uid);
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    let got = http_get_from(&w.node_ns(), "127.0.0.1:18080");
    assert!(got.ends_with("pod-web\n"), "{got}");
}
