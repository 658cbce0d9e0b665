use super::*;
use crate::lifecycle::{Input, Node, Now, Output, Phase};

fn pod(name: &str, containers: &[(&str, Option<&str>)], init: &[(&str, &str)]) -> Pod {
    let c = |n: &str, lim: Option<&str>| {
        let res = lim.map_or(String::new(), |l| {
            format!(", resources: {{limits: {{ephemeral-storage: {l}}}}}")
        });
        format!("  - {{name: {n}, image: busybox{res}}}\n")
    };
    let mut text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n");
    if !init.is_empty() {
        text.push_str("  initContainers:\n");
        for (n, l) in init {
            text.push_str(&c(n, Some(l)));
        }
    }
    text.push_str("  containers:\n");
    for (n, l) in containers {
        text.push_str(&c(n, *l));
    }
    let mut all = crate::spec::load_str(&text, "test.yaml");
    assert_eq!(all.len(), 1);
    all.remove(0).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn usage(cs: &[(&str, u64)], volumes: u64) -> PodUsage {
    PodUsage {
        containers: cs.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
        volumes,
        empty_dirs: VecMap::new(),
    }
}

const MI: u64 = 1 << 20;

#[test]
fn the_pod_limit_is_the_sum_of_its_containers_or_the_largest_init() {
    assert_eq!(pod_limit(&pod("p", &[("a", None)], &[])), None);
    assert_eq!(
        pod_limit(&pod("p", &[("a", Some("10Mi")), ("b", None)], &[])),
        Some((10 * MI, "10Mi".into()))
    );
    assert_eq!(
        pod_limit(&pod("p", &[("a", Some("2Mi")), ("b", Some("1Mi"))], &[])),
        Some((3 * MI, "3Mi".into()))
    );
    assert_eq!(
        pod_limit(&pod("p", &[("a", Some("2Mi"))], &[("i", "5Mi")])),
        Some((5 * MI, "5Mi".into()))
    );
    assert_eq!(
        pod_limit(&pod("p", &[("a", None)], &[("i", "1Gi")])),
        Some((1 << 30, "1Gi".into()))
    );
    assert_eq!(
        pod_limit(&pod("p", &[("a", Some("1k")), ("b", Some("24"))], &[])),
        Some((1024, "1Ki".into()))
    );
}

#[test]
fn over_the_pod_total_is_reported_first_with_the_kubelets_message() {
    let p = pod("p", &[("main", Some("10Mi"))], &[]);
    assert_eq!(check_pod("u", &p, &usage(&[("main", 10 * MI)], 0)), None);
    let e = check_pod("u", &p, &usage(&[("main", 10 * MI + 1)], 0)).unwrap();
    assert_eq!(
        e.message,
        "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi."
    );
    assert_eq!(e.container, None);
    // Volumes count towards the pod, not a container.
    let e = check_pod("u", &p, &usage(&[("main", MI)], 10 * MI)).unwrap();
    assert_eq!(e.container, None);
}

#[test]
fn a_disk_empty_dir_over_its_size_limit_is_reported_first_and_a_memory_one_never() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: main, image: busybox, resources: {limits: {ephemeral-storage: 10Mi}}}\n  volumes:\n  - {name: scratch, emptyDir: {sizeLimit: 2Mi}}\n  - {name: ram, emptyDir: {medium: Memory, sizeLimit: 1Mi}}\n  - {name: free, emptyDir: {}}\n";
    let p = crate::spec::load_str(text, "t.yaml").remove(0).unwrap();
    assert!(has_limit(&p));
    let limits: Vec<_> = empty_dir_limits(&p).collect();
    assert_eq!(limits, [("scratch", (2 * MI, "2Mi"))]);
    let mut u = usage(&[("main", 0)], 2 * MI);
    u.empty_dirs.insert("scratch".into(), 2 * MI);
    assert_eq!(check_pod("u", &p, &u), None);
    // Over it: the emptyDir's message comes before the pod total's.
    u.empty_dirs.insert("scratch".into(), 2 * MI + 1);
    u.volumes = 3 * MI;
    let e = check_pod("u", &p, &u).unwrap();
    assert_eq!(
        e.message,
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"2Mi\". "
    );
    assert_eq!(e.container, None);
    // A sizeLimit alone makes the pod measured.
    let only = text.replace(", resources: {limits: {ephemeral-storage: 10Mi}}", "");
    let p = crate::spec::load_str(&only, "t.yaml").remove(0).unwrap();
    assert!(has_limit(&p));
}

