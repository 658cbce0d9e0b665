//! Local ephemeral-storage eviction: the pure decisions (no I/O, no clock).
//!
//! The kubelet's `localStorageEviction`, for what picolet accounts: each
//! container's writable layers (every instance's upper dir) plus its logs,
//! and for the pod the sum of its containers plus its disk-backed emptyDir
//! volumes. The agent measures (in a `picolet du` child, never on its own
//! thread) and feeds the result here; a pod over a limit gets an
//! [`Eviction`], which the agent turns into [`super::Input::EvictPod`]:
//! phase `Failed`, reason `Evicted`, the kubelet's message.
//!
//! Order, as the kubelet's: the pod's total against the sum of its
//! containers' limits ([`pod_limit`]), then each container against its own.
//! When a measurement runs is decided by [`DiskMonitor`], on a clock given
//! as an argument.

use crate::vecmap::VecMap;

use super::pod::PodView;
use crate::spec::Pod;

/// The resource name.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// The pod's status reason (and the event's reason) on eviction.
pub const REASON: &str = "Evicted";

/// What one measurement found for one pod, in allocated bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodUsage {
    /// Per container name: its writable layers plus its logs.
    pub containers: VecMap<String, u64>,
    /// Disk-backed emptyDir volumes (memory-backed ones are not disk).
    pub volumes: u64,
    /// Per name, the disk-backed emptyDir volumes with a `sizeLimit`
    /// (also counted in `volumes`).
    pub empty_dirs: VecMap<String, u64>,
}

impl PodUsage {
    /// Everything the pod uses: containers and volumes.
    pub fn total(&self) -> u64 {
        self.containers
            .values()
            .fold(self.volumes, |a, b| a.saturating_add(*b))
    }
}

/// A pod to evict, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub uid: String,
    /// The kubelet's message, e.g. `Container main exceeded its local
    /// ephemeral storage limit "10Mi".`
    pub message: String,
    /// The container over its own limit, if that is the reason.
    pub container: Option<String>,
}

/// `(bytes, as written)` of the pod's ephemeral-storage limit, as the
/// kubelet's `PodLimits`: the sum over app containers that set it, or the
/// largest init container's limit if that is more. `None` when no
/// container sets one.
pub fn pod_limit(pod: &Pod) -> Option<(u64, String)> {
    let limit = |c: &crate::spec::Container| {
        let q = c.resources.limits.get(EPHEMERAL_STORAGE)?;
        let v = q.parsed().ok()?.value().max(0) as u64;
        Some((v, q.0.clone()))
    };
    let app: Vec<(u64, String)> = pod.spec.containers.iter().filter_map(limit).collect();
    let init = pod.spec.init_containers.iter().filter_map(limit).max();
    let sum = match app.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        many => {
            let total = many.iter().fold(0u64, |a, (v, _)| a.saturating_add(*v));
            Some((total, format_bytes(total)))
        }
    };
    match (sum, init) {
        (Some(s), Some(i)) if i.0 > s.0 => Some(i),
        (Some(s), _) => Some(s),
        (None, i) => i,
    }
}

/// The first limit `usage` breaks, in the kubelet's order; `None` when
/// the pod is within its limits (or sets none).
pub fn check_pod(uid: &str, pod: &Pod, usage: &PodUsage) -> Option<Eviction> {
    for (name, (limit, text)) in empty_dir_limits(pod) {
        if usage.empty_dirs.get(name).is_some_and(|&used| used > limit) {
            return Some(Eviction {
                uid: uid.to_string(),
                message: format!("Usage of EmptyDir volume {name:?} exceeds the limit {text:?}. "),
                container: None,
            });
        }
    }
    if let Some((limit, text)) = pod_limit(pod) {
        if usage.total() > limit {
            return Some(Eviction {
                uid: uid.to_string(),
                message: format!(
                    "Pod ephemeral local storage usage exceeds the total limit of containers {text}."
                ),
                container: None,
            });
        }
    }
    for c in pod.all_containers() {
        let Some(q) = c.resources.limits.get(EPHEMERAL_STORAGE) else {
            continue;
        };
        let Ok(limit) = q.parsed() else { continue };
        let used = usage.containers.get(&c.name).copied().unwrap_or(0);
        if used > limit.value().max(0) as u64 {
            return Some(Eviction {
                uid: uid.to_string(),
                message: format!(
                    "Container {} exceeded its local ephemeral storage limit {:?}.",
                    c.name, q.0
                ),
                container: Some(c.name.clone()),
            });
        }
    }
    None
}

