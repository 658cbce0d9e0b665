//! The workload controllers: Deployment, DaemonSet, StatefulSet, Job and
//! CronJob on one node, as pure cores like [`crate::lifecycle`].
//!
//! [`Workloads`] holds every workload this node runs (from the manifests
//! directory, the fleet, or made by a CronJob) with its controller state.
//! The agent feeds it:
//! - [`Workloads::apply`] / [`Workloads::remove`] when the desired state
//!   changed ([`crate::desired`] decides which source owns a workload);
//! - [`Workloads::sync`] with `now`, the node's facts ([`Env`]) and what
//!   the node's pods look like ([`PodObs`], every pod that has an
//!   `ownerReference`), after each turn of the lifecycle core and at
//!   [`Workloads::poll_timeout`];
//!
//! and carries out the [`Intent`]s it returns: pods to create (with a
//! fresh uid) and to delete, and events. It touches no file, socket,
//! process or clock, and draws no randomness of its own: the 5-character
//! name suffixes come from a seeded generator kept in the state file.
//!
//! **Ownership.** Each pod a controller creates carries an
//! `ownerReference` to its workload (a Deployment's pods to their
//! ReplicaSet, `<deployment>-<pod-template-hash>`, whose uid is derived
//! from the Deployment's and the hash: [`replica_set_uid`]). `sync` hands
//! each controller the pods whose owner uid it claims; a pod that no
//! workload claims is deleted, which is how the deletion of a workload
//! cascades to its pods (Kubernetes' garbage collector, background
//! propagation). A Job made by a CronJob is a workload owned by the
//! CronJob: removing the CronJob removes its Jobs, then their pods.
//!
//! **The controllers' clock** is the mono clock plus [`EPOCH_MS`], so that
//! a time before this boot is still a number: the saved mono times of a
//! previous boot are moved to this boot's clock at [`Workloads::restore`]
//! (see [`Rebase`]).
//!
//! **Restarts.** The controller states and the pods are saved in the same
//! state file by the same save: after a kill -9 the cores continue from
//! the last save, and a pod created after it was never created (its
//! `ApplyPod` was not fed either). The agent calls `sync` only when no
//! input is queued for the lifecycle core, so a controller never sees a
//! world without the pods it just asked for.

pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod job;
pub mod statefulset;
pub mod tz;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sets;
#[cfg(test)]
mod tests_timers;

use crate::clock::Now;
use crate::lifecycle::EventType;
use crate::spec::workload::{PodTemplate, Workload, WorkloadKey, WorkloadKind, WorkloadSpec};
use crate::spec::{ObjectMeta, OwnerReference, Pod};
use crate::vecmap::VecMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What a controller sees of one of its pods.
#[derive(Debug, Clone, PartialEq)]
pub struct PodObs {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `ownerReferences[0].uid`.
    pub owner_uid: String,
    /// The pod's labels (`pod-template-hash`, `controller-revision-hash`).
    pub labels: VecMap<String, String>,
    pub phase: crate::lifecycle::Phase,
    /// The pod's `Ready` condition is true.
    pub ready: bool,
    /// Since when (mono ms) `Ready` has been true.
    pub ready_since_ms: Option<u64>,
    /// Deleted: terminating, not yet gone.
    pub terminating: bool,
    /// Sum of the containers' restart counts.
    pub restarts: u32,
    /// When the pod was created (mono ms).
    pub created_ms: u64,
    /// `status.reason` (`DeadlineExceeded`, `Evicted`, `NodeAffinity`, …).
    pub reason: String,
    /// `status.message` (`Pod was rejected: …`).
    pub message: String,
    /// The terminated containers' exit codes, by container name (the
    /// last termination of each), for a Job's `podFailurePolicy`.
    pub exit_codes: Vec<(String, i32)>,
}

/// What the node knows about itself, for the controllers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Env {
    pub node_name: String,
    /// The node's labels (config and board file), for a DaemonSet's
    /// `nodeSelector` and node affinity.
    pub node_labels: VecMap<String, String>,
    /// The wall clock is synchronized (NTP): CronJobs schedule only then.
    pub clock_synced: bool,
    /// The node default of `picolet.io/auto-rollback`.
    pub auto_rollback: bool,
    /// The CronJobs' `timeZone`s, read from the tz database
    /// ([`crate::sys::time::load_zones`]): the zone, or why it is missing.
    pub zones: VecMap<String, Result<tz::Zone, String>>,
}