#[test]
fn one_container_over_its_own_limit_within_the_pod_total() {
    let p = pod(
        "p",
        &[
            ("main", Some("10Mi")),
            ("side", Some("10Mi")),
            ("free", None),
        ],
        &[],
    );
    let e = check_pod("u", &p, &usage(&[("main", 11 * MI), ("side", 0)], 0)).unwrap();
    assert_eq!(
        e.message,
        "Container main exceeded its local ephemeral storage limit \"10Mi\"."
    );
    assert_eq!(e.container.as_deref(), Some("main"));
    // A container without a limit may use anything within the pod's.
    assert_eq!(check_pod("u", &p, &usage(&[("free", 19 * MI)], 0)), None);
    // Over the total wins over a container's own.
    let e = check_pod("u", &p, &usage(&[("main", 11 * MI), ("free", 10 * MI)], 0)).unwrap();
    assert!(
        e.message.contains("total limit of containers 20Mi"),
        "{}",
        e.message
    );
}

#[test]
fn pods_without_a_limit_are_never_evicted_nor_measured() {
    let p = pod("p", &[("a", None)], &[]);
    assert!(!has_limit(&p));
    assert_eq!(
        check_pod("u", &p, &usage(&[("a", u64::MAX)], u64::MAX)),
        None
    );
    assert!(has_limit(&pod("p", &[("a", None)], &[("i", "1Mi")])));
}

#[test]
fn bytes_format_as_binary_quantities() {
    assert_eq!(format_bytes(0), "0");
    assert_eq!(format_bytes(1000), "1000");
    assert_eq!(format_bytes(1024), "1Ki");
    assert_eq!(format_bytes(1536 * 1024), "1536Ki");
    assert_eq!(format_bytes(3 << 30), "3Gi");
}

#[test]
fn the_monitor_runs_one_measurement_at_a_time_every_interval() {
    let mut m = DiskMonitor::new(10_000);
    // Nothing limited: nothing to measure.
    assert!(!m.start(0, false));
    assert_eq!(m.next_at(), Some(0));
    assert!(m.start(5, true));
    assert_eq!(m.next_at(), None);
    // A slow measurement: no second one meanwhile, even when due.
    assert!(!m.start(30_000, true));
    m.finished();
    // Overdue: starts at once, next one an interval later.
    assert!(m.start(30_001, true));
    m.finished();
    assert_eq!(m.next_at(), Some(40_001));
    assert!(!m.start(40_000, true));
    assert!(m.start(40_001, true));
}

fn now(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        wall_ms: 1_700_000_000_000 + ms as i64,
    }
}

/// The whole path through the core: measured over the limit, the pod
/// is evicted: Failed, reason Evicted, the kubelet's message, an
/// event, its containers stopped; its neighbour keeps running.
#[test]
fn an_evicted_pod_fails_with_the_kubelets_reason_and_its_neighbour_runs_on() {
    let mut node = Node::new("n".into());
    let mut big = pod("big", &[("main", Some("2Mi"))], &[]);
    big.metadata.uid = "u-big".into();
    let mut small = pod("small", &[("main", Some("2Mi"))], &[]);
    small.metadata.uid = "u-small".into();
    for p in [big, small] {
        node.handle(
            Input::ApplyPod {
                pod: p,
                fresh_uid: String::new(),
            },
            now(0),
        );
    }
    for uid in ["u-big", "u-small"] {
        node.handle(Input::SandboxReady { uid: uid.into() }, now(1));
        node.handle(
            Input::ImageReady {
                uid: uid.into(),
                container: "main".into(),
                image_id: "sha256:x".into(),
                pulled_ms: None,
            },
            now(2),
        );
        node.handle(
            Input::ContainerStarted {
                uid: uid.into(),
                container: "main".into(),
                instance: 1,
                started_at_ms: 3,
            },
            now(3),
        );
    }
    while node.poll_output().is_some() {}
    let measured: VecMap<String, PodUsage> = [
        ("u-big".to_string(), usage(&[("main", 4 * MI)], 0)),
        ("u-small".to_string(), usage(&[("main", MI)], 0)),
    ]
    .into();
    let ev = decide(node.pods(), &measured);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].uid, "u-big");
    for e in ev {
        node.handle(
            Input::EvictPod {
                uid: e.uid,
                message: e.message,
                container: e.container,
            },
            now(10),
        );
    }
    let outs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    assert!(
        outs.iter().any(|o| matches!(o, Output::Event { uid, reason, message, .. }
            if uid == "u-big" && reason == "Evicted"
                && message == "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi.")),
        "{outs:?}"
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Signal { uid, signal: 15, .. } if uid == "u-big")),
        "{outs:?}"
    );
    assert!(
        outs.iter()
            .all(|o| !matches!(o, Output::Signal { uid, .. } if uid == "u-small"))
    );
    let big = node.pods().find(|p| p.uid == "u-big").unwrap();
    assert_eq!(big.status.phase, Phase::Failed);
    assert_eq!(big.status.reason, "Evicted");
    assert_eq!(
        big.status.message,
        "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi."
    );
    let small = node.pods().find(|p| p.uid == "u-small").unwrap();
    assert_eq!(small.status.phase, Phase::Running);
    // Measured again while it stops: not evicted twice.
    assert!(decide(node.pods(), &measured).is_empty());
    // The container exits: the pod stays Failed/Evicted.
    node.handle(
        Input::ContainerExited {
            uid: "u-big".into(),
            container: "main".into(),
            instance: 1,
            exit_code: 143,
            signal: Some(15),
            oom_killed: false,
            started_at_ms: 3,
            finished_at_ms: 20,
            message: String::new(),
        },
        now(20),
    );
    let big = node.pods().find(|p| p.uid == "u-big").unwrap();
    assert_eq!(
        (big.status.phase, big.status.reason.as_str()),
        (Phase::Failed, "Evicted")
    );
}

