//! `picolet install [--board B] [--root DIR] [--binary FILE] [--force]`:
//! puts a picolet binary, the systemd unit and a default configuration on a
//! device, and enables the unit.
//!
//! Files written under the root (`/` on a device; a staging directory in
//! tests and image builds):
//! - `usr/local/bin/picolet` (0755): a copy of the running binary
//!   (`/proc/self/exe`) or of `--binary FILE`, written to a temporary name, synced and renamed, so
//!   that replacing a running agent's binary is safe;
//! - `etc/systemd/system/picolet.service` and `picolet-pods.service` (0644):
//!   the agent's unit and the unit that holds the pods' delegated cgroup
//!   (required by the first), embedded from `systemd/`;
//! - `etc/picolet/config.yaml` (0600): a default configuration, never
//!   overwritten once it exists;
//! - `etc/picolet/manifests/` (0755): the static pods directory.
//!
//! With a board (given or detected), the binary must be one the board runs:
//! its ELF header's class and machine (see [`elf`]) against the board's
//! `rust_target` and `alt_rust_targets`, and the board must be one picolet
//! is built for (`status = "built"`). Otherwise nothing is written, unless
//! `--force`.
//!
//! Only when the root is `/` and systemd runs (`/run/systemd/system`
//! exists) does it run `systemctl daemon-reload` and `systemctl enable --now
//! picolet.service`; otherwise it says what to run. With a board it adds the
//! board's notes: the kernel command-line fix when cgroup v2 or one of its
//! controllers is missing (from `picolet check`).

pub mod elf;

use crate::check::{self, Board, BoardError};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The systemd unit, as shipped in `systemd/picolet.service` (carried
/// deflated: [`crate::assets::INSTALL`]).
pub fn unit() -> String {
    embedded("picolet.service")
}

fn embedded(name: &str) -> String {
    crate::assets::INSTALL
        .file(name)
        .expect("build.rs bundles the install files")
}
/// Where the binary goes, relative to the root.
pub const BIN_PATH: &str = "usr/local/bin/picolet";
/// Where the unit goes, relative to the root.
pub const UNIT_PATH: &str = "etc/systemd/system/picolet.service";
/// The pods' unit, as shipped in `systemd/picolet-pods.service`.
pub fn pods_unit() -> String {
    embedded("picolet-pods.service")
}
/// Where the pods' unit goes, relative to the root.
pub const PODS_UNIT_PATH: &str = "etc/systemd/system/picolet-pods.service";
/// The default configuration, relative to the root.
pub const CONFIG_PATH: &str = "etc/picolet/config.yaml";
/// The static pods directory, relative to the root.
pub const MANIFESTS_DIR: &str = "etc/picolet/manifests";

/// What to install where.
#[derive(Debug, Clone)]
pub struct Options {
    /// `/` on the device itself; any directory to stage an install.
    pub root: PathBuf,
    /// A board id from `boards/`; detected when the root is `/`.
    pub board: Option<String>,
    /// The binary to copy (default `/proc/self/exe`).
    pub exe: PathBuf,
    /// Install even a binary of another architecture than the board's, or
    /// for a board picolet is not built for.
    pub force: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            root: PathBuf::from("/"),
            board: None,
            exe: PathBuf::from("/proc/self/exe"),
            force: false,
        }
    }
}

/// Errors of `picolet install`; each names the path or command involved.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Board(#[from] BoardError),
    #[error(
        "board {id} ({name}) is not supported: picolet is not built for it ({target}, status \
         {status}); supported boards: {supported} (--force installs anyway)"
    )]
    Unsupported {
        id: String,
        name: String,
        target: String,
        status: String,
        supported: String,
    },
    #[error(
        "refusing to install {path}: it is {found}, but board {board} runs {wanted}; install \
         the binary built for the board (scripts/build-arm.sh {board}) with --binary FILE, or \
         pass --force"
    )]
    WrongArch {
        path: PathBuf,
        found: String,
        board: String,
        wanted: String,
    },
    #[error("`{command}` failed: {status}")]
    Command { command: String, status: String },
}

