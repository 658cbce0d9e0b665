//! One container's record: its latest instance, the previous termination,
//! the step it is at, the kubelet's cached waiting reason, and its back-off
//! entries. How the record is shown as a `v1.ContainerStatus` lives here too
//! (the kubelet's `convertToAPIContainerStatuses`).

use super::backoff::Backoff;
use super::probe::Probes;
use super::status::{ContainerState, ContainerStatus, StateRunning, StateTerminated, StateWaiting};
use crate::clock::rfc3339;

/// How one instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `ContainerStatusUnknown`.
    pub reason: String,
    pub message: String,
    /// Wall ms, display only (`None` prints `null`).
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Mono ms: the `ts` of the back-off rule.
    pub finished_mono: u64,
    /// `""` when the runtime no longer knows the container.
    pub container_id: String,
}

/// One started instance of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    pub instance: u64,
    pub image: String,
    pub image_id: String,
    /// Wall ms (display) and mono ms (probe schedule).
    pub started_at: i64,
    pub started_mono: u64,
    /// The sandbox it ran in (see `PodState::sandbox_epoch`).
    pub epoch: u64,
    pub term: Option<Term>,
}

/// What the container is doing, from the core's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing in progress; the pod's sync decides whether to start it.
    Idle,
    /// CrashLoopBackOff until this mono time.
    BackOff { until: u64 },
    /// `EnsureImage` for this image is out.
    Pulling { image: String },
    /// The last pull failed: retry at `retry_at`; at `show_at` the reason
    /// becomes `ImagePullBackOff`.
    PullBackOff { retry_at: u64, show_at: Option<u64> },
    /// `StartContainer` is out.
    Starting {
        instance: u64,
        image: String,
        image_id: String,
    },
    /// The container could not be created: try again at this time.
    StartRetry { at: u64 },
    /// The latest instance runs.
    Running,
}

/// A kill in progress: SIGTERM sent, SIGKILL due at `sigkill_at`
/// (`None` once SIGKILL went out, or while SIGTERM waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kill {
    pub sigkill_at: Option<u64>,
    /// SIGTERM not sent yet: the grace period ends at `deadline`.
    pub term: Option<TermWait>,
}

/// Why SIGTERM waits (the kubelet's `killContainer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TermWait {
    pub deadline: u64,
    /// The preStop hook runs until this mono time at the latest (its
    /// `sleep` ends, or the grace period); `None` once it ended.
    pub hook_until: Option<u64>,
    /// A sidecar stopped with its pod waits for its turn: the app
    /// containers and the sidecars after it have exited.
    pub ordered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ctr {
    pub name: String,
    /// The last instance number handed out (0: none yet).
    pub next_instance: u64,
    pub restart_count: i32,
    pub current: Option<Instance>,
    /// The termination of the instance before `current` (`lastState`).
    pub last_term: Option<Term>,
    pub step: Step,
    /// The kubelet's `reasonCache`: shown as `waiting` while a (re)start is
    /// wanted; cleared by a successful start.
    pub reason: Option<(String, String)>,
    /// Crash-loop back-off (kubelet keys it by spec hash: reset on change).
    pub backoff: Option<Backoff>,
    /// Image pull back-off, keyed by image.
    pub image_backoff: Option<(String, Backoff)>,
    /// Restart after the next exit regardless of the restart policy
    /// (the container's definition changed).
    pub force_restart: bool,
    // Not persisted:
    pub kill: Option<Kill>,
    pub probes: Probes,
    /// Startup probe passed (or none); readiness result.
    pub started: bool,
    pub ready: bool,
    /// The postStart hook runs: until this mono time (`sleep`), or
    /// `u64::MAX` until its result comes.
    pub post_start: Option<u64>,
}

impl Ctr {
    pub fn new(name: &str) -> Ctr {
        Ctr {
            name: name.to_string(),
            next_instance: 0,
            restart_count: 0,
            current: None,
            last_term: None,
            step: Step::Idle,
            reason: None,
            backoff: None,
            image_backoff: None,
            force_restart: false,
            kill: None,
            probes: Probes::default(),
            started: false,
            ready: false,
            post_start: None,
        }
    }

    /// Running or about to: the sandbox cannot go away under it.
    pub fn active(&self) -> bool {
        matches!(self.step, Step::Running | Step::Starting { .. })
    }

    pub fn latest_term(&self) -> Option<&Term> {
        self.current.as_ref().and_then(|i| i.term.as_ref())
    }

    /// A new instance is running: the previous one becomes `lastState`.
    pub fn record_started(&mut self, inst: Instance) {
        if let Some(prev) = self.current.take() {
            self.last_term = prev.term;
            self.restart_count += 1;
        }
        self.current = Some(inst);
        self.reason = None;
        self.step = Step::Running;
        self.kill = None;
        self.probes.stop_all();
        self.started = false;
        self.ready = false;
        self.post_start = None;
    }

    /// The current instance ended (or a start failed after creation).
    pub fn record_exit(&mut self, term: Term) {
        if let Some(cur) = self.current.as_mut() {
            cur.term = Some(term);
        }
        self.step = Step::Idle;
        self.kill = None;
        self.probes.stop_all();
        self.started = false;
        self.ready = false;
        self.post_start = None;
    }

    /// `v1.ContainerStatus` for this record.
    pub fn status(
        &self,
        uid: &str,
        spec_image: &str,
        default_reason: &str,
        init: bool,
    ) -> ContainerStatus {
        let (image, image_id, container_id) = match &self.current {
            Some(i) => (
                i.image.clone(),
                i.image_id.clone(),
                container_id(uid, &self.name, i.instance),
            ),
            None => (spec_image.to_string(), String::new(), String::new()),
        };
        let mut state = match &self.current {
            None => waiting(default_reason, ""),
            // Not Running until its postStart hook completed (kubelet).
            Some(i) if i.term.is_none() && self.post_start.is_some() => waiting(default_reason, ""),
            Some(i) => match &i.term {
                None => ContainerState {
                    running: Some(StateRunning {
                        started_at: Some(rfc3339(i.started_at)),
                    }),
                    ..ContainerState::default()
                },
                Some(t) => terminated(t),
            },
        };
        let mut last_state = self.last_term.as_ref().map(terminated).unwrap_or_default();
        if let Some((reason, message)) = &self.reason {
            if state.terminated.is_some() {
                last_state = state;
            }
            state = waiting(reason, message);
        }
        let running = state.running.is_some();
        let ready = if init {
            state.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
        } else {
            running && self.started && self.ready
        };
        ContainerStatus {
            name: self.name.clone(),
            state,
            last_state,
            ready,
            restart_count: self.restart_count,
            image,
            image_id,
            container_id,
            started: Some(running && self.started),
        }
    }
}

/// The `terminated` reason of an exit: `OOMKilled`, `Completed` or `Error`.
pub(crate) fn exit_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// `picolet://<uid>/<name>/<instance>`.
pub(crate) fn container_id(uid: &str, name: &str, instance: u64) -> String {
    format!("picolet://{uid}/{name}/{instance}")
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(StateWaiting {
            reason: reason.to_string(),
            message: message.to_string(),
        }),
        ..ContainerState::default()
    }
}

fn terminated(t: &Term) -> ContainerState {
    ContainerState {
        terminated: Some(StateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: t.reason.clone(),
            message: t.message.clone(),
            started_at: t.started_at.map(rfc3339),
            finished_at: t.finished_at.map(rfc3339),
            container_id: t.container_id.clone(),
        }),
        ..ContainerState::default()
    }
}
