//! The command line as a kubectl user expects it (issue 12): per-command
//! help, broken pipes, `get`'s habits, `logs`' options and `describe`.

mod support;
use std::process::{Command, Stdio};
use support::*;

/// Every user command (as `picolet::cli::help::COMMANDS`).
const COMMANDS: &[&str] = &[
    "agent",
    "get",
    "describe",
    "logs",
    "exec",
    "image",
    "version",
    "check",
    "install",
    "cgroup-holder",
    "apply",
    "delete",
    "fleet",
    "keygen",
];

#[test]
fn every_command_prints_its_help_and_exits_0() {
    assert_eq!(COMMANDS, picolet::cli::help::COMMANDS);
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            // Nothing may be looked up: a missing state dir must not matter.
            .env("PICOLET_STATE_DIR", "/nonexistent")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert!(out.stderr.is_empty(), "{args:?}: {:?}", out.stderr);
        text
    };
    for &cmd in COMMANDS {
        let long = run(&[cmd, "--help"]);
        assert!(
            long.contains("Usage:") && long.contains(&format!("picolet {cmd}")),
            "{cmd} --help:\n{long}"
        );
        assert!(long.contains("Example"), "{cmd} --help:\n{long}");
        assert_eq!(run(&[cmd, "-h"]), long, "{cmd} -h");
        assert_eq!(run(&["help", cmd]), long, "help {cmd}");
    }
    // After other arguments and options too; subcommands have their own.
    assert!(run(&["get", "pods", "-o", "wide", "--help"]).contains("picolet get pods"));
    assert!(run(&["image", "ls", "-h"]).contains("picolet image ls [--state-dir DIR]"));
    assert!(run(&["fleet", "status", "--help"]).contains("picolet fleet status"));
    // The overview stays.
    assert!(run(&["--help"]).contains("picolet get pods"));
    // After `--` it is the container command's argument.
    let out = Command::new(BIN)
        .args(["exec", "web", "--", "ls", "--help"])
        .env("PICOLET_STATE_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the picolet agent"),
        "{out:?}"
    );
}
