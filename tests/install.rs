//! `picolet install` as a user runs it: the binary of this machine refused
//! for a board of another architecture, and an unsupported board named.

use std::path::Path;
use std::process::Command;

fn picolet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_picolet"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/arch")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn install_for_a_raspberry_pi_4_refuses_this_x86_64_binary_unless_forced() {
    if machine() != "x86_64" {
        eprintln!("skipped: the test needs an x86_64 build machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let (rc, out, err) = picolet(&["install", "--root", root_s, "--board", "raspberry-pi-4"]);
    assert_ne!(rc, 0, "{out}{err}");
    assert!(
        err.contains("ELF 64-bit x86_64")
            && err.contains("board raspberry-pi-4 runs aarch64 or arm (32-bit)")
            && err.contains("--force"),
        "{err}"
    );
    assert!(!root.exists(), "nothing may be written: {out}");

    // The aarch64 build, when scripts/build-arm.sh made one, is accepted.
    let arm = Path::new("/work/main/target/arm/aarch64-unknown-linux-musl/release/picolet");
    if arm.exists() {
        let (rc, out, err) = picolet(&[
            "install",
            "--root",
            root_s,
            "--board",
            "raspberry-pi-4",
            "--binary",
            arm.to_str().unwrap(),
        ]);
        assert_eq!(rc, 0, "{out}{err}");
        assert_eq!(
            std::fs::read(root.join("usr/local/bin/picolet")).unwrap(),
            std::fs::read(arm).unwrap()
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    let (rc, out, err) = picolet(&[
        "install",
        "--root",
        root_s,
        "--board",
        "raspberry-pi-4",
        "--force",
    ]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("note    installed with --force"), "{out}");
    assert!(root.join("usr/local/bin/picolet").exists());
}

#[test]
fn install_for_a_raspberry_pi_zero_says_it_is_unsupported_and_lists_the_supported_boards() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (rc, out, err) = picolet(&[
        "install",
        "--root",
        root.to_str().unwrap(),
        "--board",
        "raspberry-pi-zero",
    ]);
    assert_ne!(rc, 0, "{out}{err}");
    assert!(
        err.contains(
            "board raspberry-pi-zero (Raspberry Pi Zero / Zero W / Pi 1) is not supported"
        ) && err.contains("supported boards: raspberry-pi-zero-2-w, raspberry-pi-3"),
        "{err}"
    );
    assert!(!root.exists());
}

#[test]
fn check_for_a_board_of_another_architecture_exits_1_naming_the_machine() {
    if machine() != "x86_64" {
        eprintln!("skipped: the test needs an x86_64 build machine");
        return;
    }
    let (rc, out, err) = picolet(&["check", "--board", "raspberry-pi-4", "-o", "json"]);
    assert_eq!(rc, 1, "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let board = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "board")
        .unwrap();
    assert_eq!(board["state"], "missing");
    assert!(
        board["detail"]
            .as_str()
            .unwrap()
            .contains("runs aarch64 or arm (32-bit), but this machine is x86_64"),
        "{board}"
    );
}
