//! What the agent keeps in `state.bin` (encoded by [`crate::store`]).
//!
//! Saved structs are kept apart from live objects. The enum variant is the
//! format version: only append variants, and migrate on load.

use crate::lifecycle::NodeSnapshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The state file, versioned by variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StateFile {
    V1(StateV1),
}

/// Version 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateV1 {
    /// The lifecycle core's saved state (pods, containers, back-off).
    pub node: NodeSnapshot,
    /// Per pod uid: the shim's PID and start time, to detect PID reuse.
    pub sandboxes: BTreeMap<String, SandboxRecord>,
    /// Per `namespace/name`: where the desired pod came from.
    pub sources: BTreeMap<String, String>,
}

/// A running shim as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub pid: i32,
    pub start_time: u64,
}
