//! What `apply` and `delete` wait for (see the module doc of [`super`]):
//! statuses and online flags in, a verdict out. Pure.

use super::Target;
use super::merge::Kind;
use super::pods;
use crate::fleet::doc::{DeviceStatus, PodReport, StatusError};
use crate::fleet::topics::{Source, Topic, Topics};
use crate::spec::Pod;
use crate::vecmap::VecMap;
use std::collections::HashSet;

type ErrorKey = (String, String, String, String);

fn key(e: &StatusError) -> ErrorKey {
    (
        e.topic.clone(),
        e.reason.clone(),
        e.message.clone(),
        e.time.clone(),
    )
}

/// The devices' reports about one target.
#[derive(Debug)]
pub struct Watch {
    topics: Topics,
    target: Target,
    desired_topic: String,
    revision: u64,
    statuses: VecMap<String, DeviceStatus>,
    online: VecMap<String, bool>,
    /// Errors already reported before the publish: not about it.
    known: HashSet<ErrorKey>,
    /// The pods this publish adds or changes.
    tracked: Vec<Tracked>,
}

/// A pod `apply` added or changed, waited for until it runs or fails.
#[derive(Debug, Clone)]
struct Tracked {
    key: String,
    /// `None`: added.
    kind: Option<Kind>,
    /// Container name → image, of the new spec.
    images: Vec<(String, String)>,
    /// Device → the uid it ran the pod under before the publish.
    old_uids: VecMap<String, String>,
}

/// The state of the published pods on the devices that took the revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodsVerdict {
    /// Every tracked pod runs (Ready) or completed: one line per pod.
    Ready(Vec<String>),
    /// Pods that failed: `device D: pod/NS/NAME: REASON: message`.
    Failed(Vec<String>),
    /// Still waiting: a progress line.
    Waiting(String),
}

/// The state of the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Reached: a summary, and the pods refused in this revision.
    Done {
        summary: String,
        refused: Vec<String>,
    },
    /// A device refused the document.
    Failed(String),
    /// Still waiting: a progress line.
    Waiting(String),
}

impl Watch {
    pub fn new(topics: Topics, target: Target) -> Watch {
        let desired_topic = topics.desired(&target.source());
        Watch {
            topics,
            target,
            desired_topic,
            revision: 0,
            statuses: VecMap::new(),
            online: VecMap::new(),
            known: HashSet::new(),
            tracked: Vec::new(),
        }
    }

