//! Resource metrics: the pure core (docs/metrics.md).
//!
//! The agent samples every pod's cgroup and each running container's leaf
//! every `metricsInterval` ([`read`] does the reads) and records them here
//! with the time as an argument. [`Metrics`] keeps the last two samples per
//! cgroup, as cAdvisor and metrics-server do, and derives:
//! - CPU in millicores: Δ`usage_usec` / Δms between the last two samples
//!   (rounded up, as kubectl's `MilliValue`);
//! - the working set (kubectl top's memory): `memory.current` −
//!   `inactive_file`;
//! - a pod's usage: the sum over its containers (metrics-server's pod
//!   figure), known only when every container's is;
//! - the usage published in the fleet status ([`Metrics::publish`]): at
//!   most once per interval, and only when it moved by more than 10 % and
//!   at least [`CPU_FLOOR_MILLI`] / [`MEM_FLOOR_BYTES`], so that a steady
//!   device publishes nothing.
//!
//! A figure whose file is missing (a controller not enabled) is `None`,
//! never a zero. No I/O here.

pub mod prom;
pub mod read;

use serde::{Deserialize, Serialize};

/// `metricsInterval`'s default, in seconds.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 30;

/// Reads `--metrics-addr` / `metricsAddr`.
pub fn parse_addr(a: &str) -> Result<std::net::SocketAddr, String> {
    a.parse()
        .map_err(|_| format!("{a:?} is not an IP:PORT address (e.g. 127.0.0.1:9100)"))
}

/// A change in CPU smaller than this is not published.
pub const CPU_FLOOR_MILLI: u64 = 10;
/// A change in memory smaller than this is not published.
pub const MEM_FLOOR_BYTES: u64 = 1 << 20;

/// One cgroup's files at one time. `None`: the file or its line is missing
/// (that controller is not enabled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// `memory.current`.
    pub memory: Option<u64>,
    /// `memory.stat`: `anon`, `file`, `inactive_file`.
    pub anon: Option<u64>,
    pub file: Option<u64>,
    pub inactive_file: Option<u64>,
    /// `cpu.stat`: `usage_usec`, `nr_throttled`, `throttled_usec`.
    pub cpu_usec: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_usec: Option<u64>,
    /// `pids.current`.
    pub pids: Option<u64>,
    /// `memory.events`: `oom_kill`.
    pub oom_kills: Option<u64>,
}

impl Sample {
    /// The working set: `memory.current` − `inactive_file` (0 at least), as
    /// cAdvisor computes it; `None` without `memory.current`.
    pub fn working_set(&self) -> Option<u64> {
        Some(self.memory?.saturating_sub(self.inactive_file.unwrap_or(0)))
    }
}

/// The last two samples of a cgroup, with their times (mono ms).
#[derive(Debug, Clone, Default)]
pub struct Series {
    prev: Option<(u64, Sample)>,
    last: Option<(u64, Sample)>,
}

impl Series {
    fn push(&mut self, now_ms: u64, s: Sample) {
        self.prev = self.last.replace((now_ms, s));
    }

    /// The last sample.
    pub fn last(&self) -> Option<&Sample> {
        self.last.as_ref().map(|(_, s)| s)
    }

    /// Millicores between the last two samples (Δusage µs / Δms, rounded
    /// up); `None` before two samples, without `cpu.stat`, or when the
    /// counter went back (a new cgroup).
    pub fn cpu_milli(&self) -> Option<u64> {
        let ((t0, a), (t1, b)) = (self.prev?, self.last?);
        let dt = t1.checked_sub(t0).filter(|d| *d > 0)?;
        Some(b.cpu_usec?.checked_sub(a.cpu_usec?)?.div_ceil(dt))
    }
}

/// A pod's usage as published in the fleet status (`usage` of a pod
/// report) and shown by `picolet top`. `None`: not known (yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_milli: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_bytes: Option<u64>,
}

impl Usage {
    /// Whether `new` differs enough from `self` to be published: a figure
    /// appeared or went, or moved by more than 10 % and at least the floor.
    pub fn moved(&self, new: &Usage) -> bool {
        let f = |a: Option<u64>, b: Option<u64>, floor: u64| match (a, b) {
            (Some(a), Some(b)) => {
                let d = a.abs_diff(b);
                d >= floor && d.saturating_mul(10) > a
            }
            (a, b) => a.is_some() != b.is_some(),
        };
        f(self.cpu_milli, new.cpu_milli, CPU_FLOOR_MILLI)
            || f(self.mem_bytes, new.mem_bytes, MEM_FLOOR_BYTES)
    }
}

/// One cgroup of a pod: the pod's own (`name` empty) or a container's.
#[derive(Debug, Default)]
pub struct Cgroup {
    pub name: String,
    pub series: Series,
    seen: u64,
}

