//! `picolet fleet status [--device ID] [-o json]`: every device's retained
//! status and online flag, as a table or JSON.

use super::cli::{Args, CONNECT_LIMIT, common, only};
use super::client::Client;
use crate::clock::{parse_rfc3339_ms, wall_ms};
use crate::fleet::doc::DeviceStatus;
use crate::fleet::topics::{Topic, Topics};
use crate::reactor;
use crate::vecmap::VecMap;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Instant;

/// What the broker holds about one device.
#[derive(Debug, Default)]
pub struct DeviceRow {
    pub online: Option<bool>,
    pub status: Option<DeviceStatus>,
    /// A status that did not parse.
    pub bad_status: Option<String>,
    /// Its `deployments`, as the DEPLOYMENT column shows them
    /// (`kitchen=Healthy(8)`, `device=Applying(3)`).
    pub deployments: Vec<String>,
}

/// The DEPLOYMENT cells of a status: each `deployments` entry's source
/// (`device`, or the group's name), state and revision.
fn deployments(payload: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(payload).unwrap_or_default();
    let list = v["deployments"].as_array().map_or(&[][..], Vec::as_slice);
    list.iter()
        .map(|d| {
            let source = d["source"].as_str().unwrap_or("?");
            let state = d["state"].as_str().unwrap_or("?");
            let source = source.strip_prefix("group/").unwrap_or(source);
            match d["revision"].as_u64() {
                Some(r) => format!("{source}={state}({r})"),
                None => format!("{source}={state}"),
            }
        })
        .collect()
}