/// What the agent must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Create this pod (give it a fresh uid).
    CreatePod(Box<Pod>),
    /// Delete the pod (graceful termination, as any deletion).
    DeletePod { namespace: String, name: String },
    /// Delete the directory of a StatefulSet's claim
    /// (`crate::lifecycle::container_config::claim_dir`), whose pod is gone.
    DeleteVolume { namespace: String, claim: String },
    /// An event about a workload.
    Event {
        key: WorkloadKey,
        kind: EventType,
        reason: String,
        message: String,
    },
}

/// An event as `describe` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadEvent {
    pub kind: EventType,
    pub reason: String,
    pub message: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: u32,
}

/// The controllers' clock is the mono clock plus this (2^42 ms, 139
/// years): a timer started before a reboot, with a mono time before this
/// boot's 0, keeps its age (see [`Rebase`]).
pub const EPOCH_MS: u64 = 1 << 42;
/// A saved time (not 0: none) below this is on the mono clock itself (a
/// state file of a picolet without [`EPOCH_MS`]); no time of the
/// controllers' clock goes below it (69 years before this boot's 0).
const LEGACY_MS: u64 = 1 << 41;

/// Moves the saved mono times of the controllers' states to this boot's
/// clock at a restore. The mono clock restarts at a reboot: when it is
/// behind the state file's (`saved_at`, the lifecycle's rule,
/// `crate::lifecycle::snapshot`), a saved time keeps its distance from the
/// save (a back-off, the progress deadline: what was left of them at the
/// save is left after the reboot). Job's `activeDeadlineSeconds` and
/// `ttlSecondsAfterFinished` count from `startTime` and the finish, wall
/// times (Kubernetes'): after a reboot their age is the wall clock's, when
/// that is more (the time the device was off counts, unless the wall clock
/// is behind, as it is at the boot of a device without a real-time clock).
#[derive(Debug, Clone, Copy)]
pub struct Rebase {
    /// `saved_at` and now on the controllers' clock, and now's wall time;
    /// `None`: no reboot.
    reboot: Option<(u64, u64, i64)>,
}

impl Rebase {
    /// `saved_at`: the state file's time (the lifecycle's `saved_at`).
    pub fn new(saved_at: Now, now: Now) -> Rebase {
        Rebase {
            reboot: (now.mono_ms < saved_at.mono_ms).then_some((
                saved_at.mono_ms + EPOCH_MS,
                now.mono_ms + EPOCH_MS,
                now.wall_ms,
            )),
        }
    }

    /// A saved mono time on this boot's clock (0 stays 0: none).
    pub fn mono(&self, v: u64) -> u64 {
        let v = if v != 0 && v < LEGACY_MS {
            v + EPOCH_MS
        } else {
            v
        };
        match self.reboot {
            Some((saved, now, _)) if v != 0 => (v + now).saturating_sub(saved).max(LEGACY_MS),
            _ => v,
        }
    }

    /// A saved mono time that was at the wall time `wall` (a Job's start
    /// or finish): after a reboot, the older of the two ages.
    pub fn since(&self, v: u64, wall: i64) -> u64 {
        let m = self.mono(v);
        match self.reboot {
            Some((_, now, now_wall)) => {
                let age = (now_wall - wall).max(0) as u64;
                m.min(now.saturating_sub(age).max(LEGACY_MS))
            }
            None => m,
        }
    }
}

/// Every saved mono time of a controller's state, moved by `r`.
fn rebase(state: &mut State, r: &Rebase) {
    match state {
        State::Deployment(st) => st.progress_ms = r.mono(st.progress_ms),
        State::DaemonSet(st) => st.retry_at_ms = r.mono(st.retry_at_ms),
        State::Job(st) => {
            if let Some((wall, mono)) = &mut st.start {
                *mono = r.since(*mono, *wall);
            }
            st.backoff.1 = r.mono(st.backoff.1);
            if let Some((_, wall, mono)) = &mut st.done {
                *mono = r.since(*mono, *wall);
            }
        }
        // No saved mono time: the CronJob's are wall times, its timer is
        // never more than a minute away; a StatefulSet has none.
        State::StatefulSet(_) | State::CronJob(_) => {}
    }
}

/// A pod as the controllers see it: its times on their clock.
fn on_clock(p: &PodObs) -> PodObs {
    let mut p = p.clone();
    p.created_ms += EPOCH_MS;
    p.ready_since_ms = p.ready_since_ms.map(|t| t + EPOCH_MS);
    p
}

/// The events kept per workload for `describe`.
const EVENTS_KEPT: usize = 20;

/// Each kind's saved controller state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum State {
    Deployment(deployment::State),
    DaemonSet(daemonset::State),
    StatefulSet(statefulset::State),
    Job(job::State),
    CronJob(cronjob::State),
}

