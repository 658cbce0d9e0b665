//! rtnetlink requests: links (bridge, veth, up, master, namespace),
//! IPv4 addresses and routes. Each is one message and its answer.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::nl::{Buf, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, Result, Sock, attrs};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_F_NODAD: u8 = 0x02;

const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;

const AF_INET: u8 = libc::AF_INET as u8;
const IFF_UP: u32 = libc::IFF_UP as u32;

/// `struct ifinfomsg` (16 bytes).
pub fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// `struct ifaddrmsg` (8 bytes).
fn ifaddrmsg(prefix: u8, flags: u8, index: u32) -> [u8; 8] {
    let mut h = [AF_INET, prefix, flags, 0, 0, 0, 0, 0];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h
}

/// The request creating a bridge `name`, down.
pub fn new_bridge_msg(name: &str) -> Buf {
    let mut b = Buf::new();
    b.begin(
        RTM_NEWLINK,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        &ifinfomsg(0, 0, 0),
    );
    b.str(IFLA_IFNAME, name);
    b.nest(IFLA_LINKINFO).str(IFLA_INFO_KIND, "bridge").close();
    b.end();
    b
}

/// The request creating a veth pair: `name` here, down, with `master`,
/// and its peer `peer` created directly in the namespace `peer_ns`.
pub fn new_veth_msg(name: &str, master: u32, peer: &str, peer_ns: i32) -> Buf {
    let mut b = Buf::new();
    b.begin(
        RTM_NEWLINK,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        &ifinfomsg(0, 0, 0),
    );
    b.str(IFLA_IFNAME, name).u32(IFLA_MASTER, master);
    b.nest(IFLA_LINKINFO).str(IFLA_INFO_KIND, "veth");
    b.nest(IFLA_INFO_DATA).nest(VETH_INFO_PEER);
    b.bytes.extend_from_slice(&ifinfomsg(0, 0, 0));
    b.str(IFLA_IFNAME, peer).u32(IFLA_NET_NS_FD, peer_ns as u32);
    b.close().close().close();
    b.end();
    b
}

/// Creates the bridge `name`; one that exists already is fine.
pub fn add_bridge(s: &mut Sock, name: &str) -> Result<()> {
    match s.exchange(
        &format!("creating bridge {name}"),
        &new_bridge_msg(name),
        |_| {},
    ) {
        Err(e) if e.exists() => Ok(()),
        r => r,
    }
}

/// Creates the veth pair `name` (attached to the bridge `master`) and
/// `peer`, the latter in the network namespace `peer_ns`.
pub fn add_veth(
    s: &mut Sock,
    name: &str,
    master: u32,
    peer: &str,
    peer_ns: BorrowedFd<'_>,
) -> Result<()> {
    let msg = new_veth_msg(name, master, peer, peer_ns.as_raw_fd());
    s.exchange(&format!("creating veth {name}"), &msg, |_| {})
}

/// The index of the link `name`; `None` if there is none.
pub fn link_index(s: &mut Sock, name: &str) -> Result<Option<u32>> {
    let mut b = Buf::new();
    b.begin(RTM_GETLINK, NLM_F_ACK, &ifinfomsg(0, 0, 0));
    b.str(IFLA_IFNAME, name);
    b.end();
    let mut index = None;
    let r = s.exchange(&format!("looking up link {name}"), &b, |m| {
        if m.ty == RTM_NEWLINK && m.payload.len() >= 16 {
            index = Some(i32::from_ne_bytes(m.payload[4..8].try_into().unwrap()) as u32);
        }
    });
    match r {
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e),
        Ok(()) => Ok(index),
    }
}

/// The name and master (bridge) index of every link of the namespace.
pub fn links(s: &mut Sock) -> Result<Vec<(String, Option<u32>)>> {
    let mut b = Buf::new();
    b.begin(RTM_GETLINK, NLM_F_DUMP, &ifinfomsg(0, 0, 0));
    b.end();
    let mut names = Vec::new();
    s.exchange("listing links", &b, |m| {
        if m.ty == RTM_NEWLINK && m.payload.len() >= 16 {
            let (mut name, mut master) = (String::new(), None);
            for (ty, v) in attrs(&m.payload[16..]) {
                match (ty, <[u8; 4]>::try_from(v)) {
                    (IFLA_IFNAME, _) => {
                        let v = v.strip_suffix(&[0]).unwrap_or(v);
                        name = String::from_utf8_lossy(v).into_owned();
                    }
                    (IFLA_MASTER, Ok(v)) => master = Some(u32::from_ne_bytes(v)),
                    _ => {}
                }
            }
            names.push((name, master));
        }
    })?;
    Ok(names)
}

