//! Tests of the lifecycle core with a virtual clock and no I/O.
//!
//! [`Agent`] plays the agent's role (like quinn-proto's `tests/util.rs`):
//! it feeds inputs at a virtual `now`, drains outputs, answers them
//! instantly when told to, and checks protocol invariants on every batch
//! (exits are acknowledged only after a `Persist`, instances strictly
//! increase, at most one probe of a kind is in flight).

mod creation;
mod images;
mod phase;
mod probes;
mod restart;
mod sandbox;
mod snapshot;
mod spec_change;
mod status_shape;
mod termination;

use super::{ContainerStatus, EventType, Input, Node, Now, Output, PodStatus, ProbeKind};
use crate::spec::{Container, ObjectMeta, Pod, PodSpec, Probe, RestartPolicy};
use std::collections::{HashMap, HashSet, VecDeque};

pub(super) const T0: Now = Now {
    mono_ms: 1_000_000,
    wall_ms: 1_700_000_000_000,
};

/// `T0` printed as Kubernetes does.
pub(super) const T0_STR: &str = "2023-11-14T22:13:20Z";

/// A pod `name` in `default` with app containers `(name, image)`.
pub(super) fn pod(name: &str, containers: &[(&str, &str)]) -> Pod {
    Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: name.into(),
            ..ObjectMeta::default()
        },
        spec: PodSpec {
            containers: containers.iter().map(|(n, i)| container(n, i)).collect(),
            ..PodSpec::default()
        },
    }
}

pub(super) fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.into(),
        image: image.into(),
        ..Container::default()
    }
}

pub(super) fn with_init(mut p: Pod, init: &[(&str, &str)]) -> Pod {
    p.spec.init_containers = init.iter().map(|(n, i)| container(n, i)).collect();
    p
}

pub(super) fn with_policy(mut p: Pod, policy: RestartPolicy) -> Pod {
    p.spec.restart_policy = policy;
    p
}

pub(super) fn with_grace(mut p: Pod, seconds: i64) -> Pod {
    p.spec.termination_grace_period_seconds = Some(seconds);
    p
}

/// An exec probe with the given period and thresholds (seconds).
pub(super) fn probe(delay: i32, period: i32, success: i32, failure: i32) -> Probe {
    Probe {
        exec: Some(crate::spec::ExecAction {
            command: vec!["true".into()],
        }),
        initial_delay_seconds: delay,
        period_seconds: Some(period),
        success_threshold: Some(success),
        failure_threshold: Some(failure),
        ..Probe::default()
    }
}

/// What the fake shim knows of a container.
#[derive(Debug, Clone, Copy)]
pub(super) struct Running {
    pub instance: u64,
    pub started_at: i64,
}

#[derive(Debug)]
pub(super) struct Agent {
    pub node: Node,
    pub now: Now,
    /// Every output since the last `take`.
    pub log: Vec<Output>,
    /// Every output ever, with the mono time it came out.
    pub history: Vec<(u64, Output)>,
    pub auto_sandbox: bool,
    pub auto_image: bool,
    pub auto_start: bool,
    pub auto_remove: bool,
    /// Containers exit (128 + signal) as soon as they are signalled.
    pub exit_on_signal: bool,
    /// image → (reason, message) for `ImageFailed`.
    pub failing_images: HashMap<String, (String, String)>,
    /// (uid, container) → the instance the fake shim runs.
    pub running: HashMap<(String, String), Running>,
    /// Probes asked for and not answered yet.
    pub probes_out: Vec<(String, String, u64, ProbeKind)>,
    /// The last persisted snapshot, postcard-encoded.
    pub persisted: Option<Vec<u8>>,
    pub persists: usize,
    next_uid: u32,
    last_instance: HashMap<(String, String), u64>,
}

