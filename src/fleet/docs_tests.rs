//! The agent's desired-document rules: revisions, refusals, merge, static
//! pods and policy.

use super::*;
use crate::fleet::doc::seal_envelope;
use crate::fleet::sign::{SigningKey, generate_keypair};
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000_000;

fn cfg(groups: &[&str]) -> DocsConfig {
    DocsConfig {
        device_id: "pi-1".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        topics: Topics::default(),
        policy: NodePolicy::default(),
        max_doc_bytes: 4096,
        fleet_key: None,
        check_workload: |_| Ok(()),
    }
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}
    })
}

fn privileged(name: &str) -> Value {
    let mut p = pod(name);
    p["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    p
}

fn doc(revision: u64, pods: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState",
        "revision": revision, "pods": pods,
    }))
    .unwrap()
}

fn device() -> Source {
    Source::Device("pi-1".into())
}

fn group(g: &str) -> Source {
    Source::Group(g.into())
}

fn no_static(_: &str) -> Option<String> {
    None
}

fn names(plan: &Plan) -> Vec<&str> {
    plan.pods.iter().map(|(k, _, _)| k.as_str()).collect()
}

#[test]
fn a_newer_revision_is_accepted_and_the_same_bytes_again_are_unchanged() {
    let mut d = FleetDocs::new(cfg(&[]));
    let first = doc(1, vec![pod("a")]);
    assert!(matches!(
        d.offer(&device(), &first, NOW),
        Offer::Accepted { revision: 1, .. }
    ));
    assert_eq!(d.offer(&device(), &first, NOW), Offer::Unchanged);
    assert!(d.errors().is_empty());
    assert_eq!(d.observed().device, Some(1));
    let plan = d.plan(&no_static, NOW);
    assert_eq!(names(&plan), ["default/a"]);
}

#[test]
fn an_older_or_equal_revision_with_other_content_is_refused_as_stale() {
    let mut d = FleetDocs::new(cfg(&[]));
    let _ = d.offer(&device(), &doc(5, vec![pod("a")]), NOW);
    let Offer::Refused(e) = d.offer(&device(), &doc(5, vec![pod("b")]), NOW) else {
        panic!("accepted a stale document");
    };
    assert_eq!(e.reason, "Stale");
    assert_eq!(e.revision, Some(5));
    assert!(
        e.message.contains("not newer than accepted revision 5"),
        "{}",
        e.message
    );
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/a"]);
}

#[test]
fn a_refused_document_changes_nothing_and_a_newer_good_one_clears_its_error() {
    let mut d = FleetDocs::new(cfg(&[]));
    let _ = d.offer(&device(), &doc(1, vec![pod("a")]), NOW);
    let bad: [(&[u8], &str); 4] = [
        (b"{\"kind\":", "malformed JSON"),
        (
            br#"{"apiVersion":"picolet.io/v1","kind":"Pod","revision":2,"pods":[]}"#,
            "kind: \"Pod\" is not DeviceState",
        ),
        (
            br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":"x","pods":[]}"#,
            "revision: must be a non-negative integer",
        ),
        (&[b' '; 5000], "more than the limit of 4096 bytes"),
    ];
    for (payload, want) in bad {
        let Offer::Refused(e) = d.offer(&device(), payload, NOW) else {
            panic!("accepted {want}");
        };
        assert!(e.message.contains(want), "{want}: {}", e.message);
        assert_eq!(e.topic, "picolet/devices/pi-1/desired");
        assert_eq!(names(&d.plan(&no_static, NOW)), ["default/a"]);
        assert_eq!(d.observed().device, Some(1));
    }
    // One entry per topic: the latest refusal.
    assert_eq!(d.errors().len(), 1);
    let _ = d.offer(&device(), &doc(2, vec![pod("b")]), NOW);
    assert!(d.errors().is_empty());
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/b"]);
}

