//! Kubernetes defaults and small accessors on the Pod types: pull policy,
//! probe timing and handler, grace period, named ports, resource values.
//!
//! The loader keeps a pod as written (only `metadata.namespace` is filled
//! in); these accessors apply the Kubernetes default where a field is
//! absent, and [`defaulted`] returns a copy with every default written out
//! (for display). Pure, no I/O.

use super::error::SpecError;
use super::names;
use super::quantity::ParsedQuantity;
use super::types::*;

/// `metadata.namespace` when absent.
pub const DEFAULT_NAMESPACE: &str = "default";
/// `terminationGracePeriodSeconds` when absent.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_S: i64 = 30;
/// Probe `periodSeconds` when absent.
pub const DEFAULT_PROBE_PERIOD_S: i32 = 10;
/// Probe `timeoutSeconds` when absent.
pub const DEFAULT_PROBE_TIMEOUT_S: i32 = 1;
/// Probe `successThreshold` when absent.
pub const DEFAULT_PROBE_SUCCESS_THRESHOLD: i32 = 1;
/// Probe `failureThreshold` when absent.
pub const DEFAULT_PROBE_FAILURE_THRESHOLD: i32 = 3;

/// A probe's schedule and thresholds with defaults applied. Values that
/// validation refuses are clamped (delays to ≥ 0, the rest to ≥ 1), so a
/// scheduler never sees a zero period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay_s: u32,
    pub period_s: u32,
    pub timeout_s: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// The one action of a probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeHandler<'a> {
    Exec(&'a ExecAction),
    TcpSocket(&'a TcpSocketAction),
    HttpGet(&'a HttpGetAction),
    Grpc(&'a GrpcAction),
}

fn at_least(v: i32, min: u32) -> u32 {
    u32::try_from(v).unwrap_or(0).max(min)
}

impl Probe {
    /// Timing with the Kubernetes defaults (period 10 s, timeout 1 s,
    /// success 1, failure 3, no initial delay).
    pub fn timing(&self) -> ProbeTiming {
        ProbeTiming {
            initial_delay_s: at_least(self.initial_delay_seconds, 0),
            period_s: at_least(self.period_seconds.unwrap_or(DEFAULT_PROBE_PERIOD_S), 1),
            timeout_s: at_least(self.timeout_seconds.unwrap_or(DEFAULT_PROBE_TIMEOUT_S), 1),
            success_threshold: at_least(
                self.success_threshold
                    .unwrap_or(DEFAULT_PROBE_SUCCESS_THRESHOLD),
                1,
            ),
            failure_threshold: at_least(
                self.failure_threshold
                    .unwrap_or(DEFAULT_PROBE_FAILURE_THRESHOLD),
                1,
            ),
        }
    }

    /// The probe's handler. `None` only for a probe with no handler, which
    /// validation refuses (as it refuses a probe with several).
    pub fn handler(&self) -> Option<ProbeHandler<'_>> {
        if let Some(e) = &self.exec {
            Some(ProbeHandler::Exec(e))
        } else if let Some(t) = &self.tcp_socket {
            Some(ProbeHandler::TcpSocket(t))
        } else if let Some(h) = &self.http_get {
            Some(ProbeHandler::HttpGet(h))
        } else {
            self.grpc.as_ref().map(ProbeHandler::Grpc)
        }
    }

    /// How many handlers are set (validation wants exactly one).
    pub fn handler_count(&self) -> usize {
        usize::from(self.exec.is_some())
            + usize::from(self.tcp_socket.is_some())
            + usize::from(self.http_get.is_some())
            + usize::from(self.grpc.is_some())
    }
}

impl HttpGetAction {
    /// `path`, or `/` when absent or empty (Kubernetes default).
    pub fn path_or_root(&self) -> &str {
        match self.path.as_deref() {
            Some(p) if !p.is_empty() => p,
            _ => "/",
        }
    }
}

/// Splits an image reference into (tag, digest): `busybox:1.36` →
/// `(Some("1.36"), None)`, `localhost:5000/x` → `(None, None)`,
/// `x@sha256:ab` → `(None, Some("sha256:ab"))`.
pub fn image_tag_and_digest(image: &str) -> (Option<&str>, Option<&str>) {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_component = name.rsplit('/').next().unwrap_or(name);
    (last_component.split_once(':').map(|(_, t)| t), digest)
}

/// The value of a built-in PriorityClass (the API server's
/// `SystemCriticalPriority` classes); picolet knows no others.
pub fn priority_class_value(name: &str) -> Option<i32> {
    match name {
        "system-cluster-critical" => Some(SYSTEM_CRITICAL_PRIORITY),
        "system-node-critical" => Some(SYSTEM_CRITICAL_PRIORITY + 1000),
        _ => None,
    }
}

/// The kubelet's `SystemCriticalPriority`: pods at or above it are
/// critical and never evicted.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

impl PodSpec {
    /// The pod's priority: its built-in class's value, else `priority`,
    /// else 0.
    pub fn priority_value(&self) -> i32 {
        let class = self.priority_class_name.as_deref();
        class
            .and_then(priority_class_value)
            .or(self.priority)
            .unwrap_or(0)
    }

    /// The kubelet's `IsCriticalPod` (by priority): never evicted.
    pub fn is_critical(&self) -> bool {
        self.priority_value() >= SYSTEM_CRITICAL_PRIORITY
    }

    /// The kubelet's `IsNodeCriticalPod`: the OOM killer's last choice.
    pub fn is_node_critical(&self) -> bool {
        self.is_critical() && self.priority_class_name.as_deref() == Some("system-node-critical")
    }
}

impl Container {
    /// `imagePullPolicy`, or the Kubernetes default
    /// ([`crate::lifecycle::pull_policy`], the one place it is decided).
    pub fn pull_policy(&self) -> PullPolicy {
        crate::lifecycle::pull_policy(&self.image, self.image_pull_policy)
    }

    /// The container port named `name`.
    pub fn find_port(&self, name: &str) -> Option<&ContainerPort> {
        self.ports.iter().find(|p| p.name.as_deref() == Some(name))
    }
}

/// The port number a probe port means for this container: a number in
/// 1..=65535 as is, or a port name (IANA service name) looked up in the
/// container's `ports`. The error has an empty path.
pub fn resolve_port(container: &Container, port: &IntOrString) -> Result<u16, SpecError> {
    match port {
        IntOrString::Int(n) => match u16::try_from(*n) {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(SpecError::invalid(
                "",
                format!("{n} is not a valid port number: must be between 1 and 65535"),
            )),
        },
        IntOrString::String(name) => {
            names::iana_svc_name(name).map_err(|m| SpecError::invalid("", m))?;
            let p = container.find_port(name).ok_or_else(|| {
                SpecError::invalid(
                    "",
                    format!(
                        "port {name:?} not found in the ports of container {:?}",
                        container.name
                    ),
                )
            })?;
            match u16::try_from(p.container_port) {
                Ok(n) if n != 0 => Ok(n),
                _ => Err(SpecError::invalid(
                    "",
                    format!("port {name:?} has an invalid number {}", p.container_port),
                )),
            }
        }
    }
}

impl PodSpec {
    /// `terminationGracePeriodSeconds`, default 30.
    pub fn termination_grace_period_s(&self) -> i64 {
        self.termination_grace_period_seconds
            .unwrap_or(DEFAULT_TERMINATION_GRACE_PERIOD_S)
    }
}

impl ObjectMeta {
    /// The namespace, or `default`.
    pub fn namespace_or_default(&self) -> &str {
        if self.namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            &self.namespace
        }
    }
}

impl Pod {
    /// Init containers (in order) then app containers.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        self.spec
            .init_containers
            .iter()
            .chain(self.spec.containers.iter())
    }

    /// The init or app container named `name`.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.all_containers().find(|c| c.name == name)
    }
}