impl Agent {
    /// An agent that answers sandbox, image, start and removal requests at once.
    pub fn new() -> Agent {
        Agent {
            node: Node::new("edge-1".into()),
            now: T0,
            log: Vec::new(),
            history: Vec::new(),
            auto_sandbox: true,
            auto_image: true,
            auto_start: true,
            auto_remove: true,
            exit_on_signal: true,
            failing_images: HashMap::new(),
            running: HashMap::new(),
            probes_out: Vec::new(),
            persisted: None,
            persists: 0,
            next_uid: 0,
            last_instance: HashMap::new(),
        }
    }

    /// An agent that answers nothing by itself.
    pub fn manual() -> Agent {
        Agent {
            auto_sandbox: false,
            auto_image: false,
            auto_start: false,
            auto_remove: false,
            exit_on_signal: false,
            ..Agent::new()
        }
    }

    pub fn at(mono: u64) -> Now {
        Now {
            mono_ms: mono,
            wall_ms: T0.wall_ms + (mono as i64 - T0.mono_ms as i64),
        }
    }

    /// Applies `pod`; a new pod gets uid `uid-N`. Returns the pod's uid.
    pub fn apply(&mut self, pod: Pod) -> String {
        self.next_uid += 1;
        let fresh = format!("uid-{}", self.next_uid);
        let (ns, name) = (pod.metadata.namespace.clone(), pod.metadata.name.clone());
        self.handle(Input::ApplyPod {
            pod,
            fresh_uid: fresh,
        });
        self.node
            .find(&ns, &name)
            .map(|p| p.uid.clone())
            .unwrap_or_default()
    }

