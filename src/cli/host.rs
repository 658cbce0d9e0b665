//! `picolet check` and `picolet install`: the host, not the agent (they
//! take no `--state-dir`).

use super::args::{Args, Spec};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

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
