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

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
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

/// A Kubernetes time (RFC 3339) as kubectl's describe prints it: Go's
/// RFC1123Z, in UTC (`Mon, 02 Jan 2006 15:04:05 +0000`); as given when it
/// does not parse.
pub fn rfc1123z(ts: &str) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(ms) = crate::clock::parse_rfc3339_ms(ts) else {
        return ts.to_string();
    };
    let iso = crate::clock::rfc3339(ms); // 2026-01-01T00:00:00Z
    let day = DAYS[ms.div_euclid(86_400_000).rem_euclid(7) as usize];
    let month = iso[5..7].parse::<usize>().map_or("?", |m| MONTHS[m - 1]);
    format!(
        "{day}, {} {month} {} {} +0000",
        &iso[8..10],
        &iso[0..4],
        &iso[11..19]
    )
}

/// Go's `text/tabwriter` as kubectl's describe sets it up (min width 0,
/// padding 2, spaces, no flags): a cell is text ended by a tab; the cells
/// of one column that sit on consecutive lines form a block and are padded
/// to the block's widest cell plus 2 (a line with fewer cells ends the
/// block). Trailing cells are padded too, as Go does.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A block of this column starts here.
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + 2);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for cells in &lines[from..to] {
        for (j, c) in cells.iter().enumerate() {
            out.push_str(c);
            if j < widths.len() {
                out.push_str(&" ".repeat(widths[j].saturating_sub(c.chars().count())));
            }
        }
        out.push('\n');
    }
}

fn state_lines(o: &mut String, label: &str, state: &Value) {
    if let Some(r) = state.get("running").filter(|v| v.is_object()) {
        o.push_str(&format!("    {label}:\tRunning\n"));
        o.push_str(&format!(
            "      Started:\t{}\n",
            rfc1123z(str_at(r, &["startedAt"]))
        ));
    } else if let Some(t) = state.get("terminated").filter(|v| v.is_object()) {
        o.push_str(&format!("    {label}:\tTerminated\n"));
        for key in ["reason", "message"] {
            let v = str_at(t, &[key]);
            if !v.is_empty() {
                let title = if key == "reason" { "Reason" } else { "Message" };
                o.push_str(&format!("      {title}:\t{}\n", v.trim()));
            }
        }
        o.push_str(&format!(
            "      Exit Code:\t{}\n",
            t["exitCode"].as_i64().unwrap_or(0)
        ));
        if t["signal"].as_i64().unwrap_or(0) > 0 {
            o.push_str(&format!("      Signal:\t{}\n", t["signal"]));
        }
        o.push_str(&format!(
            "      Started:\t{}\n      Finished:\t{}\n",
            rfc1123z(str_at(t, &["startedAt"])),
            rfc1123z(str_at(t, &["finishedAt"]))
        ));
    } else {
        o.push_str(&format!("    {label}:\tWaiting\n"));
        if let Some(w) = state.get("waiting").filter(|v| v.is_object()) {
            if !str_at(w, &["reason"]).is_empty() {
                o.push_str(&format!("      Reason:\t{}\n", str_at(w, &["reason"])));
            }
            // kubectl leaves the message out; it is picolet's main hint
            // (ErrImagePull, a refused spec), so it is shown.
            if !str_at(w, &["message"]).is_empty() {
                o.push_str(&format!(
                    "      Message:\t{}\n",
                    str_at(w, &["message"]).trim()
                ));
            }
        }
    }
}

