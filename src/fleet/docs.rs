//! The fleet's desired documents as the agent holds them. Pure: no I/O, time
//! comes in as Unix ms (for the `time` of status errors only).
//!
//! Per source (the device topic, each configured group topic) it keeps the
//! last accepted document: its exact bytes (what the state file keeps, see
//! [`SavedDoc`]), its revision and its decoded
//! pods. [`FleetDocs::offer`] is the one way in:
//! - the exact bytes already held: [`Offer::Unchanged`] (the broker re-sends
//!   retained documents on every reconnect);
//! - a document that does not decode (size, format, JSON, kind, fields,
//!   pods, signature), or with a workload this device cannot run
//!   ([`DocsConfig::check_workload`]): refused, reported, nothing changes;
//! - a revision at or below the accepted one: refused as stale;
//! - otherwise accepted; the errors reported about that topic are cleared.
//!
//! [`FleetDocs::plan`] turns the accepted documents into the pods to run:
//! device and group documents merged (the device wins, then groups in config
//! order), then each pod checked against the static pods (static pods win:
//! they are local and trusted) and the node policy. A refused pod is
//! reported; the rest of the document applies. A fleet pod already running
//! under a refused name keeps running as it was: the refusal is of the new
//! spec, not of the pod.

use crate::clock::rfc3339;
use crate::fleet::doc::{
    DecodeOptions, DesiredDoc, ErrorLog, ObservedRevision, Signature, Stale, StatusError,
    decode_desired, merge,
};
use crate::fleet::policy::{self, NodePolicy};
use crate::fleet::sign::PublicKey;
use crate::fleet::topics::{Source, Topic, Topics};
use crate::spec::Pod;
use crate::vecmap::VecMap;
use crate::vecmap::VecSet;
use serde::{Deserialize, Serialize};

/// A desired document exactly as it arrived (signed envelope included),
/// re-decoded (and re-verified) on load. Part of the agent's state file
/// (`agent::statefile::StateV2::fleet_docs`): its encoding must not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDoc {
    pub revision: u64,
    pub payload: Vec<u8>,
}

/// The `sources` value of a pod from the fleet channel starts with this.
pub const FLEET_SOURCE_PREFIX: &str = "fleet:";

/// `fleet:device/<id>` or `fleet:group/<g>`: the agent's `sources` value.
pub fn source_label(source: &Source) -> String {
    match source {
        Source::Device(id) => format!("{FLEET_SOURCE_PREFIX}device/{id}"),
        Source::Group(g) => format!("{FLEET_SOURCE_PREFIX}group/{g}"),
    }
}

/// Whether a `sources` value names the fleet channel (else a manifest path).
pub fn is_fleet_source(value: &str) -> bool {
    value.starts_with(FLEET_SOURCE_PREFIX)
}

/// What [`FleetDocs`] needs from the configuration.
#[derive(Debug, Clone)]
pub struct DocsConfig {
    pub device_id: String,
    /// In config order: earlier groups win name clashes.
    pub groups: Vec<String>,
    pub topics: Topics,
    pub policy: NodePolicy,
    pub max_doc_bytes: usize,
    pub fleet_key: Option<PublicKey>,
    /// What this device checks of each workload of a new document, beyond
    /// its fields: the agent's is [`crate::sys::time::check_time_zone`]
    /// (a CronJob's `timeZone` must be in this device's tz database). An
    /// error refuses the document, its path under `workloads[i]`. Not
    /// applied to the documents restored at start: a zone gone since is
    /// the CronJob's `UnknownTimeZone` event, its pods keep running.
    pub check_workload: fn(&crate::spec::workload::Workload) -> Result<(), crate::spec::SpecError>,
}

#[derive(Debug, Clone)]
struct Accepted {
    revision: u64,
    payload: Vec<u8>,
    doc: DesiredDoc,
}

