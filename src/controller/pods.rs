//! The pods of a device's status as `apply` and `fleet status` see them:
//! whether a pod failed (and why), is ready, or is still on its way, and
//! the `get pods`-like rows of `fleet status --device`. Pure.

use crate::api::PodEntry;
use crate::api::print;
use crate::fleet::doc::{DeviceStatus, PodReport};
use serde_json::{Value, json};

/// Container waiting reasons that mean the pod will not run as given
/// without a change (kubelet's reasons; picolet reports the same).
pub const FAILING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "StartError",
    "CrashLoopBackOff",
    "PreCreateHookError",
    "PostStartHookError",
];

fn status_value(r: &PodReport) -> Value {
    serde_json::to_value(&r.status).unwrap_or(Value::Null)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// Why the pod failed, as (reason, message), if it did: a failing
/// container reason ([`FAILING_REASONS`]), or the `Failed` phase.
pub fn failure(r: &PodReport) -> Option<(String, String)> {
    let st = status_value(r);
    for list in ["initContainerStatuses", "containerStatuses"] {
        for c in st[list].as_array().into_iter().flatten() {
            let w = &c["state"]["waiting"];
            if FAILING_REASONS.contains(&s(w, "reason")) {
                let msg = format!("container {}: {}", s(c, "name"), s(w, "message"));
                return Some((s(w, "reason").to_string(), msg));
            }
        }
    }
    if s(&st, "phase") == "Failed" {
        let reason = match s(&st, "reason") {
            "" => "Failed",
            r => r,
        };
        let mut msg = s(&st, "message").to_string();
        if msg.is_empty() {
            // The container that failed it.
            for c in st["containerStatuses"].as_array().into_iter().flatten() {
                let t = &c["state"]["terminated"];
                if t.is_object() && t["exitCode"].as_i64() != Some(0) {
                    msg = format!(
                        "container {} terminated: {} (exit code {})",
                        s(c, "name"),
                        s(t, "reason"),
                        t["exitCode"]
                    );
                    break;
                }
            }
        }
        return Some((reason.to_string(), msg));
    }
    None
}

/// Whether the pod is Ready, or ran to completion.
pub fn settled_ok(r: &PodReport) -> bool {
    r.is_ready() || s(&status_value(r), "phase") == "Succeeded"
}

/// The text to show next to a pod: its failure, else any waiting or
/// terminated message of a container, else the pod's message.
pub fn message(r: &PodReport) -> String {
    if let Some((_, m)) = failure(r) {
        return m;
    }
    let st = status_value(r);
    for list in ["initContainerStatuses", "containerStatuses"] {
        for c in st[list].as_array().into_iter().flatten() {
            for state in ["waiting", "terminated"] {
                let m = s(&c["state"][state], "message");
                if !m.is_empty() {
                    return format!("container {}: {m}", s(c, "name"));
                }
            }
        }
    }
    s(&st, "message").to_string()
}

/// `get pods`' row of a reported pod: NAME READY STATUS RESTARTS AGE.
pub fn row(r: &PodReport, now_ms: i64) -> print::Row {
    let entry = PodEntry {
        pod: json!({"metadata": {"name": r.metadata.name, "namespace": r.metadata.namespace}}),
        status: status_value(r),
        source: String::new(),
    };
    print::row(&entry, "", now_ms)
}

/// The report of `namespace/name` in a device's status.
pub fn find<'a>(s: &'a DeviceStatus, key: &str) -> Option<&'a PodReport> {
    s.pods
        .iter()
        .find(|p| format!("{}/{}", p.metadata.namespace, p.metadata.name) == key)
}

