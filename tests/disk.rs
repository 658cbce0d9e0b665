//! Disk pressure (issue 7, finding 6): `resources.limits.ephemeral-storage`
//! is accounted (writable layer + logs) and a pod over it is evicted with
//! the kubelet's reason, while a pod within its limit keeps running.

mod support;
use support::*;

fn limited_pod(name: &str, limit: &str, script: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", {script:?}]
    resources:
      limits: {{ephemeral-storage: {limit}}}
"#
    )
}

#[test]
fn a_pod_writing_past_its_ephemeral_storage_limit_is_evicted_and_a_pod_within_runs_on() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start_with(&["--eviction-interval", "2"]);
    a.apply(
        "tidy.yaml",
        &limited_pod(
            "tidy",
            "2Mi",
            "dd if=/dev/zero of=/small bs=1024 count=512 && while true; do sleep 1; done",
        ),
    );
    a.apply(
        "hog.yaml",
        &limited_pod(
            "hog",
            "2Mi",
            "dd if=/dev/zero of=/big bs=1048576 count=4 && sync && while true; do sleep 1; done",
        ),
    );
    a.wait_running("tidy", "main", 30);
    // Measured every 2 s: evicted within a few rounds and the stop.
    let hog = wait_for(20, "hog evicted", || {
        let p = a.pod("hog")?;
        (p["status"]["phase"] == "Failed").then_some(p)
    });
    assert_eq!(hog["status"]["reason"], "Evicted", "{hog:#}");
    assert_eq!(
        hog["status"]["message"],
        "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi.",
        "{hog:#}"
    );
    // Its writable layer goes with its sandbox: the space is given back.
    let uid = hog["metadata"]["uid"].as_str().unwrap().to_string();
    let pod_dir = a.state().join("pods").join(&uid);
    wait_for(20, "the evicted pod's dir removed", || {
        (!pod_dir.exists()).then_some(())
    });
    // The pod within its limit was measured too (several rounds) and runs on.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let tidy = a.pod("tidy").unwrap();
    assert_eq!(tidy["status"]["phase"], "Running", "{tidy:#}");
    assert_eq!(
        tidy["status"]["containerStatuses"][0]["restartCount"], 0,
        "{tidy:#}"
    );
    let log = a.agent_log();
    assert!(log.contains("evicted"), "{log}");
    assert!(!log.contains("measuring ephemeral storage"), "{log}");
    a.assert_one_thread();
}

/// Unmounts (lazily) what the test mounted, after the agent is dropped.
struct Unmount(Option<std::path::PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&p)
                .status();
        }
    }
}

/// The issue's attack: a container fills its writable layer until the
/// state dir's filesystem (a 32 MiB tmpfs made by the test) is full.
/// The BestEffort pod is evicted for `nodefs.available`, a Burstable pod
/// within its request runs on, state saves still succeed (the reserve),
/// and the eviction survives an agent restart.
#[test]
fn a_pod_filling_the_state_filesystem_is_evicted_for_node_pressure_and_state_still_saves() {
    if !root_or_skip() {
        return;
    }
    // Declared first: dropped after the agent.
    let mut unmount = Unmount(None);
    let mut a = Agent::start_with(&[
        "--eviction-interval",
        "1",
        "--eviction-imagefs-available",
        "0",
    ]);
    a.kill9();
    // Move the state dir (images imported) onto a small filesystem.
    let state = a.state();
    let orig = a.dir.path().join("state.orig");
    std::fs::rename(&state, &orig).unwrap();
    std::fs::create_dir(&state).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m,mode=0700", "picolet-test"])
        .arg(&state)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount tmpfs");
    unmount.0 = Some(state.clone());
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", orig.display()))
        .arg(&state)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a");
    a.spawn();

    a.apply(
        "keeper.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: keeper}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "while true; do sleep 1; done"]
    resources:
      requests: {{cpu: 10m, ephemeral-storage: 1Mi}}
"#
        ),
    );
    a.wait_running("keeper", "main", 30);
    a.apply(
        "hog.yaml",
        &sh_pod(
            "hog",
            "Always",
            "dd if=/dev/zero of=/fill bs=1048576 count=64; while true; do sleep 1; done",
        ),
    );
    let hog = wait_for(30, "hog evicted", || {
        let p = a.pod("hog")?;
        (p["status"]["phase"] == "Failed").then_some(p)
    });
    assert_eq!(hog["status"]["reason"], "Evicted", "{hog:#}");
    let msg = hog["status"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("The node was low on resource: ephemeral-storage.")
            && msg.ends_with("(nodefs.available)."),
        "{msg}"
    );
    // The hog's layer goes: space comes back.
    let uid = hog["metadata"]["uid"].as_str().unwrap().to_string();
    wait_for(20, "the evicted pod's dir removed", || {
        (!state.join("pods").join(&uid).exists()).then_some(())
    });
    let keeper = a.pod("keeper").unwrap();
    assert_eq!(keeper["status"]["phase"], "Running", "{keeper:#}");
    let log = a.agent_log();
    assert!(log.contains("DiskPressure"), "{log}");
    // Every save succeeded: none failed outright (a retry after freeing
    // the reserve is fine).
    for line in log.lines().filter(|l| l.contains("saving state:")) {
        assert!(line.contains("retrying"), "{line}");
    }
    // The eviction was saved: after a restart the hog is still Failed.
    a.kill9();
    a.spawn();
    let hog = wait_for(10, "hog listed", || a.pod("hog"));
    assert_eq!(hog["status"]["phase"], "Failed", "{hog:#}");
    a.wait_running("keeper", "main", 10);
}
