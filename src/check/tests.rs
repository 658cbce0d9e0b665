use super::boards::{self, Board, Identity, Value, parse_toml};
use super::evaluate::{State, kernel_version};
use super::facts::{self, Availability, Gather};
use super::*;
use std::fs;
use std::path::Path;

/// This build machine's mount table: a v1/v2 hybrid.
const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

/// Raspberry Pi OS bookworm: pure cgroup v2.
const PURE_V2: &str = "\
22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw
27 21 0:25 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
";

/// A fixture root: `files` are (relative path, contents).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

fn ns_files() -> Vec<(&'static str, &'static str)> {
    ["mnt", "pid", "net", "ipc", "uts", "user"]
        .iter()
        .map(|n| match *n {
            "mnt" => ("proc/self/ns/mnt", ""),
            "pid" => ("proc/self/ns/pid", ""),
            "net" => ("proc/self/ns/net", ""),
            "ipc" => ("proc/self/ns/ipc", ""),
            "uts" => ("proc/self/ns/uts", ""),
            _ => ("proc/self/ns/user", ""),
        })
        .collect()
}

fn check_tree(root: &Path, board: Option<&str>) -> Report {
    run(&Options {
        board: board.map(str::to_string),
        cgroup_root: None,
        root: root.to_path_buf(),
    })
    .unwrap()
}

fn item<'a>(r: &'a Report, name: &str) -> &'a Item {
    r.items
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no item {name} in {:#?}", r.items))
}

#[test]
fn every_embedded_board_file_parses_with_its_kernel_section() {
    let all = boards::all();
    assert_eq!(all.len(), boards::embedded().iter().count());
    for b in &all {
        assert!(!b.name.is_empty() && !b.rust_target.is_empty(), "{b:?}");
        assert!(
            matches!(b.status.as_str(), "built" | "not-yet-built"),
            "{b:?}"
        );
        if b.uses_cmdline_txt() {
            assert!(b.cgroup_switches.contains("cgroup_enable=memory"), "{b:?}");
        }
    }
    let mut ids: Vec<&str> = all.iter().map(|b| b.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    assert_eq!(
        boards::by_id("raspberry-pi-4").unwrap().cmdline_file,
        "/boot/firmware/cmdline.txt"
    );
    let err = boards::by_id("pi9").unwrap_err().to_string();
    assert!(
        err.contains("raspberry-pi-5") && err.contains("qemu-virt"),
        "{err}"
    );
}

#[test]
fn toml_subset_reads_multiline_arrays_comments_and_sections() {
    let text = "a = \"x # not a comment\" # comment\nn = 1_024\n[s]\nlist = [\n  \"p\", # c\n  \"q\\\"r\",\n]\nnested = [[1], [2, 3]]\n";
    let m = parse_toml("t", text).unwrap();
    assert_eq!(m["a"], Value::Str("x # not a comment".into()));
    assert_eq!(m["n"], Value::Int(1024));
    assert_eq!(
        m["s.list"],
        Value::Array(vec![Value::Str("p".into()), Value::Str("q\"r".into())])
    );
    assert_eq!(
        m["s.nested"],
        Value::Array(vec![
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Int(2), Value::Int(3)])
        ])
    );
    for bad in ["a = ", "a = [1, 2", "= 3", "a = \"open", "[s", "a = 1 2"] {
        assert!(parse_toml("t", bad).is_err(), "{bad:?} accepted");
    }
}

fn model(m: &str) -> Identity {
    Identity {
        model: Some(("/proc/device-tree/model".into(), m.into())),
        ..Identity::default()
    }
}

#[test]
fn device_tree_models_map_to_boards_by_longest_prefix() {
    let cases = [
        ("Raspberry Pi 4 Model B Rev 1.4", "raspberry-pi-4"),
        ("Raspberry Pi 400 Rev 1.0", "raspberry-pi-4"),
        ("Raspberry Pi Compute Module 4 Rev 1.0", "raspberry-pi-4"),
        ("Raspberry Pi 5 Model B Rev 1.0", "raspberry-pi-5"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "raspberry-pi-3"),
        ("Raspberry Pi Zero 2 W Rev 1.0", "raspberry-pi-zero-2-w"),
        ("Raspberry Pi Zero W Rev 1.1", "raspberry-pi-zero"),
    ];
    for (m, want) in cases {
        let d = boards::detect(&model(m), "aarch64");
        assert_eq!(d.board.id, want, "{m}");
        assert!(d.how.contains(m), "{}", d.how);
    }
    let d = boards::detect(&model("Pine64 RockPro64 v2.1"), "aarch64");
    assert_eq!(d.board.id, "generic-aarch64");
    assert!(d.how.contains("not a known board"), "{}", d.how);
}

