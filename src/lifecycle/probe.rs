//! Probe schedule and thresholds (the kubelet's `prober/worker.go`), without
//! running anything: the agent executes [`Output::RunProbe`] and answers with
//! [`Input::ProbeResult`].
//!
//! One [`Worker`] per probe kind and container instance. A worker has at
//! most one probe in flight; the next run is one period after the result.
//! Nothing here is persisted: after an agent restart readiness starts false
//! and every schedule starts over, as the kubelet's do.
//!
//! [`Output::RunProbe`]: super::Output::RunProbe
//! [`Input::ProbeResult`]: super::Input::ProbeResult

use super::ProbeKind;
use crate::spec::Probe;

/// Kubernetes defaults: period 10 s, timeout 1 s, success 1, failure 3,
/// initial delay 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub initial_delay_ms: u64,
    pub period_ms: u64,
    pub timeout_ms: u64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn positive(v: Option<i32>, default: u32) -> u32 {
    match v {
        Some(v) if v > 0 => v as u32,
        _ => default,
    }
}

/// The probe's timing with Kubernetes' defaults filled in.
pub(crate) fn timing(p: &Probe) -> Timing {
    Timing {
        initial_delay_ms: p.initial_delay_seconds.max(0) as u64 * 1000,
        period_ms: u64::from(positive(p.period_seconds, 10)) * 1000,
        timeout_ms: u64::from(positive(p.timeout_seconds, 1)) * 1000,
        success_threshold: positive(p.success_threshold, 1),
        failure_threshold: positive(p.failure_threshold, 3),
    }
}

/// The schedule and result run of one probe of one container instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Worker {
    /// When the next run is due; `None` while stopped or in flight.
    pub next_at: Option<u64>,
    pub in_flight: bool,
    /// The last result and how many times in a row it came.
    last: Option<bool>,
    run: u32,
}

impl Worker {
    /// Starts (or restarts) the schedule: first run at `at`.
    pub fn schedule(&mut self, at: u64) {
        self.next_at = Some(at);
    }

    /// Stops probing (container stopped, startup done, liveness on hold).
    pub fn stop(&mut self) {
        *self = Worker::default();
    }

    /// Whether the probe is to be sent at `now` (then call [`Worker::sent`]).
    #[must_use]
    pub fn due(&self, now: u64) -> bool {
        !self.in_flight && self.next_at.is_some_and(|t| t <= now)
    }

    /// Marks the probe as sent.
    pub fn sent(&mut self) {
        self.in_flight = true;
        self.next_at = None;
    }

    /// Records one result (the worker must be in flight) and schedules the
    /// next run one period later. Returns the result once it has come
    /// `threshold` times in a row (and on every further repetition), as the
    /// kubelet's `resultsManager.Set` does.
    #[must_use = "a result past its threshold changes the container's state"]
    pub fn record(&mut self, success: bool, now: u64, t: &Timing) -> Option<bool> {
        self.in_flight = false;
        self.next_at = Some(now + t.period_ms);
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            t.success_threshold
        } else {
            t.failure_threshold
        };
        (self.run >= threshold).then_some(success)
    }
}

/// The three workers of one container instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Probes {
    pub startup: Worker,
    pub liveness: Worker,
    pub readiness: Worker,
}

impl Probes {
    pub fn get_mut(&mut self, kind: ProbeKind) -> &mut Worker {
        match kind {
            // Hooks have no worker: their result is handled before.
            ProbeKind::Startup | ProbeKind::PostStart | ProbeKind::PreStop => &mut self.startup,
            ProbeKind::Liveness => &mut self.liveness,
            ProbeKind::Readiness => &mut self.readiness,
        }
    }

    pub fn get(&self, kind: ProbeKind) -> &Worker {
        match kind {
            ProbeKind::Startup | ProbeKind::PostStart | ProbeKind::PreStop => &self.startup,
            ProbeKind::Liveness => &self.liveness,
            ProbeKind::Readiness => &self.readiness,
        }
    }

    pub fn stop_all(&mut self) {
        *self = Probes::default();
    }

    /// The earliest due time of any worker.
    #[must_use]
    pub fn next_at(&self) -> Option<u64> {
        [&self.startup, &self.liveness, &self.readiness]
            .iter()
            .filter(|w| !w.in_flight)
            .filter_map(|w| w.next_at)
            .min()
    }
}

/// The probe of `kind` in a container spec, if any.
pub(crate) fn probe_of(c: &crate::spec::Container, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Startup => c.startup_probe.as_ref(),
        ProbeKind::Liveness => c.liveness_probe.as_ref(),
        ProbeKind::Readiness => c.readiness_probe.as_ref(),
        ProbeKind::PostStart | ProbeKind::PreStop => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_fills_in_kubernetes_defaults() {
        let t = timing(&Probe::default());
        assert_eq!(
            t,
            Timing {
                initial_delay_ms: 0,
                period_ms: 10_000,
                timeout_ms: 1_000,
                success_threshold: 1,
                failure_threshold: 3
            }
        );
        let p = Probe {
            initial_delay_seconds: 5,
            period_seconds: Some(2),
            timeout_seconds: Some(3),
            success_threshold: Some(2),
            failure_threshold: Some(1),
            ..Probe::default()
        };
        let t = timing(&p);
        assert_eq!(
            (
                t.initial_delay_ms,
                t.period_ms,
                t.timeout_ms,
                t.success_threshold,
                t.failure_threshold
            ),
            (5_000, 2_000, 3_000, 2, 1)
        );
    }

    #[test]
    fn worker_counts_consecutive_results_against_thresholds() {
        let t = Timing {
            initial_delay_ms: 0,
            period_ms: 1000,
            timeout_ms: 1000,
            success_threshold: 2,
            failure_threshold: 3,
        };
        let mut w = Worker::default();
        w.schedule(0);
        assert!(w.due(0));
        w.sent();
        assert!(!w.due(10_000));
        assert_eq!(w.record(false, 0, &t), None);
        assert_eq!(w.next_at, Some(1000));
        assert_eq!(w.record(false, 1000, &t), None);
        assert_eq!(w.record(true, 2000, &t), None);
        assert_eq!(w.record(true, 3000, &t), Some(true));
        assert_eq!(w.record(true, 4000, &t), Some(true));
        assert_eq!(w.record(false, 5000, &t), None);
        assert_eq!(w.record(false, 6000, &t), None);
        assert_eq!(w.record(false, 7000, &t), Some(false));
    }
}
