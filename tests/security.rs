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
    // allowPrivilegeEscalation is unset: no no_new_privs, as in Kubernetes.
    assert!(st.contains("NoNewPrivs:\t0"), "{st}");
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
            "{readOnlyRootFilesystem: true, capabilities: {drop: [NET_RAW, CHOWN]}, allowPrivilegeEscalation: false}",
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

/// Issue 11: `no_new_privs` was set unless `allowPrivilegeEscalation: true`,
/// so setuid programs broke. An init container (root) installs a
/// setuid-root busybox in an emptyDir; as uid 1000, its `ping` (an applet
/// that keeps the setuid privilege) opens a raw socket when
/// `allowPrivilegeEscalation` is unset, and cannot under `false`.
#[test]
fn a_setuid_binary_works_when_allow_privilege_escalation_is_unset() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    let app = |name: &str, sc: &str| {
        format!(
            r#"  - name: {name}
    image: {IMAGE}
    command: ["sleep", "100000"]
    securityContext: {sc}
    volumeMounts: [{{name: shared, mountPath: /shared}}]
"#
        )
    };
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: setuid}}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{{name: shared, emptyDir: {{}}}}]
  initContainers:
  - name: install
    image: {IMAGE}
    command: ["sh", "-c", "cp /bin/busybox /shared/busybox && chmod 4755 /shared/busybox"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  containers:
{}{}"#,
        app("free", "{runAsUser: 1000}"),
        app(
            "locked",
            "{runAsUser: 1000, allowPrivilegeEscalation: false}"
        )
    );
    a.apply("setuid.yaml", &yaml);
    a.wait_running("setuid", "free", 30);
    a.wait_running("setuid", "locked", 30);
    let ping = ["/shared/busybox", "ping", "-c", "1", "-W", "2", "127.0.0.1"];
    let (_, st) = a.exec(
        "setuid",
        "free",
        &["grep", "NoNewPrivs", "/proc/self/status"],
    );
    assert!(st.contains("NoNewPrivs:\t0"), "{st}");
    let (code, out) = a.exec("setuid", "free", &ping);
    assert_eq!(code, 0, "setuid ping as uid 1000 must work: {out}");
    assert!(out.contains("1 packets received"), "{out}");
    let (_, st) = a.exec(
        "setuid",
        "locked",
        &["grep", "NoNewPrivs", "/proc/self/status"],
    );
    assert!(st.contains("NoNewPrivs:\t1"), "{st}");
    let (code, out) = a.exec("setuid", "locked", &ping);
    assert_ne!(code, 0, "no_new_privs must stop the setuid bit: {out}");
    assert!(out.contains("permission denied"), "{out}");
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

/// A loop device over a 1 MiB zero-filled file made by the test (never a
/// real disk); detached on drop.
struct Loop {
    dev: String,
    minor: u32,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new() -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backing");
        std::fs::write(&file, vec![0u8; 1 << 20]).unwrap();
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {out:?}");
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let minor = dev.trim_start_matches("/dev/loop").parse().unwrap();
        Loop {
            dev,
            minor,
            file,
            _dir: dir,
        }
    }

    /// The backing file is still all zeros: nothing wrote through the device.
    fn untouched(&self) -> bool {
        std::fs::read(&self.file).unwrap().iter().all(|&b| b == 0)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.dev])
            .status();
    }
}

/// Tries to make and use a block device `b 7:<minor>` (the test's loop
/// device) in the writable layer and in /dev, and to open `/dev/kmsg`'s
/// `c 1:11` made the same way. Prints one word per attempt.
fn device_probe(minor: u32) -> String {
    format!(
        "for p in /tmp/disk /dev/disk; do
           if mknod $p b 7 {minor} 2>/dev/null; then echo made-$p; else echo nomknod-$p; fi
           if [ -b $p ] && (echo pwned > $p) 2>/dev/null; then echo wrote-$p; else echo nowrite-$p; fi
         done
         for p in /tmp/kmsg /dev/kmsg; do
           mknod $p c 1 11 2>/dev/null
           if [ -c $p ] && (: < $p) 2>/dev/null; then echo opened-$p; else echo noopen-$p; fi
         done"
    )
}