/// The outcome of [`FleetDocs::offer`].
#[derive(Debug, Clone, PartialEq)]
pub enum Offer {
    Accepted {
        revision: u64,
        signature: Signature,
    },
    /// The bytes of the accepted document again.
    Unchanged,
    /// Refused: nothing changed. The error is in [`FleetDocs::errors`].
    Refused(StatusError),
}

/// The pods the fleet wants now.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `namespace/name`, source, pod: in merge order.
    pub pods: Vec<(String, Source, Pod)>,
    /// Names whose fleet spec was refused (policy, static pod clash).
    pub refused: VecSet<String>,
    /// The workloads (source, workload, its JSON document): in merge order.
    pub workloads: Vec<(Source, crate::spec::workload::Workload, String)>,
    /// Workloads whose fleet spec was refused (policy).
    pub refused_workloads: VecSet<crate::spec::workload::WorkloadKey>,
    /// Errors not reported by the previous plan (to send as events).
    pub new_errors: Vec<(Source, StatusError)>,
}

/// The accepted desired documents and the errors about them.
#[derive(Debug)]
pub struct FleetDocs {
    cfg: DocsConfig,
    docs: VecMap<Source, Accepted>,
    /// Per group: the document of this device's override topic
    /// (`<prefix>/devices/<id>/groups/<g>/desired`), which stands in for
    /// the group's while held.
    overrides: Slots,
    /// Per source: the last `Healthy` document the device rolled back to
    /// ([`crate::fleet::deployment`]), which runs instead of the accepted
    /// one until that changes.
    pins: Slots,
    /// Refused documents, until a newer one from the same topic is accepted.
    doc_errors: ErrorLog,
    /// Refused pods and name clashes of the last plan.
    plan_errors: Vec<(Source, StatusError)>,
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace_or_default(),
        pod.metadata.name
    )
}

impl FleetDocs {
    pub fn new(cfg: DocsConfig) -> FleetDocs {
        FleetDocs {
            cfg,
            docs: VecMap::new(),
            overrides: Slots::default(),
            pins: Slots::default(),
            doc_errors: ErrorLog::default(),
            plan_errors: Vec::new(),
        }
    }

