//! Pod networking from the static binary, over netlink only (no `ip`,
//! `iptables` or `nft`): the bridge `picolet0` with the gateway address,
//! one veth pair per pod (`eth0` inside), IPv4 addresses and the default
//! route ([`rt`]), and picolet's own nftables table `ip picolet` for
//! masquerade and the FORWARD accept ([`nft`]), over the message codec
//! [`nl`]. IP addresses come from [`ipam`]. See `docs/net.md`.
//!
//! Everything here runs on the agent's thread: a netlink request is
//! answered by the kernel inside `sendmsg(2)` (microseconds), so nothing
//! waits. The pod's side is configured through a netlink socket opened
//! inside the pod's network namespace (held by its shim), see
//! [`crate::probe::with_netns`].

pub mod dns;
pub mod ipam;
pub mod nft;
pub mod nl;
pub mod rt;

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use crate::probe::NetNs;
use crate::sys::net::Netlink;
use nl::Sock;

/// The bridge every pod is attached to.
pub const BRIDGE: &str = "picolet0";
/// picolet's nftables table (family `ip`).
pub const TABLE: &str = "picolet";
/// The default pod CIDR (see `docs/net.md` for why this one).
pub const DEFAULT_POD_CIDR: &str = "10.87.0.0/24";

/// An IPv4 network `addr/prefix`, `addr` without host bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub net: Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Cidr, String> {
        let bad = |why: &str| format!("{s:?}: {why}");
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad("want address/prefix"))?;
        let net: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("the prefix length must be 8 to 30"));
        }
        let c = Cidr { net, prefix };
        if u32::from(net) & !c.mask() != 0 {
            return Err(bad("host bits are set"));
        }
        Ok(c)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    /// The first host address: the gateway, on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) + 1)
    }

    /// The number of host addresses (network and broadcast excluded).
    pub fn hosts(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// Host address `i` (1 is the gateway).
    pub fn host(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) + i)
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.net)
    }
}

/// A failed network operation, with what was being done.
pub type Error = nl::Error;
pub type Result<T> = std::result::Result<T, Error>;

fn io_err(what: String, e: std::io::Error) -> Error {
    Error::new(what, e.raw_os_error().unwrap_or(libc::EIO))
}

/// Writes `value` to `/proc/sys/<key>` of the calling thread's network
/// namespace. A missing key (IPv6 disabled) is fine when `optional`.
fn sysctl(key: &str, value: &str, optional: bool) -> Result<()> {
    let path = format!("/proc/sys/{key}");
    match std::fs::write(&path, value) {
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.map_err(|e| io_err(format!("writing {path}"), e)),
    }
}

/// The host end of a pod's veth pair: `pl` and 12 hex digits of a hash
/// of the pod UID (stable across restarts; at most 15 bytes).
pub fn host_veth(uid: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in uid.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!("pl{:012x}", h >> 16)
}

/// The node's network: sockets in the agent's namespace, and the pod CIDR.
#[derive(Debug)]
pub struct NodeNet {
    pub cidr: Cidr,
    route: Sock,
    nf: Sock,
    bridge: u32,
}

/// One `hostPort` mapping of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    /// IP protocol number: 6 (TCP), 17 (UDP), 132 (SCTP).
    pub proto: u8,
    pub host_port: u16,
    pub container_port: u16,
    /// Only traffic to this node address; `None`: every local address.
    pub host_ip: Option<Ipv4Addr>,
}

impl HostPort {
    fn proto_name(&self) -> &'static str {
        match self.proto {
            6 => "tcp",
            17 => "udp",
            _ => "sctp",
        }
    }
}

/// The tag of a pod's rules: `pod <uid> ...`.
fn pod_tag(uid: &str, what: &str) -> String {
    format!("pod {uid} {what}")
}

fn tag_uid(tag: &str) -> Option<&str> {
    tag.strip_prefix("pod ")?.split(' ').next()
}

impl NodeNet {
    /// Sets up the node's side: the bridge with the gateway address, up,
    /// IPv4 forwarding, DAD off for the bridge, and picolet's nftables
    /// table (rebuilt atomically). Idempotent.
    pub fn setup(cidr: Cidr) -> Result<NodeNet> {
        let mut route = Sock::open(Netlink::Route)?;
        rt::add_bridge(&mut route, BRIDGE)?;
        let bridge = rt::link_index(&mut route, BRIDGE)?
            .ok_or_else(|| Error::new(format!("bridge {BRIDGE} vanished"), libc::ENODEV))?;
        sysctl(&format!("net/ipv6/conf/{BRIDGE}/accept_dad"), "0", true)?;
        rt::add_addr(&mut route, bridge, cidr.gateway(), cidr.prefix)?;
        rt::set_up(&mut route, bridge)?;
        sysctl("net/ipv4/ip_forward", "1", false)?;
        // 127.0.0.1:hostPort is DNATed to a pod through the bridge.
        sysctl(
            &format!("net/ipv4/conf/{BRIDGE}/route_localnet"),
            "1",
            false,
        )?;
        let mut nf = Sock::open(Netlink::Netfilter)?;
        // A table as this CIDR wants it is kept (its counters too, and the
        // pods' rules); any other is rebuilt.
        let tags = nft::rule_tags(&mut nf, nft::NFPROTO_IPV4, TABLE)?;
        if !base_tags(cidr).iter().all(|t| tags.contains(t)) {
            let what = "writing nftables table ip picolet";
            nft::commit(&mut nf, what, base_table(cidr))?;
        }
        Ok(NodeNet {
            cidr,
            route,
            nf,
            bridge,
        })
    }

