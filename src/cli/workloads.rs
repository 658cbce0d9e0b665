//! `picolet get deployments|daemonsets|statefulsets|jobs|cronjobs` and
//! `picolet describe` of a workload: kubectl's columns and sections, from
//! the objects the agent's API gives (the spec as loaded, the status as
//! the controllers write it).

use super::Common;
use crate::api::print::{self, event_lines, map_lines, str_at};
use crate::api::{EventEntry, Request, Response, WorkloadEntry};
use crate::spec::workload::WorkloadKind;
use serde_json::Value;
use std::process::ExitCode;

/// `get KIND [NAME...]` (`-o wide|yaml|json|name`, `-n`, `-A`).
pub(super) fn get(
    common: &Common,
    a: &super::args::Args,
    kind: WorkloadKind,
    names: &[String],
) -> Result<ExitCode, String> {
    for flag in ["l", "selector", "w", "watch", "watch-only", "show-labels"] {
        if a.has(&[flag]) || a.one(&[flag]).is_some() {
            return Err(format!(
                "--{flag} is for pods: `get {}` takes -o, -n and -A",
                kind.plural()
            ));
        }
    }
    let output = a.one(&["o", "output"]);
    if let Some(o) = output.filter(|o| !matches!(*o, "wide" | "yaml" | "json" | "name")) {
        return Err(format!("-o {o}: use wide, json, yaml or name"));
    }
    let all = a.has(&["A", "all-namespaces"]);
    if all && !names.is_empty() {
        return Err(format!(
            "a {} cannot be retrieved by name across all namespaces (-A); use -n",
            kind.name()
        ));
    }
    let Response::Workloads { items } = common.call(Request::GetWorkloads { kind })? else {
        return Err("unexpected response".into());
    };
    let shown: Vec<&WorkloadEntry> = items
        .iter()
        .filter(|w| all || str_at(&w.object, &["metadata", "namespace"]) == common.namespace)
        .filter(|w| {
            names.is_empty()
                || names
                    .iter()
                    .any(|n| n == str_at(&w.object, &["metadata", "name"]))
        })
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| {
            !shown
                .iter()
                .any(|w| str_at(&w.object, &["metadata", "name"]) == *n)
        })
        .collect();
    let now = crate::clock::wall_ms();
    match output {
        Some("yaml" | "json") => {
            let doc = if names.len() == 1 && shown.len() == 1 {
                shown[0].object.clone()
            } else {
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": shown.iter().map(|w| w.object.clone()).collect::<Vec<_>>(),
                    "metadata": {"resourceVersion": ""},
                })
            };
            if !shown.is_empty() || names.is_empty() {
                let text = if output == Some("yaml") {
                    crate::yaml::to_string(&doc)
                } else {
                    serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n"
                };
                super::out(&text)?;
            }
        }
        Some("name") => {
            let text: String = shown
                .iter()
                .map(|w| {
                    format!(
                        "{}/{}\n",
                        kind.resource(),
                        str_at(&w.object, &["metadata", "name"])
                    )
                })
                .collect();
            super::out(&text)?;
        }
        _ if shown.is_empty() && names.is_empty() => {
            if all {
                eprintln!("No resources found");
            } else {
                eprintln!("No resources found in {} namespace.", common.namespace);
            }
        }
        _ if !shown.is_empty() => {
            let objects: Vec<&Value> = shown.iter().map(|w| &w.object).collect();
            super::out(&table(kind, &objects, all, output == Some("wide"), now))?;
        }
        _ => {}
    }
    for n in &missing {
        eprintln!(
            "Error from server (NotFound): {} \"{n}\" not found",
            kind.resource().replacen('.', "s.", 1)
        );
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn int_at(v: &Value, path: &[&str]) -> i64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_i64().unwrap_or(0)
}

fn age(v: &Value, path: &[&str], now: i64) -> String {
    match crate::clock::parse_rfc3339_ms(str_at(v, path)) {
        Some(t) => print::human_duration((now - t).max(0) / 1000),
        None => "<none>".into(),
    }
}

/// The template of a workload (a CronJob's is under its jobTemplate).
fn template(kind: WorkloadKind, o: &Value) -> &Value {
    match kind {
        WorkloadKind::CronJob => &o["spec"]["jobTemplate"]["spec"]["template"],
        _ => &o["spec"]["template"],
    }
}

