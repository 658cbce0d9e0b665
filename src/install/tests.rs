use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A stand-in for the picolet binary of the boards the tests name (the test
/// binary is large, and of this machine): an aarch64 ELF header.
fn fake_exe(dir: &Path) -> PathBuf {
    let p = dir.join("picolet-under-test");
    fs::write(&p, elf::header(64, true, elf::EM_AARCH64)).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn staged(board: Option<&str>) -> (tempfile::TempDir, Outcome) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = install(&Options {
        root: root.clone(),
        board: board.map(str::to_string),
        exe: fake_exe(dir.path()),
        force: false,
    })
    .unwrap();
    (dir, out)
}

#[test]
fn install_into_a_root_writes_binary_unit_config_and_manifests_with_their_modes() {
    let (dir, out) = staged(Some("raspberry-pi-4"));
    let root = dir.path().join("root");
    let bin = root.join("usr/local/bin/picolet");
    assert_eq!(
        fs::read(&bin).unwrap(),
        fs::read(dir.path().join("picolet-under-test")).unwrap()
    );
    assert_eq!(mode(&bin), 0o755);
    let unit_file = root.join("etc/systemd/system/picolet.service");
    assert_eq!(fs::read_to_string(&unit_file).unwrap(), unit());
    assert_eq!(mode(&unit_file), 0o644);
    let pods_unit_file = root.join("etc/systemd/system/picolet-pods.service");
    assert_eq!(fs::read_to_string(&pods_unit_file).unwrap(), pods_unit());
    assert_eq!(mode(&pods_unit_file), 0o644);
    let config = root.join("etc/picolet/config.yaml");
    assert_eq!(mode(&config), 0o600);
    let text = fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("pidsMax: 1024") && text.contains("raspberry-pi-4"),
        "{text}"
    );
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(yaml["manifests"].as_str(), Some("/etc/picolet/manifests"));
    // The agent's own strict loader accepts what install wrote.
    let parsed = crate::fleet::config::AgentFileConfig::load(&config).unwrap();
    assert_eq!(parsed.pids_max, Some(1024));
    assert!(root.join("etc/picolet/manifests").is_dir());
    // Nothing else, and no temporary files left behind.
    let mut files: Vec<String> = walk(&root);
    files.sort();
    assert_eq!(
        files,
        [
            "etc/picolet/config.yaml",
            "etc/picolet/manifests/",
            "etc/systemd/system/picolet-pods.service",
            "etc/systemd/system/picolet.service",
            "usr/local/bin/picolet"
        ]
    );
    // Staged: systemctl is left to the user, and the board's switches noted.
    let todo = format!("systemctl --root={} enable picolet.service", root.display());
    assert!(
        out.steps
            .iter()
            .any(|s| matches!(s, Step::Todo(c) if c.starts_with(&todo)))
    );
    assert!(!out.steps.iter().any(|s| matches!(s, Step::Ran(_))));
    assert!(
        out.notes.iter().any(|n| n.contains("cgroup_enable=memory") && n.contains("/boot/firmware/cmdline.txt")),
        "{:?}",
        out.notes
    );
    let shown = out.to_string();
    assert!(
        shown.contains("wrote") && shown.contains("(0755)"),
        "{shown}"
    );
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if fs::read_dir(&p).unwrap().next().is_none() {
                    out.push(format!("{rel}/"));
                }
                stack.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out
}

#[test]
fn reinstalling_replaces_binary_and_unit_but_keeps_an_edited_config() {
    let (dir, _) = staged(None);
    let root = dir.path().join("root");
    let config = root.join(CONFIG_PATH);
    fs::write(&config, "manifests: /srv/pods\n").unwrap();
    let exe = dir.path().join("picolet-under-test");
    fs::write(&exe, "#!/bin/sh\necho v2\n").unwrap();
    fs::write(root.join(UNIT_PATH), "stale").unwrap();
    let out = install(&Options {
        root: root.clone(),
        board: None,
        exe,
        force: false,
    })
    .unwrap();
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        "manifests: /srv/pods\n"
    );
    assert!(out.steps.iter().any(|s| matches!(s, Step::Kept { .. })));
    assert_eq!(
        fs::read_to_string(root.join(BIN_PATH)).unwrap(),
        "#!/bin/sh\necho v2\n"
    );
    assert_eq!(fs::read_to_string(root.join(UNIT_PATH)).unwrap(), unit());
    // Without a board: generic config, no board notes.
    assert!(out.board.is_none() && out.notes.is_empty());
}

#[test]
fn unknown_board_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let err = install(&Options {
        root: root.clone(),
        board: Some("raspberry-pi-9".into()),
        exe: fake_exe(dir.path()),
        force: false,
    })
    .unwrap_err();
    assert!(err.to_string().contains("unknown board"), "{err}");
    assert!(!root.exists());
}

