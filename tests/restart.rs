//! restartPolicy, CrashLoopBackOff and graceful termination, end to end.

mod support;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn restart_policy_always_restarts_and_enters_crash_loop_back_off() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "crash.yaml",
        &sh_pod("crash", "Always", "echo boom; exit 3"),
    );
    // First restart is immediate; the next waits 10 s: CrashLoopBackOff.
    let st = wait_for(20, "CrashLoopBackOff", || {
        a.container("crash", "main")
            .filter(|s| s["state"]["waiting"]["reason"] == "CrashLoopBackOff")
    });
    assert!(st["restartCount"].as_i64().unwrap() >= 1, "{st:#}");
    assert!(
        st["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("back-off 10s restarting failed container=main pod=crash_default("),
        "{st:#}"
    );
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(st["lastState"]["terminated"]["reason"], "Error");
    let table = String::from_utf8(a.cli(&["get", "pods"]).stdout).unwrap();
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    let pod = a.pod("crash").unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
    // Only the latest instance keeps its directory (rootfs upper dir); the
    // first one (instance 1) was discarded when instance 2 started.
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let dir = a.state().join(format!("pods/{uid}/containers/main"));
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], "1", "{left:?}");
    a.wait_trash_empty();
    a.assert_one_thread();
}

#[test]
fn restart_policy_on_failure_does_not_restart_exit_zero_but_restarts_failures() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("ok.yaml", &sh_pod("ok", "OnFailure", "echo done; exit 0"));
    a.apply("bad.yaml", &sh_pod("bad", "OnFailure", "exit 1"));
    let ok = wait_for(20, "ok Succeeded", || {
        a.pod("ok").filter(|p| p["status"]["phase"] == "Succeeded")
    });
    let c = &ok["status"]["containerStatuses"][0];
    assert_eq!(c["restartCount"], 0);
    assert_eq!(c["state"]["terminated"]["reason"], "Completed");
    wait_for(20, "bad restarted", || {
        a.container("bad", "main")
            .filter(|s| s["restartCount"].as_i64().unwrap_or(0) >= 1)
    });
}

#[test]
fn restart_policy_never_leaves_a_failed_container_terminated() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("never.yaml", &sh_pod("never", "Never", "exit 4"));
    let p = wait_for(20, "never Failed", || {
        a.pod("never").filter(|p| p["status"]["phase"] == "Failed")
    });
    let c = &p["status"]["containerStatuses"][0];
    assert_eq!(c["restartCount"], 0);
    assert_eq!(c["state"]["terminated"]["exitCode"], 4);
    assert_eq!(c["state"]["terminated"]["reason"], "Error");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.container("never", "main").unwrap()["restartCount"], 0);
}

#[test]
fn a_container_that_ignores_sigterm_is_killed_after_the_grace_period() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    // terminationGracePeriodSeconds is 2 in sh_pod.
    a.apply(
        "stubborn.yaml",
        &sh_pod(
            "stubborn",
            "Always",
            "trap '' TERM; while true; do sleep 1; done",
        ),
    );
    a.apply(
        "polite.yaml",
        &sh_pod(
            "polite",
            "Always",
            "trap 'exit 0' TERM; while true; do sleep 0.2; done",
        ),
    );
    a.wait_running("stubborn", "main", 30);
    a.wait_running("polite", "main", 30);
    let t0 = Instant::now();
    a.remove("stubborn.yaml");
    a.remove("polite.yaml");
    // While it waits out its grace period the pod carries
    // deletionTimestamp (the end of that period) and `get pods` says
    // Terminating, as kubectl does.
    let p = wait_for(2, "stubborn's deletionTimestamp", || {
        a.pod("stubborn")
            .filter(|p| p["metadata"]["deletionTimestamp"].is_string())
    });
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 2);
    let out = a.cli(&["get", "pods"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("stubborn ") && l.contains("Terminating")),
        "{table}"
    );
    let mut polite_gone = None;
    wait_for(20, "both pods gone", || {
        if polite_gone.is_none() && a.pod("polite").is_none() {
            polite_gone = Some(t0.elapsed());
        }
        a.pod("stubborn").is_none().then_some(())
    });
    let stubborn = t0.elapsed();
    let polite = polite_gone.unwrap_or(stubborn);
    assert!(
        stubborn >= Duration::from_millis(1900),
        "SIGKILL came early: {stubborn:?}"
    );
    assert!(
        stubborn < Duration::from_secs(8),
        "SIGKILL came late: {stubborn:?}"
    );
    assert!(
        polite < Duration::from_millis(1900),
        "SIGTERM was not delivered: {polite:?}"
    );
    let log = a.agent_log();
    assert!(log.contains("Killing"), "no Killing event in the log");
    a.wait_trash_empty();
}

/// terminationMessagePath/Policy, as the kubelet reads them: the file
/// (default `/dev/termination-log`, any path, writable by any user, also
/// with a read-only root), and the log's tail for a failed container with
/// `FallbackToLogsOnError`.
#[test]
fn termination_messages_come_from_the_file_or_the_logs_tail_on_error() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "msg.yaml",
        &sh_pod(
            "msg",
            "Never",
            "printf 'bye from main' > /dev/termination-log",
        ),
    );
    a.apply(
        "fallback.yaml",
        &sh_pod("fallback", "Never", "echo first; echo last >&2; exit 2").replace(
            "    command:",
            "    terminationMessagePolicy: FallbackToLogsOnError\n    command:",
        ),
    );
    a.apply(
        "written.yaml",
        &sh_pod(
            "written",
            "Never",
            "echo logged; echo -n written > /dev/termination-log; exit 3",
        )
        .replace(
            "    command:",
            "    terminationMessagePolicy: FallbackToLogsOnError\n    command:",
        ),
    );
    a.apply(
        "custom.yaml",
        &sh_pod("custom", "Never", "echo -n 'from a user' > /var/why; exit 1").replace(
            "    command:",
            "    terminationMessagePath: /var/why\n    securityContext: {runAsUser: 1000, readOnlyRootFilesystem: true}\n    command:",
        ),
    );
    let message = |name: &str| {
        let p = wait_for(30, &format!("{name} ended"), || {
            a.pod(name)
                .filter(|p| matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        });
        let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        t["message"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(message("msg"), "bye from main");
    let m = message("fallback");
    assert!(m.contains("first\n") && m.contains("last\n"), "{m:?}");
    assert_eq!(message("written"), "written");
    assert_eq!(message("custom"), "from a user");
    // `describe` shows it, as kubectl's `Message:` line.
    let out = String::from_utf8(a.cli(&["describe", "pod", "msg"]).stdout).unwrap();
    assert!(out.contains("bye from main"), "{out}");
}
