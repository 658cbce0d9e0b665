//! Tempdir fixtures: plain files stand in for cgroupfs interface files.

use super::*;
use crate::runtime::cgroup::pids::PidsMax;
use crate::runtime::cgroup::{CGROUP_PROCS, cpu, memory, pids};
use std::fs;

/// A fake cgroup dir with `cgroup.controllers` = `controllers`, an empty
/// `cgroup.subtree_control` and `cgroup.procs` = `procs`.
fn fixture(controllers: &str, procs: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join(CGROUP_CONTROLLERS), controllers).unwrap();
    fs::write(root.join(CGROUP_SUBTREE_CONTROL), "").unwrap();
    fs::write(root.join(CGROUP_PROCS), procs).unwrap();
    (dir, root)
}

fn open(root: &Path) -> CgroupRoot {
    CgroupRoot::open(root.to_path_buf(), &Mounts::default(), None).unwrap()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

const ALL: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";

#[test]
fn open_reports_available_and_missing_controllers() {
    let (_d, root) = fixture(ALL, "");
    let r = open(&root);
    assert_eq!(r.controllers(), ControllerSet::all());
    assert!(r.missing().is_empty());
    assert!(r.available().iter().any(|c| c == "hugetlb"));
    assert!(r.skipped_files().is_empty());

    let (_d, root) = fixture("cpu pids\n", "");
    let r = open(&root);
    assert_eq!(r.controllers().to_string(), "cpu pids");
    let missing: Vec<_> = r.missing().iter().map(|m| m.controller).collect();
    assert_eq!(
        missing,
        [Controller::Memory, Controller::Io, Controller::Cpuset]
    );
    assert_eq!(r.skipped_files(), ["memory.max", "memory.swap.max"]);
}

#[test]
fn open_without_cgroup_controllers_fails_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = CgroupRoot::open(dir.path().to_path_buf(), &Mounts::default(), None).unwrap_err();
    assert!(err.to_string().contains("cgroup.controllers"), "{err}");
}

#[test]
fn missing_controllers_are_explained_by_v1_binding_delegation_or_kernel() {
    let (_d, root) = fixture("cpu io\n", "");
    let top = root.parent().unwrap().join("top");
    fs::create_dir(&top).unwrap();
    fs::write(top.join(CGROUP_CONTROLLERS), "cpu io pids memory\n").unwrap();
    let mounts =
        Mounts::parse("35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n");
    let r = CgroupRoot::open(root, &mounts, Some(&top)).unwrap();
    let reasons: Vec<_> = r
        .missing()
        .iter()
        .map(|m| (m.controller, m.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                Controller::Memory,
                MissingReason::BoundToV1 {
                    mount: "/sys/fs/cgroup/memory".into()
                }
            ),
            (Controller::Pids, MissingReason::NotDelegated),
            (Controller::Cpuset, MissingReason::NotInKernel),
        ]
    );
}

#[test]
fn log_missing_once_logs_only_the_first_time() {
    let (_d, root) = fixture("cpu\n", "");
    let r = open(&root);
    assert!(r.log_missing_once());
    assert!(!r.log_missing_once());
}

#[test]
fn prepare_moves_the_agent_into_its_leaf_when_it_is_inside_the_root() {
    let (_d, root) = fixture(ALL, "17\n4242\n");
    let mut r = open(&root);
    let p = r.prepare_for(4242).unwrap();
    assert_eq!(p.moved_to, Some(root.join("agent")));
    assert_eq!(read(&root.join("agent").join(CGROUP_PROCS)), "4242");
    assert_eq!(p.enabled, ControllerSet::all());
    assert_eq!(
        read(&root.join(CGROUP_SUBTREE_CONTROL)),
        "+cpu +memory +pids +io +cpuset"
    );
}

#[test]
fn prepare_leaves_an_agent_outside_the_root_where_it_is() {
    let (_d, root) = fixture("memory pids\n", "1\n2\n");
    let mut r = open(&root);
    let p = r.prepare_for(4242).unwrap();
    assert_eq!(p.moved_to, None);
    assert!(!root.join("agent").exists());
    assert_eq!(read(&root.join(CGROUP_SUBTREE_CONTROL)), "+memory +pids");
}