    /// Wires the pod `uid` whose network namespace is `ns`: a veth pair
    /// (`eth0` in the pod, the host end on the bridge), DAD off on both
    /// ends, `ip/prefix` on `eth0`, `lo` and `eth0` up, and the default
    /// route via the gateway. A pair left by an earlier attempt is
    /// replaced.
    pub fn attach(&mut self, uid: &str, ns: &NetNs, ip: Ipv4Addr) -> Result<()> {
        let host = host_veth(uid);
        let (mut pod, ()) = in_netns(ns, || {
            let s = Sock::open(Netlink::Route)?;
            // New links of the namespace take `default`'s settings.
            sysctl("net/ipv6/conf/default/accept_dad", "0", true)?;
            Ok((s, ()))
        })?;
        rt::del_link(&mut self.route, &host)?;
        rt::add_veth(&mut self.route, &host, self.bridge, "eth0", ns.as_fd())?;
        sysctl(&format!("net/ipv6/conf/{host}/accept_dad"), "0", true)?;
        let idx = rt::link_index(&mut self.route, &host)?
            .ok_or_else(|| Error::new(format!("veth {host} vanished"), libc::ENODEV))?;
        rt::set_hairpin(&mut self.route, idx)?;
        rt::set_up(&mut self.route, idx)?;
        let eth0 = rt::link_index(&mut pod, "eth0")?
            .ok_or_else(|| Error::new("eth0 missing in the pod", libc::ENODEV))?;
        rt::add_addr(&mut pod, eth0, ip, self.cidr.prefix)?;
        if let Some(lo) = rt::link_index(&mut pod, "lo")? {
            rt::set_up(&mut pod, lo)?;
        }
        rt::set_up(&mut pod, eth0)?;
        rt::add_default_route(&mut pod, self.cidr.gateway(), eth0)
    }