/// Whether any container of `pod` sets an ephemeral-storage limit: only
/// then is the pod measured.
pub fn has_limit(pod: &Pod) -> bool {
    pod.all_containers()
        .any(|c| c.resources.limits.contains_key(EPHEMERAL_STORAGE))
        || empty_dir_limits(pod).next().is_some()
}

/// The disk-backed emptyDir volumes with a `sizeLimit` above 0: `(name,
/// (bytes, as written))` (a Memory one is a tmpfs of that size instead).
pub fn empty_dir_limits(pod: &Pod) -> impl Iterator<Item = (&str, (u64, &str))> {
    pod.spec.volumes.iter().filter_map(|v| {
        let e = v.empty_dir.as_ref().filter(|e| e.medium.is_empty())?;
        let q = e.size_limit.as_ref()?;
        let bytes = q.parsed().ok()?.value();
        (bytes > 0).then_some((v.name.as_str(), (bytes as u64, q.0.as_str())))
    })
}

/// The evictions a measurement calls for: pods still running (not
/// terminal, not being stopped) that are over a limit. Pods without a
/// measurement (created after it started) are skipped.
#[must_use = "the evictions are to be carried out"]
pub fn decide<'a>(
    pods: impl IntoIterator<Item = &'a PodView>,
    usage: &VecMap<String, PodUsage>,
) -> Vec<Eviction> {
    pods.into_iter()
        .filter(|p| evictable(p))
        .filter_map(|p| check_pod(&p.uid, &p.spec, usage.get(&p.uid)?))
        .collect()
}

/// A pod that may be evicted: running, not being stopped, and not
/// critical (the kubelet's `evictPod` refuses critical pods).
fn evictable(p: &PodView) -> bool {
    p.st.terminal.is_none() && p.st.stopping.is_none() && !p.spec.spec.is_critical()
}

/// Bytes as a Kubernetes binary-SI quantity: `10Mi`, `1536Ki`, `1000`.
pub fn format_bytes(n: u64) -> String {
    if n == 0 {
        return "0".to_string();
    }
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        if n % (1u64 << shift) == 0 {
            return format!("{}{suffix}", n >> shift);
        }
    }
    n.to_string()
}

/// When to measure: at most one measurement at a time, started no more
/// often than every `interval_ms`, and only while something is limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskMonitor {
    pub interval_ms: u64,
    next_at: u64,
    in_flight: bool,
}

impl DiskMonitor {
    /// The first measurement is due at once.
    pub fn new(interval_ms: u64) -> DiskMonitor {
        DiskMonitor {
            interval_ms,
            next_at: 0,
            in_flight: false,
        }
    }

    /// Whether to start a measurement at `now_ms` (mono); `wanted`: some
    /// pod has a limit. When true, the caller starts one and later calls
    /// [`DiskMonitor::finished`].
    #[must_use = "when true, a measurement is to be started, and `finished` called"]
    pub fn start(&mut self, now_ms: u64, wanted: bool) -> bool {
        if !wanted || self.in_flight || now_ms < self.next_at {
            return false;
        }
        self.in_flight = true;
        self.next_at = now_ms.saturating_add(self.interval_ms);
        true
    }

    /// The measurement started last is done (or failed).
    pub fn finished(&mut self) {
        self.in_flight = false;
    }

    /// The mono time the next measurement is due, if none runs.
    #[must_use]
    pub fn next_at(&self) -> Option<u64> {
        (!self.in_flight).then_some(self.next_at)
    }
}

/// Node eviction thresholds, as the kubelet's `evictionHard` defaults:
/// `nodefs.available<10%`, `imagefs.available<15%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Percent of the state dir's filesystem that must stay available.
    pub nodefs_available_pct: u64,
    /// Percent of the image store's filesystem that must stay available.
    pub imagefs_available_pct: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            nodefs_available_pct: 10,
            imagefs_available_pct: 15,
        }
    }
}

/// One filesystem's size and what an unprivileged writer may still use
/// (`statvfs`: `f_blocks × f_frsize`, `f_bavail × f_frsize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub total: u64,
    pub available: u64,
}

/// A threshold that is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    NodefsAvailable,
    ImagefsAvailable,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::NodefsAvailable => "nodefs.available",
            Signal::ImagefsAvailable => "imagefs.available",
        }
    }
}

