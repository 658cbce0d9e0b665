//! `picolet logs`: the log files the agent names, read (and followed)
//! here, in the CRI format the shim writes.

use super::selector::Selector;
use super::{Common, parse_api};
use crate::api::{PodEntry, Request, Response};
use serde_json::Value;
use std::ffi::OsString;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::process::ExitCode;

/// One CRI log record: (timestamp, text, whether it ends a line).
fn cri_line(line: &str) -> Option<(&str, &str, bool)> {
    let mut parts = line.splitn(4, ' ');
    let ts = parts.next()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some((ts, text, tag != "P"))
}

/// A CRI timestamp as kubectl's `--timestamps` prints it: Go's
/// RFC3339Nano, trailing zeros of the fraction dropped.
fn go_rfc3339_nano(ts: &str) -> String {
    match crate::clock::parse_rfc3339_ns(ts) {
        Some(ns) => {
            let full = crate::clock::rfc3339_nano(ns);
            let (secs, frac) = full
                .trim_end_matches('Z')
                .split_once('.')
                .unwrap_or((&full, ""));
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{frac}Z")
            }
        }
        None => ts.to_string(),
    }
}

/// The records of `text` (whole CRI lines) whose log line began at or
/// after `since` (Unix ns): a line split into `P` records goes or stays
/// whole.
fn recent(text: &str, since: i64) -> String {
    let mut out = String::new();
    let (mut at_start, mut keep) = (true, true);
    for l in text.lines() {
        let Some((ts, _, full)) = cri_line(l) else {
            continue;
        };
        if at_start {
            keep = crate::clock::parse_rfc3339_ns(ts).is_none_or(|t| t >= since);
        }
        if keep {
            out.push_str(l);
            out.push('\n');
        }
        at_start = full;
    }
    out
}

/// How records are printed: `--timestamps`, `--prefix`.
#[derive(Debug, Clone, Default)]
struct Printer {
    timestamps: bool,
    /// `[pod/NAME/CONTAINER] ` before each line.
    prefix: Option<String>,
}

impl Printer {
    /// Appends the records of `text` (whole CRI lines) to `out`;
    /// `at_start` says whether the next record begins a log line (a `P`
    /// record's line goes on in the next one).
    fn render(&self, text: &str, at_start: &mut bool, out: &mut String) {
        for line in text.lines() {
            let Some((ts, t, full)) = cri_line(line) else {
                continue;
            };
            if *at_start {
                if let Some(p) = &self.prefix {
                    out.push_str(p);
                }
                if self.timestamps {
                    out.push_str(&go_rfc3339_nano(ts));
                    out.push(' ');
                }
            }
            out.push_str(t);
            if full {
                out.push('\n');
            }
            *at_start = full;
        }
    }
}