#[test]
fn with_a_fleet_key_unsigned_and_forged_documents_are_refused() {
    let (pkcs8, public) = generate_keypair().unwrap();
    let key = SigningKey::from_pkcs8(&pkcs8).unwrap();
    let (other, _) = generate_keypair().unwrap();
    let other = SigningKey::from_pkcs8(&other).unwrap();
    let mut c = cfg(&[]);
    c.fleet_key = Some(crate::fleet::sign::PublicKey(public));
    let mut d = FleetDocs::new(c);
    let payload = doc(1, vec![pod("a")]);
    let Offer::Refused(e) = d.offer(&device(), &payload, NOW) else {
        panic!("unsigned accepted");
    };
    assert_eq!(e.reason, "Unsigned");
    let Offer::Refused(e) = d.offer(&device(), &seal_envelope(&payload, &other), NOW) else {
        panic!("forged accepted");
    };
    assert_eq!(e.reason, "BadSignature");
    assert!(matches!(
        d.offer(&device(), &seal_envelope(&payload, &key), NOW),
        Offer::Accepted {
            signature: Signature::Verified { .. },
            ..
        }
    ));
}

#[test]
fn device_pods_win_clashes_with_group_pods_and_the_clash_is_reported() {
    let mut d = FleetDocs::new(cfg(&["kitchen", "floor"]));
    let _ = d.offer(&group("floor"), &doc(1, vec![pod("x"), pod("f")]), NOW);
    let _ = d.offer(&group("kitchen"), &doc(4, vec![pod("x"), pod("k")]), NOW);
    let _ = d.offer(&device(), &doc(2, vec![pod("x")]), NOW);
    let plan = d.plan(&no_static, NOW);
    assert_eq!(names(&plan), ["default/x", "default/k", "default/f"]);
    assert_eq!(plan.pods[0].1, device());
    let errors = d.errors();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.reason == "NameClash"));
    assert_eq!(errors[0].topic, "picolet/groups/kitchen/desired");
    assert_eq!(errors[0].revision, Some(4));
    assert_eq!(plan.new_errors.len(), 2);
    // The same clashes again are not new (no new events, same times).
    let again = d.plan(&no_static, NOW + 5000);
    assert!(again.new_errors.is_empty());
    assert_eq!(d.errors(), errors);
}

#[test]
fn a_fleet_pod_named_like_a_static_pod_is_refused() {
    let mut d = FleetDocs::new(cfg(&[]));
    let _ = d.offer(&device(), &doc(1, vec![pod("web"), pod("db")]), NOW);
    let owner =
        |k: &str| (k == "default/web").then(|| "/etc/picolet/manifests/web.yaml".to_string());
    let plan = d.plan(&owner, NOW);
    assert_eq!(names(&plan), ["default/db"]);
    assert!(plan.refused.contains("default/web"));
    let e = &d.errors()[0];
    assert_eq!(
        (e.reason.as_str(), e.pod.as_deref()),
        ("NameClash", Some("default/web"))
    );
    assert!(e.message.contains("static pods win"), "{}", e.message);
}

#[test]
fn a_privileged_pod_is_refused_by_the_default_policy_and_the_rest_applies() {
    let mut d = FleetDocs::new(cfg(&[]));
    let _ = d.offer(&device(), &doc(3, vec![pod("ok"), privileged("root")]), NOW);
    let plan = d.plan(&no_static, NOW);
    assert_eq!(names(&plan), ["default/ok"]);
    assert!(plan.refused.contains("default/root"));
    let e = &d.errors()[0];
    assert_eq!(e.reason, "PolicyViolation");
    assert_eq!(e.revision, Some(3));
    assert!(
        e.message.contains(
            "spec.containers[0].securityContext.privileged: privileged containers are not allowed"
        ),
        "{}",
        e.message
    );
    // Allowed by the device's policy: it runs.
    let mut c = cfg(&[]);
    c.policy.allow_privileged = true;
    let mut d = FleetDocs::new(c);
    let _ = d.offer(&device(), &doc(3, vec![pod("ok"), privileged("root")]), NOW);
    assert_eq!(
        names(&d.plan(&no_static, NOW)),
        ["default/ok", "default/root"]
    );
}

