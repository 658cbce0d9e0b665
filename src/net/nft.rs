//! nftables over nfnetlink, without `nft` or libnftnl: a batch
//! (`NFNL_MSG_BATCH_BEGIN` .. `NFNL_MSG_BATCH_END`) of table, chain and
//! rule messages that the kernel applies atomically, all or nothing.
//!
//! A rule is a list of expressions working on registers: `payload` loads
//! header bytes into a register, `bitwise` masks it, `cmp` compares it
//! (a failed comparison ends the rule), `meta` loads packet metadata,
//! `immediate` sets the verdict register, `nat`/`masq` rewrite addresses.
//! Values are in network byte order, as the kernel compares raw bytes.

use std::net::Ipv4Addr;

use super::nl::{Buf, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, Result, Sock};

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

/// The IPv4 family of a table (`ip`).
pub const NFPROTO_IPV4: u8 = 2;
/// Netfilter hooks.
pub const HOOK_PREROUTING: u32 = 0;
pub const HOOK_INPUT: u32 = 1;
pub const HOOK_FORWARD: u32 = 2;
pub const HOOK_OUTPUT: u32 = 3;
pub const HOOK_POSTROUTING: u32 = 4;
pub const NF_ACCEPT: u32 = 1;
const REG_VERDICT: u32 = 0;
/// The first 32-bit data registers (`NFT_REG32_00`, `_01`).
const REG1: u32 = 8;
const REG2: u32 = 9;
/// `meta` keys.
pub const META_L4PROTO: u32 = 16;
/// `fib` result `type` (address type) and `RTN_LOCAL`.
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;

/// Comparison operators of `cmp`.
#[derive(Debug, Clone, Copy)]
pub enum Cmp {
    Eq = 0,
    Neq = 1,
}

/// Header bases of `payload`.
#[derive(Debug, Clone, Copy)]
pub enum Base {
    Network = 1,
    Transport = 2,
}

/// A rule's expressions, written into a message as they are added.
#[derive(Debug, Default)]
pub struct Rule {
    exprs: Buf,
}

impl Rule {
    pub fn new() -> Rule {
        Rule::default()
    }

    fn expr(&mut self, name: &str, data: impl FnOnce(&mut Buf)) -> &mut Rule {
        let b = &mut self.exprs;
        b.nest(NFTA_LIST_ELEM).str(NFTA_EXPR_NAME, name);
        b.nest(NFTA_EXPR_DATA);
        data(b);
        b.close().close();
        self
    }

    /// `payload load <len>b @ <base> + <offset> => reg 1`
    pub fn payload(&mut self, base: Base, offset: u32, len: u32) -> &mut Rule {
        self.expr("payload", |b| {
            b.be32(1, REG1)
                .be32(2, base as u32)
                .be32(3, offset)
                .be32(4, len);
        })
    }

    /// `bitwise reg 1 = (reg 1 & mask) ^ 0`
    pub fn mask(&mut self, mask: &[u8]) -> &mut Rule {
        self.expr("bitwise", |b| {
            b.be32(1, REG1).be32(2, REG1).be32(3, mask.len() as u32);
            b.nest(4).attr(NFTA_DATA_VALUE, mask).close();
            b.nest(5)
                .attr(NFTA_DATA_VALUE, &vec![0; mask.len()])
                .close();
        })
    }

    /// `cmp <op> reg 1 <value>`
    pub fn cmp(&mut self, op: Cmp, value: &[u8]) -> &mut Rule {
        self.expr("cmp", |b| {
            b.be32(1, REG1).be32(2, op as u32);
            b.nest(3).attr(NFTA_DATA_VALUE, value).close();
        })
    }

    /// `meta load <key> => reg 1`
    pub fn meta(&mut self, key: u32) -> &mut Rule {
        self.expr("meta", |b| {
            b.be32(1, REG1).be32(2, key);
        })
    }

    /// `immediate reg 1 <value>`
    pub fn load(&mut self, value: &[u8]) -> &mut Rule {
        self.expr("immediate", |b| {
            b.be32(1, REG1);
            b.nest(2).attr(NFTA_DATA_VALUE, value).close();
        })
    }

    /// `immediate reg 2 <value>`
    pub fn load2(&mut self, value: &[u8]) -> &mut Rule {
        self.expr("immediate", |b| {
            b.be32(1, REG2);
            b.nest(2).attr(NFTA_DATA_VALUE, value).close();
        })
    }

    /// `fib daddr type local`: the destination is an address of this host.
    pub fn daddr_local(&mut self) -> &mut Rule {
        self.expr("fib", |b| {
            b.be32(1, REG1)
                .be32(2, NFT_FIB_RESULT_ADDRTYPE)
                .be32(3, NFTA_FIB_F_DADDR);
        });
        // The address type is a host-order u32 in the register.
        self.cmp(Cmp::Eq, &RTN_LOCAL.to_ne_bytes())
    }

