//! The Kubernetes v1 `PodStatus`, shaped for JSON exactly as the API server
//! prints it (camelCase, `omitempty` fields skipped, `metav1.Time` as RFC 3339
//! or `null`), and the kubelet's pure status functions: `getPhase`
//! (`pkg/kubelet/kubelet_pods.go`) and the condition generators
//! (`pkg/kubelet/status/generate.go`).

use crate::spec::{PodSpec, RestartPolicy};
use serde::{Deserialize, Serialize};

/// `status.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Phase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// `status.qosClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// `v1.PodStatus` (the fields picolet fills).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
    #[serde(rename = "hostIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub host_ips: Vec<Ip>,
    #[serde(rename = "podIP", default, skip_serializing_if = "String::is_empty")]
    pub pod_ip: String,
    #[serde(rename = "podIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<Ip>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_class: Option<QosClass>,
}

/// `v1.HostIP` / `v1.PodIP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip {
    pub ip: String,
}

/// `v1.PodCondition`. `lastProbeTime` is always `null` (the kubelet never
/// sets it), `lastTransitionTime` changes only when `status` flips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `"True"` or `"False"`.
    pub status: String,
    #[serde(default)]
    pub last_probe_time: Option<String>,
    #[serde(default)]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `v1.ContainerStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    #[serde(default)]
    pub state: ContainerState,
    #[serde(default)]
    pub last_state: ContainerState,
    pub ready: bool,
    pub restart_count: i32,
    pub image: String,
    #[serde(rename = "imageID")]
    pub image_id: String,
    #[serde(
        rename = "containerID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
}

/// `v1.ContainerState`: at most one member is set; `{}` when none is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<StateWaiting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<StateRunning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<StateTerminated>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StateWaiting {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StateRunning {
    #[serde(default)]
    pub started_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StateTerminated {
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(
        rename = "containerID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
}

fn find<'a>(all: &'a [&'a ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    all.iter().copied().find(|s| s.name == name)
}

fn last_exit(s: &ContainerStatus) -> Option<i32> {
    s.last_state.terminated.as_ref().map(|t| t.exit_code)
}

/// `HasAnyRegularContainerStarted`: some app container is running or terminated.
pub(crate) fn any_regular_started(spec: &PodSpec, all: &[&ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        find(all, &c.name)
            .is_some_and(|s| s.state.running.is_some() || s.state.terminated.is_some())
    })
}

