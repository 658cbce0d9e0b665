//! The agent dies, pods do not: kill -9 and restart, exits while it was
//! down, and a corrupt state file.

mod support;
use std::time::Duration;
use support::*;

/// Host PIDs of processes whose cmdline is exactly `argv`.
fn pids_of(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .as_deref()
                == Some(&want[..])
        })
        .collect()
}

#[test]
fn kill_9_of_the_agent_keeps_containers_and_reports_exits_seen_while_down() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    a.apply("keep.yaml", &sh_pod("keep", "Always", "exec sleep 424242"));
    a.apply("dies.yaml", &sh_pod("dies", "Never", "sleep 3; exit 7"));
    let before = a.wait_running("keep", "main", 30);
    a.wait_running("dies", "main", 30);
    let pids = pids_of(&["sleep", "424242"]);
    assert_eq!(pids.len(), 1, "expected one sleep 424242, got {pids:?}");

    a.kill9();
    std::thread::sleep(Duration::from_secs(4)); // `dies` exits 7 meanwhile
    assert_eq!(
        pids_of(&["sleep", "424242"]),
        pids,
        "container died with the agent"
    );
    a.spawn();

    let after = a.wait_running("keep", "main", 10);
    assert_eq!(
        after["state"]["running"]["startedAt"],
        before["state"]["running"]["startedAt"]
    );
    assert_eq!(after["restartCount"], before["restartCount"]);
    assert_eq!(after["containerID"], before["containerID"]);
    assert_eq!(
        pids_of(&["sleep", "424242"]),
        pids,
        "container restarted after adoption"
    );
    let dead = wait_for(10, "dies reported with its exit code", || {
        a.container("dies", "main")
            .filter(|s| s["state"]["terminated"].is_object())
    });
    assert_eq!(dead["state"]["terminated"]["exitCode"], 7, "{dead:#}");
    assert_eq!(a.pod("dies").unwrap()["status"]["phase"], "Failed");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pids_of(&["sleep", "424242"]), pids);
    a.assert_one_thread();
}

#[test]
fn a_corrupt_state_file_is_recovered_from_the_previous_copy() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    a.apply("keep.yaml", &sh_pod("keep2", "Always", "exec sleep 434343"));
    let before = a.wait_running("keep2", "main", 30);
    // Make sure a .prev exists (several saves happened while starting).
    let prev = a.state().join("state.bin.prev");
    wait_for(10, "state.bin.prev", || prev.exists().then_some(()));
    let pids = pids_of(&["sleep", "434343"]);
    a.kill9();
    let state = a.state().join("state.bin");
    let mut bytes = std::fs::read(&state).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    bytes[mid + 1] ^= 0x55;
    std::fs::write(&state, &bytes).unwrap();
    a.spawn();
    wait_for(10, "recovery message", || {
        a.agent_log().contains("state.bin.prev").then_some(())
    });
    let after = a.wait_running("keep2", "main", 10);
    assert_eq!(
        after["state"]["running"]["startedAt"],
        before["state"]["running"]["startedAt"]
    );
    assert_eq!(after["restartCount"], before["restartCount"]);
    assert_eq!(pids_of(&["sleep", "434343"]), pids);
}

#[test]
fn losing_both_state_files_adopts_desired_shims_and_stops_the_rest() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    a.apply(
        "wanted.yaml",
        &sh_pod("wanted", "Always", "exec sleep 454545"),
    );
    a.apply(
        "unwanted.yaml",
        &sh_pod("unwanted", "Always", "exec sleep 464646"),
    );
    let before = a.wait_running("wanted", "main", 30);
    a.wait_running("unwanted", "main", 30);
    let wanted = pids_of(&["sleep", "454545"]);
    assert_eq!(wanted.len(), 1);
    assert_eq!(pids_of(&["sleep", "464646"]).len(), 1);
    a.kill9();
    std::fs::remove_file(a.state().join("state.bin")).unwrap();
    let _ = std::fs::remove_file(a.state().join("state.bin.prev"));
    a.remove("unwanted.yaml");
    a.spawn();
    let after = a.wait_running("wanted", "main", 10);
    assert_eq!(
        after["state"]["running"]["startedAt"],
        before["state"]["running"]["startedAt"]
    );
    assert_eq!(
        pids_of(&["sleep", "454545"]),
        wanted,
        "the desired pod was restarted"
    );
    wait_for(10, "the unwanted pod's container to stop", || {
        pids_of(&["sleep", "464646"]).is_empty().then_some(())
    });
    assert!(a.pod("unwanted").is_none());
    a.assert_one_thread();
}

/// `state.bin.prev` saved while the pod's sandbox was still being created,
/// `state.bin` corrupt: the core restores a sandbox it thinks is not up
/// yet, while the agent has already adopted the pod's running shim. The
/// shim must be kept (the sandbox is ready), not stopped as a stray.
#[test]
fn a_previous_state_saved_before_the_sandbox_was_up_keeps_the_adopted_shim() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    let state = a.state().join("state.bin");
    let before_apply = std::fs::read(&state).unwrap_or_default();
    a.apply(
        "early.yaml",
        &sh_pod("early", "Always", "exec sleep 474747"),
    );
    // The first save that holds the pod: the one of the batch that admitted
    // it and asked for its sandbox.
    let early = wait_for(10, "a save with the pod", || {
        std::fs::read(&state)
            .ok()
            .filter(|b| *b != before_apply && b.windows(5).any(|w| w == b"early"))
    });
    let before = a.wait_running("early", "main", 30);
    let pids = pids_of(&["sleep", "474747"]);
    assert_eq!(pids.len(), 1);
    a.kill9();
    std::fs::write(a.state().join("state.bin.prev"), &early).unwrap();
    let mut bytes = std::fs::read(&state).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&state, &bytes).unwrap();
    a.spawn();
    wait_for(10, "recovery message", || {
        a.agent_log().contains("state.bin.prev").then_some(())
    });
    let after = a.wait_running("early", "main", 10);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after2 = a.wait_running("early", "main", 10);
    assert_eq!(after2["restartCount"], after["restartCount"]);
    assert_eq!(
        pids_of(&["sleep", "474747"]),
        pids,
        "the container was restarted"
    );
    assert_eq!(
        after2["state"]["running"]["startedAt"],
        before["state"]["running"]["startedAt"]
    );
}

#[test]
fn ps_shows_a_shim_as_picolet_shim_namespace_slash_pod() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "titled.yaml",
        &sh_pod("titled", "Always", "exec sleep 484848"),
    );
    a.wait_running("titled", "main", 30);
    // argv is exactly `picolet shim default/titled`; the config path is
    // not on the command line (it is in the shim's environment).
    let shims = pids_of(&["picolet", "shim", "default/titled"]);
    assert_eq!(shims.len(), 1, "expected one titled shim, got {shims:?}");
    let environ = std::fs::read(format!("/proc/{}/environ", shims[0])).unwrap();
    let config = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"PICOLET_SHIM_CONFIG="))
        .map(|v| String::from_utf8_lossy(v).into_owned());
    assert!(
        config.as_deref().is_some_and(|c| c.ends_with("/shim.json")),
        "{config:?}"
    );
}