#[test]
fn qemu_virt_is_detected_on_aarch64_only() {
    let id = Identity {
        compatible: vec!["linux,dummy-virt".into()],
        ..Identity::default()
    };
    assert_eq!(boards::detect(&id, "aarch64").board.id, "qemu-virt");
    let x86 = Identity {
        dmi_vendor: Some("QEMU".into()),
        ..Identity::default()
    };
    let d = boards::detect(&x86, "x86_64");
    assert_eq!(d.board.id, "generic-x86_64");
    assert_eq!(d.board.cmdline_file, "/etc/default/grub");
}

#[test]
fn identity_is_read_from_the_device_tree_with_nul_terminators() {
    let root = tree(&[
        ("proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\0"),
        (
            "sys/firmware/devicetree/base/compatible",
            "raspberrypi,5-model-b\0brcm,bcm2712\0",
        ),
    ]);
    let id = boards::read_identity(root.path());
    assert_eq!(
        id.model,
        Some((
            "/proc/device-tree/model".into(),
            "Raspberry Pi 5 Model B Rev 1.0".into()
        ))
    );
    assert_eq!(id.compatible, vec!["raspberrypi,5-model-b", "brcm,bcm2712"]);
}

#[test]
fn kernel_versions_parse_from_release_strings() {
    assert_eq!(kernel_version("6.1.0-50-cloud-arm64"), Some((6, 1)));
    assert_eq!(kernel_version("6.12.25+rpt-rpi-v8"), Some((6, 12)));
    assert_eq!(kernel_version("4.9"), Some((4, 9)));
    assert_eq!(kernel_version("garbage"), None);
}

/// A Raspberry Pi 4 on bookworm whose kernel offers no memory controller
/// (the Pi default without cgroup_enable=memory).
fn pi_without_memory() -> tempfile::TempDir {
    let mut files = ns_files();
    files.extend([
        ("proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\0"),
        ("proc/sys/kernel/osrelease", "6.6.51+rpt-rpi-v8\n"),
        ("proc/sys/user/max_user_namespaces", "7000\n"),
        ("proc/self/mountinfo", PURE_V2),
        ("proc/filesystems", "nodev\tcgroup2\nnodev\toverlay\n"),
        ("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io pids\n"),
        ("boot/firmware/cmdline.txt", "console=tty1 root=PARTUUID=1-02\n"),
        ("run/systemd/system/.keep", ""),
        (
            "lib/modules/6.6.51+rpt-rpi-v8/modules.dep",
            "kernel/drivers/net/veth.ko.xz:\nkernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz\n\
             kernel/net/netfilter/nf_tables.ko.xz:\nkernel/net/netfilter/nft_chain_nat.ko.xz:\n\
             kernel/net/netfilter/nft_masq.ko.xz:\n",
        ),
        ("lib/modules/6.6.51+rpt-rpi-v8/modules.builtin", "kernel/fs/ext4/ext4.ko\n"),
        ("proc/sys/net/ipv4/ip_forward", "0\n"),
    ]);
    tree(&files)
}

