//! Tests against this machine's real cgroup v2 hierarchy. They touch only
//! `<cgroup2 mount>/picolet-test-<pid>` (created and removed here) and only
//! processes they start themselves.

use crate::runtime::cgroup::hierarchy::{
    Mounts, PROC_SELF_CGROUP, PROC_SELF_MOUNTINFO, unified_path,
};
use crate::runtime::cgroup::*;
use std::fs;
use std::process::{Child, Command};
use std::time::Duration;

/// The cgroup2 mount point whose root is `/`, if we are root and there is one.
fn real_mount() -> Option<PathBuf> {
    if crate::testutil::needs_root("the real cgroup tests") {
        return None;
    }
    let text = fs::read_to_string(PROC_SELF_MOUNTINFO).ok()?;
    let mount = Mounts::parse(&text)
        .cgroup2
        .into_iter()
        .find(|m| m.root == "/")
        .map(|m| m.mount_point);
    if mount.is_none() {
        crate::testutil::cannot_run(&format!("no cgroup2 mount in {PROC_SELF_MOUNTINFO}"));
    }
    mount
}

/// Kills and reaps the child we started, then removes the cgroup tree we
/// made, even when an assertion fails half-way.
struct Cleanup {
    child: Option<Child>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = CgroupRoot::remove(&self.dir);
    }
}

/// The unified-hierarchy cgroup of `pid`, from `/proc/<pid>/cgroup`.
fn cgroup_of(pid: u32) -> String {
    unified_path(&fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()).unwrap()
}

#[test]
fn detect_without_a_root_finds_the_agents_own_unified_cgroup() {
    let Some(mount) = real_mount() else { return };
    let own = unified_path(&fs::read_to_string(PROC_SELF_CGROUP).unwrap()).unwrap();
    let root = CgroupRoot::detect(None).unwrap();
    let own_rel = own.trim_start_matches('/');
    let expected = if own_rel.is_empty() {
        mount.clone()
    } else {
        mount.join(own_rel)
    };
    // A test process sitting in a leaf called `agent` maps to the parent.
    if !own.ends_with("/agent") {
        assert_eq!(root.path(), expected);
    }
    eprintln!(
        "cgroup root {}: available [{}], pods get [{}]",
        root.path().display(),
        root.available().join(" "),
        root.controllers()
    );
    for m in root.missing() {
        eprintln!("  {}", m.warning());
    }
    assert_eq!(
        root.controllers().iter().count() + root.missing().len(),
        Controller::ALL.len()
    );
}

