//! Static pods from the manifests dir: add, edit, remove, invalid input.

mod support;
use support::*;

#[test]
fn an_invalid_manifest_names_the_field_and_leaves_other_pods_alone() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("good.yaml", &sh_pod("good", "Always", "exec sleep 100000"));
    let before = a.wait_running("good", "main", 30);
    a.apply(
        "bad.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers:
  - name: a
    image: picolet.test/busybox:1
  - name: b
    image: picolet.test/busybox:1
    lifecycle:
      preStop:
        tcpSocket: {port: 80}
"#,
    );
    let err = wait_for(5, "the refusal", || {
        let out = a.cli(&["get", "pods"]);
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        e.contains("bad.yaml").then_some(e)
    });
    assert!(
        err.contains("spec.containers[1].lifecycle.preStop.tcpSocket"),
        "{err}"
    );
    assert!(a.pod("bad").is_none());
    // A broken edit of a running pod's own file changes nothing either.
    a.apply(
        "good.yaml",
        &sh_pod("good", "Always", "exec sleep 100000")
            .replace("restartPolicy: Always", "restartPolicy: Sometimes"),
    );
    let d = wait_for(5, "describe shows the error", || {
        let d = String::from_utf8(a.cli(&["describe", "pod", "good"]).stdout).unwrap();
        d.contains("restartPolicy").then_some(d)
    });
    assert!(d.contains("Manifest Error"), "{d}");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = a.container("good", "main").unwrap();
    assert_eq!(
        after["state"]["running"]["startedAt"],
        before["state"]["running"]["startedAt"]
    );
    assert_eq!(after["restartCount"], 0);
    a.assert_one_thread();
}

#[test]
fn an_image_only_edit_restarts_just_that_container_and_removal_stops_the_pod() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    let pod = |img_b: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: edit}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: picolet.test/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  - name: b
    image: {img_b}
    command: ["sh", "-c", "cat /etc/picolet-image-version; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#
        )
    };
    a.apply("edit.yaml", &pod("picolet.test/busybox:1"));
    let a0 = a.wait_running("edit", "a", 30);
    a.wait_running("edit", "b", 30);
    let uid = a.pod("edit").unwrap()["metadata"]["uid"].clone();
    a.apply("edit.yaml", &pod("picolet.test/busybox:2"));
    let b1 = wait_for(20, "b restarted with image 2", || {
        a.container("edit", "b").filter(|s| {
            s["image"].as_str().unwrap_or("").ends_with(":2") && s["state"]["running"].is_object()
        })
    });
    assert_eq!(b1["restartCount"], 1);
    let a1 = a.container("edit", "a").unwrap();
    assert_eq!(a1["restartCount"], 0);
    assert_eq!(
        a1["state"]["running"]["startedAt"],
        a0["state"]["running"]["startedAt"]
    );
    assert_eq!(
        a.pod("edit").unwrap()["metadata"]["uid"],
        uid,
        "pod must not be recreated"
    );
    let out = wait_for(10, "b's log shows image 2", || {
        let o = String::from_utf8(a.cli(&["logs", "edit", "-c", "b"]).stdout).unwrap();
        o.contains('2').then_some(o)
    });
    assert_eq!(out.trim(), "2");

    a.remove("edit.yaml");
    wait_for(15, "pod removed", || a.pod("edit").is_none().then_some(()));
    assert!(!a.state().join("pods").join(uid.as_str().unwrap()).exists());
    a.assert_one_thread();
}
