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

#[test]
fn a_given_uid_is_kept_and_another_one_replaces_the_workload_as_for_pods() {
    let mut s = Sim::new();
    let with_uid = |name: &str, uid: &str| {
        WEB.replace(
            "metadata: {name: web}",
            &format!("metadata: {{name: {name}, uid: {uid}}}"),
        )
    };
    let names = |s: &Sim| {
        let mut n: Vec<String> = s.live().iter().map(|p| p.name.clone()).collect();
        n.sort();
        n
    };
    let uid = |s: &Sim, name: &str| {
        s.w.entries()
            .find(|e| e.workload.metadata.name == name)
            .map(|e| e.uid.clone())
            .unwrap()
    };
    s.apply(&with_uid("web", "0d6c6a5e-given"));
    s.sync();
    assert_eq!(uid(&s, "web"), "0d6c6a5e-given");
    let first = names(&s);
    assert_eq!(first.len(), 3);
    for p in s.live() {
        let hash = &s.spec(&p.name).metadata.labels["pod-template-hash"];
        assert_eq!(p.owner_uid, replica_set_uid("0d6c6a5e-given", hash));
    }
    // The same uid again, or none: the same object, the same pods.
    s.apply(&with_uid("web", "0d6c6a5e-given"));
    s.sync();
    s.apply(WEB);
    s.sync();
    assert_eq!(uid(&s, "web"), "0d6c6a5e-given");
    assert_eq!(names(&s), first);
    // Another uid: another object. The old one's pods go, new ones come.
    s.apply(&with_uid("web", "7f3e-other"));
    s.sync();
    assert_eq!(uid(&s, "web"), "7f3e-other");
    let second = names(&s);
    assert_eq!(second.len(), 3);
    assert!(second.iter().all(|n| !first.contains(n)), "{second:?}");
    // A copy of web under another name keeps no uid of web's.
    s.apply(&with_uid("api", "7f3e-other"));
    s.sync();
    assert_eq!(uid(&s, "api"), "uid-api");
    assert_eq!(uid(&s, "web"), "7f3e-other");
    assert_eq!(names(&s).len(), 6);
}
