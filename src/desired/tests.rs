//! The desired-state core: static manifests, the device document and group
//! documents merged into one reconcile, on a virtual clock.

use super::*;
use crate::fleet::docs::{DocsConfig, Offer};
use crate::fleet::policy::NodePolicy;
use crate::fleet::topics::Topics;
use serde_json::{Value, json};

/// The virtual clock: Unix ms, moved by the tests only.
struct Clock(i64);

impl Clock {
    fn now(&mut self) -> i64 {
        self.0 += 1000;
        self.0
    }
}

fn clock() -> Clock {
    Clock(1_700_000_000_000)
}

fn fleet(groups: &[&str]) -> FleetDocs {
    FleetDocs::new(DocsConfig {
        device_id: "pi-1".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        topics: Topics::default(),
        policy: NodePolicy::default(),
        max_doc_bytes: 1 << 16,
        fleet_key: None,
        check_workload: |_| Ok(()),
    })
}

fn pod_json(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": image}]}
    })
}

fn doc(revision: u64, pods: &[(&str, &str)]) -> Vec<u8> {
    let pods: Vec<Value> = pods.iter().map(|(n, i)| pod_json(n, i)).collect();
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState",
        "revision": revision, "pods": pods,
    }))
    .unwrap()
}

fn manifest(name: &str, image: &str) -> Pod {
    let text = serde_json::to_string(&pod_json(name, image)).unwrap();
    crate::spec::load_str(&text, "test").pop().unwrap().unwrap()
}

/// The manifests directory: file → pods.
fn files(list: &[(&str, &[&str])]) -> Vec<StaticPod> {
    let files: crate::vecmap::VecMap<PathBuf, Vec<Pod>> = list
        .iter()
        .map(|(f, pods)| {
            let pods = pods.iter().map(|n| manifest(n, "static:1")).collect();
            (PathBuf::from(format!("/m/{f}")), pods)
        })
        .collect();
    static_pods(&files)
}

fn device() -> Source {
    Source::Device("pi-1".into())
}

fn group(g: &str) -> Source {
    Source::Group(g.into())
}

fn offer(d: &mut Desired, s: &Source, payload: &[u8], now: i64) {
    let r = d.fleet_mut().unwrap().offer(s, payload, now);
    assert!(matches!(r, Offer::Accepted { .. }), "{r:?}");
}

/// The changes as text: `+ns/name=image` or `-ns/name`.
fn show(r: &Reconciled) -> Vec<String> {
    r.changes
        .iter()
        .map(|c| match c {
            Change::Apply(p) => format!(
                "+{}/{}={}",
                p.metadata.namespace_or_default(),
                p.metadata.name,
                p.spec.containers[0].image
            ),
            Change::Delete {
                namespace, name, ..
            } => format!("-{namespace}/{name}"),
            Change::ApplyWorkload { workload, .. } => format!("+{}", workload.key()),
            Change::DeleteWorkload { key, .. } => format!("-{key}"),
        })
        .collect()
}

#[test]
fn static_pods_apply_in_file_then_document_order_and_the_first_file_owns_a_name() {
    let mut d = Desired::new(VecMap::new(), None);
    let mut c = clock();
    let s = files(&[("b.yaml", &["x", "y"]), ("a.yaml", &["z", "x"])]);
    let r = d.reconcile(Some(s), c.now());
    assert_eq!(
        show(&r),
        [
            "+default/z=static:1",
            "+default/x=static:1",
            "+default/y=static:1"
        ]
    );
    assert_eq!(
        d.owner("default/x"),
        Some(&Owner::Static("/m/a.yaml".into()))
    );
    assert_eq!(
        d.owner("default/y"),
        Some(&Owner::Static("/m/b.yaml".into()))
    );
    // A file removed: its pods are deleted, the others applied again.
    let r = d.reconcile(Some(files(&[("a.yaml", &["z", "x"])])), c.now());
    assert_eq!(
        show(&r),
        ["-default/y", "+default/z=static:1", "+default/x=static:1"]
    );
    assert_eq!(d.owner("default/y"), None);
}

#[test]
fn a_fleet_change_leaves_static_pods_alone() {
    let mut d = Desired::new(VecMap::new(), Some(fleet(&[])));
    let mut c = clock();
    let _ = d.reconcile(Some(files(&[("a.yaml", &["s"])])), c.now());
    offer(&mut d, &device(), &doc(1, &[("f", "fleet:1")]), c.now());
    let r = d.reconcile(None, c.now());
    assert_eq!(show(&r), ["+default/f=fleet:1"]);
    assert_eq!(d.owner("default/f"), Some(&Owner::Fleet(device())));
    assert_eq!(
        d.owner("default/s"),
        Some(&Owner::Static("/m/a.yaml".into()))
    );
}

