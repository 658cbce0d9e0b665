//! Admission: `maxPods` (the kubelet's `OutOfpods`) and the state file's
//! budget for specs (issue 7, findings 4 and 5).

use super::agent::Agent;
use super::{count, events, pod};
use crate::lifecycle::{
    DEFAULT_MAX_PODS, DEFAULT_SPEC_BUDGET, Input, Node, Output, Phase, STATE_FILE_FULL,
};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i:04}")).collect()
}

#[test]
fn the_default_max_pods_is_the_kubelets_110() {
    assert_eq!(DEFAULT_MAX_PODS, 110);
    assert_eq!(Node::new("n".into()).max_pods(), 110);
    let mut a = Agent::new();
    for name in names(111) {
        a.apply(pod(&name, &[("c", "img")]));
    }
    assert_eq!(a.node.active_pods(), 110);
    let last = a.node.find("default", "p0110").unwrap();
    assert_eq!(last.status.phase, Phase::Failed);
    assert_eq!(last.status.reason, "OutOfpods");
    assert_eq!(
        last.status.message,
        "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 110, capacity: 110"
    );
}

#[test]
fn pods_beyond_max_pods_are_rejected_out_of_pods_with_an_event_and_no_sandbox() {
    let mut a = Agent::new();
    a.node.set_limits(3, DEFAULT_SPEC_BUDGET);
    let uids: Vec<String> = names(5)
        .iter()
        .map(|n| a.apply(pod(n, &[("c", "img")])))
        .collect();
    let log = a.take();
    assert_eq!(
        count(&log, |o| matches!(o, Output::CreateSandbox { .. })),
        3
    );
    for uid in &uids[3..] {
        assert!(a.node.is_rejected(uid));
        assert!(
            !log.iter()
                .any(|o| matches!(o, Output::CreateSandbox { uid: u } if u == uid))
        );
    }
    assert_eq!(
        events(&log, "OutOfpods"),
        vec!["Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"; 2]
    );
    assert_eq!(a.node.pods().count(), 5);
    // Rejected pods are not saved: the snapshot holds the admitted ones.
    assert_eq!(a.node.snapshot().pods.len(), 3);
}

#[test]
fn admission_is_stable_running_pods_are_never_evicted_and_rejections_stick() {
    let mut a = Agent::new();
    a.node.set_limits(2, DEFAULT_SPEC_BUDGET);
    let first = a.apply(pod("b", &[("c", "img")]));
    let second = a.apply(pod("c", &[("c", "img")]));
    // A pod that sorts first arrives later ("a new file appears"): rejected.
    let late = a.apply(pod("a", &[("c", "img")]));
    assert!(a.node.is_rejected(&late));
    for uid in [&first, &second] {
        assert_eq!(a.status(uid).phase, Phase::Running);
    }
    // Applying the same spec again (every rescan does) changes nothing.
    a.take();
    a.apply(pod("a", &[("c", "img")]));
    assert!(a.node.is_rejected(&late));
    assert!(a.take().is_empty());
    // A deleted pod frees a slot; the rejected one stays rejected (as with
    // the kubelet) until its spec changes.
    a.handle(Input::DeletePod {
        namespace: "default".into(),
        name: "b".into(),
    });
    assert!(a.node.find("default", "b").is_none());
    assert!(a.node.is_rejected(&late));
    let mut changed = pod("a", &[("c", "img2")]);
    changed.metadata.labels.insert("v".into(), "2".into());
    let readmitted = a.apply(changed);
    assert!(!a.node.is_rejected(&readmitted));
    assert_eq!(a.status(&readmitted).phase, Phase::Running);
    assert!(a.take().contains(&Output::PodRemoved { uid: late.clone() }));
    // Deleting a rejected pod removes it.
    let r = a.apply(pod("d", &[("c", "img")]));
    assert!(a.node.is_rejected(&r));
    a.handle(Input::DeletePod {
        namespace: "default".into(),
        name: "d".into(),
    });
    assert!(a.node.pod(&r).is_none());
}

#[test]
fn terminal_pods_do_not_count_against_max_pods() {
    let mut a = Agent::new();
    a.node.set_limits(1, DEFAULT_SPEC_BUDGET);
    let done = a.apply(super::with_policy(
        pod("job", &[("c", "img")]),
        crate::spec::RestartPolicy::Never,
    ));
    a.exit(&done, "c", 0);
    assert_eq!(a.status(&done).phase, Phase::Succeeded);
    let next = a.apply(pod("web", &[("c", "img")]));
    assert_eq!(a.status(&next).phase, Phase::Running);
}

