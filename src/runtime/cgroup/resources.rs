//! From Kubernetes resources to cgroup v2 file values (pure).
//!
//! Container level (kubelet `calculateLinuxResources` + runc): `cpu.max` from
//! `limits.cpu`, `cpu.weight` from `requests.cpu` (defaulting to the limit
//! when only a limit is set), `memory.max` from `limits.memory`, and
//! `memory.swap.max = 0` (the kubelet's default `NoSwap` behaviour, which it
//! applies to every container).
//!
//! Pod level (kubelet `ResourceConfigForPod`): requests and limits are
//! `max(sum over containers, max over init containers)`; `cpu.weight` always
//! follows the total request (2 shares for a pod without any); `cpu.max` and
//! `memory.max` are set only when **every** app container declares that
//! limit, otherwise they stay unlimited; `pids.max` is the node default.

use super::controller::Controller;
use super::cpu::{CPU_MAX, CPU_WEIGHT, cpu_max_value, weight_for_request};
use super::memory::{MEMORY_MAX, MEMORY_SWAP_MAX, memory_max_value};
use super::pids::{PIDS_MAX, PidsMax};

/// One value to write: `<cgroup>/<file>` ← `value`, if `controller` is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub controller: Controller,
    pub file: &'static str,
    pub value: String,
}

impl Setting {
    fn new(controller: Controller, file: &'static str, value: impl ToString) -> Setting {
        Setting {
            controller,
            file,
            value: value.to_string(),
        }
    }
}

/// A container's `resources`, already parsed from quantities (`spec`'s job).
/// `None` and `Some(0)` both mean "not declared", as `Quantity.IsZero()` does
/// in the kubelet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerResources {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

fn declared(v: Option<u64>) -> Option<u64> {
    v.filter(|n| *n > 0)
}

impl ContainerResources {
    pub fn cpu_limit(&self) -> Option<u64> {
        declared(self.cpu_limit_millis)
    }

    pub fn memory_limit(&self) -> Option<u64> {
        declared(self.memory_limit_bytes)
    }

    /// `requests.cpu`, defaulting to `limits.cpu` when only a limit is set
    /// (API-server defaulting, repeated by the kubelet); 0 when neither is.
    pub fn effective_cpu_request(&self) -> u64 {
        declared(self.cpu_request_millis)
            .or(self.cpu_limit())
            .unwrap_or(0)
    }

    /// The values for this container's leaf cgroup.
    pub fn settings(&self) -> Vec<Setting> {
        vec![
            Setting::new(Controller::Cpu, CPU_MAX, cpu_max_value(self.cpu_limit())),
            Setting::new(
                Controller::Cpu,
                CPU_WEIGHT,
                weight_for_request(self.effective_cpu_request()),
            ),
            Setting::new(
                Controller::Memory,
                MEMORY_MAX,
                memory_max_value(self.memory_limit()),
            ),
            Setting::new(Controller::Memory, MEMORY_SWAP_MAX, 0),
        ]
    }
}

/// A pod's resources: its containers', its init containers', and the node's
/// default pids limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodResources {
    pub containers: Vec<ContainerResources>,
    pub init_containers: Vec<ContainerResources>,
    pub pids_max: PidsMax,
}

impl PodResources {
    /// `max(Σ containers, max init containers)` of `f`, as Kubernetes'
    /// `PodRequests`/`PodLimits` for pods without sidecars.
    fn total(&self, f: impl Fn(&ContainerResources) -> u64) -> u64 {
        let sum = self
            .containers
            .iter()
            .map(&f)
            .fold(0u64, u64::saturating_add);
        let init = self.init_containers.iter().map(&f).max().unwrap_or(0);
        sum.max(init)
    }

    /// The pod's CPU request in millicores (0 for a pod without requests).
    pub fn cpu_request_millis(&self) -> u64 {
        self.total(ContainerResources::effective_cpu_request)
    }

    /// The pod's CPU limit, when every app container declares one.
    pub fn cpu_limit_millis(&self) -> Option<u64> {
        let all =
            !self.containers.is_empty() && self.containers.iter().all(|c| c.cpu_limit().is_some());
        all.then(|| self.total(|c| c.cpu_limit().unwrap_or(0)))
    }

    /// The pod's memory limit, when every app container declares one.
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        let all = !self.containers.is_empty()
            && self.containers.iter().all(|c| c.memory_limit().is_some());
        all.then(|| self.total(|c| c.memory_limit().unwrap_or(0)))
    }

    /// The values for the pod's cgroup.
    pub fn settings(&self) -> Vec<Setting> {
        vec![
            Setting::new(
                Controller::Cpu,
                CPU_MAX,
                cpu_max_value(self.cpu_limit_millis()),
            ),
            Setting::new(
                Controller::Cpu,
                CPU_WEIGHT,
                weight_for_request(self.cpu_request_millis()),
            ),
            Setting::new(
                Controller::Memory,
                MEMORY_MAX,
                memory_max_value(self.memory_limit_bytes()),
            ),
            Setting::new(Controller::Pids, PIDS_MAX, self.pids_max),
        ]
    }
}

#[cfg(test)]
mod tests;
