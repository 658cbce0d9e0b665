//! Node policy: a pod from the network cannot exceed what this device allows
//! (`docs/security.md`). Static pods from the local manifests directory are trusted
//! and never checked.
//!
//! By default a remote pod may not be privileged, mount a `hostPath`, use
//! the host's network or PID namespace, or add capabilities beyond the
//! container runtime's default set (adding one already in that set changes
//! nothing and is allowed). The device's config file allows each of these
//! under `policy:` (see [`crate::fleet::config`]).
//!
//! `hostPID: true` is already refused by the spec loader for every pod
//! (picolet does not implement it); [`NodePolicy::allow_host_pid`] is kept
//! so that configs stay valid when it is, and it cannot make a pod pass
//! what the loader refuses. Pure: no I/O.

use crate::spec::caps::{capability_number, default_capabilities, is_all};
use crate::spec::{Container, Pod};
use serde::{Deserialize, Serialize};

/// What remote pods may do on this device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePolicy {
    #[serde(default)]
    pub allow_privileged: bool,
    #[serde(default)]
    pub allow_host_path: bool,
    #[serde(default)]
    pub allow_host_network: bool,
    #[serde(default, rename = "allowHostPID")]
    pub allow_host_pid: bool,
    /// Capabilities a remote container may add (`NET_ADMIN` or
    /// `CAP_NET_ADMIN`, any case), or `ALL` for any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_capabilities: Vec<String>,
    /// `no_new_privs` for every non-privileged remote container: an unset
    /// `allowPrivilegeEscalation` becomes `false` ([`NodePolicy::harden`]),
    /// `true` is refused.
    #[serde(default)]
    pub no_new_privileges: bool,
}

/// One thing a pod does that the policy does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyViolation {
    /// Field path in the pod (`spec.containers[0].securityContext.privileged`).
    pub path: String,
    pub message: String,
}

fn violation(path: String, what: &str, setting: &str) -> PolicyViolation {
    PolicyViolation {
        path,
        message: format!(
            "{what} not allowed by this device's policy (allow with policy.{setting})"
        ),
    }
}

impl NodePolicy {
    /// A policy that allows everything (the trust given to static pods).
    pub fn allow_all() -> NodePolicy {
        NodePolicy {
            allow_privileged: true,
            allow_host_path: true,
            allow_host_network: true,
            allow_host_pid: true,
            allow_capabilities: vec!["ALL".to_string()],
            no_new_privileges: false,
        }
    }

    /// Checks the `allowCapabilities` names; the error names the bad entry.
    pub fn validate(&self) -> Result<(), PolicyViolation> {
        for (i, c) in self.allow_capabilities.iter().enumerate() {
            if !is_all(c) && capability_number(c).is_none() {
                return Err(PolicyViolation {
                    path: format!("policy.allowCapabilities[{i}]"),
                    message: format!("unknown capability {c:?}"),
                });
            }
        }
        Ok(())
    }

    fn allows_capability(&self, name: &str) -> bool {
        if self.allow_capabilities.iter().any(|a| is_all(a)) {
            return true;
        }
        if is_all(name) {
            return false;
        }
        match capability_number(name) {
            // Adding a capability every container has anyway changes nothing.
            Some(n) if default_capabilities() & (1u64 << n) != 0 => true,
            Some(n) => self
                .allow_capabilities
                .iter()
                .any(|a| capability_number(a) == Some(n)),
            None => false,
        }
    }

    /// Every violation of this policy by `pod`, in field order; `Ok` if none.
    pub fn check(&self, pod: &Pod) -> Result<(), Vec<PolicyViolation>> {
        let mut out = Vec::new();
        let spec = &pod.spec;
        if spec.host_network && !self.allow_host_network {
            out.push(violation(
                "spec.hostNetwork".into(),
                "the host's network namespace is",
                "allowHostNetwork",
            ));
        }
        for (i, v) in spec.volumes.iter().enumerate() {
            if v.host_path.is_some() && !self.allow_host_path {
                out.push(violation(
                    format!("spec.volumes[{i}].hostPath"),
                    "hostPath volumes are",
                    "allowHostPath",
                ));
            }
        }
        let lists = [
            ("initContainers", &spec.init_containers),
            ("containers", &spec.containers),
        ];
        for (list, containers) in lists {
            for (i, c) in containers.iter().enumerate() {
                self.check_container(&format!("spec.{list}[{i}]"), c, &mut out);
            }
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    fn check_container(&self, path: &str, c: &Container, out: &mut Vec<PolicyViolation>) {
        let Some(sc) = &c.security_context else {
            return;
        };
        let path = format!("{path}.securityContext");
        if sc.privileged == Some(true) && !self.allow_privileged {
            out.push(violation(
                format!("{path}.privileged"),
                "privileged containers are",
                "allowPrivileged",
            ));
        }
        if self.no_new_privileges
            && sc.privileged != Some(true)
            && sc.allow_privilege_escalation == Some(true)
        {
            out.push(PolicyViolation {
                path: format!("{path}.allowPrivilegeEscalation"),
                message: "privilege escalation is not allowed by this device's policy (policy.noNewPrivileges)".into(),
            });
        }
        let adds = sc.capabilities.iter().flat_map(|caps| caps.add.iter());
        for (j, name) in adds.enumerate() {
            if !self.allows_capability(name) {
                out.push(violation(
                    format!("{path}.capabilities.add[{j}]"),
                    &format!("adding capability {name} is"),
                    "allowCapabilities",
                ));
            }
        }
    }
}

impl NodePolicy {
    /// With `noNewPrivileges`, sets `allowPrivilegeEscalation: false` on
    /// every non-privileged container that leaves it unset (run after
    /// [`NodePolicy::check`]); the stored spec shows it.
    pub fn harden(&self, pod: &mut Pod) {
        if !self.no_new_privileges {
            return;
        }
        let spec = &mut pod.spec;
        for c in spec.init_containers.iter_mut().chain(&mut spec.containers) {
            let sc = c.security_context.get_or_insert_with(Default::default);
            if sc.privileged != Some(true) && sc.allow_privilege_escalation.is_none() {
                sc.allow_privilege_escalation = Some(false);
            }
        }
    }
}

/// The violations as one line each, for status and events.
pub fn describe(violations: &[PolicyViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
