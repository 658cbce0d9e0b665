//! The `hostPort`s a pod takes on its node, and conflicts between pods
//! (the kubelet's `NodePorts` admission check).

use crate::spec::types::{Pod, Protocol};
use std::net::Ipv4Addr;

/// One `hostPort` of a pod (`hostPort` > 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortUse {
    /// E.g. `spec.containers[0].ports[1].hostPort`.
    pub field: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// `None`: every node address (`hostIP` unset, empty or `0.0.0.0`).
    pub host_ip: Option<Ipv4Addr>,
}

impl HostPortUse {
    pub fn protocol_name(&self) -> &'static str {
        match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// Whether both want the same port of the same address.
    pub fn clashes(&self, other: &HostPortUse) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

/// Every `hostPort` of `pod` (init and app containers), in spec order.
/// Out-of-range values (refused by validation) are left out.
pub fn host_ports(pod: &Pod) -> Vec<HostPortUse> {
    let mut v = Vec::new();
    let lists = [
        ("spec.initContainers", &pod.spec.init_containers),
        ("spec.containers", &pod.spec.containers),
    ];
    for (list, cs) in lists {
        for (i, c) in cs.iter().enumerate() {
            for (j, p) in c.ports.iter().enumerate() {
                let (Ok(hp), Ok(cp)) = (
                    u16::try_from(p.host_port.unwrap_or(0)),
                    u16::try_from(p.container_port),
                ) else {
                    continue;
                };
                if hp == 0 {
                    continue;
                }
                v.push(HostPortUse {
                    field: format!("{list}[{i}].ports[{j}].hostPort"),
                    host_port: hp,
                    container_port: cp,
                    protocol: p.protocol,
                    host_ip: p
                        .host_ip
                        .as_deref()
                        .and_then(|ip| ip.parse().ok())
                        .filter(|ip: &Ipv4Addr| !ip.is_unspecified()),
                });
            }
        }
    }
    v
}

/// The first `hostPort` of `pod` that one of `others` (`namespace/name`,
/// pod) holds already, as the message of a rejection naming the field.
pub fn conflict<'a>(
    pod: &Pod,
    others: impl IntoIterator<Item = (String, &'a Pod)>,
) -> Option<String> {
    let mine = host_ports(pod);
    if mine.is_empty() {
        return None;
    }
    for (name, other) in others {
        for theirs in host_ports(other) {
            if let Some(m) = mine.iter().find(|m| m.clashes(&theirs)) {
                let at = m.host_ip.map_or(String::new(), |ip| format!("{ip}:"));
                return Some(format!(
                    "Predicate NodePorts failed: node(s) didn't have free ports for the \
                     requested pod ports: {}: {at}{}/{} is in use by pod {name}",
                    m.field,
                    m.host_port,
                    m.protocol_name()
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ports: &str) -> Pod {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n    ports: {ports}\n"
        );
        crate::spec::load_str(&text, "test").remove(0).unwrap()
    }

    #[test]
    fn host_ports_clash_on_port_and_protocol_unless_bound_to_different_addresses() {
        let a = pod(
            "[{containerPort: 80, hostPort: 8080}, {containerPort: 53, hostPort: 53, protocol: UDP}]",
        );
        assert_eq!(host_ports(&a).len(), 2);
        assert_eq!(
            host_ports(&a)[1].field,
            "spec.containers[0].ports[1].hostPort"
        );
        let same = pod("[{containerPort: 81, hostPort: 8080}]");
        let m = conflict(&same, [("default/a".to_string(), &a)]).unwrap();
        assert!(
            m.contains("spec.containers[0].ports[0].hostPort: 8080/TCP is in use by pod default/a"),
            "{m}"
        );
        assert!(m.starts_with("Predicate NodePorts failed"), "{m}");
        let udp = pod("[{containerPort: 81, hostPort: 8080, protocol: UDP}]");
        assert_eq!(conflict(&udp, [("default/a".to_string(), &a)]), None);
        let one = pod("[{containerPort: 81, hostPort: 9000, hostIP: 10.0.0.1}]");
        let two = pod("[{containerPort: 81, hostPort: 9000, hostIP: 10.0.0.2}]");
        let any = pod("[{containerPort: 81, hostPort: 9000, hostIP: 0.0.0.0}]");
        assert_eq!(conflict(&two, [("d/one".to_string(), &one)]), None);
        assert!(
            conflict(&one, [("d/one".to_string(), &one)])
                .unwrap()
                .contains("10.0.0.1:9000/TCP")
        );
        assert!(conflict(&any, [("d/one".to_string(), &one)]).is_some());
        assert_eq!(
            conflict(&pod("[{containerPort: 80}]"), [("d/a".to_string(), &a)]),
            None
        );
    }
}