#[test]
fn statics_come_before_fleet_pods_so_that_admission_takes_them_first() {
    let mut d = Desired::new(VecMap::new(), Some(fleet(&[])));
    let mut c = clock();
    offer(&mut d, &device(), &doc(1, &[("f", "fleet:1")]), c.now());
    let r = d.reconcile(Some(files(&[("a.yaml", &["s"])])), c.now());
    assert_eq!(show(&r), ["+default/s=static:1", "+default/f=fleet:1"]);
}

#[test]
fn the_device_document_wins_over_groups_and_groups_in_config_order() {
    let mut d = Desired::new(VecMap::new(), Some(fleet(&["g1", "g2"])));
    let mut c = clock();
    offer(
        &mut d,
        &group("g2"),
        &doc(1, &[("a", "g2:1"), ("b", "g2:1"), ("c", "g2:1")]),
        c.now(),
    );
    offer(&mut d, &group("g1"), &doc(1, &[("b", "g1:1")]), c.now());
    offer(&mut d, &device(), &doc(1, &[("a", "dev:1")]), c.now());
    let r = d.reconcile(None, c.now());
    let mut got = show(&r);
    got.sort();
    assert_eq!(
        got,
        ["+default/a=dev:1", "+default/b=g1:1", "+default/c=g2:1"]
    );
    assert_eq!(d.owner("default/a"), Some(&Owner::Fleet(device())));
    assert_eq!(d.owner("default/b"), Some(&Owner::Fleet(group("g1"))));
    assert_eq!(d.owner("default/c"), Some(&Owner::Fleet(group("g2"))));
    // The clashes are reported once, as new errors.
    assert_eq!(r.new_errors.len(), 2);
    assert!(r.new_errors.iter().all(|(_, e)| e.reason == "NameClash"));
    // The device drops `a`: the group's `a` takes over, not a deletion.
    offer(&mut d, &device(), &doc(2, &[]), c.now());
    let r = d.reconcile(None, c.now());
    assert!(
        show(&r).contains(&"+default/a=g2:1".to_string()),
        "{:?}",
        show(&r)
    );
    assert!(!show(&r).iter().any(|c| c.starts_with('-')));
    assert_eq!(d.owner("default/a"), Some(&Owner::Fleet(group("g2"))));
}

#[test]
fn a_fleet_pod_no_longer_wanted_is_deleted_once() {
    let mut d = Desired::new(VecMap::new(), Some(fleet(&[])));
    let mut c = clock();
    offer(
        &mut d,
        &device(),
        &doc(1, &[("a", "x:1"), ("b", "x:1")]),
        c.now(),
    );
    let _ = d.reconcile(None, c.now());
    offer(&mut d, &device(), &doc(2, &[("b", "x:2")]), c.now());
    let r = d.reconcile(None, c.now());
    assert_eq!(show(&r), ["-default/a", "+default/b=x:2"]);
    let Change::Delete { owner, .. } = &r.changes[0] else {
        unreachable!()
    };
    assert_eq!(owner, &Owner::Fleet(device()));
    let r = d.reconcile(None, c.now());
    assert_eq!(show(&r), ["+default/b=x:2"]);
}

#[test]
fn a_static_pod_wins_its_name_and_the_fleet_pod_comes_back_when_it_goes() {
    let mut d = Desired::new(VecMap::new(), Some(fleet(&[])));
    let mut c = clock();
    offer(&mut d, &device(), &doc(1, &[("web", "fleet:1")]), c.now());
    assert_eq!(show(&d.reconcile(None, c.now())), ["+default/web=fleet:1"]);
    // The same name appears in a manifest: the static spec replaces the
    // fleet's (no deletion: it is the same pod name), and the fleet's is
    // refused with a NameClash.
    let t = c.now();
    let r = d.reconcile(Some(files(&[("web.yaml", &["web"])])), t);
    assert_eq!(show(&r), ["+default/web=static:1"]);
    assert_eq!(r.new_errors.len(), 1);
    let (source, e) = &r.new_errors[0];
    assert_eq!(source, &device());
    assert_eq!(e.reason, "NameClash");
    assert!(e.message.contains("/m/web.yaml"), "{}", e.message);
    assert_eq!(
        d.owner("default/web"),
        Some(&Owner::Static("/m/web.yaml".into()))
    );
    // Reported once: later reconciles keep the error and its time.
    let r = d.reconcile(None, c.now());
    assert!(r.new_errors.is_empty());
    let errors = d.fleet().unwrap().errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].time, crate::clock::rfc3339(t));
    // The manifest goes: the static pod is deleted and the fleet's applied.
    let r = d.reconcile(Some(files(&[])), c.now());
    assert_eq!(show(&r), ["-default/web", "+default/web=fleet:1"]);
    assert_eq!(d.owner("default/web"), Some(&Owner::Fleet(device())));
    assert!(d.fleet().unwrap().errors().is_empty());
}

