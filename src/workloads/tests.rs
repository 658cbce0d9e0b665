//! The dispatcher: ownership, cascade deletion, restarts.

use super::testkit::Sim;
use super::*;

const WEB: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: main, image: busybox}]
";

#[test]
fn a_deployment_makes_its_pods_with_owner_references_and_hash_labels() {
    let mut s = Sim::new();
    s.apply(WEB);
    s.sync();
    let live = s.live();
    assert_eq!(live.len(), 3);
    for p in live {
        let spec = s.spec(&p.name);
        let hash = &spec.metadata.labels["pod-template-hash"];
        assert!(p.name.starts_with(&format!("web-{hash}-")), "{}", p.name);
        assert_eq!(p.name.len(), "web-".len() + hash.len() + 6);
        let r = &spec.metadata.owner_references[0];
        assert_eq!(
            (r.kind.as_str(), r.name.as_str()),
            ("ReplicaSet", &*format!("web-{hash}"))
        );
        assert_eq!(r.uid, replica_set_uid("uid-web", hash));
        assert!(r.controller);
    }
}

#[test]
fn removing_a_workload_deletes_its_pods_and_orphans_are_collected() {
    let mut s = Sim::new();
    s.apply(WEB);
    s.sync();
    let key = s.w.entries().next().unwrap().key();
    assert!(s.w.remove(&key, s.now));
    s.sync();
    assert!(s.live().is_empty());
}

#[test]
fn a_restart_keeps_the_pods_and_creates_none() {
    let mut s = Sim::new();
    s.apply(WEB);
    s.sync();
    let before: Vec<String> = s.pods.keys().cloned().collect();
    s.restart();
    let out = s.sync();
    assert!(
        out.iter().all(|i| matches!(i, Intent::Event { .. })),
        "{out:?}"
    );
    assert_eq!(s.pods.keys().cloned().collect::<Vec<_>>(), before);
}

#[test]
fn suffixes_use_kubernetes_alphabet_and_uids_look_like_uuids() {
    let mut r = Rng(7);
    let a = r.suffix();
    assert_eq!(a.len(), 5);
    assert!(
        a.bytes()
            .all(|b| crate::spec::workload::SAFE_ALPHABET.contains(&b))
    );
    assert_ne!(a, r.suffix());
    let u = uid_from(&mut r);
    assert_eq!(u.len(), 36, "{u}");
    assert_eq!(replica_set_uid("a", "b").len(), 36);
}
