//! The shell of the deployment records ([`crate::fleet::deployment`]):
//! feeds the core what the desired documents and the pods do, and carries
//! out its intents (keep a `Healthy` document, re-apply it on a failure).

use crate::agent::Agent;
use crate::clock::Now;
use crate::controller::pods::{failure, settled_ok};
use crate::fleet::deployment::{Deployments, Health, Intent};
use crate::fleet::doc::{DesiredDoc, ObjectRef, PodReport};
use crate::fleet::docs::FleetDocs;
use crate::fleet::topics::Source;
use crate::lifecycle::EventType;
use crate::vecmap::VecSet;

/// The images a document's pods and workload templates name.
pub(super) fn images_of(doc: &DesiredDoc) -> Vec<String> {
    let mut out = VecSet::new();
    let mut add = |pod: &crate::spec::Pod| {
        for c in pod.all_containers() {
            out.insert(c.image.clone());
        }
    };
    for p in &doc.pods {
        add(p);
    }
    for (w, _) in &doc.workloads {
        let mut w = w.clone();
        if let Some(t) = w.template_mut() {
            add(&t.pod);
        }
    }
    out.into_iter().collect()
}

/// The images of every kept document (decoded again).
pub(super) fn kept_images(deploy: &Deployments, docs: &FleetDocs) -> Vec<String> {
    let mut out = Vec::new();
    for saved in deploy.kept_docs() {
        if let Some(d) = docs.decode(&saved.payload) {
            out.extend(images_of(&d));
        }
    }
    out
}

impl Agent {
    /// A document took effect on `source` (accepted, or its override was
    /// cleared: `cleared`).
    pub(super) fn deploy_changed(&mut self, source: &Source, cleared: bool) {
        let now = Now::read();
        let (Some(f), Some(docs)) = (self.fleet.as_mut(), self.desired.fleet()) else {
            return;
        };
        let eff = docs.in_effect(source).map(|(d, _)| (d.revision, d.rollout));
        if cleared {
            f.deploy.cleared(source, eff, now);
        } else if let Some((revision, rollout)) = eff {
            f.deploy.accepted(source, revision, rollout, now);
        }
        f.deploy_dirty = true;
    }

    /// A document of `source` was refused.
    pub(super) fn deploy_refused(&mut self, source: &Source, e: &crate::fleet::doc::StatusError) {
        if let Some(f) = self.fleet.as_mut() {
            f.deploy
                .refused(source, e.revision, &e.reason, &e.message, Now::read());
        }
    }

    /// What the pods of `source` look like: its pods and its workloads'.
    fn health(&self, source: &Source) -> Health {
        let mut h = Health {
            ready: true,
            ..Health::default()
        };
        let look = |p: &crate::lifecycle::PodView, h: &mut Health| {
            let report = PodReport::new(&p.spec, &p.uid, p.status.clone());
            let statuses = p
                .status
                .init_container_statuses
                .iter()
                .chain(&p.status.container_statuses);
            h.restarts += statuses
                .map(|c| u64::from(c.restart_count.max(0) as u32))
                .sum::<u64>();
            let key = format!("{}/{}", p.namespace(), p.name());
            // A pod on its way out for a new spec (or deletion) is not
            // this revision's: it fails nothing, and is not ready.
            if p.is_leaving() {
                h.ready = false;
                return;
            }
            if h.failure.is_none() {
                if let Some((reason, message)) = failure(&report) {
                    h.failure = Some((reason, message, key));
                }
            }
            h.ready &= settled_ok(&report);
        };
        // The document's pods: each must run the spec the plan gave the
        // lifecycle. A pod still of the old spec (not yet replaced, or its
        // new spec refused by the node: a hostPort) is not this revision's;
        // a pod the plan refused (policy, a name clash) fails it.
        let planned = self
            .desired
            .fleet()
            .map(|d| d.planned(source))
            .unwrap_or_default();
        for (key, want) in planned {
            let want = match want {
                Ok(want) => want,
                Err(e) => {
                    if h.failure.is_none() {
                        h.failure = Some((e.reason.clone(), e.message.clone(), key));
                    }
                    continue;
                }
            };
            let (ns, name) = key.split_once('/').unwrap_or(("default", &key));
            match self.node.find(ns, name) {
                Some(p) if p.spec.spec == want.spec => look(p, &mut h),
                _ => h.ready = false,
            }
        }
        // The pods of this source's workloads (a Deployment's through its
        // ReplicaSet's uid).
        let label = crate::fleet::docs::source_label(source);
        let owned: Vec<&str> = self
            .workloads
            .entries()
            .filter(|e| e.source == label)
            .map(|e| e.uid.as_str())
            .collect();
        if !owned.is_empty() {
            for p in self.node.pods() {
                let Some(r) = p.spec.metadata.owner_references.first() else {
                    continue;
                };
                let hash = p
                    .spec
                    .metadata
                    .labels
                    .get(crate::workloads::deployment::HASH_LABEL);
                let mine = owned.contains(&r.uid.as_str())
                    || hash.is_some_and(|h| {
                        owned
                            .iter()
                            .any(|u| crate::workloads::replica_set_uid(u, h) == r.uid)
                    });
                if mine {
                    look(p, &mut h);
                }
            }
        }
        h
    }