/// `--since 5s|2m|1h` (also `1h30m`, as Go's durations) in ns.
pub(super) fn parse_since(s: &str) -> Result<i64, String> {
    let bad = || format!("--since {s:?}: use a duration such as 5s, 2m or 1h");
    let mut total: i64 = 0;
    let mut num = String::new();
    let mut any = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        let scale: i64 = match unit.as_str() {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any || total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

/// The container `logs` reads when `-c` is not given, as kubectl picks
/// it: the `kubectl.kubernetes.io/default-container` annotation if it
/// names one, else the first container; said on stderr when the pod has
/// several. `None` if the pod has no containers in its spec.
fn default_container(pod: &Value) -> Option<(String, Option<String>)> {
    let names = |key: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let first = containers.first()?.clone();
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let mut notes = Vec::new();
    if let Some(want) =
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str()
    {
        if containers.iter().any(|c| c == want) {
            return Some((want.to_string(), None));
        }
        notes.push(format!(
            "error: default container name \"{want}\" not found in pod {name}"
        ));
    }
    if containers.len() > 1 || !notes.is_empty() {
        let mut all = containers.clone();
        all.extend(
            names("initContainers")
                .iter()
                .map(|c| format!("{c} (init)")),
        );
        if containers.len() > 1 {
            notes.push(format!(
                "Defaulted container \"{first}\" out of: {}",
                all.join(", ")
            ));
        }
    }
    let note = (!notes.is_empty()).then(|| notes.join("\n"));
    Some((first, note))
}

/// One container's log, printed and possibly followed.
struct Stream {
    req: Request,
    printer: Printer,
    /// `--since`, as Unix ns (for what is there already; what follows is
    /// newer).
    since_ns: Option<i64>,
    current: Option<PathBuf>,
    pos: u64,
    partial: String,
    at_start: bool,
}

impl Stream {
    /// Prints what is there (after `--tail`), and remembers where the
    /// current file ends.
    fn dump(&mut self, common: &Common, tail: Option<usize>) -> Result<(), String> {
        let Response::Logs { files } = common.call(self.req.clone())? else {
            return Err("unexpected response".into());
        };
        let mut text = String::new();
        for f in &files {
            if let Ok(t) = std::fs::read_to_string(f) {
                text.push_str(&t);
            }
        }
        self.current = files.last().cloned();
        self.pos = self
            .current
            .as_ref()
            .and_then(|c| std::fs::metadata(c).ok())
            .map_or(0, |m| m.len());
        if let Some(since) = self.since_ns {
            // --since before --tail: the last N of the recent lines.
            text = recent(&text, since);
        }
        if let Some(n) = tail {
            let lines: Vec<&str> = text.lines().collect();
            text = lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect();
        }
        let mut out = String::new();
        self.printer.render(&text, &mut self.at_start, &mut out);
        super::out(&out)
    }

    /// Prints what was added since the last look; moves on to a new file
    /// when rotation or a new instance replaces the current one.
    fn poll(&mut self, common: &Common) -> Result<(), String> {
        if let Some(current) = &self.current {
            let len = std::fs::metadata(current).map_or(0, |m| m.len());
            if len < self.pos {
                self.pos = 0; // rotated: the file was started afresh
            }
            if len > self.pos {
                if let Ok(mut f) = std::fs::File::open(current) {
                    let _ = f.seek(std::io::SeekFrom::Start(self.pos));
                    let mut chunk = String::new();
                    let _ = f.read_to_string(&mut chunk);
                    self.pos += chunk.len() as u64;
                    self.partial.push_str(&chunk);
                    if let Some(cut) = self.partial.rfind('\n') {
                        let complete: String = self.partial.drain(..=cut).collect();
                        let mut out = String::new();
                        self.printer.render(&complete, &mut self.at_start, &mut out);
                        super::out(&out)?;
                    }
                }
            }
        }
        if let Ok(Response::Logs { files }) = common.call(self.req.clone()) {
            if let Some(last) = files.last() {
                if self.current.as_ref() != Some(last) {
                    self.current = Some(last.clone());
                    self.pos = 0;
                }
            }
        }
        Ok(())
    }
}

/// Whether stdout is a pipe (or socket) whose reader has gone: `logs -f`
/// of a quiet container then ends without waiting for a line to write.
fn stdout_closed() -> bool {
    let mut fds = [libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    }];
    matches!(crate::sys::fd::poll(&mut fds, 0), Ok(n) if n > 0)
        && fds[0].revents & (libc::POLLERR | libc::POLLHUP) != 0
}

pub(super) fn logs(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(
        args,
        &["c", "container", "tail", "since", "l", "selector"],
        &["f", "follow", "p", "previous", "timestamps", "prefix"],
    )?;
    let container = a.one(&["c", "container"]).map(str::to_string);
    let previous = a.has(&["p", "previous"]);
    let follow = a.has(&["f", "follow"]);
    if follow && previous {
        // A terminated instance's log does not grow: refused, not ignored.
        return Err(
            "--follow cannot be used with --previous: the previous instance's log is complete"
                .into(),
        );
    }
    let tail: Option<usize> = match a.one(&["tail"]) {
        Some("-1") => None,
        Some(t) => Some(
            t.parse()
                .map_err(|_| format!("--tail: not a number: {t:?}"))?,
        ),
        // As kubectl: the last 10 lines of each pod with a selector.
        None if a.has(&["l", "selector"]) => Some(10),
        None => None,
    };
    let since_ns = a
        .one(&["since"])
        .map(parse_since)
        .transpose()?
        .map(|d| crate::clock::wall_ns() - d);
    let selector = a.one(&["l", "selector"]).map(Selector::parse).transpose()?;
    let pod_names: Vec<String> = match (&selector, a.free.as_slice()) {
        (None, [pod]) => vec![pod.strip_prefix("pod/").unwrap_or(pod).to_string()],
        (None, []) => {
            return Err(
                "usage: picolet logs POD [-c CONTAINER] (see `picolet logs --help`)".into(),
            );
        }
        (None, [_, extra, ..]) => return Err(format!("unexpected argument {extra:?}")),
        (Some(_), []) => Vec::new(),
        (Some(_), [_, ..]) => {
            return Err("a pod name cannot be given with a selector (-l)".into());
        }
    };
    // The pods' specs: for -l, and for the default container.
    let Response::Pods { pods, .. } = common.call(Request::GetPods)? else {
        return Err("unexpected response".into());
    };
    let in_ns = |p: &&PodEntry| p.pod["metadata"]["namespace"] == common.namespace.as_str();
    let targets: Vec<(String, Option<&PodEntry>)> = match &selector {
        Some(sel) => pods
            .iter()
            .filter(in_ns)
            .filter(|p| sel.matches(&p.pod["metadata"]["labels"]))
            .map(|p| {
                (
                    p.pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    Some(p),
                )
            })
            .collect(),
        None => pod_names
            .iter()
            .map(|n| {
                let p = pods
                    .iter()
                    .filter(in_ns)
                    .find(|p| p.pod["metadata"]["name"] == n.as_str());
                (n.clone(), p)
            })
            .collect(),
    };
    if targets.is_empty() {
        eprintln!("No resources found in {} namespace.", common.namespace);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some((name, None)) = targets.first().filter(|_| selector.is_none()) {
        return Ok(super::not_found(name));
    }
    let mut streams = Vec::new();
    for (name, entry) in targets {
        let c = match (&container, entry.and_then(|e| default_container(&e.pod))) {
            (Some(c), _) => Some(c.clone()),
            (None, Some((c, note))) => {
                if let Some(n) = note {
                    eprintln!("{n}");
                }
                Some(c)
            }
            // Not known here: the agent says why.
            (None, None) => None,
        };
        let prefix = a
            .has(&["prefix"])
            .then(|| format!("[pod/{name}/{}] ", c.as_deref().unwrap_or("")));
        streams.push(Stream {
            req: Request::Logs {
                namespace: common.namespace.clone(),
                name,
                container: c,
                previous,
            },
            since_ns,
            printer: Printer {
                timestamps: a.has(&["timestamps"]),
                prefix,
            },
            current: None,
            pos: 0,
            partial: String::new(),
            at_start: true,
        });
    }
    for s in &mut streams {
        s.dump(&common, tail)?;
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    if streams.iter().all(|s| s.current.is_none()) {
        return Err("no log file".into());
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if stdout_closed() {
            return Ok(ExitCode::SUCCESS);
        }
        for s in &mut streams {
            s.poll(&common)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LOG: &str = "\
2026-01-01T00:00:01.500000000Z stdout F one
2026-01-01T00:00:02.000000000Z stderr P tw
2026-01-01T00:00:02.100000000Z stderr F o
2026-01-01T00:00:03.123456789Z stdout F three
";

    fn render(p: &Printer) -> String {
        let mut out = String::new();
        p.render(LOG, &mut true, &mut out);
        out
    }

    #[test]
    fn timestamps_since_and_prefix_are_kubectls() {
        assert_eq!(render(&Printer::default()), "one\ntwo\nthree\n");
        let ts = Printer {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(&ts),
            "2026-01-01T00:00:01.5Z one\n2026-01-01T00:00:02Z two\n2026-01-01T00:00:03.123456789Z three\n"
        );
        let prefixed = Printer {
            prefix: Some("[pod/p/c] ".into()),
            ..Default::default()
        };
        assert_eq!(
            render(&prefixed),
            "[pod/p/c] one\n[pod/p/c] two\n[pod/p/c] three\n"
        );
        // --since keeps or drops a line split in P records whole.
        let at = |t| crate::clock::parse_rfc3339_ns(t).unwrap();
        let from = |n| {
            LOG.lines()
                .skip(n)
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        };
        assert_eq!(recent(LOG, at("2026-01-01T00:00:02Z")), from(1));
        assert_eq!(recent(LOG, at("2026-01-01T00:00:02.05Z")), from(3));
        assert_eq!(recent(LOG, at("2026-01-01T00:00:04Z")), "");
    }

    #[test]
    fn follow_with_previous_is_refused_not_ignored() {
        let args = ["p", "-p", "-f", "--state-dir", "/nonexistent"]
            .map(std::ffi::OsString::from)
            .to_vec();
        let e = logs(args).unwrap_err();
        assert!(e.contains("--follow cannot be used with --previous"), "{e}");
    }

    #[test]
    fn since_takes_go_durations() {
        assert_eq!(parse_since("5s"), Ok(5_000_000_000));
        assert_eq!(parse_since("2m"), Ok(120_000_000_000));
        assert_eq!(parse_since("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_since("250ms"), Ok(250_000_000));
        for bad in ["", "5", "5d", "m", "-1s", "0s", "1.5h"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_container_is_the_annotations_else_the_first_said_on_stderr() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "web"}, {"name": "client"}]}});
        assert_eq!(
            default_container(&pod),
            Some((
                "web".into(),
                Some("Defaulted container \"web\" out of: web, client, setup (init)".into())
            ))
        );
        pod["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/default-container": "client"});
        assert_eq!(default_container(&pod), Some(("client".into(), None)));
        pod["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/default-container": "nope"});
        let (c, note) = default_container(&pod).unwrap();
        assert_eq!(c, "web");
        assert!(note.unwrap().starts_with(
            "error: default container name \"nope\" not found in pod p\nDefaulted container \"web\""
        ));
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "only"}]}});
        assert_eq!(default_container(&one), Some(("only".into(), None)));
    }
}