    /// Feeds one input and everything the fake agent answers to it.
    pub fn handle(&mut self, input: Input) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            self.node.handle(input, self.now);
            let mut batch = Vec::new();
            while let Some(o) = self.node.poll_output() {
                batch.push(o);
            }
            self.check_batch(&batch);
            for o in batch {
                self.answer(&o, &mut queue);
                self.history.push((self.now.mono_ms, o.clone()));
                self.log.push(o);
            }
        }
    }

    fn check_batch(&mut self, batch: &[Output]) {
        let mut persisted = false;
        for o in batch {
            match o {
                Output::Persist => {
                    assert!(!persisted, "one Persist per batch: {batch:#?}");
                    persisted = true;
                    let snap = self.node.snapshot();
                    let bytes = postcard::to_stdvec(&snap).expect("snapshot encodes");
                    let back: super::NodeSnapshot =
                        postcard::from_bytes(&bytes).expect("snapshot decodes");
                    assert_eq!(back, snap, "snapshot round-trips through postcard");
                    self.persisted = Some(bytes);
                    self.persists += 1;
                }
                Output::AckExit {
                    uid,
                    container,
                    instance,
                } => assert!(
                    persisted || self.exit_is_persisted(uid, container, *instance),
                    "AckExit of an exit the state file does not hold: {batch:#?}"
                ),
                Output::StartContainer {
                    uid,
                    container,
                    instance,
                } => {
                    let last = self
                        .last_instance
                        .entry((uid.clone(), container.clone()))
                        .or_insert(0);
                    assert!(*instance > *last, "instance {instance} after {last}");
                    *last = *instance;
                }
                Output::RunProbe {
                    uid,
                    container,
                    instance,
                    kind,
                    ..
                } => {
                    let key = (uid.clone(), container.clone(), *instance, *kind);
                    assert!(!self.probes_out.contains(&key), "overlapping probe {key:?}");
                    self.probes_out.push(key);
                }
                _ => {}
            }
        }
        let first_persist = batch.iter().position(|o| *o == Output::Persist);
        if let Some(i) = first_persist {
            assert_eq!(i, 0, "Persist comes first: {batch:#?}");
        }
    }

    /// The last persisted snapshot holds this exit (or a later instance).
    fn exit_is_persisted(&self, uid: &str, container: &str, instance: u64) -> bool {
        let Some(bytes) = &self.persisted else {
            return false;
        };
        let snap: super::NodeSnapshot = postcard::from_bytes(bytes).unwrap();
        let Some(pod) = snap.pods.iter().find(|p| p.uid == uid) else {
            return true;
        };
        let c = pod
            .containers
            .iter()
            .chain(&pod.init_containers)
            .find(|c| c.name == container);
        c.and_then(|c| c.current.as_ref()).is_some_and(|cur| {
            cur.instance > instance || (cur.instance == instance && cur.term.is_some())
        })
    }

    fn answer(&mut self, o: &Output, queue: &mut VecDeque<Input>) {
        let now = self.now;
        match o.clone() {
            Output::CreateSandbox { uid } if self.auto_sandbox => {
                queue.push_back(Input::SandboxReady { uid })
            }
            Output::EnsureImage {
                uid,
                container,
                image,
                ..
            } => {
                if let Some((reason, message)) = self.failing_images.get(&image).cloned() {
                    queue.push_back(Input::ImageFailed {
                        uid,
                        container,
                        reason,
                        message,
                    });
                } else if self.auto_image {
                    queue.push_back(Input::ImageReady {
                        uid,
                        container,
                        image_id: format!("sha256:{image}"),
                        pulled_ms: None,
                    });
                }
            }
            Output::StartContainer {
                uid,
                container,
                instance,
            } if self.auto_start => {
                self.running.insert(
                    (uid.clone(), container.clone()),
                    Running {
                        instance,
                        started_at: now.wall_ms,
                    },
                );
                queue.push_back(Input::ContainerStarted {
                    uid,
                    container,
                    instance,
                    started_at_ms: now.wall_ms,
                });
            }
            Output::Signal {
                uid,
                container,
                instance,
                signal,
            } if self.exit_on_signal => {
                if let Some(r) = self.running.get(&(uid.clone(), container.clone())).copied() {
                    if r.instance == instance {
                        self.running.remove(&(uid.clone(), container.clone()));
                        queue.push_back(Input::ContainerExited {
                            uid,
                            container,
                            instance,
                            exit_code: 128 + signal,
                            signal: Some(signal),
                            oom_killed: false,
                            started_at_ms: r.started_at,
                            finished_at_ms: now.wall_ms,
                        });
                    }
                }
            }
            Output::RemoveSandbox { uid } if self.auto_remove => {
                self.running.retain(|(u, _), _| *u != uid);
                queue.push_back(Input::SandboxRemoved { uid })
            }
            _ => {}
        }
    }

    /// Moves the clock forward by `ms`, ticking at every timeout on the way.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now.mono_ms + ms;
        while let Some(t) = self.node.poll_timeout() {
            if t > target {
                break;
            }
            assert!(
                t >= self.now.mono_ms,
                "timeout {t} in the past (now {})",
                self.now.mono_ms
            );
            self.now = Agent::at(t);
            self.handle(Input::Tick);
        }
        self.now = Agent::at(target);
    }

    /// Moves the clock forward until `f` holds for an output in the log (at
    /// most `max_ms`); returns the ms waited (0 if it is in the log already).
    pub fn advance_until(&mut self, max_ms: u64, f: impl Fn(&Output) -> bool) -> Option<u64> {
        let start = self.now.mono_ms;
        if self.log.iter().any(&f) {
            return Some(0);
        }
        let target = start + max_ms;
        while let Some(t) = self.node.poll_timeout() {
            if t > target {
                break;
            }
            self.now = Agent::at(t);
            let before = self.log.len();
            self.handle(Input::Tick);
            if self.log[before..].iter().any(&f) {
                return Some(t - start);
            }
        }
        self.now = Agent::at(target);
        None
    }

    /// The instance of `container` the fake shim runs.
    pub fn instance(&self, uid: &str, container: &str) -> u64 {
        self.running
            .get(&(uid.to_string(), container.to_string()))
            .map(|r| r.instance)
            .unwrap_or_else(|| panic!("{container} is not running"))
    }

    /// The running instance of `container` exits with `code` now.
    pub fn exit(&mut self, uid: &str, container: &str, code: i32) {
        let key = (uid.to_string(), container.to_string());
        let r = self
            .running
            .remove(&key)
            .unwrap_or_else(|| panic!("{container} is not running"));
        self.handle(Input::ContainerExited {
            uid: uid.into(),
            container: container.into(),
            instance: r.instance,
            exit_code: code,
            signal: None,
            oom_killed: false,
            started_at_ms: r.started_at,
            finished_at_ms: self.now.wall_ms,
        });
    }

    /// Answers the outstanding probe of `kind` for `container`.
    pub fn probe(&mut self, uid: &str, container: &str, kind: ProbeKind, success: bool) {
        let i = self
            .probes_out
            .iter()
            .position(|(u, c, _, k)| u == uid && c == container && *k == kind)
            .unwrap_or_else(|| panic!("no {kind:?} probe out for {container}"));
        let (_, _, instance, _) = self.probes_out.remove(i);
        self.handle(Input::ProbeResult {
            uid: uid.into(),
            container: container.into(),
            instance,
            kind,
            success,
            message: if success {
                String::new()
            } else {
                "exit 1".into()
            },
        });
    }

    pub fn probe_out(&self, uid: &str, container: &str, kind: ProbeKind) -> bool {
        self.probes_out
            .iter()
            .any(|(u, c, _, k)| u == uid && c == container && *k == kind)
    }

    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.log)
    }

    pub fn status(&self, uid: &str) -> PodStatus {
        self.node.status(uid).expect("pod exists")
    }

    /// The status of container `name` (app or init).
    pub fn cs(&self, uid: &str, name: &str) -> ContainerStatus {
        let s = self.status(uid);
        s.container_statuses
            .into_iter()
            .chain(s.init_container_statuses)
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no status for {name}"))
    }

    /// `(status, reason, message)` of condition `kind`.
    pub fn condition(&self, uid: &str, kind: &str) -> (String, String, String) {
        let c = self
            .status(uid)
            .conditions
            .into_iter()
            .find(|c| c.kind == kind)
            .unwrap_or_else(|| panic!("no condition {kind}"));
        (c.status, c.reason, c.message)
    }
}