/// One thing `install` did or left for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A file written, with its mode.
    Wrote { path: PathBuf, mode: u32 },
    /// A file left as it was.
    Kept { path: PathBuf, why: &'static str },
    /// A directory that exists now, with its mode.
    Dir { path: PathBuf, mode: u32 },
    /// A command that ran successfully.
    Ran(String),
    /// A command for the user to run.
    Todo(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Wrote { path, mode } => write!(f, "wrote   {} ({mode:04o})", path.display()),
            Step::Kept { path, why } => write!(f, "kept    {} ({why})", path.display()),
            Step::Dir { path, mode } => write!(f, "dir     {}/ ({mode:04o})", path.display()),
            Step::Ran(c) => write!(f, "ran     {c}"),
            Step::Todo(c) => write!(f, "to do   {c}"),
        }
    }
}

/// What `install` did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub board: Option<String>,
    pub steps: Vec<Step>,
    /// Board notes: what the device still needs (e.g. the cmdline fix).
    pub notes: Vec<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(b) = &self.board {
            writeln!(f, "board   {b}")?;
        }
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        for n in &self.notes {
            writeln!(f, "note    {n}")?;
        }
        Ok(())
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io { what, path, source }
}

/// The default `config.yaml` for `board`. Flags given to `picolet agent`
/// win over it. The template is `src/install/config.yaml` (carried
/// deflated): every key, commented out with its default
/// (docs/configuration.md explains each), with `#BOARD#` and `#PIDS#`
/// filled in here.
pub fn default_config(board: Option<&Board>) -> String {
    let pids = board.and_then(|b| b.pod_pids_max).unwrap_or(1024);
    let which = board
        .map(|b| format!("# Board: {} ({})", b.id, b.name))
        .unwrap_or_else(|| "# Board: not given".to_string());
    embedded("config.yaml")
        .replace("#BOARD#", &which)
        .replace("#PIDS#", &pids.to_string())
}

/// Whether the running system is booted with systemd (`sd_booted()`).
pub fn systemd_running(root: &Path) -> bool {
    root.join("run/systemd/system").is_dir()
}

/// Installs into `opts.root`. See the module documentation.
pub fn install(opts: &Options) -> Result<Outcome, InstallError> {
    let live = opts.root == Path::new("/");
    let board = match (&opts.board, live) {
        (Some(id), _) => Some(check::boards::by_id(id)?),
        (None, true) => Some(check::board_for(None, &opts.root)?.0.board),
        (None, false) => None,
    };
    let mut out = Outcome {
        board: board.as_ref().map(|b| format!("{} — {}", b.id, b.name)),
        ..Outcome::default()
    };
    if let Some(b) = &board {
        if let Some(forced) = check_binary(b, &opts.exe, opts.force)? {
            out.notes.push(forced);
        }
    }
    let bin = opts.root.join(BIN_PATH);
    copy_atomic(&opts.exe, &bin, 0o755)?;
    out.steps.push(Step::Wrote {
        path: bin,
        mode: 0o755,
    });
    for (path, text) in [(PODS_UNIT_PATH, pods_unit()), (UNIT_PATH, unit())] {
        let unit = opts.root.join(path);
        write_atomic(&unit, text.as_bytes(), 0o644)?;
        out.steps.push(Step::Wrote {
            path: unit,
            mode: 0o644,
        });
    }
    let config = opts.root.join(CONFIG_PATH);
    if config.exists() {
        out.steps.push(Step::Kept {
            path: config,
            why: "exists; not overwritten",
        });
    } else {
        write_atomic(&config, default_config(board.as_ref()).as_bytes(), 0o600)?;
        out.steps.push(Step::Wrote {
            path: config,
            mode: 0o600,
        });
    }
    let manifests = opts.root.join(MANIFESTS_DIR);
    std::fs::create_dir_all(&manifests).map_err(io_err("creating", &manifests))?;
    out.steps.push(Step::Dir {
        path: manifests,
        mode: 0o755,
    });

    let commands = [
        "systemctl daemon-reload",
        "systemctl enable --now picolet.service",
    ];
    if live && systemd_running(&opts.root) {
        for c in commands {
            run(c)?;
            out.steps.push(Step::Ran(c.to_string()));
        }
    } else if live {
        out.steps.push(Step::Todo(format!(
            "{}   (systemd is not running here)",
            commands.join(" && ")
        )));
    } else {
        out.steps.push(Step::Todo(format!(
            "systemctl --root={} enable picolet.service   (enables it in the staged tree; \
             on a running device: {})",
            opts.root.display(),
            commands.join(" && ")
        )));
    }
    if let Some(b) = &board {
        out.notes.extend(board_notes(b, live, &opts.root));
    }
    Ok(out)
}

