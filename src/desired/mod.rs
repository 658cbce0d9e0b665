//! The desired state: which source owns each pod, and what should run.
//! Pure: no I/O, no clock (time comes in as Unix ms, for the `time` of the
//! fleet's status errors only), no randomness (the agent gives each applied
//! pod its fresh uid).
//!
//! Two kinds of source want pods, keyed by the typed [`Owner`]:
//! - **static** manifests ([`Owner::Static`], the manifest path): the
//!   manifests directory, in path order then document order; a name defined
//!   twice belongs to the first file;
//! - the **fleet** channel ([`Owner::Fleet`] with its
//!   [`Source`]): the device document and the group documents, held (with
//!   their revisions and refusals) by the [`FleetDocs`] this core owns, and
//!   merged by [`FleetDocs::plan`]: the device wins, then groups in config
//!   order.
//!
//! Static pods win over fleet pods of the same `namespace/name`: they are
//! local and trusted. The fleet pod is refused (reported in status) and
//! comes back when the static pod goes.
//!
//! [`Desired::reconcile`] is the one reconcile path. It is called when the
//! manifests were read again (with the new static pods) and when the fleet
//! documents changed (without); it returns the [`Change`]s to feed to the
//! lifecycle core, in order: the static pods first (so that admission,
//! `maxPods`, takes them first), then the fleet's.
//! - A static pod no longer in any file is deleted (only when the manifests
//!   were read: a fleet change leaves static pods alone).
//! - A fleet pod no longer wanted by any document is deleted, unless its
//!   new spec was refused (policy, a static pod's name): a pod already
//!   running under a refused name keeps running as it was.
//! - Every wanted pod is applied again (the lifecycle core ignores an
//!   unchanged spec).
//!
//! Without a fleet ([`Desired::new`] with `None`), every fleet pod left
//! from an earlier configuration is deleted at the first reconcile.

#[cfg(test)]
mod tests;

use crate::fleet::doc::StatusError;
use crate::fleet::docs::{FLEET_SOURCE_PREFIX, FleetDocs, source_label};
use crate::fleet::topics::Source;
use crate::spec::Pod;
use crate::spec::workload::{Workload, WorkloadKey};
use crate::vecmap::VecMap;
use crate::vecmap::VecSet;
use std::path::PathBuf;

/// Who wants a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A file of the manifests directory.
    Static(String),
    /// A fleet desired document.
    Fleet(Source),
}

impl Owner {
    /// The state file's form (`StateV2::sources`): the manifest path, or
    /// `fleet:device/<id>` / `fleet:group/<g>`.
    pub fn label(&self) -> String {
        match self {
            Owner::Static(path) => path.clone(),
            Owner::Fleet(source) => source_label(source),
        }
    }

    /// Reads [`Owner::label`] back. A `fleet:` value of no known form
    /// (never written by picolet) is taken as a device's: no document
    /// wants it, so the first reconcile deletes its pod, as before.
    pub fn from_label(label: &str) -> Owner {
        let Some(rest) = label.strip_prefix(FLEET_SOURCE_PREFIX) else {
            return Owner::Static(label.to_string());
        };
        if let Some(g) = rest.strip_prefix("group/") {
            return Owner::Fleet(Source::Group(g.to_string()));
        }
        let id = rest.strip_prefix("device/").unwrap_or(rest);
        Owner::Fleet(Source::Device(id.to_string()))
    }

    /// The manifest path of a static pod.
    pub fn static_path(&self) -> Option<&str> {
        match self {
            Owner::Static(path) => Some(path),
            Owner::Fleet(_) => None,
        }
    }
}

/// A pod of the manifests directory.
#[derive(Debug, Clone)]
pub struct StaticPod {
    /// `namespace/name`.
    pub key: String,
    /// The file that defines it.
    pub path: String,
    pub pod: Pod,
}

/// The static pods of a scan of the manifests directory, in path order
/// then document order; a name defined twice belongs to the first file
/// (the manifests' loader reports the clash on the later one).
pub fn static_pods(files: &VecMap<PathBuf, Vec<Pod>>) -> Vec<StaticPod> {
    let mut seen = VecSet::new();
    let mut out = Vec::new();
    for (path, pods) in files {
        for pod in pods {
            let key = format!("{}/{}", pod.metadata.namespace, pod.metadata.name);
            if seen.insert(key.clone()) {
                out.push(StaticPod {
                    key,
                    path: path.display().to_string(),
                    pod: pod.clone(),
                });
            }
        }
    }
    out
}

/// A workload of the manifests directory.
#[derive(Debug, Clone)]
pub struct StaticWorkload {
    pub workload: Workload,
    /// Its document, as JSON text.
    pub doc: String,
    /// The file that defines it.
    pub path: String,
}

