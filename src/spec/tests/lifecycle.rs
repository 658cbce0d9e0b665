//! Sidecars, lifecycle hooks, `stopSignal` and `activeDeadlineSeconds`.

use super::validate::{base, container, invalid, valid};
use super::{MINIMAL, load_one};
use crate::spec::*;

fn hook(exec: bool, sleep: Option<i64>) -> Probe {
    Probe {
        exec: exec.then(|| ExecAction {
            command: vec!["true".into()],
        }),
        sleep: sleep.map(|seconds| SleepAction { seconds }),
        ..Probe::default()
    }
}

#[test]
fn a_manifest_with_hooks_a_sidecar_and_a_deadline_loads() {
    let text = MINIMAL.replace(
        "  containers:",
        "  activeDeadlineSeconds: 60\n  initContainers:\n  - name: side\n    image: x\n    \
         restartPolicy: Always\n    readinessProbe: {exec: {command: [\"true\"]}}\n  containers:",
    ) + "    lifecycle:\n      postStart: {exec: {command: [sh, -c, date]}}\n      \
         preStop: {sleep: {seconds: 5}}\n      stopSignal: SIGUSR1\n";
    let p = load_one(&text).unwrap();
    assert!(p.spec.init_containers[0].is_sidecar());
    assert_eq!(p.spec.active_deadline_seconds, Some(60));
    let l = p.spec.containers[0].lifecycle.as_ref().unwrap();
    assert_eq!(
        l.pre_stop.as_ref().unwrap().sleep,
        Some(SleepAction { seconds: 5 })
    );
    assert_eq!(l.stop_signal.as_deref(), Some("SIGUSR1"));
}

#[test]
fn restart_policy_is_only_always_and_only_on_init_containers() {
    let mut p = base();
    p.spec.containers[0].restart_policy = Some(RestartPolicy::Always);
    invalid(
        &p,
        "spec.containers[0].restartPolicy",
        "may not be set for non-init containers",
    );
    let mut p = base();
    let mut side = container("side");
    side.restart_policy = Some(RestartPolicy::Never);
    p.spec.init_containers = vec![side.clone()];
    invalid(
        &p,
        "spec.initContainers[0].restartPolicy",
        "supported values: \"Always\"",
    );
    side.restart_policy = Some(RestartPolicy::Always);
    p.spec.init_containers = vec![side];
    valid(&p);
}

#[test]
fn only_sidecars_among_init_containers_take_hooks_and_probes() {
    let mut p = base();
    let mut init = container("init");
    init.lifecycle = Some(Lifecycle {
        post_start: Some(hook(true, None)),
        ..Lifecycle::default()
    });
    init.startup_probe = Some(hook(true, None));
    p.spec.init_containers = vec![init.clone()];
    invalid(
        &p,
        "spec.initContainers[0].lifecycle",
        "must not be set for init containers",
    );
    init.restart_policy = Some(RestartPolicy::Always);
    p.spec.init_containers = vec![init];
    valid(&p);
}

#[test]
fn a_hook_has_exactly_one_handler_and_a_sleep_within_the_grace_period() {
    let mut p = base();
    let set = |p: &mut Pod, h: Probe| {
        p.spec.containers[0].lifecycle = Some(Lifecycle {
            pre_stop: Some(h),
            ..Lifecycle::default()
        });
    };
    set(&mut p, hook(false, None));
    invalid(
        &p,
        "spec.containers[0].lifecycle.preStop",
        "must specify a handler",
    );
    set(&mut p, hook(true, Some(1)));
    invalid(
        &p,
        "spec.containers[0].lifecycle.preStop",
        "more than one handler",
    );
    set(&mut p, hook(false, Some(31)));
    invalid(
        &p,
        "spec.containers[0].lifecycle.preStop.sleep.seconds",
        "less than terminationGracePeriodSeconds (30)",
    );
    set(&mut p, hook(false, Some(30)));
    valid(&p);
    let mut empty = hook(true, None);
    empty.exec = Some(ExecAction::default());
    set(&mut p, empty);
    invalid(
        &p,
        "spec.containers[0].lifecycle.preStop.exec.command",
        "must not be empty",
    );
}

#[test]
fn stop_signal_must_be_a_signal_name() {
    let mut p = base();
    for (sig, ok) in [
        ("SIGUSR1", true),
        ("SIGRTMIN+3", true),
        ("SIGKILL", true),
        ("USR1", false),
        ("10", false),
        ("SIGNOPE", false),
    ] {
        p.spec.containers[0].lifecycle = Some(Lifecycle {
            stop_signal: Some(sig.into()),
            ..Lifecycle::default()
        });
        if ok {
            valid(&p);
        } else {
            invalid(
                &p,
                "spec.containers[0].lifecycle.stopSignal",
                "not a signal name",
            );
        }
    }
}

#[test]
fn signal_numbers_as_docker_parses_stopsignal() {
    for (s, n) in [
        ("SIGTERM", Some(15)),
        ("term", Some(15)),
        ("SIGQUIT", Some(3)),
        ("9", Some(9)),
        ("SIGRTMIN", Some(34)),
        ("SIGRTMIN+2", Some(36)),
        ("SIGRTMAX-1", Some(63)),
        ("SIGRTMAX", Some(64)),
        ("SIGRTMIN+31", None),
        ("SIGRTMIN-1", None),
        ("0", None),
        ("65", None),
        ("", None),
    ] {
        assert_eq!(signal_number(s), n, "{s}");
    }
}

#[test]
fn active_deadline_seconds_must_be_positive() {
    let mut p = base();
    p.spec.active_deadline_seconds = Some(0);
    invalid(&p, "spec.activeDeadlineSeconds", "must be between 1 and");
    p.spec.active_deadline_seconds = Some(1);
    valid(&p);
}
