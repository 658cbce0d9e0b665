//! Pull policies against the local image store, and image config.

mod support;
use support::*;

fn pod(name: &str, image: &str, policy: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    imagePullPolicy: {policy}
    command: ["sleep", "1000"]
"#
    )
}

#[test]
fn never_with_a_missing_image_waits_with_err_image_never_pull() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("n.yaml", &pod("never", "picolet.test/missing:1", "Never"));
    let s = wait_for(10, "ErrImageNeverPull", || {
        a.container("never", "main")
            .filter(|s| s["state"]["waiting"]["reason"] == "ErrImageNeverPull")
    });
    assert!(
        s["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("not present with pull policy of Never")
    );
}

#[test]
fn if_not_present_with_a_missing_image_goes_from_err_image_pull_to_image_pull_back_off() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "p.yaml",
        &pod("pull", "picolet.test/missing:1", "IfNotPresent"),
    );
    wait_for(10, "ErrImagePull", || {
        a.container("pull", "main")
            .filter(|s| s["state"]["waiting"]["reason"] == "ErrImagePull")
    });
    wait_for(30, "ImagePullBackOff", || {
        a.container("pull", "main")
            .filter(|s| s["state"]["waiting"]["reason"] == "ImagePullBackOff")
    });
}

#[test]
fn image_config_env_and_working_dir_apply_and_the_docker_archive_image_runs() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "e.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: envpod}
spec:
  containers:
  - name: main
    image: picolet.test/busybox:2
    imagePullPolicy: Never
    workingDir: /tmp
    env:
    - {name: GREETING, value: hello}
    - {name: MSG, value: "$(GREETING) from $(POD)"}
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    command: ["sh", "-c", "echo $PATH; pwd; echo $MSG; echo $POD; cat /etc/picolet-image-version; ls /etc/picolet-whiteout-me 2>&1; sleep 1000"]
"#,
    );
    a.wait_running("envpod", "main", 30);
    let out = wait_for(10, "output", || {
        let o = String::from_utf8(a.cli(&["logs", "envpod"]).stdout).unwrap();
        (o.lines().count() >= 6).then_some(o)
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "/usr/sbin:/usr/bin:/sbin:/bin",
        "image Env applies"
    );
    assert_eq!(lines[1], "/tmp");
    // $(POD) is defined after MSG, so it stays literal (Kubernetes rule).
    assert_eq!(lines[2], "hello from $(POD)");
    assert_eq!(lines[3], "envpod");
    assert_eq!(lines[4], "2");
    assert!(
        lines[5].contains("No such file"),
        "the whiteout must hide the file: {out}"
    );
}

/// `picolet image rm` asks the agent which images its pods use and
/// refuses those; `image prune` deletes the rest; with the agent down,
/// both refuse unless `--force`.
#[test]
fn image_rm_refuses_an_image_a_pod_uses_and_prune_deletes_the_unused_one() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    a.apply(
        "keeper.yaml",
        &sh_pod("keeper", "Never", "while true; do sleep 1; done"),
    );
    a.wait_running("keeper", "main", 30);
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let out = a.cli(&["image", "rm", IMAGE]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("is in use by pod default/keeper"),
        "{}",
        text(&out)
    );
    let out = a.cli(&["image", "rm", "picolet.test/nothing:1"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not in the store"), "{}", text(&out));
    let out = a.cli(&["image", "prune"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("deleted picolet.test/busybox:2"),
        "{}",
        text(&out)
    );
    let ls = String::from_utf8(a.cli(&["image", "ls"]).stdout).unwrap();
    assert_eq!(ls.lines().count(), 2, "{ls}");
    // The image in use still runs containers.
    let out = a.cli(&["exec", "keeper", "--", "cat", "/etc/picolet-image-version"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    // The agent down: nobody can say what is in use.
    a.kill9();
    let out = a.cli(&["image", "rm", IMAGE]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot ask the agent"),
        "{}",
        text(&out)
    );
    let out = a.cli(&["image", "rm", "--force", IMAGE]);
    assert!(out.status.success(), "{}", text(&out));
    let ls = String::from_utf8(a.cli(&["image", "ls"]).stdout).unwrap();
    assert_eq!(ls.lines().count(), 1, "{ls}");
    let store = a.state().join("images");
    assert_eq!(
        std::fs::read_dir(store.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(store.join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
}