#[test]
fn pi_without_memory_controller_fails_with_the_cmdline_txt_fix() {
    let root = pi_without_memory();
    let r = check_tree(root.path(), None);
    assert_eq!(r.board.id, "raspberry-pi-4");
    assert_eq!(r.cgroup.hierarchy, "unified");
    assert!(!r.passed);
    let mem = item(&r, "cgroup.memory");
    assert_eq!(mem.state, State::Missing);
    assert!(mem.required);
    let fix = mem.fix.as_deref().unwrap();
    assert!(
        fix.contains(
            "sudo sed -i '1 s/$/ cgroup_enable=memory cgroup_memory=1 \
             systemd.unified_cgroup_hierarchy=1/' /boot/firmware/cmdline.txt"
        ),
        "{fix}"
    );
    assert_eq!(
        r.failures().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["cgroup.memory"]
    );
    for ok in [
        "kernel",
        "cgroup2",
        "cgroup.cpu",
        "cgroup.pids",
        "overlayfs",
        "veth",
        "bridge",
        "nf_tables",
        "nft.nat",
        "nft.masq",
    ] {
        assert_eq!(item(&r, ok).state, State::Ok, "{ok}: {:?}", item(&r, ok));
    }
    // The pod network's pieces are optional, reported with their fix.
    let fib = item(&r, "nft.fib");
    assert_eq!((fib.state, fib.required), (State::Missing, false));
    assert!(
        fib.fix
            .as_deref()
            .unwrap()
            .contains("modprobe nft_fib_ipv4")
    );
    let fwd = item(&r, "ip_forward");
    assert_eq!(fwd.state, State::Missing);
    assert!(
        fwd.fix
            .as_deref()
            .unwrap()
            .contains("net.ipv4.ip_forward=1")
    );
    assert_eq!(item(&r, "forward-policy").state, State::Unknown);
    assert!(item(&r, "veth").detail.contains("veth.ko.xz"));
    // Not the live system: probes are not run and say so.
    assert!(
        item(&r, "namespace.pid")
            .detail
            .contains("unshare not tried")
    );
    assert_eq!(item(&r, "pidfd").state, State::Unknown);
    assert_eq!(item(&r, "devices").state, State::Unknown);
    let pivot = item(&r, "pivot_root");
    assert_eq!(pivot.state, State::Ok);
    assert_eq!(
        pivot.detail,
        "/ is ext4: containers pivot_root into their root"
    );
    let text = r.text();
    assert!(text.contains("MISSING  cgroup.memory"), "{text}");
    assert!(text.contains("result: FAIL"), "{text}");
}

#[test]
fn pi_before_bookworm_gets_the_old_cmdline_path() {
    let root = pi_without_memory();
    fs::remove_file(root.path().join("boot/firmware/cmdline.txt")).unwrap();
    fs::write(root.path().join("boot/cmdline.txt"), "console=tty1\n").unwrap();
    let r = check_tree(root.path(), None);
    let fix = item(&r, "cgroup.memory").fix.clone().unwrap();
    assert!(
        fix.contains("/boot/cmdline.txt") && !fix.contains("firmware"),
        "{fix}"
    );
}

#[test]
fn hybrid_host_reports_controllers_bound_to_v1_with_the_grub_fix() {
    let mut files = ns_files();
    files.extend([
        ("proc/sys/kernel/osrelease", "6.1.0-28-amd64\n"),
        ("proc/self/mountinfo", HYBRID),
        ("proc/filesystems", "nodev\tcgroup\nnodev\tcgroup2\n"),
        ("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n"),
        ("run/systemd/system/.keep", ""),
        (
            "lib/modules/6.1.0-28-amd64/modules.dep",
            "kernel/fs/overlayfs/overlay.ko:\n",
        ),
    ]);
    let root = tree(&files);
    let r = check_tree(root.path(), Some("generic-aarch64"));
    assert_eq!(r.cgroup.hierarchy, "hybrid");
    assert_eq!(
        r.cgroup.cgroup2_mount.as_deref(),
        Some(Path::new("/sys/fs/cgroup/unified"))
    );
    for (c, mount) in [
        ("memory", "/sys/fs/cgroup/memory"),
        ("cpu", "/sys/fs/cgroup/cpu"),
        ("pids", "/sys/fs/cgroup/pids"),
        ("io", "/sys/fs/cgroup/blkio"),
        ("cpuset", "/sys/fs/cgroup/cpuset"),
    ] {
        let i = item(&r, &format!("cgroup.{c}"));
        assert_eq!(i.state, State::Missing, "{i:?}");
        assert!(
            i.detail
                .contains(&format!("bound to the cgroup v1 hierarchy at {mount}")),
            "{i:?}"
        );
        assert!(
            i.fix
                .as_deref()
                .unwrap()
                .contains("systemd.unified_cgroup_hierarchy=1 /' /etc/default/grub"),
            "{i:?}"
        );
    }
    assert!(
        item(&r, "cgroup2")
            .detail
            .starts_with("hybrid v1/v2 hierarchy")
    );
    // Optional items never fail the check.
    let failed: Vec<_> = r.failures().map(|i| i.name.clone()).collect();
    assert_eq!(failed, ["cgroup.cpu", "cgroup.memory", "cgroup.pids"]);
    // No kernel config and no veth in modules.dep: absent, not unknown.
    assert_eq!(item(&r, "veth").state, State::Missing);
    let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
    assert_eq!(json["passed"], false);
    assert_eq!(json["cgroup"]["hierarchy"], "hybrid");
    assert_eq!(json["cgroup"]["v1"]["memory"], "/sys/fs/cgroup/memory");
    assert_eq!(json["cgroup"]["v1"]["io"], "/sys/fs/cgroup/blkio");
    assert_eq!(json["board"]["id"], "generic-aarch64");
    assert_eq!(json["items"][0]["name"], "kernel");
}