/// The kubelet's `getPhase` (with sidecars, k8s 1.29+). `all` holds the
/// init and app container statuses; `pod_is_terminal` is true once the pod
/// is being torn down and nothing runs any more.
pub fn get_phase(spec: &PodSpec, all: &[&ContainerStatus], pod_is_terminal: bool) -> Phase {
    let mut pending_initialization = 0;
    let mut failed_initialization = 0;
    let mut pending_sidecars = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in spec.init_containers.iter().filter(|c| c.is_sidecar()) {
        let Some(s) = find(all, &c.name) else {
            unknown += 1;
            continue;
        };
        if s.state.running.is_some() {
            if s.started != Some(true) {
                pending_sidecars += 1;
            }
            running += 1;
        } else if s.state.terminated.is_some() {
            // neither running nor stopped
        } else if s.state.waiting.is_some() {
            if s.last_state.terminated.is_none() {
                pending_sidecars += 1;
                waiting += 1;
            }
        } else {
            pending_sidecars += 1;
            unknown += 1;
        }
    }
    for c in spec.init_containers.iter().filter(|c| !c.is_sidecar()) {
        let Some(s) = find(all, &c.name) else {
            pending_initialization += 1;
            continue;
        };
        if s.state.running.is_some() {
            pending_initialization += 1;
        } else if let Some(t) = &s.state.terminated {
            if t.exit_code != 0 {
                failed_initialization += 1;
            }
        } else if s.state.waiting.is_some() {
            match last_exit(s) {
                Some(code) if code != 0 => failed_initialization += 1,
                Some(_) => {}
                None => pending_initialization += 1,
            }
        } else {
            pending_initialization += 1;
        }
    }

    for c in &spec.containers {
        let Some(s) = find(all, &c.name) else {
            unknown += 1;
            continue;
        };
        if s.state.running.is_some() {
            running += 1;
        } else if let Some(t) = &s.state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.state.waiting.is_some() {
            if s.last_state.terminated.is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    if failed_initialization > 0 && spec.restart_policy == RestartPolicy::Never {
        return Phase::Failed;
    }
    let pending = pending_initialization + pending_sidecars;
    if (pending > 0 && !any_regular_started(spec, all)) || waiting > 0 {
        return Phase::Pending;
    }
    if running > 0 && unknown == 0 {
        return Phase::Running;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
        }
        if spec.restart_policy == RestartPolicy::Always {
            return Phase::Running;
        }
        if stopped == succeeded {
            return Phase::Succeeded;
        }
        if spec.restart_policy == RestartPolicy::Never {
            return Phase::Failed;
        }
        return Phase::Running;
    }
    Phase::Pending
}

/// A condition before its transition time is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawCondition {
    pub kind: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

fn cond(kind: &'static str, status: bool, reason: &str, message: String) -> RawCondition {
    RawCondition {
        kind,
        status,
        reason: reason.to_string(),
        message,
    }
}

/// Go's `fmt.Sprintf("%s", []string{..})`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// `GeneratePodInitializedCondition`.
fn initialized(spec: &PodSpec, all: &[&ContainerStatus], phase: Phase) -> RawCondition {
    const T: &str = "Initialized";
    if spec.init_containers.is_empty() || any_regular_started(spec, all) {
        return cond(T, true, "", String::new());
    }
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in &spec.init_containers {
        match find(all, &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(s) if c.is_sidecar() && s.started != Some(true) => {
                incomplete.push(c.name.as_str())
            }
            Some(s) if !c.is_sidecar() && !s.ready => incomplete.push(c.name.as_str()),
            Some(_) => {}
        }
    }
    if phase == Phase::Succeeded && unknown.is_empty() {
        return cond(T, true, "PodCompleted", String::new());
    }
    containers_cond(
        T,
        "ContainersNotInitialized",
        &unknown,
        "incomplete",
        &incomplete,
    )
}

/// `GenerateContainersReadyCondition`.
fn containers_ready(spec: &PodSpec, all: &[&ContainerStatus], phase: Phase) -> RawCondition {
    const T: &str = "ContainersReady";
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec.init_containers.iter().filter(|c| c.is_sidecar());
    for c in sidecars.chain(&spec.containers) {
        match find(all, &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(s) if !s.ready => unready.push(c.name.as_str()),
            Some(_) => {}
        }
    }
    if phase == Phase::Succeeded && unknown.is_empty() {
        return cond(T, false, "PodCompleted", String::new());
    }
    if phase == Phase::Failed {
        return cond(T, false, "PodFailed", String::new());
    }
    containers_cond(T, "ContainersNotReady", &unknown, "unready", &unready)
}

/// The condition `t`: true when every container has a status and is
/// `what` no more, else false with `reason` and the kubelet's message
/// ("containers with unknown status: [a], containers with unready
/// status: [b]").
fn containers_cond(
    t: &'static str,
    reason: &str,
    unknown: &[&str],
    what: &str,
    others: &[&str],
) -> RawCondition {
    let mut msgs = Vec::new();
    for (kind, names) in [("unknown", unknown), (what, others)] {
        if !names.is_empty() {
            msgs.push(format!("containers with {kind} status: {}", go_list(names)));
        }
    }
    if msgs.is_empty() {
        cond(t, true, "", String::new())
    } else {
        cond(t, false, reason, msgs.join(", "))
    }
}

/// The kubelet's conditions, in the order it appends them:
/// `PodReadyToStartContainers`, `Initialized`, `Ready`, `ContainersReady`,
/// `PodScheduled`. `Ready` equals `ContainersReady` (no readiness gates).
pub(crate) fn conditions(
    spec: &PodSpec,
    all: &[&ContainerStatus],
    phase: Phase,
    sandbox_ready: bool,
) -> Vec<RawCondition> {
    let cr = containers_ready(spec, all, phase);
    let ready = RawCondition {
        kind: "Ready",
        ..cr.clone()
    };
    vec![
        cond(
            "PodReadyToStartContainers",
            sandbox_ready,
            "",
            String::new(),
        ),
        initialized(spec, all, phase),
        ready,
        cr,
        cond("PodScheduled", true, "", String::new()),
    ]
}
