//! `picolet get pods` and `picolet describe pod`, through the agent's API.

use super::parse_api;
use crate::api::{self, Request, Response};
use std::ffi::OsString;
use std::process::ExitCode;

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
