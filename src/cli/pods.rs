//! `picolet get pods` and `picolet describe pod`, through the agent's API.

use super::parse_api;
use crate::api::{self, Request, Response};
use std::ffi::OsString;
use std::process::ExitCode;

/// `picolet get --help`.
pub const GET_HELP: &str = "\
List pods, as `kubectl get pods` does.

Usage:
  picolet get pods [NAME...] [-o FORMAT] [-l SELECTOR] [-n NAMESPACE | -A] [-w]
                   [--show-labels] [--state-dir DIR]

Options:
  -o, --output FORMAT    wide, json, yaml, name, jsonpath=TEMPLATE or
                         custom-columns=HEADER:.field.path,...
                         (one NAME with json/yaml: the Pod itself; else a List)
  -l, --selector SEL     only pods whose labels match: a=b, a==b, a!=b, a, !a,
                         a in (x,y), a notin (x); commas AND them
  -n, --namespace NS     the namespace (default: default)
  -A, --all-namespaces   every namespace (adds a NAMESPACE column)
  -w, --watch            after the list, print a pod's row again each time it
                         changes, until interrupted (polls the agent)
      --watch-only       like -w, without the first list
      --show-labels      add a LABELS column
      --state-dir DIR    the agent's state directory

A NAME that does not exist is reported on stderr as kubectl does and the
command exits 1; the pods that exist are still printed.

Examples:
  picolet get pods
  picolet get pods web db -o wide
  picolet get pods -A -l app=web,tier!=cache
  picolet get pods web -o yaml > web.yaml
  picolet get pods -o jsonpath='{range .items[*]}{.metadata.name}{\"\\n\"}{end}'
  picolet get pods -o custom-columns=NAME:.metadata.name,IP:.status.podIP
";

/// `picolet describe --help`.
pub const DESCRIBE_HELP: &str = "\
Show one pod in detail, as `kubectl describe pod` does: its containers,
probes, resources, environment, mounts, volumes, conditions and events.

Usage:
  picolet describe pod NAME [-n NAMESPACE] [--state-dir DIR]
  picolet describe pod/NAME [-n NAMESPACE] [--state-dir DIR]

Options:
  -n, --namespace NS     the namespace (default: default)
      --state-dir DIR    the agent's state directory

Examples:
  picolet describe pod web
  picolet describe pod/web -n edge
";

pub(super) fn get(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(args, &["o", "output"], &["A", "all-namespaces"])?;
    let free = &a.free;
    match free.first().map(String::as_str) {
        Some("pods") | Some("pod") | Some("po") => {}
        Some(other) => return Err(format!("picolet serves only pods, not {other:?}")),
        None => return Err("usage: picolet get pods [-o wide|json|yaml]".into()),
    }
    let all = a.has(&["A", "all-namespaces"]);
    let Response::Pods { node, pods, errors } = common.call(Request::GetPods)? else {
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
    let now = crate::clock::wall_ms();
    match a.one(&["o", "output"]) {
        None | Some("wide") => {
            if pods.is_empty() {
                eprintln!("No resources found in {} namespace.", common.namespace);
            } else {
                let wide = a.one(&["o", "output"]) == Some("wide");
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

pub(super) fn describe(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(args, &[], &[])?;
    let name = match a.free.as_slice() {
        [kind, name] if matches!(kind.as_str(), "pod" | "pods" | "po") => name.clone(),
        [name] if name.starts_with("pod/") => name[4..].to_string(),
        _ => return Err("usage: picolet describe pod NAME".into()),
    };
    let resp = common.call(Request::Describe {
        namespace: common.namespace.clone(),
        name,
    })?;
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
            crate::clock::wall_ms()
        )
    );
    Ok(ExitCode::SUCCESS)
}
