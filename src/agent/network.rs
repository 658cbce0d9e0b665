//! The pod network as the agent runs it ([`crate::net`]): the node's
//! bridge and table at start, then per pod, when its shim is up and
//! before its sandbox counts as ready (so before any container starts):
//! an address from the IPAM, the veth pair and the routes; undone when
//! the pod is removed. All on the agent's thread: each step is a netlink
//! request the kernel answers within the system call.

use super::Agent;
use crate::lifecycle::Input;
use crate::net::{NodeNet, ipam::Ipam};
use crate::probe::NetNs;
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
            let started = std::time::Instant::now();
            if let Err(e) = node.attach(uid, &ns, ip) {
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
            if let Err(e) = node.detach(uid) {
                log::warn!("pod {uid}: {e}");
            }
        }
        if let Ok(ipam) = net.ipam.as_mut() {
            ipam.release(uid);
        }
    }

    /// At start, after adoption: frees the addresses of pods that are no
    /// longer there (deleted while the agent was down, or lost in a crash).
    pub(super) fn reconcile_network(&mut self) {
        let Some(ipam) = self.net.as_mut().and_then(|n| n.ipam.as_mut().ok()) else {
            return;
        };
        let node = &self.node;
        for (ip, uid) in ipam.reconcile(&|uid| node.pod(uid).is_some()) {
            log::info!("pod network: freed {ip} of pod {uid}, which is gone");
        }
    }
}