impl State {
    fn new(kind: WorkloadKind) -> State {
        match kind {
            WorkloadKind::Deployment => State::Deployment(Default::default()),
            WorkloadKind::DaemonSet => State::DaemonSet(Default::default()),
            WorkloadKind::StatefulSet => State::StatefulSet(Default::default()),
            WorkloadKind::Job => State::Job(Default::default()),
            WorkloadKind::CronJob => State::CronJob(Default::default()),
        }
    }
}

/// One workload and its controller's state.
#[derive(Debug, Clone)]
pub struct Entry {
    pub workload: Workload,
    /// The workload's JSON as loaded, kept for the state file.
    pub doc: String,
    pub uid: String,
    /// Creation (wall ms): `AGE`, `creationTimestamp`.
    pub created_wall_ms: i64,
    /// The CronJob that made this Job (`None`: from a source).
    pub owner: Option<WorkloadKey>,
    /// Where the workload came from (`crate::desired::Owner::label`);
    /// empty for a CronJob's Job.
    pub source: String,
    pub state: State,
    pub events: VecDeque<WorkloadEvent>,
    /// A Deployment's or StatefulSet's failed-pod back-off (not saved: an
    /// agent restart starts it again at 1 s).
    pub backoff: daemonset::Backoff,
}

impl Entry {
    pub fn key(&self) -> WorkloadKey {
        self.workload.key()
    }
}

/// A workload as saved in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntrySnap {
    pub doc: String,
    pub uid: String,
    pub created_wall_ms: i64,
    pub owner: Option<WorkloadKey>,
    pub source: String,
    pub state: State,
}

/// What the state file keeps of the controllers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadsSnap {
    pub entries: Vec<EntrySnap>,
    pub rng: u64,
    /// [`Workloads`]' `collected`.
    pub collected: Vec<(WorkloadKey, u32)>,
}

/// A seeded generator (splitmix64) for the name suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// 5 characters of [`crate::spec::workload::SAFE_ALPHABET`], as
    /// Kubernetes' `generateName` suffixes.
    pub fn suffix(&mut self) -> String {
        let alphabet = crate::spec::workload::SAFE_ALPHABET;
        let mut n = self.next_u64();
        (0..5)
            .map(|_| {
                let c = alphabet[(n % alphabet.len() as u64) as usize] as char;
                n /= alphabet.len() as u64;
                c
            })
            .collect()
    }
}

/// The uid of a Deployment's ReplicaSet for the template `hash`: derived,
/// so that it needs no storage and is the same after a restart.
pub fn replica_set_uid(deployment_uid: &str, hash: &str) -> String {
    let a = crate::spec::workload::fnv1a32(deployment_uid.as_bytes());
    let b = crate::spec::workload::fnv1a32(hash.as_bytes());
    let c = crate::spec::workload::fnv1a32(format!("{deployment_uid}/{hash}").as_bytes());
    let d = a ^ b.rotate_left(13);
    format!(
        "{a:08x}-{:04x}-4{:03x}-8{:03x}-{b:08x}{:04x}",
        c >> 16,
        c & 0xfff,
        d & 0xfff,
        d >> 16
    )
}

/// What a controller's `sync` works with: time, the node, its workload,
/// and where its decisions go.
#[allow(missing_debug_implementations)] // borrows only; nothing to show
pub struct Cx<'a> {
    pub now: Now,
    pub env: &'a Env,
    pub meta: &'a ObjectMeta,
    pub uid: &'a str,
    pub key: &'a WorkloadKey,
    rng: &'a mut Rng,
    out: &'a mut Vec<Intent>,
    events: &'a mut VecDeque<WorkloadEvent>,
    backoff: &'a mut daemonset::Backoff,
    wake: &'a mut Option<u64>,
    /// Jobs a CronJob asks for.
    jobs: &'a mut Vec<(Workload, String)>,
    /// Jobs a CronJob deletes (by name).
    deleted_jobs: &'a mut Vec<String>,
}