#[test]
fn a_refused_new_spec_leaves_the_running_fleet_pod_alone() {
    let mut d = Desired::new(VecMap::new(), Some(fleet(&[])));
    let mut c = clock();
    offer(&mut d, &device(), &doc(1, &[("p", "x:1")]), c.now());
    let _ = d.reconcile(None, c.now());
    let mut bad = pod_json("p", "x:2");
    bad["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let payload = serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState", "revision": 2, "pods": [bad],
    }))
    .unwrap();
    offer(&mut d, &device(), &payload, c.now());
    let r = d.reconcile(None, c.now());
    assert!(r.changes.is_empty(), "{:?}", show(&r));
    assert_eq!(r.new_errors[0].1.reason, "PolicyViolation");
    assert_eq!(d.owner("default/p"), Some(&Owner::Fleet(device())));
}

#[test]
fn without_a_fleet_stored_fleet_pods_are_deleted_and_static_ones_kept() {
    let saved: VecMap<String, String> = [
        ("default/s", "/m/s.yaml"),
        ("default/d", "fleet:device/pi-1"),
        ("default/g", "fleet:group/lab"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut d = Desired::new(saved, None);
    let r = d.reconcile(None, clock().now());
    assert_eq!(show(&r), ["-default/d", "-default/g"]);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d.owner("default/s").unwrap().static_path(),
        Some("/m/s.yaml")
    );
}

#[test]
fn owners_are_saved_as_the_state_files_labels_and_read_back() {
    for label in ["/m/a.yaml", "fleet:device/pi-1", "fleet:group/lab"] {
        assert_eq!(Owner::from_label(label).label(), label);
    }
    assert_eq!(
        Owner::from_label("fleet:group/lab"),
        Owner::Fleet(group("lab"))
    );
    // Never written by picolet: still a fleet pod, which no document wants.
    assert!(matches!(Owner::from_label("fleet:odd"), Owner::Fleet(_)));
    let mut d = Desired::new(VecMap::new(), Some(fleet(&["lab"])));
    let mut c = clock();
    offer(&mut d, &group("lab"), &doc(1, &[("g", "x:1")]), c.now());
    let _ = d.reconcile(Some(files(&[("s.yaml", &["s"])])), c.now());
    let saved = d.saved(["default/g", "default/s", "default/none"].into_iter());
    assert_eq!(saved.len(), 2);
    assert_eq!(saved["default/g"], "fleet:group/lab");
    assert_eq!(saved["default/s"], "/m/s.yaml");
    let back = Desired::new(saved, None);
    assert_eq!(back.owner("default/g"), Some(&Owner::Fleet(group("lab"))));
}

#[test]
fn a_pod_moved_between_files_changes_owner_without_a_deletion() {
    let mut d = Desired::new(VecMap::new(), None);
    let mut c = clock();
    let _ = d.reconcile(Some(files(&[("a.yaml", &["p"])])), c.now());
    let r = d.reconcile(Some(files(&[("b.yaml", &["p"])])), c.now());
    assert_eq!(show(&r), ["+default/p=static:1"]);
    assert_eq!(
        d.owner("default/p").unwrap().static_path(),
        Some("/m/b.yaml")
    );
}

/// Every combination of who wants `a` and `b` (the manifests, the device,
/// a group), reached from every other: after each reconcile the owner of
/// each name is the highest-ranked source that wants it (static, then
/// device, then group), every wanted pod is applied once, static pods
/// first, and a pod is deleted only when its owner no longer wants it and
/// no other source of the same kind takes it over.
#[test]
fn every_transition_between_two_names_and_three_sources_keeps_the_owner_rules() {
    const NAMES: [&str; 2] = ["a", "b"];
    // A state: bit i of each mask = source wants NAMES[i].
    let states: Vec<[u8; 3]> = (0..64u8)
        .map(|n| [n & 3, (n >> 2) & 3, (n >> 4) & 3])
        .collect();
    let wanted = |mask: u8| -> Vec<&str> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    };
    let expected_owner = |s: &[u8; 3], i: usize| -> Option<Owner> {
        if s[0] & (1 << i) != 0 {
            Some(Owner::Static(format!("/m/{}.yaml", NAMES[i])))
        } else if s[1] & (1 << i) != 0 {
            Some(Owner::Fleet(device()))
        } else if s[2] & (1 << i) != 0 {
            Some(Owner::Fleet(group("g")))
        } else {
            None
        }
    };
    let mut c = clock();
    for from in &states {
        for to in &states {
            let mut d = Desired::new(VecMap::new(), Some(fleet(&["g"])));
            let mut rev = 0;
            for s in [from, to] {
                rev += 1;
                let dev: Vec<(&str, &str)> = wanted(s[1]).iter().map(|n| (*n, "dev:1")).collect();
                let grp: Vec<(&str, &str)> = wanted(s[2]).iter().map(|n| (*n, "grp:1")).collect();
                offer(&mut d, &device(), &doc(rev, &dev), c.now());
                offer(&mut d, &group("g"), &doc(rev, &grp), c.now());
                let statics: Vec<(String, Vec<&str>)> = wanted(s[0])
                    .iter()
                    .map(|n| (format!("{n}.yaml"), vec![*n]))
                    .collect();
                let list: Vec<(&str, &[&str])> = statics
                    .iter()
                    .map(|(f, p)| (f.as_str(), p.as_slice()))
                    .collect();
                let before: Vec<Option<Owner>> = NAMES
                    .iter()
                    .map(|n| d.owner(&format!("default/{n}")).cloned())
                    .collect();
                let r = d.reconcile(Some(files(&list)), c.now());
                let shown = show(&r);
                let ctx = format!("{from:?} -> {s:?}: {shown:?}");
                for (i, n) in NAMES.iter().enumerate() {
                    let key = format!("default/{n}");
                    let want = expected_owner(s, i);
                    assert_eq!(d.owner(&key), want.as_ref(), "{ctx}");
                    let applies = shown
                        .iter()
                        .filter(|c| c.starts_with(&format!("+{key}=")))
                        .count();
                    assert_eq!(applies, usize::from(want.is_some()), "{ctx}");
                    // Deleted exactly when the previous owner's kind no
                    // longer has it: static → not static, fleet → no fleet.
                    let deleted = shown.contains(&format!("-{key}"));
                    let should = match (&before[i], &want) {
                        (Some(Owner::Static(_)), w) => !matches!(w, Some(Owner::Static(_))),
                        (Some(Owner::Fleet(_)), None) => true,
                        _ => false,
                    };
                    assert_eq!(deleted, should, "{key}: {ctx}");
                }
                // Static pods are applied before fleet pods.
                let first_fleet = shown
                    .iter()
                    .position(|c| c.contains("=dev:") || c.contains("=grp:"));
                if let Some(f) = first_fleet {
                    assert!(!shown[f..].iter().any(|c| c.contains("=static:")), "{ctx}");
                }
            }
        }
    }
}

