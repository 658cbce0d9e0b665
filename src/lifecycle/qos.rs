//! `status.qosClass`: Kubernetes' `ComputePodQOS` over the defaulted pod
//! (a limit without a request makes the request equal the limit), comparing
//! quantities exactly in nano units (`spec::quantity`), so that `0.5` and
//! `500m`, or `1Gi` and `1024Mi`, compare equal; and the kubelet's
//! `oom_score_adj` per class.

use super::status::QosClass;
use crate::spec::{Pod, Quantity};
use crate::vecmap::VecMap;

/// A quantity in units of 10⁻⁹ (exact, as Kubernetes compares them); `None`
/// when it does not parse (the loader rejects those, so they do not count).
fn nano(q: &Quantity) -> Option<i128> {
    q.parsed().ok().map(|p| p.nano_value())
}

fn supported(name: &str) -> bool {
    name == "cpu" || name == "memory"
}

/// `ComputePodQOS` (init and app containers, cpu and memory only).
pub(crate) fn qos_class(pod: &Pod) -> QosClass {
    let mut requests: VecMap<&str, i128> = VecMap::new();
    let mut limits: VecMap<&str, i128> = VecMap::new();
    let mut guaranteed = true;
    for c in pod.spec.containers.iter().chain(&pod.spec.init_containers) {
        // API defaulting: a limit without a request sets the request.
        let mut reqs: VecMap<&str, &Quantity> = VecMap::new();
        for (k, v) in &c.resources.requests {
            reqs.insert(k.as_str(), v);
        }
        for (k, v) in &c.resources.limits {
            reqs.entry(k.as_str()).or_insert(v);
        }
        for (name, q) in reqs {
            let v = nano(q).unwrap_or(0);
            if supported(name) && v > 0 {
                *requests.entry(name).or_insert(0) += v;
            }
        }
        let mut found = Vec::new();
        for (name, q) in &c.resources.limits {
            let v = nano(q).unwrap_or(0);
            if supported(name) && v > 0 {
                found.push(name.as_str());
                *limits.entry(name.as_str()).or_insert(0) += v;
            }
        }
        if !(found.contains(&"cpu") && found.contains(&"memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

/// `oom_score_adj` of a Guaranteed pod's containers (the kubelet's).
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// `oom_score_adj` of a BestEffort pod's containers: killed first.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// The kubelet's `GetContainerOOMScoreAdjust` (pkg/kubelet/qos/policy.go):
/// -997 in a Guaranteed pod, 1000 in a BestEffort one, and in a Burstable
/// pod 1000 − 1000 × the container's memory request / the node's memory,
/// kept within 3..=999 so that Burstable containers die after BestEffort
/// ones and before Guaranteed ones. `memory_capacity` is `MemTotal` in bytes.
pub fn oom_score_adj(pod: &Pod, container: &crate::spec::Container, memory_capacity: i64) -> i32 {
    if pod.spec.is_node_critical() {
        // The OOM killer's last choice, whatever its QoS class.
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let request = container
        .resources
        .memory_request_bytes()
        .unwrap_or(0)
        .max(0) as i128;
    let capacity = memory_capacity.max(1) as i128;
    let adj = 1000 - (1000 * request) / capacity;
    let floor = 1000 + GUARANTEED_OOM_SCORE_ADJ;
    if adj < floor as i128 {
        floor
    } else if adj >= BEST_EFFORT_OOM_SCORE_ADJ as i128 {
        BEST_EFFORT_OOM_SCORE_ADJ - 1
    } else {
        adj as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Container, PodSpec, Resources};

    #[test]
    fn oom_score_adj_follows_the_kubelet_per_qos_class() {
        const GI: i64 = 1 << 30;
        let full = [("cpu", "500m"), ("memory", "64Mi")];
        let g = pod(&[(&[], &full)]);
        assert_eq!(oom_score_adj(&g, &g.spec.containers[0], GI), -997);
        let mut be = pod(&[(&[], &[])]);
        assert_eq!(oom_score_adj(&be, &be.spec.containers[0], GI), 1000);
        // A node-critical pod is -997 whatever its class; a
        // cluster-critical one keeps its class's score.
        be.spec.priority_class_name = Some("system-cluster-critical".into());
        assert_eq!(oom_score_adj(&be, &be.spec.containers[0], GI), 1000);
        be.spec.priority_class_name = Some("system-node-critical".into());
        assert_eq!(oom_score_adj(&be, &be.spec.containers[0], GI), -997);
        // Burstable: 1000 - 1000 * 256Mi / 1Gi = 750.
        let b = pod(&[(&[("memory", "256Mi")], &[])]);
        assert_eq!(oom_score_adj(&b, &b.spec.containers[0], GI), 750);
        // A request near the node's memory is floored at 3.
        let b = pod(&[(&[("memory", "1Gi")], &[])]);
        assert_eq!(oom_score_adj(&b, &b.spec.containers[0], GI), 3);
        // No memory request (cpu only): 1000 would tie BestEffort, so 999.
        let b = pod(&[(&[("cpu", "100m")], &[])]);
        assert_eq!(oom_score_adj(&b, &b.spec.containers[0], GI), 999);
        // A request from the limit (API defaulting): 1Gi of 4Gi → 750.
        let b = pod(&[(&[("cpu", "100m")], &[("memory", "1Gi")])]);
        assert_eq!(oom_score_adj(&b, &b.spec.containers[0], 4 * GI), 750);
        // An unknown capacity does not divide by zero.
        assert_eq!(oom_score_adj(&b, &b.spec.containers[0], 0), 3);
    }

    #[test]
    fn quantities_compare_exactly_in_nano_units() {
        let q = |s: &str| nano(&Quantity(s.to_string()));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("1n"), Some(1));
        assert_eq!(q("abc"), None);
    }

    /// (requests, limits) of one container.
    type Res<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)]);

    fn pod(containers: &[Res<'_>]) -> Pod {
        let q = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect()
        };
        Pod {
            spec: PodSpec {
                containers: containers
                    .iter()
                    .enumerate()
                    .map(|(i, (req, lim))| Container {
                        name: format!("c{i}"),
                        image: "img".into(),
                        resources: Resources {
                            requests: q(req),
                            limits: q(lim),
                        },
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn qos_class_follows_kubernetes_rules() {
        assert_eq!(qos_class(&pod(&[(&[], &[])])), QosClass::BestEffort);
        let full = [("cpu", "500m"), ("memory", "64Mi")];
        // limits only: requests default to limits → Guaranteed
        assert_eq!(qos_class(&pod(&[(&[], &full)])), QosClass::Guaranteed);
        assert_eq!(
            qos_class(&pod(&[(&[("cpu", "0.5"), ("memory", "64Mi")], &full)])),
            QosClass::Guaranteed
        );
        assert_eq!(
            qos_class(&pod(&[(&[("cpu", "100m")], &full)])),
            QosClass::Burstable
        );
        assert_eq!(
            qos_class(&pod(&[(&[("cpu", "100m")], &[])])),
            QosClass::Burstable
        );
        // one container without limits spoils Guaranteed
        assert_eq!(
            qos_class(&pod(&[(&[], &full), (&[], &[])])),
            QosClass::Burstable
        );
        // only cpu limits
        assert_eq!(
            qos_class(&pod(&[(&[], &[("cpu", "1")])])),
            QosClass::Burstable
        );
        // init containers count too
        let mut p = pod(&[(&[], &full)]);
        p.spec.init_containers.push(Container {
            name: "init".into(),
            ..Container::default()
        });
        assert_eq!(qos_class(&p), QosClass::Burstable);
        // zero quantities do not count
        assert_eq!(
            qos_class(&pod(&[(&[("cpu", "0")], &[])])),
            QosClass::BestEffort
        );
    }
}
