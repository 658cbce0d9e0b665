//! Status and events: what the fleet channel publishes (see the module doc
//! of [`super`]).

use super::{STATUS_MIN_INTERVAL_MS, publish};
use crate::agent::Agent;
use crate::clock::Now;
use crate::fleet::doc::{DeviceStatus, DiskUse, ObjectRef, PodReport};
use crate::fleet::session::Qos;
use crate::fleet::topics::Source;
use crate::lifecycle::EventType;
use crate::lifecycle::Output;

impl Agent {
    /// Notes what the status and events need from a lifecycle output
    /// (before the agent carries it out).
    pub(in crate::agent) fn fleet_observe(&mut self, out: &Output) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        match out {
            Output::StatusChanged { .. } => f.status_changed(),
            Output::PodRemoved { uid } => {
                f.events.forget_uid(uid);
                f.status_changed();
            }
            Output::Event {
                uid,
                kind,
                reason,
                message,
                involved,
            } => {
                let Some(view) = self.node.pod(uid) else {
                    return;
                };
                let meta = &view.spec.metadata;
                let object = ObjectRef::pod(
                    &meta.name,
                    meta.namespace_or_default(),
                    uid,
                    involved.as_deref(),
                );
                self.publish_event(object, *kind, reason, message);
            }
            _ => {}
        }
    }

    /// Publishes the status if it changed and is due, then carries out the
    /// session's outputs. Called at the end of every main-loop turn.
    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    pub(in crate::agent) fn fleet_flush(&mut self) {
        let due = self.fleet.as_ref().is_some_and(|f| {
            f.dirty
                && f.session.is_up()
                && f.last_status_at
                    .is_none_or(|t| Now::read().mono_ms >= t + STATUS_MIN_INTERVAL_MS)
        });
        if due {
            self.publish_status(false);
        }
        self.fleet_drain();
    }

    /// Builds the status and publishes it (when up), unless it equals the
    /// last one published and `force` is false.
    pub(super) fn publish_status(&mut self, force: bool) {
        let now = Now::read();
        let Some(status) = self.build_status(now) else {
            return;
        };
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        if !f.session.is_up() {
            return; // published on the next ConnectionUp
        }
        f.dirty = false;
        if !force
            && f.last_status
                .as_ref()
                .is_some_and(|l| l.same_content(&status))
        {
            return;
        }
        let topic = f.settings.topics.device_status(&f.settings.device_id);
        f.session.handle(
            publish(topic, status.to_json(), Qos::AtLeastOnce, true),
            now,
        );
        f.last_status = Some(status);
        f.last_status_at = Some(now.mono_ms);
    }

    pub(super) fn build_status(&self, now: Now) -> Option<DeviceStatus> {
        let f = self.fleet.as_ref()?;
        let docs = self.desired.fleet()?;
        let mut pods: Vec<PodReport> = self
            .node
            .pods()
            .map(|p| {
                let mut r = PodReport::new(&p.spec, &p.uid, p.status.clone());
                r.usage = self.published_usage(&p.uid);
                r
            })
            .collect();
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        let mut node = f.node_info.clone();
        node.uptime_seconds = now.mono_ms / 1000;
        // Read here, once per status built: no timer of their own.
        node.memory_available_bytes = crate::fleet::doc::mem_available();
        let disk = |p: &std::path::Path| {
            crate::agent::fs_sys::statvfs(p)
                .map(|s| DiskUse {
                    used_bytes: s.total.saturating_sub(s.available),
                    size_bytes: s.total,
                })
                .unwrap_or_default()
        };
        node.state_disk = disk(&self.cfg.state_dir);
        node.image_disk = disk(&self.cfg.state_dir.join("images"));
        node.labels = self.node.labels().clone();
        node.board = node
            .labels
            .get("picolet.io/board")
            .cloned()
            .unwrap_or_default();
        let mut status = DeviceStatus::new(
            &f.settings.device_id,
            &docs.observed(),
            pods,
            node,
            docs.errors(),
            now.wall_ms,
        );
        let owned = crate::agent::workloads::observe(&self.node, now);
        status.workloads = self
            .workloads
            .entries()
            .filter_map(|e| self.workloads.view(&e.key(), &owned, now))
            .map(|v| crate::fleet::doc::WorkloadReport::from_object(&v.object))
            .collect();
        status.deployments = f
            .deploy
            .shown()
            .map(|(s, r)| deployment_value(s, r))
            .collect();
        Some(status)
    }

    /// Records an event and publishes it (QoS 0) when connected.
    pub(in crate::agent) fn publish_event(
        &mut self,
        object: ObjectRef,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        let now = Now::read();
        let doc = f.events.record(object, kind, reason, message, now.wall_ms);
        if f.session.is_up() {
            let topic = f.settings.topics.device_events(&f.settings.device_id);
            f.session
                .handle(publish(topic, doc.to_json(), Qos::AtMostOnce, false), now);
        }
    }
}

/// A deployment record as the status shows it (`DeviceStatus::deployments`).
pub(super) fn deployment_value(
    s: &Source,
    r: &crate::fleet::deployment::Record,
) -> serde_json::Value {
    use serde_json::Value;
    let mut m = serde_json::Map::new();
    let source = match s {
        Source::Device(_) => "device".to_string(),
        Source::Group(g) => format!("group/{g}"),
    };
    m.insert("source".into(), source.into());
    if let Some(n) = r.revision {
        m.insert("revision".into(), n.into());
    }
    m.insert("state".into(), r.state.name().into());
    for (k, v) in [
        ("reason", &r.reason),
        ("message", &r.message),
        ("pod", &r.pod),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), v.as_str().into());
        }
    }
    m.insert("since".into(), crate::clock::rfc3339(r.since_ms).into());
    if let Some(n) = r.rolled_back_to {
        m.insert("rolledBackTo".into(), n.into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use crate::fleet::deployment::{Record, State};
    use crate::fleet::topics::Source;
    use serde_json::json;

    #[test]
    fn a_record_shows_its_optional_fields_only_when_set() {
        let mut r = Record {
            revision: Some(4),
            state: State::FailedRollbackComplete,
            reason: "HealthDeadlineExceeded".into(),
            message: "m".into(),
            pod: String::new(),
            since_ms: 0,
            rolled_back_to: Some(3),
            rollout: Default::default(),
            started_mono: 0,
        };
        assert_eq!(
            super::deployment_value(&Source::Group("kitchen".into()), &r),
            json!({"source": "group/kitchen", "revision": 4, "state": "FailedRollbackComplete",
                   "reason": "HealthDeadlineExceeded", "message": "m",
                   "since": "1970-01-01T00:00:00Z", "rolledBackTo": 3})
        );
        r.revision = None;
        r.rolled_back_to = None;
        r.reason.clear();
        r.message.clear();
        r.state = State::Rejected;
        assert_eq!(
            super::deployment_value(&Source::Device("d".into()), &r),
            json!({"source": "device", "state": "Rejected", "since": "1970-01-01T00:00:00Z"})
        );
    }
}
