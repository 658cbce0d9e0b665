//! The pure pod and container state machines: what the kubelet decides,
//! without doing any of it.
//!
//! [`Node`] owns every pod on this device and follows the kubelet's rules:
//! sandbox first, init containers one at a time, then the app containers;
//! restart policy and CrashLoopBackOff (`doBackOff` + `flowcontrol.Backoff`);
//! image pull back-off; the startup/liveness/readiness probe schedule and
//! thresholds; graceful termination; `getPhase`, the pod conditions and the
//! whole `v1.PodStatus`.
//!
//! It is a sans-IO core like quinn-proto's `Connection`: the agent feeds
//! [`Input`]s with [`Node::handle`], drains [`Output`]s with
//! [`Node::poll_output`] and calls `handle(Input::Tick, now)` at
//! [`Node::poll_timeout`]. It touches no file, socket, process or clock:
//! time comes in as [`Now`] (`mono_ms` for every timer, `wall_ms` only for
//! displayed timestamps). [`Node::snapshot`] gives what the state file must
//! keep so that an agent restart restarts no container.
//! [`Input::AdoptPod`] takes over a running sandbox that the node does
//! not know, when the state file was lost (the rules are in `adopt.rs`).
//!
//! Start and exit times arrive as wall-clock ms from the shim. For timers
//! the core turns them into mono time relative to the `now` they are
//! handled at (`now.mono - (now.wall - t)`, clamped to `[start, now]`), so
//! an exit reported late, e.g. after an agent restart, still starts its
//! back-off from when it happened. Timers due at `now` fire at the start of
//! every `handle`, whatever the input.
//!
//! Outputs of one `handle` come in this order: [`Output::Persist`] first
//! (when the snapshot changed in a way that must survive a restart), then
//! the commands and events in the order they were decided, then
//! [`Output::AckExit`] for each exit recorded (so an exit is acknowledged to
//! the shim only after the state file holds it), then
//! [`Output::StatusChanged`].

mod adopt;
mod backoff;
mod container;
pub mod container_config;
pub mod eviction;
mod node;
mod observe;
mod pod;
mod probe;
mod pull;
mod qos;
mod snapshot;
mod start;
mod status;
pub mod termination;
mod timers;
mod view_status;

#[cfg(test)]
mod tests;

pub use adopt::{AdoptedContainer, AdoptedExit};
pub use node::{
    DEFAULT_MAX_PODS, DEFAULT_SPEC_BUDGET, NODE_AFFINITY, NODE_PORTS, Node, OUT_OF_PODS,
    STATE_FILE_FULL,
};
pub use pod::{ContainerInfo, PodView};
pub use pull::{PullDecision, pull_decision, pull_policy};
pub use qos::oom_score_adj;
pub use snapshot::{
    BackoffSnap, ContainerSnapshot, InstanceSnap, NodeSnapshot, PhaseSnap, PodSnapshot,
    SandboxSnap, StepSnap, StopWhySnap, StoppingSnap, TermSnap,
};
pub use status::{
    ContainerState, ContainerStatus, Ip, Phase, PodCondition, PodStatus, QosClass, StateRunning,
    StateTerminated, StateWaiting, get_phase,
};

pub use crate::clock::Now;
use crate::spec::{Pod, Probe, PullPolicy};
use serde::{Deserialize, Serialize};