impl Cx<'_> {
    /// 5 random characters for a pod's name.
    pub fn suffix(&mut self) -> String {
        self.rng.suffix()
    }

    /// Asks to be synced again at `mono_ms` at the latest.
    pub fn wake_at(&mut self, mono_ms: u64) {
        *self.wake = Some(self.wake.map_or(mono_ms, |w| w.min(mono_ms)));
    }

    /// A pod from `template`, named `name`, with `labels` added to the
    /// template's and an `ownerReference` to `owner` (kind, name, uid;
    /// default: this workload).
    pub fn pod(
        &self,
        template: &PodTemplate,
        name: String,
        labels: &[(&str, &str)],
        owner: Option<(&str, &str, &str)>,
    ) -> Pod {
        let mut pod = template.pod.clone();
        pod.metadata.name = name;
        pod.metadata.namespace = self.meta.namespace.clone();
        pod.metadata.uid.clear();
        for (k, v) in labels {
            pod.metadata.labels.insert(k.to_string(), v.to_string());
        }
        let (kind, name, uid) = owner.unwrap_or((self.key.kind.name(), &self.meta.name, self.uid));
        pod.metadata.owner_references = vec![OwnerReference {
            api_version: if kind == "ReplicaSet" {
                "apps/v1".into()
            } else {
                WorkloadKind::ALL
                    .into_iter()
                    .find(|k| k.name() == kind)
                    .map_or("v1", |k| k.api_version())
                    .into()
            },
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: true,
            block_owner_deletion: true,
        }];
        pod
    }

    /// Pods of a Deployment or a StatefulSet ended `Failed` (rejected at
    /// admission, evicted, past their deadline): they are replaced only
    /// after the failed-pod back-off (beyond Kubernetes, see
    /// docs/workloads.md), and a Warning event `BackOff` says so, once
    /// per attempt.
    pub fn pods_failed(&mut self, failed: &[&PodObs]) {
        let Some(first) = failed.first() else {
            return;
        };
        self.backoff.failed(self.now.mono_ms);
        let names: Vec<&str> = failed.iter().map(|p| p.name.as_str()).collect();
        let why = match (first.reason.as_str(), first.message.as_str()) {
            ("", "") => "Failed".to_string(),
            (r, "") | ("", r) => r.to_string(),
            (r, m) => format!("{r}: {m}"),
        };
        let msg = format!(
            "Back-off {}s before replacing failed pod {} ({why})",
            self.backoff.len_ms / 1000,
            names.join(", ")
        );
        self.event(EventType::Warning, "BackOff", msg);
    }

    /// Whether a pod may be made now (the failed-pod back-off is over); if
    /// not, the controller wakes when it is.
    pub fn may_create(&mut self) -> bool {
        let b = *self.backoff;
        b.allows(self)
    }

    /// A pod of the workload is available: the failed-pod back-off resets.
    pub fn reset_backoff(&mut self) {
        self.backoff.len_ms = 0;
    }

    pub fn create_pod(&mut self, pod: Pod) {
        self.out.push(Intent::CreatePod(Box::new(pod)));
    }

    pub fn delete_pod(&mut self, name: &str) {
        self.out.push(Intent::DeletePod {
            namespace: self.meta.namespace.clone(),
            name: name.to_string(),
        });
    }

    /// Records an event (kept for `describe`, sent to the fleet). The same
    /// reason and message again bump the count, as Kubernetes' events do.
    pub fn event(&mut self, kind: EventType, reason: &str, message: String) {
        let now = self.now.wall_ms;
        if let Some(e) = self
            .events
            .iter_mut()
            .find(|e| e.reason == reason && e.message == message)
        {
            e.count += 1;
            e.last_ms = now;
        } else {
            if self.events.len() == EVENTS_KEPT {
                self.events.pop_front();
            }
            self.events.push_back(WorkloadEvent {
                kind,
                reason: reason.into(),
                message: message.clone(),
                first_ms: now,
                last_ms: now,
                count: 1,
            });
        }
        self.out.push(Intent::Event {
            key: self.key.clone(),
            kind,
            reason: reason.into(),
            message,
        });
    }

    /// A CronJob's Job to create: `job` (its metadata set), owned by this
    /// workload.
    pub fn create_job(&mut self, job: Workload, doc: String) {
        self.jobs.push((job, doc));
    }

    /// A CronJob's Job to delete (with its pods).
    pub fn delete_job(&mut self, name: &str) {
        self.deleted_jobs.push(name.to_string());
    }

    /// This Job deletes itself (`ttlSecondsAfterFinished`); its pods go
    /// with it.
    pub fn delete_self(&mut self) {
        self.deleted_jobs.push(self.meta.name.clone());
    }
}

/// A claim of a removed StatefulSet (`persistentVolumeClaimRetentionPolicy`
/// `whenDeleted: Delete`), deleted once its pod is gone. Saved (state file
/// version 5), so that an agent killed between the two still deletes it,
/// as the garbage collector deletes an owned claim after any restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoomedClaim {
    pub namespace: String,
    pub claim: String,
    pub pod: String,
}