    /// `meta l4proto <proto> th dport <port>`
    pub fn l4_dport(&mut self, proto: u8, port: u16) -> &mut Rule {
        self.meta(META_L4PROTO).cmp(Cmp::Eq, &[proto]);
        self.payload(Base::Transport, 2, 2)
            .cmp(Cmp::Eq, &port.to_be_bytes())
    }

    /// `dnat to <addr>:<port>`
    pub fn dnat(&mut self, addr: Ipv4Addr, port: u16) -> &mut Rule {
        self.load(&addr.octets()).load2(&port.to_be_bytes());
        self.expr("nat", |b| {
            b.be32(1, 1) // NFT_NAT_DNAT
                .be32(2, NFPROTO_IPV4 as u32)
                .be32(3, REG1)
                .be32(5, REG2);
        })
    }

    /// `ct status dnat`: the connection's destination was rewritten.
    pub fn ct_dnat(&mut self) -> &mut Rule {
        const NFT_CT_STATUS: u32 = 2;
        const IPS_DST_NAT: u32 = 1 << 5;
        self.expr("ct", |b| {
            b.be32(1, REG1).be32(2, NFT_CT_STATUS);
        });
        self.mask(&IPS_DST_NAT.to_ne_bytes())
            .cmp(Cmp::Neq, &0u32.to_ne_bytes())
    }

    /// `counter`
    pub fn counter(&mut self) -> &mut Rule {
        self.expr("counter", |_| {})
    }

    /// The verdict `accept`.
    pub fn accept(&mut self) -> &mut Rule {
        self.expr("immediate", |b| {
            b.be32(1, REG_VERDICT);
            b.nest(2)
                .nest(NFTA_DATA_VERDICT)
                .be32(NFTA_VERDICT_CODE, NF_ACCEPT);
            b.close().close();
        })
    }

    /// `masquerade`
    pub fn masq(&mut self) -> &mut Rule {
        self.expr("masq", |_| {})
    }

    /// `ip saddr` (or `daddr`) `<op> net/prefix`
    pub fn ip_net(&mut self, dst: bool, op: Cmp, net: Ipv4Addr, prefix: u8) -> &mut Rule {
        let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0));
        self.payload(Base::Network, if dst { 16 } else { 12 }, 4);
        if prefix < 32 {
            self.mask(&mask.octets());
        }
        self.cmp(op, &net.octets())
    }
}

/// A batch of nftables messages in the table `table` of `family`.
#[derive(Debug)]
pub struct Batch {
    buf: Buf,
    family: u8,
    table: String,
}