fn containers_and_images(t: &Value) -> (String, String) {
    let empty = Vec::new();
    let cs = t["spec"]["containers"].as_array().unwrap_or(&empty);
    let names: Vec<&str> = cs.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = cs.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

fn selector(o: &Value) -> String {
    let s: crate::spec::workload::LabelSelector =
        serde_json::from_value(o["spec"]["selector"].clone()).unwrap_or_default();
    let d = s.display();
    if d.is_empty() { "<none>".into() } else { d }
}

/// A Job's STATUS column (kubectl ≥ 1.28).
fn job_status(o: &Value) -> &'static str {
    let conds = o["status"]["conditions"].as_array();
    let has =
        |t: &str| conds.is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"));
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

/// kubectl's table for `kind`.
pub(crate) fn table(
    kind: WorkloadKind,
    objects: &[&Value],
    all: bool,
    wide: bool,
    now: i64,
) -> String {
    let mut header: Vec<&str> = match kind {
        WorkloadKind::Deployment => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        WorkloadKind::DaemonSet => vec![
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ],
        WorkloadKind::StatefulSet => vec!["NAME", "READY", "AGE"],
        WorkloadKind::Job => vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        WorkloadKind::CronJob => vec![
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
    };
    if all {
        header.insert(0, "NAMESPACE");
    }
    if wide {
        header.extend(["CONTAINERS", "IMAGES"]);
        if kind != WorkloadKind::CronJob && kind != WorkloadKind::StatefulSet {
            header.push("SELECTOR");
        }
    }
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            let st = &o["status"];
            let mut r = Vec::new();
            if all {
                r.push(str_at(o, &["metadata", "namespace"]).to_string());
            }
            r.push(str_at(o, &["metadata", "name"]).to_string());
            let replicas = o["spec"]["replicas"].as_i64().unwrap_or(1);
            match kind {
                WorkloadKind::Deployment => r.extend([
                    format!("{}/{replicas}", int_at(st, &["readyReplicas"])),
                    int_at(st, &["updatedReplicas"]).to_string(),
                    int_at(st, &["availableReplicas"]).to_string(),
                ]),
                WorkloadKind::DaemonSet => {
                    let sel = o["spec"]["template"]["spec"]["nodeSelector"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "<none>".into());
                    r.extend([
                        int_at(st, &["desiredNumberScheduled"]).to_string(),
                        int_at(st, &["currentNumberScheduled"]).to_string(),
                        int_at(st, &["numberReady"]).to_string(),
                        int_at(st, &["updatedNumberScheduled"]).to_string(),
                        int_at(st, &["numberAvailable"]).to_string(),
                        sel,
                    ])
                }
                WorkloadKind::StatefulSet => {
                    r.push(format!("{}/{replicas}", int_at(st, &["readyReplicas"])))
                }
                WorkloadKind::Job => {
                    let succeeded = int_at(st, &["succeeded"]);
                    let completions = match o["spec"]["completions"].as_i64() {
                        Some(c) => format!("{succeeded}/{c}"),
                        None => {
                            let p = o["spec"]["parallelism"].as_i64().unwrap_or(1);
                            if p > 1 {
                                format!("{succeeded}/1 of {p}")
                            } else {
                                format!("{succeeded}/1")
                            }
                        }
                    };
                    let start = crate::clock::parse_rfc3339_ms(str_at(st, &["startTime"]));
                    let end = crate::clock::parse_rfc3339_ms(str_at(st, &["completionTime"]));
                    let duration = match start {
                        Some(s) => print::human_duration((end.unwrap_or(now) - s).max(0) / 1000),
                        None => String::new(),
                    };
                    r.extend([job_status(o).to_string(), completions, duration]);
                }
                WorkloadKind::CronJob => {
                    let tz = str_at(o, &["spec", "timeZone"]);
                    r.extend([
                        str_at(o, &["spec", "schedule"]).to_string(),
                        if tz.is_empty() {
                            "<none>".into()
                        } else {
                            tz.to_string()
                        },
                        if o["spec"]["suspend"].as_bool() == Some(true) {
                            "True".into()
                        } else {
                            "False".into()
                        },
                        st["active"].as_array().map_or(0, Vec::len).to_string(),
                        age(st, &["lastScheduleTime"], now),
                    ]);
                }
            }
            r.push(age(o, &["metadata", "creationTimestamp"], now));
            if wide {
                let (c, i) = containers_and_images(template(kind, o));
                r.extend([c, i]);
                if kind != WorkloadKind::CronJob && kind != WorkloadKind::StatefulSet {
                    r.push(selector(o));
                }
            }
            r
        })
        .collect();
    print::table(&header, &rows)
}