/// Issue 7, finding 1: a default container (CAP_MKNOD, no securityContext)
/// made `b 7:0` in /tmp or /dev and wrote the host's disk through it. Now
/// the overlay is `nodev` and the cgroup's eBPF allowlist refuses the node
/// in /dev too; a privileged container still may (Kubernetes semantics).
#[test]
fn a_default_container_cannot_make_and_use_a_host_device_but_a_privileged_one_can() {
    if !root_or_skip() {
        return;
    }
    let lo = Loop::new();
    let a = Agent::start();
    a.apply("d.yaml", &sh_pod("dflt", "Always", "exec sleep 100000"));
    a.apply(
        "p.yaml",
        &pod("priv", "{privileged: true}", "exec sleep 100000"),
    );
    a.wait_running("dflt", "main", 30);
    let (_, out) = a.exec("dflt", "main", &["sh", "-c", &device_probe(lo.minor)]);
    for word in [
        "nomknod-/tmp/disk",
        "nowrite-/tmp/disk",
        "nomknod-/dev/disk",
        "nowrite-/dev/disk",
        "noopen-/tmp/kmsg",
        "noopen-/dev/kmsg",
    ] {
        assert!(out.contains(word), "{word} missing in:\n{out}");
    }
    assert!(lo.untouched(), "the container wrote the host's loop device");
    // The standard nodes still work.
    let (code, out) = a.exec(
        "dflt",
        "main",
        &[
            "sh",
            "-c",
            "head -c 4 /dev/urandom > /dev/null && echo ok > /dev/null && echo fine",
        ],
    );
    assert_eq!((code, out.trim()), (0, "fine"));

    a.wait_running("priv", "main", 30);
    let script = format!(
        "mknod /dev/disk b 7 {} && head -c 512 /dev/disk | wc -c",
        lo.minor
    );
    let (code, out) = a.exec("priv", "main", &["sh", "-c", &script]);
    assert_eq!((code, out.trim()), (0, "512"), "{out}");
}

