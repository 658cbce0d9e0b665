//! `picolet check` and `picolet install`: the host, not the agent (they
//! take no `--state-dir`).

use super::args::{Args, Spec};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// `picolet check --help`.
pub const CHECK_HELP: &str = "\
Check that this host can run picolet: kernel, cgroup v2 controllers,
namespaces, overlayfs, and the board's known settings.

Usage:
  picolet check [-o text|json] [--board BOARD] [--cgroup-root DIR]

Options:
  -o, --output FORMAT    text (default) or json
      --board BOARD      check for this board (e.g. raspberry-pi-4)
      --cgroup-root DIR  the cgroup the pods would go in

Exits 1 when a required check fails.

Examples:
  picolet check
  picolet check --board raspberry-pi-4 -o json
";

/// `picolet install --help`.
pub const INSTALL_HELP: &str = "\
Install this binary, its systemd units and a commented config file.

Usage:
  picolet install [--board BOARD] [--root DIR]

Options:
      --board BOARD      the board's settings (e.g. raspberry-pi-4)
      --root DIR         install under DIR instead of / (for images)

Examples:
  picolet install
  picolet install --board raspberry-pi-4 --root /mnt/sdcard
";

pub(super) fn check(args: Vec<OsString>) -> Result<ExitCode, String> {
    let a = Args::parse(
        args,
        &Spec {
            valued: &["o", "output", "board", "cgroup-root"],
            flags: &[],
        },
    )?;
    a.no_free()?;
    let report = crate::check::run(&crate::check::Options {
        board: a.one(&["board"]).map(str::to_string),
        cgroup_root: a.one(&["cgroup-root"]).map(PathBuf::from),
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    match a.one(&["o", "output"]) {
        None | Some("text") => super::out(&report.text())?,
        Some("json") => super::out(&format!("{}\n", report.json()))?,
        Some(other) => return Err(format!("-o {other}: use text or json")),
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) fn install(args: Vec<OsString>) -> Result<ExitCode, String> {
    let a = Args::parse(
        args,
        &Spec {
            valued: &["board", "root", "binary"],
            flags: &["force"],
        },
    )?;
    a.no_free()?;
    let defaults = crate::install::Options::default();
    let outcome = crate::install::install(&crate::install::Options {
        root: a
            .one(&["root"])
            .map_or_else(|| PathBuf::from("/"), PathBuf::from),
        board: a.one(&["board"]).map(str::to_string),
        exe: a.one(&["binary"]).map_or(defaults.exe, PathBuf::from),
        force: a.has(&["force"]),
    })
    .map_err(|e| e.to_string())?;
    super::out(&outcome.to_string())?;
    Ok(ExitCode::SUCCESS)
}
