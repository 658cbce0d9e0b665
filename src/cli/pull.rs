//! `picolet image pull REF` (for people: a progress bar on a TTY, plain
//! lines otherwise) and `picolet pull REF` (the agent's helper process:
//! JSON lines on stdout, see docs/images.md "The pull helper").

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use super::args::{Args, Spec};
use crate::image::registry::auth::{AuthFile, DEFAULT_AUTH_FILE};
use crate::image::registry::config::{DEFAULT_REGISTRIES, Registries};
use crate::image::registry::platform::parse_platform;
use crate::image::registry::pull::{self, Event, Options};

/// Options both commands take.
const VALUED: &[&str] = &[
    "state-dir",
    "store",
    "platform",
    "board",
    "auth-file",
    "registries-config",
    "timeout",
];

macro_rules! pull_options {
    () => {
        "\
Options:
      --state-dir DIR            the agent's state directory (the store is
                                 DIR/images)
      --store DIR                the image store itself (instead of
                                 --state-dir)
      --platform OS/ARCH[/VAR]   the platform to choose from a multi-arch
                                 image (default: the board file's
                                 image_platform, else this CPU's, from
                                 /proc/cpuinfo)
      --board ID                 take image_platform from boards/ID.toml
                                 (default: the detected board)
      --auth-file FILE           credentials, containers-auth.json format
                                 (default: $PICOLET_AUTH_FILE, else
                                 /etc/picolet/auth.json); repeatable, the
                                 first file naming a registry wins
      --registries-config FILE   mirrors and per-registry TLS/auth, k3s
                                 format (default: $PICOLET_REGISTRIES_CONFIG,
                                 else /etc/picolet/registries.yaml);
                                 repeatable, the first file with an entry
                                 for a registry host key wins
      --timeout SECS             connect and read timeout (default 30)
"
    };
}

/// `picolet image pull --help`.
pub const IMAGE_PULL_HELP: &str = concat!(
    "\
Pull an image from a registry into the local store. Layers already in the
store are not fetched again; an interrupted pull resumes where it stopped.

Usage:
  picolet image pull REF [options]

",
    pull_options!(),
    "
Examples:
  picolet image pull busybox:1.36
  picolet image pull ghcr.io/me/app:v2 --platform linux/arm/v7
"
);

/// `picolet pull --help`.
pub const HELPER_HELP: &str = concat!(
    "\
The agent's image pull helper: pulls REF like `picolet image pull` and
reports progress and the result as JSON lines on stdout (one object per
line: resolved, progress, blob, retry, then pulled, or error with a kind:
not-found, unauthorized, unreachable or other). Exit status 0 when
pulled, 1 otherwise.

Usage:
  picolet pull REF [options]

",
    pull_options!(),
    "
Example:
  picolet pull busybox --store /var/lib/picolet/images
"
);

fn parse(args: Vec<OsString>, usage: &str) -> Result<(String, Options), String> {
    let a = Args::parse(
        args,
        &Spec {
            valued: VALUED,
            flags: &[],
        },
    )?;
    let reference = match a.free.as_slice() {
        [r] => r.clone(),
        [] => return Err(format!("usage: {usage}")),
        [_, extra, ..] => return Err(format!("unexpected argument {extra:?}")),
    };
    let store = match (a.one(&["store"]), a.one(&["state-dir"])) {
        (Some(_), Some(_)) => return Err("give --store or --state-dir, not both".into()),
        (Some(s), None) => PathBuf::from(s),
        (None, _) => super::state_dir(&a)?.join("images"),
    };
    let file = |flag: &str, env: &str, default: &str| -> PathBuf {
        a.one(&[flag])
            .map(PathBuf::from)
            .or_else(|| std::env::var_os(env).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(default))
    };
    // Every --auth-file, earlier ones first (the agent puts a pod's pull
    // secrets before the node's file), else the default.
    let mut auth = AuthFile::default();
    let files = a.all(&["auth-file"]);
    if files.is_empty() {
        auth = AuthFile::load(&file("auth-file", "PICOLET_AUTH_FILE", DEFAULT_AUTH_FILE))?;
    }
    for f in files {
        auth.merge(&AuthFile::load(Path::new(f))?);
    }
    // Every --registries-config, earlier ones first (the agent puts the
    // fleet's before the node's file), else the default.
    let mut registries = Registries::default();
    let files = a.all(&["registries-config"]);
    if files.is_empty() {
        registries = Registries::load(&file(
            "registries-config",
            "PICOLET_REGISTRIES_CONFIG",
            DEFAULT_REGISTRIES,
        ))?;
    }
    for f in files {
        registries.merge(Registries::load(Path::new(f))?);
    }
    let platform = match a.one(&["platform"]) {
        Some(p) => parse_platform(p).map_err(|e| format!("--platform: {e}"))?,
        None => {
            let board = match a.one(&["board"]) {
                Some(id) => crate::check::boards::by_id(id).map_err(|e| e.to_string())?,
                None => {
                    let id = crate::check::boards::read_identity(Path::new("/"));
                    crate::check::boards::detect(&id, std::env::consts::ARCH).board
                }
            };
            match board.image_platform {
                Some(p) => parse_platform(&p)
                    .map_err(|e| format!("board {}: image_platform: {e}", board.id))?,
                None => pull::host_platform(),
            }
        }
    };
    let timeout = match a.one(&["timeout"]) {
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| *t > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("--timeout: {t:?} is not a positive number of seconds"))?,
        None => Duration::from_secs(30),
    };
    Ok((
        reference,
        Options {
            store,
            registries,
            auth,
            platform,
            timeout,
        },
    ))
}

