//! kubectl-style printing of pods, from the Kubernetes JSON shapes.

use super::{EventEntry, PodEntry};
use serde_json::Value;

/// kubectl's `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        return if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    format!("{}y", h / 24 / 365)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// One row: (name, ready, status, restarts, age-seconds-source).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub ready: String,
    pub status: String,
    pub restarts: i64,
    pub age: String,
    pub ip: String,
    pub node: String,
}

/// kubectl's `printPod` STATUS and READY logic.
pub fn row(entry: &PodEntry, node: &str, now_ms: i64) -> Row {
    let pod = &entry.pod;
    let st = &entry.status;
    let empty = Vec::new();
    let mut reason = st["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| st["phase"].as_str().unwrap_or("Unknown"))
        .to_string();
    let mut restarts = 0i64;
    let inits = st["initContainerStatuses"].as_array().unwrap_or(&empty);
    let n_init = pod["spec"]["initContainers"]
        .as_array()
        .map_or(0, |a| a.len());
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        restarts += c["restartCount"].as_i64().unwrap_or(0);
        let term = &c["state"]["terminated"];
        let wait = &c["state"]["waiting"];
        if term.is_object() && term["exitCode"].as_i64() == Some(0) {
            continue;
        }
        if term.is_object() {
            let r = term["reason"].as_str().unwrap_or("");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if term["signal"].as_i64().unwrap_or(0) != 0 {
                format!("Init:Signal:{}", term["signal"])
            } else {
                format!("Init:ExitCode:{}", term["exitCode"])
            };
        } else if wait.is_object()
            && !str_at(wait, &["reason"]).is_empty()
            && str_at(wait, &["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", str_at(wait, &["reason"]));
        } else {
            reason = format!("Init:{i}/{n_init}");
        }
        initializing = true;
        break;
    }
    let cs = st["containerStatuses"].as_array().unwrap_or(&empty);
    let total = pod["spec"]["containers"]
        .as_array()
        .map_or(cs.len(), |a| a.len());
    let mut ready = 0;
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        for c in cs.iter().rev() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            let term = &c["state"]["terminated"];
            let wait = &c["state"]["waiting"];
            if wait.is_object() && !str_at(wait, &["reason"]).is_empty() {
                reason = str_at(wait, &["reason"]).to_string();
            } else if term.is_object() && !str_at(term, &["reason"]).is_empty() {
                reason = str_at(term, &["reason"]).to_string();
            } else if term.is_object() {
                reason = if term["signal"].as_i64().unwrap_or(0) != 0 {
                    format!("Signal:{}", term["signal"])
                } else {
                    format!("ExitCode:{}", term["exitCode"])
                };
            } else if c["ready"].as_bool() == Some(true) && c["state"]["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = st["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    if pod["metadata"]["deletionTimestamp"].is_string() {
        reason = "Terminating".to_string();
    }
    let age = crate::clock::parse_rfc3339_ms(str_at(st, &["startTime"]))
        .map(|t| human_duration((now_ms - t) / 1000))
        .unwrap_or_else(|| "<unknown>".into());
    Row {
        name: str_at(pod, &["metadata", "name"]).to_string(),
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
        age,
        ip: st["podIP"].as_str().unwrap_or("<none>").to_string(),
        node: node.to_string(),
    }
}

/// A left-aligned table with three spaces between columns, as kubectl prints.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - c.len() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// `picolet get pods` (and `-o wide`).
pub fn pods_table(node: &str, pods: &[PodEntry], wide: bool, now_ms: i64) -> String {
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            let r = row(p, node, now_ms);
            let mut v = vec![r.name, r.ready, r.status, r.restarts.to_string(), r.age];
            if wide {
                v.push(r.ip);
                v.push(r.node);
            }
            v
        })
        .collect();
    let mut h = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if wide {
        h.extend(["IP", "NODE"]);
    }
    table(&h, &rows)
}

fn state_lines(out: &mut String, label: &str, state: &Value) {
    let indent = "      ";
    if let Some(r) = state.get("running").filter(|v| v.is_object()) {
        out.push_str(&format!(
            "    {label}:\tRunning\n{indent}Started:\t{}\n",
            str_at(r, &["startedAt"])
        ));
    } else if let Some(w) = state.get("waiting").filter(|v| v.is_object()) {
        out.push_str(&format!(
            "    {label}:\tWaiting\n{indent}Reason:\t{}\n",
            str_at(w, &["reason"])
        ));
        if !str_at(w, &["message"]).is_empty() {
            out.push_str(&format!("{indent}Message:\t{}\n", str_at(w, &["message"])));
        }
    } else if let Some(t) = state.get("terminated").filter(|v| v.is_object()) {
        out.push_str(&format!(
            "    {label}:\tTerminated\n{indent}Reason:\t{}\n{indent}Exit Code:\t{}\n{indent}Started:\t{}\n{indent}Finished:\t{}\n",
            str_at(t, &["reason"]),
            t["exitCode"],
            str_at(t, &["startedAt"]),
            str_at(t, &["finishedAt"])
        ));
        if t["signal"].as_i64().unwrap_or(0) != 0 {
            out.push_str(&format!("{indent}Signal:\t{}\n", t["signal"]));
        }
    }
}

