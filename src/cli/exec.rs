//! `picolet exec`: a command in a container, through the agent and the
//! pod's shim.

use super::parse_api;
use crate::api::{Request, Response};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// `picolet exec --help`.
pub const HELP: &str = "\
Run a command in a running container.

Usage:
  picolet exec POD [-c CONTAINER] [-n NAMESPACE] [--state-dir DIR] -- COMMAND [ARG...]

Options:
  -c, --container NAME   the container (default: the pod's first)
  -n, --namespace NS     the namespace (default: default)
      --state-dir DIR    the agent's state directory

The exit code is the command's; 127 when it does not exist, 126 when it
cannot be run.

Examples:
  picolet exec web -- cat /etc/hostname
  picolet exec web -c sidecar -- sh -c 'ls /data'
";

pub(super) fn exec(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(args, &["c", "container"], &["i", "t"])?;
    let pod = a
        .free
        .first()
        .ok_or("usage: picolet exec POD [-c C] -- CMD...")?
        .clone();
    let argv: Vec<String> = a.free.iter().skip(1).cloned().collect();
    if argv.is_empty() {
        return Err("usage: picolet exec POD [-c C] -- CMD...".into());
    }
    let resp = common.call(Request::Exec {
        namespace: common.namespace.clone(),
        name: pod,
        container: a.one(&["c", "container"]).map(str::to_string),
        argv,
    })?;
    let Response::Exec {
        exit_code,
        output,
        error,
    } = resp
    else {
        return Err("unexpected response".into());
    };
    print!("{output}");
    let _ = std::io::stdout().flush();
    if let Some(e) = error {
        eprintln!("picolet exec: {e}");
    }
    Ok(ExitCode::from(exit_code.clamp(0, 255) as u8))
}