/// One thing for the lifecycle core (pods) or the workload controllers
/// (workloads) to do.
#[derive(Debug, Clone)]
pub enum Change {
    Apply(Box<Pod>),
    /// Create or update a workload (`doc`: its JSON text).
    ApplyWorkload {
        workload: Box<Workload>,
        doc: String,
        owner: Owner,
    },
    /// The workload's owner no longer wants it.
    DeleteWorkload {
        key: WorkloadKey,
        owner: Owner,
    },
    /// The pod's owner no longer wants it (`owner`: who did).
    Delete {
        namespace: String,
        name: String,
        owner: Owner,
    },
}

/// What [`Desired::reconcile`] decided.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// In order: static deletions, static pods, fleet deletions, fleet pods.
    pub changes: Vec<Change>,
    /// Fleet errors not reported by the previous reconcile (refused pods,
    /// name clashes), to send as events.
    pub new_errors: Vec<(Source, StatusError)>,
}

/// The desired state (see the module doc).
#[derive(Debug)]
pub struct Desired {
    /// `namespace/name` → the source of the pod last applied.
    owners: VecMap<String, Owner>,
    /// The source of each workload last applied.
    workload_owners: VecMap<WorkloadKey, Owner>,
    /// The manifests directory's workloads, when it was read again and
    /// the next reconcile has not taken them yet.
    static_workloads: Option<Vec<StaticWorkload>>,
    fleet: Option<FleetDocs>,
}

impl Desired {
    /// `saved`: the state file's `sources` ([`Owner::label`] values);
    /// `fleet`: the fleet's documents, when a broker is configured.
    pub fn new(saved: VecMap<String, String>, fleet: Option<FleetDocs>) -> Desired {
        let mut owners = VecMap::new();
        for (k, v) in saved {
            owners.insert(k, Owner::from_label(&v));
        }
        Desired {
            owners,
            workload_owners: VecMap::new(),
            static_workloads: None,
            fleet,
        }
    }

    /// The saved sources of the workloads (the controllers' state file
    /// keeps them: [`crate::workloads::Workloads::sources`]).
    pub fn restore_workload_owners(&mut self, saved: VecMap<WorkloadKey, String>) {
        // Inserted, not collected: `collect` into a map sorts, a copy of
        // the sort per item type (binary size).
        self.workload_owners.clear();
        for (k, v) in saved {
            self.workload_owners.insert(k, Owner::from_label(&v));
        }
    }

    /// The manifests directory was read again: its workloads, for the
    /// next [`Desired::reconcile`] (called with the static pods).
    pub fn set_static_workloads(&mut self, workloads: Vec<StaticWorkload>) {
        self.static_workloads = Some(workloads);
    }

    /// Which source owns the pod `namespace/name`.
    pub fn owner(&self, key: &str) -> Option<&Owner> {
        self.owners.get(key)
    }

    /// How many pods have an owner.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// The fleet's documents (`None`: no broker configured).
    pub fn fleet(&self) -> Option<&FleetDocs> {
        self.fleet.as_ref()
    }

    /// The fleet's documents, to offer a new one.
    pub fn fleet_mut(&mut self) -> Option<&mut FleetDocs> {
        self.fleet.as_mut()
    }

