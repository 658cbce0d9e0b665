//! Removal leaves nothing behind: 100 create/delete cycles of a pod with a
//! memory emptyDir end with no pod cgroup, no mount and no pod directory;
//! the agent sweeps, at start, the empty pod cgroups no pod owns; and a pod
//! being deleted is shown `Terminating` with its deletion timestamp.

mod support;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// A pod whose container ignores SIGTERM and has children (killed with it
/// at the end of a zero grace period), a small CPU limit (on a pure cgroup v2
/// host the pod's processes, the shim included, exit throttled: the shim
/// has hung up but is still in the pod's cgroup), a memory emptyDir (a tmpfs
/// mounted in the host's mount namespace). With `share_pids`, the pod's
/// containers share the shim's PID namespace: the container's children are
/// then reparented to the shim, which must outlive them.
fn cycle_pod_with(name: &str, share_pids: bool) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  shareProcessNamespace: {share_pids}
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & sleep 1000 & wait"]
    resources:
      limits: {{cpu: 10m, memory: 16Mi}}
    volumeMounts:
    - name: scratch
      mountPath: /scratch
  volumes:
  - name: scratch
    emptyDir:
      medium: Memory
      sizeLimit: 1Mi
"#
    )
}

fn cycle_pod(name: &str) -> String {
    cycle_pod_with(name, false)
}

/// `pod<uid>` cgroups under the agent's cgroup root.
fn pod_cgroups(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("pod"))
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points under `dir` in this (the host's) mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_hundred_create_delete_cycles_leave_no_cgroup_mount_or_pod_dir() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    let cg = a.cgroup.clone().expect("a test cgroup");
    const BATCH: usize = 10;
    const ROUNDS: usize = 10;
    let started = Instant::now();
    let mut lingering = Vec::new();
    for round in 0..ROUNDS {
        for i in 0..BATCH {
            let pod = cycle_pod_with(&format!("cycle-{round}-{i}"), i % 2 == 1);
            a.apply(&format!("p{i}.yaml"), &pod);
        }
        wait_for(60, "the batch running", || {
            let pods = a.pods();
            let running = pods
                .iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count();
            (running == BATCH).then_some(())
        });
        // The pods' cgroups and mounts exist while they run (a busy cgroup
        // of the previous batch may be waiting for its retry).
        assert!(pod_cgroups(&cg).len() >= BATCH);
        assert_eq!(mounts_under(&a.state()).len(), BATCH);
        // In one pod of each batch, a process that outlives the shim by
        // half a second (a throttled shim or a container's last processes
        // still exiting, as on a device): its cgroup is busy at removal.
        let uid = a.pod(&format!("cycle-{round}-0")).unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        lingering.push(sleep_in(&cg.join(format!("pod{uid}/shim")), "0.5"));
        for i in 0..BATCH {
            a.remove(&format!("p{i}.yaml"));
        }
        wait_for(60, "the batch gone", || a.pods().is_empty().then_some(()));
    }
    for mut l in lingering {
        l.wait().unwrap();
    }
    // Removal finishes in the background (the shim's exit, the trash):
    // give it a few seconds, then nothing may be left.
    let deadline = Instant::now() + Duration::from_secs(10);
    let leftovers = loop {
        let left = (
            pod_cgroups(&cg),
            mounts_under(&a.state()),
            entries(&a.state().join("pods")),
            entries(&a.state().join("trash")),
        );
        let clean =
            left.0.is_empty() && left.1.is_empty() && left.2.is_empty() && left.3.is_empty();
        if clean || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        leftovers,
        Default::default(),
        "left after {} cycles (cgroups, mounts, pod dirs, trash)",
        BATCH * ROUNDS
    );
    eprintln!(
        "{} create/delete cycles in {:?}; {} pod cgroups were busy at removal and retried",
        BATCH * ROUNDS,
        started.elapsed(),
        a.agent_log()
            .matches("still has processes; waiting for the shim's exit")
            .count()
    );
    a.assert_one_thread();
}

/// Starts `sleep SECS` (our own child) inside the cgroup `cg`.
fn sleep_in(cg: &Path, secs: &str) -> std::process::Child {
    let child = std::process::Command::new("sleep")
        .arg(secs)
        .spawn()
        .unwrap();
    std::fs::write(cg.join("cgroup.procs"), child.id().to_string()).unwrap();
    child
}

