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

pub(super) fn net(args: Vec<OsString>) -> Result<ExitCode, String> {
    let a = Args::parse(
        args,
        &Spec {
            valued: &["state-dir"],
            flags: &[],
        },
    )?;
    match a.free.as_slice() {
        [cmd] if cmd == "reset" => {}
        [] => return Err("picolet net: say what to do: picolet net reset".into()),
        other => {
            return Err(format!(
                "picolet net: unknown subcommand {:?}; see `picolet net --help`",
                other.join(" ")
            ));
        }
    }
    let state = super::state_dir(&a)?;
    let sock = state.join("picolet.sock");
    if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
        return Err(format!(
            "the agent is running (it answers on {}): stop it first",
            sock.display()
        ));
    }
    let mut removed = crate::net::reset().map_err(|e| e.to_string())?;
    let ipam = state.join("net").join("ipam");
    match std::fs::remove_dir_all(&ipam) {
        Ok(()) => removed.push(format!("address files {}", ipam.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing {}: {e}", ipam.display())),
    }
    let mut text = String::new();
    for r in &removed {
        text.push_str(&format!("removed {r}\n"));
    }
    if removed.is_empty() {
        text.push_str("nothing to remove: no picolet network on this host\n");
    }
    super::out(&text)?;
    Ok(ExitCode::SUCCESS)
}