/// Issue 7, finding 1: device nodes shipped in an image layer (here planted
/// in the unpacked layer, as an older store or a bypassed unpack would
/// hold them), mode 0666, opened by a container with every capability
/// dropped, a non-root user and no privilege escalation.
#[test]
fn device_nodes_in_a_layer_cannot_be_opened_by_a_locked_down_container() {
    if !root_or_skip() {
        return;
    }
    let lo = Loop::new();
    let a = Agent::start();
    let layers = a.state().join("images/layers/sha256");
    for layer in std::fs::read_dir(&layers).unwrap() {
        let l = layer.unwrap().path();
        let minor = lo.minor.to_string();
        for (name, args) in [
            ("disk", ["b", "7", minor.as_str()]),
            ("kmsg", ["c", "1", "11"]),
        ] {
            let p = l.join(name);
            let st = std::process::Command::new("mknod")
                .args(["-m", "0666"])
                .arg(&p)
                .args(args)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
    a.apply(
        "l.yaml",
        &pod(
            "locked",
            "{runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
            "exec sleep 100000",
        ),
    );
    a.wait_running("locked", "main", 30);
    let script = "ls -l /disk /kmsg | cut -c1
        if (echo pwned > /disk) 2>/dev/null; then echo wrote-disk; else echo nowrite-disk; fi
        if (: < /kmsg) 2>/dev/null; then echo opened-kmsg; else echo noopen-kmsg; fi
        awk '$2 == \"/\" {print $4}' /proc/mounts";
    let (_, out) = a.exec("locked", "main", &["sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..4],
        ["b", "c", "nowrite-disk", "noopen-kmsg"],
        "{out}"
    );
    assert!(
        lines[4].split(',').any(|o| o == "nodev"),
        "the rootfs overlay must be nodev: {out}"
    );
    assert!(lo.untouched(), "the container wrote the host's loop device");
}

/// Issue 7, finding 2: the store and the pods' writable layers were
/// world-traversable, so `nobody` could run a setuid-root file from a
/// container's upper dir (or an imported layer) and become root. The
/// state, store, pod and run dirs are 0700 now.
#[test]
fn nobody_cannot_reach_the_store_or_a_pods_setuid_files() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    // As on a device, the state dir's parent is world-traversable.
    let parent = a.state().parent().unwrap().to_path_buf();
    std::fs::set_permissions(&parent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    a.apply("s.yaml", &sh_pod("suid", "Always", "exec sleep 100000"));
    a.wait_running("suid", "main", 30);
    let (code, out) = a.exec(
        "suid",
        "main",
        &["sh", "-c", "cp /bin/busybox /rootsh && chmod 4755 /rootsh"],
    );
    assert_eq!(code, 0, "{out}");
    // The copy lives in the pod's upper dir on the host.
    let found = std::process::Command::new("find")
        .arg(a.state().join("pods"))
        .args(["-name", "rootsh", "-perm", "-4000"])
        .output()
        .unwrap();
    let rootsh = String::from_utf8(found.stdout).unwrap();
    let rootsh = rootsh
        .lines()
        .next()
        .expect("the setuid copy in the upper dir");
    let layers = a.state().join("images/layers/sha256");
    let a_layer = std::fs::read_dir(&layers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let as_nobody = |cmd: &str| {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["/bin/sh", "-c", cmd])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = as_nobody(&format!("{rootsh} id -u"));
    assert_ne!((code, out.trim()), (0, "0"), "nobody became root: {out}");
    assert!(out.contains("Permission denied"), "{out}");
    for dir in [
        a.state(),
        a.state().join("images"),
        a.state().join("pods"),
        a.run_dir(),
        a_layer,
    ] {
        let (code, out) = as_nobody(&format!("ls {}", dir.display()));
        assert_ne!(code, 0, "nobody listed {}: {out}", dir.display());
        assert!(out.contains("Permission denied"), "{out}");
    }
    for dir in [a.state(), a.state().join("images"), a.run_dir()] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dir).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    }
}

/// Issue 11: the pod-level securityContext was refused. Its user is the
/// containers' default, fsGroup owns (setgid) the emptyDir and joins the
/// groups with supplementalGroups, and safe sysctls are set in the pod's
/// own namespaces only.
#[test]
fn the_pod_security_context_sets_user_groups_fs_group_and_safe_sysctls() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: podsc}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]
    sysctls:
    - {{name: net.ipv4.ping_group_range, value: "0 2147483647"}}
    - {{name: kernel.shm_rmid_forced, value: "1"}}
  volumes: [{{name: data, emptyDir: {{}}}}]
  containers:
  - name: main
    image: {IMAGE}
    command: ["sleep", "100000"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  - name: own
    image: {IMAGE}
    command: ["sleep", "100000"]
    securityContext: {{runAsUser: 1001}}
"#
    );
    a.apply("podsc.yaml", &yaml);
    a.wait_running("podsc", "main", 30);
    a.wait_running("podsc", "own", 30);
    let (code, id) = a.exec("podsc", "main", &["id"]);
    assert_eq!(code, 0, "{id}");
    assert!(id.starts_with("uid=1000 gid=3000"), "{id}");
    let (_, groups) = a.exec("podsc", "main", &["id", "-G"]);
    let groups: Vec<&str> = groups.split_whitespace().collect();
    for g in ["2000", "3000", "4000"] {
        assert!(groups.contains(&g), "{g} in {groups:?}");
    }
    // The container's own runAsUser wins over the pod's.
    let (_, own) = a.exec("podsc", "own", &["id", "-u"]);
    assert_eq!(own.trim(), "1001");
    // fsGroup: the emptyDir is the group's, setgid, and group-writable.
    let (_, st) = a.exec("podsc", "main", &["stat", "-c", "%g %a", "/data"]);
    assert_eq!(st.trim(), "2000 2777", "{st}");
    let (code, out) = a.exec(
        "podsc",
        "main",
        &["sh", "-c", "echo x > /data/f && stat -c %g /data/f"],
    );
    assert_eq!((code, out.trim()), (0, "2000"), "{out}");
    // The sysctls, in the pod's namespaces only.
    let (_, range) = a.exec(
        "podsc",
        "main",
        &["cat", "/proc/sys/net/ipv4/ping_group_range"],
    );
    assert_eq!(
        range.split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"]
    );
    let (_, rmid) = a.exec("podsc", "own", &["cat", "/proc/sys/kernel/shm_rmid_forced"]);
    assert_eq!(rmid.trim(), "1");
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    assert_ne!(
        host.split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"]
    );

    // An unsafe sysctl is refused, naming it; the pod never runs.
    let bad = yaml
        .replace("name: podsc", "name: unsafe")
        .replace("kernel.shm_rmid_forced", "kernel.msgmax");
    a.apply("unsafe.yaml", &bad);
    wait_for(20, "the refusal in the agent's log", || {
        a.agent_log()
            .contains("forbidden sysctl: \"kernel.msgmax\" not allowlisted")
            .then_some(())
    });
    assert!(a.pod("unsafe").is_none());
}