#[test]
fn a_pod_that_would_overflow_the_state_file_is_refused_and_the_others_keep_running() {
    let mut a = Agent::new();
    let big = |name: &str| {
        let mut p = pod(name, &[("c", "img")]);
        p.spec.containers[0].args = Some(vec!["x".repeat(100_000)]);
        p
    };
    a.node.set_limits(110, 250_000);
    let one = a.apply(big("one"));
    let two = a.apply(big("two"));
    let three = a.apply(big("three"));
    assert_eq!(a.status(&three).reason, STATE_FILE_FULL);
    assert_eq!(a.status(&three).phase, Phase::Failed);
    for uid in [&one, &two] {
        assert_eq!(a.status(uid).phase, Phase::Running);
    }
    // A change that would overflow it is refused too: the pod keeps its spec.
    let mut bigger = big("one");
    bigger.spec.containers[0].args = Some(vec!["y".repeat(200_000)]);
    a.take();
    a.apply(bigger);
    let log = a.take();
    assert_eq!(events(&log, STATE_FILE_FULL).len(), 1);
    assert!(!log.iter().any(|o| matches!(o, Output::Signal { .. })));
    assert_eq!(a.status(&one).phase, Phase::Running);
    // The snapshot stays within the budget.
    let snap = postcard::to_stdvec(&a.node.snapshot()).unwrap();
    assert!(snap.len() < 250_000 + 10_000, "{}", snap.len());
}

#[test]
fn applying_a_thousand_pods_again_and_again_is_linear() {
    // Finding 4: every ApplyPod re-evaluated every pod, so each rescan of a
    // large file was quadratic.
    let mut node = Node::new("n".into());
    node.set_limits(1000, usize::MAX);
    let pods: Vec<_> = names(1000)
        .iter()
        .map(|n| pod(n, &[("c", "img")]))
        .collect();
    let now = super::T0;
    let apply_all = |node: &mut Node| {
        let before = node.syncs;
        for (i, p) in pods.iter().enumerate() {
            node.handle(
                Input::ApplyPod {
                    pod: p.clone(),
                    fresh_uid: format!("u{i}"),
                },
                now,
            );
            while node.poll_output().is_some() {}
        }
        node.syncs - before
    };
    let first = apply_all(&mut node);
    let again = apply_all(&mut node);
    // Each input syncs its own pod (a few passes at most), never all of
    // them: the quadratic version synced 1000 × 1000 / 2 times.
    assert!(first <= 4 * 1000, "{first} syncs applying 1000 pods");
    assert!(again <= 4 * 1000, "{again} syncs re-applying 1000 pods");
}

fn with_host_port(mut p: crate::spec::Pod, host_port: i32) -> crate::spec::Pod {
    p.spec.containers[0].ports.push(crate::spec::ContainerPort {
        container_port: 80,
        host_port: Some(host_port),
        ..Default::default()
    });
    p
}

#[test]
fn a_host_port_in_use_by_another_pod_is_rejected_node_ports_naming_the_field() {
    let mut a = Agent::new();
    let first = a.apply(with_host_port(pod("web", &[("c", "img")]), 8080));
    let second = a.apply(with_host_port(pod("web2", &[("c", "img")]), 8080));
    let other = a.apply(with_host_port(pod("web3", &[("c", "img")]), 8081));
    assert!(!a.node.is_rejected(&first) && !a.node.is_rejected(&other));
    assert!(a.node.is_rejected(&second));
    let p = a.node.find("default", "web2").unwrap();
    assert_eq!(p.status.phase, Phase::Failed);
    assert_eq!(p.status.reason, crate::lifecycle::NODE_PORTS);
    assert_eq!(
        p.status.message,
        "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the \
         requested pod ports: spec.containers[0].ports[0].hostPort: 8080/TCP is in use by pod \
         default/web"
    );
    let log = a.take();
    assert_eq!(events(&log, "NodePorts").len(), 1);
}

#[test]
fn without_a_pod_network_a_host_port_needs_host_network() {
    let mut a = Agent::new();
    a.node.set_pod_network(false);
    let uid = a.apply(with_host_port(pod("web", &[("c", "img")]), 8080));
    assert!(a.node.is_rejected(&uid));
    let p = a.node.find("default", "web").unwrap();
    assert!(
        p.status
            .message
            .contains("spec.containers[0].ports[0].hostPort: 8080/TCP cannot be forwarded"),
        "{}",
        p.status.message
    );
    let mut host = with_host_port(pod("host", &[("c", "img")]), 80);
    host.spec.host_network = true;
    let uid = a.apply(host);
    assert!(!a.node.is_rejected(&uid));
}