fn fs(total: u64, available: u64) -> FsStats {
    FsStats { total, available }
}

#[test]
fn pressure_starts_strictly_below_the_threshold_and_never_on_an_unknown_fs() {
    let th = Thresholds::default();
    let ok = fs(1000, 500);
    assert!(pressure(th, ok, ok).is_empty());
    assert!(pressure(th, fs(1000, 100), ok).is_empty());
    assert_eq!(
        pressure(th, fs(1000, 99), ok),
        vec![(Signal::NodefsAvailable, 100, 99)]
    );
    assert!(pressure(th, ok, fs(1000, 150)).is_empty());
    assert_eq!(
        pressure(th, ok, fs(1000, 149)),
        vec![(Signal::ImagefsAvailable, 150, 149)]
    );
    // The same filesystem for both: nodefs first.
    assert_eq!(
        pressure(th, fs(1000, 0), fs(1000, 0)),
        vec![
            (Signal::NodefsAvailable, 100, 0),
            (Signal::ImagefsAvailable, 150, 0)
        ]
    );
    assert!(pressure(th, fs(0, 0), fs(0, 0)).is_empty());
    let off = Thresholds {
        nodefs_available_pct: 0,
        imagefs_available_pct: 0,
    };
    assert!(pressure(off, fs(1000, 0), fs(1000, 0)).is_empty());
    // No overflow on huge filesystems; over 100 % is 100 %.
    let all = Thresholds {
        nodefs_available_pct: 250,
        imagefs_available_pct: 10,
    };
    assert_eq!(
        pressure(all, fs(u64::MAX, u64::MAX - 1), fs(u64::MAX, u64::MAX)),
        vec![(Signal::NodefsAvailable, u64::MAX, u64::MAX - 1)]
    );
    // Exhaustively on a small filesystem: pressure iff available*100 < pct*total.
    for pct in 0..=100 {
        for avail in 0..=200 {
            let t = Thresholds {
                nodefs_available_pct: pct,
                imagefs_available_pct: 0,
            };
            let got = !pressure(t, fs(200, avail), fs(200, 200)).is_empty();
            assert_eq!(got, avail * 100 < pct * 200, "pct {pct} avail {avail}");
        }
    }
}

/// A pod named `name` with one container `main` whose `resources` are
/// `res` (YAML flow), running, with uid `u-<name>`.
fn running(node: &mut Node, name: &str, res: &str) {
    running_with(node, name, res, "");
}