#[test]
fn topics_of_other_devices_and_unconfigured_groups_are_not_sources() {
    let d = FleetDocs::new(cfg(&["kitchen"]));
    assert_eq!(d.source_of("picolet/devices/pi-1/desired"), Some(device()));
    assert_eq!(
        d.source_of("picolet/groups/kitchen/desired"),
        Some(group("kitchen"))
    );
    assert_eq!(d.source_of("picolet/devices/pi-2/desired"), None);
    assert_eq!(d.source_of("picolet/groups/hall/desired"), None);
    assert_eq!(d.source_of("picolet/devices/pi-1/status"), None);
}

#[test]
fn stored_documents_come_back_verified_and_unconfigured_ones_are_dropped() {
    let mut d = FleetDocs::new(cfg(&["kitchen"]));
    let _ = d.offer(&device(), &doc(7, vec![pod("a")]), NOW);
    let _ = d.offer(&group("kitchen"), &doc(2, vec![pod("k")]), NOW);
    let mut saved = d.saved();
    saved.insert(
        group("gone"),
        SavedDoc {
            revision: 1,
            payload: doc(1, vec![]),
        },
    );
    let mut back = FleetDocs::new(cfg(&["kitchen"]));
    let notes = back.restore(saved.clone(), NOW);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("group gone"), "{notes:?}");
    assert_eq!(back.observed(), d.observed());
    assert_eq!(
        names(&back.plan(&no_static, NOW)),
        ["default/a", "default/k"]
    );

    // A key configured since: the unsigned stored documents are refused.
    let (_, public) = generate_keypair().unwrap();
    let mut c = cfg(&["kitchen"]);
    c.fleet_key = Some(crate::fleet::sign::PublicKey(public));
    let mut strict = FleetDocs::new(c);
    let _ = strict.restore(saved, NOW);
    assert!(strict.plan(&no_static, NOW).pods.is_empty());
    let errors = strict.errors();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0]
            .message
            .starts_with("stored document refused: unsigned"),
        "{errors:?}"
    );
}

#[test]
fn source_labels_mark_fleet_pods() {
    assert_eq!(source_label(&device()), "fleet:device/pi-1");
    assert_eq!(source_label(&group("g")), "fleet:group/g");
    assert!(is_fleet_source("fleet:group/g"));
    assert!(!is_fleet_source("/etc/picolet/manifests/web.yaml"));
}

#[test]
fn the_override_topic_stands_in_for_the_group_until_cleared() {
    let mut d = FleetDocs::new(cfg(&["g1"]));
    let over = "picolet/devices/pi-1/groups/g1/desired";
    assert_eq!(d.source_of(over), Some(group("g1")));
    assert!(d.is_override(over));
    assert!(!d.is_override("picolet/groups/g1/desired"));
    assert_eq!(d.source_of("picolet/devices/pi-2/groups/g1/desired"), None);
    assert_eq!(d.source_of("picolet/devices/pi-1/groups/g2/desired"), None);
    assert!(matches!(
        d.offer(&group("g1"), &doc(3, vec![pod("old")]), NOW),
        Offer::Accepted { revision: 3, .. }
    ));
    assert!(matches!(
        d.offer_override(&group("g1"), &doc(4, vec![pod("new")]), NOW),
        Offer::Accepted { revision: 4, .. }
    ));
    assert!(d.has_override(&group("g1")));
    assert_eq!(d.observed().groups["g1"], 4);
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/new"]);
    // Its own revision rule.
    let Offer::Refused(e) = d.offer_override(&group("g1"), &doc(4, vec![pod("x")]), NOW) else {
        panic!()
    };
    assert_eq!((e.reason.as_str(), e.topic.as_str()), ("Stale", over));
    // A newer group document does not take effect while the override is held.
    assert!(matches!(
        d.offer(&group("g1"), &doc(5, vec![pod("group5")]), NOW),
        Offer::Accepted { revision: 5, .. }
    ));
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/new"]);
    assert_eq!(d.in_effect(&group("g1")).unwrap().1.revision, 4);
    // Kept in the state file apart, and restored.
    let saved = d.saved_overrides();
    assert_eq!(saved[&group("g1")].revision, 4);
    let mut back = FleetDocs::new(cfg(&["g1"]));
    assert!(back.restore_overrides(saved, NOW).is_empty());
    assert_eq!(back.observed().groups["g1"], 4);
    // Cleared: the group's document, whatever its revision.
    assert!(d.clear_override(&group("g1")));
    assert!(!d.clear_override(&group("g1")));
    assert_eq!(d.observed().groups["g1"], 5);
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/group5"]);
    // After a clear, any revision is taken on the override topic.
    assert!(matches!(
        d.offer_override(&group("g1"), &doc(2, vec![pod("two")]), NOW),
        Offer::Accepted { revision: 2, .. }
    ));
}