/// What the agent tells the core.
// An input is moved into `handle` once and never stored: boxing the pod
// would only complicate every caller.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Time passed: handle every timer due at `now`.
    Tick,
    /// Desired: create or update the pod `namespace/name`. `fresh_uid` is
    /// used when the pod is (re)created and `pod.metadata.uid` is empty.
    ApplyPod {
        pod: Pod,
        fresh_uid: String,
    },
    /// A running sandbox the node does not know (the state file was lost)
    /// belongs to the desired `pod`: take it over with its uid and the
    /// containers its shim reported, instead of creating the pod afresh.
    /// Refused (event + `RemoveSandbox { uid }`) when `namespace/name`
    /// exists already. Semantics: see `adopt.rs`.
    AdoptPod {
        pod: Pod,
        /// The running sandbox's uid (`pods/<uid>/`).
        uid: String,
        containers: Vec<AdoptedContainer>,
    },
    /// Desired: the pod is gone.
    DeletePod {
        namespace: String,
        name: String,
    },
    /// The shim answered `CreateSandbox`.
    SandboxReady {
        uid: String,
    },
    SandboxFailed {
        uid: String,
        message: String,
    },
    /// The shim vanished (killed, reboot): all its containers are gone and
    /// their exit is unknown.
    SandboxGone {
        uid: String,
    },
    /// `RemoveSandbox` completed.
    SandboxRemoved {
        uid: String,
    },
    /// The image of `container` is present. `pulled_ms` is `Some(duration)`
    /// when it had to be pulled, `None` when it was already on the device.
    ImageReady {
        uid: String,
        container: String,
        image_id: String,
        pulled_ms: Option<u64>,
    },
    /// The agent started pulling the image of `container` after its
    /// `EnsureImage` (`progress: None`: the `Pulling` event), or that pull
    /// moved: `Some((done, total))` bytes, shown as the waiting message
    /// (`Pulling image "X": 3.1 MB of 9.8 MB`).
    ImagePulling {
        uid: String,
        container: String,
        progress: Option<(u64, u64)>,
    },
    /// The agent's pull ended with the image in the store: the pull took
    /// `pull_ms`, `total_ms` with the wait for a pull slot, and the image
    /// is `size` bytes (manifest, config, compressed layers). `offline`:
    /// the registry could not be reached (this error) and the copy already
    /// on the device is used (`Always` only; a Warning event says so).
    ImagePulled {
        uid: String,
        container: String,
        image_id: String,
        pull_ms: u64,
        total_ms: u64,
        size: u64,
        offline: Option<String>,
    },
    /// `reason`: `ErrImagePull`, `ErrImageNeverPull` or `InvalidImageName`;
    /// `message`: the bare error (the core adds kubelet's prefixes).
    ImageFailed {
        uid: String,
        container: String,
        reason: String,
        message: String,
    },
    ContainerStarted {
        uid: String,
        container: String,
        instance: u64,
        started_at_ms: i64,
    },
    /// `reason`: `CreateContainerConfigError` or `CreateContainerError` (no
    /// container was created: retried after 10 s) or anything else, e.g.
    /// `StartError`/`RunContainerError` (it was created and failed: counted
    /// as an exit with code 128, reason `StartError`).
    ContainerStartFailed {
        uid: String,
        container: String,
        instance: u64,
        reason: String,
        message: String,
    },
    /// Times are wall ms as the shim saw them.
    ContainerExited {
        uid: String,
        container: String,
        instance: u64,
        exit_code: i32,
        signal: Option<i32>,
        oom_killed: bool,
        started_at_ms: i64,
        finished_at_ms: i64,
        /// The termination message (`lifecycle::termination`).
        message: String,
    },
    ProbeResult {
        uid: String,
        container: String,
        instance: u64,
        kind: ProbeKind,
        success: bool,
        message: String,
    },
    /// The node's address (`status.hostIP`); `None` clears it.
    NodeAddress {
        host_ip: Option<String>,
    },
    /// The pod's address (`status.podIP`); `None` clears it.
    PodAddress {
        uid: String,
        pod_ip: Option<String>,
    },
    /// Evict the pod (the kubelet's eviction manager): phase `Failed`,
    /// reason `Evicted`, `message`, a Warning event, its containers
    /// stopped. Ignored for a pod already terminal or stopping. See
    /// [`eviction`].
    EvictPod {
        uid: String,
        message: String,
        /// The container the eviction is about, for the event.
        container: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
    /// A lifecycle hook (`exec`/`httpGet`) run as a probe is.
    PostStart,
    PreStop,
}

impl ProbeKind {
    /// As the kubelet names it in events (`Liveness probe failed: …`).
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
            ProbeKind::PostStart => "PostStart",
            ProbeKind::PreStop => "PreStop",
        }
    }
}

/// Kubernetes event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// What the core asks the agent to do, in order.
// Outputs are queued and drained at once: boxing the probe would only
// complicate every producer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Create (or adopt, if it already runs) the pod's shim; answer with
    /// `SandboxReady` or `SandboxFailed`.
    CreateSandbox { uid: String },
    /// Make the image present per `policy`; answer `ImageReady`/`ImageFailed`.
    EnsureImage {
        uid: String,
        container: String,
        image: String,
        policy: PullPolicy,
    },
    /// Start this instance (spec via [`Node::pod`]). `instance` strictly
    /// increases per container. If the shim already has this instance (the
    /// agent restarted in between), report it instead of starting it twice.
    StartContainer {
        uid: String,
        container: String,
        instance: u64,
    },
    /// Send `signal` (15, or 9 when the grace period is over or 0).
    Signal {
        uid: String,
        container: String,
        instance: u64,
        signal: i32,
    },
    /// Run one probe, at most `timeout_ms`, and answer `ProbeResult`.
    RunProbe {
        uid: String,
        container: String,
        instance: u64,
        kind: ProbeKind,
        probe: Probe,
        timeout_ms: u64,
    },
    /// Stop the shim and clean the pod's directories; answer
    /// `SandboxRemoved` (also when there was nothing to remove). Also sent
    /// for a sandbox whose `AdoptPod` was refused: that uid is not in the
    /// node, and its `SandboxRemoved` is ignored.
    RemoveSandbox { uid: String },
    /// The exit is in the state file now: the shim may forget it.
    AckExit {
        uid: String,
        container: String,
        instance: u64,
    },
    /// Write [`Node::snapshot`] to the state file now.
    Persist,
    /// [`Node::status`] of this pod changed.
    StatusChanged { uid: String },
    Event {
        uid: String,
        kind: EventType,
        reason: String,
        message: String,
        /// The container the event is about.
        involved: Option<String>,
    },
    /// The pod is gone from [`Node::pods`].
    PodRemoved { uid: String },
}

/// Errors of [`Node::restore`].
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("pod {uid}: stored spec is not valid JSON: {source}")]
    PodJson {
        uid: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("pod {uid}: stored with {stored} {what} but its spec has {spec}")]
    ContainerMismatch {
        uid: String,
        what: &'static str,
        stored: usize,
        spec: usize,
    },
    #[error("pod {uid} ({namespace}/{name}) is stored twice")]
    Duplicate {
        uid: String,
        namespace: String,
        name: String,
    },
}

/// What one `handle` decided, before it is queued.
#[derive(Debug, Default)]
pub(crate) struct Fx {
    pub out: Vec<Output>,
    pub persist: bool,
    pub acks: Vec<Output>,
}

impl Fx {
    pub fn event(
        &mut self,
        uid: &str,
        kind: EventType,
        reason: &str,
        message: String,
        involved: Option<&str>,
    ) {
        self.out.push(Output::Event {
            uid: uid.to_string(),
            kind,
            reason: reason.to_string(),
            message,
            involved: involved.map(str::to_string),
        });
    }
}
