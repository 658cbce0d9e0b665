//! [`Agent`]: the fake agent that drives a [`Node`] in tests.

use super::T0;
use crate::lifecycle::{ContainerStatus, Input, Node, Now, Output, PodStatus, ProbeKind};
use crate::spec::Pod;
use std::collections::{HashMap, VecDeque};

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
                    let back: crate::lifecycle::NodeSnapshot =
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

    /// The last persisted snapshot holds this exit (or a later instance),
    /// or the exit is of a container the pod's spec lacks (nothing to hold).
    fn exit_is_persisted(&self, uid: &str, container: &str, instance: u64) -> bool {
        let Some(bytes) = &self.persisted else {
            return false;
        };
        let snap: crate::lifecycle::NodeSnapshot = postcard::from_bytes(bytes).unwrap();
        let Some(pod) = snap.pods.iter().find(|p| p.uid == uid) else {
            return true;
        };
        let c = pod
            .containers
            .iter()
            .chain(&pod.init_containers)
            .find(|c| c.name == container);
        let Some(c) = c else {
            return true;
        };
        c.current.as_ref().is_some_and(|cur| {
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
                            message: String::new(),
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
            message: String::new(),
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
