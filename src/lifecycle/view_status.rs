//! Building a pod's `v1.PodStatus` from its state, and remembering when
//! each condition last flipped.

use super::pod::{PodView, Sandbox};
use super::status::{self, ContainerStatus, Ip, PodCondition, PodStatus, RawCondition};
use super::{Now, qos};
use crate::clock::rfc3339;

impl PodView {
    /// The `v1.PodStatus` from the current state, with the conditions'
    /// transition times as last recorded (new or flipped ones get `now`).
    pub(crate) fn build_status(&self, host_ip: Option<&str>, now: Now) -> PodStatus {
        let spec = &self.spec.spec;
        let default_reason = if spec.init_containers.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let init: Vec<ContainerStatus> = (self.st.init.iter().zip(&spec.init_containers))
            .map(|(c, cs)| c.status(&self.uid, &cs.image, default_reason, !cs.is_sidecar()))
            .collect();
        let mut app: Vec<ContainerStatus> = (self.st.app.iter().zip(&spec.containers))
            .map(|(c, cs)| c.status(&self.uid, &cs.image, default_reason, false))
            .collect();
        app.sort_by(|a, b| a.name.cmp(&b.name));
        let all: Vec<&ContainerStatus> = init.iter().chain(&app).collect();
        let pod_is_terminal = self.st.stopping.is_some() && !self.any_active();
        let phase = self
            .st
            .terminal
            .unwrap_or_else(|| status::get_phase(spec, &all, pod_is_terminal));
        let sandbox_ready = self.st.sandbox == Sandbox::Ready;
        let conditions = status::conditions(spec, &all, phase, sandbox_ready)
            .into_iter()
            .map(|c| self.condition(c, now))
            .collect();
        let ips = |ip: Option<&str>| match ip {
            Some(ip) => vec![Ip { ip: ip.to_string() }],
            None => Vec::new(),
        };
        PodStatus {
            phase,
            conditions,
            message: self
                .st
                .failure
                .as_ref()
                .map(|f| f.1.clone())
                .unwrap_or_default(),
            reason: self
                .st
                .failure
                .as_ref()
                .map(|f| f.0.to_string())
                .unwrap_or_default(),
            host_ip: host_ip.unwrap_or_default().to_string(),
            host_ips: ips(host_ip),
            pod_ip: self.st.pod_ip.clone().unwrap_or_default(),
            pod_ips: ips(self.st.pod_ip.as_deref()),
            start_time: Some(rfc3339(self.st.start_time)),
            init_container_statuses: init,
            container_statuses: app,
            qos_class: Some(qos::qos_class(&self.spec)),
        }
    }

    fn condition(&self, c: RawCondition, now: Now) -> PodCondition {
        let since = self
            .st
            .conditions
            .iter()
            .find(|(k, s, _)| k == c.kind && *s == c.status)
            .map_or(now.wall_ms, |(_, _, t)| *t);
        PodCondition {
            kind: c.kind.to_string(),
            status: if c.status { "True" } else { "False" }.to_string(),
            last_probe_time: None,
            last_transition_time: Some(rfc3339(since)),
            reason: c.reason,
            message: c.message,
        }
    }

    /// Stores a freshly built status; true when it differs from the last.
    pub(crate) fn store_status(&mut self, status: PodStatus, now: Now) -> bool {
        for c in &status.conditions {
            let s = c.status == "True";
            match self.st.conditions.iter_mut().find(|(k, _, _)| *k == c.kind) {
                Some(e) if e.1 == s => {}
                Some(e) => *e = (c.kind.clone(), s, now.wall_ms),
                None => self.st.conditions.push((c.kind.clone(), s, now.wall_ms)),
            }
        }
        let changed = status != self.status;
        self.status = status;
        changed
    }
}