impl Resources {
    /// `limits[name]`, parsed (`None` if absent or invalid).
    pub fn limit(&self, name: &str) -> Option<ParsedQuantity> {
        self.limits.get(name).and_then(|q| q.parsed().ok())
    }

    /// `requests[name]`, or the limit when no request is set (Kubernetes
    /// defaults requests to limits).
    pub fn request(&self, name: &str) -> Option<ParsedQuantity> {
        match self.requests.get(name) {
            Some(q) => q.parsed().ok(),
            None => self.limit(name),
        }
    }

    /// `limits.cpu` in millicores.
    pub fn cpu_limit_millis(&self) -> Option<i64> {
        self.limit("cpu").map(|q| q.milli_value())
    }

    /// `requests.cpu` (or the limit) in millicores.
    pub fn cpu_request_millis(&self) -> Option<i64> {
        self.request("cpu").map(|q| q.milli_value())
    }

    /// `limits.memory` in bytes.
    pub fn memory_limit_bytes(&self) -> Option<i64> {
        self.limit("memory").map(|q| q.value())
    }

    /// `requests.memory` (or the limit) in bytes.
    pub fn memory_request_bytes(&self) -> Option<i64> {
        self.request("memory").map(|q| q.value())
    }
}

fn default_probe(p: &mut Probe) {
    let t = p.timing();
    p.period_seconds.get_or_insert(t.period_s as i32);
    p.timeout_seconds.get_or_insert(t.timeout_s as i32);
    p.success_threshold
        .get_or_insert(t.success_threshold as i32);
    p.failure_threshold
        .get_or_insert(t.failure_threshold as i32);
    if let Some(g) = &mut p.grpc {
        g.service.get_or_insert_with(String::new);
    }
    if let Some(h) = &mut p.http_get {
        h.path.get_or_insert_with(|| "/".to_string());
        h.scheme.get_or_insert_with(|| "HTTP".to_string());
    }
}

