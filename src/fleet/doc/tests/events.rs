use super::*;
use crate::fleet::topics::Source;
use crate::lifecycle::EventType;

#[test]
fn an_event_is_shaped_like_a_kubernetes_event() {
    let object = ObjectRef::pod("web", "default", "uid-1", Some("app"));
    let e = EventDoc::new(
        "pi-1",
        object,
        EventType::Warning,
        "BackOff",
        "Back-off restarting failed container",
        (1_700_000_000_000, 1_700_000_060_000, 3),
    );
    let v: Value = serde_json::from_slice(&e.to_json()).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "web.18bcfe56800", "namespace": "default"},
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container",
            "involvedObject": {
                "kind": "Pod", "name": "web", "namespace": "default", "uid": "uid-1",
                "fieldPath": "spec.containers{app}"
            },
            "source": {"component": "picolet", "host": "pi-1"},
            "firstTimestamp": "2023-11-14T22:13:20Z",
            "lastTimestamp": "2023-11-14T22:14:20Z",
            "count": 3
        })
    );
}

#[test]
fn repeated_events_are_counted_and_keep_their_first_timestamp() {
    let mut agg = EventAggregator::new("pi-1", EventAggregator::DEFAULT_CAP);
    let obj = || ObjectRef::pod("web", "default", "u1", None);
    let first = agg.record(obj(), EventType::Normal, "Pulled", "pulled", 1_000);
    assert_eq!(first.count, 1);
    let second = agg.record(obj(), EventType::Normal, "Pulled", "pulled", 61_000);
    assert_eq!(second.count, 2);
    assert_eq!(second.first_timestamp, "1970-01-01T00:00:01Z");
    assert_eq!(second.last_timestamp, "1970-01-01T00:01:01Z");
    assert_eq!(second.metadata.name, first.metadata.name);
    let other = agg.record(obj(), EventType::Normal, "Pulled", "pulled again", 62_000);
    assert_eq!(other.count, 1);
    assert_eq!(agg.len(), 2);
    agg.forget_uid("u1");
    assert!(agg.is_empty());
}

#[test]
fn the_aggregator_forgets_the_least_recently_seen_event_when_full() {
    let mut agg = EventAggregator::new("pi-1", 2);
    let obj = |n: &str| ObjectRef::pod(n, "default", n, None);
    let _ = agg.record(obj("a"), EventType::Normal, "Started", "", 1);
    let _ = agg.record(obj("b"), EventType::Normal, "Started", "", 2);
    let _ = agg.record(obj("a"), EventType::Normal, "Started", "", 3);
    let _ = agg.record(obj("c"), EventType::Normal, "Started", "", 4);
    assert_eq!(agg.len(), 2);
    // "b" was forgotten, "a" was not.
    assert_eq!(
        agg.record(obj("a"), EventType::Normal, "Started", "", 5)
            .count,
        3
    );
    assert_eq!(
        agg.record(obj("b"), EventType::Normal, "Started", "", 6)
            .count,
        1
    );
}

#[test]
fn a_refused_document_is_an_event_about_its_source() {
    let obj = ObjectRef::desired(&Source::Group("kitchen".into()));
    let e = EventDoc::new(
        "pi-1",
        obj,
        EventType::Warning,
        "BadSignature",
        "signature does not verify",
        (0, 0, 1),
    );
    let v: Value = serde_json::from_slice(&e.to_json()).unwrap();
    assert_eq!(
        v["involvedObject"],
        json!({"kind": "DeviceState", "name": "group/kitchen", "apiVersion": "picolet.io/v1"})
    );
    assert_eq!(v["metadata"], json!({"name": "group.kitchen.0"}));
    assert_eq!(
        ObjectRef::desired(&Source::Device("pi-1".into())).name,
        "device/pi-1"
    );
}