/// `describe KIND NAME`.
pub(super) fn describe(
    common: &Common,
    kind: WorkloadKind,
    name: &str,
) -> Result<ExitCode, String> {
    let resp = common.call(Request::DescribeWorkload {
        kind,
        namespace: common.namespace.clone(),
        name: name.to_string(),
    });
    let resp = match resp {
        Err(e) if e.contains("not found in namespace") => {
            eprintln!(
                "Error from server (NotFound): {} \"{name}\" not found",
                kind.resource().replacen('.', "s.", 1)
            );
            return Ok(ExitCode::from(1));
        }
        r => r?,
    };
    let Response::DescribeWorkload { item, events, pods } = resp else {
        return Err("unexpected response".into());
    };
    super::out(&print::tabwrite(&describe_text(
        kind,
        &item,
        &events,
        &pods,
        crate::clock::wall_ms(),
    )))?;
    Ok(ExitCode::SUCCESS)
}

/// kubectl's `describe` sections that apply to every kind, and each
/// kind's status lines.
pub(crate) fn describe_text(
    kind: WorkloadKind,
    item: &WorkloadEntry,
    events: &[EventEntry],
    pods: &[String],
    now: i64,
) -> String {
    let o = &item.object;
    let st = &o["status"];
    let mut s = String::new();
    s.push_str(&format!("Name:\t{}\n", str_at(o, &["metadata", "name"])));
    s.push_str(&format!(
        "Namespace:\t{}\n",
        str_at(o, &["metadata", "namespace"])
    ));
    s.push_str(&format!(
        "CreationTimestamp:\t{}\n",
        print::rfc1123z(str_at(o, &["metadata", "creationTimestamp"]))
    ));
    if kind != WorkloadKind::CronJob {
        s.push_str(&format!("Selector:\t{}\n", selector(o)));
    }
    map_lines(&mut s, "Labels", &o["metadata"]["labels"], "=");
    map_lines(&mut s, "Annotations", &o["metadata"]["annotations"], ": ");
    s.push_str(&format!(
        "Source:\t{}\n",
        if item.source.is_empty() {
            "(made by its CronJob)"
        } else {
            &item.source
        }
    ));
    let replicas = o["spec"]["replicas"].as_i64().unwrap_or(1);
    match kind {
        WorkloadKind::Deployment => {
            s.push_str(&format!(
                "Replicas:\t{replicas} desired | {} updated | {} total | {} available | {} unavailable\n",
                int_at(st, &["updatedReplicas"]),
                int_at(st, &["replicas"]),
                int_at(st, &["availableReplicas"]),
                int_at(st, &["unavailableReplicas"]),
            ));
            let strategy = str_at(o, &["spec", "strategy", "type"]);
            s.push_str(&format!(
                "StrategyType:\t{}\n",
                if strategy.is_empty() { "RollingUpdate" } else { strategy }
            ));
            s.push_str(&format!(
                "MinReadySeconds:\t{}\n",
                int_at(o, &["spec", "minReadySeconds"])
            ));
        }
        WorkloadKind::DaemonSet => s.push_str(&format!(
            "Desired Number of Nodes Scheduled: {}\nCurrent Number of Nodes Scheduled: {}\nNumber of Nodes Scheduled with Up-to-date Pods: {}\nNumber of Nodes Scheduled with Available Pods: {}\nNumber of Nodes Misscheduled: {}\n",
            int_at(st, &["desiredNumberScheduled"]),
            int_at(st, &["currentNumberScheduled"]),
            int_at(st, &["updatedNumberScheduled"]),
            int_at(st, &["numberAvailable"]),
            int_at(st, &["numberMisscheduled"]),
        )),
        WorkloadKind::StatefulSet => s.push_str(&format!(
            "Replicas:\t{replicas} desired | {} total\n",
            int_at(st, &["replicas"])
        )),
        WorkloadKind::Job => {
            for (title, key) in [("Parallelism", "parallelism"), ("Completions", "completions")] {
                match o["spec"][key].as_i64() {
                    Some(n) => s.push_str(&format!("{title}:\t{n}\n")),
                    None => s.push_str(&format!("{title}:\t<unset>\n")),
                }
            }
            for (title, key) in [("Start Time", "startTime"), ("Completed At", "completionTime")] {
                if !str_at(st, &[key]).is_empty() {
                    s.push_str(&format!("{title}:\t{}\n", print::rfc1123z(str_at(st, &[key]))));
                }
            }
            s.push_str(&format!(
                "Pods Statuses:\t{} Active ({} Ready) / {} Succeeded / {} Failed\n",
                int_at(st, &["active"]),
                int_at(st, &["ready"]),
                int_at(st, &["succeeded"]),
                int_at(st, &["failed"]),
            ));
        }
        WorkloadKind::CronJob => {
            s.push_str(&format!("Schedule:\t{}\n", str_at(o, &["spec", "schedule"])));
            let policy = str_at(o, &["spec", "concurrencyPolicy"]);
            s.push_str(&format!(
                "Concurrency Policy:\t{}\n",
                if policy.is_empty() { "Allow" } else { policy }
            ));
            s.push_str(&format!(
                "Suspend:\t{}\n",
                if o["spec"]["suspend"].as_bool() == Some(true) { "True" } else { "False" }
            ));
            s.push_str(&format!(
                "Last Schedule Time:\t{}\n",
                match str_at(st, &["lastScheduleTime"]) {
                    "" => "<unset>".to_string(),
                    t => print::rfc1123z(t),
                }
            ));
        }
    }
    let t = template(kind, o);
    s.push_str("Pod Template:\n");
    map_lines(&mut s, "  Labels", &t["metadata"]["labels"], "=");
    s.push_str("  Containers:\n");
    for c in t["spec"]["containers"].as_array().into_iter().flatten() {
        s.push_str(&format!("   {}:\n", str_at(c, &["name"])));
        s.push_str(&format!("    Image:\t{}\n", str_at(c, &["image"])));
        for p in c["ports"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "    Port:\t{}/{}\n",
                int_at(p, &["containerPort"]),
                match str_at(p, &["protocol"]) {
                    "" => "TCP",
                    proto => proto,
                }
            ));
        }
    }
    if let Some(conds) = st["conditions"].as_array().filter(|c| !c.is_empty()) {
        s.push_str("Conditions:\n  Type\tStatus\tReason\n  ----\t------\t------\n");
        for c in conds {
            s.push_str(&format!(
                "  {}\t{}\t{}\n",
                str_at(c, &["type"]),
                str_at(c, &["status"]),
                str_at(c, &["reason"])
            ));
        }
    }
    let what = if kind == WorkloadKind::CronJob {
        "Active Jobs"
    } else {
        "Pods"
    };
    if pods.is_empty() {
        s.push_str(&format!("{what}:\t<none>\n"));
    } else {
        s.push_str(&format!("{what}:\t{}\n", pods.join(", ")));
    }
    event_lines(&mut s, events, now);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_columns_are_kubectls() {
        let o = json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-12-06T08:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        let now = crate::clock::parse_rfc3339_ms("2026-12-06T08:05:00Z").unwrap();
        let t = table(WorkloadKind::Deployment, &[&o], false, true, now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "web",
                "2/3",
                "3",
                "2",
                "5m",
                "main",
                "busybox:1.36",
                "app=web"
            ]
        );
    }

    #[test]
    fn job_and_cronjob_columns() {
        let now = crate::clock::parse_rfc3339_ms("2026-12-06T08:05:00Z").unwrap();
        let job = json!({
            "metadata": {"name": "pi", "namespace": "default", "creationTimestamp": "2026-12-06T08:00:00Z"},
            "spec": {"completions": 3},
            "status": {"succeeded": 3, "startTime": "2026-12-06T08:00:00Z",
                       "completionTime": "2026-12-06T08:00:42Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}
        });
        let t = table(WorkloadKind::Job, &[&job], false, false, now);
        assert_eq!(
            t.lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["pi", "Complete", "3/3", "42s", "5m"]
        );
        let cj = json!({
            "metadata": {"name": "hello", "namespace": "default", "creationTimestamp": "2026-12-06T08:00:00Z"},
            "spec": {"schedule": "*/5 * * * *"},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2026-12-06T08:04:00Z"}
        });
        let t = table(WorkloadKind::CronJob, &[&cj], true, false, now);
        assert_eq!(
            t.lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            [
                "default", "hello", "*/5", "*", "*", "*", "*", "<none>", "False", "1", "60s", "5m"
            ]
        );
    }

    #[test]
    fn describe_shows_replicas_conditions_pods_and_events() {
        let o = json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-12-06T08:00:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "main", "image": "busybox"}]}}},
            "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}
        });
        let item = WorkloadEntry {
            object: o,
            source: "/etc/picolet/pods/web.yaml".into(),
        };
        let events = vec![EventEntry {
            time_ms: 0,
            kind: "Normal".into(),
            reason: "ScalingReplicaSet".into(),
            message: "Scaled up replica set web-abc to 2".into(),
            object: "Deployment/web".into(),
        }];
        let text = describe_text(
            WorkloadKind::Deployment,
            &item,
            &events,
            &["web-abc-x".into(), "web-abc-y".into()],
            60_000,
        );
        for want in [
            "Name:\tweb",
            "Replicas:\t2 desired | 2 updated | 2 total | 2 available | 0 unavailable",
            "StrategyType:\tRollingUpdate",
            "Available\tTrue\tMinimumReplicasAvailable",
            "Pods:\tweb-abc-x, web-abc-y",
            "ScalingReplicaSet",
            "Source:\t/etc/picolet/pods/web.yaml",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }
}