    fn options(&self) -> DecodeOptions<'_> {
        DecodeOptions {
            max_bytes: self.cfg.max_doc_bytes,
            fleet_key: self.cfg.fleet_key.as_ref(),
        }
    }

    fn configured(&self, source: &Source) -> bool {
        match source {
            Source::Device(id) => *id == self.cfg.device_id,
            Source::Group(g) => self.cfg.groups.contains(g),
        }
    }

    /// The source of an inbound topic, if it is one of this device's
    /// desired topics.
    /// The device's override topic of a group counts as the group's.
    pub fn source_of(&self, topic: &str) -> Option<Source> {
        let s = match self.cfg.topics.parse(topic)? {
            Topic::Desired(s) => s,
            Topic::Override(d, g) if d == self.cfg.device_id => Source::Group(g),
            _ => return None,
        };
        self.configured(&s).then_some(s)
    }

    /// Whether `topic` is an override topic ([`FleetDocs::source_of`]
    /// gives its group).
    pub fn is_override(&self, topic: &str) -> bool {
        matches!(self.cfg.topics.parse(topic), Some(Topic::Override(..)))
    }

    /// The desired topic of `source`.
    pub fn topic(&self, source: &Source) -> String {
        self.cfg.topics.desired(source)
    }

    fn topic_of(&self, source: &Source, over: bool) -> String {
        match source {
            Source::Group(g) if over => self.cfg.topics.group_override(&self.cfg.device_id, g),
            _ => self.topic(source),
        }
    }

    /// What `source` runs: its pin, else its override, else its document.
    fn effective(&self, source: &Source) -> Option<&Accepted> {
        self.pins
            .get(source)
            .or_else(|| self.overrides.get(source))
            .or_else(|| self.docs.get(source))
    }

    /// The document in effect for `source` (pins aside): its override,
    /// else its own.
    pub fn in_effect(&self, source: &Source) -> Option<(&DesiredDoc, SavedDoc)> {
        let a = self
            .overrides
            .get(source)
            .or_else(|| self.docs.get(source))?;
        let saved = SavedDoc {
            revision: a.revision,
            payload: a.payload.clone(),
        };
        Some((&a.doc, saved))
    }

    /// Whether group `source` has an override.
    pub fn has_override(&self, source: &Source) -> bool {
        self.overrides.contains_key(source)
    }

    /// Clears the override of `source` (an empty retained message on its
    /// override topic): the group's document takes effect again, and a
    /// pin goes. False when there was none.
    pub fn clear_override(&mut self, source: &Source) -> bool {
        if !self.overrides.remove(source) {
            return false;
        }
        self.pins.remove(source);
        let topic = self.topic_of(source, true);
        self.doc_errors.clear_topic(&topic);
        true
    }

    /// Runs `saved` (the last `Healthy` document of `source`) instead of
    /// the accepted one, until a document changes what is in effect. It is
    /// decoded and verified again.
    pub fn pin(&mut self, source: &Source, saved: &SavedDoc) -> Result<(), String> {
        let opened = decode_desired(&saved.payload, &self.options()).map_err(|e| e.to_string())?;
        let a = Accepted {
            revision: opened.doc.revision,
            payload: saved.payload.clone(),
            doc: opened.doc,
        };
        self.pins.insert(source, a);
        Ok(())
    }

    /// A stored document decoded (and verified) with today's settings.
    pub fn decode(&self, payload: &[u8]) -> Option<DesiredDoc> {
        decode_desired(payload, &self.options()).ok().map(|o| o.doc)
    }

    /// The overrides, for the state file.
    pub fn saved_overrides(&self) -> VecMap<Source, SavedDoc> {
        let mut out = VecMap::new();
        for (s, a) in &self.overrides.0 {
            out.insert(s.clone(), saved_doc(a));
        }
        out
    }

    /// Takes back the overrides of the state file (as [`FleetDocs::restore`]).
    #[must_use = "the notes say which stored documents were dropped; log them"]
    pub fn restore_overrides(
        &mut self,
        saved: VecMap<Source, SavedDoc>,
        now_wall_ms: i64,
    ) -> Vec<String> {
        self.restore_into(saved, true, now_wall_ms)
    }

    /// Takes back the documents of the state file. Documents of sources no
    /// longer configured are dropped; each stored document is decoded (and
    /// its signature checked) again with today's settings, and refused like
    /// a new one if that fails. Returns what was dropped, for the log.
    #[must_use = "the notes say which stored documents were dropped; log them"]
    pub fn restore(&mut self, saved: VecMap<Source, SavedDoc>, now_wall_ms: i64) -> Vec<String> {
        self.restore_into(saved, false, now_wall_ms)
    }

    fn restore_into(
        &mut self,
        saved: VecMap<Source, SavedDoc>,
        over: bool,
        now_wall_ms: i64,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        for (source, saved) in saved {
            if !self.configured(&source) || (over && !matches!(source, Source::Group(_))) {
                notes.push(format!(
                    "dropped the stored desired document of {source} (revision {}): no longer configured",
                    saved.revision
                ));
                continue;
            }
            match decode_desired(&saved.payload, &self.options()) {
                Ok(opened) => {
                    let accepted = Accepted {
                        revision: opened.doc.revision,
                        payload: saved.payload,
                        doc: opened.doc,
                    };
                    if over {
                        self.overrides.insert(&source, accepted);
                    } else {
                        self.docs.insert(source, accepted);
                    }
                }
                Err(e) => {
                    let topic = self.topic_of(&source, over);
                    let mut err = StatusError::for_doc(&topic, &e, now_wall_ms);
                    err.revision = Some(saved.revision);
                    err.message = format!("stored document refused: {}", err.message);
                    notes.push(format!("{topic}: {}", err.message));
                    self.doc_errors.push(err);
                }
            }
        }
        notes
    }

    /// Offers a document received from `source` (see the module doc).
    #[must_use = "an accepted document is to be reconciled, a refused one reported"]
    pub fn offer(&mut self, source: &Source, payload: &[u8], now_wall_ms: i64) -> Offer {
        self.offer_to(source, false, payload, now_wall_ms)
    }

    /// Offers a document received on the override topic of group `source`:
    /// the same rules, its revision compared with the override held.
    #[must_use = "an accepted document is to be reconciled, a refused one reported"]
    pub fn offer_override(&mut self, source: &Source, payload: &[u8], now_wall_ms: i64) -> Offer {
        self.offer_to(source, true, payload, now_wall_ms)
    }

    fn offer_to(&mut self, source: &Source, over: bool, payload: &[u8], now_wall_ms: i64) -> Offer {
        let last = if over {
            self.overrides.get(source)
        } else {
            self.docs.get(source)
        };
        if last.is_some_and(|a| a.payload == payload) {
            return Offer::Unchanged;
        }
        let topic = self.topic_of(source, over);
        let opened = match decode_desired(payload, &self.options()) {
            Ok(o) => o,
            Err(e) => {
                let err = StatusError::for_doc(&topic, &e, now_wall_ms);
                self.doc_errors.push(err.clone());
                return Offer::Refused(err);
            }
        };
        let mut errors = Vec::new();
        for (i, (w, _)) in opened.doc.workloads.iter().enumerate() {
            if let Err(e) = (self.cfg.check_workload)(w) {
                errors.push(e.under(&format!("workloads[{i}]")));
            }
        }
        if !errors.is_empty() {
            let e = crate::fleet::doc::DocError::Pods { errors, more: 0 };
            let mut err = StatusError::for_doc(&topic, &e, now_wall_ms);
            err.revision = Some(opened.doc.revision);
            self.doc_errors.push(err.clone());
            return Offer::Refused(err);
        }
        let revision = opened.doc.revision;
        if let Some(last) = last.filter(|a| revision <= a.revision) {
            let stale = Stale {
                origin: source.clone(),
                revision,
                last: last.revision,
            };
            let err = StatusError {
                topic,
                revision: Some(revision),
                pod: None,
                reason: "Stale".to_string(),
                message: stale.to_string(),
                time: rfc3339(now_wall_ms),
            };
            self.doc_errors.push(err.clone());
            return Offer::Refused(err);
        }
        let accepted = Accepted {
            revision,
            payload: payload.to_vec(),
            doc: opened.doc,
        };
        if over || !self.overrides.contains_key(source) {
            // What is in effect changes: a pin goes.
            self.pins.remove(source);
        }
        if over {
            self.overrides.insert(source, accepted);
        } else {
            self.docs.insert(source.clone(), accepted);
        }
        self.doc_errors.clear_topic(&topic);
        Offer::Accepted {
            revision,
            signature: opened.signature,
        }
    }

    /// Reports an error that is not about one document (e.g. a packet the
    /// session refused for its size).
    pub fn push_error(&mut self, e: StatusError) {
        self.doc_errors.push(e);
    }

    /// The accepted documents, for the state file.
    pub fn saved(&self) -> VecMap<Source, SavedDoc> {
        saved_of(&self.docs)
    }

    /// The last accepted revision per source: a group's override when
    /// there is one (the revision in effect, pins aside).
    pub fn observed(&self) -> ObservedRevision {
        let mut o = ObservedRevision::default();
        for s in self
            .docs
            .keys()
            .chain(self.overrides.0.iter().map(|(s, _)| s))
        {
            if let Some((d, _)) = self.in_effect(s) {
                o.record(s, d.revision);
            }
        }
        o
    }

    /// Every error to report in status: refused documents, then the
    /// refused pods and clashes of the last plan.
    pub fn errors(&self) -> Vec<StatusError> {
        let mut out = self.doc_errors.to_vec();
        out.extend(self.plan_errors.iter().map(|(_, e)| e.clone()));
        out
    }

    /// The pods of `source`'s document in effect (by `namespace/name`) as
    /// the last plan gave them to the lifecycle (hardened by the node
    /// policy), or the plan's refusal of one (policy, a name clash): what
    /// the health gate holds the running pods to.
    pub fn planned(&self, source: &Source) -> Vec<(String, Result<Pod, &StatusError>)> {
        let Some(a) = self.effective(source) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for pod in &a.doc.pods {
            let key = pod_key(pod);
            let refused = self
                .plan_errors
                .iter()
                .find(|(s, e)| s == source && e.pod.as_deref() == Some(key.as_str()));
            let want = match refused {
                Some((_, e)) => Err(e),
                None => {
                    let mut pod = pod.clone();
                    self.cfg.policy.harden(&mut pod);
                    Ok(pod)
                }
            };
            out.push((key, want));
        }
        out
    }

    /// The documents in effect: the device's first, then the groups' in
    /// config order.
    fn in_order(&self) -> Vec<&Accepted> {
        let device = Source::Device(self.cfg.device_id.clone());
        let groups = self.cfg.groups.iter().map(|g| Source::Group(g.clone()));
        std::iter::once(device)
            .chain(groups)
            .filter_map(|s| self.effective(&s))
            .collect()
    }

    /// The ConfigMaps and Secrets of the accepted documents: the device's
    /// first, then the groups' in config order; the first of a name wins.
    pub fn objects(&self) -> Vec<crate::spec::ConfigObject> {
        (self.in_order().into_iter())
            .flat_map(|a| a.doc.objects.iter().cloned())
            .collect()
    }

    /// The `registries` blocks of the documents in effect, merged in the
    /// same order: per registry host key (`mirrors[h]`, `configs[h]`) the
    /// first document's entry, whole. `None` when no document has one.
    pub fn registries(&self) -> Option<serde_json::Value> {
        let mut out: Option<serde_json::Value> = None;
        // The last one written wins: the first in order, written last.
        for a in self.in_order().into_iter().rev() {
            let Some(block) = &a.doc.registries else {
                continue;
            };
            let out = out.get_or_insert_with(|| serde_json::json!({"mirrors": {}, "configs": {}}));
            for k in ["mirrors", "configs"] {
                for (host, e) in block.value()[k].as_object().into_iter().flatten() {
                    out[k][host] = e.clone();
                }
            }
        }
        out
    }

    /// The pods to run (see the module doc). `static_owner` gives the
    /// manifest path of a static pod with that `namespace/name`.
    #[must_use = "the plan is the pods to run"]
    pub fn plan(
        &mut self,
        static_owner: &dyn Fn(&str) -> Option<String>,
        now_wall_ms: i64,
    ) -> Plan {
        let mut ordered: Vec<(Source, &DesiredDoc)> = Vec::new();
        let device = Source::Device(self.cfg.device_id.clone());
        let groups = self.cfg.groups.iter().map(|g| Source::Group(g.clone()));
        for s in std::iter::once(device).chain(groups) {
            if let Some(a) = self.effective(&s) {
                ordered.push((s, &a.doc));
            }
        }
        let merged = merge(&ordered);
        let revision = |s: &Source| self.effective(s).map(|a| a.revision);
        let mut errors: Vec<(Source, StatusError)> = Vec::new();
        let mut error = |source: &Source, pod: String, reason: &str, message: String| {
            let e = StatusError {
                topic: match source {
                    Source::Group(g) if self.overrides.contains_key(source) => {
                        self.cfg.topics.group_override(&self.cfg.device_id, g)
                    }
                    _ => self.cfg.topics.desired(source),
                },
                revision: revision(source),
                pod: Some(pod),
                reason: reason.to_string(),
                message,
                time: rfc3339(now_wall_ms),
            };
            errors.push((source.clone(), e));
        };
        for c in &merged.clashes {
            let key = format!("{}/{}", c.namespace, c.name);
            error(&c.dropped, key, "NameClash", c.to_string());
        }
        let mut plan = Plan::default();
        for sp in merged.pods {
            let key = pod_key(&sp.pod);
            if let Some(path) = static_owner(&key) {
                let msg = format!(
                    "pod {key} of {} is ignored: the static pod from {path} has the same namespace and name, and static pods win",
                    sp.source
                );
                error(&sp.source, key.clone(), "NameClash", msg);
                plan.refused.insert(key);
                continue;
            }
            if let Err(v) = self.cfg.policy.check(&sp.pod) {
                let msg = format!("pod {key} refused: {}", policy::describe(&v));
                error(&sp.source, key.clone(), "PolicyViolation", msg);
                plan.refused.insert(key);
                continue;
            }
            let mut pod = sp.pod;
            self.cfg.policy.harden(&mut pod);
            plan.pods.push((key, sp.source, pod));
        }
        // Workloads: the device's first, then the groups' in config order;
        // the first of a kind, namespace and name wins; static workloads
        // win (`static_owner` takes `Kind/namespace/name`); the node
        // policy checks and hardens each pod template.
        let mut seen: VecMap<crate::spec::workload::WorkloadKey, Source> = VecMap::new();
        for (source, doc) in crate::fleet::doc::device_first(&ordered) {
            for (w, text) in &doc.workloads {
                let key = w.key();
                let label = format!("{}/{}/{}", key.kind.name(), key.namespace, key.name);
                if let Some(kept) = seen.get(&key) {
                    let msg = format!(
                        "{key} of {source} is ignored: {kept} has the same kind, namespace and name"
                    );
                    error(source, label, "NameClash", msg);
                    continue;
                }
                seen.insert(key.clone(), source.clone());
                if let Some(path) = static_owner(&label) {
                    let msg = format!(
                        "{key} of {source} is ignored: the manifests directory's {path} defines it, and static workloads win"
                    );
                    error(source, label, "NameClash", msg);
                    continue;
                }
                let mut w = w.clone();
                if let Some(t) = w.template_mut() {
                    if let Err(v) = self.cfg.policy.check(&t.pod) {
                        let msg = format!("{key} refused: {}", policy::describe(&v));
                        error(source, label, "PolicyViolation", msg);
                        plan.refused_workloads.insert(key);
                        continue;
                    }
                    self.cfg.policy.harden(&mut t.pod);
                }
                plan.workloads.push((source.clone(), w, text.clone()));
            }
        }
        // An error reported before keeps its time (status stays unchanged).
        for (source, e) in &mut errors {
            let old = self.plan_errors.iter().find(|(_, o)| {
                (&o.topic, &o.pod, &o.reason, &o.message)
                    == (&e.topic, &e.pod, &e.reason, &e.message)
            });
            match old {
                Some((_, o)) => e.time = o.time.clone(),
                None => plan.new_errors.push((source.clone(), e.clone())),
            }
        }
        errors.truncate(ErrorLog::DEFAULT_CAP);
        self.plan_errors = errors;
        plan
    }
}