/// Every workload on this node (see the module doc).
#[derive(Debug, Default)]
pub struct Workloads {
    entries: VecMap<WorkloadKey, Entry>,
    rng: Rng,
    wake: Option<u64>,
    /// Something changed since [`Workloads::take_dirty`].
    dirty: bool,
    /// Claims of removed StatefulSets (`whenDeleted: Delete`) to delete
    /// once their pod is gone (kept in the state file from version 5).
    doomed_claims: Vec<DoomedClaim>,
    /// Jobs of a source that deleted themselves (`ttlSecondsAfterFinished`),
    /// with the FNV-1a of their document: the same document applied again
    /// (the manifests read again, an agent restart) does not run again; a
    /// changed one does.
    collected: VecMap<WorkloadKey, u32>,
}

impl Default for Rng {
    fn default() -> Rng {
        Rng(0x5eed)
    }
}

/// A workload's view for `get`/`describe` and the fleet's status.
#[derive(Debug, Clone)]
pub struct WorkloadView {
    pub key: WorkloadKey,
    pub uid: String,
    pub created_wall_ms: i64,
    pub source: String,
    pub owner: Option<WorkloadKey>,
    /// The object as `get -o yaml` shows it: the document with
    /// `metadata.uid`/`creationTimestamp` and `status` filled in.
    pub object: serde_json::Value,
    pub events: Vec<WorkloadEvent>,
}

impl Workloads {
    /// `seed`: random bits for the name suffixes of a fresh state.
    pub fn new(seed: u64) -> Workloads {
        Workloads {
            rng: Rng(seed),
            ..Default::default()
        }
    }

    /// Restores the saved state. An entry whose document no longer loads
    /// (a newer picolet wrote it) is dropped with its pods, and logged.
    /// `saved_at`: when the state file was saved (the lifecycle snapshot's
    /// `saved_at`); the saved mono times are moved to this boot's clock
    /// ([`Rebase`]).
    pub fn restore(snap: WorkloadsSnap, saved_at: Now, now: Now) -> Workloads {
        let r = Rebase::new(saved_at, now);
        let mut w = Workloads::new(snap.rng);
        // The timers are armed again at the first sync.
        w.wake = Some(now.mono_ms);
        for (k, hash) in snap.collected {
            w.collected.insert(k, hash);
        }
        for e in snap.entries {
            let workload = match load_doc(&e.doc) {
                Ok(w) => w,
                Err(err) => {
                    log::warn!(
                        "state file: a saved workload no longer loads ({err}); its pods are deleted"
                    );
                    continue;
                }
            };
            let key = workload.key();
            if !state_fits(&workload, &e.state) {
                log::warn!("state file: {key}: saved state of another kind; starting afresh");
            }
            let mut state = if state_fits(&workload, &e.state) {
                e.state
            } else {
                State::new(key.kind)
            };
            rebase(&mut state, &r);
            w.entries.insert(
                key,
                Entry {
                    workload,
                    doc: e.doc,
                    uid: e.uid,
                    created_wall_ms: e.created_wall_ms,
                    owner: e.owner,
                    source: e.source,
                    state,
                    events: VecDeque::new(),
                    backoff: Default::default(),
                },
            );
        }
        w
    }

    /// The claims waiting for their pod to go (saved beside the snapshot:
    /// state file version 5).
    pub fn doomed_claims(&self) -> &[DoomedClaim] {
        &self.doomed_claims
    }

    /// Restores the saved [`Workloads::doomed_claims`]; the next `sync`
    /// deletes those whose pod is gone.
    pub fn restore_doomed_claims(&mut self, claims: Vec<DoomedClaim>) {
        if !claims.is_empty() {
            self.wake = Some(0);
        }
        self.doomed_claims = claims;
    }

    pub fn snapshot(&self) -> WorkloadsSnap {
        WorkloadsSnap {
            entries: self
                .entries
                .values()
                .map(|e| EntrySnap {
                    doc: e.doc.clone(),
                    uid: e.uid.clone(),
                    created_wall_ms: e.created_wall_ms,
                    owner: e.owner.clone(),
                    source: e.source.clone(),
                    state: e.state.clone(),
                })
                .collect(),
            rng: self.rng.0,
            collected: self
                .collected
                .iter()
                .map(|(k, h)| (k.clone(), *h))
                .collect(),
        }
    }

    /// The saved sources (`WorkloadKey` → `Owner::label`) of the
    /// workloads from a source, for [`crate::desired::Desired`].
    pub fn sources(&self) -> VecMap<WorkloadKey, String> {
        // Inserted, not collected: `collect` into a map sorts, a copy of
        // the sort per item type (binary size).
        let mut out = VecMap::new();
        for (k, e) in self.entries.iter().filter(|(_, e)| e.owner.is_none()) {
            out.insert(k.clone(), e.source.clone());
        }
        out
    }

