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