    /// Adds the DNAT rules of pod `uid` (address `ip`) for `ports`, in
    /// one batch: for each mapping one rule in `prerouting` (from other
    /// hosts and from pods) and one in `output` (from the node itself, to
    /// its own address or to 127.0.0.1), and one hairpin masquerade (the
    /// pod reaching itself through its hostPort). Every rule is tagged
    /// with the pod's UID. Rules the pod has already are replaced. (The
    /// masquerade of pods reaching a hostPort, their own included, is
    /// one rule of the table: see [`base_table`].)
    pub fn add_host_ports(&mut self, uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Result<()> {
        use nft::{Cmp, Rule};
        let mut b = nft::Batch::new(nft::NFPROTO_IPV4, TABLE);
        self.delete_rules_of(&mut b, Some(uid))?;
        for p in ports {
            let mut r = Rule::new();
            match p.host_ip {
                Some(a) => r.ip_net(true, Cmp::Eq, a, 32),
                None => r.daddr_local(),
            };
            r.l4_dport(p.proto, p.host_port)
                .counter()
                .dnat(ip, p.container_port);
            let what = format!("hostport {}/{}", p.host_port, p.proto_name());
            for chain in ["prerouting", "output"] {
                b.add_rule(chain, &r, &pod_tag(uid, &what));
            }
        }
        if b.is_empty() {
            return Ok(());
        }
        nft::commit(
            &mut self.nf,
            &format!("writing the hostPort rules of pod {uid}"),
            b,
        )
    }

    /// Deletes the rules of pod `uid`, only its own (by tag).
    pub fn remove_host_ports(&mut self, uid: &str) -> Result<()> {
        let mut b = nft::Batch::new(nft::NFPROTO_IPV4, TABLE);
        self.delete_rules_of(&mut b, Some(uid))?;
        if b.is_empty() {
            return Ok(());
        }
        nft::commit(&mut self.nf, &format!("deleting the rules of pod {uid}"), b)
    }

    /// The pods (UIDs) that have rules in the table.
    pub fn pods_with_rules(&mut self) -> Result<Vec<String>> {
        let mut uids: Vec<String> = nft::rules(&mut self.nf, nft::NFPROTO_IPV4, TABLE)?
            .iter()
            .filter_map(|r| tag_uid(&r.tag).map(str::to_string))
            .collect();
        uids.sort();
        uids.dedup();
        Ok(uids)
    }

    fn delete_rules_of(&mut self, b: &mut nft::Batch, uid: Option<&str>) -> Result<()> {
        for r in nft::rules(&mut self.nf, nft::NFPROTO_IPV4, TABLE)? {
            if tag_uid(&r.tag).is_some_and(|u| Some(u) == uid) {
                b.del_rule(&r.chain, r.handle);
            }
        }
        Ok(())
    }

    /// Removes the pod's veth pair (both ends); none is fine.
    pub fn detach(&mut self, uid: &str) -> Result<()> {
        rt::del_link(&mut self.route, &host_veth(uid)).map(drop)
    }

    /// The IPv4 address of the link with the default route.
    pub fn default_route_addr(&mut self) -> Result<Option<Ipv4Addr>> {
        rt::default_route_addr(&mut self.route)
    }
}

/// Runs `f` (which opens sockets) inside the namespace `ns`.
fn in_netns<T>(ns: &NetNs, f: impl FnOnce() -> Result<T>) -> Result<T> {
    crate::probe::with_netns(ns, f)
        .map_err(|e| io_err("entering the pod's network namespace".into(), e))?
}

/// The tags (rule user data) of the node's own rules for `cidr`.
pub fn base_tags(cidr: Cidr) -> [String; 5] {
    ["egress", "ingress", "masquerade", "localhost", "hairpin"]
        .map(|what| format!("picolet {what} {cidr}"))
}

/// The batch that (re)creates `ip picolet` from scratch: `add table`,
/// `delete table`, `add table` and the chains and rules, so that one
/// atomic batch replaces whatever an earlier run left.
pub fn base_table(cidr: Cidr) -> nft::Batch {
    use nft::{Cmp, Rule};
    let mut b = nft::Batch::new(nft::NFPROTO_IPV4, TABLE);
    b.add_table().del_table().add_table();
    b.add_chain("forward", "filter", nft::HOOK_FORWARD, 0);
    b.add_chain("prerouting", "nat", nft::HOOK_PREROUTING, -100);
    b.add_chain("output", "nat", nft::HOOK_OUTPUT, -100);
    b.add_chain("postrouting", "nat", nft::HOOK_POSTROUTING, 100);
    let (net, p) = (cidr.net, cidr.prefix);
    let [egress, ingress, masquerade, localhost, hairpin] = base_tags(cidr);
    let mut from_pods = Rule::new();
    from_pods.ip_net(false, Cmp::Eq, net, p).counter().accept();
    b.add_rule("forward", &from_pods, &egress);
    let mut to_pods = Rule::new();
    to_pods.ip_net(true, Cmp::Eq, net, p).counter().accept();
    b.add_rule("forward", &to_pods, &ingress);
    let mut masq = Rule::new();
    masq.ip_net(false, Cmp::Eq, net, p)
        .ip_net(true, Cmp::Neq, net, p)
        .counter()
        .masq();
    b.add_rule("postrouting", &masq, &masquerade);
    // 127.0.0.1:hostPort, DNATed to a pod: the pod must not see (and
    // answer) a loopback source.
    let mut local = Rule::new();
    local
        .ip_net(false, Cmp::Eq, Ipv4Addr::new(127, 0, 0, 0), 8)
        .ip_net(true, Cmp::Eq, net, p)
        .counter()
        .masq();
    b.add_rule("postrouting", &local, &localhost);
    // A pod reaching a hostPort (another pod's, or its own: hairpin): the
    // answer must come back through the node to be un-DNATed, not
    // straight over the bridge (or to the pod itself, a martian source).
    let mut pin = Rule::new();
    pin.ct_dnat()
        .ip_net(false, Cmp::Eq, net, p)
        .ip_net(true, Cmp::Eq, net, p)
        .counter()
        .masq();
    b.add_rule("postrouting", &pin, &hairpin);
    b
}

/// The IPv4 address of the link holding the default route, in the
/// calling thread's namespace.
pub fn default_route_addr() -> Result<Option<Ipv4Addr>> {
    rt::default_route_addr(&mut Sock::open(Netlink::Route)?)
}

/// Deletes picolet's table and bridge (`picolet net reset`). Returns
/// what was removed.
pub fn reset() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut nf = Sock::open(Netlink::Netfilter)?;
    if nft::table_exists(&mut nf, nft::NFPROTO_IPV4, TABLE)? {
        let mut b = nft::Batch::new(nft::NFPROTO_IPV4, TABLE);
        b.del_table();
        nft::commit(&mut nf, "deleting nftables table ip picolet", b)?;
        removed.push(format!("nftables table ip {TABLE}"));
    }
    let mut route = Sock::open(Netlink::Route)?;
    if let Some(bridge) = rt::link_index(&mut route, BRIDGE)? {
        // The host ends of pod veths: ports of the bridge (a pod's shim
        // still holding the other end or not).
        for (name, master) in rt::links(&mut route)? {
            if master == Some(bridge) && rt::del_link(&mut route, &name)? {
                removed.push(format!("veth {name}"));
            }
        }
    }
    if rt::del_link(&mut route, BRIDGE)? {
        removed.push(format!("bridge {BRIDGE}"));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