/// The rows of `fleet status --device`/`--group`: one per reported pod,
/// then one per pod the device refused (policy, name clash) that it does
/// not run. Columns: [DEVICE] [NAMESPACE] NAME READY STATUS RESTARTS AGE
/// [MESSAGE]; DEVICE for more than one device, NAMESPACE when a pod is
/// outside `default`, MESSAGE when a pod has one.
pub fn table(devices: &[(&str, &DeviceStatus)], now_ms: i64) -> String {
    struct R {
        device: String,
        ns: String,
        cells: Vec<String>,
        msg: String,
    }
    let mut rows = Vec::new();
    for (id, st) in devices {
        for p in &st.pods {
            let r = row(p, now_ms);
            rows.push(R {
                device: id.to_string(),
                ns: p.metadata.namespace.clone(),
                cells: vec![r.name, r.ready, r.status, r.restarts.to_string(), r.age],
                msg: message(p),
            });
        }
        for e in &st.errors {
            let Some(key) = &e.pod else { continue };
            if find(st, key).is_some() {
                continue;
            }
            let (ns, name) = key.split_once('/').unwrap_or(("default", key));
            rows.push(R {
                device: id.to_string(),
                ns: ns.to_string(),
                cells: vec![
                    name.to_string(),
                    "0/0".into(),
                    e.reason.clone(),
                    "0".into(),
                    "<none>".into(),
                ],
                msg: e.message.clone(),
            });
        }
    }
    let with_device = devices.len() > 1;
    let with_ns = rows.iter().any(|r| r.ns != "default");
    let with_msg = rows.iter().any(|r| !r.msg.is_empty());
    let mut header = Vec::new();
    if with_device {
        header.push("DEVICE");
    }
    if with_ns {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    if with_msg {
        header.push("MESSAGE");
    }
    let cells: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            let mut v = Vec::new();
            if with_device {
                v.push(r.device);
            }
            if with_ns {
                v.push(r.ns);
            }
            v.extend(r.cells);
            if with_msg {
                v.push(r.msg.replace('\n', " "));
            }
            v
        })
        .collect();
    print::table(&header, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::doc::{NodeInfo, ObservedRevision, StatusError};

    fn report(name: &str, ns: &str, status: Value) -> PodReport {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "uid": "u"},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn the_pod_table_shows_status_and_the_error_text_of_failing_pods() {
        let now = 1_800_000_000_000i64;
        let started = crate::clock::rfc3339(now - 65_000);
        let web = report(
            "web",
            "default",
            json!({"phase": "Running", "startTime": started,
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "main", "ready": true, "restartCount": 2,
                    "image": "i", "imageID": "", "state": {"running": {"startedAt": started}}}]}),
        );
        let bad = report(
            "bad",
            "default",
            json!({"phase": "Pending", "startTime": started,
                "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0,
                    "image": "nope", "imageID": "",
                    "state": {"waiting": {"reason": "ErrImagePull", "message": "image \"nope\" not found"}}}]}),
        );
        assert_eq!(
            failure(&bad),
            Some((
                "ErrImagePull".into(),
                "container main: image \"nope\" not found".into()
            ))
        );
        assert_eq!(failure(&web), None);
        let refused = StatusError {
            topic: "picolet/devices/pi-1/desired".into(),
            revision: Some(3),
            pod: Some("default/root".into()),
            reason: "PolicyViolation".into(),
            message: "pod default/root refused: privileged".into(),
            time: String::new(),
        };
        let s = DeviceStatus::new(
            "pi-1",
            &ObservedRevision::default(),
            vec![web, bad],
            NodeInfo::default(),
            vec![refused],
            now,
        );
        let out = table(&[("pi-1", &s)], now);
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "MESSAGE"]
        );
        assert_eq!(lines[1], ["web", "1/1", "Running", "2", "65s"]);
        assert_eq!(
            lines[2],
            [
                "bad",
                "0/1",
                "ErrImagePull",
                "0",
                "65s",
                "container",
                "main:",
                "image",
                "\"nope\"",
                "not",
                "found"
            ]
        );
        assert_eq!(lines[3][..4], ["root", "0/0", "PolicyViolation", "0"]);
        // Two devices: a DEVICE column.
        let out = table(&[("pi-1", &s), ("pi-2", &s)], now);
        assert!(out.starts_with("DEVICE"), "{out}");
        assert_eq!(out.lines().count(), 7);
    }
}