/// A pod's cgroups and its published usage.
#[derive(Debug, Default)]
pub struct PodMetrics {
    /// The pod's cgroup first (name ""), then its running containers'.
    pub cgroups: Vec<Cgroup>,
    seen: u64,
    published: Option<Usage>,
}

impl PodMetrics {
    /// The containers' cgroups (not the pod's own).
    pub fn containers(&self) -> impl Iterator<Item = &Cgroup> {
        self.cgroups.iter().filter(|c| !c.name.is_empty())
    }

    /// The sum over the containers: CPU when every container has a rate,
    /// memory when every one has a working set; `None` without containers
    /// or without either figure.
    pub fn usage(&self) -> Option<Usage> {
        let mut u = Usage {
            cpu_milli: Some(0),
            mem_bytes: Some(0),
        };
        let mut any = false;
        for c in self.containers() {
            any = true;
            let add = |t: Option<u64>, v: Option<u64>| Some(t?.saturating_add(v?));
            u.cpu_milli = add(u.cpu_milli, c.series.cpu_milli());
            u.mem_bytes = add(u.mem_bytes, c.series.last().and_then(Sample::working_set));
        }
        (any && (u.cpu_milli.is_some() || u.mem_bytes.is_some())).then_some(u)
    }
}

/// Every pod's metrics, by pod uid (see the module doc).
#[derive(Debug, Default)]
pub struct Metrics {
    /// By pod uid (a `Vec`: a few pods, and less code than a map).
    pods: Vec<(String, PodMetrics)>,
    round: u64,
    now_ms: u64,
    /// When the usage was last published (mono ms).
    published_at: Option<u64>,
}

impl Metrics {
    /// Starts a round of samples taken at `now_ms`.
    pub fn begin(&mut self, now_ms: u64) {
        self.round += 1;
        self.now_ms = now_ms;
    }

    /// Records the sample of pod `uid`'s cgroup `name` ("": the pod's own).
    /// Allocates only for a pod or container not seen before.
    pub fn record(&mut self, uid: &str, name: &str, s: Sample) {
        let round = self.round;
        let i = match self.pods.iter().position(|(u, _)| u == uid) {
            Some(i) => i,
            None => {
                self.pods.push((uid.to_string(), PodMetrics::default()));
                self.pods.len() - 1
            }
        };
        let pod = &mut self.pods[i].1;
        pod.seen = round;
        let i = match pod.cgroups.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                pod.cgroups.push(Cgroup {
                    name: name.to_string(),
                    ..Cgroup::default()
                });
                pod.cgroups.len() - 1
            }
        };
        let c = &mut pod.cgroups[i];
        c.seen = round;
        c.series.push(self.now_ms, s);
    }

    /// Ends the round: pods and containers not sampled in it are gone.
    pub fn end(&mut self) {
        let round = self.round;
        self.pods.retain_mut(|(_, p)| {
            p.cgroups.retain(|c| c.seen == round);
            p.seen == round
        });
    }

    /// Pod `uid`'s metrics.
    pub fn pod(&self, uid: &str) -> Option<&PodMetrics> {
        self.pods.iter().find(|(u, _)| u == uid).map(|(_, p)| p)
    }

    /// Every pod's metrics, with its uid.
    pub fn pods(&self) -> impl Iterator<Item = (&String, &PodMetrics)> {
        self.pods.iter().map(|(u, p)| (u, p))
    }

    /// Updates the published usage of the pods whose usage moved (see
    /// [`Usage::moved`]), at most once per `interval_ms` (less a tenth, for
    /// the timer's jitter); true when one changed (the status is then due).
    pub fn publish(&mut self, now_ms: u64, interval_ms: u64) -> bool {
        if self
            .published_at
            .is_some_and(|t| now_ms.saturating_sub(t) < interval_ms - interval_ms / 10)
        {
            return false;
        }
        let mut changed = false;
        for (_, p) in &mut self.pods {
            let new = p.usage();
            let moved = match (&p.published, &new) {
                (Some(old), Some(new)) => old.moved(new),
                (old, new) => old.is_some() != new.is_some(),
            };
            if moved {
                p.published = new;
                changed = true;
            }
        }
        if changed {
            self.published_at = Some(now_ms);
        }
        changed
    }

    /// Pod `uid`'s usage as last published.
    pub fn published(&self, uid: &str) -> Option<Usage> {
        self.pod(uid).and_then(|p| p.published)
    }
}

/// kubectl top's CPU: `12m`.
pub fn cpu_text(milli: Option<u64>) -> String {
    milli.map_or_else(|| "<unknown>".into(), |m| format!("{m}m"))
}

/// kubectl top's memory: whole MiB, `20Mi`.
pub fn mem_text(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "<unknown>".into(), |b| format!("{}Mi", b >> 20))
}

#[cfg(test)]
mod tests;
