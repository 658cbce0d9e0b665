//! Tests of the lifecycle core with a virtual clock and no I/O.
//!
//! [`Agent`] plays the agent's role (like quinn-proto's `tests/util.rs`):
//! it feeds inputs at a virtual `now`, drains outputs, answers them
//! instantly when told to, and checks protocol invariants on every batch
//! (exits are acknowledged only after a `Persist`, instances strictly
//! increase, at most one probe of a kind is in flight).

mod admission;
mod adopt;
mod agent;
mod creation;
mod hooks;
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
use agent::{Agent, Running};
use std::collections::HashSet;

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