#[test]
fn the_agent_unit_is_a_restartable_notify_service_with_pods_in_the_delegated_pods_unit() {
    let exec_of = |unit: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap()
            .to_string()
    };
    let exec = exec_of(&unit());
    assert!(exec.starts_with(&format!("/{BIN_PATH} agent")), "{exec}");
    assert!(
        exec.contains(&format!("--manifests /{MANIFESTS_DIR}")),
        "{exec}"
    );
    // The pods' cgroup root is the pods unit's cgroup, which systemd names
    // after the unit in system.slice.
    assert!(
        exec.contains("--cgroup-root /sys/fs/cgroup/system.slice/picolet-pods.service"),
        "{exec}"
    );
    for line in [
        "Type=notify",
        "KillMode=process",
        "Restart=always",
        "Requires=picolet-pods.service",
        "After=picolet-pods.service",
    ] {
        assert!(unit().lines().any(|l| l == line), "{line} missing");
    }
    // The agent's own cgroup stays a leaf systemd can always start it in.
    assert!(!unit().lines().any(|l| l.starts_with("Delegate=")));
    assert_eq!(exec_of(&pods_unit()), format!("/{BIN_PATH} cgroup-holder"));
    for line in ["Type=notify", "Delegate=yes", "OOMPolicy=continue"] {
        assert!(pods_unit().lines().any(|l| l == line), "{line} missing");
    }
    // Never restarted by systemd (a restart would fail while pods run).
    assert!(!pods_unit().lines().any(|l| l.starts_with("Restart=")));
}

/// `systemd-analyze verify` against a staged root: the unit's ExecStart must
/// exist there, and the units it names (sysinit.target, …) come from the
/// host's unit directory, copied into the root.
#[test]
fn systemd_analyze_verify_passes_on_a_staged_install() {
    let Ok(v) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        println!("systemd-analyze is not installed; skipping");
        return;
    };
    println!(
        "{}",
        String::from_utf8_lossy(&v.stdout)
            .lines()
            .next()
            .unwrap_or("")
    );
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("sysinit.target").exists());
    let Some(host_units) = host_units else {
        println!("no systemd unit directory with sysinit.target on this machine; skipping");
        return;
    };
    let (dir, _) = staged(Some("generic-aarch64"));
    let root = dir.path().join("root");
    let units = root.join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    for e in fs::read_dir(host_units).unwrap().flatten() {
        let p = e.path();
        if p.is_file() && !p.is_symlink() {
            fs::copy(&p, units.join(e.file_name())).unwrap();
        }
    }
    let verify = |root: &Path| {
        std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .args(["picolet.service", "picolet-pods.service"])
            .output()
            .unwrap()
    };
    let out = verify(&root);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {text}"
    );
    assert!(
        !text.contains("picolet.service") && !text.contains("picolet-pods.service"),
        "warnings about the units: {text}"
    );
    // And it does check ExecStart: without the binary it fails.
    fs::remove_file(root.join(BIN_PATH)).unwrap();
    let out = verify(&root);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/usr/local/bin/picolet"));
}

