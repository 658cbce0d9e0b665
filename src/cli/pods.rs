//! `picolet get pods` and `picolet describe pod`, through the agent's API.

use super::jsonpath::{self, Column, Template};
use super::parse_api;
use super::selector::Selector;
use crate::api::{self, PodEntry, Request, Response, print};
use serde_json::Value;
use std::ffi::OsString;
use std::process::ExitCode;

/// What `-o` asked for.
#[derive(Debug)]
enum Output {
    Table { wide: bool },
    Json,
    Yaml,
    Name,
    JsonPath(Template),
    Columns(Vec<Column>),
}

impl Output {
    fn parse(o: Option<&str>) -> Result<Output, String> {
        Ok(match o {
            None => Output::Table { wide: false },
            Some("wide") => Output::Table { wide: true },
            Some("json") => Output::Json,
            Some("yaml") => Output::Yaml,
            Some("name") => Output::Name,
            Some(o) if o.starts_with("jsonpath=") => {
                Output::JsonPath(Template::parse(&o["jsonpath=".len()..])?)
            }
            Some(o) if o.starts_with("custom-columns=") => {
                Output::Columns(jsonpath::parse_columns(&o["custom-columns=".len()..])?)
            }
            Some(other) => {
                return Err(format!(
                    "-o {other}: use wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=SPEC"
                ));
            }
        })
    }
}

/// `get`'s options, once parsed.
struct GetOpts {
    names: Vec<String>,
    output: Output,
    selector: Option<Selector>,
    all_namespaces: bool,
    namespace: String,
    show_labels: bool,
}

/// A pod as one Kubernetes object: the Pod with its status.
fn object(p: &PodEntry) -> Value {
    let mut v = p.pod.clone();
    if v.get("apiVersion").is_none() {
        v["apiVersion"] = "v1".into();
    }
    if v.get("kind").is_none() {
        v["kind"] = "Pod".into();
    }
    v["status"] = p.status.clone();
    v
}

fn name_of(p: &PodEntry) -> &str {
    p.pod["metadata"]["name"].as_str().unwrap_or("")
}

fn namespace_of(p: &PodEntry) -> &str {
    p.pod["metadata"]["namespace"].as_str().unwrap_or("default")
}

/// kubectl's LABELS cell: `k=v` sorted by key, comma-separated.
fn labels_cell(p: &PodEntry) -> String {
    let labels: Vec<String> = p.pod["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if labels.is_empty() {
        "<none>".into()
    } else {
        labels.join(",")
    }
}

impl GetOpts {
    /// The pods asked for, in order (the named ones in the order named),
    /// and the names not found.
    fn select(&self, pods: Vec<PodEntry>) -> (Vec<PodEntry>, Vec<String>) {
        let pods: Vec<PodEntry> = pods
            .into_iter()
            .filter(|p| self.all_namespaces || namespace_of(p) == self.namespace)
            .filter(|p| {
                self.selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&p.pod["metadata"]["labels"]))
            })
            .collect();
        if self.names.is_empty() {
            return (pods, Vec::new());
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for n in &self.names {
            match pods.iter().find(|p| name_of(p) == n) {
                Some(p) => found.push(p.clone()),
                None => missing.push(n.clone()),
            }
        }
        (found, missing)
    }

    /// The header and rows of a table-like output (table, name, custom
    /// columns); `None` for the document outputs.
    fn rows(
        &self,
        node: &str,
        pods: &[PodEntry],
        now: i64,
    ) -> Option<(Vec<String>, Vec<Vec<String>>)> {
        let mut header: Vec<String> = Vec::new();
        let rows = match &self.output {
            Output::Table { wide } => {
                if self.all_namespaces {
                    header.push("NAMESPACE".into());
                }
                header.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"].map(String::from));
                if *wide {
                    header.extend(["IP", "NODE"].map(String::from));
                }
                if self.show_labels {
                    header.push("LABELS".into());
                }
                pods.iter()
                    .map(|p| {
                        let r = print::row(p, node, now);
                        let mut v = Vec::new();
                        if self.all_namespaces {
                            v.push(namespace_of(p).to_string());
                        }
                        v.extend([r.name, r.ready, r.status, r.restarts.to_string(), r.age]);
                        if *wide {
                            v.extend([r.ip, r.node]);
                        }
                        if self.show_labels {
                            v.push(labels_cell(p));
                        }
                        v
                    })
                    .collect()
            }
            Output::Name => pods
                .iter()
                .map(|p| vec![format!("pod/{}", name_of(p))])
                .collect(),
            Output::Columns(cols) => {
                header = cols.iter().map(|c| c.header.clone()).collect();
                pods.iter()
                    .map(|p| {
                        let o = object(p);
                        cols.iter().map(|c| c.cell(&o)).collect()
                    })
                    .collect()
            }
            Output::Json | Output::Yaml | Output::JsonPath(_) => return None,
        };
        Some((header, rows))
    }

    /// The whole output for `pods`.
    fn render(&self, node: &str, pods: &[PodEntry], now: i64) -> Result<String, String> {
        if let Some((header, rows)) = self.rows(node, pods, now) {
            if header.is_empty() {
                return Ok(rows.iter().map(|r| format!("{}\n", r.join(" "))).collect());
            }
            let h: Vec<&str> = header.iter().map(String::as_str).collect();
            return Ok(print::table(&h, &rows));
        }
        // One name: the Pod itself; else a List, as kubectl prints them.
        let doc = match pods {
            [one] if self.names.len() == 1 => object(one),
            _ => serde_json::json!({
                "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                "items": pods.iter().map(object).collect::<Vec<_>>()
            }),
        };
        match &self.output {
            Output::Json => crate::jsonl::to_string_pretty(&doc)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string()),
            Output::Yaml => Ok(crate::yaml::to_string(&doc)),
            Output::JsonPath(t) => Ok(t.render(&doc)),
            _ => unreachable!("table outputs return above"),
        }
    }
}