#[test]
fn a_pin_runs_the_kept_document_until_what_is_in_effect_changes() {
    let mut d = FleetDocs::new(cfg(&["g1"]));
    let kept = SavedDoc {
        revision: 1,
        payload: doc(1, vec![pod("good")]),
    };
    let _ = d.offer(&group("g1"), &doc(2, vec![pod("bad")]), NOW);
    d.pin(&group("g1"), &kept).unwrap();
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/good"]);
    // observedRevision still says what was received.
    assert_eq!(d.observed().groups["g1"], 2);
    // The failed revision again is stale: still pinned.
    assert!(matches!(
        d.offer(&group("g1"), &doc(2, vec![pod("bad2")]), NOW),
        Offer::Refused(_)
    ));
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/good"]);
    // A newer one ends the pin.
    let _ = d.offer(&group("g1"), &doc(3, vec![pod("next")]), NOW);
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/next"]);
    // A pin that does not decode is refused.
    let bad = SavedDoc {
        revision: 1,
        payload: b"{".to_vec(),
    };
    assert!(d.pin(&group("g1"), &bad).is_err());
    assert_eq!(names(&d.plan(&no_static, NOW)), ["default/next"]);
}

#[test]
fn planned_gives_each_pod_of_a_source_as_applied_or_its_refusal() {
    let mut c = cfg(&["kitchen"]);
    c.policy.no_new_privileges = true;
    let mut d = FleetDocs::new(c);
    let _ = d.offer(
        &group("kitchen"),
        &doc(2, vec![pod("ok"), privileged("root")]),
        NOW,
    );
    let plan = d.plan(&no_static, NOW);
    let planned = d.planned(&group("kitchen"));
    let keys: Vec<&str> = planned.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["default/ok", "default/root"]);
    // The pod the lifecycle was given: hardened by the policy.
    let ok = planned[0].1.as_ref().unwrap();
    assert_eq!(ok, &plan.pods[0].2);
    let sc = ok.spec.containers[0].security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let e = planned[1].1.as_ref().unwrap_err();
    assert_eq!(e.reason, "PolicyViolation");
    assert_eq!(e.pod.as_deref(), Some("default/root"));
    // Another source's pods are not this one's.
    assert!(d.planned(&device()).is_empty());
    // A pod the device's own document takes: the group's clashes.
    let _ = d.offer(&device(), &doc(1, vec![pod("ok")]), NOW);
    let _ = d.plan(&no_static, NOW);
    let planned = d.planned(&group("kitchen"));
    assert_eq!(planned[0].1.as_ref().unwrap_err().reason, "NameClash");
    assert!(d.planned(&device())[0].1.is_ok());
}

/// A device without `Mars/Olympus` in its tz database.
fn no_mars(w: &crate::spec::workload::Workload) -> Result<(), crate::spec::SpecError> {
    match &w.spec {
        crate::spec::workload::WorkloadSpec::CronJob(c)
            if c.time_zone.as_deref() == Some("Mars/Olympus") =>
        {
            Err(crate::spec::SpecError::invalid(
                "spec.timeZone",
                "unknown time zone Mars/Olympus",
            ))
        }
        _ => Ok(()),
    }
}

fn cronjob(name: &str, zone: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {"schedule": "0 9 * * *", "timeZone": zone, "jobTemplate": {"spec": {
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox:1"}]}}}}}
    })
}

fn doc_with(revision: u64, pods: Vec<Value>, workloads: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState",
        "revision": revision, "pods": pods, "workloads": workloads,
    }))
    .unwrap()
}

fn doc_reg(revision: u64, registries: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState",
        "revision": revision, "pods": [], "registries": registries,
    }))
    .unwrap()
}