#[test]
fn pod_and_container_cgroups_hold_a_real_process_and_are_removed() {
    let Some(mount) = real_mount() else { return };
    let test_root = mount.join(format!("picolet-test-{}", std::process::id()));
    if let Err(e) = fs::create_dir(&test_root) {
        // A container (cross test, Docker) usually mounts cgroupfs read-only.
        if matches!(
            e.raw_os_error(),
            Some(libc::EROFS | libc::EACCES | libc::EPERM)
        ) {
            crate::testutil::cannot_run(&format!("cannot create {}: {e}", test_root.display()));
            return;
        }
        panic!("creating {}: {e}", test_root.display());
    }
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    let mut guard = Cleanup {
        child: Some(child),
        dir: test_root.clone(),
    };
    let rel = format!("/{}", test_root.strip_prefix(&mount).unwrap().display());

    // The child plays the agent: it starts inside the root.
    add_process(&test_root, pid).unwrap();
    assert_eq!(cgroup_of(pid), rel);
    let mut root = CgroupRoot::detect(Some(test_root.clone())).unwrap();
    let prepared = root.prepare_for(pid).unwrap();
    assert_eq!(prepared.moved_to, Some(test_root.join(AGENT_LEAF)));
    assert_eq!(cgroup_of(pid), format!("{rel}/agent"));
    assert!(procs(&test_root).unwrap().is_empty());
    let enabled = fs::read_to_string(test_root.join(CGROUP_SUBTREE_CONTROL)).unwrap();
    assert_eq!(ControllerSet::parse(&enabled), root.controllers());
    // A second prepare writes nothing and still succeeds.
    let again = root.prepare_for(pid).unwrap();
    assert_eq!(again.enabled, ControllerSet::EMPTY);
    assert_eq!(again.already_enabled, root.controllers());

    let c = ContainerResources {
        cpu_request_millis: Some(100),
        cpu_limit_millis: Some(200),
        memory_limit_bytes: Some(32 << 20),
    };
    let pod_r = PodResources {
        containers: vec![c],
        init_containers: vec![],
        pids_max: PidsMax::Limit(64),
    };
    let pod = root.create_pod("real-test", &pod_r).unwrap();
    let shim = root.create_shim(&pod).unwrap();
    let ctr = root.create_container(&pod, "c1", &c, false).unwrap();
    assert!(shim.is_dir() && ctr.is_dir());
    add_process(&ctr, pid).unwrap();
    assert_eq!(procs(&ctr).unwrap(), vec![pid]);
    assert_eq!(cgroup_of(pid), format!("{rel}/podreal-test/c1"));

    // Whatever controllers this kernel gives us, their files hold our values
    // and the others' files do not exist.
    let has = |c| root.controllers().contains(c);
    let read = |p: PathBuf| fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    if has(Controller::Memory) {
        assert_eq!(
            read(ctr.join(memory::MEMORY_MAX)),
            Some((32u64 << 20).to_string())
        );
    } else {
        assert_eq!(read(ctr.join(memory::MEMORY_MAX)), None);
    }
    if has(Controller::Cpu) {
        assert_eq!(
            read(ctr.join(cpu::CPU_MAX)).as_deref(),
            Some("20000 100000")
        );
        // 100m → 102 shares → weight 4.
        assert_eq!(read(ctr.join(cpu::CPU_WEIGHT)).as_deref(), Some("4"));
    } else {
        assert_eq!(read(ctr.join(cpu::CPU_MAX)), None);
    }
    if has(Controller::Pids) {
        assert_eq!(read(pod.join(pids::PIDS_MAX)).as_deref(), Some("64"));
    }
    if has(Controller::Memory) {
        // Absent on kernels without swap accounting (then skipped, not an error).
        let swap = read(ctr.join(memory::MEMORY_SWAP_MAX));
        assert!(swap.is_none() || swap.as_deref() == Some("0"), "{swap:?}");
        assert_eq!(
            read(pod.join(memory::MEMORY_MAX)),
            Some((32u64 << 20).to_string())
        );
    }
    let files: Vec<String> = fs::read_dir(&ctr)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            ["cpu.max", "cpu.weight", "memory.max", "memory.swap.max"].contains(&n.as_str())
        })
        .collect();
    eprintln!(
        "real cgroup test: root {} gives pods [{}]; limit files in c1: {files:?}",
        root.path().display(),
        root.controllers()
    );
    // cpu.stat exists without the cpu controller too.
    let stat = cpu_stat(&ctr).unwrap();
    eprintln!("c1 cpu.stat: {stat:?}; oom kills: {}", oom_kill_count(&ctr));
    assert_eq!(oom_kill_count(&ctr), 0);

    // Removal kills nothing: the busy leaf is named in the error.
    match CgroupRoot::remove(&pod) {
        Err(CgroupError::Busy { path }) => assert_eq!(path, ctr),
        other => panic!("expected Busy for {}, got {other:?}", ctr.display()),
    }
    assert!(ctr.is_dir());
    assert_eq!(procs(&ctr).unwrap(), vec![pid]);

    // Once our child is gone, everything we made goes.
    let mut child = guard.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut result = CgroupRoot::remove(&test_root);
    for _ in 0..50 {
        if result.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        result = CgroupRoot::remove(&test_root);
    }
    result.unwrap();
    assert!(!test_root.exists());
}

#[test]
fn detect_creates_an_explicit_root_only_inside_a_cgroup2_mount() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("not-a-cgroup");
    let err = CgroupRoot::detect(Some(outside.clone())).unwrap_err();
    assert!(err.to_string().contains("cgroup.controllers"), "{err}");
    assert!(!outside.exists());
    let relative = PathBuf::from(format!("picolet-relative-{}", std::process::id()));
    assert!(CgroupRoot::detect(Some(relative.clone())).is_err());
    assert!(!relative.exists());

    let Some(mount) = real_mount() else { return };
    let inside = mount.join(format!("picolet-test-{}-explicit", std::process::id()));
    let made = CgroupRoot::detect(Some(inside.clone()));
    if let Err(CgroupError::Create { source, .. }) = &made {
        if matches!(
            source.raw_os_error(),
            Some(libc::EROFS | libc::EACCES | libc::EPERM)
        ) {
            crate::testutil::cannot_run(&format!("cannot create {}: {source}", inside.display()));
            return;
        }
    }
    let _guard = Cleanup {
        child: None,
        dir: inside.clone(),
    };
    assert_eq!(made.unwrap().path(), inside);
    assert!(inside.join(CGROUP_CONTROLLERS).is_file());
}