fn nfgenmsg(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

const fn nft(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

impl Batch {
    pub fn new(family: u8, table: &str) -> Batch {
        let mut buf = Buf::new();
        buf.begin(NFNL_MSG_BATCH_BEGIN, 0, &nfgenmsg(0, NFNL_SUBSYS_NFTABLES));
        buf.end();
        Batch {
            buf,
            family,
            table: table.to_string(),
        }
    }

    fn msg(&mut self, ty: u16, flags: u16) -> &mut Buf {
        self.buf
            .begin(nft(ty), flags | NLM_F_ACK, &nfgenmsg(self.family, 0));
        &mut self.buf
    }

    /// `add table` (no error if it exists).
    pub fn add_table(&mut self) -> &mut Batch {
        let t = self.table.clone();
        self.msg(NFT_MSG_NEWTABLE, NLM_F_CREATE)
            .str(NFTA_TABLE_NAME, &t);
        self.buf.end();
        self
    }

    /// `delete table` (an error if it does not exist: add it first).
    pub fn del_table(&mut self) -> &mut Batch {
        let t = self.table.clone();
        self.msg(NFT_MSG_DELTABLE, 0).str(NFTA_TABLE_NAME, &t);
        self.buf.end();
        self
    }

    /// `add chain` of `kind` (`filter`, `nat`) on `hook` at `priority`,
    /// policy accept.
    pub fn add_chain(&mut self, name: &str, kind: &str, hook: u32, priority: i32) -> &mut Batch {
        let t = self.table.clone();
        let b = self.msg(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
        b.str(NFTA_CHAIN_TABLE, &t).str(NFTA_CHAIN_NAME, name);
        b.nest(NFTA_CHAIN_HOOK)
            .be32(NFTA_HOOK_HOOKNUM, hook)
            .be32(NFTA_HOOK_PRIORITY, priority as u32)
            .close();
        b.be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            .str(NFTA_CHAIN_TYPE, kind);
        self.buf.end();
        self
    }

    /// `add rule` at the end of `chain`, with `tag` as its user data.
    pub fn add_rule(&mut self, chain: &str, rule: &Rule, tag: &str) -> &mut Batch {
        let t = self.table.clone();
        let b = self.msg(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        b.str(NFTA_RULE_TABLE, &t).str(NFTA_RULE_CHAIN, chain);
        b.nest(NFTA_RULE_EXPRESSIONS);
        b.bytes.extend_from_slice(&rule.exprs.bytes);
        b.close();
        if !tag.is_empty() {
            b.attr(NFTA_RULE_USERDATA, &comment_udata(tag));
        }
        self.buf.end();
        self
    }

    /// `delete rule` `handle` of `chain`.
    pub fn del_rule(&mut self, chain: &str, handle: u64) -> &mut Batch {
        let t = self.table.clone();
        let b = self.msg(NFT_MSG_DELRULE, 0);
        b.str(NFTA_RULE_TABLE, &t).str(NFTA_RULE_CHAIN, chain);
        b.attr(NFTA_RULE_HANDLE, &handle.to_be_bytes());
        self.buf.end();
        self
    }

    /// Whether nothing was added since [`Batch::new`].
    pub fn is_empty(&self) -> bool {
        self.buf.bytes.len() <= 20
    }

    /// The batch's bytes, `NFNL_MSG_BATCH_END` appended.
    pub fn finish(mut self) -> Buf {
        self.buf
            .begin(NFNL_MSG_BATCH_END, 0, &nfgenmsg(0, NFNL_SUBSYS_NFTABLES));
        self.buf.end();
        self.buf
    }
}

/// A rule comment as `nft` writes and shows it: one TLV of libnftnl's
/// user data (type 0, `NFTNL_UDATA_RULE_COMMENT`; length; the text with
/// its NUL), at most 255 bytes.
fn comment_udata(tag: &str) -> Vec<u8> {
    let text = &tag.as_bytes()[..tag.len().min(254)];
    let mut v = vec![0, text.len() as u8 + 1];
    v.extend_from_slice(text);
    v.push(0);
    v
}

/// The comment of a rule's user data, if it has one.
fn udata_comment(mut v: &[u8]) -> String {
    while let [ty, len, rest @ ..] = v {
        let (val, next) = rest.split_at((*len as usize).min(rest.len()));
        if *ty == 0 {
            return String::from_utf8_lossy(val.strip_suffix(&[0]).unwrap_or(val)).into_owned();
        }
        v = next;
    }
    String::new()
}

/// Sends `batch`: the kernel applies all of it or none.
pub fn commit(s: &mut Sock, what: &str, batch: Batch) -> Result<()> {
    s.exchange(what, &batch.finish(), |_| {})
}

/// Whether the table `table` of `family` exists.
pub fn table_exists(s: &mut Sock, family: u8, table: &str) -> Result<bool> {
    let mut b = Buf::new();
    b.begin(nft(NFT_MSG_GETTABLE), NLM_F_ACK, &nfgenmsg(family, 0));
    b.str(NFTA_TABLE_NAME, table);
    b.end();
    match s.exchange(&format!("looking up table {table}"), &b, |_| {}) {
        Ok(()) => Ok(true),
        Err(e) if e.not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// One rule as listed: its chain, handle and tag (user data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub chain: String,
    pub handle: u64,
    pub tag: String,
}

/// Every rule of `table`, in order.
pub fn rules(s: &mut Sock, family: u8, table: &str) -> Result<Vec<Listed>> {
    let mut b = Buf::new();
    b.begin(
        nft(NFT_MSG_GETRULE),
        super::nl::NLM_F_DUMP,
        &nfgenmsg(family, 0),
    );
    b.str(NFTA_RULE_TABLE, table);
    b.end();
    let mut rules = Vec::new();
    let text = |v: &[u8]| String::from_utf8_lossy(v.strip_suffix(&[0]).unwrap_or(v)).into_owned();
    let r = s.exchange("listing rules", &b, |m| {
        if m.ty != nft(NFT_MSG_NEWRULE) || m.payload.len() < 4 {
            return;
        }
        let mut in_table = false;
        let mut rule = Listed {
            chain: String::new(),
            handle: 0,
            tag: String::new(),
        };
        for (ty, v) in super::nl::attrs(&m.payload[4..]) {
            match ty {
                NFTA_RULE_TABLE => in_table = text(v) == table,
                NFTA_RULE_CHAIN => rule.chain = text(v),
                NFTA_RULE_HANDLE => {
                    rule.handle = v.try_into().map_or(0, u64::from_be_bytes);
                }
                NFTA_RULE_USERDATA => rule.tag = udata_comment(v),
                _ => {}
            }
        }
        if in_table {
            rules.push(rule);
        }
    });
    match r {
        Err(e) if e.not_found() => Ok(Vec::new()),
        r => r.map(|()| rules),
    }
}

/// A chain of any table, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`, or the number.
    pub family: String,
    pub table: String,
    pub name: String,
    /// Base chains: the hook and the policy (`NF_ACCEPT` 1, `NF_DROP` 0).
    pub hook: Option<u32>,
    pub policy: Option<u32>,
}

fn family_name(f: u8) -> String {
    match f {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        n => n.to_string(),
    }
}

/// Every chain of every nftables table (iptables-nft's included).
pub fn chains(s: &mut Sock) -> Result<Vec<Chain>> {
    let mut b = Buf::new();
    b.begin(
        nft(NFT_MSG_GETCHAIN),
        super::nl::NLM_F_DUMP,
        &nfgenmsg(0, 0),
    );
    b.end();
    let mut out = Vec::new();
    let text = |v: &[u8]| String::from_utf8_lossy(v.strip_suffix(&[0]).unwrap_or(v)).into_owned();
    let be32 = |v: &[u8]| v.try_into().ok().map(u32::from_be_bytes);
    s.exchange("listing nftables chains", &b, |m| {
        if m.ty != nft(NFT_MSG_NEWCHAIN) || m.payload.len() < 4 {
            return;
        }
        let mut c = Chain {
            family: family_name(m.payload[0]),
            table: String::new(),
            name: String::new(),
            hook: None,
            policy: None,
        };
        for (ty, v) in super::nl::attrs(&m.payload[4..]) {
            match ty {
                NFTA_CHAIN_TABLE => c.table = text(v),
                NFTA_CHAIN_NAME => c.name = text(v),
                NFTA_CHAIN_POLICY => c.policy = be32(v),
                NFTA_CHAIN_HOOK => {
                    for (t, hv) in super::nl::attrs(v) {
                        if t == NFTA_HOOK_HOOKNUM {
                            c.hook = be32(hv);
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(c);
    })?;
    Ok(out)
}

/// The base chains on the IPv4 forward path (families `ip` and `inet`)
/// whose policy is drop: they drop pod traffic whatever picolet's own
/// table accepts (see docs/net.md).
pub fn forward_drop_chains(s: &mut Sock) -> Result<Vec<Chain>> {
    Ok(chains(s)?
        .into_iter()
        .filter(|c| {
            (c.family == "ip" || c.family == "inet")
                && c.hook == Some(HOOK_FORWARD)
                && c.policy == Some(0)
        })
        .collect())
}

/// The tags of every rule of `table`, in order.
pub fn rule_tags(s: &mut Sock, family: u8, table: &str) -> Result<Vec<String>> {
    Ok(rules(s, family, table)?
        .into_iter()
        .map(|r| r.tag)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_framed_by_begin_and_end_for_the_nftables_subsystem() {
        let mut b = Batch::new(NFPROTO_IPV4, "t");
        b.add_table();
        let buf = b.finish();
        let msgs: Vec<_> = super::super::nl::messages(&buf.bytes)
            .collect::<Option<_>>()
            .unwrap();
        let types: Vec<u16> = msgs.iter().map(|m| m.ty).collect();
        assert_eq!(types, vec![0x10, 0x0a00, 0x11]);
        assert_eq!(msgs[0].payload, &[0, 0, 0, 10]);
        assert_eq!(msgs[1].flags, 0x405);
        #[rustfmt::skip]
        let want: Vec<u8> = [&[2u8, 0, 0, 0][..], &6u16.to_ne_bytes(), &1u16.to_ne_bytes(), b"t\0\0\0"].concat();
        assert_eq!(msgs[1].payload, want);
    }

    #[test]
    fn a_tag_is_an_nft_comment_and_reads_back() {
        assert_eq!(comment_udata("ab"), [0, 3, b'a', b'b', 0]);
        assert_eq!(udata_comment(&[1, 1, 9, 0, 3, b'a', b'b', 0]), "ab");
        assert_eq!(udata_comment(&[1, 5, 9]), "");
    }

    #[test]
    fn a_source_network_match_loads_masks_and_compares_in_network_order() {
        let mut r = Rule::new();
        r.ip_net(false, Cmp::Eq, Ipv4Addr::new(10, 87, 0, 0), 24);
        let names: Vec<String> = super::super::nl::attrs(&r.exprs.bytes)
            .map(|(_, e)| {
                let (_, n) = super::super::nl::attrs(e).next().unwrap();
                String::from_utf8_lossy(n)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["payload", "bitwise", "cmp"]);
        let b = &r.exprs.bytes;
        let find = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
        // payload: dreg 8, base network (1), offset 12, len 4, big endian
        assert!(find(&[
            8, 0, 1, 0, 0, 0, 0, 8, 8, 0, 2, 0, 0, 0, 0, 1, 8, 0, 3, 0, 0, 0, 0, 12
        ]));
        assert!(find(&[8, 0, 1, 0, 255, 255, 255, 0])); // mask value
        assert!(find(&[8, 0, 1, 0, 10, 87, 0, 0])); // compared value
    }
}
