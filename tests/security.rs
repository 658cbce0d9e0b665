//! securityContext end to end: users, runAsNonRoot, read-only root,
//! capabilities, no_new_privs.

mod support;
use support::*;

fn pod(name: &str, sc: &str, script: &str) -> String {
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
    securityContext: {sc}
"#
    )
}

#[test]
fn run_as_user_and_group_apply_with_no_capabilities_left() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "u.yaml",
        &pod(
            "user",
            "{runAsUser: 1000, runAsGroup: 1001}",
            "while true; do sleep 1; done",
        ),
    );
    a.wait_running("user", "main", 30);
    let (_, id) = a.exec("user", "main", &["id"]);
    assert!(id.contains("uid=1000") && id.contains("gid=1001"), "{id}");
    let (_, st) = a.exec(
        "user",
        "main",
        &["grep", "-E", "CapEff|NoNewPrivs", "/proc/self/status"],
    );
    assert!(st.contains("CapEff:\t0000000000000000"), "{st}");
    assert!(st.contains("NoNewPrivs:\t1"), "{st}");
}

#[test]
fn run_as_non_root_with_a_root_image_is_a_config_error() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "nr.yaml",
        &pod("nonroot", "{runAsNonRoot: true}", "sleep 100"),
    );
    let s = wait_for(20, "CreateContainerConfigError", || {
        a.container("nonroot", "main")
            .filter(|s| s["state"]["waiting"]["reason"] == "CreateContainerConfigError")
    });
    assert!(
        s["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("runAsNonRoot"),
        "{s:#}"
    );
}

#[test]
fn read_only_root_filesystem_refuses_writes_and_capabilities_can_be_dropped() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "ro.yaml",
        &pod(
            "ro",
            "{readOnlyRootFilesystem: true, capabilities: {drop: [NET_RAW, CHOWN]}}",
            "while true; do sleep 1; done",
        ),
    );
    a.wait_running("ro", "main", 30);
    let (code, out) = a.exec("ro", "main", &["touch", "/x"]);
    assert_ne!(code, 0, "writing / must fail: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let (_, st) = a.exec("ro", "main", &["grep", "CapBnd", "/proc/self/status"]);
    // containerd's 14 (0xa80425fb) minus CHOWN (bit 0) and NET_RAW (bit 13).
    assert!(st.contains("CapBnd:\t00000000a80405fa"), "{st}");
    let (_, st) = a.exec("ro", "main", &["grep", "NoNewPrivs", "/proc/self/status"]);
    assert!(st.contains("NoNewPrivs:\t1"), "{st}");
}