/// `get configmaps|secrets [NAME...]`: kubectl's table (`NAME DATA AGE`,
/// `NAME TYPE DATA AGE`), from what the agent knows.
fn get_objects(
    common: &super::Common,
    a: &super::args::Args,
    secrets: bool,
) -> Result<ExitCode, String> {
    let plural = if secrets { "secrets" } else { "configmaps" };
    for flag in [
        "o",
        "output",
        "l",
        "selector",
        "w",
        "watch",
        "watch-only",
        "show-labels",
    ] {
        if a.has(&[flag]) || a.one(&[flag]).is_some() {
            return Err(format!(
                "--{flag} is for pods: `get {plural}` prints the table only"
            ));
        }
    }
    let Response::Objects { objects } = common.call(Request::GetObjects { secrets })? else {
        return Err("unexpected response".into());
    };
    let all = a.has(&["A", "all-namespaces"]);
    let names = &a.free[1..];
    let shown: Vec<_> = objects
        .iter()
        .filter(|o| all || o.namespace == common.namespace)
        .filter(|o| names.is_empty() || names.contains(&o.name))
        .collect();
    let now = crate::clock::wall_ms();
    let mut header = vec!["NAME"];
    if all {
        header.insert(0, "NAMESPACE");
    }
    if secrets {
        header.push("TYPE");
    }
    header.extend(["DATA", "AGE"]);
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|o| {
            let mut r = Vec::new();
            if all {
                r.push(o.namespace.clone());
            }
            r.push(o.name.clone());
            if secrets {
                r.push(o.secret_type.clone());
            }
            r.push(o.keys.len().to_string());
            r.push(print::human_duration((now - o.since_ms).max(0) / 1000));
            r
        })
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !shown.iter().any(|o| &o.name == *n))
        .collect();
    if rows.is_empty() && names.is_empty() {
        if all {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", common.namespace);
        }
    } else if !rows.is_empty() {
        super::out(&print::table(&header, &rows))?;
    }
    for n in &missing {
        eprintln!("Error from server (NotFound): {plural} \"{n}\" not found");
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How often `get -w` asks the agent again.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(300);

pub(super) fn get(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(
        args,
        &["o", "output", "l", "selector"],
        &[
            "A",
            "all-namespaces",
            "w",
            "watch",
            "watch-only",
            "show-labels",
        ],
    )?;
    // `get pods [NAME...]`, or `get pod/NAME...`.
    let mut names = Vec::new();
    let kind_ok = |k: &str| matches!(k, "pods" | "pod" | "po");
    let object_kind = a.free.first().and_then(|k| match k.as_str() {
        "configmaps" | "configmap" | "cm" => Some(false),
        "secrets" | "secret" => Some(true),
        _ => None,
    });
    if let Some(secrets) = object_kind {
        return get_objects(&common, &a, secrets);
    }
    // `get deployments [NAME...]`, or `get deploy/NAME...`.
    use crate::spec::workload::WorkloadKind;
    if let Some(kind) = a.free.first().and_then(|k| WorkloadKind::from_resource(k)) {
        return super::workloads::get(&common, &a, kind, &a.free[1..]);
    }
    let slashed: Option<Vec<(WorkloadKind, String)>> = a
        .free
        .iter()
        .map(|f| {
            let (k, n) = f.split_once('/')?;
            Some((WorkloadKind::from_resource(k)?, n.to_string()))
        })
        .collect();
    if let Some(list) = slashed.filter(|l| !l.is_empty()) {
        let kind = list[0].0;
        if list.iter().any(|(k, _)| *k != kind) {
            return Err("give names of one kind at a time".into());
        }
        let names: Vec<String> = list.into_iter().map(|(_, n)| n).collect();
        return super::workloads::get(&common, &a, kind, &names);
    }
    match a.free.first().map(String::as_str) {
        Some(k) if kind_ok(k) => names.extend(a.free[1..].iter().cloned()),
        Some(_)
            if a.free
                .iter()
                .all(|f| f.split_once('/').is_some_and(|(k, _)| kind_ok(k))) =>
        {
            names.extend(
                a.free
                    .iter()
                    .map(|f| f.split_once('/').unwrap().1.to_string()),
            )
        }
        Some(other) => {
            return Err(format!(
                "picolet serves pods, configmaps, secrets, deployments, daemonsets, statefulsets, jobs and cronjobs, not {other:?}"
            ));
        }
        None => return Err("usage: picolet get pods [NAME...] (see `picolet get --help`)".into()),
    }
    let selector = a.one(&["l", "selector"]).map(Selector::parse).transpose()?;
    let all_namespaces = a.has(&["A", "all-namespaces"]);
    if selector.is_some() && !names.is_empty() {
        return Err("a pod name cannot be given with a selector (-l)".into());
    }
    if all_namespaces && !names.is_empty() {
        return Err("a pod cannot be retrieved by name across all namespaces (-A); use -n".into());
    }
    let opts = GetOpts {
        names,
        output: Output::parse(a.one(&["o", "output"]))?,
        selector,
        all_namespaces,
        namespace: common.namespace.clone(),
        show_labels: a.has(&["show-labels"]),
    };
    if opts.show_labels && !matches!(opts.output, Output::Table { .. }) {
        return Err(
            "--show-labels adds a column to the table: use it without -o, or with -o wide".into(),
        );
    }
    let watch_only = a.has(&["watch-only"]);
    let watch = watch_only || a.has(&["w", "watch"]);
    if watch && opts.rows("", &[], 0).is_none() {
        return Err(
            "-w prints rows: use it with the table, -o wide, -o name or -o custom-columns".into(),
        );
    }
    let Response::Pods { node, pods, errors } = common.call(Request::GetPods)? else {
        return Err("unexpected response".into());
    };
    let (pods, missing) = opts.select(pods);
    let now = crate::clock::wall_ms();
    for (file, err) in &errors {
        eprintln!("warning: manifest {file} was refused: {err}");
    }
    if !watch_only {
        if pods.is_empty() && opts.names.is_empty() && opts.rows(&node, &[], now).is_some() {
            if opts.all_namespaces {
                eprintln!("No resources found");
            } else {
                eprintln!("No resources found in {} namespace.", opts.namespace);
            }
        } else if !pods.is_empty() || opts.names.is_empty() || missing.is_empty() {
            super::out(&opts.render(&node, &pods, now)?)?;
        }
    }
    for n in &missing {
        super::not_found(n);
    }
    if watch {
        return watch_pods(&common, &opts, &node, pods, watch_only);
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `get -w`: polls the agent and prints a pod's row each time it changes
/// (its AGE aside), with the widths of the first table, until interrupted.
fn watch_pods(
    common: &super::Common,
    opts: &GetOpts,
    node: &str,
    first: Vec<PodEntry>,
    watch_only: bool,
) -> Result<ExitCode, String> {
    let key = |p: &PodEntry| format!("{}/{}", namespace_of(p), name_of(p));
    let age_col = match &opts.output {
        Output::Table { .. } => Some(4 + usize::from(opts.all_namespaces)),
        _ => None,
    };
    let compare = |mut r: Vec<String>| {
        if let Some(i) = age_col {
            r[i].clear();
        }
        r
    };
    let now = crate::clock::wall_ms();
    let (header, rows) = opts.rows(node, &first, now).unwrap_or_default();
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut header_printed = !watch_only && !rows.is_empty();
    let mut last: std::collections::HashMap<String, Vec<String>> = first
        .iter()
        .zip(rows)
        .map(|(p, r)| (key(p), compare(r)))
        .collect();
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let Response::Pods { pods, .. } = common.call(Request::GetPods)? else {
            return Err("unexpected response".into());
        };
        let (pods, _) = opts.select(pods);
        let now = crate::clock::wall_ms();
        let (_, rows) = opts.rows(node, &pods, now).unwrap_or_default();
        let mut text = String::new();
        for (p, row) in pods.iter().zip(rows) {
            let k = key(p);
            let cmp = compare(row.clone());
            if last.get(&k) == Some(&cmp) {
                continue;
            }
            if !header_printed && !header.is_empty() {
                text.push_str(&print_row(&header, &mut widths));
            }
            header_printed = true;
            text.push_str(&print_row(&row, &mut widths));
            last.insert(k, cmp);
        }
        last.retain(|k, _| pods.iter().any(|p| key(p) == *k));
        if !text.is_empty() {
            super::out(&text)?;
        }
    }
}

/// One table row padded to `widths` (which grow for wider cells).
fn print_row(cells: &[String], widths: &mut Vec<usize>) -> String {
    let mut line = String::new();
    for (i, c) in cells.iter().enumerate() {
        if widths.len() <= i {
            widths.push(0);
        }
        widths[i] = widths[i].max(c.len());
        line.push_str(c);
        if i + 1 < cells.len() {
            line.push_str(&" ".repeat(widths[i] - c.len() + 3));
        }
    }
    line.push('\n');
    line
}

pub(super) fn describe(args: Vec<OsString>) -> Result<ExitCode, String> {
    let (common, a) = parse_api(args, &[], &[])?;
    use crate::spec::workload::WorkloadKind;
    let workload = match a.free.as_slice() {
        [kind, name] => WorkloadKind::from_resource(kind).map(|k| (k, name.as_str())),
        [one] => one
            .split_once('/')
            .and_then(|(k, n)| Some((WorkloadKind::from_resource(k)?, n))),
        _ => None,
    };
    if let Some((kind, name)) = workload {
        return super::workloads::describe(&common, kind, name);
    }
    let name = match a.free.as_slice() {
        [kind, name] if matches!(kind.as_str(), "pod" | "pods" | "po") => name.clone(),
        [name] if name.starts_with("pod/") => name[4..].to_string(),
        _ => {
            return Err(
                "usage: picolet describe pod|deployment|daemonset|statefulset|job|cronjob NAME"
                    .into(),
            );
        }
    };
    let resp = match common.call(Request::Describe {
        namespace: common.namespace.clone(),
        name: name.clone(),
    }) {
        Err(e) if e == super::agent_not_found(&common.namespace, &name) => {
            return Ok(super::not_found(&name));
        }
        r => r?,
    };
    let Response::Describe {
        node,
        pod,
        events,
        manifest_error,
    } = resp
    else {
        return Err("unexpected response".into());
    };
    super::out(&api::print::describe(
        &node,
        &pod,
        &events,
        manifest_error.as_deref(),
        crate::clock::wall_ms(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, labels: Value) -> PodEntry {
        PodEntry {
            pod: json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}),
            status: json!({"phase": "Running", "podIP": "10.0.0.9",
                "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}),
            source: "test".into(),
        }
    }

    fn pods() -> Vec<PodEntry> {
        vec![
            pod("default", "web", json!({"app": "web", "tier": "front"})),
            pod("default", "db", json!({"app": "db"})),
            pod("edge", "cam", Value::Null),
        ]
    }

    fn opts(names: &[&str], output: Option<&str>) -> GetOpts {
        GetOpts {
            names: names.iter().map(|s| s.to_string()).collect(),
            output: Output::parse(output).unwrap(),
            selector: None,
            all_namespaces: false,
            namespace: "default".into(),
            show_labels: false,
        }
    }

    const NOW: i64 = 1_767_225_600_000 + 65_000; // 65 s after the start

    #[test]
    fn several_names_come_in_the_order_given_and_missing_ones_are_named() {
        let o = opts(&["db", "nope", "web", "cam"], None);
        let (found, missing) = o.select(pods());
        let names: Vec<&str> = found.iter().map(name_of).collect();
        assert_eq!(names, ["db", "web"]);
        assert_eq!(missing, ["nope", "cam"], "cam is in another namespace");
        assert_eq!(
            o.render("n1", &found, NOW).unwrap(),
            "NAME   READY   STATUS    RESTARTS   AGE\n\
             db     1/1     Running   2          65s\n\
             web    1/1     Running   2          65s\n"
        );
    }

    #[test]
    fn all_namespaces_add_a_column_and_labels_come_last() {
        let mut o = opts(&[], Some("wide"));
        o.all_namespaces = true;
        o.show_labels = true;
        let (found, _) = o.select(pods());
        assert_eq!(
            o.render("n1", &found, NOW).unwrap(),
            "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   IP         NODE   LABELS\n\
             default     web    1/1     Running   2          65s   10.0.0.9   n1     app=web,tier=front\n\
             default     db     1/1     Running   2          65s   10.0.0.9   n1     app=db\n\
             edge        cam    1/1     Running   2          65s   10.0.0.9   n1     <none>\n"
        );
    }

    #[test]
    fn a_selector_filters_and_name_prints_kind_slash_name() {
        let mut o = opts(&[], Some("name"));
        o.selector = Some(Selector::parse("app in (web,db),tier!=back").unwrap());
        let (found, _) = o.select(pods());
        assert_eq!(o.render("n", &found, NOW).unwrap(), "pod/web\npod/db\n");
        o.selector = Some(Selector::parse("tier").unwrap());
        let (found, _) = o.select(pods());
        assert_eq!(o.render("n", &found, NOW).unwrap(), "pod/web\n");
    }

    #[test]
    fn one_name_prints_the_pod_and_several_a_list() {
        let o = opts(&["web"], Some("json"));
        let (found, _) = o.select(pods());
        let v: Value = serde_json::from_str(&o.render("n", &found, NOW).unwrap()).unwrap();
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["metadata"]["name"], "web");
        assert_eq!(v["status"]["podIP"], "10.0.0.9");
        let o = opts(&["web", "db"], Some("yaml"));
        let (found, _) = o.select(pods());
        let text = o.render("n", &found, NOW).unwrap();
        let v: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        // `on` is quoted: kubectl's YAML 1.1 reader would take it for true.
        let o = opts(&["b"], Some("yaml"));
        let (found, _) = o.select(vec![pod("default", "b", json!({"backup": "on"}))]);
        let on = o.render("n", &found, NOW).unwrap();
        assert!(on.contains("backup: 'on'\n"), "{on}");
        // What it prints loads back as pods.
        let loaded = crate::spec::load_str(&text, "get.yaml");
        assert_eq!(loaded.len(), 2);
        assert!(loaded.iter().all(Result::is_ok), "{loaded:?}");
        let o = opts(&[], Some("json"));
        let (found, _) = o.select(pods());
        let v: Value = serde_json::from_str(&o.render("n", &found, NOW).unwrap()).unwrap();
        assert_eq!(v["kind"], "List");
    }

    #[test]
    fn jsonpath_and_custom_columns_see_the_pod_or_the_list() {
        let o = opts(
            &[],
            Some(r#"jsonpath={range .items[*]}{.metadata.name}={.status.podIP}{"\n"}{end}"#),
        );
        let (found, _) = o.select(pods());
        assert_eq!(
            o.render("n", &found, NOW).unwrap(),
            "web=10.0.0.9\ndb=10.0.0.9\n"
        );
        let o = opts(&["db"], Some("jsonpath={.metadata.labels.app}"));
        let (found, _) = o.select(pods());
        assert_eq!(o.render("n", &found, NOW).unwrap(), "db");
        let o = opts(
            &[],
            Some("custom-columns=NAME:.metadata.name,APP:.metadata.labels.app"),
        );
        let (found, _) = o.select(pods());
        assert_eq!(
            o.render("n", &found, NOW).unwrap(),
            "NAME   APP\nweb    web\ndb     db\n"
        );
        for bad in ["jsonpath={..x}", "custom-columns=NAME", "table"] {
            assert!(Output::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
