//! `picolet logs`: the log files the agent names, read (and followed)
//! here, in the CRI format the shim writes.

use super::parse_api;
use crate::api::{Request, Response};
use std::ffi::OsString;
use std::io::{Read, Seek, Write};
use std::process::ExitCode;

/// `picolet logs --help`.
pub const HELP: &str = "\
Print the logs of a container, as `kubectl logs` does.

Usage:
  picolet logs POD [-c CONTAINER] [options]
  picolet logs -l SELECTOR [options]

Options:
  -c, --container NAME   the container (default: the pod's
                         kubectl.kubernetes.io/default-container annotation,
                         else its first container, said on stderr when the
                         pod has several)
  -f, --follow           keep printing new lines until interrupted
  -p, --previous         the previous instance of the container
      --tail N           only the last N lines (-1: all)
      --since DURATION   only lines newer than DURATION (5s, 2m, 1h)
      --timestamps       prefix each line with its RFC3339Nano time
  -l, --selector SEL     the logs of every pod matching SEL (see `get --help`)
      --prefix           prefix each line with [pod/NAME/CONTAINER]
  -n, --namespace NS     the namespace (default: default)
      --state-dir DIR    the agent's state directory

Examples:
  picolet logs web
  picolet logs web -c sidecar --tail 20 -f
  picolet logs -l app=web --since 10m --timestamps
";

/// Extracts the content of one CRI log line; `Some((text, full))`.
fn cri_line(line: &str) -> Option<(&str, bool)> {
    let mut parts = line.splitn(4, ' ');
    let _ts = parts.next()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some((text, tag != "P"))
}

fn print_cri(text: &str, out: &mut impl Write) {
    for line in text.lines() {
        if let Some((t, full)) = cri_line(line) {
            let _ = out.write_all(t.as_bytes());
            if full {
                let _ = out.write_all(b"\n");
            }
        }
    }
}

pub(super) fn logs(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(
        args,
        &["c", "container", "tail"],
        &["f", "follow", "p", "previous"],
    )?;
    let pod = a
        .free
        .first()
        .ok_or("usage: picolet logs POD [-c CONTAINER]")?
        .clone();
    let container = a.one(&["c", "container"]).map(str::to_string);
    let previous = a.has(&["p", "previous"]);
    let follow = a.has(&["f", "follow"]);
    let tail: Option<usize> = match a.one(&["tail"]) {
        Some("-1") => None,
        Some(t) => Some(
            t.parse()
                .map_err(|_| format!("--tail: not a number: {t:?}"))?,
        ),
        None => None,
    };
    let req = Request::Logs {
        namespace: common.namespace.clone(),
        name: pod,
        container,
        previous,
    };
    let Response::Logs { files } = common.call(req.clone())? else {
        return Err("unexpected response".into());
    };
    let mut text = String::new();
    for f in &files {
        if let Ok(t) = std::fs::read_to_string(f) {
            text.push_str(&t);
        }
    }
    if let Some(n) = tail {
        let lines: Vec<&str> = text.lines().collect();
        text = lines[lines.len().saturating_sub(n)..].join("\n");
        text.push('\n');
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    print_cri(&text, &mut out);
    let _ = out.flush();
    if !follow || previous {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: poll the current file; move on when rotation or a new
    // instance replaces it.
    let mut current = files.last().cloned().ok_or("no log file")?;
    let mut pos = std::fs::metadata(&current).map(|m| m.len()).unwrap_or(0);
    let mut partial = String::new();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let len = std::fs::metadata(&current).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0; // rotated: the file was started afresh
        }
        if len > pos {
            if let Ok(mut f) = std::fs::File::open(&current) {
                let _ = f.seek(std::io::SeekFrom::Start(pos));
                let mut chunk = String::new();
                let _ = f.read_to_string(&mut chunk);
                pos += chunk.len() as u64;
                partial.push_str(&chunk);
                if let Some(cut) = partial.rfind('\n') {
                    let complete: String = partial.drain(..=cut).collect();
                    print_cri(&complete, &mut out);
                    let _ = out.flush();
                }
            }
        }
        if let Ok(Response::Logs { files }) = common.call(req.clone()) {
            if let Some(last) = files.last() {
                if *last != current {
                    current = last.clone();
                    pos = 0;
                }
            }
        }
    }
}