/// Refuses a board picolet is not built for, and a binary whose ELF header
/// is not one of the board's architectures. With `force`, says what was
/// overridden instead (a note).
fn check_binary(board: &Board, exe: &Path, force: bool) -> Result<Option<String>, InstallError> {
    let mut overridden = Vec::new();
    if !board.built() {
        let e = InstallError::Unsupported {
            id: board.id.clone(),
            name: board.name.clone(),
            target: board.rust_target.clone(),
            status: board.status.clone(),
            supported: check::boards::supported_ids(),
        };
        if !force {
            return Err(e);
        }
        overridden.push(format!(
            "board {} is not one picolet is built for",
            board.id
        ));
    }
    let found = match elf::read(exe) {
        Ok(h) if h.arch().is_some_and(|a| board.runs(a)) => None,
        Ok(h) => Some(format!("an {h} binary")),
        Err(e) => Some(format!("a file whose ELF header could not be read: {e}")),
    };
    if let Some(found) = found {
        if !force {
            return Err(InstallError::WrongArch {
                path: exe.to_path_buf(),
                found,
                board: board.id.clone(),
                wanted: board.arches_text(),
            });
        }
        overridden.push(format!(
            "{} is {found}, not {} for board {}",
            exe.display(),
            board.arches_text(),
            board.id
        ));
    }
    Ok((!overridden.is_empty())
        .then(|| format!("installed with --force: {}", overridden.join("; "))))
}

/// The board's notes: on the device itself, the fixes `picolet check`
/// gives for missing cgroup items; for a staged install, the kernel switches
/// the device needs.
fn board_notes(board: &Board, live: bool, root: &Path) -> Vec<String> {
    if !live {
        if board.cgroup_switches.is_empty() {
            return Vec::new();
        }
        return vec![format!(
            "cgroup v2 with the memory controller needs \"{}\" on the kernel command line \
             ({}); `picolet check` on the device prints the exact fix",
            board.cgroup_switches, board.cmdline_file
        )];
    }
    let report = check::run(&check::Options {
        board: Some(board.id.clone()),
        cgroup_root: None,
        root: root.to_path_buf(),
    });
    let Ok(report) = report else {
        return Vec::new();
    };
    let mut notes: Vec<String> = Vec::new();
    for i in report.items.iter().filter(|i| i.name.starts_with("cgroup")) {
        if let Some(fix) = &i.fix {
            let note = format!("{} is missing ({}); fix: {fix}", i.name, i.detail);
            if !notes.iter().any(|n| n.ends_with(fix.as_str())) {
                notes.push(note);
            }
        }
    }
    if !report.passed {
        notes.push("run `picolet check` for the whole preflight".into());
    }
    notes
}

fn run(command: &str) -> Result<(), InstallError> {
    let mut words = command.split(' ');
    let prog = words.next().unwrap_or_default();
    let status = std::process::Command::new(prog)
        .args(words)
        .status()
        .map_err(|e| InstallError::Command {
            command: command.to_string(),
            status: e.to_string(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError::Command {
            command: command.to_string(),
            status: status.to_string(),
        })
    }
}

fn tmp_name(dst: &Path) -> PathBuf {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dst.with_file_name(format!(".{name}.picolet-install-{}", std::process::id()))
}

/// Copies `src` to `dst` through a temporary file in the same directory.
fn copy_atomic(src: &Path, dst: &Path, mode: u32) -> Result<(), InstallError> {
    let bytes = std::fs::read(src).map_err(io_err("reading", src))?;
    write_atomic(dst, &bytes, mode)
}

/// Writes `bytes` to `dst` with `mode`: temporary file, fsync, rename,
/// fsync of the directory. Parent directories are created (0755).
fn write_atomic(dst: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    let dir = dst.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let tmp = tmp_name(dst);
    let result = (|| {
        // A leftover or planted symlink at the temp name is unlinked, and
        // the file created with O_EXCL|O_NOFOLLOW: never written through.
        let mut f = crate::store::create_fresh(&tmp).map_err(io_err("creating", &tmp))?;
        f.write_all(bytes).map_err(io_err("writing", &tmp))?;
        // The umask may have narrowed the mode given at creation.
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err("setting the mode of", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
        std::fs::rename(&tmp, dst).map_err(io_err("renaming into", dst))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
