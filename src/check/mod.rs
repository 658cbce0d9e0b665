//! `picolet check`: a preflight of the device, in the spirit of
//! `k3s check-config`, and the build identity `picolet --version` prints.
//!
//! It owns no long-lived resource. It reads files under `/proc`, `/sys`,
//! `/lib/modules` and `/boot` (see [`facts`]), forks one short-lived child
//! per namespace type to try `unshare(2)` when run as root, and opens and
//! closes one pidfd on itself. It writes nothing and starts no thread.
//!
//! Which items are required and which optional is documented in
//! [`evaluate`]. The board (from [`boards`], embedded from `boards/*.toml`)
//! decides the fixes printed for missing items, e.g. the exact
//! `cmdline.txt` line of a Raspberry Pi.

pub mod boards;
pub mod evaluate;
pub mod facts;
mod render;

#[cfg(test)]
mod tests;

pub use boards::{Board, BoardError, Detected};
pub use evaluate::{Item, State};
pub use facts::Facts;

use serde::Serialize;
use std::path::{Path, PathBuf};

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Rust target triple the binary was built for, libc included
/// (`aarch64-unknown-linux-musl`), from `build.rs`.
pub const TARGET: &str = env!("PICOLET_TARGET");
/// The cargo profile (`release` or `debug`), from `build.rs`.
pub const PROFILE: &str = env!("PICOLET_PROFILE");

/// `picolet 0.1.0 (aarch64-unknown-linux-musl, release)`.
pub fn version_line() -> String {
    format!("picolet {VERSION} ({TARGET}, {PROFILE})")
}

/// `Some(reason)` when this process runs under QEMU user-mode emulation
/// (`qemu-aarch64-static` as cargo's target runner). Detected explicitly:
/// qemu-user rewrites `/proc/self/exe` to the emulated binary, but not
/// `/proc/thread-self/exe`, which names the emulator. Tests whose syscalls
/// qemu-user does not emulate (namespaces, `clone` flags, seccomp) skip
/// only when this says so.
pub fn qemu_user() -> Option<String> {
    let exe = std::fs::read_link("/proc/thread-self/exe").ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    name.starts_with("qemu-")
        .then(|| format!("running under qemu-user ({})", exe.display()))
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// A board id from `boards/` instead of detecting it.
    pub board: Option<String>,
    /// Check this cgroup (what the agent's `--cgroup-root` would be) instead
    /// of the top of the cgroup2 mount.
    pub cgroup_root: Option<PathBuf>,
    /// The filesystem root to read (`/`; tests use fixture trees). Live
    /// probes run only when it is `/`.
    pub root: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            board: None,
            cgroup_root: None,
            root: PathBuf::from("/"),
        }
    }
}

/// The result of a check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: &'static str,
    pub target: &'static str,
    pub profile: &'static str,
    pub arch: String,
    pub kernel: Option<String>,
    pub board: BoardInfo,
    pub cgroup: CgroupInfo,
    pub items: Vec<Item>,
    /// No required item is missing.
    pub passed: bool,
}

/// The board in a [`Report`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardInfo {
    pub id: String,
    pub name: String,
    /// How it was chosen.
    pub detected_from: String,
}

/// The cgroup hierarchy in a [`Report`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupInfo {
    /// `unified`, `hybrid`, `legacy` or `none`.
    pub hierarchy: &'static str,
    /// The cgroup2 mount point.
    pub cgroup2_mount: Option<PathBuf>,
    /// The cgroup whose controllers were read.
    pub checked: Option<PathBuf>,
    /// Its `cgroup.controllers`.
    pub controllers: Vec<String>,
    /// Controllers bound to cgroup v1 hierarchies → their mount points.
    pub v1: crate::vecmap::VecMap<String, PathBuf>,
}

/// Errors of `picolet check`.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Board(#[from] BoardError),
}

/// The board for `opts`: `--board`, else detected under `root`.
pub fn board_for(
    board: Option<&str>,
    root: &Path,
) -> Result<(Detected, boards::Identity), BoardError> {
    let identity = boards::read_identity(root);
    let detected = match board {
        Some(id) => Detected {
            board: boards::by_id(id)?,
            how: "--board".into(),
        },
        None => boards::detect(&identity, std::env::consts::ARCH),
    };
    Ok((detected, identity))
}

/// Gathers the facts and judges them.
pub fn run(opts: &Options) -> Result<Report, CheckError> {
    let (detected, identity) = board_for(opts.board.as_deref(), &opts.root)?;
    let facts = facts::gather(facts::Gather {
        root: &opts.root,
        live: opts.root == Path::new("/"),
        cgroup_root: opts.cgroup_root.as_deref(),
        identity,
        board: &detected.board,
    });
    Ok(report(&facts, &detected))
}

/// Judges `facts` for the detected board (pure).
pub fn report(facts: &Facts, detected: &Detected) -> Report {
    let items = evaluate::evaluate(facts, &detected.board);
    let cg = &facts.cgroup;
    Report {
        version: VERSION,
        target: TARGET,
        profile: PROFILE,
        arch: facts.arch.clone(),
        kernel: facts.kernel_release.clone(),
        board: BoardInfo {
            id: detected.board.id.clone(),
            name: detected.board.name.clone(),
            detected_from: detected.how.clone(),
        },
        cgroup: CgroupInfo {
            hierarchy: cg.hierarchy(),
            cgroup2_mount: cg.mounts.resolve("/").map(|(_, top)| top),
            checked: cg.checked.clone(),
            controllers: cg.available.clone(),
            v1: cg
                .mounts
                .v1
                .iter()
                .map(|(c, p)| (c.name().to_string(), p.clone()))
                .collect(),
        },
        passed: !items.iter().any(Item::fails),
        items,
    }
}

impl Report {
    /// The human-readable report.
    pub fn text(&self) -> String {
        render::text(self)
    }

    /// The report as JSON (`-o json`).
    pub fn json(&self) -> String {
        crate::jsonl::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The items that make the check fail.
    pub fn failures(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.fails())
    }
}
