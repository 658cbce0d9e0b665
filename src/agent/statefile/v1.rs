//! The saved types of state-file versions 1 and 2, frozen.
//!
//! Versions 1 and 2 encode the lifecycle's part (`node`) the same way: these
//! are copies of [`crate::lifecycle::NodeSnapshot`] and its parts as they
//! were when version 2 was the latest. They must never change: a field
//! added to today's `NodeSnapshot` must not change what a version 1 file
//! means. [`StateV1`](super::StateV1) holds these copies; the latest
//! version ([`StateV2`](super::StateV2)) uses today's types. When today's
//! types change, version 2 must be frozen the same way first (its golden
//! file test in `statefile.rs` says so) and a `V3` appended.
//!
//! Loading converts to today's types ([`From`] impls below), field by
//! field.

use crate::clock;
use crate::lifecycle as live;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub saved_at: Now,
    pub host_ip: Option<String>,
    pub pods: Vec<PodSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodSnapshot {
    pub uid: String,
    pub pod_json: String,
    pub sandbox: SandboxSnap,
    pub sandbox_epoch: u64,
    pub sandbox_backoff: Option<BackoffSnap>,
    pub pod_ip: Option<String>,
    pub start_time_ms: i64,
    pub init_done: u32,
    pub stopping: Option<StoppingSnap>,
    pub replacement: Option<(String, String)>,
    pub terminal: Option<PhaseSnap>,
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

/// A running shim as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub pid: i32,
    pub start_time: u64,
}

impl From<NodeSnapshot> for live::NodeSnapshot {
    fn from(n: NodeSnapshot) -> Self {
        live::NodeSnapshot {
            saved_at: clock::Now {
                mono_ms: n.saved_at.mono_ms,
                wall_ms: n.saved_at.wall_ms,
            },
            host_ip: n.host_ip,
            pods: n.pods.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<PodSnapshot> for live::PodSnapshot {
    fn from(p: PodSnapshot) -> Self {
        live::PodSnapshot {
            uid: p.uid,
            pod_json: p.pod_json,
            sandbox: p.sandbox.into(),
            sandbox_epoch: p.sandbox_epoch,
            sandbox_backoff: p.sandbox_backoff.map(Into::into),
            pod_ip: p.pod_ip,
            start_time_ms: p.start_time_ms,
            init_done: p.init_done,
            stopping: p.stopping.map(|s| live::StoppingSnap {
                why: match s.why {
                    StopWhySnap::Delete => live::StopWhySnap::Delete,
                    StopWhySnap::Replace => live::StopWhySnap::Replace,
                    StopWhySnap::Terminal => live::StopWhySnap::Terminal,
                },
                deadline_mono: s.deadline_mono,
            }),
            replacement: p.replacement,
            terminal: p.terminal.map(|t| match t {
                PhaseSnap::Succeeded => live::PhaseSnap::Succeeded,
                PhaseSnap::Failed => live::PhaseSnap::Failed,
            }),
            conditions: p.conditions,
            init_containers: p.init_containers.into_iter().map(Into::into).collect(),
            containers: p.containers.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<SandboxSnap> for live::SandboxSnap {
    fn from(s: SandboxSnap) -> Self {
        match s {
            SandboxSnap::None => live::SandboxSnap::None,
            SandboxSnap::Creating => live::SandboxSnap::Creating,
            SandboxSnap::Ready => live::SandboxSnap::Ready,
            SandboxSnap::BackOff { retry_at_mono } => live::SandboxSnap::BackOff { retry_at_mono },
            SandboxSnap::Removing => live::SandboxSnap::Removing,
            SandboxSnap::Removed => live::SandboxSnap::Removed,
        }
    }
}

impl From<BackoffSnap> for live::BackoffSnap {
    fn from(b: BackoffSnap) -> Self {
        live::BackoffSnap {
            backoff_ms: b.backoff_ms,
            last_update_mono: b.last_update_mono,
        }
    }
}

impl From<ContainerSnapshot> for live::ContainerSnapshot {
    fn from(c: ContainerSnapshot) -> Self {
        live::ContainerSnapshot {
            name: c.name,
            next_instance: c.next_instance,
            restart_count: c.restart_count,
            current: c.current.map(|i| live::InstanceSnap {
                instance: i.instance,
                image: i.image,
                image_id: i.image_id,
                started_at_ms: i.started_at_ms,
                started_mono: i.started_mono,
                epoch: i.epoch,
                term: i.term.map(Into::into),
            }),
            last_term: c.last_term.map(Into::into),
            step: c.step.into(),
            reason: c.reason,
            backoff: c.backoff.map(Into::into),
            image_backoff: c.image_backoff.map(|(image, b)| (image, b.into())),
            force_restart: c.force_restart,
        }
    }
}

impl From<TermSnap> for live::TermSnap {
    fn from(t: TermSnap) -> Self {
        live::TermSnap {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: t.reason,
            message: t.message,
            started_at_ms: t.started_at_ms,
            finished_at_ms: t.finished_at_ms,
            finished_mono: t.finished_mono,
            container_id: t.container_id,
        }
    }
}

impl From<StepSnap> for live::StepSnap {
    fn from(s: StepSnap) -> Self {
        match s {
            StepSnap::Idle => live::StepSnap::Idle,
            StepSnap::BackOff { until_mono } => live::StepSnap::BackOff { until_mono },
            StepSnap::Pulling { image } => live::StepSnap::Pulling { image },
            StepSnap::PullBackOff {
                retry_at_mono,
                show_at_mono,
            } => live::StepSnap::PullBackOff {
                retry_at_mono,
                show_at_mono,
            },
            StepSnap::Starting {
                instance,
                image,
                image_id,
            } => live::StepSnap::Starting {
                instance,
                image,
                image_id,
            },
            StepSnap::StartRetry { at_mono } => live::StepSnap::StartRetry { at_mono },
            StepSnap::Running => live::StepSnap::Running,
        }
    }
}

impl From<SandboxRecord> for super::SandboxRecord {
    fn from(r: SandboxRecord) -> Self {
        super::SandboxRecord {
            pid: r.pid,
            start_time: r.start_time,
        }
    }
}