/// [`running`] with `spec` lines (e.g. `  priority: 5\n`) in the pod spec.
fn running_with(node: &mut Node, name: &str, res: &str, spec: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, uid: u-{name}}}\nspec:\n{spec}  containers:\n  - {{name: main, image: busybox, resources: {res}}}\n"
    );
    let mut all = crate::spec::load_str(&text, "t.yaml");
    let pod = all.remove(0).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let uid = format!("u-{name}");
    node.handle(
        Input::ApplyPod {
            pod,
            fresh_uid: String::new(),
        },
        now(0),
    );
    node.handle(Input::SandboxReady { uid: uid.clone() }, now(1));
    node.handle(
        Input::ImageReady {
            uid: uid.clone(),
            container: "main".into(),
            image_id: "sha256:x".into(),
            pulled_ms: None,
        },
        now(2),
    );
    node.handle(
        Input::ContainerStarted {
            uid,
            container: "main".into(),
            instance: 1,
            started_at_ms: 3,
        },
        now(3),
    );
    while node.poll_output().is_some() {}
}

/// Carries the pod's stop through: its container exits, its sandbox
/// is removed.
fn stop_and_remove(node: &mut Node, uid: &str) {
    let mut removing = false;
    node.handle(
        Input::ContainerExited {
            uid: uid.into(),
            container: "main".into(),
            instance: 1,
            exit_code: 143,
            signal: Some(15),
            oom_killed: false,
            started_at_ms: 3,
            finished_at_ms: 20,
            message: String::new(),
        },
        now(20),
    );
    while let Some(o) = node.poll_output() {
        removing |= matches!(&o, Output::RemoveSandbox { uid: u } if u == uid);
    }
    assert!(removing, "no RemoveSandbox for {uid}");
    node.handle(Input::SandboxRemoved { uid: uid.into() }, now(21));
    while node.poll_output().is_some() {}
}

const BE: &str = "{}";
const BURST_4: &str = "{requests: {cpu: 100m, ephemeral-storage: 4Mi}}";
const GUAR: &str = "{limits: {cpu: 100m, memory: 16Mi}}";

fn victim(node: &Node, used: &[(&str, u64)]) -> Option<String> {
    let usage: VecMap<String, PodUsage> = used
        .iter()
        .map(|(n, b)| (format!("u-{n}"), usage(&[("main", *b)], 0)))
        .collect();
    pressure_victim(node.pods(), &usage, Signal::NodefsAvailable, 100, 50).map(|e| e.uid)
}

#[test]
fn pod_requests_sum_containers_default_to_limits_and_take_the_largest_init() {
    let p = pod("p", &[("a", Some("2Mi")), ("b", None)], &[("i", "5Mi")]);
    assert_eq!(pod_request(&p), 5 * MI);
    let p = pod(
        "p",
        &[("a", Some("2Mi")), ("b", Some("3Mi"))],
        &[("i", "1Mi")],
    );
    assert_eq!(pod_request(&p), 5 * MI);
    assert_eq!(pod_request(&pod("p", &[("a", None)], &[])), 0);
}

#[test]
fn under_node_pressure_best_effort_goes_first_then_burstable_over_its_request_by_usage() {
    let mut node = Node::new("n".into());
    running(&mut node, "be-small", BE);
    running(&mut node, "be-big", BE);
    running(&mut node, "burst-over", BURST_4);
    running(&mut node, "burst-under", BURST_4);
    running(&mut node, "guar", GUAR);
    let mut used = vec![
        ("be-small", MI),
        ("be-big", 3 * MI),
        ("burst-over", 20 * MI),
        ("burst-under", 4 * MI),
        ("guar", 100 * MI),
    ];
    // BestEffort first, the biggest of them, whatever the others use.
    assert_eq!(victim(&node, &used).as_deref(), Some("u-be-big"));
    // A BestEffort pod that uses nothing is not over its request: a
    // Burstable pod over its request goes before it.
    used[0].1 = 0;
    used[1].1 = 0;
    assert_eq!(victim(&node, &used).as_deref(), Some("u-burst-over"));
    // Nobody over their request: by QoS, BestEffort first again.
    used[2].1 = MI;
    used[4].1 = 0;
    assert_eq!(victim(&node, &used).as_deref(), Some("u-be-big"));
    used[4].1 = 100 * MI;
    // Guaranteed (cpu/memory), over its (zero) ephemeral request,
    // goes before pods within theirs.
    let only: Vec<_> = used
        .iter()
        .copied()
        .filter(|(n, _)| !n.starts_with("be"))
        .collect();
    assert_eq!(victim(&node, &only).as_deref(), Some("u-guar"));
    // Unmeasured pods are not candidates; nothing measured: no victim.
    assert_eq!(victim(&node, &[]), None);
    assert_eq!(
        victim(&node, &[("burst-under", MI)]).as_deref(),
        Some("u-burst-under")
    );
}