/// The installed config with every `# key: value` line uncommented.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_lowercase())
                    && rest
                        .trim_start()
                        .split_once(':')
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_alphanumeric())) =>
            {
                rest.to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_installed_config_lists_every_key_commented_out_with_its_default() {
    use crate::fleet::config::AgentFileConfig;
    let text = default_config(None);
    // As installed: only `manifests` and `pidsMax` are set.
    let plain = AgentFileConfig::parse(&text).unwrap();
    assert_eq!(plain.pids_max, Some(1024));
    assert!(
        plain.broker.is_none() && plain.max_pods.is_none(),
        "{plain:?}"
    );
    // Uncommented, the strict loader (unknown keys are errors) accepts it,
    // and it names every key of the config file, nested ones included.
    let all = AgentFileConfig::parse(&uncommented(&text)).unwrap();
    let json = serde_json::to_value(&all).unwrap();
    let mut missing = Vec::new();
    for (k, v) in json.as_object().unwrap() {
        match v {
            serde_json::Value::Null => missing.push(k.clone()),
            serde_json::Value::Object(o) => missing.extend(
                o.iter()
                    .filter(|(_, v)| v.is_null())
                    .map(|(s, _)| format!("{k}.{s}")),
            ),
            _ => {}
        }
    }
    assert!(
        missing.is_empty(),
        "not in the installed config: {missing:?}"
    );
    // The values shown are the defaults (except the marked examples).
    let shown = all.clone().resolve("host").unwrap();
    let defaults = AgentFileConfig {
        broker: all.broker.clone(),
        manifests: all.manifests.clone(),
        pids_max: all.pids_max,
        ..AgentFileConfig::default()
    }
    .resolve("host")
    .unwrap();
    assert_eq!(shown.state_dir, defaults.state_dir);
    assert_eq!(shown.run_dir, defaults.run_dir);
    assert_eq!(shown.max_pods, defaults.max_pods);
    assert_eq!(shown.log_max_bytes, defaults.log_max_bytes);
    assert_eq!(shown.log_max_files, defaults.log_max_files);
    assert_eq!(
        shown.eviction_interval_seconds,
        defaults.eviction_interval_seconds
    );
    assert_eq!(shown.eviction, defaults.eviction);
    assert_eq!(shown.image_gc, defaults.image_gc);
    let (f, d) = (shown.fleet.unwrap(), defaults.fleet.unwrap());
    assert_eq!(f.topics, d.topics);
    assert_eq!(f.keepalive_seconds, d.keepalive_seconds);
    assert_eq!(f.max_document_bytes, d.max_document_bytes);
    assert_eq!(f.policy, d.policy);
    assert_eq!(f.groups, d.groups);
}

fn install_exe(
    dir: &Path,
    board: &str,
    exe: PathBuf,
    force: bool,
) -> Result<Outcome, InstallError> {
    install(&Options {
        root: dir.join("root"),
        board: Some(board.into()),
        exe,
        force,
    })
}

#[test]
fn a_binary_of_another_architecture_than_the_board_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let x86 = dir.path().join("picolet-x86_64");
    fs::write(&x86, elf::header(64, true, elf::EM_X86_64)).unwrap();
    let err = install_exe(dir.path(), "raspberry-pi-4", x86.clone(), false).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ELF 64-bit x86_64")
            && msg.contains("raspberry-pi-4")
            && msg.contains("aarch64 or arm (32-bit)")
            && msg.contains("--force"),
        "{msg}"
    );
    assert!(!dir.path().join("root").exists(), "nothing written");
    // The running test binary (this machine's) for a board of another
    // architecture is refused the same way.
    let here = elf::read(Path::new("/proc/self/exe"))
        .unwrap()
        .arch()
        .unwrap();
    let other = if here == check::boards::Arch::Aarch64 {
        "generic-x86_64"
    } else {
        "raspberry-pi-5"
    };
    if other == "raspberry-pi-5" {
        let err =
            install_exe(dir.path(), other, PathBuf::from("/proc/self/exe"), false).unwrap_err();
        assert!(matches!(err, InstallError::WrongArch { .. }), "{err}");
    }
    // A script is no binary for any board.
    let script = dir.path().join("script");
    fs::write(&script, "#!/bin/sh\n").unwrap();
    let err = install_exe(dir.path(), "raspberry-pi-3", script, false).unwrap_err();
    assert!(err.to_string().contains("not an ELF file"), "{err}");
    // A 32-bit ARM binary is right for a Pi 4 (a 32-bit OS), and the Zero 2 W.
    let arm = dir.path().join("picolet-armv7");
    fs::write(&arm, elf::header(32, true, elf::EM_ARM)).unwrap();
    install_exe(dir.path(), "raspberry-pi-4", arm.clone(), false).unwrap();
    install_exe(dir.path(), "raspberry-pi-zero-2-w", arm, false).unwrap();
    // But not for the Pi 5 (aarch64 only).
    let arm = dir.path().join("picolet-armv7");
    assert!(install_exe(dir.path(), "raspberry-pi-5", arm, false).is_err());
    // --force installs it, and says what it overrode.
    let out = install_exe(dir.path(), "raspberry-pi-4", x86.clone(), true).unwrap();
    assert_eq!(
        fs::read(dir.path().join("root").join(BIN_PATH)).unwrap(),
        fs::read(&x86).unwrap()
    );
    assert!(
        out.notes
            .iter()
            .any(|n| n.starts_with("installed with --force") && n.contains("x86_64")),
        "{:?}",
        out.notes
    );
}

#[test]
fn a_board_picolet_is_not_built_for_is_unsupported_and_the_supported_ones_listed() {
    let dir = tempfile::tempdir().unwrap();
    // Even with an ARM binary (ARMv6 and ARMv7 share the ELF machine).
    let arm = dir.path().join("picolet-arm");
    fs::write(&arm, elf::header(32, true, elf::EM_ARM)).unwrap();
    let err = install_exe(dir.path(), "raspberry-pi-zero", arm.clone(), false).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "board raspberry-pi-zero (Raspberry Pi Zero / Zero W / Pi 1) is not supported"
        ) && msg.contains("arm-unknown-linux-musleabihf")
            && msg.contains(
                "supported boards: raspberry-pi-zero-2-w, raspberry-pi-3, raspberry-pi-4, \
                 raspberry-pi-5, generic-aarch64, qemu-virt"
            ),
        "{msg}"
    );
    assert!(!dir.path().join("root").exists());
    let out = install_exe(dir.path(), "raspberry-pi-zero", arm, true).unwrap();
    assert!(
        out.notes[0].contains("not one picolet is built for"),
        "{:?}",
        out.notes
    );
}
