//! The status document, retained on `<prefix>/devices/<id>/status`:
//!
//! ```json
//! {"apiVersion":"picolet.io/v1","kind":"DeviceStatus","deviceId":"pi-1",
//!  "observedRevision":{"device":7,"groups":{"kitchen":3}},
//!  "pods":[{"metadata":{"name":"web","namespace":"default","uid":"…","labels":{…}},
//!           "status":<Kubernetes PodStatus>}],
//!  "node":{"architecture":"aarch64","kernel":"6.6.31","memoryBytes":…,
//!          "cgroupControllers":["cpu","memory"],"picoletVersion":"0.1.0","uptimeSeconds":…},
//!  "errors":[{"topic":"picolet/devices/pi-1/desired","revision":8,"pod":"default/web",
//!             "reason":"PolicyViolation","message":"…","time":"2026-11-22T10:00:00Z"}],
//!  "time":"2026-11-22T10:00:00Z"}
//! ```
//! `observedRevision` is [`ObservedRevision`]; `errors` lists refused
//! documents and pods, newest last, at most [`ErrorLog`]'s capacity. The
//! agent builds it with [`DeviceStatus::new`]; the controller CLI reads it
//! with [`DeviceStatus::from_json`]. Pure.

use super::{API_VERSION, Clash, DocError, NodeInfo, ObservedRevision, STATUS_KIND};
use crate::clock::rfc3339;
use crate::lifecycle::PodStatus;
use crate::spec::Pod;
use crate::vecmap::VecMap;
use serde::{Deserialize, Serialize};

/// `pods[].metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMetadata {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub labels: VecMap<String, String>,
}

/// One pod of the status document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodReport {
    pub metadata: PodMetadata,
    pub status: PodStatus,
    /// The pod's CPU and memory, when metrics are on (docs/metrics.md):
    /// updated only when it moved by more than 10 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::metrics::Usage>,
}

impl PodReport {
    /// The report of `pod` (its uid is taken from `uid`, the one the agent
    /// runs it under) with `status`.
    pub fn new(pod: &Pod, uid: &str, status: PodStatus) -> PodReport {
        PodReport {
            metadata: PodMetadata {
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace_or_default().to_string(),
                uid: uid.to_string(),
                labels: pod.metadata.labels.clone(),
            },
            status,
            usage: None,
        }
    }

    /// Whether the pod's `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.kind == "Ready" && c.status == "True")
    }
}

/// A refused document or pod, as reported in `errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusError {
    /// The topic the document came from (`picolet/groups/kitchen/desired`).
    pub topic: String,
    /// The document's revision, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// `namespace/name` when the error is about one pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// `Malformed`, `TooLarge`, `Invalid`, `Unsigned`, `BadSignature`
    /// ([`DocError::reason`]), `PolicyViolation` or `NameClash`.
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub time: String,
}

impl StatusError {
    /// The error for a refused document.
    pub fn for_doc(topic: &str, err: &DocError, now_wall_ms: i64) -> StatusError {
        StatusError {
            topic: topic.to_string(),
            revision: None,
            pod: None,
            reason: err.reason().to_string(),
            message: err.to_string(),
            time: rfc3339(now_wall_ms),
        }
    }

    /// The error for one pod of an accepted document (`PolicyViolation`, …).
    pub fn for_pod(
        topic: &str,
        revision: u64,
        pod: &Pod,
        reason: &str,
        message: &str,
        now_wall_ms: i64,
    ) -> StatusError {
        StatusError {
            topic: topic.to_string(),
            revision: Some(revision),
            pod: Some(format!(
                "{}/{}",
                pod.metadata.namespace_or_default(),
                pod.metadata.name
            )),
            reason: reason.to_string(),
            message: message.to_string(),
            time: rfc3339(now_wall_ms),
        }
    }

    /// The error for a pod dropped by a name clash (reason `NameClash`),
    /// reported against the topic whose pod was dropped.
    pub fn for_clash(topic: &str, revision: u64, clash: &Clash, now_wall_ms: i64) -> StatusError {
        StatusError {
            topic: topic.to_string(),
            revision: Some(revision),
            pod: Some(format!("{}/{}", clash.namespace, clash.name)),
            reason: "NameClash".to_string(),
            message: clash.to_string(),
            time: rfc3339(now_wall_ms),
        }
    }
}

/// The errors reported in status: at most `N` (a fixed bound, so they live
/// in place, in a `heapless::Vec`), newest last. An error replaces an
/// older one about the same topic and pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorLog<const N: usize = ERROR_LOG_CAP> {
    items: heapless::Vec<StatusError, N>,
}

/// The errors a device's status reports at most.
const ERROR_LOG_CAP: usize = 32;

impl ErrorLog {
    pub const DEFAULT_CAP: usize = ERROR_LOG_CAP;
}

impl<const N: usize> ErrorLog<N> {
    pub fn new() -> Self {
        const { assert!(N > 0, "an error log holds at least one error") };
        ErrorLog {
            items: heapless::Vec::new(),
        }
    }