#[test]
fn under_node_pressure_a_lower_priority_goes_first_and_a_critical_pod_never() {
    let mut node = Node::new("n".into());
    running_with(&mut node, "be-high", BE, "  priority: 1000\n");
    running_with(&mut node, "burst-low", BURST_4, "  priority: -5\n");
    running_with(
        &mut node,
        "critical",
        BE,
        "  priorityClassName: system-node-critical\n",
    );
    running_with(&mut node, "guar", GUAR, "  priority: 2000000000\n");
    // All over their request: the lowest priority first, whatever its QoS
    // class and however little it uses.
    let mut used = vec![
        ("be-high", 50 * MI),
        ("burst-low", 5 * MI),
        ("critical", 500 * MI),
        ("guar", 500 * MI),
    ];
    assert_eq!(victim(&node, &used).as_deref(), Some("u-burst-low"));
    // Within its request it goes after those over theirs.
    used[1].1 = MI;
    assert_eq!(victim(&node, &used).as_deref(), Some("u-be-high"));
    // Critical pods (priority 2000000000 and up, or a built-in critical
    // class) are never evicted, for pressure or for their own limits.
    let critical = [("critical", 500 * MI), ("guar", 500 * MI)];
    assert_eq!(victim(&node, &critical), None);
    let mut lim = Node::new("n".into());
    running_with(
        &mut lim,
        "crit-lim",
        "{limits: {ephemeral-storage: 1Mi}}",
        "  priorityClassName: system-cluster-critical\n",
    );
    running(&mut lim, "lim", "{limits: {ephemeral-storage: 1Mi}}");
    let usage: VecMap<String, PodUsage> = ["crit-lim", "lim"]
        .iter()
        .map(|n| (format!("u-{n}"), usage(&[("main", 2 * MI)], 0)))
        .collect();
    let evicted: Vec<String> = decide(lim.pods(), &usage)
        .into_iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(evicted, ["u-lim"]);
}

#[test]
fn the_pressure_victim_does_not_depend_on_pod_order_and_skips_pods_already_stopping() {
    let names = ["a", "b", "c", "d"];
    let res = [BE, BURST_4, BE, GUAR];
    let used = [("a", 2 * MI), ("b", 9 * MI), ("c", 2 * MI), ("d", 50 * MI)];
    // Every order of creation: the same victim (ties by uid).
    let perms = [
        [0, 1, 2, 3],
        [3, 2, 1, 0],
        [2, 0, 3, 1],
        [1, 3, 0, 2],
        [2, 3, 0, 1],
    ];
    for perm in perms {
        let mut node = Node::new("n".into());
        for i in perm {
            running(&mut node, names[i], res[i]);
        }
        assert_eq!(victim(&node, &used).as_deref(), Some("u-a"), "{perm:?}");
    }
    // Once evicted (stopping), the next round picks the next one.
    let mut node = Node::new("n".into());
    for i in 0..4 {
        running(&mut node, names[i], res[i]);
    }
    for expect in ["u-a", "u-c", "u-b", "u-d"] {
        let usage: VecMap<String, PodUsage> = used
            .iter()
            .map(|(n, b)| (format!("u-{n}"), usage(&[("main", *b)], 0)))
            .collect();
        let e = pressure_victim(
            node.pods(),
            &usage,
            Signal::ImagefsAvailable,
            150 << 20,
            1 << 20,
        )
        .unwrap();
        assert_eq!(e.uid, expect);
        assert!(
            e.message.starts_with("The node was low on resource: ephemeral-storage. Threshold quantity: 150Mi, available: 1Mi."),
            "{}",
            e.message
        );
        assert!(e.message.ends_with("(imagefs.available)."), "{}", e.message);
        node.handle(
            Input::EvictPod {
                uid: e.uid.clone(),
                message: e.message,
                container: None,
            },
            now(10),
        );
        // Until the evicted pod is cleaned up, nobody else goes.
        assert!(cleaning(node.pods()));
        assert_eq!(victim(&node, &used), None);
        stop_and_remove(&mut node, &e.uid);
        assert!(!cleaning(node.pods()));
    }
    assert_eq!(victim(&node, &used), None);
}