/// Messages of the events with this reason, in order.
pub(super) fn events(log: &[Output], reason: &str) -> Vec<String> {
    log.iter()
        .filter_map(|o| match o {
            Output::Event {
                reason: r, message, ..
            } if r == reason => Some(message.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn event_kinds(log: &[Output], reason: &str) -> HashSet<EventType> {
    log.iter()
        .filter_map(|o| match o {
            Output::Event {
                reason: r, kind, ..
            } if r == reason => Some(*kind),
            _ => None,
        })
        .collect()
}

/// Instances of `StartContainer` for `container`.
pub(super) fn starts(log: &[Output], container: &str) -> Vec<u64> {
    log.iter()
        .filter_map(|o| match o {
            Output::StartContainer {
                container: c,
                instance,
                ..
            } if c == container => Some(*instance),
            _ => None,
        })
        .collect()
}

/// Signals sent to `container`.
pub(super) fn signals(log: &[Output], container: &str) -> Vec<i32> {
    log.iter()
        .filter_map(|o| match o {
            Output::Signal {
                container: c,
                signal,
                ..
            } if c == container => Some(*signal),
            _ => None,
        })
        .collect()
}

/// Images asked for with `EnsureImage`, as (container, image).
pub(super) fn pulls(log: &[Output]) -> Vec<(String, String)> {
    log.iter()
        .filter_map(|o| match o {
            Output::EnsureImage {
                container, image, ..
            } => Some((container.clone(), image.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn count(log: &[Output], f: impl Fn(&Output) -> bool) -> usize {
    log.iter().filter(|o| f(o)).count()
}

pub(super) fn waiting(cs: &ContainerStatus) -> (String, String) {
    let w = cs
        .state
        .waiting
        .as_ref()
        .unwrap_or_else(|| panic!("{} not waiting: {cs:#?}", cs.name));
    (w.reason.clone(), w.message.clone())
}

pub(super) fn exit_code(cs: &ContainerStatus) -> i32 {
    cs.state
        .terminated
        .as_ref()
        .unwrap_or_else(|| panic!("{} not terminated: {cs:#?}", cs.name))
        .exit_code
}

pub(super) fn is_running(cs: &ContainerStatus) -> bool {
    cs.state.running.is_some()
}