/// `picolet describe pod NAME`.
pub fn describe(
    node: &str,
    entry: &PodEntry,
    events: &[EventEntry],
    manifest_error: Option<&str>,
    now_ms: i64,
) -> String {
    let p = &entry.pod;
    let st = &entry.status;
    let mut o = String::new();
    o.push_str(&format!("Name:\t{}\n", str_at(p, &["metadata", "name"])));
    o.push_str(&format!(
        "Namespace:\t{}\n",
        str_at(p, &["metadata", "namespace"])
    ));
    o.push_str(&format!("UID:\t{}\n", str_at(p, &["metadata", "uid"])));
    o.push_str(&format!("Node:\t{node}\n"));
    o.push_str(&format!("Source:\t{}\n", entry.source));
    o.push_str(&format!("Start Time:\t{}\n", str_at(st, &["startTime"])));
    o.push_str(&format!("Status:\t{}\n", str_at(st, &["phase"])));
    o.push_str(&format!("IP:\t{}\n", st["podIP"].as_str().unwrap_or("")));
    o.push_str(&format!("QoS Class:\t{}\n", str_at(st, &["qosClass"])));
    if let Some(e) = manifest_error {
        o.push_str(&format!("Manifest Error:\t{e}\n"));
    }
    let empty = Vec::new();
    for (title, spec_key, status_key) in [
        ("Init Containers", "initContainers", "initContainerStatuses"),
        ("Containers", "containers", "containerStatuses"),
    ] {
        let specs = p["spec"][spec_key].as_array().unwrap_or(&empty);
        if specs.is_empty() {
            continue;
        }
        o.push_str(&format!("{title}:\n"));
        let statuses = st[status_key].as_array().unwrap_or(&empty);
        for c in specs {
            let name = str_at(c, &["name"]);
            o.push_str(&format!(
                "  {name}:\n    Image:\t{}\n",
                str_at(c, &["image"])
            ));
            if let Some(s) = statuses.iter().find(|s| s["name"] == name) {
                state_lines(&mut o, "State", &s["state"]);
                if s["lastState"].as_object().is_some_and(|m| !m.is_empty()) {
                    state_lines(&mut o, "Last State", &s["lastState"]);
                }
                o.push_str(&format!(
                    "    Ready:\t{}\n    Restart Count:\t{}\n",
                    s["ready"].as_bool().unwrap_or(false),
                    s["restartCount"].as_i64().unwrap_or(0)
                ));
            }
        }
    }
    if let Some(conds) = st["conditions"].as_array() {
        o.push_str("Conditions:\n  Type\tStatus\n");
        for c in conds {
            o.push_str(&format!(
                "  {}\t{}\n",
                str_at(c, &["type"]),
                str_at(c, &["status"])
            ));
        }
    }
    o.push_str("Events:\n");
    if events.is_empty() {
        o.push_str("  <none>\n");
    } else {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    e.kind.clone(),
                    e.reason.clone(),
                    human_duration((now_ms - e.time_ms) / 1000),
                    e.object.clone(),
                    e.message.clone(),
                ]
            })
            .collect();
        for line in table(&["Type", "Reason", "Age", "From", "Message"], &rows).lines() {
            o.push_str("  ");
            o.push_str(line);
            o.push('\n');
        }
    }
    align_tabs(&o)
}

/// Aligns `key:\tvalue` lines the way kubectl's tabwriter does (per indent level).
fn align_tabs(s: &str) -> String {
    let width = s
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(k, _)| k.len()))
        .max()
        .unwrap_or(0);
    s.lines()
        .map(|l| match l.split_once('\t') {
            Some((k, v)) => format!("{k}{}{v}\n", " ".repeat(width + 2 - k.len())),
            None => format!("{l}\n"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(status: Value) -> PodEntry {
        PodEntry {
            pod: json!({"metadata": {"name": "web", "namespace": "default"},
                        "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            status,
            source: "test".into(),
        }
    }

    #[test]
    fn human_duration_matches_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(30 * 86400), "30d");
    }

    #[test]
    fn crash_loop_reason_wins_over_phase() {
        let e = entry(json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "x"}}},
            {"name": "b", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        ]}));
        let r = row(&e, "n", 0);
        assert_eq!(r.status, "CrashLoopBackOff");
        assert_eq!(r.ready, "1/2");
        assert_eq!(r.restarts, 4);
    }

    #[test]
    fn init_progress_is_shown_as_kubectl_does() {
        let mut e = entry(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "i2", "restartCount": 0, "state": {"running": {"startedAt": "x"}}}
        ]}));
        e.pod["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
        assert_eq!(row(&e, "n", 0).status, "Init:1/2");
    }

    #[test]
    fn completed_with_a_running_ready_container_shows_running() {
        let e = entry(json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "x"}}},
            {"name": "b", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]}));
        assert_eq!(row(&e, "n", 0).status, "Running");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "BB"], &[vec!["xxxx".into(), "y".into()]]);
        assert_eq!(t, "A      BB\nxxxx   y\n");
    }
}