#[test]
fn a_workload_the_device_cannot_run_refuses_the_document_with_its_path() {
    let mut c = cfg(&[]);
    c.check_workload = no_mars;
    let mut d = FleetDocs::new(c);
    let good = doc_with(1, vec![pod("a")], vec![cronjob("ok", "Europe/Berlin")]);
    assert!(matches!(
        d.offer(&device(), &good, NOW),
        Offer::Accepted { revision: 1, .. }
    ));
    let bad = doc_with(
        2,
        vec![pod("b")],
        vec![
            cronjob("ok", "Europe/Berlin"),
            cronjob("mars", "Mars/Olympus"),
        ],
    );
    let Offer::Refused(e) = d.offer(&device(), &bad, NOW) else {
        panic!("accepted a CronJob in an unknown time zone");
    };
    assert_eq!(
        (e.reason.as_str(), e.message.as_str(), e.revision),
        (
            "Invalid",
            "workloads[1].spec.timeZone: unknown time zone Mars/Olympus",
            Some(2)
        ),
    );
    // Nothing changed: revision 1 and its pod and workload stay.
    assert_eq!(d.observed().device, Some(1));
    let plan = d.plan(&no_static, NOW);
    assert_eq!(names(&plan), ["default/a"]);
    assert_eq!(plan.workloads.len(), 1);
    assert_eq!(d.errors().len(), 1);

    // A stored document is not checked again at start: a zone gone since
    // is the CronJob's event, not the document's refusal.
    let mut lax = FleetDocs::new(cfg(&[]));
    let _ = lax.offer(&device(), &bad, NOW);
    let mut c = cfg(&[]);
    c.check_workload = no_mars;
    let mut back = FleetDocs::new(c);
    let notes = back.restore(lax.saved(), NOW);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(back.plan(&no_static, NOW).workloads.len(), 2);
}

fn mirror(url: &str) -> Value {
    json!({"endpoint": [url]})
}

fn user(name: &str) -> Value {
    json!({"auth": {"username": name, "password": "pw"}})
}

#[test]
fn registries_merge_device_first_then_groups_in_order_per_host_key_and_survive_a_restart() {
    let mut d = FleetDocs::new(cfg(&["a", "b"]));
    assert_eq!(d.registries(), None, "no document, no block");
    let _ = d.offer(
        &group("b"),
        &doc_reg(
            1,
            json!({
        "configs": {"x": user("b"), "y": user("b")}}),
        ),
        NOW,
    );
    let _ = d.offer(
        &group("a"),
        &doc_reg(
            1,
            json!({
        "mirrors": {"docker.io": mirror("http://a"), "quay.io": mirror("http://a-quay")},
        "configs": {"x": user("a")}}),
        ),
        NOW,
    );
    let _ = d.offer(
        &device(),
        &doc_reg(
            1,
            json!({
        "mirrors": {"docker.io": mirror("http://device")}}),
        ),
        NOW,
    );
    let want = json!({
        "mirrors": {"docker.io": mirror("http://device"), "quay.io": mirror("http://a-quay")},
        "configs": {"x": user("a"), "y": user("b")},
    });
    assert_eq!(d.registries(), Some(want.clone()));
    // A bad block refuses its document: the one before stays in effect.
    let bad = doc_reg(2, json!({"configs": {"x": {"tls": {"key_file": "/k"}}}}));
    let Offer::Refused(e) = d.offer(&device(), &bad, NOW) else {
        panic!("a bad registries block was accepted");
    };
    assert_eq!(e.reason, "Invalid");
    assert!(
        e.message.starts_with(
            "registries.configs[\"x\"].tls.key_file: a fleet document cannot name files"
        ),
        "{}",
        e.message
    );
    assert_eq!(d.registries(), Some(want.clone()));
    // The documents as saved in the state file bring the same blocks back.
    let mut back = FleetDocs::new(cfg(&["a", "b"]));
    assert!(back.restore(d.saved(), NOW).is_empty());
    assert_eq!(back.registries(), Some(want));
    // A document without a block drops its entries.
    let _ = d.offer(&device(), &doc(3, vec![]), NOW);
    assert_eq!(
        d.registries().unwrap()["mirrors"]["docker.io"],
        mirror("http://a")
    );
}
