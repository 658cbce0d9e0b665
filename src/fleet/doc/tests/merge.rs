use super::*;
use crate::fleet::topics::Source;

fn with_image(name: &str, image: &str) -> Value {
    let mut p = pod(name);
    p["spec"]["containers"][0]["image"] = json!(image);
    p
}

fn dev() -> Source {
    Source::Device("pi-1".into())
}

fn group(g: &str) -> Source {
    Source::Group(g.into())
}

#[test]
fn device_pods_win_a_clash_with_group_pods_and_the_clash_is_reported() {
    let device = decode(&doc_json(1, vec![with_image("web", "web:device")])).unwrap();
    let kitchen = decode(&doc_json(
        1,
        vec![with_image("web", "web:group"), pod("db")],
    ))
    .unwrap();
    // Groups listed before the device still lose.
    let merged = merge(&[(group("kitchen"), &kitchen), (dev(), &device)]);
    let got: Vec<(&Source, &str, &str)> = merged
        .pods
        .iter()
        .map(|p| {
            (
                &p.source,
                p.pod.metadata.name.as_str(),
                p.pod.spec.containers[0].image.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (&dev(), "web", "web:device"),
            (&group("kitchen"), "db", "busybox:1")
        ]
    );
    assert_eq!(
        merged.clashes,
        [Clash {
            namespace: "default".into(),
            name: "web".into(),
            kept: dev(),
            dropped: group("kitchen"),
        }]
    );
    assert_eq!(
        merged.clashes[0].to_string(),
        "pod default/web of group kitchen is ignored: device pi-1 defines it too and wins"
    );
}

#[test]
fn between_groups_the_first_listed_wins() {
    let a = decode(&doc_json(1, vec![with_image("x", "x:a")])).unwrap();
    let b = decode(&doc_json(1, vec![with_image("x", "x:b")])).unwrap();
    let merged = merge(&[(group("b"), &b), (group("a"), &a)]);
    assert_eq!(merged.pods.len(), 1);
    assert_eq!(merged.pods[0].pod.spec.containers[0].image, "x:b");
    assert_eq!(merged.clashes[0].dropped, group("a"));
}

#[test]
fn pods_with_the_same_name_in_other_namespaces_do_not_clash() {
    let mut other = pod("web");
    other["metadata"]["namespace"] = json!("tools");
    let device = decode(&doc_json(1, vec![pod("web")])).unwrap();
    let g = decode(&doc_json(1, vec![other])).unwrap();
    let merged = merge(&[(dev(), &device), (group("g"), &g)]);
    assert_eq!(merged.pods.len(), 2);
    assert!(merged.clashes.is_empty());
    assert_eq!(merge(&[]), Merged::default());
}

#[test]
fn a_revision_at_or_below_the_last_accepted_one_is_stale() {
    let mut seen = ObservedRevision::default();
    assert_eq!(seen.offer(&dev(), 5), Ok(()));
    assert_eq!(
        seen.offer(&dev(), 5),
        Err(Stale {
            origin: dev(),
            revision: 5,
            last: 5
        })
    );
    assert!(seen.offer(&dev(), 3).is_err());
    assert_eq!(seen.offer(&dev(), 6), Ok(()));
    assert_eq!(seen.last(&dev()), Some(6));
    assert_eq!(
        seen.check(&dev(), 2).unwrap_err().to_string(),
        "device pi-1 revision 2 is not newer than accepted revision 6: ignored"
    );
}

#[test]
fn the_first_document_of_a_source_is_accepted_even_at_revision_zero() {
    let mut seen = ObservedRevision::default();
    assert_eq!(seen.offer(&group("g"), 0), Ok(()));
    assert!(seen.offer(&group("g"), 0).is_err());
}

#[test]
fn revisions_are_tracked_per_source() {
    let mut seen = ObservedRevision::default();
    seen.offer(&dev(), 10).unwrap();
    seen.offer(&group("a"), 2).unwrap();
    assert_eq!(seen.offer(&group("b"), 1), Ok(()));
    assert_eq!(seen.offer(&group("a"), 3), Ok(()));
    assert!(seen.check(&group("a"), 3).is_err());
    assert_eq!(seen.last(&dev()), Some(10));
    // A failed check records nothing.
    assert!(seen.check(&dev(), 11).is_ok());
    assert_eq!(seen.last(&dev()), Some(10));
}

#[test]
fn reached_tells_apply_when_the_device_has_caught_up() {
    let mut seen = ObservedRevision::default();
    assert!(!seen.reached(&dev(), 0));
    seen.record(&dev(), 4);
    seen.record(&group("g"), 2);
    assert!(seen.reached(&dev(), 4) && seen.reached(&dev(), 3));
    assert!(!seen.reached(&dev(), 5));
    assert!(seen.reached(&group("g"), 2) && !seen.reached(&group("h"), 1));
    seen.retain_groups(&["h".to_string()]);
    assert_eq!(seen.last(&group("g")), None);
}

#[test]
fn observed_revision_json_has_a_device_number_and_a_group_map() {
    let mut seen = ObservedRevision::default();
    assert_eq!(
        serde_json::to_value(&seen).unwrap(),
        json!({"device": null, "groups": {}})
    );
    seen.record(&dev(), 7);
    seen.record(&group("kitchen"), 3);
    let v = serde_json::to_value(&seen).unwrap();
    assert_eq!(v, json!({"device": 7, "groups": {"kitchen": 3}}));
    assert_eq!(serde_json::from_value::<ObservedRevision>(v).unwrap(), seen);
    let bytes = postcard::to_stdvec(&seen).unwrap();
    assert_eq!(
        postcard::from_bytes::<ObservedRevision>(&bytes).unwrap(),
        seen
    );
}