#[test]
fn prepare_writes_nothing_when_controllers_are_already_enabled() {
    let (_d, root) = fixture(ALL, "");
    fs::write(
        root.join(CGROUP_SUBTREE_CONTROL),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    let mut r = open(&root);
    let p = r.prepare_for(1).unwrap();
    assert_eq!(p.enabled, ControllerSet::EMPTY);
    assert_eq!(p.already_enabled, ControllerSet::all());
    // The kernel never lists '+': an unchanged file proves nothing was written.
    assert_eq!(
        read(&root.join(CGROUP_SUBTREE_CONTROL)),
        "cpuset cpu io memory pids\n"
    );
}

#[test]
fn prepare_enables_only_the_controllers_not_yet_enabled() {
    let (_d, root) = fixture(ALL, "");
    fs::write(root.join(CGROUP_SUBTREE_CONTROL), "cpu memory\n").unwrap();
    let mut r = open(&root);
    let p = r.prepare_for(1).unwrap();
    assert_eq!(p.enabled.to_string(), "pids io cpuset");
    assert_eq!(p.already_enabled.to_string(), "cpu memory");
    assert_eq!(
        read(&root.join(CGROUP_SUBTREE_CONTROL)),
        "+pids +io +cpuset"
    );
}

#[test]
fn prepare_with_no_usable_controllers_writes_nothing() {
    let (_d, root) = fixture("hugetlb\n", "");
    let mut r = open(&root);
    let p = r.prepare_for(1).unwrap();
    assert_eq!(p, Prepared::default());
    assert_eq!(read(&root.join(CGROUP_SUBTREE_CONTROL)), "");
}

#[test]
fn controllers_that_cannot_be_enabled_become_missing_and_prepare_succeeds() {
    let (_d, root) = fixture("cpu memory\n", "");
    // Readable, but not writable even by root.
    fs::remove_file(root.join(CGROUP_SUBTREE_CONTROL)).unwrap();
    std::os::unix::fs::symlink("/proc/version", root.join(CGROUP_SUBTREE_CONTROL)).unwrap();
    let mut r = open(&root);
    let p = r.prepare_for(1).unwrap();
    assert_eq!(p.enabled, ControllerSet::EMPTY);
    assert_eq!(r.controllers(), ControllerSet::EMPTY);
    let failed: Vec<_> = r
        .missing()
        .iter()
        .filter(|m| matches!(m.reason, MissingReason::EnableFailed { .. }))
        .map(|m| m.controller)
        .collect();
    assert_eq!(failed, [Controller::Cpu, Controller::Memory]);
    // Pods are still created, without the files of the failed controllers.
    let pod = r.create_pod("u1", &PodResources::default()).unwrap();
    assert!(!pod.join(cpu::CPU_MAX).exists());
    assert!(!pod.join(memory::MEMORY_MAX).exists());
}

fn limited_pod() -> PodResources {
    let c = ContainerResources {
        cpu_request_millis: Some(250),
        cpu_limit_millis: Some(500),
        memory_limit_bytes: Some(64 << 20),
    };
    PodResources {
        containers: vec![c, c],
        init_containers: vec![],
        pids_max: PidsMax::Limit(1024),
    }
}

#[test]
fn create_pod_writes_pod_limits_and_enables_controllers_for_children() {
    let (_d, root) = fixture(ALL, "");
    let r = open(&root);
    let pod = r.create_pod("1234-abcd", &limited_pod()).unwrap();
    assert_eq!(pod, root.join("pod1234-abcd"));
    assert_eq!(read(&pod.join(cpu::CPU_MAX)), "100000 100000");
    // requests 250m + 250m = 500m → 512 shares → weight 20.
    assert_eq!(read(&pod.join(cpu::CPU_WEIGHT)), "20");
    assert_eq!(
        read(&pod.join(memory::MEMORY_MAX)),
        (128u64 << 20).to_string()
    );
    assert_eq!(read(&pod.join(pids::PIDS_MAX)), "1024");
    assert!(!pod.join(memory::MEMORY_SWAP_MAX).exists());
    assert_eq!(
        read(&pod.join(CGROUP_SUBTREE_CONTROL)),
        "+cpu +memory +pids +io +cpuset"
    );
}

#[test]
fn create_pod_again_reuses_the_dir_and_skips_enabled_controllers() {
    let (_d, root) = fixture("cpu memory\n", "");
    let r = open(&root);
    let pod = r.create_pod("u", &limited_pod()).unwrap();
    fs::write(pod.join(CGROUP_SUBTREE_CONTROL), "cpu memory\n").unwrap();
    assert_eq!(r.create_pod("u", &limited_pod()).unwrap(), pod);
    assert_eq!(read(&pod.join(CGROUP_SUBTREE_CONTROL)), "cpu memory\n");
}

#[test]
fn create_container_writes_container_limits_in_its_leaf() {
    let (_d, root) = fixture(ALL, "");
    let r = open(&root);
    let pod = r.create_pod("u", &limited_pod()).unwrap();
    let c = r
        .create_container(&pod, "web", &limited_pod().containers[0], false)
        .unwrap();
    assert_eq!(c, pod.join("web"));
    assert_eq!(read(&c.join(cpu::CPU_MAX)), "50000 100000");
    assert_eq!(read(&c.join(cpu::CPU_WEIGHT)), "10");
    assert_eq!(read(&c.join(memory::MEMORY_MAX)), (64u64 << 20).to_string());
    assert_eq!(read(&c.join(memory::MEMORY_SWAP_MAX)), "0");
    assert!(!c.join(pids::PIDS_MAX).exists());
    let shim = r.create_shim(&pod).unwrap();
    assert_eq!(shim, pod.join("shim"));
    assert!(shim.is_dir());
}

#[test]
fn container_and_pod_names_are_validated() {
    let (_d, root) = fixture(ALL, "");
    let r = open(&root);
    let pod = r.create_pod("u", &PodResources::default()).unwrap();
    let none = ContainerResources::default();
    for bad in ["shim", "", "..", "a/b", "cgroup.procs"] {
        let err = r.create_container(&pod, bad, &none, false).unwrap_err();
        assert!(
            matches!(err, CgroupError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(r.create_pod("../x", &PodResources::default()).is_err());
    assert!(!root.join("x").exists());
}

/// For each of the 32 subsets of controllers: exactly the files of the
/// present controllers are written, at pod and container level.
#[test]
fn only_files_of_existing_controllers_are_written_for_every_subset() {
    let pod_files = [
        cpu::CPU_MAX,
        cpu::CPU_WEIGHT,
        memory::MEMORY_MAX,
        pids::PIDS_MAX,
    ];
    let ctr_files = [
        cpu::CPU_MAX,
        cpu::CPU_WEIGHT,
        memory::MEMORY_MAX,
        memory::MEMORY_SWAP_MAX,
    ];
    for bits in 0u8..32 {
        let set: ControllerSet = Controller::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, c)| c)
            .collect();
        let (_d, root) = fixture(&set.to_string(), "");
        let r = open(&root);
        let pod = r.create_pod("p", &limited_pod()).unwrap();
        let ctr = r
            .create_container(&pod, "c", &limited_pod().containers[0], false)
            .unwrap();
        let controller_of = |f: &str| Controller::ALL.into_iter().find(|c| c.files().contains(&f));
        for (dir, files) in [(&pod, &pod_files[..]), (&ctr, &ctr_files[..])] {
            for f in files {
                let c = controller_of(f).unwrap();
                assert_eq!(
                    dir.join(f).exists(),
                    set.contains(c),
                    "controllers [{set}]: {} {f}",
                    dir.display()
                );
            }
        }
        let enabled = if set.is_empty() {
            String::new()
        } else {
            read(&pod.join(CGROUP_SUBTREE_CONTROL))
        };
        assert_eq!(enabled, set.enable_line(), "controllers [{set}]");
        let applied = r
            .apply(&ctr, &limited_pod().containers[0].settings())
            .unwrap();
        assert_eq!(applied.written.len() + applied.skipped.len(), 4);
        for f in &applied.skipped {
            assert!(!set.contains(controller_of(f).unwrap()));
        }
    }
}

#[test]
fn remove_rmdirs_children_first_and_ignores_a_missing_dir() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("podx");
    fs::create_dir_all(pod.join("shim")).unwrap();
    fs::create_dir_all(pod.join("web")).unwrap();
    CgroupRoot::remove(&pod).unwrap();
    assert!(!pod.exists());
    CgroupRoot::remove(&pod).unwrap();
}

#[test]
fn remove_fails_with_the_path_when_rmdir_fails() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("podx");
    fs::create_dir_all(pod.join("web")).unwrap();
    // A regular file makes rmdir fail (ENOTEMPTY) on a fixture; nothing is unlinked.
    fs::write(pod.join("web").join("cpu.max"), "max 100000").unwrap();
    let err = CgroupRoot::remove(&pod).unwrap_err();
    assert!(
        matches!(err, CgroupError::Remove { ref path, .. } if path == &pod.join("web")),
        "{err}"
    );
    assert!(pod.join("web").join("cpu.max").exists());
}