fn saved_doc(a: &Accepted) -> SavedDoc {
    SavedDoc {
        revision: a.revision,
        payload: a.payload.clone(),
    }
}

fn saved_of(docs: &VecMap<Source, Accepted>) -> VecMap<Source, SavedDoc> {
    let mut out = VecMap::new();
    for (s, a) in docs {
        out.insert(s.clone(), saved_doc(a));
    }
    out
}

/// A few documents by source, in a `Vec` (a map's removal code is large
/// per key and value type: binary size).
#[derive(Debug, Default)]
struct Slots(Vec<(Source, Accepted)>);

impl Slots {
    fn get(&self, source: &Source) -> Option<&Accepted> {
        self.0.iter().find(|(s, _)| s == source).map(|(_, a)| a)
    }

    fn contains_key(&self, source: &Source) -> bool {
        self.get(source).is_some()
    }

    /// Whether there was one.
    fn remove(&mut self, source: &Source) -> bool {
        let n = self.0.len();
        self.0.retain(|(s, _)| s != source);
        n != self.0.len()
    }

    fn insert(&mut self, source: &Source, a: Accepted) {
        self.remove(source);
        self.0.push((source.clone(), a));
    }
}

#[cfg(test)]
#[path = "docs_tests.rs"]
mod tests;