/// A port or a port name (`IntOrString`) as text.
fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// kubectl's `DescribeProbe`: the handler and the (defaulted) timing.
pub fn describe_probe(p: &Value) -> String {
    let n = |k: &str, default: i64| p[k].as_i64().unwrap_or(default);
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        n("initialDelaySeconds", 0),
        n("timeoutSeconds", 1),
        n("periodSeconds", 10),
        n("successThreshold", 1),
        n("failureThreshold", 3)
    );
    if let Some(e) = p.get("exec").filter(|v| v.is_object()) {
        let cmd: Vec<&str> = e["command"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        return format!("exec [{}] {attrs}", cmd.join(" "));
    }
    if let Some(h) = p.get("httpGet").filter(|v| v.is_object()) {
        let scheme = h["scheme"].as_str().unwrap_or("HTTP").to_lowercase();
        let host = h["host"].as_str().unwrap_or("");
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let port = int_or_string(&h["port"]);
        let path = h["path"].as_str().unwrap_or("/");
        return format!("http-get {scheme}://{host}:{port}{path} {attrs}");
    }
    if let Some(g) = p.get("grpc").filter(|v| v.is_object()) {
        return format!(
            "grpc <pod>:{} {} {attrs}",
            g["port"].as_i64().unwrap_or(0),
            g["service"].as_str().unwrap_or("")
        );
    }
    if let Some(t) = p.get("tcpSocket").filter(|v| v.is_object()) {
        return format!(
            "tcp-socket {}:{} {attrs}",
            t["host"].as_str().unwrap_or(""),
            int_or_string(&t["port"])
        );
    }
    format!("unknown {attrs}")
}

/// A `fieldRef`'s value from the pod, as kubectl's resolver shows it.
fn field_ref(pod: &Value, status: &Value, node: &str, path: &str) -> String {
    let meta = &pod["metadata"];
    let keyed = |prefix: &str, map: &Value| -> Option<String> {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(map[key].as_str().unwrap_or("").to_string())
    };
    if let Some(v) = keyed("metadata.labels", &meta["labels"])
        .or_else(|| keyed("metadata.annotations", &meta["annotations"]))
    {
        return v;
    }
    match path {
        "metadata.name" | "metadata.namespace" | "metadata.uid" => {
            str_at(meta, &[&path["metadata.".len()..]]).to_string()
        }
        "spec.nodeName" => node.to_string(),
        "spec.serviceAccountName" => ["serviceAccountName", "serviceAccount"]
            .iter()
            .map(|k| str_at(pod, &["spec", k]))
            .find(|v| !v.is_empty())
            .unwrap_or("default")
            .to_string(),
        "status.podIP" | "status.hostIP" => str_at(status, &[&path["status.".len()..]]).to_string(),
        _ => String::new(),
    }
}