fn seccomp_pod(name: &str, pod_sc: &str, c_sc: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {pod_sc}
  containers:
  - name: main
    image: {IMAGE}
    command: ["sleep", "100000"]
    securityContext: {c_sc}
"#
    )
}

/// `Seccomp:` of /proc/self/status in an exec session (2: a filter).
fn seccomp_mode(a: &Agent, pod: &str) -> String {
    let (_, st) = a.exec(pod, "main", &["grep", "^Seccomp:", "/proc/self/status"]);
    st.trim().trim_start_matches("Seccomp:").trim().to_string()
}

/// Issue 11: `seccompProfile: RuntimeDefault` was refused. Now it is
/// containerd's default profile, for the container and its exec sessions:
/// `unshare` (a new user namespace) fails with EPERM under it and works
/// Unconfined; a normal workload runs under it, also with no_new_privs.
#[test]
fn runtime_default_seccomp_blocks_unshare_and_unconfined_allows_it() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "rd.yaml",
        &seccomp_pod("rd", "{seccompProfile: {type: RuntimeDefault}}", "{}"),
    );
    a.apply(
        "un.yaml",
        &seccomp_pod(
            "un",
            "{seccompProfile: {type: RuntimeDefault}}",
            "{seccompProfile: {type: Unconfined}}",
        ),
    );
    a.apply(
        "nnp.yaml",
        &seccomp_pod("nnp", "{}", "{seccompProfile: {type: RuntimeDefault}, allowPrivilegeEscalation: false, runAsUser: 1000}"),
    );
    a.apply("plain.yaml", &seccomp_pod("plain", "{}", "{}"));
    for p in ["rd", "un", "nnp", "plain"] {
        a.wait_running(p, "main", 30);
    }
    assert_eq!(seccomp_mode(&a, "rd"), "2");
    assert_eq!(seccomp_mode(&a, "nnp"), "2");
    assert_eq!(
        seccomp_mode(&a, "un"),
        "0",
        "the container's Unconfined wins"
    );
    assert_eq!(
        seccomp_mode(&a, "plain"),
        "0",
        "Kubernetes' default: Unconfined"
    );
    let unshare = ["unshare", "-U", "true"];
    let (code, out) = a.exec("rd", "main", &unshare);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    let (code, out) = a.exec("un", "main", &unshare);
    assert_eq!(code, 0, "unshare -U under Unconfined: {out}");
    // A normal workload: files, pipes, processes, sockets.
    // A normal workload: files, pipes, processes, sockets (refused by the
    // closed port, not by the filter).
    let script = "set -e; mkdir -p /tmp/w; echo hi > /tmp/w/f; grep -q hi /tmp/w/f; \
                  cat /tmp/w/f | wc -c >/dev/null; ls / >/dev/null; ps >/dev/null; \
                  sleep 0 & wait $!; date >/dev/null; \
                  ! nc 127.0.0.1 9 </dev/null 2>/tmp/w/e; grep -q refused /tmp/w/e; echo done";
    for p in ["un", "rd", "nnp"] {
        let (code, out) = a.exec(p, "main", &["sh", "-c", script]);
        assert_eq!((code, out.trim()), (0, "done"), "{p}");
    }
    a.assert_one_thread();
}

/// `--seccomp-default` (the kubelet's flag): RuntimeDefault for containers
/// that set no profile; Unconfined still opts out.
#[test]
fn the_seccomp_default_node_setting_applies_runtime_default_unless_a_profile_is_set() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start_with(&["--seccomp-default"]);
    a.apply("d.yaml", &seccomp_pod("dflt", "{}", "{}"));
    a.apply(
        "u.yaml",
        &seccomp_pod("optout", "{seccompProfile: {type: Unconfined}}", "{}"),
    );
    a.wait_running("dflt", "main", 30);
    a.wait_running("optout", "main", 30);
    assert_eq!(seccomp_mode(&a, "dflt"), "2");
    assert_eq!(seccomp_mode(&a, "optout"), "0");
    let (code, out) = a.exec("dflt", "main", &["unshare", "-U", "true"]);
    assert_ne!(code, 0, "{out}");
}