    /// Adds `e`, dropping an older entry for the same topic and pod, and
    /// the oldest entry when full.
    pub fn push(&mut self, e: StatusError) {
        self.items
            .retain(|o| !(o.topic == e.topic && o.pod == e.pod));
        if self.items.is_full() {
            self.items.remove(0);
        }
        // Cannot fail: there is room now.
        let _ = self.items.push(e);
    }

    /// Drops every entry about `topic` (a newer document from it was accepted).
    pub fn clear_topic(&mut self, topic: &str) {
        self.items.retain(|o| o.topic != topic);
    }

    pub fn items(&self) -> impl Iterator<Item = &StatusError> {
        self.items.iter()
    }

    pub fn to_vec(&self) -> Vec<StatusError> {
        self.items.iter().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The status document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStatus {
    pub api_version: String,
    pub kind: String,
    pub device_id: String,
    pub observed_revision: ObservedRevision,
    pub pods: Vec<PodReport>,
    pub node: NodeInfo,
    #[serde(default)]
    pub errors: Vec<StatusError>,
    /// Each workload's rollout state (issue 13).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadReport>,
    /// The deployment record of each source with a document (issue 14,
    /// docs/fleet.md): `{"source": "device" | "group/<g>", "revision": N,
    /// "state": S, "reason", "message", "pod", "since": RFC 3339,
    /// "rolledBackTo": M}` (`revision`, `reason`, `message`, `pod`,
    /// `rolledBackTo` only when set). Kept as JSON values: a typed
    /// `Deserialize` costs binary size, and readers index it by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<serde_json::Value>,
    /// RFC 3339: when it was built.
    pub time: String,
}

/// One workload of the status document: its Kubernetes `status` (counts,
/// conditions, revisions) and the revision it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// `Deployment`, `DaemonSet`, `StatefulSet`, `Job`, `CronJob`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `spec.replicas` (1 when unset; a DaemonSet's: 1; a Job's: its
    /// completions).
    #[serde(default)]
    pub desired: i64,
    /// The revision it runs (a Deployment's
    /// `deployment.kubernetes.io/revision`, a set's `updateRevision`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    #[serde(default)]
    pub status: serde_json::Value,
}

impl WorkloadReport {
    /// The report of a workload as the API shows it (`object`: with its
    /// `status`).
    pub fn from_object(object: &serde_json::Value) -> WorkloadReport {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let kind = s(&object["kind"]);
        let desired = match kind.as_str() {
            "Job" => object["spec"]["completions"].as_i64().unwrap_or(1),
            "DaemonSet" | "CronJob" => 1,
            _ => object["spec"]["replicas"].as_i64().unwrap_or(1),
        };
        let mut revision =
            s(&object["metadata"]["annotations"]["deployment.kubernetes.io/revision"]);
        if revision.is_empty() {
            revision = s(&object["status"]["updateRevision"]);
        }
        WorkloadReport {
            namespace: s(&object["metadata"]["namespace"]),
            name: s(&object["metadata"]["name"]),
            kind,
            desired,
            revision,
            status: object["status"].clone(),
        }
    }
}

impl DeviceStatus {
    /// Builds the document from its pieces; `now_wall_ms` is Unix ms.
    pub fn new(
        device_id: &str,
        observed: &ObservedRevision,
        pods: Vec<PodReport>,
        node: NodeInfo,
        errors: Vec<StatusError>,
        now_wall_ms: i64,
    ) -> DeviceStatus {
        DeviceStatus {
            api_version: API_VERSION.to_string(),
            kind: STATUS_KIND.to_string(),
            device_id: device_id.to_string(),
            observed_revision: observed.clone(),
            pods,
            node,
            errors,
            workloads: Vec::new(),
            deployments: Vec::new(),
            time: rfc3339(now_wall_ms),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a status document always serializes")
    }

    /// Reads a status document (the controller side), with the field path
    /// of the first problem.
    pub fn from_json(bytes: &[u8]) -> Result<DeviceStatus, DocError> {
        // Text → one `Value` → typed (one instantiation of the type's
        // `Deserialize`, docs/design-deviations.md §12).
        let value = super::desired::parse_json(bytes, "")?;
        let status: DeviceStatus = crate::serde_path::from_value(value)
            .map_err(|e| DocError::field(&e.field(), e.message()))?;
        if status.kind != STATUS_KIND {
            return Err(DocError::field(
                "kind",
                format!("{:?} is not {STATUS_KIND}", status.kind),
            ));
        }
        Ok(status)
    }

    /// Equal but for `time`, `node.uptimeSeconds` and the node's free
    /// memory and disk use, which change without anything happening: the
    /// agent publishes only when this is false (those go out with the next
    /// change).
    pub fn same_content(&self, other: &DeviceStatus) -> bool {
        let strip = |s: &DeviceStatus| {
            let mut s = s.clone();
            s.time.clear();
            s.node.uptime_seconds = 0;
            s.node.memory_available_bytes = 0;
            s.node.state_disk = Default::default();
            s.node.image_disk = Default::default();
            s
        };
        strip(self) == strip(other)
    }

    /// (ready, total) pods.
    pub fn pods_ready(&self) -> (usize, usize) {
        let ready = self.pods.iter().filter(|p| p.is_ready()).count();
        (ready, self.pods.len())
    }
}
