//! `picolet rollout status|history|undo|restart deployment/NAME`, as
//! kubectl's (the agent answers; `status` polls it until the rollout ends).

use super::Common;
use crate::api::{Request, Response, RolloutAction};
use crate::spec::workload::WorkloadKind;
use std::ffi::OsString;
use std::process::ExitCode;

/// `picolet rollout ACTION RESOURCE`.
pub(super) fn rollout(args: Vec<OsString>) -> Result<ExitCode, String> {
    if crate::controller::rollout::is_fleet(&args) {
        return crate::controller::rollout::run(args);
    }
    let (common, a) = super::parse_api(args, &["to-revision", "timeout", "watch"], &[])?;
    let (verb, rest) = a
        .free
        .split_first()
        .ok_or("usage: picolet rollout status|history|undo|restart deployment/NAME")?;
    let (kind, name) = match rest {
        [kind, name] => (kind.as_str(), name.as_str()),
        [one] => one
            .split_once('/')
            .ok_or_else(|| format!("{one:?}: expected deployment/NAME"))?,
        _ => return Err("one resource: deployment/NAME".into()),
    };
    let kind = WorkloadKind::from_resource(kind)
        .ok_or_else(|| format!("the server doesn't have a resource type {kind:?}"))?;
    let only = |opt: &str, verbs: &str| -> Result<(), String> {
        if a.has(&[opt]) && !verbs.split(' ').any(|v| v == verb) {
            return Err(format!("--{opt} is an option of rollout {verbs}"));
        }
        Ok(())
    };
    only("to-revision", "undo")?;
    only("timeout", "status")?;
    only("watch", "status")?;
    let action = match verb.as_str() {
        "status" => RolloutAction::Status,
        "history" => RolloutAction::History,
        "undo" => RolloutAction::Undo,
        "restart" => RolloutAction::Restart,
        other => {
            return Err(format!(
                "unknown rollout command {other:?}: status, history, undo or restart"
            ));
        }
    };
    let to = match a.one(&["to-revision"]) {
        Some(n) => Some(
            n.parse()
                .map_err(|_| format!("--to-revision {n:?}: not a number"))?,
        ),
        None => None,
    };
    let watch = match a.one(&["watch"]) {
        None | Some("true") => true,
        Some("false") => false,
        Some(v) => return Err(format!("--watch {v:?}: true or false")),
    };
    let timeout = match a.one(&["timeout"]) {
        Some(t) => Some(std::time::Duration::from_nanos(
            super::logs::parse_since(t).map_err(|e| e.replace("--since", "--timeout"))? as u64,
        )),
        None => None,
    };
    let req = Request::Rollout(action, to, kind, common.namespace.clone(), name.to_string());
    let start = std::time::Instant::now();
    let mut last = String::new();
    loop {
        match call(&common, &req) {
            Ok((text, done)) => {
                if text != last {
                    super::out(&format!("{}\n", text.trim_end_matches('\n')))?;
                    last = text;
                }
                if done || !watch {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(code) => return Ok(code),
        }
        if timeout.is_some_and(|t| t > std::time::Duration::ZERO && start.elapsed() >= t) {
            eprintln!("error: timed out waiting for the condition");
            return Ok(ExitCode::from(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// One request; an error printed as kubectl prints it (its exit code).
fn call(common: &Common, req: &Request) -> Result<(String, bool), ExitCode> {
    match common.call(req.clone()) {
        Ok(Response::Rollout(text, done)) => Ok((text, done)),
        Ok(_) => {
            eprintln!("error: unexpected response");
            Err(ExitCode::from(1))
        }
        Err(e) if e.contains("not found in namespace") => {
            eprintln!(
                "Error from server (NotFound): {}",
                e.split(" in namespace").next().unwrap_or(&e)
            );
            Err(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rollout_has_help_and_refuses_misplaced_options() {
        let t = crate::cli::help::text("rollout", &[]).unwrap();
        assert!(
            t.contains("picolet rollout status") && t.contains("Example"),
            "{t}"
        );
        let run = |a: &[&str]| {
            super::rollout(a.iter().map(std::ffi::OsString::from).collect()).unwrap_err()
        };
        assert_eq!(run(&["--help"]), crate::cli::args::HELP_REQUESTED);
        let dir = ["--state-dir", "/nonexistent"];
        let e = run(&[&["status", "deploy/web", "--to-revision", "2"][..], &dir].concat());
        assert!(
            e.contains("--to-revision is an option of rollout undo"),
            "{e}"
        );
        let e = run(&[&["undo", "deploy/web", "--timeout", "2s"][..], &dir].concat());
        assert!(e.contains("--timeout"), "{e}");
        let e = run(&[&["pause", "deploy/web"][..], &dir].concat());
        assert!(e.contains("unknown rollout command"), "{e}");
        let e = run(&[&["undo", "pods/web"][..], &dir].concat());
        assert!(e.contains("resource type"), "{e}");
        let e = run(&[&["undo", "deploy/web", "--to-revision", "x"][..], &dir].concat());
        assert!(e.contains("not a number"), "{e}");
        let e = run(&[&["status", "deploy/web", "--timeout", "soon"][..], &dir].concat());
        assert!(e.contains("--timeout"), "{e}");
    }
}