    /// The state file's `sources` for these `namespace/name` keys.
    pub fn saved<'a>(&self, keys: impl Iterator<Item = &'a str>) -> VecMap<String, String> {
        keys.filter_map(|k| self.owners.get(k).map(|o| (k.to_string(), o.label())))
            .collect()
    }

    /// The one reconcile path (see the module doc). `statics`: the static
    /// pods when the manifests were read again, `None` when only the fleet
    /// changed.
    #[must_use = "the changes are to be fed to the lifecycle, the new errors reported"]
    pub fn reconcile(&mut self, statics: Option<Vec<StaticPod>>, now_wall_ms: i64) -> Reconciled {
        let mut out = Reconciled::default();
        if let Some(statics) = statics {
            let wanted: VecSet<&str> = statics.iter().map(|s| s.key.as_str()).collect();
            let gone: Vec<String> = self
                .owners
                .iter()
                .filter(|(k, o)| matches!(o, Owner::Static(_)) && !wanted.contains(k.as_str()))
                .map(|(k, _)| k.clone())
                .collect();
            self.delete(gone, &mut out.changes);
            for s in statics {
                self.owners.insert(s.key, Owner::Static(s.path));
                out.changes.push(Change::Apply(Box::new(s.pod)));
            }
        }
        let owners = &self.owners;
        let workload_owners = &self.workload_owners;
        let static_workloads = self.static_workloads.as_ref();
        // `namespace/name` of a pod, or `Kind/namespace/name` of a
        // workload (names never hold a `/`).
        let static_owner = |key: &str| {
            let mut parts = key.splitn(3, '/');
            let (a, b, c) = (parts.next(), parts.next(), parts.next());
            if let (Some(kind), Some(ns), Some(name)) = (a, b, c) {
                // The manifests just read, else the workloads applied.
                if let Some(list) = static_workloads {
                    return list
                        .iter()
                        .find(|s| {
                            let k = s.workload.key();
                            (k.kind.name(), k.namespace.as_str(), k.name.as_str())
                                == (kind, ns, name)
                        })
                        .map(|s| s.path.clone());
                }
                return workload_owners
                    .iter()
                    .find(|(k, _)| {
                        (k.kind.name(), k.namespace.as_str(), k.name.as_str()) == (kind, ns, name)
                    })
                    .and_then(|(_, o)| o.static_path())
                    .map(str::to_string);
            }
            owners
                .get(key)
                .and_then(Owner::static_path)
                .map(str::to_string)
        };
        let plan = match self.fleet.as_mut() {
            Some(f) => f.plan(&static_owner, now_wall_ms),
            None => Default::default(),
        };
        out.new_errors = plan.new_errors;
        let wanted: VecSet<&str> = plan.pods.iter().map(|(k, _, _)| k.as_str()).collect();
        let gone: Vec<String> = self
            .owners
            .iter()
            .filter(|(k, o)| {
                matches!(o, Owner::Fleet(_))
                    && !wanted.contains(k.as_str())
                    && !plan.refused.contains(*k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.delete(gone, &mut out.changes);
        for (key, source, pod) in plan.pods {
            self.owners.insert(key, Owner::Fleet(source));
            out.changes.push(Change::Apply(Box::new(pod)));
        }
        self.reconcile_workloads(plan.workloads, &plan.refused_workloads, &mut out.changes);
        out
    }

    /// Workloads, by the pods' rules: static ones win, a static workload no
    /// longer in any file goes (only when the manifests were read), a fleet
    /// one no document wants goes unless its new spec was refused.
    fn reconcile_workloads(
        &mut self,
        fleet: Vec<(Source, Workload, String)>,
        refused: &VecSet<WorkloadKey>,
        changes: &mut Vec<Change>,
    ) {
        let mut applies = Vec::new();
        if let Some(statics) = self.static_workloads.take() {
            let mut wanted = VecSet::new();
            for s in &statics {
                wanted.insert(s.workload.key());
            }
            let gone: Vec<WorkloadKey> = self
                .workload_owners
                .iter()
                .filter(|(k, o)| matches!(o, Owner::Static(_)) && !wanted.contains(*k))
                .map(|(k, _)| k.clone())
                .collect();
            self.delete_workloads(gone, changes);
            for s in statics {
                let owner = Owner::Static(s.path);
                self.workload_owners.insert(s.workload.key(), owner.clone());
                applies.push(Change::ApplyWorkload {
                    workload: Box::new(s.workload),
                    doc: s.doc,
                    owner,
                });
            }
        }
        let mut wanted = VecSet::new();
        for (source, w, doc) in fleet {
            let key = w.key();
            if matches!(self.workload_owners.get(&key), Some(Owner::Static(_))) {
                continue; // static workloads win (the fleet plan reported it)
            }
            wanted.insert(key.clone());
            let owner = Owner::Fleet(source);
            self.workload_owners.insert(key, owner.clone());
            applies.push(Change::ApplyWorkload {
                workload: Box::new(w),
                doc,
                owner,
            });
        }
        let gone: Vec<WorkloadKey> = self
            .workload_owners
            .iter()
            .filter(|(k, o)| {
                matches!(o, Owner::Fleet(_)) && !wanted.contains(*k) && !refused.contains(*k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.delete_workloads(gone, changes);
        changes.extend(applies);
    }

    fn delete_workloads(&mut self, keys: Vec<WorkloadKey>, changes: &mut Vec<Change>) {
        for key in keys {
            if let Some(owner) = self.workload_owners.remove(&key) {
                changes.push(Change::DeleteWorkload { key, owner });
            }
        }
    }

    /// Which source owns a workload.
    pub fn workload_owner(&self, key: &WorkloadKey) -> Option<&Owner> {
        self.workload_owners.get(key)
    }

    fn delete(&mut self, keys: Vec<String>, changes: &mut Vec<Change>) {
        for key in keys {
            let Some(owner) = self.owners.remove(&key) else {
                continue;
            };
            if let Some((ns, name)) = key.split_once('/') {
                changes.push(Change::Delete {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    owner,
                });
            }
        }
    }
}