/// Sets the link `index` up.
pub fn set_up(s: &mut Sock, index: u32) -> Result<()> {
    let mut b = Buf::new();
    b.begin(
        RTM_NEWLINK,
        NLM_F_ACK,
        &ifinfomsg(index as i32, IFF_UP, IFF_UP),
    );
    b.end();
    s.exchange(&format!("setting link {index} up"), &b, |_| {})
}

/// Turns hairpin mode on for the bridge port `index`: a frame may leave
/// by the port it came in. With `br_netfilter`, a pod reaching its own
/// hostPort is DNATed at the bridge and sent back to its own port.
pub fn set_hairpin(s: &mut Sock, index: u32) -> Result<()> {
    const RTM_SETLINK: u16 = 19;
    const IFLA_PROTINFO: u16 = 12;
    const IFLA_BRPORT_MODE: u16 = 4;
    let mut h = ifinfomsg(index as i32, 0, 0);
    h[0] = libc::AF_BRIDGE as u8;
    let mut b = Buf::new();
    b.begin(RTM_SETLINK, NLM_F_ACK, &h);
    b.nest(IFLA_PROTINFO).attr(IFLA_BRPORT_MODE, &[1]).close();
    b.end();
    s.exchange(&format!("setting hairpin mode on link {index}"), &b, |_| {})
}