#[test]
fn a_guest_without_cgroup2_mounted_is_told_to_mount_it() {
    let mut files = ns_files();
    files.extend([
        ("proc/sys/kernel/osrelease", "6.1.0-50-cloud-arm64\n"),
        ("proc/self/mountinfo", "1 0 0:1 / / rw - rootfs rootfs rw\n"),
        ("proc/filesystems", "nodev\tcgroup2\n"),
        (
            "sys/firmware/devicetree/base/compatible",
            "linux,dummy-virt\0",
        ),
    ]);
    let root = tree(&files);
    let r = check_tree(root.path(), Some("qemu-virt"));
    assert_eq!(r.cgroup.hierarchy, "none");
    let cg = item(&r, "cgroup2");
    assert_eq!(cg.state, State::Missing);
    assert_eq!(
        cg.fix.as_deref(),
        Some("mount -t cgroup2 none /sys/fs/cgroup")
    );
    assert_eq!(item(&r, "cgroup.memory").detail, "no cgroup2 mount");
    // No filesystems entry, module list or config for overlay: unknown.
    assert_eq!(item(&r, "overlayfs").state, State::Unknown);
    assert!(!r.passed);
    // Running from the initramfs: a warning, which never fails the check.
    let pivot = item(&r, "pivot_root");
    assert_eq!(pivot.state, State::Warn);
    assert!(!pivot.fails());
    assert!(
        pivot.detail.contains("MS_MOVE + chroot"),
        "{}",
        pivot.detail
    );
    assert!(pivot.fix.as_deref().unwrap().contains("switch_root"));
    let text = r.text();
    assert!(text.contains("  warn     pivot_root"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
    let items = json["items"].as_array().unwrap();
    let last = items.last().unwrap();
    assert_eq!(
        (&last["name"], &last["state"]),
        (&"pivot_root".into(), &"warn".into())
    );
}

/// Which `/` pivot_root refuses: the namespace's first mount, its own
/// parent in mountinfo (the initramfs as ramfs, tmpfs or `rootfs`), or any
/// mount of type `rootfs` (the initramfs bind-mounted over itself).
#[test]
fn the_root_mount_is_the_initramfs_when_it_is_its_own_parent_or_of_type_rootfs() {
    use facts::{RootMount, root_mount};
    let m = |fstype: &str, initial| {
        Some(RootMount {
            fstype: fstype.into(),
            initial,
        })
    };
    assert_eq!(root_mount(PURE_V2), m("ext4", false));
    // This machine's cgroup mounts only: no mount at /.
    assert_eq!(root_mount(HYBRID), None);
    assert_eq!(
        root_mount("1 1 0:2 / / rw - rootfs rootfs rw\n"),
        m("rootfs", true)
    );
    assert_eq!(
        root_mount("1 1 0:2 / / rw shared:1 - tmpfs none rw\n"),
        m("tmpfs", true)
    );
    // The top-most mount at / counts: here a tmpfs over the initramfs.
    let over = "1 1 0:2 / / rw - rootfs rootfs rw\n30 1 0:30 / / rw - tmpfs root rw\n";
    assert_eq!(root_mount(over), m("tmpfs", false));
    let bound = "1 1 0:2 / / rw - rootfs rootfs rw\n31 1 0:2 / / rw - rootfs rootfs rw\n";
    assert_eq!(root_mount(bound), m("rootfs", true));
}

#[test]
fn kernel_config_decides_when_there_are_no_module_lists() {
    let root = tree(&[
        ("proc/sys/kernel/osrelease", "5.15.0\n"),
        (
            "boot/config-5.15.0",
            "CONFIG_VETH=y\nCONFIG_BRIDGE=m\n# CONFIG_OVERLAY_FS is not set\n",
        ),
    ]);
    let board = boards::by_id("generic-aarch64").unwrap();
    let f = facts::gather(Gather {
        root: root.path(),
        live: false,
        cgroup_root: None,
        identity: Identity::default(),
        board: &board,
    });
    assert!(matches!(&f.veth, Availability::Builtin(w) if w.contains("CONFIG_VETH=y")));
    assert!(matches!(&f.bridge, Availability::Unknown(w) if w.contains("modules.dep is missing")));
    assert!(
        matches!(&f.overlay, Availability::Absent(w) if w.contains("CONFIG_OVERLAY_FS is not set"))
    );
}

#[test]
fn a_forward_policy_of_drop_is_reported_with_the_accept_rules_to_add() {
    let root = pi_without_memory();
    let board = boards::by_id("raspberry-pi-4").unwrap();
    let mut f = facts::gather(Gather {
        root: root.path(),
        live: false,
        cgroup_root: None,
        identity: Identity::default(),
        board: &board,
    });
    let detected = boards::Detected {
        board: board.clone(),
        how: "test".into(),
    };
    f.forward_drop = Ok(vec![]);
    assert_eq!(
        item(&report(&f, &detected), "forward-policy").state,
        State::Ok
    );
    f.forward_drop = Ok(vec!["ip filter FORWARD".into()]);
    let r = report(&f, &detected);
    let i = item(&r, "forward-policy");
    assert_eq!((i.state, i.required), (State::Missing, false));
    assert!(i.detail.contains("ip filter FORWARD"), "{}", i.detail);
    assert!(i.detail.contains("cannot override"), "{}", i.detail);
    assert!(
        i.fix
            .as_deref()
            .unwrap()
            .contains("iptables -I FORWARD -s 10.87.0.0/24 -j ACCEPT")
    );
}

#[test]
fn user_namespaces_limited_to_zero_are_reported_with_the_sysctl_fix() {
    let root = pi_without_memory();
    fs::write(root.path().join("proc/sys/user/max_user_namespaces"), "0\n").unwrap();
    let r = check_tree(root.path(), None);
    let u = item(&r, "namespace.user");
    assert!(!u.required);
    assert_eq!(u.state, State::Missing);
    assert!(
        u.fix
            .as_deref()
            .unwrap()
            .contains("user.max_user_namespaces=15000")
    );
}

#[test]
fn version_line_names_the_target_triple_with_its_libc_and_the_profile() {
    let v = version_line();
    assert!(v.starts_with(&format!("picolet {VERSION} (")), "{v}");
    assert!(TARGET.contains("linux"), "{TARGET}");
    assert!(
        TARGET.ends_with("gnu") || TARGET.contains("musl") || TARGET.contains("gnueabi"),
        "{TARGET}"
    );
    assert!(matches!(PROFILE, "debug" | "release"), "{PROFILE}");
    assert!(v.contains(TARGET) && v.contains(PROFILE), "{v}");
}

#[test]
fn this_machine_is_checked_live_and_its_hierarchy_reported_as_it_is() {
    let r = run(&Options::default()).unwrap();
    println!("{}", r.text());
    let mounts = crate::runtime::cgroup::hierarchy::Mounts::parse(
        &fs::read_to_string("/proc/self/mountinfo").unwrap(),
    );
    let expected = match (mounts.cgroup2.is_empty(), mounts.v1.is_empty()) {
        (false, true) => "unified",
        (false, false) => "hybrid",
        (true, false) => "legacy",
        (true, true) => "none",
    };
    assert_eq!(r.cgroup.hierarchy, expected);
    for c in crate::runtime::cgroup::Controller::ALL {
        let i = item(&r, &format!("cgroup.{c}"));
        if let Some(m) = mounts.v1_mount(c) {
            // This build machine: memory, cpu and pids bound to v1.
            assert_eq!(i.state, State::Missing, "{i:?}");
            let want = format!("bound to the cgroup v1 hierarchy at {}", m.display());
            assert!(i.detail.contains(&want), "{i:?}");
        }
    }
    if crate::testutil::needs_root("checking the unshare probes") {
        return;
    }
    // (The user namespace is not asserted: qemu-user, which runs these
    // tests for aarch64, has threads of its own, so unshare gives EINVAL.)
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        let i = item(&r, &format!("namespace.{ns}"));
        assert!(i.detail.contains("unshare works"), "{i:?}");
    }
    assert_eq!(item(&r, "pidfd").state, State::Ok);
    // qemu-user (the aarch64 unit tests) does not emulate bpf(2).
    if crate::check::qemu_user().is_none() {
        let devices = item(&r, "devices");
        assert_eq!(devices.state, State::Ok, "{devices:?}");
    }
    assert_eq!(item(&r, "kernel").state, State::Ok);
}

#[test]
fn board_option_overrides_detection_and_unknown_boards_are_refused() {
    let root = pi_without_memory();
    let r = check_tree(root.path(), Some("raspberry-pi-5"));
    assert_eq!(r.board.id, "raspberry-pi-5");
    assert_eq!(r.board.detected_from, "--board");
    let err = run(&Options {
        board: Some("nope".into()),
        ..Options::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("unknown board \"nope\""), "{err}");
    let _: Board = boards::generic("riscv64");
}

#[test]
fn a_board_of_another_architecture_than_the_machine_fails_the_board_item() {
    let root = pi_without_memory();
    let arch = root.path().join("proc/sys/kernel/arch");
    // Unknown machine (no file in the fixture): not judged.
    let r = check_tree(root.path(), Some("raspberry-pi-4"));
    assert_eq!(item(&r, "board").state, State::Unknown);
    for (machine, board, ok) in [
        ("aarch64", "raspberry-pi-4", true),
        // A Pi 4 or 3 with a 32-bit kernel.
        ("armv7l", "raspberry-pi-4", true),
        ("armv7l", "raspberry-pi-3", true),
        // A 64-bit CPU may run a 32-bit kernel; the Zero's ARMv6 is no aarch64.
        ("armv7l", "raspberry-pi-5", true),
        ("aarch64", "raspberry-pi-zero", false),
        ("armv6l", "raspberry-pi-zero", true),
        ("x86_64", "raspberry-pi-4", false),
        ("x86_64", "generic-aarch64", false),
    ] {
        fs::write(&arch, format!("{machine}\n")).unwrap();
        let r = check_tree(root.path(), Some(board));
        let i = item(&r, "board");
        assert!(i.required);
        assert_eq!(i.state == State::Ok, ok, "{machine} {board}: {i:?}");
        if !ok {
            assert!(
                i.detail.contains(board)
                    && i.detail.contains(&format!("this machine is {machine}")),
                "{}",
                i.detail
            );
            assert!(r.failures().any(|f| f.name == "board"));
            assert!(i.fix.as_deref().unwrap().contains("without --board"));
        }
    }
    // Detected (no --board): the board matches by construction.
    fs::write(&arch, "aarch64\n").unwrap();
    let r = check_tree(root.path(), None);
    assert_eq!(item(&r, "board").state, State::Ok);
}

#[test]
fn this_machine_checked_for_a_board_of_another_architecture_fails_with_uname_machine() {
    let machine = std::fs::read_to_string("/proc/sys/kernel/arch").unwrap();
    let machine = machine.trim();
    let other = if machine == "x86_64" {
        "raspberry-pi-4"
    } else {
        "generic-x86_64-does-not-exist"
    };
    if other != "raspberry-pi-4" {
        return; // Only meaningful on x86_64 build machines.
    }
    let r = run(&Options {
        board: Some(other.into()),
        ..Options::default()
    })
    .unwrap();
    let i = item(&r, "board");
    assert_eq!(i.state, State::Missing, "{i:?}");
    assert!(!r.passed);
    assert!(r.text().contains("this machine is x86_64"), "{}", r.text());
}
