//! The `picolet` command line: dispatches to the agent
//! ([`picolet::agent`]), the local commands ([`picolet::cli`]), the fleet
//! controller ([`picolet::controller`]) and the agent's helper processes
//! (the shim, `rmtree`, `resolve`, `du`, `cgroup-holder`).

use std::path::Path;
use std::process::ExitCode;

/// `picolet --help`: the head and the tail (`src/cli/help/usage*.txt`,
/// carried deflated) around the controller's usage lines, which its own
/// errors print too.
fn usage() -> String {
    let help = picolet::assets::HELP.open();
    let part = |name| help.get(name).unwrap_or_default();
    format!(
        "{}{}{}",
        part("usage"),
        picolet::controller::USAGE,
        part("usage-tail")
    )
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match run(args) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn run(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let strings = |a: &[std::ffi::OsString]| -> Vec<String> {
        a.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    };
    // `picolet help COMMAND [SUB]` and `picolet COMMAND ... --help|-h`.
    if first == "help" && args.len() > 1 {
        let rest = strings(&args[2..]);
        return picolet::cli::help::print(&args[1].to_string_lossy(), &rest);
    }
    if picolet::cli::help::COMMANDS.contains(&first)
        && picolet::cli::args::help_requested(&args[1..])
    {
        return picolet::cli::help::print(first, &strings(&args[1..]));
    }
    match first {
        "shim" => {
            // picolet shim NAMESPACE/POD, the config path in
            // $PICOLET_SHIM_CONFIG (started by the agent, not by users;
            // the name is only for `ps`). `--config PATH` is accepted too.
            let env = std::env::var_os(picolet::runtime::shim::CONFIG_ENV);
            let cfg = args
                .iter()
                .position(|a| a == "--config")
                .and_then(|i| args.get(i + 1))
                .or(env.as_ref())
                .ok_or("usage: picolet shim NAMESPACE/POD (with $PICOLET_SHIM_CONFIG set)")?;
            let code = picolet::runtime::shim::run(Path::new(cfg));
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        "cgroup-holder" => return cgroup_holder(),
        // The agent's children for blocking work kept off its thread:
        // picolet rmtree DIR, picolet resolve HOST PORT, picolet du PATH...,
        // picolet image-gc ROOT REQUEST
        "rmtree" => return Ok(child_command(&args, picolet::agent::trash::rmtree_main)),
        "resolve" => return Ok(child_command(&args, picolet::fleet::transport::lookup_main)),
        "du" => return Ok(child_command(&args, picolet::agent::disk::du_main)),
        "image-gc" => return Ok(child_command(&args, picolet::image::gc_main)),
        "version" | "--version" | "-V" => {
            picolet::cli::ignore_closed_stdout();
            picolet::cli::out(&format!("{}\n", version()))?;
            return Ok(ExitCode::SUCCESS);
        }
        "" | "help" | "--help" | "-h" => {
            picolet::cli::ignore_closed_stdout();
            picolet::cli::out(&usage())?;
            return Ok(if first.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        }
        _ => {}
    }
    let cmd = first.to_string();
    let rest = args[1..].to_vec();
    if let Some(result) = picolet::controller::run(&cmd, rest.clone()) {
        return result;
    }
    if matches!(
        cmd.as_str(),
        "get" | "describe" | "logs" | "top" | "image" | "check" | "install" | "net"
    ) {
        // As in Unix tools: a closed stdout ends the command quietly
        // (`picolet get pods -o json | head -1`). Not the agent, nor the
        // shim; not `exec`, which feeds the agent's socket from stdin.
        picolet::cli::ignore_closed_stdout();
    }
    if let Some(result) = picolet::cli::run(&cmd, rest.clone()) {
        return result;
    }
    match cmd.as_str() {
        "agent" => agent(rest),
        other => Err(format!("unknown command {other:?}; see `picolet --help`")),
    }
}

/// Runs one of the agent's helper commands on the arguments after its name.
#[inline(never)] // own stack frame: see docs/design-deviations.md §13
fn child_command(args: &[std::ffi::OsString], main: fn(&[String]) -> i32) -> ExitCode {
    let rest: Vec<String> = args[1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    ExitCode::from(main(&rest).clamp(0, 255) as u8)
}

/// `picolet cgroup-holder`: see `picolet::runtime::cgroup::holder`.
#[inline(never)] // own stack frame: see docs/design-deviations.md §13
fn cgroup_holder() -> Result<ExitCode, String> {
    use picolet::runtime::cgroup::holder;
    let unit = holder::enter_leaf().map_err(|e| e.to_string())?;
    eprintln!(
        "picolet cgroup-holder: pods go in {} (this process: {}/{})",
        unit.display(),
        unit.display(),
        holder::HOLDER_LEAF
    );
    match picolet::agent::notify::Notifier::from_env() {
        Ok(Some(n)) => {
            let msg = format!("READY=1\nSTATUS=holding {} for the pods", unit.display());
            n.send(&msg).map_err(|e| format!("sd_notify: {e}"))?;
        }
        Ok(None) => {}
        Err(e) => return Err(e.to_string()),
    }
    holder::wait_for_signal()
}

fn version() -> String {
    picolet::check::version_line()
}

#[inline(never)] // own stack frame: see docs/design-deviations.md §13
fn agent(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let cfg = picolet::agent::flags::config(args)?;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    picolet::agent::run(cfg).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