fn line(v: &serde_json::Value) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{v}");
    let _ = o.flush();
}

/// `picolet pull REF ...`: the helper. Exit 0 when pulled, else 1 (a
/// usage error is an `error` line of kind `other` too).
pub fn helper(args: Vec<OsString>) -> Result<ExitCode, String> {
    let error = |kind: &str, message: String| {
        line(&serde_json::json!({"event": "error", "kind": kind, "message": message}));
        Ok(ExitCode::from(1))
    };
    let (reference, opts) = match parse(args, "picolet pull REF [options]") {
        Ok(x) => x,
        Err(e) if e == super::args::HELP_REQUESTED => return Err(e),
        Err(e) => return error("other", e),
    };
    let sink = |e: Event| line(&pull::event_json(&e));
    match pull::pull(&reference, &opts, &sink) {
        Ok(p) => {
            line(&serde_json::json!({
                "event": "pulled",
                "reference": p.reference,
                "image_id": p.image_id,
                "digest": p.manifest_digest,
                "size": p.size,
                "downloaded": p.downloaded,
            }));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => error(e.kind.as_str(), e.message),
    }
}

/// What the progress display knows.
#[derive(Debug, Default)]
struct Bar {
    total: u64,
    blobs: Vec<(String, u64, u64)>,
    width: usize,
}

impl Bar {
    fn done(&self) -> u64 {
        self.blobs.iter().map(|b| b.1).sum()
    }

    fn render(&self) -> String {
        let done = self.done().min(self.total);
        let frac = if self.total == 0 {
            1.0
        } else {
            done as f64 / self.total as f64
        };
        let cells = 30usize;
        let full = ((frac * cells as f64) as usize).min(cells);
        format!(
            "[{}{}] {:>3}% {}/{}",
            "#".repeat(full),
            " ".repeat(cells - full),
            (frac * 100.0) as u32,
            crate::image::human_size(done),
            crate::image::human_size(self.total)
        )
    }

    fn set(&mut self, digest: &str, done: u64, total: u64) {
        match self.blobs.iter_mut().find(|b| b.0 == digest) {
            Some(b) => {
                b.1 = done;
                b.2 = total;
            }
            None => self.blobs.push((digest.to_string(), done, total)),
        }
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// `picolet image pull REF ...`.
pub fn image_pull(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (reference, opts) = parse(args, "picolet image pull REF [options]")?;
    let tty = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
    let bar = Mutex::new(Bar::default());
    let sink = |e: Event| {
        let mut b = bar.lock().unwrap_or_else(|e| e.into_inner());
        let text = match &e {
            Event::Resolved {
                digest,
                size,
                layers,
                ..
            } => {
                b.total = *size;
                Some(format!(
                    "{reference}: manifest {digest}, {layers} layer{}, {}\n",
                    if *layers == 1 { "" } else { "s" },
                    crate::image::human_size(*size)
                ))
            }
            Event::Progress {
                digest,
                done,
                total,
            } => {
                b.set(digest, *done, *total);
                None
            }
            Event::Blob {
                digest,
                size,
                downloaded,
                ..
            } => {
                b.set(digest, *size, *size);
                Some(if *downloaded == 0 {
                    format!("{}: already present\n", short(digest))
                } else {
                    format!(
                        "{}: pulled {}\n",
                        short(digest),
                        crate::image::human_size(*size)
                    )
                })
            }
            Event::Retry {
                digest,
                offset,
                error,
            } => Some(format!(
                "{}: retrying from byte {offset}: {error}\n",
                short(digest)
            )),
        };
        if tty {
            // Messages above, the bar on the last line.
            let bar_text = b.render();
            let clear = format!("\r{}\r", " ".repeat(b.width));
            b.width = bar_text.len();
            eprint!("{clear}{}{bar_text}", text.unwrap_or_default());
        } else if let Some(t) = text {
            let _ = super::out(&t);
        }
    };
    let result = pull::pull(&reference, &opts, &sink);
    if tty {
        let mut b = bar.lock().unwrap_or_else(|e| e.into_inner());
        if result.is_ok() {
            let total = b.total;
            b.blobs = vec![(String::new(), total, total)];
        }
        eprintln!("\r{}", b.render());
    }
    let p = result.map_err(|e| e.message)?;
    super::out(&format!(
        "pulled {} ({}), {} ({} downloaded)\n",
        p.reference,
        p.image_id,
        crate::image::human_size(p.size),
        crate::image::human_size(p.downloaded)
    ))?;
    Ok(ExitCode::SUCCESS)
}