    /// The pods to wait for after the revision is observed: `touched`
    /// (`namespace/name` and how it changed, `None` when added), their
    /// new specs among `pods`. Called before publishing: the uid each
    /// device runs a changed pod under now tells the old version from
    /// the new one.
    pub fn track(&mut self, touched: Vec<(String, Option<Kind>)>, pods: &[Pod]) {
        self.tracked = touched
            .into_iter()
            .map(|(key, kind)| {
                let spec = pods.iter().find(|p| super::merge::key(p) == key);
                let images = spec
                    .map(|p| {
                        (p.spec.init_containers.iter())
                            .chain(&p.spec.containers)
                            .map(|c| (c.name.clone(), c.image.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                let old_uids = self
                    .statuses
                    .iter()
                    .filter_map(|(id, s)| {
                        Some((id.clone(), pods::find(s, &key)?.metadata.uid.clone()))
                    })
                    .collect();
                Tracked {
                    key,
                    kind,
                    images,
                    old_uids,
                }
            })
            .collect();
    }

    /// Whether the report shows the pod as published, not its version from
    /// before (which runs on until the device replaced it).
    fn is_new_version(t: &Tracked, device: &str, r: &PodReport) -> bool {
        let Some(old) = t.old_uids.get(device) else {
            return true;
        };
        match t.kind {
            None | Some(Kind::Metadata) => true,
            Some(Kind::Replace) => r.metadata.uid != *old,
            Some(Kind::Images) => {
                let st = serde_json::to_value(&r.status).unwrap_or_default();
                r.metadata.uid != *old
                    || t.images.iter().all(|(name, image)| {
                        ["initContainerStatuses", "containerStatuses"]
                            .iter()
                            .any(|l| {
                                st[l].as_array().into_iter().flatten().any(|c| {
                                    c["name"] == name.as_str() && c["image"] == image.as_str()
                                })
                            })
                    })
            }
        }
    }

    /// How the tracked pods are doing on the devices that took the
    /// revision (call once [`Watch::verdict`] is `Done`). Pods a device
    /// refused are not waited for (the `Done` verdict lists them).
    pub fn pods_verdict(&self) -> PodsVerdict {
        let source = self.target.source();
        let mut failed = Vec::new();
        let mut waiting = Vec::new();
        let mut ready = Vec::new();
        for (id, s) in self.members() {
            if !s.observed_revision.reached(&source, self.revision) {
                continue;
            }
            for t in &self.tracked {
                let refused = s.errors.iter().any(|e| {
                    e.topic == self.desired_topic
                        && e.revision == Some(self.revision)
                        && e.pod.as_deref() == Some(t.key.as_str())
                });
                if refused {
                    continue;
                }
                let Some(r) = pods::find(s, &t.key) else {
                    waiting.push(format!("{id}: pod/{} not reported yet", t.key));
                    continue;
                };
                if !Watch::is_new_version(t, id, r) {
                    waiting.push(format!("{id}: pod/{} (the old version still runs)", t.key));
                    continue;
                }
                if let Some((reason, msg)) = pods::failure(r) {
                    failed.push(format!("device {id}: pod/{}: {reason}: {msg}", t.key));
                } else if pods::settled_ok(r) {
                    let row = pods::row(r, 0);
                    ready.push(format!(
                        "device {id}: pod/{} {} {}",
                        t.key, row.status, row.ready
                    ));
                } else {
                    let row = pods::row(r, 0);
                    waiting.push(format!("{id}: pod/{} {} {}", t.key, row.status, row.ready));
                }
            }
        }
        if !failed.is_empty() {
            PodsVerdict::Failed(failed)
        } else if !waiting.is_empty() {
            PodsVerdict::Waiting(format!("waiting for pods: {}", waiting.join(", ")))
        } else {
            PodsVerdict::Ready(ready)
        }
    }

    pub fn desired_topic(&self) -> &str {
        &self.desired_topic
    }

    /// Takes in a status or online message; other topics are ignored.
    pub fn observe(&mut self, topic: &str, payload: &[u8]) {
        match self.topics.parse(topic) {
            Some(Topic::Status(id)) => {
                if let Ok(s) = DeviceStatus::from_json(payload) {
                    self.statuses.insert(id, s);
                }
            }
            Some(Topic::Online(id)) => {
                self.online.insert(id, payload == b"true");
            }
            _ => {}
        }
    }

    /// The highest revision of the target any device reports.
    pub fn observed(&self) -> Option<u64> {
        let source = self.target.source();
        self.statuses
            .values()
            .filter_map(|s| s.observed_revision.last(&source))
            .max()
    }

    /// Called just before publishing `revision`: every error seen so far
    /// is about something older.
    pub fn published(&mut self, revision: u64) {
        self.revision = revision;
        self.known = self
            .statuses
            .values()
            .flat_map(|s| s.errors.iter().map(key))
            .collect();
    }

    /// Devices that report on the target: the device itself, or every
    /// device that reports a revision of the group.
    fn members(&self) -> Vec<(&String, &DeviceStatus)> {
        let source = self.target.source();
        self.statuses
            .iter()
            .filter(|(id, s)| match &self.target {
                Target::Device(d) => *id == d,
                Target::Group(_) => s.observed_revision.last(&source).is_some(),
            })
            .collect()
    }

    pub fn verdict(&self) -> Verdict {
        let source = self.target.source();
        let rev = self.revision;
        let members = self.members();
        for (id, s) in &members {
            let new = s
                .errors
                .iter()
                .filter(|e| e.topic == self.desired_topic && e.pod.is_none())
                .find(|e| !self.known.contains(&key(e)));
            if let Some(e) = new {
                return Verdict::Failed(format!(
                    "device {id} refused the document ({}): {}",
                    e.reason, e.message
                ));
            }
        }
        let reached: Vec<_> = members
            .iter()
            .filter(|(_, s)| s.observed_revision.reached(&source, rev))
            .collect();
        let behind: Vec<_> = members
            .iter()
            .filter(|(id, s)| {
                !s.observed_revision.reached(&source, rev)
                    && self.online.get(*id).copied() != Some(false)
            })
            .collect();
        if !reached.is_empty() && behind.is_empty() {
            let mut refused = Vec::new();
            let mut parts = Vec::new();
            for (id, s) in &reached {
                let (ready, total) = s.pods_ready();
                parts.push(format!("{id} ({ready}/{total} pods ready)"));
                for e in &s.errors {
                    if e.topic == self.desired_topic && e.revision == Some(rev) && e.pod.is_some() {
                        refused.push(format!("device {id}: {}: {}", e.reason, e.message));
                    }
                }
            }
            let summary = format!("revision {rev} observed by {}", parts.join(", "));
            return Verdict::Done { summary, refused };
        }
        Verdict::Waiting(self.describe(&source))
    }

    /// What the devices report, for the progress line and the time-out.
    pub fn describe(&self, source: &Source) -> String {
        let rev = self.revision;
        let online = |id: &str| match self.online.get(id) {
            Some(true) => "online",
            Some(false) => "offline",
            None => "online unknown",
        };
        match &self.target {
            Target::Device(d) => match self.statuses.get(d) {
                None => format!("no status from device {d} yet ({})", online(d)),
                Some(s) => {
                    let (ready, total) = s.pods_ready();
                    let at = s
                        .observed_revision
                        .last(source)
                        .map_or("none".to_string(), |r| r.to_string());
                    format!(
                        "device {d} reports observedRevision.device {at} (want ≥ {rev}), {ready}/{total} pods ready, {}, status of {}",
                        online(d),
                        s.time
                    )
                }
            },
            Target::Group(g) => {
                let members = self.members();
                if members.is_empty() {
                    return format!("no device reports a revision of group {g} yet");
                }
                let parts: Vec<String> = members
                    .iter()
                    .map(|(id, s)| {
                        let at = s.observed_revision.last(source).unwrap_or(0);
                        format!("{id} at {at} ({})", online(id))
                    })
                    .collect();
                format!("group {g}, want ≥ {rev}: {}", parts.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::doc::{NodeInfo, ObservedRevision};

    fn status(
        id: &str,
        device: Option<u64>,
        groups: &[(&str, u64)],
        errors: Vec<StatusError>,
    ) -> Vec<u8> {
        let observed = ObservedRevision {
            device,
            groups: groups.iter().map(|(g, r)| (g.to_string(), *r)).collect(),
        };
        DeviceStatus::new(id, &observed, vec![], NodeInfo::default(), errors, 0).to_json()
    }

    fn error(
        topic: &str,
        reason: &str,
        pod: Option<&str>,
        revision: Option<u64>,
        time: &str,
    ) -> StatusError {
        StatusError {
            topic: topic.into(),
            revision,
            pod: pod.map(str::to_string),
            reason: reason.into(),
            message: format!("{reason} message"),
            time: time.into(),
        }
    }

    const DESIRED: &str = "picolet/devices/pi-1/desired";

    #[test]
    fn a_device_is_done_once_its_status_reports_the_revision() {
        let mut w = Watch::new(Topics::default(), Target::Device("pi-1".into()));
        w.observe(
            "picolet/devices/pi-1/status",
            &status("pi-1", Some(3), &[], vec![]),
        );
        assert_eq!(w.observed(), Some(3));
        w.published(4);
        let Verdict::Waiting(line) = w.verdict() else {
            panic!()
        };
        assert!(
            line.contains("observedRevision.device 3 (want ≥ 4)"),
            "{line}"
        );
        w.observe(
            "picolet/devices/pi-1/status",
            &status("pi-1", Some(4), &[], vec![]),
        );
        assert!(matches!(w.verdict(), Verdict::Done { refused, .. } if refused.is_empty()));
    }

    #[test]
    fn a_new_document_error_fails_at_once_but_an_old_one_does_not() {
        let mut w = Watch::new(Topics::default(), Target::Device("pi-1".into()));
        let old = error(DESIRED, "Malformed", None, None, "2026-01-01T00:00:00Z");
        w.observe(
            "picolet/devices/pi-1/status",
            &status("pi-1", Some(3), &[], vec![old.clone()]),
        );
        w.published(4);
        assert!(matches!(w.verdict(), Verdict::Waiting(_)));
        let new = error(DESIRED, "Unsigned", None, None, "2026-01-01T00:00:09Z");
        w.observe(
            "picolet/devices/pi-1/status",
            &status("pi-1", Some(3), &[], vec![old, new]),
        );
        let Verdict::Failed(msg) = w.verdict() else {
            panic!()
        };
        assert_eq!(
            msg,
            "device pi-1 refused the document (Unsigned): Unsigned message"
        );
    }

    #[test]
    fn a_stale_refusal_fails_even_when_the_device_is_past_the_revision() {
        // The device is at 9 (another controller published meanwhile) and
        // refuses our 5 as stale: not "observed", a refusal.
        let mut w = Watch::new(Topics::default(), Target::Device("pi-1".into()));
        w.observe(
            "picolet/devices/pi-1/status",
            &status("pi-1", Some(4), &[], vec![]),
        );
        w.published(5);
        let stale = error(DESIRED, "Stale", None, Some(5), "2026-01-01T00:00:09Z");
        w.observe(
            "picolet/devices/pi-1/status",
            &status("pi-1", Some(9), &[], vec![stale]),
        );
        assert_eq!(
            w.verdict(),
            Verdict::Failed("device pi-1 refused the document (Stale): Stale message".into())
        );
    }

    #[test]
    fn pods_refused_in_this_revision_are_listed_when_done() {
        let mut w = Watch::new(Topics::default(), Target::Device("pi-1".into()));
        w.published(2);
        let e = error(
            DESIRED,
            "PolicyViolation",
            Some("default/root"),
            Some(2),
            "t",
        );
        w.observe(
            "picolet/devices/pi-1/status",
            &status("pi-1", Some(2), &[], vec![e]),
        );
        let Verdict::Done { refused, .. } = w.verdict() else {
            panic!()
        };
        assert_eq!(
            refused,
            ["device pi-1: PolicyViolation: PolicyViolation message"]
        );
    }

    #[test]
    fn a_group_waits_for_every_online_member_that_is_behind() {
        let mut w = Watch::new(Topics::default(), Target::Group("g".into()));
        w.observe(
            "picolet/devices/a/status",
            &status("a", None, &[("g", 1)], vec![]),
        );
        w.observe(
            "picolet/devices/b/status",
            &status("b", None, &[("g", 1)], vec![]),
        );
        w.observe("picolet/devices/c/status", &status("c", None, &[], vec![]));
        w.observe("picolet/devices/b/online", b"true");
        assert_eq!(w.observed(), Some(1));
        w.published(2);
        w.observe(
            "picolet/devices/a/status",
            &status("a", None, &[("g", 2)], vec![]),
        );
        let Verdict::Waiting(line) = w.verdict() else {
            panic!()
        };
        assert!(line.contains("b at 1 (online)"), "{line}");
        // An offline member is not waited for.
        w.observe("picolet/devices/b/online", b"false");
        assert!(matches!(w.verdict(), Verdict::Done { .. }));
    }

    fn report(
        name: &str,
        uid: &str,
        image: &str,
        waiting: Option<(&str, &str)>,
        ready: bool,
    ) -> PodReport {
        let state = match waiting {
            Some((r, m)) => serde_json::json!({"waiting": {"reason": r, "message": m}}),
            None => serde_json::json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "status": {
                "phase": if ready { "Running" } else { "Pending" },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [{"name": "main", "state": state, "ready": ready,
                    "restartCount": 0, "image": image, "imageID": ""}]
            }
        }))
        .unwrap()
    }

    fn status_with(rev: u64, pods: Vec<PodReport>) -> Vec<u8> {
        let observed = ObservedRevision {
            device: Some(rev),
            groups: Default::default(),
        };
        DeviceStatus::new("pi-1", &observed, pods, NodeInfo::default(), vec![], 0).to_json()
    }

    fn spec(name: &str, image: &str, cmd: &str) -> Pod {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: main\n    image: {image}\n    command: [{cmd}]\n"
        );
        crate::spec::load_str(&text, "t").remove(0).unwrap()
    }

    #[test]
    fn published_pods_are_waited_for_until_they_run_or_fail() {
        const S: &str = "picolet/devices/pi-1/status";
        let mut w = Watch::new(Topics::default(), Target::Device("pi-1".into()));
        w.observe(
            S,
            &status_with(1, vec![report("web", "u1", "img:1", None, true)]),
        );
        let new = [spec("web", "img:1", "b"), spec("db", "nope:1", "a")];
        w.track(
            vec![
                ("default/db".into(), None),
                ("default/web".into(), Some(Kind::Replace)),
            ],
            &new,
        );
        w.published(2);
        // Observed, but web still runs under its old uid: not done.
        w.observe(
            S,
            &status_with(
                2,
                vec![
                    report("web", "u1", "img:1", None, true),
                    report("db", "u2", "nope:1", None, false),
                ],
            ),
        );
        let PodsVerdict::Waiting(line) = w.pods_verdict() else {
            panic!("{:?}", w.pods_verdict())
        };
        assert!(
            line.contains("pi-1: pod/default/web (the old version still runs)"),
            "{line}"
        );
        assert!(line.contains("pi-1: pod/default/db Pending 0/1"), "{line}");
        w.observe(
            S,
            &status_with(
                2,
                vec![
                    report("web", "u3", "img:1", None, true),
                    report(
                        "db",
                        "u2",
                        "nope:1",
                        Some(("ErrImagePull", "image \"nope:1\" not found")),
                        false,
                    ),
                ],
            ),
        );
        assert_eq!(
            w.pods_verdict(),
            PodsVerdict::Failed(vec![
                "device pi-1: pod/default/db: ErrImagePull: container main: image \"nope:1\" not found".into()
            ])
        );
        w.observe(
            S,
            &status_with(
                2,
                vec![
                    report("web", "u3", "img:1", None, true),
                    report("db", "u2", "nope:1", None, true),
                ],
            ),
        );
        assert_eq!(
            w.pods_verdict(),
            PodsVerdict::Ready(vec![
                "device pi-1: pod/default/db Running 1/1".into(),
                "device pi-1: pod/default/web Running 1/1".into(),
            ])
        );
    }

    #[test]
    fn an_image_change_is_seen_in_the_container_statuses() {
        const S: &str = "picolet/devices/pi-1/status";
        let mut w = Watch::new(Topics::default(), Target::Device("pi-1".into()));
        w.observe(
            S,
            &status_with(1, vec![report("web", "u1", "img:1", None, true)]),
        );
        w.track(
            vec![("default/web".into(), Some(Kind::Images))],
            &[spec("web", "img:2", "a")],
        );
        w.published(2);
        w.observe(
            S,
            &status_with(2, vec![report("web", "u1", "img:1", None, true)]),
        );
        assert!(matches!(w.pods_verdict(), PodsVerdict::Waiting(_)));
        w.observe(
            S,
            &status_with(2, vec![report("web", "u1", "img:2", None, true)]),
        );
        assert!(matches!(w.pods_verdict(), PodsVerdict::Ready(_)));
    }
}
