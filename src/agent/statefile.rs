//! What the agent keeps in `state.bin` (encoded by [`crate::store`]).
//!
//! Saved structs are kept apart from live objects. The enum variant is the
//! format version: only append variants, and migrate on load
//! ([`StateFile::into_latest`]).
//!
//! Old versions hold frozen copies of the types they were written with
//! ([`v1`]); only the latest uses today's types. `statefile/golden/` holds
//! one file per version, written once from a representative state; the
//! tests below load each and check that the latest still encodes to the
//! same bytes.

pub mod v1;

pub use crate::fleet::docs::SavedDoc;
use crate::fleet::topics::Source;
use crate::lifecycle::NodeSnapshot;
use crate::vecmap::VecMap;
use serde::{Deserialize, Serialize};

/// The state file, versioned by variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StateFile {
    V1(StateV1),
    V2(StateV2),
    V3(StateV3),
    V4(StateV4),
    V5(StateV5),
}

/// Version 1: pods, shims and where each desired pod came from.
/// Frozen: its types are [`v1`]'s copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateV1 {
    /// The lifecycle core's saved state (pods, containers, back-off).
    pub node: v1::NodeSnapshot,
    /// Per pod uid: the shim's PID and start time, to detect PID reuse.
    pub sandboxes: VecMap<String, v1::SandboxRecord>,
    /// Per `namespace/name`: where the desired pod came from.
    pub sources: VecMap<String, String>,
}

/// Version 2: version 1 plus the last accepted fleet desired documents, so
/// that a device rebooted without a broker runs what it last knew. It uses
/// today's types, as versions 3 to 5 do (freeze them before changing them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateV2 {
    pub node: NodeSnapshot,
    pub sandboxes: VecMap<String, SandboxRecord>,
    /// Per `namespace/name`: the manifest path, or `fleet:device/<id>` /
    /// `fleet:group/<g>` for pods from the fleet channel.
    pub sources: VecMap<String, String>,
    /// The last accepted desired document per source, as received.
    pub fleet_docs: VecMap<Source, SavedDoc>,
}

/// Version 3: version 2 plus the workload controllers' state (issue 13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateV3 {
    pub v2: StateV2,
    pub workloads: crate::workloads::WorkloadsSnap,
}

/// Version 4: version 3 plus the fleet's per-device group overrides and
/// the deployment records with the last `Healthy` document of each source
/// (issue 14).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateV4 {
    pub v3: StateV3,
    /// Per group: the accepted document of this device's override topic.
    pub overrides: VecMap<Source, SavedDoc>,
    pub deployments: crate::fleet::deployment::DeploymentsSnap,
}

/// Version 5: version 4 plus the claims of removed StatefulSets waiting
/// for their pod to go ([`crate::workloads::DoomedClaim`]). The latest
/// version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateV5 {
    pub v4: StateV4,
    pub doomed_claims: Vec<crate::workloads::DoomedClaim>,
}

/// A running shim as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub pid: i32,
    pub start_time: u64,
}

impl StateFile {
    /// Migrates any version to the latest one.
    pub fn into_latest(self) -> StateV5 {
        let v4 = match self {
            StateFile::V5(v5) => return v5,
            StateFile::V4(v4) => v4,
            older => StateV4 {
                v3: older.into_v3(),
                overrides: VecMap::new(),
                deployments: Default::default(),
            },
        };
        StateV5 {
            v4,
            doomed_claims: Vec::new(),
        }
    }