/// One container's section of `describe` (kubectl's describeContainers).
fn container_lines(
    o: &mut String,
    p: &Value,
    st: &Value,
    node: &str,
    c: &Value,
    s: Option<&Value>,
) {
    let empty = Vec::new();
    o.push_str(&format!("  {}:\n", str_at(c, &["name"])));
    if let Some(s) = s {
        o.push_str(&format!(
            "    Container ID:\t{}\n",
            str_at(s, &["containerID"])
        ));
    }
    o.push_str(&format!("    Image:\t{}\n", str_at(c, &["image"])));
    if let Some(s) = s {
        o.push_str(&format!("    Image ID:\t{}\n", str_at(s, &["imageID"])));
    }
    let ports = c["ports"].as_array().unwrap_or(&empty);
    let proto = |p: &Value| p["protocol"].as_str().unwrap_or("TCP").to_string();
    let list = |f: &dyn Fn(&Value) -> String| -> String {
        if ports.is_empty() {
            "<none>".into()
        } else {
            ports.iter().map(f).collect::<Vec<_>>().join(", ")
        }
    };
    let cports = list(&|p| format!("{}/{}", p["containerPort"].as_i64().unwrap_or(0), proto(p)));
    let hports = list(&|p| format!("{}/{}", p["hostPort"].as_i64().unwrap_or(0), proto(p)));
    let plural = |s: &str| if s.contains(',') { "s" } else { "" };
    o.push_str(&format!("    Port{}:\t{cports}\n", plural(&cports)));
    o.push_str(&format!("    Host Port{}:\t{hports}\n", plural(&hports)));
    for (title, key) in [("Command", "command"), ("Args", "args")] {
        if let Some(a) = c[key].as_array().filter(|a| !a.is_empty()) {
            o.push_str(&format!("    {title}:\n"));
            for arg in a {
                for line in arg.as_str().unwrap_or("").split('\n') {
                    o.push_str(&format!("      {line}\n"));
                }
            }
        }
    }
    if let Some(s) = s {
        state_lines(o, "State", &s["state"]);
        if s["lastState"]["terminated"].is_object() {
            state_lines(o, "Last State", &s["lastState"]);
        }
        let ready = if s["ready"].as_bool().unwrap_or(false) {
            "True"
        } else {
            "False"
        };
        o.push_str(&format!(
            "    Ready:\t{ready}\n    Restart Count:\t{}\n",
            s["restartCount"].as_i64().unwrap_or(0)
        ));
    }
    for (title, key) in [("Limits", "limits"), ("Requests", "requests")] {
        if let Some(m) = c["resources"][key].as_object().filter(|m| !m.is_empty()) {
            o.push_str(&format!("    {title}:\n"));
            let mut names: Vec<&String> = m.keys().collect();
            names.sort();
            for n in names {
                o.push_str(&format!("      {n}:\t{}\n", int_or_string(&m[n.as_str()])));
            }
        }
    }
    for (title, key) in [
        ("Liveness", "livenessProbe"),
        ("Readiness", "readinessProbe"),
        ("Startup", "startupProbe"),
    ] {
        if c[key].is_object() {
            o.push_str(&format!("    {title}:\t{}\n", describe_probe(&c[key])));
        }
    }
    // kubectl's `Environment Variables from`: names, never values.
    let env_from = c["envFrom"].as_array().unwrap_or(&empty);
    if !env_from.is_empty() {
        o.push_str("    Environment Variables from:\n");
    }
    for e in env_from {
        let (r, kind) = if e["configMapRef"].is_object() {
            (&e["configMapRef"], "ConfigMap")
        } else {
            (&e["secretRef"], "Secret")
        };
        let prefix = str_at(e, &["prefix"]);
        let with = if prefix.is_empty() {
            String::new()
        } else {
            format!(" with prefix '{prefix}'")
        };
        o.push_str(&format!(
            "      {}\t{kind}{with}\tOptional: {}\n",
            str_at(r, &["name"]),
            r["optional"].as_bool().unwrap_or(false)
        ));
    }
    let env = c["env"].as_array().unwrap_or(&empty);
    if env.is_empty() {
        o.push_str("    Environment:\t<none>\n");
    } else {
        o.push_str("    Environment:\n");
    }
    for e in env {
        let name = str_at(e, &["name"]);
        if let Some(f) = e["valueFrom"]["fieldRef"].as_object() {
            let path = f.get("fieldPath").and_then(Value::as_str).unwrap_or("");
            let api = f.get("apiVersion").and_then(Value::as_str).unwrap_or("v1");
            o.push_str(&format!(
                "      {name}:\t{} ({api}:{path})\n",
                field_ref(p, st, node, path)
            ));
            continue;
        }
        // kubectl's wording; a Secret's value is never shown.
        let from = &e["valueFrom"];
        let sel = [
            ("secretKeyRef", "in secret"),
            ("configMapKeyRef", "of config map"),
        ]
        .into_iter()
        .find(|(k, _)| from[*k].is_object());
        if let Some((k, what)) = sel {
            o.push_str(&format!(
                "      {name}:\t<set to the key '{}' {what} '{}'>\tOptional: {}\n",
                str_at(&from[k], &["key"]),
                str_at(&from[k], &["name"]),
                from[k]["optional"].as_bool().unwrap_or(false)
            ));
            continue;
        }
        if from["resourceFieldRef"].is_object() {
            o.push_str(&format!(
                "      {name}:\t<set to the container's {}>\n",
                str_at(&from["resourceFieldRef"], &["resource"])
            ));
            continue;
        }
        for (i, line) in str_at(e, &["value"]).split('\n').enumerate() {
            if i == 0 {
                o.push_str(&format!("      {name}:\t{line}\n"));
            } else {
                o.push_str(&format!("      \t{line}\n"));
            }
        }
    }
    let mut mounts: Vec<&Value> = c["volumeMounts"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .collect();
    if mounts.is_empty() {
        o.push_str("    Mounts:\t<none>\n");
    } else {
        o.push_str("    Mounts:\n");
    }
    mounts.sort_by_key(|m| str_at(m, &["mountPath"]));
    for m in mounts {
        let mut flags = vec![if m["readOnly"].as_bool().unwrap_or(false) {
            "ro".to_string()
        } else {
            "rw".to_string()
        }];
        if !str_at(m, &["subPath"]).is_empty() {
            flags.push(format!("path={:?}", str_at(m, &["subPath"])));
        }
        o.push_str(&format!(
            "      {} from {} ({})\n",
            str_at(m, &["mountPath"]),
            str_at(m, &["name"]),
            flags.join(",")
        ));
    }
}

/// kubectl's multi-line `Labels:`/`Annotations:` (sorted; `k=v` for labels,
/// `k: v` for annotations).
pub(crate) fn map_lines(o: &mut String, title: &str, map: &Value, sep: &str) {
    let mut entries: Vec<(&String, &Value)> = map
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "kubectl.kubernetes.io/last-applied-configuration")
                .collect()
        })
        .unwrap_or_default();
    entries.sort_by_key(|(k, _)| *k);
    if entries.is_empty() {
        o.push_str(&format!("{title}:\t<none>\n"));
        return;
    }
    for (i, (k, v)) in entries.iter().enumerate() {
        let head = if i == 0 {
            format!("{title}:")
        } else {
            String::new()
        };
        o.push_str(&format!("{head}\t{k}{sep}{}\n", int_or_string(v)));
    }
}

