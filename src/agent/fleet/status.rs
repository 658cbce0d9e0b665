//! Status and events: what the fleet channel publishes (see the module doc
//! of [`super`]).

use super::{STATUS_MIN_INTERVAL_MS, publish};
use crate::agent::Agent;
use crate::clock::Now;
use crate::fleet::doc::{DeviceStatus, ObjectRef, PodReport};
use crate::fleet::session::Qos;
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
            Output::StatusChanged { .. } => f.dirty = true,
            Output::PodRemoved { uid } => {
                f.events.forget_uid(uid);
                f.dirty = true;
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