#[test]
fn an_edit_that_takes_another_pods_host_port_is_refused_and_the_pod_keeps_running() {
    let mut a = Agent::new();
    let web = a.apply(with_host_port(pod("web", &[("c", "img")]), 8080));
    let api = a.apply(with_host_port(pod("api", &[("c", "img")]), 9090));
    a.take();
    // api now wants web's port: refused, naming the field; nothing stops.
    let mut edited = with_host_port(pod("api", &[("c", "img")]), 9090);
    edited.spec.containers[0].ports[0].host_port = Some(8080);
    a.apply(edited.clone());
    let log = a.take();
    assert_eq!(
        events(&log, "NodePorts"),
        vec![
            "the new spec was refused, the pod keeps its spec: Predicate NodePorts failed: \
             node(s) didn't have free ports for the requested pod ports: \
             spec.containers[0].ports[0].hostPort: 8080/TCP is in use by pod default/web"
        ]
    );
    assert!(!log.iter().any(|o| matches!(o, Output::Signal { .. })));
    assert_eq!(a.status(&api).phase, Phase::Running);
    let p = a.node.find("default", "api").unwrap();
    assert_eq!(p.spec.spec.containers[0].ports[0].host_port, Some(9090));
    // Its own port (kept by a changed spec) is no conflict.
    let mut own = with_host_port(pod("api", &[("c", "img")]), 9090);
    own.spec.containers[0].args = Some(vec!["changed".into()]);
    a.apply(own);
    let log = a.take();
    assert!(events(&log, "NodePorts").is_empty());
    assert!(log.iter().any(|o| matches!(o, Output::Signal { .. })));
    assert_eq!(a.status(&web).phase, Phase::Running);
}

fn labels(kv: &[(&str, &str)]) -> crate::vecmap::VecMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_pod_whose_node_selector_or_affinity_does_not_match_is_rejected_node_affinity() {
    use crate::spec::affinity::Requirement;
    use crate::spec::affinity::{Affinity, NodeAffinity, NodeSelector, NodeSelectorTerm};
    let mut a = Agent::new();
    a.node.set_labels(labels(&[
        ("kubernetes.io/arch", "arm64"),
        ("picolet.io/board", "raspberry-pi-5"),
        ("mem-gib", "8"),
    ]));
    let mut ok = pod("ok", &[("c", "img")]);
    ok.spec.node_selector = labels(&[("picolet.io/board", "raspberry-pi-5")]);
    let mut bad = pod("bad", &[("c", "img")]);
    bad.spec.node_selector = labels(&[("picolet.io/board", "raspberry-pi-4")]);
    let term = |key: &str, op: &str, values: &[&str]| NodeSelectorTerm {
        match_expressions: vec![Requirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }],
        match_fields: vec![],
    };
    let aff = |terms: Vec<NodeSelectorTerm>| {
        Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
            }),
        })
    };
    let mut gt = pod("gt", &[("c", "img")]);
    gt.spec.affinity = aff(vec![term("mem-gib", "Gt", &["4"])]);
    let mut lt = pod("lt", &[("c", "img")]);
    lt.spec.affinity = aff(vec![
        term("mem-gib", "Lt", &["4"]),
        term("kubernetes.io/arch", "NotIn", &["arm64"]),
    ]);
    let uids: Vec<String> = [ok, bad, gt, lt].into_iter().map(|p| a.apply(p)).collect();
    let log = a.take();
    assert!(!a.node.is_rejected(&uids[0]));
    assert!(a.node.is_rejected(&uids[1]));
    assert!(!a.node.is_rejected(&uids[2]));
    assert!(a.node.is_rejected(&uids[3]));
    let bad = a.node.find("default", "bad").unwrap();
    assert_eq!(bad.status.phase, Phase::Failed);
    assert_eq!(bad.status.reason, "NodeAffinity");
    assert_eq!(
        bad.status.message,
        "Pod was rejected: Predicate NodeAffinity failed"
    );
    assert_eq!(
        events(&log, "NodeAffinity"),
        vec!["Predicate NodeAffinity failed"; 2]
    );
    assert_eq!(
        count(&log, |o| matches!(o, Output::CreateSandbox { .. })),
        2
    );
}