fn deployment_json(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image}]}}
        }
    })
}

fn static_workload(file: &str, name: &str, image: &str) -> StaticWorkload {
    let v = deployment_json(name, image);
    StaticWorkload {
        doc: v.to_string(),
        workload: crate::spec::workload::workload_from_value(v).unwrap(),
        path: format!("/m/{file}"),
    }
}

fn doc_with_workloads(revision: u64, workloads: &[(&str, &str)]) -> Vec<u8> {
    let list: Vec<Value> = workloads
        .iter()
        .map(|(n, i)| deployment_json(n, i))
        .collect();
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState",
        "revision": revision, "pods": [], "workloads": list,
    }))
    .unwrap()
}

#[test]
fn workloads_follow_the_pods_rules_static_ones_win_and_removed_ones_go() {
    let mut d = Desired::new(VecMap::new(), Some(fleet(&[])));
    let mut c = clock();
    d.set_static_workloads(vec![static_workload("a.yaml", "web", "static:1")]);
    let r = d.reconcile(Some(Vec::new()), c.now());
    assert_eq!(show(&r), ["+Deployment default/web"]);
    // The fleet wants web too, and api: web stays static, reported.
    offer(
        &mut d,
        &device(),
        &doc_with_workloads(1, &[("web", "fleet:1"), ("api", "fleet:1")]),
        c.now(),
    );
    let r = d.reconcile(None, c.now());
    assert_eq!(show(&r), ["+Deployment default/api"]);
    assert_eq!(r.new_errors.len(), 1, "{:?}", r.new_errors);
    assert_eq!(r.new_errors[0].1.reason, "NameClash");
    assert!(
        r.new_errors[0].1.message.contains("static workloads win"),
        "{:?}",
        r.new_errors
    );
    // The static file goes: web is deleted, then the fleet's web applies.
    d.set_static_workloads(Vec::new());
    let r = d.reconcile(Some(Vec::new()), c.now());
    assert_eq!(
        show(&r),
        [
            "-Deployment default/web",
            "+Deployment default/web",
            "+Deployment default/api"
        ]
    );
    // The fleet drops api: it is deleted.
    offer(
        &mut d,
        &device(),
        &doc_with_workloads(2, &[("web", "fleet:2")]),
        c.now(),
    );
    let r = d.reconcile(None, c.now());
    assert_eq!(
        show(&r),
        ["-Deployment default/api", "+Deployment default/web"]
    );
}