#[test]
fn a_pod_cgroup_still_busy_at_removal_is_removed_once_its_processes_are_gone() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    let cg = a.cgroup.clone().expect("a test cgroup");
    a.apply("busy.yaml", &cycle_pod("busy"));
    a.wait_running("busy", "main", 30);
    let uid = a.pod("busy").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let pod_cg = cg.join(format!("pod{uid}"));
    assert!(pod_cg.is_dir());
    // A process that outlives the pod's shim by 2 s, in the pod's cgroup
    // (as a container's last processes can): rmdir fails with EBUSY then.
    let mut lingering = sleep_in(&pod_cg.join("shim"), "2");
    a.remove("busy.yaml");
    wait_for(30, "the pod gone", || a.pods().is_empty().then_some(()));
    assert!(
        pod_cg.exists(),
        "the cgroup cannot be gone while sleep runs"
    );
    lingering.wait().unwrap();
    wait_for(15, "the pod cgroup removed", || {
        (!pod_cg.exists()).then_some(())
    });
    assert!(
        a.agent_log()
            .contains("still has processes; waiting for the shim's exit"),
        "the retry path was not taken"
    );
    a.assert_one_thread();
}

#[test]
fn at_start_empty_pod_cgroups_of_no_pod_are_swept_and_nothing_else() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    let cg = a.cgroup.clone().expect("a test cgroup");
    a.kill9();
    let empty = cg.join("pod0b6c9a52-1f0e-4d7a-9a41-3c2d5e6f7a80");
    std::fs::create_dir_all(empty.join("shim")).unwrap();
    std::fs::create_dir_all(empty.join("main")).unwrap();
    let busy = cg.join("pod7d1e2f30-4a5b-4c6d-8e9f-0a1b2c3d4e5f");
    std::fs::create_dir_all(&busy).unwrap();
    let mut sleeper = sleep_in(&busy, "60");
    // Not picolet's naming: never touched.
    let foreign = [cg.join("pod-not-a-uuid"), cg.join("something-else")];
    for f in &foreign {
        std::fs::create_dir_all(f).unwrap();
    }
    a.spawn();
    wait_for(10, "the empty pod cgroup swept", || {
        (!empty.exists()).then_some(())
    });
    assert!(busy.is_dir(), "a populated pod cgroup must be left alone");
    for f in &foreign {
        assert!(f.is_dir(), "{} must be left alone", f.display());
    }
    assert!(
        a.agent_log()
            .contains("belongs to no pod but has processes; left alone"),
        "{}",
        a.agent_log()
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    for d in foreign.iter().chain([&busy]) {
        remove_cgroup_tree(d);
    }
}

fn stubborn(name: &str, marker: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 6
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "trap '' TERM; echo {marker}; sleep 1000"]
"#
    )
}

#[test]
fn a_pod_recreated_after_a_manifest_edit_shows_terminating_for_its_grace_period() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("stubborn.yaml", &stubborn("stubborn", "v1"));
    a.wait_running("stubborn", "main", 30);
    let old_uid = a.pod("stubborn").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(a.pod("stubborn").unwrap()["metadata"]["deletionTimestamp"].is_null());
    // A change other than an image: the pod is recreated.
    let t0 = Instant::now();
    a.apply("stubborn.yaml", &stubborn("stubborn", "v2"));
    let p = wait_for(5, "the old pod's deletionTimestamp", || {
        a.pod("stubborn")
            .filter(|p| p["metadata"]["deletionTimestamp"].is_string())
    });
    assert_eq!(
        p["metadata"]["uid"],
        old_uid.as_str(),
        "the old pod is listed"
    );
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 6);
    // For the grace period (the container ignores SIGTERM), `get pods`
    // shows the old pod Terminating, and only it.
    while t0.elapsed() < Duration::from_secs(4) {
        let out = a.cli(&["get", "pods"]);
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        let rows: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows.len(), 1, "{table}");
        assert!(
            rows[0].starts_with("stubborn ") && rows[0].contains(" Terminating "),
            "{table}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Then the new pod, not terminating.
    let new = wait_for(30, "the new pod running", || {
        a.pod("stubborn").filter(|p| {
            p["metadata"]["uid"] != old_uid.as_str() && p["status"]["phase"] == "Running"
        })
    });
    assert!(
        t0.elapsed() >= Duration::from_millis(5500),
        "{:?}",
        t0.elapsed()
    );
    assert!(new["metadata"]["deletionTimestamp"].is_null());
    let out = a.cli(&["get", "pods"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!table.contains("Terminating"), "{table}");
}