/// Deletes the link `name`; `Ok(false)` if there was none.
pub fn del_link(s: &mut Sock, name: &str) -> Result<bool> {
    let mut b = Buf::new();
    b.begin(RTM_DELLINK, NLM_F_ACK, &ifinfomsg(0, 0, 0));
    b.str(IFLA_IFNAME, name);
    b.end();
    match s.exchange(&format!("deleting link {name}"), &b, |_| {}) {
        Ok(()) => Ok(true),
        Err(e) if e.not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The request adding `addr/prefix` to the link `index`, without DAD.
pub fn new_addr_msg(index: u32, addr: Ipv4Addr, prefix: u8) -> Buf {
    let mut b = Buf::new();
    b.begin(
        RTM_NEWADDR,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        &ifaddrmsg(prefix, IFA_F_NODAD, index),
    );
    b.attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets());
    let host_bits = u32::MAX.checked_shr(prefix as u32).unwrap_or(0);
    let bcast = Ipv4Addr::from(u32::from(addr) | host_bits);
    if prefix < 31 {
        b.attr(IFA_BROADCAST, &bcast.octets());
    }
    b.end();
    b
}

/// Adds `addr/prefix` to the link `index`; present already is fine.
pub fn add_addr(s: &mut Sock, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    let msg = new_addr_msg(index, addr, prefix);
    match s.exchange(&format!("adding address {addr}/{prefix}"), &msg, |_| {}) {
        Err(e) if e.exists() => Ok(()),
        r => r,
    }
}

/// The request adding a default route via `gw` on the link `oif`.
pub fn new_default_route_msg(gw: Ipv4Addr, oif: u32) -> Buf {
    let mut b = Buf::new();
    let rtmsg = [
        AF_INET,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        0,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ];
    b.begin(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &rtmsg);
    b.attr(RTA_GATEWAY, &gw.octets()).u32(RTA_OIF, oif);
    b.end();
    b
}

pub fn add_default_route(s: &mut Sock, gw: Ipv4Addr, oif: u32) -> Result<()> {
    let msg = new_default_route_msg(gw, oif);
    s.exchange(&format!("adding the default route via {gw}"), &msg, |_| {})
}

/// The first IPv4 address of the link holding the main table's IPv4
/// default route; `None` without a default route or an address on it.
pub fn default_route_addr(s: &mut Sock) -> Result<Option<Ipv4Addr>> {
    let mut b = Buf::new();
    b.begin(
        RTM_GETROUTE,
        NLM_F_DUMP,
        &[AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    b.end();
    let mut oif = None;
    s.exchange("listing routes", &b, |m| {
        let p = m.payload;
        if p.len() < 12 || p[1] != 0 || oif.is_some() {
            return;
        }
        let mut table = p[4] as u32;
        let mut out = None;
        for (ty, v) in attrs(&p[12..]) {
            match (ty, <[u8; 4]>::try_from(v)) {
                (RTA_TABLE, Ok(v)) => table = u32::from_ne_bytes(v),
                (RTA_OIF, Ok(v)) => out = Some(u32::from_ne_bytes(v)),
                _ => {}
            }
        }
        if table == RT_TABLE_MAIN as u32 {
            oif = out;
        }
    })?;
    let Some(oif) = oif else { return Ok(None) };
    let mut b = Buf::new();
    b.begin(RTM_GETADDR, NLM_F_DUMP, &ifaddrmsg(0, 0, 0));
    b.end();
    let mut addr = None;
    s.exchange("listing addresses", &b, |m| {
        let p = m.payload;
        if p.len() < 8 || addr.is_some() || u32::from_ne_bytes(p[4..8].try_into().unwrap()) != oif {
            return;
        }
        for (ty, v) in attrs(&p[8..]) {
            if let (IFA_LOCAL, Ok(v)) = (ty, <[u8; 4]>::try_from(v)) {
                addr = Some(Ipv4Addr::from(v));
            }
        }
    })?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(b: &Buf) -> &[u8] {
        &b.bytes[16..]
    }

    #[test]
    fn a_bridge_request_names_the_link_and_the_kind() {
        let b = new_bridge_msg("picolet0");
        assert_eq!(
            u16::from_ne_bytes(b.bytes[4..6].try_into().unwrap()),
            RTM_NEWLINK
        );
        assert_eq!(u16::from_ne_bytes(b.bytes[6..8].try_into().unwrap()), 0x605);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[0u8; 16][..],
            &13u16.to_ne_bytes(), &3u16.to_ne_bytes(), b"picolet0\0\0\0\0",
            &16u16.to_ne_bytes(), &(18u16 | 0x8000).to_ne_bytes(),
            &11u16.to_ne_bytes(), &1u16.to_ne_bytes(), b"bridge\0\0",
        ]
        .concat();
        assert_eq!(body(&b), want);
    }

    #[test]
    fn a_veth_request_nests_the_peer_with_its_namespace_fd() {
        let b = new_veth_msg("pv1", 7, "eth0", 9);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[0u8; 16][..],
            &8u16.to_ne_bytes(), &3u16.to_ne_bytes(), b"pv1\0",
            &8u16.to_ne_bytes(), &10u16.to_ne_bytes(), &7u32.to_ne_bytes(),
            &60u16.to_ne_bytes(), &(18u16 | 0x8000).to_ne_bytes(),
            &9u16.to_ne_bytes(), &1u16.to_ne_bytes(), b"veth\0\0\0\0",
            &44u16.to_ne_bytes(), &(2u16 | 0x8000).to_ne_bytes(),
            &40u16.to_ne_bytes(), &(1u16 | 0x8000).to_ne_bytes(),
            &[0u8; 16],
            &9u16.to_ne_bytes(), &3u16.to_ne_bytes(), b"eth0\0\0\0\0",
            &8u16.to_ne_bytes(), &28u16.to_ne_bytes(), &9u32.to_ne_bytes(),
        ]
        .concat();
        assert_eq!(body(&b), want);
    }

    #[test]
    fn an_address_request_carries_local_address_and_broadcast_without_dad() {
        let b = new_addr_msg(3, Ipv4Addr::new(10, 42, 0, 5), 24);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[2u8, 24, IFA_F_NODAD, 0][..], &3u32.to_ne_bytes(),
            &8u16.to_ne_bytes(), &2u16.to_ne_bytes(), &[10, 42, 0, 5],
            &8u16.to_ne_bytes(), &1u16.to_ne_bytes(), &[10, 42, 0, 5],
            &8u16.to_ne_bytes(), &4u16.to_ne_bytes(), &[10, 42, 0, 255],
        ]
        .concat();
        assert_eq!(body(&b), want);
    }

    #[test]
    fn a_default_route_request_has_no_destination_and_a_gateway() {
        let b = new_default_route_msg(Ipv4Addr::new(10, 42, 0, 1), 2);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[2u8, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0][..],
            &8u16.to_ne_bytes(), &5u16.to_ne_bytes(), &[10, 42, 0, 1],
            &8u16.to_ne_bytes(), &4u16.to_ne_bytes(), &2u32.to_ne_bytes(),
        ]
        .concat();
        assert_eq!(body(&b), want);
    }
}