pub(super) fn fleet(a: Args) -> Result<ExitCode, String> {
    let not = [
        "f",
        "filename",
        "sign-key",
        "timeout",
        "max-message-bytes",
        "n",
        "namespace",
        "prune",
        "dry-run",
    ];
    only(&a, "fleet", &not)?;
    if a.free.first().map(String::as_str) != Some("status") || a.free.len() > 1 {
        return Err(
            "usage: picolet fleet status [--device ID | --group G] --broker URL [-o json]".into(),
        );
    }
    let c = common(&a)?;
    let group = a.one(&["group"]).map(str::to_string);
    if group.is_some() && a.has(&["device"]) {
        return Err("give --device ID or --group G, not both".into());
    }
    let json = match a.one(&["o", "output"]) {
        None | Some("wide") => false,
        Some("json") => true,
        Some(other) => return Err(format!("-o {other}: use json")),
    };
    let filters = match a.one(&["device"]) {
        Some(d) => vec![c.topics.device_status(d), c.topics.device_online(d)],
        None => vec![c.topics.all_status_filter(), c.topics.all_online_filter()],
    };
    let rows = reactor::block_on(async {
        let s = |e: super::client::ClientError| e.to_string();
        let mut client = Client::connect(&c.opts, CONNECT_LIMIT).await.map_err(s)?;
        client.subscribe(filters);
        client
            .sync(c.topics.prefix(), CONNECT_LIMIT)
            .await
            .map_err(s)?;
        let mut rows = VecMap::new();
        while let Some(m) = client.next_message(Instant::now()).await.map_err(s)? {
            collect(&c.topics, &mut rows, &m.topic, &m.payload);
        }
        client.disconnect().await;
        Ok::<_, String>(rows)
    })?;
    let rows = match &group {
        None => rows,
        Some(g) => members(rows, g),
    };
    let per_pod = group.is_some() || a.has(&["device"]);
    if json {
        println!("{}", to_json(&rows));
    } else if rows.is_empty() {
        match (&group, a.one(&["device"])) {
            (Some(g), _) => eprintln!("No device reports a revision of group {g}."),
            (None, Some(d)) => eprintln!("No status from device {d}."),
            _ => eprintln!("No devices found."),
        }
    } else if per_pod {
        let devices: Vec<(&str, &DeviceStatus)> = rows
            .iter()
            .filter_map(|(id, r)| Some((id.as_str(), r.status.as_ref()?)))
            .collect();
        if devices
            .iter()
            .all(|(_, s)| s.pods.is_empty() && s.errors.iter().all(|e| e.pod.is_none()))
        {
            eprintln!("No resources found.");
        } else {
            print!("{}", super::pods::table(&devices, wall_ms()));
        }
        if devices.iter().any(|(_, s)| !s.workloads.is_empty()) {
            print!("\n{}", workloads_table(&devices));
        }
        for (id, r) in &rows {
            if let Some(e) = &r.bad_status {
                eprintln!("warning: device {id}: unreadable status: {e}");
            }
        }
    } else {
        print!("{}", table(&rows, wall_ms()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Each device's workloads and their rollout state: kubectl's counts, the
/// revision, and the condition that matters (a Deployment's `Progressing`
/// reason when it is not progressing, `RolledBack`, a Job's `Complete`).
pub fn workloads_table(devices: &[(&str, &DeviceStatus)]) -> String {
    let header = [
        "DEVICE",
        "NAMESPACE",
        "WORKLOAD",
        "REVISION",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "STATE",
    ];
    let mut rows = Vec::new();
    for (id, s) in devices {
        for w in &s.workloads {
            let st = &w.status;
            let n = |k: &str| st[k].as_i64().unwrap_or(0);
            let (ready, updated, available) = match w.kind.as_str() {
                "DaemonSet" => (
                    format!("{}/{}", n("numberReady"), n("desiredNumberScheduled")),
                    n("updatedNumberScheduled"),
                    n("numberAvailable"),
                ),
                "Job" => (
                    format!("{}/{}", n("succeeded"), w.desired),
                    n("active"),
                    n("ready"),
                ),
                "CronJob" => (
                    format!("{} active", st["active"].as_array().map_or(0, Vec::len)),
                    0,
                    0,
                ),
                _ => (
                    format!("{}/{}", n("readyReplicas"), w.desired),
                    n("updatedReplicas"),
                    n("availableReplicas"),
                ),
            };
            let conds = st["conditions"].as_array().cloned().unwrap_or_default();
            let notable = conds
                .iter()
                .find(|c| c["status"] == "False" || c["reason"] == "RolledBack")
                .or_else(|| {
                    conds
                        .iter()
                        .find(|c| c["type"] == "Complete" || c["type"] == "Failed")
                })
                .or_else(|| conds.last());
            let state = notable.map_or("-".to_string(), |c| {
                let r = c["reason"].as_str().unwrap_or("");
                let t = c["type"].as_str().unwrap_or("");
                if r.is_empty() {
                    t.to_string()
                } else {
                    format!("{t}={}", r)
                }
            });
            rows.push(vec![
                id.to_string(),
                w.namespace.clone(),
                format!("{}/{}", w.kind.to_ascii_lowercase(), w.name),
                if w.revision.is_empty() {
                    "-".into()
                } else {
                    w.revision.clone()
                },
                ready,
                updated.to_string(),
                available.to_string(),
                state,
            ]);
        }
    }
    crate::api::print::table(&header, &rows)
}

/// The devices that report a revision of group `g`.
fn members(mut rows: VecMap<String, DeviceRow>, g: &str) -> VecMap<String, DeviceRow> {
    rows.retain(|_, r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.observed_revision.groups.contains_key(g))
    });
    rows
}

/// Takes one retained message into the rows.
pub fn collect(topics: &Topics, rows: &mut VecMap<String, DeviceRow>, topic: &str, payload: &[u8]) {
    match topics.parse(topic) {
        Some(Topic::Online(id)) if !payload.is_empty() => {
            rows.entry(id).or_default().online = Some(payload == b"true");
        }
        Some(Topic::Status(id)) if !payload.is_empty() => {
            let row = rows.entry(id).or_default();
            row.deployments = deployments(payload);
            match DeviceStatus::from_json(payload) {
                Ok(s) => row.status = Some(s),
                Err(e) => row.bad_status = Some(e.to_string()),
            }
        }
        _ => {}
    }
}

/// `[{"device": …, "online": …, "status": …}]`.
pub fn to_json(rows: &VecMap<String, DeviceRow>) -> String {
    let items: Vec<Value> = rows
        .iter()
        .map(|(id, r)| {
            json!({
                "device": id,
                "online": r.online,
                "status": r.status,
                "statusError": r.bad_status,
            })
        })
        .collect();
    crate::jsonl::to_string_pretty(&items).expect("JSON values always serialize")
}

fn age(now_ms: i64, time: &str) -> String {
    let Some(t) = parse_rfc3339_ms(time) else {
        return "-".into();
    };
    let s = (now_ms - t).max(0) / 1000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// DEVICE ONLINE OBSERVED DEPLOYMENT PODS ERRORS UPDATED.
pub fn table(rows: &VecMap<String, DeviceRow>, now_ms: i64) -> String {
    let mut lines = vec![[
        "DEVICE".to_string(),
        "ONLINE".into(),
        "OBSERVED".into(),
        "DEPLOYMENT".into(),
        "PODS".into(),
        "ERRORS".into(),
        "UPDATED".into(),
    ]];
    for (id, r) in rows {
        let online = r.online.map_or("unknown".to_string(), |o| o.to_string());
        let (observed, pods, errors, updated) = match &r.status {
            Some(s) => {
                let mut parts = Vec::new();
                if let Some(d) = s.observed_revision.device {
                    parts.push(format!("device={d}"));
                }
                for (g, rev) in &s.observed_revision.groups {
                    parts.push(format!("{g}={rev}"));
                }
                let (ready, total) = s.pods_ready();
                (
                    if parts.is_empty() {
                        "-".to_string()
                    } else {
                        parts.join(",")
                    },
                    format!("{ready}/{total}"),
                    s.errors.len().to_string(),
                    age(now_ms, &s.time),
                )
            }
            None => {
                let why = if r.bad_status.is_some() {
                    "unreadable"
                } else {
                    "-"
                };
                (why.to_string(), "-".into(), "-".into(), "-".into())
            }
        };
        let deployment = match r.deployments.as_slice() {
            [] => "-".to_string(),
            d => d.join(","),
        };
        lines.push([
            id.clone(),
            online,
            observed,
            deployment,
            pods,
            errors,
            updated,
        ]);
    }
    let mut widths = [0usize; 7];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::doc::{NodeInfo, ObservedRevision};

    #[test]
    fn the_workloads_table_shows_counts_revision_and_a_rollback() {
        let mut s = DeviceStatus::new(
            "pi-1",
            &Default::default(),
            vec![],
            Default::default(),
            vec![],
            0,
        );
        s.workloads = vec![crate::fleet::doc::WorkloadReport::from_object(&json!({
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 3},
            "status": {"readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                       "conditions": [
                           {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                           {"type": "Progressing", "status": "False", "reason": "RolledBack"}]}
        }))];
        let t = workloads_table(&[("pi-1", &s)]);
        let row: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "pi-1",
                "default",
                "deployment/web",
                "3",
                "3/3",
                "3",
                "3",
                "Progressing=RolledBack"
            ]
        );
    }

    #[test]
    fn the_table_lists_online_observed_revisions_and_ready_pods() {
        let t = Topics::default();
        let mut rows = VecMap::new();
        let observed = ObservedRevision {
            device: Some(4),
            groups: [("kitchen".to_string(), 2)].into(),
        };
        let now = 1_800_000_000_000;
        let s = DeviceStatus::new(
            "pi-1",
            &observed,
            vec![],
            NodeInfo::default(),
            vec![],
            now - 5000,
        );
        let mut v: Value = serde_json::from_slice(&s.to_json()).unwrap();
        v["deployments"] = json!([
            {"source": "device", "revision": 4, "state": "Healthy"},
            {"source": "group/kitchen", "revision": 2, "state": "Failed", "reason": "CrashLoopBackOff"},
            {"source": "group/hall", "state": "Rejected"}
        ]);
        let payload = serde_json::to_vec(&v).unwrap();
        collect(&t, &mut rows, "picolet/devices/pi-1/status", &payload);
        collect(&t, &mut rows, "picolet/devices/pi-1/online", b"true");
        collect(&t, &mut rows, "picolet/devices/pi-2/online", b"false");
        collect(&t, &mut rows, "picolet/devices/pi-3/status", b"{nope");
        let out = table(&rows, now);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "DEVICE",
                "ONLINE",
                "OBSERVED",
                "DEPLOYMENT",
                "PODS",
                "ERRORS",
                "UPDATED"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "pi-1",
                "true",
                "device=4,kitchen=2",
                "device=Healthy(4),kitchen=Failed(2),hall=Rejected",
                "0/0",
                "0",
                "5s"
            ]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["pi-2", "false", "-", "-", "-", "-", "-"]
        );
        assert!(lines[3].contains("unreadable"), "{out}");
        let v: Value = serde_json::from_str(&to_json(&rows)).unwrap();
        assert_eq!(v[0]["status"]["observedRevision"]["device"], 4);
        assert_eq!(v[1]["online"], false);
    }
}
