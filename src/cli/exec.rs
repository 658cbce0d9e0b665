//! `picolet exec`: a command in a container, through the agent and the
//! pod's shim.

use super::parse_api;
use crate::api::{Request, Response};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

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
