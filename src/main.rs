//! The `picolet` command line: the agent, the shim, and the local CLI.

use picolet::api::{self, Request, Response};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
picolet — Kubernetes-style pods on small Linux devices

Usage:
";

const USAGE_LOCAL: &str = "  picolet get pods [-o wide|json|yaml] [-n NAMESPACE]
  picolet describe pod NAME [-n NAMESPACE]
  picolet logs POD [-c CONTAINER] [--tail N] [-f] [--previous] [-n NAMESPACE]
  picolet exec POD [-c CONTAINER] [-n NAMESPACE] -- COMMAND [ARG...]
  picolet image import FILE|DIR [--name REF]
  picolet image ls
  picolet version
  picolet check [-o json] [--board BOARD] [--cgroup-root DIR]
  picolet install [--board BOARD] [--root DIR]
  picolet cgroup-holder        the process of picolet-pods.service (holds the pods' cgroup)

Fleet controller (talks to the MQTT broker):
";

const USAGE_TAIL: &str = "
The agent reads --config FILE (default /etc/picolet/config.yaml); its flags win.
Every local command takes --state-dir DIR (default /var/lib/picolet, or $PICOLET_STATE_DIR).
The agent logs to stderr; set RUST_LOG=debug for more.
";

fn usage() -> String {
    format!(
        "{USAGE}{}{USAGE_LOCAL}{}{USAGE_TAIL}",
        picolet::agent::flags::USAGE,
        picolet::controller::USAGE
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

/// Options shared by every command.
struct Common {
    state_dir: PathBuf,
    namespace: String,
}

fn default_state_dir() -> PathBuf {
    std::env::var_os("PICOLET_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/picolet"))
}

fn run(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
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
        // picolet rmtree DIR, picolet resolve HOST PORT, picolet du PATH...
        "rmtree" => return Ok(child_command(&args, picolet::agent::trash::rmtree_main)),
        "resolve" => return Ok(child_command(&args, picolet::fleet::transport::lookup_main)),
        "du" => return Ok(child_command(&args, picolet::agent::disk::du_main)),
        "version" | "--version" | "-V" => {
            println!("{}", version());
            return Ok(ExitCode::SUCCESS);
        }
        "" | "help" | "--help" | "-h" => {
            print!("{}", usage());
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
    match cmd.as_str() {
        "agent" => agent(rest),
        "get" => get(rest),
        "describe" => describe(rest),
        "logs" => logs(rest),
        "exec" => exec(rest),
        "image" => image(rest),
        "check" => check(rest),
        "install" => install(rest),
        other => Err(format!("unknown command {other:?}; see `picolet --help`")),
    }
}

/// Runs one of the agent's helper commands on the arguments after its name.
fn child_command(args: &[std::ffi::OsString], main: fn(&[String]) -> i32) -> ExitCode {
    let rest: Vec<String> = args[1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    ExitCode::from(main(&rest).clamp(0, 255) as u8)
}

/// `picolet cgroup-holder`: see `picolet::runtime::cgroup::holder`.
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

/// Parses options common to the CLI commands; returns the free arguments
/// and the parser's other flags as (name, value) pairs.
/// What `parse` returns: common options, free arguments, named options
/// (name, value), and everything after `--`.
type Parsed = (
    Common,
    Vec<String>,
    Vec<(String, Option<String>)>,
    Vec<String>,
);

fn parse(args: Vec<std::ffi::OsString>, valued: &[&str], flags: &[&str]) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut common = Common {
        state_dir: default_state_dir(),
        namespace: "default".into(),
    };
    let mut free = Vec::new();
    let mut opts = Vec::new();
    let mut after_dashdash = Vec::new();
    let mut p = lexopt::Parser::from_args(args);
    let e = |e: lexopt::Error| e.to_string();
    while let Some(arg) = p.next().map_err(e)? {
        match arg {
            Long("state-dir") => common.state_dir = p.value().map_err(e)?.into(),
            Short('n') | Long("namespace") => {
                common.namespace = p.value().map_err(e)?.string().map_err(e)?
            }
            Long(name) if valued.contains(&name) => {
                let name = name.to_string();
                opts.push((name, Some(p.value().map_err(e)?.string().map_err(e)?)));
            }
            Short(c) if valued.contains(&c.to_string().as_str()) => {
                opts.push((
                    c.to_string(),
                    Some(p.value().map_err(e)?.string().map_err(e)?),
                ));
            }
            Long(name) if flags.contains(&name) => opts.push((name.to_string(), None)),
            Short(c) if flags.contains(&c.to_string().as_str()) => opts.push((c.to_string(), None)),
            Value(v) => {
                let v = v.string().map_err(e)?;
                if v == "--" {
                    break;
                }
                free.push(v);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if let Ok(raw) = p.raw_args() {
        for a in raw {
            after_dashdash.push(a.to_string_lossy().to_string());
        }
    }
    Ok((common, free, opts, after_dashdash))
}

fn opt<'a>(opts: &'a [(String, Option<String>)], names: &[&str]) -> Option<&'a str> {
    opts.iter()
        .rev()
        .find(|(n, _)| names.contains(&n.as_str()))
        .and_then(|(_, v)| v.as_deref())
}

fn has(opts: &[(String, Option<String>)], names: &[&str]) -> bool {
    opts.iter().any(|(n, _)| names.contains(&n.as_str()))
}

fn agent(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let cfg = picolet::agent::flags::config(args)?;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    picolet::agent::run(cfg).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn call(common: &Common, req: Request) -> Result<Response, String> {
    api::call(&common.state_dir, &req).map_err(|e| e.to_string())
}

fn get(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let (common, free, opts, _) = parse(args, &["o", "output"], &["A", "all-namespaces"])?;
    match free.first().map(String::as_str) {
        Some("pods") | Some("pod") | Some("po") => {}
        Some(other) => return Err(format!("picolet serves only pods, not {other:?}")),
        None => return Err("usage: picolet get pods [-o wide|json|yaml]".into()),
    }
    let all = has(&opts, &["A", "all-namespaces"]);
    let Response::Pods { node, pods, errors } = call(&common, Request::GetPods)? else {
        return Err("unexpected response".into());
    };
    let mut pods: Vec<_> = pods
        .into_iter()
        .filter(|p| all || p.pod["metadata"]["namespace"] == common.namespace.as_str())
        .collect();
    if let Some(name) = free.get(1) {
        pods.retain(|p| p.pod["metadata"]["name"] == name.as_str());
        if pods.is_empty() {
            return Err(format!("pods \"{name}\" not found"));
        }
    }
    let now = picolet::clock::wall_ms();
    match opt(&opts, &["o", "output"]) {
        None | Some("wide") => {
            if pods.is_empty() {
                eprintln!("No resources found in {} namespace.", common.namespace);
            } else {
                let wide = opt(&opts, &["o", "output"]) == Some("wide");
                print!("{}", api::print::pods_table(&node, &pods, wide, now));
            }
        }
        Some(fmt @ ("json" | "yaml")) => {
            let items: Vec<serde_json::Value> = pods
                .into_iter()
                .map(|p| {
                    let mut v = p.pod;
                    v["status"] = p.status;
                    v
                })
                .collect();
            let list = serde_json::json!({
                "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": ""}, "items": items
            });
            if fmt == "json" {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
                );
            } else {
                print!(
                    "{}",
                    serde_yaml::to_string(&list).map_err(|e| e.to_string())?
                );
            }
        }
        Some(other) => return Err(format!("-o {other}: use wide, json or yaml")),
    }
    for (file, err) in errors {
        eprintln!("warning: manifest {file} was refused: {err}");
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let (common, free, _, _) = parse(args, &[], &[])?;
    let name = match free.as_slice() {
        [kind, name] if matches!(kind.as_str(), "pod" | "pods" | "po") => name.clone(),
        [name] if name.starts_with("pod/") => name[4..].to_string(),
        _ => return Err("usage: picolet describe pod NAME".into()),
    };
    let resp = call(
        &common,
        Request::Describe {
            namespace: common.namespace.clone(),
            name,
        },
    )?;
    let Response::Describe {
        node,
        pod,
        events,
        manifest_error,
    } = resp
    else {
        return Err("unexpected response".into());
    };
    print!(
        "{}",
        api::print::describe(
            &node,
            &pod,
            &events,
            manifest_error.as_deref(),
            picolet::clock::wall_ms()
        )
    );
    Ok(ExitCode::SUCCESS)
}

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

fn logs(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let (common, free, opts, _) = parse(
        args,
        &["c", "container", "tail"],
        &["f", "follow", "p", "previous"],
    )?;
    let pod = free
        .first()
        .ok_or("usage: picolet logs POD [-c CONTAINER]")?
        .clone();
    let container = opt(&opts, &["c", "container"]).map(str::to_string);
    let previous = has(&opts, &["p", "previous"]);
    let follow = has(&opts, &["f", "follow"]);
    let tail: Option<usize> = match opt(&opts, &["tail"]) {
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
    let Response::Logs { files } = call(&common, req.clone())? else {
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
        if let Ok(Response::Logs { files }) = call(&common, req.clone()) {
            if let Some(last) = files.last() {
                if *last != current {
                    current = last.clone();
                    pos = 0;
                }
            }
        }
    }
}

fn exec(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let (common, free, opts, argv) = parse(args, &["c", "container"], &["i", "t"])?;
    let pod = free
        .first()
        .ok_or("usage: picolet exec POD [-c C] -- CMD...")?
        .clone();
    let mut argv = argv;
    argv.extend(free.iter().skip(1).cloned());
    if argv.is_empty() {
        return Err("usage: picolet exec POD [-c C] -- CMD...".into());
    }
    let resp = call(
        &common,
        Request::Exec {
            namespace: common.namespace.clone(),
            name: pod,
            container: opt(&opts, &["c", "container"]).map(str::to_string),
            argv,
        },
    )?;
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

fn image(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let (common, free, opts, _) = parse(args, &["name"], &[])?;
    let store = picolet::image::ImageStore::open(common.state_dir.join("images"))
        .map_err(|e| e.to_string())?;
    match free.first().map(String::as_str) {
        Some("import") => {
            let path = free
                .get(1)
                .ok_or("usage: picolet image import FILE|DIR [--name REF]")?;
            let imported = store
                .import_as(Path::new(path), opt(&opts, &["name"]))
                .map_err(|e| e.to_string())?;
            for i in imported {
                match i.dropped_devices {
                    0 => println!("imported {} ({})", i.reference, i.image_id),
                    n => println!(
                        "imported {} ({}); dropped {n} device node{} from its layers",
                        i.reference,
                        i.image_id,
                        if n == 1 { "" } else { "s" }
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("ls") | Some("list") => {
            let list = store.list().map_err(|e| e.to_string())?;
            print!("{}", picolet::image::format_list(&list));
            Ok(ExitCode::SUCCESS)
        }
        _ => Err("usage: picolet image import FILE|DIR | picolet image ls".into()),
    }
}

fn check(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let (_, free, opts, _) = parse(args, &["o", "output", "board", "cgroup-root"], &[])?;
    if let Some(f) = free.first() {
        return Err(format!("unexpected argument {f:?}"));
    }
    let report = picolet::check::run(&picolet::check::Options {
        board: opt(&opts, &["board"]).map(str::to_string),
        cgroup_root: opt(&opts, &["cgroup-root"]).map(PathBuf::from),
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    match opt(&opts, &["o", "output"]) {
        None | Some("text") => print!("{}", report.text()),
        Some("json") => println!("{}", report.json()),
        Some(other) => return Err(format!("-o {other}: use text or json")),
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn install(args: Vec<std::ffi::OsString>) -> Result<ExitCode, String> {
    let (_, free, opts, _) = parse(args, &["board", "root"], &[])?;
    if let Some(f) = free.first() {
        return Err(format!("unexpected argument {f:?}"));
    }
    let outcome = picolet::install::install(&picolet::install::Options {
        root: opt(&opts, &["root"]).map_or_else(|| PathBuf::from("/"), PathBuf::from),
        board: opt(&opts, &["board"]).map(str::to_string),
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    print!("{outcome}");
    Ok(ExitCode::SUCCESS)
}
