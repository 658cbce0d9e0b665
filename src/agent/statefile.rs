//! What the agent keeps in `state.bin` (encoded by [`crate::store`]).
//!
//! Saved structs are kept apart from live objects. The enum variant is the
//! format version: only append variants, and migrate on load
//! ([`StateFile::into_latest`]).

pub use crate::fleet::docs::SavedDoc;
use crate::fleet::topics::Source;
use crate::lifecycle::NodeSnapshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The state file, versioned by variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StateFile {
    V1(StateV1),
    V2(StateV2),
}

/// Version 1: pods, shims and where each desired pod came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateV1 {
    /// The lifecycle core's saved state (pods, containers, back-off).
    pub node: NodeSnapshot,
    /// Per pod uid: the shim's PID and start time, to detect PID reuse.
    pub sandboxes: BTreeMap<String, SandboxRecord>,
    /// Per `namespace/name`: where the desired pod came from.
    pub sources: BTreeMap<String, String>,
}

/// Version 2: version 1 plus the last accepted fleet desired documents, so
/// that a device rebooted without a broker runs what it last knew.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateV2 {
    pub node: NodeSnapshot,
    pub sandboxes: BTreeMap<String, SandboxRecord>,
    /// Per `namespace/name`: the manifest path, or `fleet:device/<id>` /
    /// `fleet:group/<g>` for pods from the fleet channel.
    pub sources: BTreeMap<String, String>,
    /// The last accepted desired document per source, as received.
    pub fleet_docs: BTreeMap<Source, SavedDoc>,
}

/// A running shim as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub pid: i32,
    pub start_time: u64,
}

impl StateFile {
    /// Migrates any version to the latest one.
    pub fn into_latest(self) -> StateV2 {
        match self {
            StateFile::V1(v1) => StateV2 {
                node: v1.node,
                sandboxes: v1.sandboxes,
                sources: v1.sources,
                fleet_docs: BTreeMap::new(),
            },
            StateFile::V2(v2) => v2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Node;

    fn v1() -> StateFile {
        let mut sources = BTreeMap::new();
        sources.insert("default/web".to_string(), "/m/web.yaml".to_string());
        let mut sandboxes = BTreeMap::new();
        sandboxes.insert(
            "u1".to_string(),
            SandboxRecord {
                pid: 42,
                start_time: 7,
            },
        );
        StateFile::V1(StateV1 {
            node: Node::new("n".into()).snapshot(),
            sandboxes,
            sources,
        })
    }

    #[test]
    fn a_version_1_state_file_loads_as_version_2_without_fleet_documents() {
        let bytes = crate::store::encode(&v1()).unwrap();
        let loaded: StateFile = crate::store::decode(&bytes).unwrap();
        let v2 = loaded.into_latest();
        assert_eq!(v2.sources["default/web"], "/m/web.yaml");
        assert_eq!(v2.sandboxes["u1"].pid, 42);
        assert!(v2.fleet_docs.is_empty());
    }

    #[test]
    fn version_2_keeps_the_raw_documents_per_source() {
        let mut v2 = v1().into_latest();
        v2.fleet_docs.insert(
            Source::Group("kitchen".into()),
            SavedDoc {
                revision: 3,
                payload: b"{\"x\":1}".to_vec(),
            },
        );
        let bytes = crate::store::encode(&StateFile::V2(v2)).unwrap();
        let back = crate::store::decode::<StateFile>(&bytes)
            .unwrap()
            .into_latest();
        let doc = &back.fleet_docs[&Source::Group("kitchen".into())];
        assert_eq!(
            (doc.revision, doc.payload.as_slice()),
            (3, &b"{\"x\":1}"[..])
        );
    }
}
