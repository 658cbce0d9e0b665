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

/// `sh_pod`'s one-container pod (sleeping) with `resources` (YAML lines
/// under `resources:`; the container is the manifest's last item).
fn sized(name: &str, resources: &str) -> String {
    format!(
        "{}    resources:\n{resources}\n",
        sh_pod(name, "Always", "exec sleep 100000")
    )
}

/// The kubelet's oom_score_adj per QoS class, on the container's processes
/// and its exec sessions: the agent's own (systemd gives it -900) must not
/// leak into pods, or the kernel would kill the rest of the system first.
#[test]
fn containers_get_the_kubelets_oom_score_adj_for_their_qos_class() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("be.yaml", &sized("be", "      {}"));
    a.apply(
        "g.yaml",
        &sized("g", "      limits: {cpu: 100m, memory: 64Mi}"),
    );
    a.apply("b.yaml", &sized("b", "      requests: {memory: 64Mi}"));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    let burstable = (1000 - 1000 * (64 << 20) / (kib * 1024)).clamp(3, 999);
    // Lowering the value needs CAP_SYS_RESOURCE; where the test runs without
    // it, a Guaranteed container keeps the shim's (inherited) value.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    const CAP_SYS_RESOURCE: u32 = 24;
    let guaranteed = if cap_eff & (1 << CAP_SYS_RESOURCE) != 0 {
        -997
    } else {
        let own: i64 = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", a.pid()))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        eprintln!("no CAP_SYS_RESOURCE here: a Guaranteed container keeps {own}, not -997");
        own
    };
    for (pod, want, class) in [
        ("be", 1000, "BestEffort"),
        ("g", guaranteed, "Guaranteed"),
        ("b", burstable, "Burstable"),
    ] {
        a.wait_running(pod, "main", 30);
        assert_eq!(a.pod(pod).unwrap()["status"]["qosClass"], class);
        // PID 1 of the container's PID namespace is its main process.
        let (code, out) = a.exec(
            pod,
            "main",
            &["cat", "/proc/1/oom_score_adj", "/proc/self/oom_score_adj"],
        );
        assert_eq!(code, 0, "{out}");
        let got: Vec<i64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_eq!(got, [want, want], "{pod} ({class})");
    }
}