/// The crossed thresholds with their threshold and available bytes,
/// nodefs first. A filesystem with `total == 0` (unknown) never is.
pub fn pressure(th: Thresholds, nodefs: FsStats, imagefs: FsStats) -> Vec<(Signal, u64, u64)> {
    let mut out = Vec::new();
    for (sig, pct, fs) in [
        (Signal::NodefsAvailable, th.nodefs_available_pct, nodefs),
        (Signal::ImagefsAvailable, th.imagefs_available_pct, imagefs),
    ] {
        let threshold = (fs.total as u128 * pct.min(100) as u128 / 100) as u64;
        if fs.total > 0 && fs.available < threshold {
            out.push((sig, threshold, fs.available));
        }
    }
    out
}

/// The pod's ephemeral-storage request: the sum over app containers (a
/// container's request defaults to its limit), or the largest init
/// container's if more; 0 when none is set.
pub fn pod_request(pod: &Pod) -> u64 {
    let req = |c: &crate::spec::Container| {
        c.resources
            .request(EPHEMERAL_STORAGE)
            .map_or(0, |q| q.value().max(0) as u64)
    };
    let sum = pod
        .spec
        .containers
        .iter()
        .fold(0u64, |a, c| a.saturating_add(req(c)));
    pod.spec.init_containers.iter().map(req).fold(sum, u64::max)
}

/// Whether an evicted pod still has its sandbox (its files): the space it
/// frees is not back yet, so node pressure must not evict another pod on
/// its account (the kubelet waits for an evicted pod's cleanup too).
pub fn cleaning<'a>(pods: impl IntoIterator<Item = &'a PodView>) -> bool {
    pods.into_iter().any(|p| {
        p.st.failure.as_ref().is_some_and(|f| f.0 == REASON)
            && p.st.sandbox != super::pod::Sandbox::Removed
    })
}

/// Under node pressure: the one pod to evict this round (the kubelet
/// evicts at most one per housekeeping pass, and none while an evicted
/// pod is still being cleaned up: [`cleaning`]), ranked as its
/// `rankDiskPressureFunc`: pods using more than their request first (a
/// BestEffort pod requests nothing, so any usage is more), then by
/// priority (lowest first), then by QoS (BestEffort, Burstable,
/// Guaranteed), then by usage above the request, most first; ties by uid. Only pods running and measured are candidates;
/// `None` when there is none.
#[must_use = "the victim is to be evicted"]
pub fn pressure_victim<'a>(
    pods: impl IntoIterator<Item = &'a PodView>,
    usage: &VecMap<String, PodUsage>,
    signal: Signal,
    threshold: u64,
    available: u64,
) -> Option<Eviction> {
    use super::status::QosClass;
    let pods: Vec<&PodView> = pods.into_iter().collect();
    if cleaning(pods.iter().copied()) {
        return None;
    }
    let best = pods
        .into_iter()
        .filter(|p| evictable(p))
        .filter_map(|p| {
            let used = usage.get(&p.uid)?.total();
            let request = pod_request(&p.spec);
            let qos = match super::qos::qos_class(&p.spec) {
                QosClass::BestEffort => 0,
                QosClass::Burstable => 1,
                QosClass::Guaranteed => 2,
            };
            let over = used.saturating_sub(request);
            let priority = p.spec.spec.priority_value();
            let key = (
                used <= request,
                priority,
                qos,
                std::cmp::Reverse(over),
                p.uid.clone(),
            );
            Some((key, p, used, request))
        })
        .min_by(|a, b| a.0.cmp(&b.0))?;
    let (_, p, used, request) = best;
    Some(Eviction {
        uid: p.uid.clone(),
        message: format!(
            "The node was low on resource: ephemeral-storage. Threshold quantity: {}, available: {}. Pod was using {}, request is {} ({}).",
            format_bytes_rounded(threshold),
            format_bytes_rounded(available),
            format_bytes_rounded(used),
            format_bytes_rounded(request),
            signal.name()
        ),
        container: None,
    })
}

/// Bytes for a message: exact when a whole binary unit, else in Ki.
fn format_bytes_rounded(n: u64) -> String {
    if n % 1024 == 0 || n < 1024 {
        format_bytes(n)
    } else {
        format!("{}Ki", n.div_ceil(1024))
    }
}

#[cfg(test)]
mod tests;
