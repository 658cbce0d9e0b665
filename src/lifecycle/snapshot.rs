//! What the state file keeps of the lifecycle, and how a [`Node`] is rebuilt
//! from it.
//!
//! These saved structs are separate from the live ones and encode with
//! postcard: no `untagged`, `flatten`, `skip_serializing_if` or
//! `deserialize_any` here. Pod specs travel as their JSON text, because the
//! spec types need a self-describing format. Readiness, probe schedules and
//! kills in progress are not kept (the kubelet does not keep them either):
//! after a restart readiness starts false, probes start over, and a pod
//! being torn down is sent SIGTERM again.
//!
//! Mono times are `CLOCK_BOOTTIME` values. When the restore's mono clock is
//! behind the snapshot's, the device rebooted: every stored mono time is
//! then moved back by the difference, keeping ages as they were at save
//! time (and clamped at zero).

use super::backoff::Backoff;
use super::container::{Ctr, Instance, Step, Term};
use super::pod::{PodState, PodView, Sandbox, StopWhy, Stopping};
use super::start::resume_probes;
use super::status::{Phase, PodStatus};
use super::{Input, LifecycleError, Node, Now, Output};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// The latest `now` the node had seen.
    pub saved_at: Now,
    pub host_ip: Option<String>,
    pub pods: Vec<PodSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodSnapshot {
    pub uid: String,
    /// `serde_json::to_string(&pod)`.
    pub pod_json: String,
    pub sandbox: SandboxSnap,
    pub sandbox_epoch: u64,
    pub sandbox_backoff: Option<BackoffSnap>,
    pub pod_ip: Option<String>,
    pub start_time_ms: i64,
    pub init_done: u32,
    pub stopping: Option<StoppingSnap>,
    /// (uid, pod JSON) of the pod that replaces this one once it is gone.
    pub replacement: Option<(String, String)>,
    pub terminal: Option<PhaseSnap>,
    /// (condition type, status, lastTransitionTime wall ms).
    pub conditions: Vec<(String, bool, i64)>,
    pub init_containers: Vec<ContainerSnapshot>,
    pub containers: Vec<ContainerSnapshot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxSnap {
    None,
    Creating,
    Ready,
    BackOff { retry_at_mono: u64 },
    Removing,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopWhySnap {
    Delete,
    Replace,
    Terminal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppingSnap {
    pub why: StopWhySnap,
    pub deadline_mono: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhaseSnap {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffSnap {
    pub backoff_ms: u64,
    pub last_update_mono: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSnapshot {
    pub name: String,
    pub next_instance: u64,
    pub restart_count: i32,
    pub current: Option<InstanceSnap>,
    pub last_term: Option<TermSnap>,
    pub step: StepSnap,
    /// Cached waiting (reason, message).
    pub reason: Option<(String, String)>,
    pub backoff: Option<BackoffSnap>,
    pub image_backoff: Option<(String, BackoffSnap)>,
    pub force_restart: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSnap {
    pub instance: u64,
    pub image: String,
    pub image_id: String,
    pub started_at_ms: i64,
    pub started_mono: u64,
    pub epoch: u64,
    pub term: Option<TermSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSnap {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: String,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub finished_mono: u64,
    pub container_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepSnap {
    Idle,
    BackOff {
        until_mono: u64,
    },
    Pulling {
        image: String,
    },
    PullBackOff {
        retry_at_mono: u64,
        show_at_mono: Option<u64>,
    },
    Starting {
        instance: u64,
        image: String,
        image_id: String,
    },
    StartRetry {
        at_mono: u64,
    },
    Running,
}

fn save_backoff(b: &Backoff) -> BackoffSnap {
    BackoffSnap {
        backoff_ms: b.backoff_ms,
        last_update_mono: b.last_update,
    }
}

fn save_term(t: &Term) -> TermSnap {
    TermSnap {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone(),
        message: t.message.clone(),
        started_at_ms: t.started_at,
        finished_at_ms: t.finished_at,
        finished_mono: t.finished_mono,
        container_id: t.container_id.clone(),
    }
}

fn save_ctr(c: &Ctr) -> ContainerSnapshot {
    ContainerSnapshot {
        name: c.name.clone(),
        next_instance: c.next_instance,
        restart_count: c.restart_count,
        current: c.current.as_ref().map(|i| InstanceSnap {
            instance: i.instance,
            image: i.image.clone(),
            image_id: i.image_id.clone(),
            started_at_ms: i.started_at,
            started_mono: i.started_mono,
            epoch: i.epoch,
            term: i.term.as_ref().map(save_term),
        }),
        last_term: c.last_term.as_ref().map(save_term),
        step: match &c.step {
            Step::Idle => StepSnap::Idle,
            Step::BackOff { until } => StepSnap::BackOff { until_mono: *until },
            Step::Pulling { image } => StepSnap::Pulling {
                image: image.clone(),
            },
            Step::PullBackOff { retry_at, show_at } => StepSnap::PullBackOff {
                retry_at_mono: *retry_at,
                show_at_mono: *show_at,
            },
            Step::Starting {
                instance,
                image,
                image_id,
            } => StepSnap::Starting {
                instance: *instance,
                image: image.clone(),
                image_id: image_id.clone(),
            },
            Step::StartRetry { at } => StepSnap::StartRetry { at_mono: *at },
            Step::Running => StepSnap::Running,
        },
        reason: c.reason.clone(),
        backoff: c.backoff.as_ref().map(save_backoff),
        image_backoff: c
            .image_backoff
            .as_ref()
            .map(|(i, b)| (i.clone(), save_backoff(b))),
        force_restart: c.force_restart,
    }
}

fn save_pod(p: &PodView) -> PodSnapshot {
    let st = &p.st;
    PodSnapshot {
        uid: p.uid.clone(),
        pod_json: json(&p.spec),
        sandbox: match st.sandbox {
            Sandbox::None => SandboxSnap::None,
            Sandbox::Creating => SandboxSnap::Creating,
            Sandbox::Ready => SandboxSnap::Ready,
            Sandbox::BackOff { retry_at } => SandboxSnap::BackOff {
                retry_at_mono: retry_at,
            },
            Sandbox::Removing => SandboxSnap::Removing,
            Sandbox::Removed => SandboxSnap::Removed,
        },
        sandbox_epoch: st.sandbox_epoch,
        sandbox_backoff: st.sandbox_backoff.as_ref().map(save_backoff),
        pod_ip: st.pod_ip.clone(),
        start_time_ms: st.start_time,
        init_done: st.init_done as u32,
        stopping: st.stopping.map(|s| StoppingSnap {
            why: match s.why {
                StopWhy::Delete => StopWhySnap::Delete,
                StopWhy::Replace => StopWhySnap::Replace,
                StopWhy::Terminal => StopWhySnap::Terminal,
            },
            deadline_mono: s.deadline,
        }),
        replacement: st
            .replacement
            .as_ref()
            .map(|(pod, uid)| (uid.clone(), json(pod))),
        terminal: match st.terminal {
            Some(Phase::Succeeded) => Some(PhaseSnap::Succeeded),
            Some(Phase::Failed) => Some(PhaseSnap::Failed),
            _ => None,
        },
        conditions: st.conditions.clone(),
        init_containers: st.init.iter().map(save_ctr).collect(),
        containers: st.app.iter().map(save_ctr).collect(),
    }
}

fn json(pod: &crate::spec::Pod) -> String {
    // Serializing plain data structs to a String cannot fail.
    serde_json::to_string(pod).unwrap_or_default()
}

/// Rebuilds live state, moving every mono time back by `shift` ms.
struct Loader {
    shift: u64,
}

impl Loader {
    fn m(&self, v: u64) -> u64 {
        v.saturating_sub(self.shift)
    }

    fn backoff(&self, b: &BackoffSnap) -> Backoff {
        Backoff {
            backoff_ms: b.backoff_ms,
            last_update: self.m(b.last_update_mono),
        }
    }

    fn term(&self, t: &TermSnap) -> Term {
        Term {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: t.reason.clone(),
            message: t.message.clone(),
            started_at: t.started_at_ms,
            finished_at: t.finished_at_ms,
            finished_mono: self.m(t.finished_mono),
            container_id: t.container_id.clone(),
        }
    }

    fn ctr(&self, s: &ContainerSnapshot) -> Ctr {
        let mut c = Ctr::new(&s.name);
        c.next_instance = s.next_instance;
        c.restart_count = s.restart_count;
        c.current = s.current.as_ref().map(|i| Instance {
            instance: i.instance,
            image: i.image.clone(),
            image_id: i.image_id.clone(),
            started_at: i.started_at_ms,
            started_mono: self.m(i.started_mono),
            epoch: i.epoch,
            term: i.term.as_ref().map(|t| self.term(t)),
        });
        c.last_term = s.last_term.as_ref().map(|t| self.term(t));
        c.step = match &s.step {
            StepSnap::Idle => Step::Idle,
            StepSnap::BackOff { until_mono } => Step::BackOff {
                until: self.m(*until_mono),
            },
            StepSnap::Pulling { image } => Step::Pulling {
                image: image.clone(),
            },
            StepSnap::PullBackOff {
                retry_at_mono,
                show_at_mono,
            } => Step::PullBackOff {
                retry_at: self.m(*retry_at_mono),
                show_at: show_at_mono.map(|v| self.m(v)),
            },
            StepSnap::Starting {
                instance,
                image,
                image_id,
            } => Step::Starting {
                instance: *instance,
                image: image.clone(),
                image_id: image_id.clone(),
            },
            StepSnap::StartRetry { at_mono } => Step::StartRetry {
                at: self.m(*at_mono),
            },
            StepSnap::Running => Step::Running,
        };
        c.reason = s.reason.clone();
        c.backoff = s.backoff.as_ref().map(|b| self.backoff(b));
        c.image_backoff = s
            .image_backoff
            .as_ref()
            .map(|(i, b)| (i.clone(), self.backoff(b)));
        c.force_restart = s.force_restart;
        c
    }

    fn pod(&self, s: &PodSnapshot) -> Result<PodView, LifecycleError> {
        let parse = |uid: &str, text: &str| {
            // Text → one `Value` → typed: the manifests' one instantiation
            // of `Pod`'s `Deserialize` (docs/design-deviations.md §12).
            serde_json::from_slice::<crate::spec::strict::StrictValue>(text.as_bytes())
                .and_then(|v| {
                    crate::serde_path::from_value::<crate::spec::Pod>(v.0)
                        .map_err(<serde_json::Error as serde::de::Error>::custom)
                })
                .map_err(|source| LifecycleError::PodJson {
                    uid: uid.to_string(),
                    source,
                })
        };
        let pod = parse(&s.uid, &s.pod_json)?;
        for (what, stored, spec) in [
            (
                "init containers",
                s.init_containers.len(),
                pod.spec.init_containers.len(),
            ),
            ("containers", s.containers.len(), pod.spec.containers.len()),
        ] {
            if stored != spec {
                return Err(LifecycleError::ContainerMismatch {
                    uid: s.uid.clone(),
                    what,
                    stored,
                    spec,
                });
            }
        }
        let replacement = match &s.replacement {
            Some((uid, text)) => Some((parse(uid, text)?, uid.clone())),
            None => None,
        };
        let st = PodState {
            sandbox: match s.sandbox {
                SandboxSnap::None => Sandbox::None,
                SandboxSnap::Creating => Sandbox::Creating,
                SandboxSnap::Ready => Sandbox::Ready,
                SandboxSnap::BackOff { retry_at_mono } => Sandbox::BackOff {
                    retry_at: self.m(retry_at_mono),
                },
                SandboxSnap::Removing => Sandbox::Removing,
                SandboxSnap::Removed => Sandbox::Removed,
            },
            sandbox_epoch: s.sandbox_epoch,
            sandbox_backoff: s.sandbox_backoff.as_ref().map(|b| self.backoff(b)),
            pod_ip: s.pod_ip.clone(),
            start_time: s.start_time_ms,
            init_done: (s.init_done as usize).min(pod.spec.init_containers.len()),
            init: s.init_containers.iter().map(|c| self.ctr(c)).collect(),
            app: s.containers.iter().map(|c| self.ctr(c)).collect(),
            stopping: s.stopping.map(|x| Stopping {
                why: match x.why {
                    StopWhySnap::Delete => StopWhy::Delete,
                    StopWhySnap::Replace => StopWhy::Replace,
                    StopWhySnap::Terminal => StopWhy::Terminal,
                },
                deadline: self.m(x.deadline_mono),
            }),
            replacement,
            terminal: s.terminal.map(|t| match t {
                PhaseSnap::Succeeded => Phase::Succeeded,
                PhaseSnap::Failed => Phase::Failed,
            }),
            failure: None,
            active_deadline: None,
            conditions: s.conditions.clone(),
        };
        Ok(PodView {
            uid: s.uid.clone(),
            spec: pod,
            status: PodStatus::default(),
            st,
        })
    }
}

impl Node {
    /// Everything the state file must keep (encode it with postcard).
    pub fn snapshot(&self) -> NodeSnapshot {
        NodeSnapshot {
            saved_at: self.last_now,
            host_ip: self.host_ip.clone(),
            pods: self.pods.iter().map(save_pod).collect(),
        }
    }

    /// Rebuilds the node after an agent restart. No container is restarted:
    /// running instances stay running (the agent then feeds the exits the
    /// shims saw meanwhile, or `SandboxGone`). Operations that were in
    /// flight are asked for again (`CreateSandbox`, `EnsureImage`,
    /// `StartContainer` with the same instance, `RemoveSandbox`), probes
    /// start over, and a `StatusChanged` is queued for every pod.
    pub fn restore(
        snapshot: NodeSnapshot,
        node_name: String,
        now: Now,
    ) -> Result<Node, LifecycleError> {
        let loader = Loader {
            shift: snapshot.saved_at.mono_ms.saturating_sub(now.mono_ms),
        };
        let mut pods: Vec<PodView> = Vec::with_capacity(snapshot.pods.len());
        for s in &snapshot.pods {
            let p = loader.pod(s)?;
            if let Some(dup) = pods.iter().find(|q| {
                q.uid == p.uid || (q.namespace() == p.namespace() && q.name() == p.name())
            }) {
                return Err(LifecycleError::Duplicate {
                    uid: dup.uid.clone(),
                    namespace: dup.namespace().to_string(),
                    name: dup.name().to_string(),
                });
            }
            pods.push(p);
        }
        let mut reissue = Vec::new();
        for p in &mut pods {
            p.arm_deadline(now);
            let uid = p.uid.clone();
            match p.st.sandbox {
                Sandbox::Creating => reissue.push(Output::CreateSandbox { uid: uid.clone() }),
                Sandbox::Removing => reissue.push(Output::RemoveSandbox { uid: uid.clone() }),
                _ => {}
            }
            let spec = &p.spec.spec;
            let specs = spec.init_containers.iter().chain(&spec.containers);
            let n_init = spec.init_containers.len();
            let ctrs = p.st.init.iter_mut().chain(p.st.app.iter_mut());
            for (i, (c, cs)) in ctrs.zip(specs).enumerate() {
                match &c.step {
                    Step::Pulling { image } => reissue.push(Output::EnsureImage {
                        uid: uid.clone(),
                        container: c.name.clone(),
                        image: image.clone(),
                        policy: super::pull_policy(image, cs.image_pull_policy),
                    }),
                    Step::Starting { instance, .. } => reissue.push(Output::StartContainer {
                        uid: uid.clone(),
                        container: c.name.clone(),
                        instance: *instance,
                    }),
                    Step::Running => resume_probes(c, cs, i < n_init, now),
                    _ => {}
                }
            }
        }
        let mut node = Node::from_parts(node_name, snapshot.host_ip, pods, now);
        for o in reissue {
            node.push_output(o);
        }
        node.handle(Input::Tick, now);
        Ok(node)
    }
}