/// Events grouped as the API server counts them: the same type, reason,
/// object and message are one row, `AGE (xN over FIRST)`, ordered by their
/// last time.
pub(crate) fn event_lines(o: &mut String, events: &[EventEntry], now_ms: i64) {
    if events.is_empty() {
        o.push_str("Events:\t<none>\n");
        return;
    }
    // (first, last, count, entry)
    let mut groups: Vec<(i64, i64, usize, &EventEntry)> = Vec::new();
    for e in events {
        match groups.iter_mut().find(|g| {
            g.3.kind == e.kind
                && g.3.reason == e.reason
                && g.3.object == e.object
                && g.3.message.trim() == e.message.trim()
        }) {
            Some(g) => {
                g.0 = g.0.min(e.time_ms);
                g.1 = g.1.max(e.time_ms);
                g.2 += 1;
            }
            None => groups.push((e.time_ms, e.time_ms, 1, e)),
        }
    }
    groups.sort_by_key(|g| g.1);
    o.push_str("Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    o.push_str("  ----\t------\t----\t----\t-------\n");
    let age = |t: i64| human_duration((now_ms - t) / 1000);
    for (first, last, count, e) in groups {
        let interval = if count > 1 {
            format!("{} (x{count} over {})", age(last), age(first))
        } else {
            age(first)
        };
        o.push_str(&format!(
            "  {}\t{}\t{interval}\tpicolet\t{}\n",
            e.kind,
            e.reason,
            e.message.trim()
        ));
    }
}

/// `picolet describe pod NAME`: kubectl's sections and layout.
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
    if let Some(pr) = p["spec"]["priority"].as_i64() {
        o.push_str(&format!("Priority:\t{pr}\n"));
    }
    if !str_at(p, &["spec", "priorityClassName"]).is_empty() {
        o.push_str(&format!(
            "Priority Class Name:\t{}\n",
            str_at(p, &["spec", "priorityClassName"])
        ));
    }
    match str_at(st, &["hostIP"]) {
        "" => o.push_str(&format!("Node:\t{node}\n")),
        ip => o.push_str(&format!("Node:\t{node}/{ip}\n")),
    }
    if !str_at(st, &["startTime"]).is_empty() {
        o.push_str(&format!(
            "Start Time:\t{}\n",
            rfc1123z(str_at(st, &["startTime"]))
        ));
    }
    map_lines(&mut o, "Labels", &p["metadata"]["labels"], "=");
    map_lines(&mut o, "Annotations", &p["metadata"]["annotations"], ": ");
    if p["metadata"]["deletionTimestamp"].is_string() {
        o.push_str("Status:\tTerminating\n");
    } else {
        o.push_str(&format!("Status:\t{}\n", str_at(st, &["phase"])));
    }
    for (title, key) in [("Reason", "reason"), ("Message", "message")] {
        if !str_at(st, &[key]).is_empty() {
            o.push_str(&format!("{title}:\t{}\n", str_at(st, &[key]).trim()));
        }
    }
    // picolet's own: where the pod came from, and a refused edit.
    o.push_str(&format!("Source:\t{}\n", entry.source));
    if let Some(e) = manifest_error {
        o.push_str(&format!("Manifest Error:\t{}\n", e.trim()));
    }
    o.push_str(&format!("IP:\t{}\n", str_at(st, &["podIP"])));
    let ips: Vec<&str> = st["podIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["ip"].as_str()).collect())
        .unwrap_or_default();
    if ips.is_empty() {
        o.push_str("IPs:\t<none>\n");
    } else {
        o.push_str("IPs:\n");
        for ip in ips {
            o.push_str(&format!("  IP:\t{ip}\n"));
        }
    }
    // kubectl's printController: the owner reference that is the controller.
    let owners = p["metadata"]["ownerReferences"].as_array();
    if let Some(r) = owners.and_then(|a| a.iter().find(|r| r["controller"] == true)) {
        let (kind, name) = (str_at(r, &["kind"]), str_at(r, &["name"]));
        o.push_str(&format!("Controlled By:\t{kind}/{name}\n"));
    }
    let empty = Vec::new();
    for (title, spec_key, status_key) in [
        ("Init Containers", "initContainers", "initContainerStatuses"),
        ("Containers", "containers", "containerStatuses"),
    ] {
        let specs = p["spec"][spec_key].as_array().unwrap_or(&empty);
        if specs.is_empty() && spec_key == "initContainers" {
            continue;
        }
        o.push_str(&format!("{title}:\n"));
        let statuses = st[status_key].as_array().unwrap_or(&empty);
        for c in specs {
            let s = statuses.iter().find(|s| s["name"] == c["name"]);
            container_lines(&mut o, p, st, node, c, s);
        }
    }
    if let Some(conds) = st["conditions"].as_array().filter(|c| !c.is_empty()) {
        o.push_str("Conditions:\n  Type\tStatus\n");
        for c in conds {
            o.push_str(&format!(
                "  {} \t{} \n",
                str_at(c, &["type"]),
                str_at(c, &["status"])
            ));
        }
    }
    let volumes = p["spec"]["volumes"].as_array().unwrap_or(&empty);
    if volumes.is_empty() {
        o.push_str("Volumes:\t<none>\n");
    } else {
        o.push_str("Volumes:\n");
    }
    for v in volumes {
        o.push_str(&format!("  {}:\n", str_at(v, &["name"])));
        if let Some(h) = v.get("hostPath").filter(|h| h.is_object()) {
            o.push_str(&format!(
                "    Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n",
                str_at(h, &["path"]),
                str_at(h, &["type"])
            ));
        } else if let Some(e) = v.get("emptyDir").filter(|e| e.is_object()) {
            let limit = int_or_string(&e["sizeLimit"]);
            o.push_str(&format!(
                "    Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{}\n",
                str_at(e, &["medium"]),
                if limit.is_empty() { "<unset>" } else { &limit }
            ));
        } else if let Some(c) = v.get("configMap").filter(|c| c.is_object()) {
            o.push_str(&format!(
                "    Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                str_at(c, &["name"]),
                c["optional"].as_bool().unwrap_or(false)
            ));
        } else if let Some(c) = v.get("secret").filter(|c| c.is_object()) {
            o.push_str(&format!(
                "    Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                str_at(c, &["secretName"]),
                c["optional"].as_bool().unwrap_or(false)
            ));
        } else if v.get("downwardAPI").is_some_and(Value::is_object) {
            o.push_str(
                "    Type:\tDownwardAPI (a volume populated by information about the pod)\n",
            );
        } else if v.get("projected").is_some_and(Value::is_object) {
            o.push_str(
                "    Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
        } else {
            o.push_str("  <unknown>\n");
        }
    }
    o.push_str(&format!("QoS Class:\t{}\n", str_at(st, &["qosClass"])));
    map_lines(&mut o, "Node-Selectors", &p["spec"]["nodeSelector"], "=");
    event_lines(&mut o, events, now_ms);
    tabwrite(&o)
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
    fn a_grpc_probe_is_described_as_kubectl_does() {
        let p = serde_json::json!({"grpc": {"port": 9000, "service": "db"}, "periodSeconds": 5});
        assert_eq!(
            describe_probe(&p),
            "grpc <pod>:9000 db delay=0s timeout=1s period=5s #success=1 #failure=3"
        );
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

    #[test]
    fn tabwrite_aligns_blocks_as_go_does() {
        let t = tabwrite(
            "Name:\tweb\nNamespace:\tdefault\nContainers:\n  a:\n    Image:\tx\n    Restart Count:\t0\nQoS:\tBestEffort\n",
        );
        assert_eq!(
            t,
            "Name:       web\nNamespace:  default\nContainers:\n  a:\n    Image:          x\n    Restart Count:  0\nQoS:                BestEffort\n"
        );
    }

    #[test]
    fn times_print_as_rfc1123z() {
        assert_eq!(
            rfc1123z("2026-12-05T21:28:11Z"),
            "Sat, 05 Dec 2026 21:28:11 +0000"
        );
        assert_eq!(
            rfc1123z("1970-01-01T00:00:00Z"),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(rfc1123z("nonsense"), "nonsense");
    }

    #[test]
    fn describe_shows_kubectls_sections() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                "labels": {"tier": "front", "app": "web"},
                "annotations": {"note": "hi"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-5d8f9c7b6", "uid": "u0", "controller": true}]},
            "spec": {
                "priority": 5,
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": "/srv", "type": "Directory"}}
                ],
                "containers": [{
                    "name": "app", "image": "busybox:1",
                    "command": ["sh", "-c"], "args": ["echo one\nexec httpd -f"],
                    "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}],
                    "env": [{"name": "MODE", "value": "prod"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "resources": {"limits": {"memory": "128Mi", "cpu": "500m"},
                                  "requests": {"cpu": "100m"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                    "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                        "initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 1},
                    "startupProbe": {"tcpSocket": {"port": "http"}, "timeoutSeconds": 3},
                    "volumeMounts": [{"name": "host", "mountPath": "/srv", "readOnly": true},
                                     {"name": "data", "mountPath": "/data"}]
                }]
            }
        });
        let status = json!({
            "phase": "Running", "hostIP": "192.168.1.5", "podIP": "10.88.0.4",
            "podIPs": [{"ip": "10.88.0.4"}], "startTime": "2026-01-01T00:00:00Z",
            "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 2,
                "containerID": "picolet://abc", "imageID": "sha256:def",
                "state": {"running": {"startedAt": "2026-01-01T00:01:00Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
                    "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:59Z"}}}]
        });
        let entry = PodEntry {
            pod,
            status,
            source: "web.yaml".into(),
        };
        let ev = |t: i64, kind: &str, reason: &str, msg: &str| EventEntry {
            time_ms: t,
            kind: kind.into(),
            reason: reason.into(),
            message: msg.into(),
            object: "spec.containers{app}".into(),
        };
        let now = 1_767_225_600_000 + 600_000;
        let events = vec![
            ev(now - 300_000, "Normal", "Started", "Started container app"),
            ev(
                now - 120_000,
                "Warning",
                "Unhealthy",
                "Readiness probe failed: cat: can't open '/tmp/ready'\n",
            ),
            ev(
                now - 60_000,
                "Warning",
                "Unhealthy",
                "Readiness probe failed: cat: can't open '/tmp/ready'\n",
            ),
            ev(
                now - 30_000,
                "Warning",
                "Unhealthy",
                "Readiness probe failed: cat: can't open '/tmp/ready'\n",
            ),
            ev(
                now - 10_000,
                "Warning",
                "Unhealthy",
                "Readiness probe failed: cat: can't open '/tmp/ready'\n",
            ),
        ];
        let d = describe("edge-1", &entry, &events, None, now);
        for line in [
            "Name:         web",
            "Priority:     5",
            "Node:         edge-1/192.168.1.5",
            "Start Time:   Thu, 01 Jan 2026 00:00:00 +0000",
            "Labels:       app=web",
            "              tier=front",
            "Annotations:  note: hi",
            "IP:           10.88.0.4",
            "IPs:",
            "  IP:           10.88.0.4",
            "Controlled By:  ReplicaSet/web-5d8f9c7b6",
            "Containers:",
            "  app:",
            "    Container ID:  picolet://abc",
            "    Image ID:      sha256:def",
            "    Ports:         8080/TCP, 53/UDP",
            "    Host Ports:    0/TCP, 0/UDP",
            "    Command:",
            "      sh",
            "      -c",
            "    Args:",
            "      echo one",
            "      exec httpd -f",
            "    State:          Running",
            "      Started:      Thu, 01 Jan 2026 00:01:00 +0000",
            "    Last State:     Terminated",
            "      Reason:       Error",
            "      Exit Code:    137",
            "    Ready:          False",
            "    Restart Count:  2",
            "    Limits:",
            "      cpu:     500m",
            "      memory:  128Mi",
            "    Requests:",
            "      cpu:      100m",
            "    Liveness:   http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3",
            "    Readiness:  exec [cat /tmp/ready] delay=5s timeout=1s period=2s #success=1 #failure=1",
            "    Startup:    tcp-socket :http delay=0s timeout=3s period=10s #success=1 #failure=3",
            "    Environment:",
            "      MODE:  prod",
            "      POD:   web (v1:metadata.name)",
            "    Mounts:",
            "      /data from data (rw)",
            "      /srv from host (ro)",
            "Conditions:",
            "  Type    Status",
            "  Ready   False ",
            "Volumes:",
            "  data:",
            "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)",
            "    SizeLimit:  <unset>",
            "  host:",
            "    Type:          HostPath (bare host directory volume)",
            "    Path:          /srv",
            "    HostPathType:  Directory",
            "QoS Class:         Burstable",
            "Events:",
            "  Type     Reason     Age               From     Message",
            "  ----     ------     ----              ----     -------",
            "  Normal   Started    5m                picolet  Started container app",
            "  Warning  Unhealthy  10s (x4 over 2m)  picolet  Readiness probe failed: cat: can't open '/tmp/ready'",
        ] {
            assert!(d.lines().any(|l| l == line), "no line {line:?} in:\n{d}");
        }
        // No blank rows (a probe message's newline), and sections in order.
        assert!(!d.lines().any(|l| l.trim().is_empty()), "{d}");
        let at = |s: &str| d.find(s).unwrap_or_else(|| panic!("{s}"));
        assert!(at("Labels:") < at("Status:") && at("Status:") < at("Containers:"));
        assert!(at("Containers:") < at("Conditions:") && at("Conditions:") < at("Volumes:"));
        assert!(at("Volumes:") < at("QoS Class:") && at("QoS Class:") < at("Events:"));
    }
}
