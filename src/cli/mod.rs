//! The local commands: `get`, `describe`, `logs`, `exec` (through the
//! agent's API socket), `image` (the image store), `check` and `install`
//! (the host). `main.rs` only dispatches here, to [`crate::agent`] and to
//! [`crate::controller`].
//!
//! Every command line is parsed the same way, by [`args::Args`].
//!
//! `--state-dir DIR` is taken by `picolet agent` and by the commands that
//! use the agent's state directory (`get`, `describe`, `logs`, `exec`,
//! `image`), and means the same for all of them ([`state_dir`]): the flag,
//! else `stateDir` of the agent's config file (`--config FILE` for the
//! agent, else `/etc/picolet/config.yaml` if it exists), else
//! `$PICOLET_STATE_DIR`, else `/var/lib/picolet`. `check`, `install` and the
//! fleet controller's commands do not use it, and refuse it.

pub mod args;
pub mod exec;
pub mod help;
mod host;
mod image;
pub mod jsonpath;
mod logs;
mod pods;
mod pull;
mod rollout;
pub mod selector;
mod top;
mod workloads;

use crate::api::{self, Request, Response};
use crate::fleet::config::{AgentFileConfig, DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR};
use args::{Args, Spec};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs local command `cmd`; `None` if it is not one. `main` restores
/// `SIGPIPE`'s default first ([`ignore_closed_stdout`]) for all but `exec`.
#[inline(never)] // own stack frame: see docs/design-deviations.md §13
pub fn run(cmd: &str, args: Vec<OsString>) -> Option<Result<ExitCode, String>> {
    Some(match cmd {
        "get" => pods::get(args),
        "describe" => pods::describe(args),
        "logs" => logs::logs(args),
        "exec" => exec::exec(args),
        "image" => image::image(args),
        "pull" => pull::helper(args),
        "check" => host::check(args),
        "install" => host::install(args),
        "net" => host::net(args),
        "rollout" => rollout::rollout(args),
        "top" => top::top(args),
        _ => return None,
    })
}

/// Restores `SIGPIPE`'s default action, so that a write to a pipe whose
/// reader has gone ends the process at once and quietly, as for Unix
/// tools. For the local commands only (never the agent or the shim).
pub fn ignore_closed_stdout() {
    if let Err(e) = crate::sys::signal::default_sigpipe() {
        log::debug!("restoring SIGPIPE: {e}");
    }
}

/// Writes `text` to stdout and flushes it. With `SIGPIPE` blocked (its
/// default action restored is the usual path, see
/// [`ignore_closed_stdout`]) a closed pipe is `EPIPE`: the process then
/// ends quietly, with the shell's code for a `SIGPIPE` death (141); any
/// other error is returned, never a panic as from `println!`.
pub fn out(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => Err(format!("writing to stdout: {e}")),
    }
}

/// The agent's answer for a pod it does not have (its `find`).
fn agent_not_found(namespace: &str, name: &str) -> String {
    format!("pod \"{name}\" not found in namespace \"{namespace}\"")
}

/// kubectl's answer for a pod that does not exist: its message on stderr,
/// exit 1.
fn not_found(name: &str) -> ExitCode {
    eprintln!("Error from server (NotFound): pods \"{name}\" not found");
    ExitCode::from(1)
}

/// The agent's state directory (see the module doc): `flag`, else
/// `from_file` (the config file's `stateDir`), else `$PICOLET_STATE_DIR`,
/// else [`DEFAULT_STATE_DIR`].
pub fn resolve_state_dir(flag: Option<PathBuf>, from_file: Option<PathBuf>) -> PathBuf {
    flag.or(from_file)
        .or_else(|| std::env::var_os("PICOLET_STATE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// The state directory of a local command: `--state-dir`, else the default
/// config file's `stateDir` (read only when no flag is given), else the
/// environment, else the default.
pub fn state_dir(a: &Args) -> Result<PathBuf, String> {
    if let Some(d) = a.one(&["state-dir"]) {
        return Ok(PathBuf::from(d));
    }
    let file = AgentFileConfig::load_optional(Path::new(DEFAULT_CONFIG_PATH))
        .map_err(|e| e.to_string())?;
    Ok(resolve_state_dir(None, file.state_dir))
}

/// What the API commands share: the state dir and the namespace.
struct Common {
    state_dir: PathBuf,
    namespace: String,
}

/// The options every API command takes, besides its own.
const API_VALUED: [&str; 3] = ["state-dir", "n", "namespace"];

impl Common {
    fn of(a: &Args) -> Result<Common, String> {
        Ok(Common {
            state_dir: state_dir(a)?,
            namespace: a.one(&["n", "namespace"]).unwrap_or("default").to_string(),
        })
    }

    fn call(&self, req: Request) -> Result<Response, String> {
        api::call(&self.state_dir, &req).map_err(|e| e.to_string())
    }
}

/// Parses an API command's arguments: its own options plus [`API_VALUED`].
fn parse_api(
    args: Vec<OsString>,
    valued: &[&str],
    flags: &[&str],
) -> Result<(Common, Args), String> {
    let valued: Vec<&str> = valued.iter().chain(API_VALUED.iter()).copied().collect();
    let a = Args::parse(
        args,
        &Spec {
            valued: &valued,
            flags,
        },
    )?;
    Ok((Common::of(&a)?, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_is_the_flag_then_the_config_file_then_the_default() {
        let flag = Some(PathBuf::from("/flag"));
        let file = Some(PathBuf::from("/file"));
        assert_eq!(
            resolve_state_dir(flag.clone(), file.clone()),
            PathBuf::from("/flag")
        );
        assert_eq!(resolve_state_dir(None, file), PathBuf::from("/file"));
        // Without either: the environment or the default (the test does
        // not set the environment: it is shared by the tests' threads).
        let want = std::env::var_os("PICOLET_STATE_DIR")
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from);
        assert_eq!(resolve_state_dir(None, None), want);
    }

    #[test]
    fn check_and_install_refuse_the_state_dir_they_do_not_use() {
        for cmd in ["check", "install"] {
            let args = vec![OsString::from("--state-dir"), OsString::from("/x")];
            let e = run(cmd, args).unwrap().unwrap_err();
            assert_eq!(e, "unknown option --state-dir; see `picolet --help`");
        }
    }
}