    fn into_v3(self) -> StateV3 {
        let v2 = match self {
            StateFile::V1(v1) => {
                // Inserted, not collected (binary size: a collect into a
                // map is a sort per item and iterator type).
                let mut sandboxes = VecMap::new();
                for (uid, r) in v1.sandboxes {
                    sandboxes.insert(uid, r.into());
                }
                StateV2 {
                    node: v1.node.into(),
                    sandboxes,
                    sources: v1.sources,
                    fleet_docs: VecMap::new(),
                }
            }
            StateFile::V2(v2) => v2,
            StateFile::V3(v3) => return v3,
            StateFile::V4(v4) => return v4.v3,
            StateFile::V5(v5) => return v5.v4.v3,
        };
        StateV3 {
            v2,
            workloads: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        SandboxRecord, SavedDoc, StateFile, StateV1, StateV2, StateV3, StateV4, StateV5, v1,
    };
    use crate::clock::Now;
    use crate::fleet::topics::Source;
    use crate::lifecycle::NodeSnapshot;
    use crate::lifecycle::{
        BackoffSnap, ContainerSnapshot, InstanceSnap, PhaseSnap, PodSnapshot, SandboxSnap,
        StepSnap, StopWhySnap, StoppingSnap, TermSnap,
    };
    use crate::vecmap::VecMap;
    use std::path::PathBuf;

    fn v1() -> StateFile {
        let mut sources = VecMap::new();
        sources.insert("default/web".to_string(), "/m/web.yaml".to_string());
        let mut sandboxes = VecMap::new();
        sandboxes.insert(
            "u1".to_string(),
            v1::SandboxRecord {
                pid: 42,
                start_time: 7,
            },
        );
        StateFile::V1(StateV1 {
            node: v1::NodeSnapshot {
                saved_at: v1::Now {
                    mono_ms: 0,
                    wall_ms: 0,
                },
                host_ip: None,
                pods: Vec::new(),
            },
            sandboxes,
            sources,
        })
    }

    #[test]
    fn a_version_1_state_file_loads_as_version_2_without_fleet_documents() {
        let bytes = crate::store::encode(&v1()).unwrap();
        let loaded: StateFile = crate::store::decode(&bytes).unwrap();
        let v2 = loaded.into_latest().v4.v3.v2;
        assert_eq!(v2.sources["default/web"], "/m/web.yaml");
        assert_eq!(v2.sandboxes["u1"].pid, 42);
        assert!(v2.fleet_docs.is_empty());
    }

    #[test]
    fn version_2_keeps_the_raw_documents_per_source() {
        let mut v2 = v1().into_latest().v4.v3.v2;
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
            .into_latest()
            .v4
            .v3
            .v2;
        let doc = &back.fleet_docs[&Source::Group("kitchen".into())];
        assert_eq!(
            (doc.revision, doc.payload.as_slice()),
            (3, &b"{\"x\":1}"[..])
        );
    }

    fn term(code: i32, signal: Option<i32>) -> TermSnap {
        TermSnap {
            exit_code: code,
            signal,
            reason: "Error".into(),
            message: "exit status 3".into(),
            started_at_ms: Some(1_700_000_000_000),
            finished_at_ms: None,
            finished_mono: 9_000,
            container_id: "picolet://u-web/app/4".into(),
        }
    }

    fn backoff(ms: u64) -> BackoffSnap {
        BackoffSnap {
            backoff_ms: ms,
            last_update_mono: 8_000,
        }
    }

    /// A container in `step`, with every optional field set.
    fn container(name: &str, step: StepSnap) -> ContainerSnapshot {
        ContainerSnapshot {
            name: name.into(),
            next_instance: 5,
            restart_count: 4,
            current: Some(InstanceSnap {
                instance: 4,
                image: "registry.local/app:2".into(),
                image_id: "sha256:ab".into(),
                started_at_ms: -1,
                started_mono: 7_500,
                epoch: 2,
                term: Some(term(3, None)),
            }),
            last_term: Some(term(137, Some(9))),
            step,
            reason: Some(("CrashLoopBackOff".into(), "back-off 40s".into())),
            backoff: Some(backoff(40_000)),
            image_backoff: Some(("busybox:1".into(), backoff(10_000))),
            force_restart: true,
        }
    }

    /// The state the golden files were written from: every variant of
    /// every saved enum, and every optional field both set and unset.
    fn representative() -> StateV2 {
        let steps = [
            StepSnap::Idle,
            StepSnap::BackOff { until_mono: 11 },
            StepSnap::Pulling {
                image: "busybox:1".into(),
            },
            StepSnap::PullBackOff {
                retry_at_mono: 12,
                show_at_mono: Some(13),
            },
            StepSnap::Starting {
                instance: 4,
                image: "busybox:1".into(),
                image_id: "sha256:cd".into(),
            },
            StepSnap::StartRetry { at_mono: 14 },
            StepSnap::Running,
        ];
        let sandboxes = [
            SandboxSnap::None,
            SandboxSnap::Creating,
            SandboxSnap::Ready,
            SandboxSnap::BackOff { retry_at_mono: 15 },
            SandboxSnap::Removing,
            SandboxSnap::Removed,
        ];
        let whys = [
            None,
            Some(StopWhySnap::Delete),
            Some(StopWhySnap::Replace),
            Some(StopWhySnap::Terminal),
        ];
        let terminals = [None, Some(PhaseSnap::Succeeded), Some(PhaseSnap::Failed)];
        let pods = sandboxes
            .iter()
            .enumerate()
            .map(|(i, &sandbox)| PodSnapshot {
                uid: format!("u-{i}"),
                pod_json: format!(r#"{{"metadata":{{"name":"p{i}"}},"spec":{{}}}}"#),
                sandbox,
                sandbox_epoch: i as u64,
                sandbox_backoff: (i % 2 == 0).then(|| backoff(1_000)),
                pod_ip: (i % 2 == 1).then(|| format!("10.88.0.{i}")),
                start_time_ms: 1_700_000_000_000 + i as i64,
                init_done: i as u32,
                stopping: whys[i % whys.len()].map(|why| StoppingSnap {
                    why,
                    deadline_mono: 30_000,
                }),
                replacement: (i == 2).then(|| ("u-new".into(), "{}".into())),
                terminal: terminals[i % terminals.len()],
                conditions: vec![("Ready".into(), i % 2 == 0, 1_700_000_000_123)],
                init_containers: vec![ContainerSnapshot {
                    current: None,
                    last_term: None,
                    reason: None,
                    backoff: None,
                    image_backoff: None,
                    force_restart: false,
                    ..container("init", StepSnap::Idle)
                }],
                containers: vec![container("app", steps[i % steps.len()].clone())],
            })
            .chain([PodSnapshot {
                uid: "u-last".into(),
                pod_json: "{}".into(),
                sandbox: SandboxSnap::Ready,
                sandbox_epoch: 0,
                sandbox_backoff: None,
                pod_ip: None,
                start_time_ms: 0,
                init_done: 0,
                stopping: None,
                replacement: None,
                terminal: None,
                conditions: Vec::new(),
                init_containers: Vec::new(),
                containers: vec![container("app", StepSnap::Running)],
            }])
            .collect();
        let mut sandboxes = VecMap::new();
        sandboxes.insert(
            "u-2".to_string(),
            SandboxRecord {
                pid: 4242,
                start_time: 123_456,
            },
        );
        let mut sources = VecMap::new();
        sources.insert("default/p0".to_string(), "/etc/picolet/pods/p.yaml".into());
        sources.insert("edge/p1".to_string(), "fleet:device/dev-1".into());
        let mut fleet_docs = VecMap::new();
        fleet_docs.insert(
            Source::Device("dev-1".into()),
            SavedDoc {
                revision: 7,
                payload: b"{\"revision\":7}".to_vec(),
            },
        );
        fleet_docs.insert(
            Source::Group("kitchen".into()),
            SavedDoc {
                revision: 3,
                payload: vec![0, 1, 2, 255],
            },
        );
        StateV2 {
            node: NodeSnapshot {
                saved_at: Now {
                    mono_ms: 123_456_789,
                    wall_ms: 1_700_000_000_999,
                },
                host_ip: Some("192.168.1.20".into()),
                pods,
            },
            sandboxes,
            sources,
            fleet_docs,
        }
    }

    fn golden(version: u32) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/agent/statefile/golden")
            .join(format!("v{version}.bin"))
    }

    /// The representative state as version 1 would have saved it: no
    /// fleet documents, and the node re-read as [`v1`]'s frozen copy. Only
    /// the writer uses this (the frozen and today's types had the same
    /// encoding when the golden files were written).
    fn representative_v1() -> StateFile {
        let v2 = representative();
        let node = postcard::from_bytes(&postcard::to_stdvec(&v2.node).unwrap()).unwrap();
        let sandboxes = postcard::from_bytes(&postcard::to_stdvec(&v2.sandboxes).unwrap()).unwrap();
        StateFile::V1(StateV1 {
            node,
            sandboxes,
            sources: v2.sources,
        })
    }

    /// Writes the golden files. Run once per new version:
    /// `PICOLET_WRITE_GOLDEN=1 cargo test --lib statefile::tests::write_golden_files`.
    /// Never rewrites a file that exists: a golden file is a version's
    /// definition.
    #[test]
    fn write_golden_files() {
        if std::env::var_os("PICOLET_WRITE_GOLDEN").is_none() {
            return;
        }
        let files = [
            (1, representative_v1()),
            (2, StateFile::V2(representative())),
            (3, StateFile::V3(representative_v3())),
            (4, StateFile::V4(representative_v4())),
            (5, StateFile::V5(representative_v5())),
        ];
        for (version, state) in files {
            let path = golden(version);
            if !path.exists() {
                std::fs::write(&path, crate::store::encode(&state).unwrap()).unwrap();
            }
        }
    }

    fn load_golden(version: u32) -> (Vec<u8>, StateFile) {
        let bytes = std::fs::read(golden(version)).unwrap();
        let state = crate::store::decode::<StateFile>(&bytes)
            .unwrap_or_else(|e| panic!("golden v{version} no longer loads: {e}"));
        (bytes, state)
    }

    #[test]
    fn the_golden_version_1_file_loads_and_migrates_to_the_latest() {
        let (bytes, state) = load_golden(1);
        assert!(matches!(state, StateFile::V1(_)), "{state:?}");
        // The frozen types read and write it byte for byte.
        assert_eq!(crate::store::encode(&state).unwrap(), bytes);
        let want = StateV2 {
            fleet_docs: VecMap::new(),
            ..representative()
        };
        assert_eq!(state.into_latest().v4.v3.v2, want);
    }

    #[test]
    fn the_golden_version_2_file_loads_and_the_latest_still_encodes_the_same() {
        let (bytes, state) = load_golden(2);
        assert_eq!(state, StateFile::V2(representative()));
        assert_eq!(
            crate::store::encode(&StateFile::V2(representative())).unwrap(),
            bytes,
            "today's types no longer encode as version 2: freeze version 2's types \
             (as statefile/v1.rs does for version 1), point StateV2 at them, and \
             append a version that uses today's types, with its own golden file"
        );
    }

    /// Version 3: the representative version 2 plus one workload of each
    /// kind (a Deployment with every optional field of its state set).
    fn representative_v3() -> StateV3 {
        use crate::workloads::{EntrySnap, State, WorkloadsSnap, deployment};
        let doc = |kind: &str, api: &str| {
            format!(r#"{{"apiVersion":"{api}","kind":"{kind}","metadata":{{"name":"w"}}}}"#)
        };
        let cond = |reason: &str| {
            Some(Box::new(deployment::Cond {
                reason: reason.into(),
                message: "m".into(),
                update_ms: 1_700_000_000_000,
                transition_ms: 1_700_000_000_001,
            }))
        };
        let d = deployment::State {
            revisions: vec![deployment::Revision {
                number: 2,
                hash: "5d8f9c7b6".into(),
                template: "{}".into(),
                change_cause: "image busybox:1".into(),
                replicas: 3,
                healthy: true,
            }],
            over: Some(Box::new(deployment::Override {
                source: "7c9d5f4b8".into(),
                hash: "5d8f9c7b6".into(),
                template: "{}".into(),
                change_cause: String::new(),
                auto: true,
            })),
            progressing: cond("RolledBack"),
            available: cond("MinimumReplicasAvailable"),
            seen: deployment::Counts {
                replicas: 1,
                updated: 2,
                ready: 3,
                available: 4,
            },
            progress_ms: 123_456,
            desired: 3,
        };
        let entries = [
            ("Deployment", "apps/v1", State::Deployment(d)),
            ("DaemonSet", "apps/v1", State::DaemonSet(Default::default())),
            (
                "StatefulSet",
                "apps/v1",
                State::StatefulSet(Default::default()),
            ),
            ("Job", "batch/v1", State::Job(Default::default())),
            ("CronJob", "batch/v1", State::CronJob(Default::default())),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (kind, api, state))| EntrySnap {
            doc: doc(kind, api),
            uid: format!("w-{i}"),
            created_wall_ms: 1_700_000_000_000 + i as i64,
            owner: (kind == "Job").then(|| crate::spec::workload::WorkloadKey {
                kind: crate::spec::workload::WorkloadKind::CronJob,
                namespace: "default".into(),
                name: "w".into(),
            }),
            source: if kind == "Job" {
                String::new()
            } else {
                "/etc/picolet/pods/w.yaml".into()
            },
            state,
        })
        .collect();
        StateV3 {
            v2: representative(),
            workloads: WorkloadsSnap {
                entries,
                rng: 0x5eed,
                collected: vec![(
                    crate::spec::workload::WorkloadKey {
                        kind: crate::spec::workload::WorkloadKind::Job,
                        namespace: "default".into(),
                        name: "done".into(),
                    },
                    0xdead_beef,
                )],
            },
        }
    }

    #[test]
    fn the_golden_version_2_file_loads_as_version_3_without_workloads() {
        let (_, state) = load_golden(2);
        let v3 = state.into_latest().v4.v3;
        assert_eq!(v3.v2, representative());
        assert!(v3.workloads.entries.is_empty());
    }

    #[test]
    fn the_golden_version_3_file_loads_and_the_latest_still_encodes_the_same() {
        let (bytes, state) = load_golden(3);
        assert_eq!(state, StateFile::V3(representative_v3()));
        assert_eq!(
            crate::store::encode(&StateFile::V3(representative_v3())).unwrap(),
            bytes,
            "today's types no longer encode as version 3: freeze version 3's types, \
             point StateV3 at them, and append a V4 with its own golden file"
        );
    }

    /// Version 4: the representative version 3 plus an override and a
    /// record in every state (every optional field set and unset).
    fn representative_v4() -> StateV4 {
        use crate::fleet::deployment::{DeploymentsSnap, Entry, Record, State};
        use crate::fleet::doc::{OnFailure, Rollout};
        let mut overrides = VecMap::new();
        overrides.insert(
            Source::Group("kitchen".into()),
            SavedDoc {
                revision: 9,
                payload: b"{\"revision\":9}".to_vec(),
            },
        );
        let states = [
            State::Applying,
            State::Healthy,
            State::Failed,
            State::RolledBack,
            State::Rejected,
            State::FailedRollbackComplete,
            State::FailedUnableToRollback,
        ];
        let mut snap = DeploymentsSnap::default();
        for (i, state) in states.into_iter().enumerate() {
            let record = Record {
                revision: (i != 4).then_some(i as u64 + 1),
                state,
                reason: "HealthDeadlineExceeded".into(),
                message: "m".into(),
                pod: if i % 2 == 0 {
                    "default/web".into()
                } else {
                    String::new()
                },
                since_ms: 1_700_000_000_000 + i as i64,
                rolled_back_to: (i == 5).then_some(2),
                rollout: Rollout {
                    health_deadline_seconds: 300,
                    verify_seconds: 30,
                    on_failure: if i % 2 == 0 {
                        OnFailure::Keep
                    } else {
                        OnFailure::Rollback
                    },
                },
                started_mono: 123_456 + i as u64,
            };
            let mut e = Entry::new(Source::Group(format!("g{i}")));
            if state == State::Rejected {
                e.rejected = Some(record);
            } else {
                e.record = Some(record);
            }
            snap.entries.push(e);
        }
        let mut e = Entry::new(Source::Device("dev-1".into()));
        e.kept = Some(SavedDoc {
            revision: 6,
            payload: b"{\"revision\":6}".to_vec(),
        });
        snap.entries.push(e);
        StateV4 {
            v3: representative_v3(),
            overrides,
            deployments: snap,
        }
    }

    #[test]
    fn the_golden_version_3_file_loads_as_version_4_without_records() {
        let (_, state) = load_golden(3);
        let v4 = state.into_latest().v4;
        assert_eq!(v4.v3, representative_v3());
        assert!(v4.overrides.is_empty());
        assert_eq!(v4.deployments, Default::default());
    }

    #[test]
    fn the_golden_version_4_file_loads_and_the_latest_still_encodes_the_same() {
        let (bytes, state) = load_golden(4);
        assert_eq!(state, StateFile::V4(representative_v4()));
        assert_eq!(
            crate::store::encode(&StateFile::V4(representative_v4())).unwrap(),
            bytes,
            "today's types no longer encode as version 4: freeze version 4's types, \
             point StateV4 at them, and append a V5 with its own golden file"
        );
    }

    /// Version 5: the representative version 4 plus a claim waiting for its
    /// pod.
    fn representative_v5() -> StateV5 {
        StateV5 {
            v4: representative_v4(),
            doomed_claims: vec![crate::workloads::DoomedClaim {
                namespace: "default".into(),
                claim: "data-db-1".into(),
                pod: "db-1".into(),
            }],
        }
    }

    #[test]
    fn the_golden_version_4_file_loads_as_version_5_without_doomed_claims() {
        let (_, state) = load_golden(4);
        let v5 = state.into_latest();
        assert_eq!(v5.v4, representative_v4());
        assert!(v5.doomed_claims.is_empty());
    }

    #[test]
    fn the_golden_version_5_file_loads_and_the_latest_still_encodes_the_same() {
        let (bytes, state) = load_golden(5);
        assert_eq!(state, StateFile::V5(representative_v5()));
        assert_eq!(
            crate::store::encode(&StateFile::V5(representative_v5())).unwrap(),
            bytes,
            "today's types no longer encode as version 5: freeze version 5's types, \
             point StateV5 at them, and append a V6 with its own golden file"
        );
    }

    /// A field added to today's snapshot must not change what version 1
    /// means: version 1 holds [`v1`]'s copies, not today's types.
    #[test]
    fn version_1_holds_frozen_types() {
        let StateFile::V1(s) = representative_v1() else {
            unreachable!()
        };
        let _: &v1::NodeSnapshot = &s.node;
        let _: Option<&v1::SandboxRecord> = s.sandboxes.values().next();
    }
}
