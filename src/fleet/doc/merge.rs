//! Merging the device's and its groups' desired documents into one pod set,
//! and the per-source revision rule.

use super::DesiredDoc;
use crate::fleet::topics::Source;
use crate::spec::Pod;
use crate::vecmap::VecMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Two sources define a pod with the same namespace/name; `kept` wins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod {namespace}/{name} of {dropped} is ignored: {kept} defines it too and wins")]
pub struct Clash {
    pub namespace: String,
    pub name: String,
    pub kept: Source,
    pub dropped: Source,
}

/// A pod and the document it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedPod {
    pub source: Source,
    pub pod: Pod,
}

/// The merged pod set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Merged {
    pub pods: Vec<SourcedPod>,
    pub clashes: Vec<Clash>,
}

/// `docs`, the device's document first, the others in their order (one
/// sort for the pods and the workloads: each is a copy in the binary).
pub(crate) fn device_first<'a, 'd>(
    docs: &'a [(Source, &'d DesiredDoc)],
) -> Vec<&'a (Source, &'d DesiredDoc)> {
    let mut ordered: Vec<&(Source, &DesiredDoc)> = docs.iter().collect();
    ordered.sort_by_key(|(s, _)| !matches!(s, Source::Device(_)));
    ordered
}

/// Merges desired documents into one pod set. The device's own document
/// wins every clash; between groups, the one listed first in `docs` wins
/// (pass them in the config's group order). Every clash is reported. Pods
/// keep their document order: the device's first, then each group's.
pub fn merge(docs: &[(Source, &DesiredDoc)]) -> Merged {
    let ordered = device_first(docs);
    let mut out = Merged::default();
    let mut owner: HashMap<(&str, &str), usize> = HashMap::new();
    for (source, doc) in ordered {
        for pod in &doc.pods {
            let key = (pod.metadata.namespace.as_str(), pod.metadata.name.as_str());
            if let Some(&i) = owner.get(&key) {
                out.clashes.push(Clash {
                    namespace: key.0.to_string(),
                    name: key.1.to_string(),
                    kept: out.pods[i].source.clone(),
                    dropped: source.clone(),
                });
                continue;
            }
            owner.insert(key, out.pods.len());
            out.pods.push(SourcedPod {
                source: source.clone(),
                pod: pod.clone(),
            });
        }
    }
    out
}

/// A document at or below the last accepted revision of its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin} revision {revision} is not newer than accepted revision {last}: ignored")]
pub struct Stale {
    pub origin: Source,
    pub revision: u64,
    pub last: u64,
}

/// The last accepted revision per source: the agent's record (kept in the
/// state file) and the status document's `observedRevision`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedRevision {
    /// The device topic's; `null` until one is accepted.
    pub device: Option<u64>,
    /// Each group topic's.
    #[serde(default)]
    pub groups: VecMap<String, u64>,
}

impl ObservedRevision {
    /// The last accepted revision of `source`.
    pub fn last(&self, source: &Source) -> Option<u64> {
        match source {
            Source::Device(_) => self.device,
            Source::Group(g) => self.groups.get(g).copied(),
        }
    }

    /// `Err(Stale)` if a document of `source` at `revision` must be ignored.
    pub fn check(&self, source: &Source, revision: u64) -> Result<(), Stale> {
        match self.last(source) {
            Some(last) if revision <= last => Err(Stale {
                origin: source.clone(),
                revision,
                last,
            }),
            _ => Ok(()),
        }
    }

    /// Records `revision` as accepted for `source` (call once the document
    /// is decoded, verified and applied).
    pub fn record(&mut self, source: &Source, revision: u64) {
        match source {
            Source::Device(_) => self.device = Some(revision),
            Source::Group(g) => {
                self.groups.insert(g.clone(), revision);
            }
        }
    }

    /// [`check`](Self::check), then [`record`](Self::record) if newer.
    pub fn offer(&mut self, source: &Source, revision: u64) -> Result<(), Stale> {
        self.check(source, revision)?;
        self.record(source, revision);
        Ok(())
    }

    /// Forgets groups the device no longer belongs to.
    pub fn retain_groups(&mut self, groups: &[String]) {
        self.groups.retain(|g, _| groups.contains(g));
    }

    /// Whether `source` has reached `revision` (what `picolet apply` waits for).
    pub fn reached(&self, source: &Source, revision: u64) -> bool {
        self.last(source).is_some_and(|last| last >= revision)
    }
}