    /// Feeds the core the pods of each `Applying` source (when they may
    /// have changed) and time, and carries out its intents. Once per turn.
    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    pub(in crate::agent) fn deploy_turn(&mut self) {
        let now = Now::read();
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        let due = f.deploy.poll_timeout().is_some_and(|t| t <= now.mono_ms);
        if !f.deploy_dirty && !due {
            return;
        }
        f.deploy_dirty = false;
        let applying: Vec<Source> = f.deploy.applying().cloned().collect();
        let mut intents = Vec::new();
        for s in applying {
            let h = self.health(&s);
            let f = self.fleet.as_mut().expect("checked above");
            intents.extend(f.deploy.observe(&s, &h, now));
        }
        if let Some(f) = self.fleet.as_mut() {
            intents.extend(f.deploy.tick(now));
        }
        for i in intents {
            self.deploy_intent(i, now);
        }
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        if f.deploy.take_changed() {
            f.dirty = true;
            self.dirty = true;
            for (s, r) in f.deploy.shown() {
                log::info!(
                    "fleet: {s} revision {:?}: {} {} {}",
                    r.revision,
                    r.state.name(),
                    r.reason,
                    r.message
                );
            }
        }
    }

    fn deploy_intent(&mut self, i: Intent, now: Now) {
        let (Some(f), Some(docs)) = (self.fleet.as_mut(), self.desired.fleet_mut()) else {
            return;
        };
        match i {
            Intent::Keep(s) => {
                if let Some((_, saved)) = docs.in_effect(&s) {
                    f.deploy.keep(&s, saved);
                }
                let images = kept_images(&f.deploy, docs);
                self.disk.set_kept_images(images);
                let object = ObjectRef::desired(&s);
                self.publish_event(object, EventType::Normal, "Healthy", "revision is Healthy");
            }
            Intent::Rollback(s) => {
                let Some(kept) = f.deploy.kept(&s).cloned() else {
                    return;
                };
                let result = docs.pin(&s, &kept);
                f.deploy.rollback_done(&s, result.clone(), now);
                let message = f
                    .deploy
                    .record(&s)
                    .map(|r| r.message.clone())
                    .unwrap_or_default();
                log::warn!("fleet: {s}: {message}");
                let object = ObjectRef::desired(&s);
                if result.is_ok() {
                    self.publish_event(
                        object,
                        EventType::Warning,
                        "FailedRollbackComplete",
                        &message,
                    );
                    self.reconcile(None);
                } else {
                    self.publish_event(
                        object,
                        EventType::Warning,
                        "FailedUnableToRollback",
                        &message,
                    );
                }
            }
        }
    }
}