    /// The desired state wants `workload` (from `source`): added, or its
    /// spec updated (the controller state is kept). `doc`: its JSON for
    /// the state file; `fresh_uid`: used when it is new and names no
    /// `metadata.uid`.
    ///
    /// `metadata.uid` is honoured as a Pod's: a new workload takes it
    /// (unless another workload has it: a manifest copied from `get -o
    /// yaml` gets a uid of its own, silently), and a different one for an existing
    /// workload is another object: the old one goes with its pods (as a
    /// delete and a create), the new one starts afresh.
    pub fn apply(
        &mut self,
        workload: Workload,
        doc: String,
        source: String,
        fresh_uid: String,
        now: Now,
    ) {
        let key = workload.key();
        let hash = crate::spec::workload::fnv1a32(doc.as_bytes());
        match self.collected.get(&key) {
            Some(h) if *h == hash => return, // ran, and collected: not again
            Some(_) => {
                self.collected.remove(&key);
            }
            None => {}
        }
        let given = workload.metadata.uid.as_str();
        let taken = self
            .entries
            .iter()
            .any(|(k, e)| e.uid == given && *k != key);
        let uid = if given.is_empty() || taken {
            fresh_uid
        } else {
            given.to_string()
        };
        if self
            .entries
            .get(&key)
            .is_some_and(|e| !given.is_empty() && !taken && e.uid != given)
        {
            log::info!("{key}: another uid, {given}: replaced");
            self.remove(&key, now);
        }
        self.dirty = true;
        self.wake = Some(now.mono_ms);
        match self.entries.get_mut(&key) {
            Some(e) => {
                e.workload = workload;
                e.doc = doc;
                e.source = source;
                e.owner = None;
            }
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        workload,
                        doc,
                        uid,
                        created_wall_ms: now.wall_ms,
                        owner: None,
                        source,
                        state: State::new(key.kind),
                        events: VecDeque::new(),
                        backoff: Default::default(),
                    },
                );
            }
        }
    }

    /// The desired state no longer wants the workload: it goes, and its
    /// pods (and a CronJob's Jobs) with it at the next `sync`.
    pub fn remove(&mut self, key: &WorkloadKey, now: Now) -> bool {
        if self.collected.remove(key).is_some() {
            self.dirty = true;
        }
        let gone = self.entries.remove(key);
        if let Some(Entry {
            workload:
                Workload {
                    spec: WorkloadSpec::StatefulSet(s),
                    ..
                },
            state: State::StatefulSet(st),
            ..
        }) = &gone
        {
            if s.delete_claims_when_deleted {
                for o in &st.claimed {
                    for c in statefulset::claim_names(s, &key.name, *o) {
                        self.doomed_claims.push(DoomedClaim {
                            namespace: key.namespace.clone(),
                            claim: c,
                            pod: format!("{}-{o}", key.name),
                        });
                    }
                }
            }
        }
        let removed = gone.is_some();
        if removed {
            self.remove_children(key);
            self.dirty = true;
            self.wake = Some(now.mono_ms);
        }
        removed
    }

    fn remove_children(&mut self, owner: &WorkloadKey) {
        let children: Vec<WorkloadKey> = self
            .entries
            .iter()
            .filter(|(_, e)| e.owner.as_ref() == Some(owner))
            .map(|(k, _)| k.clone())
            .collect();
        for c in children {
            self.entries.remove(&c);
            self.remove_children(&c);
        }
    }

    pub fn get(&self, key: &WorkloadKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No workload, and no claim of a removed StatefulSet waiting for its
    /// pod to go: `sync` has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.doomed_claims.is_empty()
    }

    /// When `sync` must run again at the latest (mono ms).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.wake
    }

    /// Whether the state changed since the last call (the agent then
    /// saves the state file).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Runs every controller on the pods it owns; deletes the pods that no
    /// workload owns. `pods`: every pod of the node with an owner
    /// reference.
    #[must_use = "the intents are to be carried out"]
    pub fn sync(&mut self, now: Now, env: &Env, pods: &[PodObs]) -> Vec<Intent> {
        let now = Now {
            mono_ms: now.mono_ms + EPOCH_MS,
            ..now
        };
        let mut out = Vec::new();
        let mut wake = None;
        let doomed = self.doomed_claims.len();
        self.doomed_claims.retain(|d| {
            let here = pods
                .iter()
                .any(|p| p.namespace == d.namespace && p.name == d.pod);
            if !here {
                out.push(Intent::DeleteVolume {
                    namespace: d.namespace.clone(),
                    claim: d.claim.clone(),
                });
            }
            here
        });
        if self.doomed_claims.len() != doomed {
            self.dirty = true;
        }
        // Which workload claims which owner uid.
        let mut claims: VecMap<String, WorkloadKey> = VecMap::new();
        for (k, e) in self.entries.iter() {
            claims.insert(e.uid.clone(), k.clone());
            if let State::Deployment(st) = &e.state {
                for h in deployment::owned_hashes(st) {
                    claims.insert(replica_set_uid(&e.uid, h), k.clone());
                }
            }
        }
        let mut by_owner: VecMap<WorkloadKey, Vec<PodObs>> = VecMap::new();
        for p in pods {
            match claims.get(&p.owner_uid) {
                Some(k) => by_owner.entry_or_default(k.clone()).push(on_clock(p)),
                // Nobody owns it: the garbage collector's cascade.
                None if !p.terminating => out.push(Intent::DeletePod {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                }),
                None => {}
            }
        }
        let keys: Vec<WorkloadKey> = self.entries.keys().cloned().collect();
        let mut new_jobs = Vec::new();
        let mut gone_jobs = Vec::new();
        for key in keys {
            // A CronJob's Jobs as they are now: Jobs sort before CronJobs,
            // so a Job that finished in this sync is seen finished.
            let children: Vec<cronjob::JobObs> = match key.kind {
                WorkloadKind::CronJob => self
                    .entries
                    .values()
                    .filter_map(|c| match &c.state {
                        State::Job(st) if c.owner.as_ref() == Some(&key) => {
                            Some(cronjob::JobObs::of(c, st))
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            let before = e.state.clone();
            let owned = by_owner.remove(&key).unwrap_or_default();
            let mut jobs = Vec::new();
            let mut deleted_jobs = Vec::new();
            let mut cx = Cx {
                now,
                env,
                meta: &e.workload.metadata,
                uid: &e.uid,
                key: &key,
                rng: &mut self.rng,
                out: &mut out,
                events: &mut e.events,
                backoff: &mut e.backoff,
                wake: &mut wake,
                jobs: &mut jobs,
                deleted_jobs: &mut deleted_jobs,
            };
            match (&e.workload.spec, &mut e.state) {
                (WorkloadSpec::Deployment(s), State::Deployment(st)) => {
                    deployment::sync(&mut cx, s, st, &owned)
                }
                (WorkloadSpec::DaemonSet(s), State::DaemonSet(st)) => {
                    daemonset::sync(&mut cx, s, st, &owned)
                }
                (WorkloadSpec::StatefulSet(s), State::StatefulSet(st)) => {
                    statefulset::sync(&mut cx, s, st, &owned)
                }
                (WorkloadSpec::Job(s), State::Job(st)) => job::sync(&mut cx, s, st, &owned),
                (WorkloadSpec::CronJob(s), State::CronJob(st)) => {
                    cronjob::sync(&mut cx, s, st, &children)
                }
                _ => {}
            }
            if e.state != before {
                self.dirty = true;
            }
            for (job, doc) in jobs {
                new_jobs.push((key.clone(), job, doc));
            }
            for name in deleted_jobs {
                gone_jobs.push(WorkloadKey {
                    kind: WorkloadKind::Job,
                    namespace: key.namespace.clone(),
                    name,
                });
            }
        }
        for k in gone_jobs {
            // A Job of a source that deletes itself is remembered.
            if let Some(e) = self.entries.get(&k).filter(|e| e.owner.is_none()) {
                let hash = crate::spec::workload::fnv1a32(e.doc.as_bytes());
                self.remove(&k, now);
                self.collected.insert(k, hash);
                wake = Some(now.mono_ms);
                continue;
            }
            self.remove(&k, now);
            // Their pods are collected at once.
            wake = Some(now.mono_ms);
        }
        for (owner, job, doc) in new_jobs {
            let key = job.key();
            if self.entries.contains_key(&key) {
                continue;
            }
            let uid = uid_from(&mut self.rng);
            self.entries.insert(
                key.clone(),
                Entry {
                    workload: job,
                    doc,
                    uid,
                    created_wall_ms: now.wall_ms,
                    owner: Some(owner),
                    source: String::new(),
                    state: State::new(WorkloadKind::Job),
                    events: VecDeque::new(),
                    backoff: Default::default(),
                },
            );
            self.dirty = true;
            // The new Job runs at once.
            wake = Some(now.mono_ms);
        }
        self.wake = wake.map(|w| w.saturating_sub(EPOCH_MS));
        out
    }

    /// A workload as `get`/`describe` show it; `pods`: the node's owned
    /// pods, as for [`Workloads::sync`].
    pub fn view(&self, key: &WorkloadKey, pods: &[PodObs], now: Now) -> Option<WorkloadView> {
        let e = self.entries.get(key)?;
        let owned: Vec<PodObs> = pods
            .iter()
            .filter(|p| self.claims(e, &p.owner_uid))
            .map(on_clock)
            .collect();
        let now = Now {
            mono_ms: now.mono_ms + EPOCH_MS,
            ..now
        };
        let status = match (&e.workload.spec, &e.state) {
            (WorkloadSpec::Deployment(s), State::Deployment(st)) => {
                deployment::status(s, st, &owned, now)
            }
            (WorkloadSpec::DaemonSet(s), State::DaemonSet(st)) => {
                daemonset::status(s, st, &owned, now)
            }
            (WorkloadSpec::StatefulSet(s), State::StatefulSet(st)) => {
                statefulset::status(s, st, &owned, now)
            }
            (WorkloadSpec::Job(s), State::Job(st)) => job::status(s, st, &owned, now),
            (WorkloadSpec::CronJob(s), State::CronJob(st)) => {
                let jobs: Vec<cronjob::JobObs> = self
                    .children(key)
                    .into_iter()
                    .filter_map(|c| match &c.state {
                        State::Job(js) => Some(cronjob::JobObs::of(c, js)),
                        _ => None,
                    })
                    .collect();
                cronjob::status(s, st, &jobs, now)
            }
            _ => serde_json::Value::Null,
        };
        let mut object: serde_json::Value =
            serde_json::from_str(&e.doc).unwrap_or(serde_json::Value::Null);
        if let Some(m) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.insert("namespace".into(), key.namespace.clone().into());
            m.insert("uid".into(), e.uid.clone().into());
            m.insert(
                "creationTimestamp".into(),
                crate::clock::rfc3339(e.created_wall_ms).into(),
            );
            if let Some(o) = &e.owner {
                m.insert(
                    "ownerReferences".into(),
                    serde_json::json!([{
                        "apiVersion": o.kind.api_version(), "kind": o.kind.name(),
                        "name": o.name, "uid": self.entries.get(o).map_or("", |p| &p.uid),
                        "controller": true, "blockOwnerDeletion": true,
                    }]),
                );
            }
        }
        if let Some(m) = object.as_object_mut() {
            m.insert("status".into(), status);
        }
        if let State::Deployment(st) = &e.state {
            deployment::annotate(&mut object, st);
        }
        Some(WorkloadView {
            key: key.clone(),
            uid: e.uid.clone(),
            created_wall_ms: e.created_wall_ms,
            source: e.source.clone(),
            owner: e.owner.clone(),
            object,
            events: e.events.iter().cloned().collect(),
        })
    }

    /// The names of a workload's pods, sorted.
    pub fn pods_of(&self, key: &WorkloadKey, pods: &[PodObs]) -> Vec<String> {
        let Some(e) = self.entries.get(key) else {
            return Vec::new();
        };
        let mut v: Vec<String> = pods
            .iter()
            .filter(|p| self.claims(e, &p.owner_uid))
            .map(|p| p.name.clone())
            .collect();
        v.sort();
        v
    }

    fn claims(&self, e: &Entry, owner_uid: &str) -> bool {
        e.uid == owner_uid
            || matches!(&e.state, State::Deployment(st)
                if deployment::owned_hashes(st).any(|h| replica_set_uid(&e.uid, h) == owner_uid))
    }

    /// The Jobs a CronJob owns, newest last (by creation).
    pub fn children(&self, owner: &WorkloadKey) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| e.owner.as_ref() == Some(owner))
            .collect();
        v.sort_by_key(|e| e.created_wall_ms);
        v
    }
}

fn uid_from(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

fn state_fits(w: &Workload, s: &State) -> bool {
    matches!(
        (&w.spec, s),
        (WorkloadSpec::Deployment(_), State::Deployment(_))
            | (WorkloadSpec::DaemonSet(_), State::DaemonSet(_))
            | (WorkloadSpec::StatefulSet(_), State::StatefulSet(_))
            | (WorkloadSpec::Job(_), State::Job(_))
            | (WorkloadSpec::CronJob(_), State::CronJob(_))
    )
}

/// Loads a saved workload document (JSON).
pub fn load_doc(doc: &str) -> Result<Workload, String> {
    let v: serde_json::Value = serde_json::from_str(doc).map_err(|e| e.to_string())?;
    crate::spec::workload::workload_from_value(v).map_err(|e| e.to_string())
}