#[test]
fn a_restarted_agent_in_its_leaf_uses_the_parent_as_root() {
    assert_eq!(
        root_of_own_cgroup("/system.slice/picolet.service/agent"),
        "/system.slice/picolet.service"
    );
    assert_eq!(root_of_own_cgroup("/agent"), "/");
    assert_eq!(root_of_own_cgroup("/"), "/");
    assert_eq!(root_of_own_cgroup("/myagent"), "/myagent");
    assert_eq!(
        root_of_own_cgroup("/system.slice/picolet.service"),
        "/system.slice/picolet.service"
    );
}

#[test]
fn a_kernel_without_swap_accounting_skips_memory_swap_max_only() {
    let (_d, root) = fixture(ALL, "");
    let r = open(&root);
    let pod = r.create_pod("u", &limited_pod()).unwrap();
    let ctr = pod.join("c");
    fs::create_dir(&ctr).unwrap();
    // A dangling symlink into a missing dir: writing it fails with ENOENT,
    // as the absent interface file does on cgroupfs.
    std::os::unix::fs::symlink("/nonexistent-dir/x", ctr.join(memory::MEMORY_SWAP_MAX)).unwrap();
    let settings = limited_pod().containers[0].settings();
    let applied = r.apply(&ctr, &settings).unwrap();
    assert_eq!(applied.skipped, [memory::MEMORY_SWAP_MAX]);
    assert_eq!(
        applied.written,
        [cpu::CPU_MAX, cpu::CPU_WEIGHT, memory::MEMORY_MAX]
    );
    // Any other missing file is an error naming it.
    fs::remove_file(ctr.join(memory::MEMORY_SWAP_MAX)).unwrap();
    fs::remove_file(ctr.join(memory::MEMORY_MAX)).unwrap();
    std::os::unix::fs::symlink("/nonexistent-dir/x", ctr.join(memory::MEMORY_MAX)).unwrap();
    let err = r.apply(&ctr, &settings).unwrap_err().to_string();
    assert!(err.contains("memory.max"), "{err}");
}

