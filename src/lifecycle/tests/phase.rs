//! `getPhase`, table-driven like the kubelet's `TestPodPhaseWithRestart*`.

use super::*;
use crate::lifecycle::status::{ContainerState, StateRunning, StateTerminated, StateWaiting};
use crate::lifecycle::{Phase, get_phase};
use Phase::*;
use RestartPolicy::{Always, Never, OnFailure};

fn st(name: &str, state: ContainerState, last: ContainerState) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state,
        last_state: last,
        ..ContainerStatus::default()
    }
}

fn term(code: i32) -> ContainerState {
    ContainerState {
        terminated: Some(StateTerminated {
            exit_code: code,
            ..StateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

fn running(name: &str) -> ContainerStatus {
    let s = ContainerState {
        running: Some(StateRunning::default()),
        ..ContainerState::default()
    };
    st(name, s, ContainerState::default())
}

fn wait_state() -> ContainerState {
    ContainerState {
        waiting: Some(StateWaiting::default()),
        ..ContainerState::default()
    }
}

fn waiting_(name: &str) -> ContainerStatus {
    st(name, wait_state(), ContainerState::default())
}

/// Waiting to restart after an exit with `code`.
fn backoff(name: &str, code: i32) -> ContainerStatus {
    st(name, wait_state(), term(code))
}

fn exited(name: &str, code: i32) -> ContainerStatus {
    st(name, term(code), ContainerState::default())
}

fn spec(policy: RestartPolicy, init: &[&str]) -> PodSpec {
    PodSpec {
        containers: vec![container("c1", "i"), container("c2", "i")],
        init_containers: init.iter().map(|n| container(n, "i")).collect(),
        restart_policy: policy,
        ..PodSpec::default()
    }
}

fn check(
    policy: RestartPolicy,
    init: &[&str],
    cases: Vec<(&str, Vec<ContainerStatus>, bool, Phase)>,
) {
    let spec = spec(policy, init);
    for (name, statuses, terminal, want) in cases {
        let all: Vec<&ContainerStatus> = statuses.iter().collect();
        assert_eq!(get_phase(&spec, &all, terminal), want, "{policy:?}: {name}");
    }
}

#[test]
fn phase_with_restart_always() {
    check(
        Always,
        &[],
        vec![
            ("waiting", vec![], false, Pending),
            (
                "all running",
                vec![running("c1"), running("c2")],
                false,
                Running,
            ),
            (
                "all stopped",
                vec![exited("c1", 0), exited("c2", 0)],
                false,
                Running,
            ),
            (
                "all succeeded, pod terminal",
                vec![exited("c1", 0), exited("c2", 0)],
                true,
                Succeeded,
            ),
            (
                "all stopped, pod terminal",
                vec![exited("c1", 0), exited("c2", 1)],
                true,
                Failed,
            ),
            (
                "mixed state #1",
                vec![running("c1"), exited("c2", 0)],
                false,
                Running,
            ),
            ("mixed state #2", vec![running("c1")], false, Pending),
            (
                "mixed state #3",
                vec![running("c1"), waiting_("c2")],
                false,
                Pending,
            ),
            (
                "backoff crashloop",
                vec![running("c1"), backoff("c2", 1)],
                false,
                Running,
            ),
            (
                "all in crashloop",
                vec![backoff("c1", 1), backoff("c2", 0)],
                false,
                Running,
            ),
        ],
    );
}

#[test]
fn phase_with_restart_never() {
    check(
        Never,
        &[],
        vec![
            ("waiting", vec![], false, Pending),
            (
                "all running",
                vec![running("c1"), running("c2")],
                false,
                Running,
            ),
            (
                "all succeeded",
                vec![exited("c1", 0), exited("c2", 0)],
                false,
                Succeeded,
            ),
            (
                "all failed",
                vec![exited("c1", 1), exited("c2", 2)],
                false,
                Failed,
            ),
            (
                "one failed",
                vec![exited("c1", 0), exited("c2", 2)],
                false,
                Failed,
            ),
            (
                "mixed state #1",
                vec![running("c1"), exited("c2", 0)],
                false,
                Running,
            ),
            ("mixed state #2", vec![running("c1")], false, Pending),
            (
                "mixed state #3",
                vec![running("c1"), waiting_("c2")],
                false,
                Pending,
            ),
        ],
    );
}

#[test]
fn phase_with_restart_on_failure() {
    check(
        OnFailure,
        &[],
        vec![
            ("waiting", vec![], false, Pending),
            (
                "all running",
                vec![running("c1"), running("c2")],
                false,
                Running,
            ),
            (
                "all succeeded",
                vec![exited("c1", 0), exited("c2", 0)],
                false,
                Succeeded,
            ),
            (
                "all failed",
                vec![exited("c1", 1), exited("c2", 2)],
                false,
                Running,
            ),
            (
                "all failed, pod terminal",
                vec![exited("c1", 1), exited("c2", 2)],
                true,
                Failed,
            ),
            (
                "mixed state #1",
                vec![running("c1"), exited("c2", 0)],
                false,
                Running,
            ),
            ("mixed state #2", vec![running("c1")], false, Pending),
            (
                "mixed state #3",
                vec![running("c1"), waiting_("c2")],
                false,
                Pending,
            ),
            (
                "backoff crashloop",
                vec![running("c1"), backoff("c2", 1)],
                false,
                Running,
            ),
        ],
    );
}

#[test]
fn phase_with_restart_always_and_init_containers() {
    check(
        Always,
        &["i1"],
        vec![
            ("empty, waiting", vec![], false, Pending),
            ("init running", vec![running("i1")], false, Pending),
            (
                "init terminated non-zero",
                vec![exited("i1", 1)],
                false,
                Pending,
            ),
            (
                "init waiting, terminated zero",
                vec![backoff("i1", 0)],
                false,
                Pending,
            ),
            (
                "init waiting, terminated non-zero",
                vec![backoff("i1", 1)],
                false,
                Pending,
            ),
            (
                "init waiting, not terminated",
                vec![waiting_("i1")],
                false,
                Pending,
            ),
            (
                "init succeeded",
                vec![exited("i1", 0), running("c1"), running("c2")],
                false,
                Running,
            ),
            (
                "init rerunning after a new sandbox, app already ran",
                vec![running("i1"), exited("c1", 137), exited("c2", 137)],
                false,
                Running,
            ),
        ],
    );
}

#[test]
fn phase_with_restart_never_and_init_containers() {
    check(
        Never,
        &["i1"],
        vec![
            ("empty, waiting", vec![], false, Pending),
            ("init running", vec![running("i1")], false, Pending),
            (
                "init terminated non-zero",
                vec![exited("i1", 1)],
                false,
                Failed,
            ),
            (
                "init waiting, terminated non-zero",
                vec![backoff("i1", 1)],
                false,
                Failed,
            ),
            (
                "init waiting, not terminated",
                vec![waiting_("i1")],
                false,
                Pending,
            ),
            (
                "init succeeded",
                vec![exited("i1", 0), running("c1"), running("c2")],
                false,
                Running,
            ),
            (
                "all succeeded",
                vec![exited("i1", 0), exited("c1", 0), exited("c2", 0)],
                false,
                Succeeded,
            ),
        ],
    );
}

#[test]
fn phase_with_restart_on_failure_and_init_containers() {
    check(
        OnFailure,
        &["i1"],
        vec![
            (
                "init terminated non-zero",
                vec![exited("i1", 1)],
                false,
                Pending,
            ),
            (
                "init waiting, terminated non-zero",
                vec![backoff("i1", 1)],
                false,
                Pending,
            ),
            (
                "init failed, app waiting",
                vec![backoff("i1", 1), waiting_("c1"), waiting_("c2")],
                false,
                Pending,
            ),
            (
                "init succeeded",
                vec![exited("i1", 0), running("c1"), running("c2")],
                false,
                Running,
            ),
        ],
    );
}
