//! Kubernetes-style events, published (not retained) on
//! `<prefix>/devices/<id>/events`:
//!
//! ```json
//! {"apiVersion":"v1","kind":"Event",
//!  "metadata":{"name":"web.18c3f…","namespace":"default"},
//!  "type":"Warning","reason":"BackOff","message":"Back-off restarting failed container",
//!  "involvedObject":{"kind":"Pod","name":"web","namespace":"default","uid":"…",
//!                    "fieldPath":"spec.containers{app}"},
//!  "source":{"component":"picolet","host":"pi-1"},
//!  "firstTimestamp":"…","lastTimestamp":"…","count":3}
//! ```
//! Repeats of the same event (same object, field path, type, reason and
//! message) are counted as Kubernetes does: [`EventAggregator`] keeps
//! `firstTimestamp` and increments `count`. A refused desired document is an
//! event about `{"kind":"DeviceState","name":"device/<id>"}` or
//! `"group/<g>"`. Pure: time comes in as Unix ms.

use super::API_VERSION;
use crate::clock::rfc3339;
use crate::fleet::topics::Source;
use crate::lifecycle::EventType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// `involvedObject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// `spec.containers{name}` when the event is about one container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_path: String,
    /// Set for document events: `picolet.io/v1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
}

impl ObjectRef {
    /// A pod, or one of its containers.
    pub fn pod(name: &str, namespace: &str, uid: &str, container: Option<&str>) -> ObjectRef {
        ObjectRef {
            kind: "Pod".to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
            uid: uid.to_string(),
            field_path: container.map_or_else(String::new, |c| format!("spec.containers{{{c}}}")),
            api_version: String::new(),
        }
    }

    /// The desired document of `source`.
    pub fn desired(source: &Source) -> ObjectRef {
        let name = match source {
            Source::Device(id) => format!("device/{id}"),
            Source::Group(g) => format!("group/{g}"),
        };
        ObjectRef {
            kind: super::DESIRED_KIND.to_string(),
            name,
            api_version: API_VERSION.to_string(),
            ..ObjectRef::default()
        }
    }
}

/// `metadata` of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// `source` of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource {
    pub component: String,
    pub host: String,
}

/// A `v1` `Event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDoc {
    pub api_version: String,
    pub kind: String,
    pub metadata: EventMeta,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub reason: String,
    pub message: String,
    pub involved_object: ObjectRef,
    pub source: EventSource,
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub count: u32,
}

impl EventDoc {
    /// One event, seen `count` times between `first_ms` and `last_ms` (Unix ms).
    pub fn new(
        device_id: &str,
        object: ObjectRef,
        event_type: EventType,
        reason: &str,
        message: &str,
        (first_ms, last_ms, count): (i64, i64, u32),
    ) -> EventDoc {
        // Kubernetes names events `<object>.<hex of the time>`.
        let name = format!("{}.{:x}", object.name.replace('/', "."), first_ms.max(0));
        EventDoc {
            api_version: "v1".to_string(),
            kind: "Event".to_string(),
            metadata: EventMeta {
                name,
                namespace: object.namespace.clone(),
            },
            event_type,
            reason: reason.to_string(),
            message: message.to_string(),
            involved_object: object,
            source: EventSource {
                component: "picolet".to_string(),
                host: device_id.to_string(),
            },
            first_timestamp: rfc3339(first_ms),
            last_timestamp: rfc3339(last_ms),
            count,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always serializes")
    }
}

type EventKey = (ObjectRef, EventType, String, String);

/// Counts repeated events. Remembers at most `cap` distinct events (the
/// least recently seen is forgotten first).
#[derive(Debug, Clone)]
pub struct EventAggregator {
    device_id: String,
    cap: usize,
    /// key → (first ms, last ms, count).
    seen: HashMap<EventKey, (i64, i64, u32)>,
}

impl EventAggregator {
    pub const DEFAULT_CAP: usize = 256;

    pub fn new(device_id: &str, cap: usize) -> EventAggregator {
        EventAggregator {
            device_id: device_id.to_string(),
            cap: cap.max(1),
            seen: HashMap::new(),
        }
    }

    /// Records one occurrence at `now_wall_ms` and returns the event to publish.
    #[must_use = "the event is to be published"]
    pub fn record(
        &mut self,
        object: ObjectRef,
        event_type: EventType,
        reason: &str,
        message: &str,
        now_wall_ms: i64,
    ) -> EventDoc {
        let key = (
            object.clone(),
            event_type,
            reason.to_string(),
            message.to_string(),
        );
        if !self.seen.contains_key(&key) && self.seen.len() >= self.cap {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, (_, last, _))| *last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.seen.remove(&k);
            }
        }
        let entry = self
            .seen
            .entry(key)
            .or_insert((now_wall_ms, now_wall_ms, 0));
        entry.1 = now_wall_ms;
        entry.2 = entry.2.saturating_add(1);
        let counts = *entry;
        EventDoc::new(&self.device_id, object, event_type, reason, message, counts)
    }

    /// Forgets every event about the pod with this uid (it was removed).
    pub fn forget_uid(&mut self, uid: &str) {
        self.seen.retain(|(o, ..), _| o.uid != uid);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