#[test]
fn pod_cgroups_lists_only_pod_uuid_dirs_and_populated_reads_cgroup_events() {
    let (_d, root) = fixture(ALL, "");
    let uid = "0b6c9a52-1f0e-4d7a-9a41-3c2d5e6f7a80";
    for name in [
        format!("pod{uid}"),
        "pod-not-a-uuid".to_string(),
        "podABCDEF00-1f0e-4d7a-9a41-3c2d5e6f7a80".to_string(), // upper case
        "pod0b6c9a52-1f0e-4d7a-9a41-3c2d5e6f7a8".to_string(),  // short
        format!("x{uid}"),
        "agent".to_string(),
    ] {
        fs::create_dir(root.join(name)).unwrap();
    }
    fs::write(root.join(format!("pod{uid}-file")), "").unwrap();
    let r = open(&root);
    assert_eq!(
        r.pod_cgroups(),
        [(uid.to_string(), root.join(format!("pod{uid}")))]
    );
    assert!(is_uuid(uid) && !is_uuid("") && !is_uuid("0b6c9a52-1f0e-4d7a-9a41"));

    let pod = root.join(format!("pod{uid}"));
    assert_eq!(CgroupRoot::populated(&pod), None);
    fs::write(pod.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    assert_eq!(CgroupRoot::populated(&pod), Some(true));
    fs::write(pod.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
    assert_eq!(CgroupRoot::populated(&pod), Some(false));
}
