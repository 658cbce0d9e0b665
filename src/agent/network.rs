//! The pod network as the agent runs it ([`crate::net`]): the node's
//! bridge and table at start, then per pod, when its shim is up and
//! before its sandbox counts as ready (so before any container starts):
//! an address from the IPAM, the veth pair and the routes; undone when
//! the pod is removed. All on the agent's thread: each step is a netlink
//! request the kernel answers within the system call.

use super::Agent;
use crate::lifecycle::Input;
use crate::net::{HostPort, NodeNet, ipam::Ipam};
use crate::probe::NetNs;
use crate::spec::Protocol;
use std::net::Ipv4Addr;

/// The node's pod network (absent with `podNetwork: none`).
#[derive(Debug)]
pub(super) struct PodNet {
    /// The bridge and table, or why they could not be set up (then every
    /// pod without `hostNetwork` fails with that reason).
    node: Result<NodeNet, String>,
    ipam: Result<Ipam, String>,
}

impl PodNet {
    pub(super) fn setup(cfg: &super::Config) -> Option<PodNet> {
        let cidr = cfg.pod_cidr?;
        let node = NodeNet::setup(cidr).map_err(|e| {
            log::error!("pod network: {e}; pods without hostNetwork cannot start");
            e.to_string()
        });
        let dir = cfg.state_dir.join("net").join("ipam");
        let ipam = Ipam::open(&dir, cidr).map_err(|e| {
            log::error!("pod network: IPAM {}: {e}", dir.display());
            format!("IPAM {}: {e}", dir.display())
        });
        if node.is_ok() {
            log::info!("pod network {cidr} on bridge {}", crate::net::BRIDGE);
        }
        Some(PodNet { node, ipam })
    }

    /// The address of pod `uid`, if it has one.
    pub(super) fn pod_ip(&self, uid: &str) -> Option<Ipv4Addr> {
        self.ipam.as_ref().ok()?.lookup(uid)
    }
}

/// The `hostPort` mappings of `pod`, for the DNAT rules.
fn host_ports(pod: &crate::spec::Pod) -> Vec<HostPort> {
    crate::spec::host_ports::host_ports(pod)
        .into_iter()
        .map(|p| HostPort {
            proto: match p.protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Sctp => 132,
            },
            host_port: p.host_port,
            container_port: p.container_port,
            host_ip: p.host_ip,
        })
        .collect()
}

/// The node's address: the configured one, else the address of the link
/// holding the IPv4 default route.
pub(super) fn host_ip(cfg: &super::Config) -> Option<String> {
    if let Some(ip) = cfg.node_ip {
        return Some(ip.to_string());
    }
    match crate::net::default_route_addr() {
        Ok(Some(ip)) => Some(ip.to_string()),
        Ok(None) => {
            log::info!("no IPv4 default route: status.hostIP stays empty (set nodeIP)");
            None
        }
        Err(e) => {
            log::warn!("finding the node's address: {e}");
            None
        }
    }
}

impl Agent {
    /// Gives the pod `uid` its network in the namespace of its shim `pid`
    /// and records its address; `Err` is the reason its sandbox failed.
    pub(super) fn wire_pod(&mut self, uid: &str, pid: Option<i32>) -> Result<(), String> {
        let Some(view) = self.node.pod(uid) else {
            return Ok(());
        };
        let pod_ip = if view.spec.spec.host_network {
            self.node.host_ip.clone()
        } else if let Some(net) = self.net.as_mut() {
            let node = net.node.as_mut().map_err(|e| format!("pod network: {e}"))?;
            let ipam = net.ipam.as_mut().map_err(|e| format!("pod network: {e}"))?;
            let pid = pid.ok_or("pod network: the shim's PID is unknown")?;
            let ns = NetNs::of_pid(pid).map_err(|e| format!("pod network: {e}"))?;
            let ip = ipam.allocate(uid)?;
            let ports = host_ports(&view.spec);
            let started = std::time::Instant::now();
            let wired = node
                .attach(uid, &ns, ip)
                .and_then(|()| node.add_host_ports(uid, ip, &ports));
            if let Err(e) = wired {
                let _ = node.remove_host_ports(uid);
                let _ = node.detach(uid);
                ipam.release(uid);
                return Err(format!("pod network: {e}"));
            }
            log::debug!("pod {uid}: eth0 {ip} in {:?}", started.elapsed());
            Some(ip.to_string())
        } else {
            None
        };
        self.node.handle(
            Input::PodAddress {
                uid: uid.to_string(),
                pod_ip,
            },
            crate::clock::Now::read(),
        );
        Ok(())
    }

    /// Undoes [`Agent::wire_pod`] for a removed pod: its veth pair (gone
    /// with its namespace already, unless the agent still holds that) and
    /// its address.
    pub(super) fn unwire_pod(&mut self, uid: &str) {
        let Some(net) = self.net.as_mut() else { return };
        if let Ok(node) = net.node.as_mut() {
            let undone = node.remove_host_ports(uid).and_then(|()| node.detach(uid));
            if let Err(e) = undone {
                log::warn!("pod {uid}: {e}");
            }
        }
        if let Ok(ipam) = net.ipam.as_mut() {
            ipam.release(uid);
        }
    }

    /// At start, after adoption: frees the addresses and deletes the
    /// rules of pods that are no longer there (deleted while the agent was
    /// down, or lost in a crash), and writes again the hostPort rules of
    /// live pods that lack them (the table was rebuilt).
    pub(super) fn reconcile_network(&mut self) {
        let Some(PodNet {
            node: Ok(node),
            ipam: Ok(ipam),
        }) = self.net.as_mut()
        else {
            return;
        };
        let pods = &self.node;
        for (ip, uid) in ipam.reconcile(&|uid| pods.pod(uid).is_some()) {
            log::info!("pod network: freed {ip} of pod {uid}, which is gone");
        }
        let with_rules = match node.pods_with_rules() {
            Ok(u) => u,
            Err(e) => {
                log::warn!("pod network: {e}");
                return;
            }
        };
        for uid in &with_rules {
            if pods.pod(uid).is_none() {
                log::info!("pod network: deleting the rules of pod {uid}, which is gone");
                if let Err(e) = node.remove_host_ports(uid) {
                    log::warn!("pod network: {e}");
                }
            }
        }
        let wanted: Vec<(String, Ipv4Addr, Vec<HostPort>)> = ipam
            .allocations()
            .filter(|(_, uid)| !with_rules.contains(uid))
            .filter_map(|(ip, uid)| {
                let ports = host_ports(&pods.pod(uid)?.spec);
                (!ports.is_empty()).then(|| (uid.clone(), *ip, ports))
            })
            .collect();
        for (uid, ip, ports) in wanted {
            log::info!("pod network: writing the hostPort rules of pod {uid} again");
            if let Err(e) = node.add_host_ports(&uid, ip, &ports) {
                log::warn!("pod network: {e}");
            }
        }
    }
}