/// A copy of `pod` with every Kubernetes default written out: namespace,
/// grace period, pull policies, probe timings, `httpGet` path and scheme,
/// and (with `hostNetwork`) `hostPort` = `containerPort`.
pub fn defaulted(pod: &Pod) -> Pod {
    let mut pod = pod.clone();
    if pod.metadata.namespace.is_empty() {
        pod.metadata.namespace = DEFAULT_NAMESPACE.to_string();
    }
    let grace = pod.spec.termination_grace_period_s();
    pod.spec.termination_grace_period_seconds = Some(grace);
    pod.spec.priority = Some(pod.spec.priority_value());
    let host_network = pod.spec.host_network;
    let spec = &mut pod.spec;
    for c in spec
        .init_containers
        .iter_mut()
        .chain(spec.containers.iter_mut())
    {
        c.image_pull_policy = Some(c.pull_policy());
        c.termination_message_path = Some(c.termination_message_path().to_string());
        c.termination_message_policy = Some(c.termination_message_policy.unwrap_or_default());
        for p in [
            &mut c.liveness_probe,
            &mut c.readiness_probe,
            &mut c.startup_probe,
        ]
        .into_iter()
        .flatten()
        {
            default_probe(p);
        }
        if host_network {
            for port in &mut c.ports {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
    pod
}

/// Linux signal names 1..=31, `SIG` left off.
const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// The number of a signal given as `SIGTERM`, `TERM`, `15`, `SIGRTMIN+3` or
/// `SIGRTMAX-1` (an image's `STOPSIGNAL` takes each form, as Docker's
/// `ParseSignal`; `lifecycle.stopSignal` only the `SIG` names).
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let rt = |base: &str, sign: i32| -> Option<i32> {
        let off = name.strip_prefix(base)?;
        let n = if off.is_empty() {
            0
        } else {
            off.get(1..)?.parse::<i32>().ok()?
        };
        let ok = off.is_empty() || off.starts_with(if sign > 0 { '+' } else { '-' });
        let v = if sign > 0 { 34 + n } else { 64 - n };
        (ok && (34..=64).contains(&v)).then_some(v)
    };
    if let Some(i) = SIGNALS.iter().position(|n| *n == name) {
        return Some(i as i32 + 1);
    }
    rt("RTMIN", 1).or_else(|| rt("RTMAX", -1))
}
