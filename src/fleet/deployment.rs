//! Deployment records (issue 14, docs/fleet.md "Deployment records"): per
//! source (the device topic, each group), the state of the revision in
//! effect, its health gate and the device's own rollback. Pure: no I/O,
//! time comes in as [`Now`] (mono ms for deadlines, wall ms for `since`).
//!
//! Inputs: a document accepted ([`Deployments::accepted`]), refused
//! ([`Deployments::refused`]), an override cleared
//! ([`Deployments::cleared`]), what the pods of a source look like
//! ([`Deployments::observe`]) and time ([`Deployments::tick`]). Outputs:
//! [`Intent`]s for the agent (keep this revision's document as the last
//! `Healthy` one; re-apply the kept one) and [`Deployments::take_changed`]
//! (the records changed: save them, publish status).
//!
//! - Accepted → `Applying`. Every pod of the source Ready (or `Succeeded`),
//!   running the revision, for `verifySeconds` without a container restart
//!   → `Healthy` (a restart in the window starts it again).
//! - A pod in a hard failure state, or not `Healthy` by
//!   `healthDeadlineSeconds` → with `onFailure: Keep`, `Failed`; with
//!   `Rollback`, the last `Healthy` revision of the source is re-applied:
//!   `FailedRollbackComplete` (`rolledBackTo`), or `FailedUnableToRollback`
//!   when there is none or it cannot be applied.
//! - The controller clears an override and the group's revision is older:
//!   `RolledBack` (`rolledBackTo`).
//! - A refused document: `Rejected`, shown until the record changes again
//!   (what runs is unchanged).
//!
//! A failed revision is never tried again: its record stays until a newer
//! document is accepted on the source (the revision rules refuse the same
//! one). After a reboot (mono time went back) a deadline restarts.

use crate::clock::Now;
use crate::fleet::doc::{OnFailure, Rollout};
use crate::fleet::docs::SavedDoc;
use crate::fleet::topics::Source;
use serde::{Deserialize, Serialize};

/// A deployment state (Greengrass's names for the failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Applying,
    Healthy,
    Failed,
    RolledBack,
    Rejected,
    FailedRollbackComplete,
    FailedUnableToRollback,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Applying => "Applying",
            State::Healthy => "Healthy",
            State::Failed => "Failed",
            State::RolledBack => "RolledBack",
            State::Rejected => "Rejected",
            State::FailedRollbackComplete => "FailedRollbackComplete",
            State::FailedUnableToRollback => "FailedUnableToRollback",
        }
    }
}

/// The record of one source (also what a refusal shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `None`: a refused document whose revision could not be read.
    pub revision: Option<u64>,
    pub state: State,
    pub reason: String,
    pub message: String,
    /// `namespace/name` of the pod that failed.
    pub pod: String,
    /// Wall ms of the last change.
    pub since_ms: i64,
    pub rolled_back_to: Option<u64>,
    pub rollout: Rollout,
    /// Mono ms the revision was accepted: its deadline runs from here.
    pub started_mono: u64,
}

/// One source's record, the refusal shown instead of it, and the
/// document of its last `Healthy` revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub source: Source,
    pub record: Option<Record>,
    /// A refused document, shown instead of the record until it changes.
    pub rejected: Option<Record>,
    /// The document of the last `Healthy` revision.
    pub kept: Option<SavedDoc>,
    /// While `Applying`: the mono ms its pods were last seen all ready,
    /// and their restarts then (the verify window). Not saved.
    #[serde(skip)]
    stable: Option<(u64, u64)>,
}

/// What the state file keeps (`StateV4::deployments`). A `Vec`, not a
/// map: a map's code is large per key and value type (binary size).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentsSnap {
    pub entries: Vec<Entry>,
}

impl Entry {
    pub fn new(source: Source) -> Entry {
        Entry {
            source,
            record: None,
            rejected: None,
            kept: None,
            stable: None,
        }
    }
}

/// What the pods of a source look like now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Every pod exists, runs the revision, and is Ready or `Succeeded`.
    pub ready: bool,
    /// The sum of their containers' restart counts.
    pub restarts: u64,
    /// A pod in a hard failure state: (reason, message, `namespace/name`).
    pub failure: Option<(String, String, String)>,
}

/// What the agent is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// The revision became `Healthy`: give its document to [`Deployments::keep`].
    Keep(Source),
    /// Re-apply the kept document of the source ([`Deployments::kept`]),
    /// then call [`Deployments::rollback_done`].
    Rollback(Source),
}

/// The records (see the module doc).
#[derive(Debug, Default)]
pub struct Deployments {
    snap: DeploymentsSnap,
    changed: bool,
}

impl Deployments {
    /// Takes back the saved records; deadlines saved before a reboot
    /// (mono time later than now) restart now.
    pub fn restore(mut snap: DeploymentsSnap, now: Now) -> Deployments {
        for r in snap.entries.iter_mut().filter_map(|e| e.record.as_mut()) {
            if r.started_mono > now.mono_ms {
                r.started_mono = now.mono_ms;
            }
        }
        Deployments {
            snap,
            changed: false,
        }
    }

    pub fn snapshot(&self) -> &DeploymentsSnap {
        &self.snap
    }

    /// Whether the records changed since the last call (save, publish).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn entry(&self, source: &Source) -> Option<&Entry> {
        self.snap.entries.iter().find(|e| e.source == *source)
    }

    fn entry_mut(&mut self, source: &Source) -> &mut Entry {
        let i = match self.snap.entries.iter().position(|e| e.source == *source) {
            Some(i) => i,
            None => {
                self.snap.entries.push(Entry::new(source.clone()));
                self.snap.entries.len() - 1
            }
        };
        &mut self.snap.entries[i]
    }

    /// Each source's record, or the refusal shown instead.
    pub fn shown(&self) -> impl Iterator<Item = (&Source, &Record)> {
        self.snap.entries.iter().filter_map(|e| {
            let r = e.rejected.as_ref().or(e.record.as_ref())?;
            Some((&e.source, r))
        })
    }

    pub fn record(&self, source: &Source) -> Option<&Record> {
        self.entry(source)?.record.as_ref()
    }

    fn in_state(&self, state: State) -> impl Iterator<Item = &Source> {
        self.snap
            .entries
            .iter()
            .filter(move |e| e.record.as_ref().is_some_and(|r| r.state == state))
            .map(|e| &e.source)
    }

    /// The sources whose revision is `Applying`.
    pub fn applying(&self) -> impl Iterator<Item = &Source> {
        self.in_state(State::Applying)
    }

    /// The sources that run their kept document ([`Deployments::pinned`]).
    pub fn pinned_sources(&self) -> impl Iterator<Item = &Source> {
        self.in_state(State::FailedRollbackComplete)
    }

    /// The last `Healthy` document of `source`.
    pub fn kept(&self, source: &Source) -> Option<&SavedDoc> {
        self.entry(source)?.kept.as_ref()
    }

    pub fn kept_docs(&self) -> impl Iterator<Item = &SavedDoc> {
        self.snap.entries.iter().filter_map(|e| e.kept.as_ref())
    }

    /// Drops what is kept of sources `keep` says no.
    pub fn retain(&mut self, keep: impl Fn(&Source) -> bool) {
        let n = self.snap.entries.len();
        self.snap.entries.retain(|e| keep(&e.source));
        self.changed |= n != self.snap.entries.len();
    }

    fn set(&mut self, source: &Source, r: Record) {
        let e = self.entry_mut(source);
        e.rejected = None;
        e.stable = None;
        e.record = Some(r);
        self.changed = true;
    }

    /// A revision takes effect on `source`: `Applying`.
    pub fn accepted(&mut self, source: &Source, revision: u64, rollout: Option<Rollout>, now: Now) {
        let r = Record {
            revision: Some(revision),
            state: State::Applying,
            reason: String::new(),
            message: String::new(),
            pod: String::new(),
            since_ms: now.wall_ms,
            rolled_back_to: None,
            rollout: rollout.unwrap_or_default(),
            started_mono: now.mono_ms,
        };
        self.set(source, r);
    }

    /// The override of group `source` was cleared; `effective`: the
    /// group's document that takes effect (revision, rollout), if any.
    pub fn cleared(
        &mut self,
        source: &Source,
        effective: Option<(u64, Option<Rollout>)>,
        now: Now,
    ) {
        let Some((revision, rollout)) = effective else {
            let e = self.entry_mut(source);
            e.rejected = None;
            e.stable = None;
            if e.record.take().is_some() {
                self.changed = true;
            }
            return;
        };
        match self.record(source).map(|r| (r.revision, r.clone())) {
            Some((Some(old), _)) if old == revision => {}
            Some((Some(old), mut r)) if old > revision => {
                r.state = State::RolledBack;
                r.reason = "OverrideCleared".into();
                r.message = format!(
                    "the controller cleared this device's override: back to the group's revision {revision}"
                );
                r.pod.clear();
                r.rolled_back_to = Some(revision);
                r.since_ms = now.wall_ms;
                self.set(source, r);
            }
            _ => self.accepted(source, revision, rollout, now),
        }
    }

    /// A document of `source` was refused (what runs is unchanged).
    pub fn refused(
        &mut self,
        source: &Source,
        revision: Option<u64>,
        reason: &str,
        message: &str,
        now: Now,
    ) {
        let r = Record {
            revision,
            state: State::Rejected,
            reason: reason.to_string(),
            message: message.to_string(),
            pod: String::new(),
            since_ms: now.wall_ms,
            rolled_back_to: None,
            rollout: Rollout::default(),
            started_mono: now.mono_ms,
        };
        let e = self.entry_mut(source);
        if e.rejected
            .as_ref()
            .map(|o| (&o.revision, &o.reason, &o.message))
            != Some((&r.revision, &r.reason, &r.message))
        {
            e.rejected = Some(r);
            self.changed = true;
        }
    }

    /// What the pods of `source` look like now.
    #[must_use = "intents are to be carried out"]
    pub fn observe(&mut self, source: &Source, h: &Health, now: Now) -> Option<Intent> {
        if self.record(source)?.state != State::Applying {
            return None;
        }
        if let Some((reason, message, pod)) = &h.failure {
            return self.fail(source, reason, message, pod, now);
        }
        let e = self.entry_mut(source);
        if !h.ready {
            e.stable = None;
        } else {
            let w = e.stable.get_or_insert((now.mono_ms, h.restarts));
            if h.restarts > w.1 {
                // A restart inside the window: it starts again.
                *w = (now.mono_ms, h.restarts);
            } else {
                w.1 = h.restarts;
            }
        }
        self.check(source, now)
    }

    /// Deadlines and verify windows that are due.
    #[must_use = "intents are to be carried out"]
    pub fn tick(&mut self, now: Now) -> Vec<Intent> {
        let due: Vec<Source> = self
            .snap
            .entries
            .iter()
            .filter(|e| due(e).is_some_and(|t| t <= now.mono_ms))
            .map(|e| e.source.clone())
            .collect();
        due.iter().filter_map(|s| self.check(s, now)).collect()
    }

    /// The next mono ms [`Deployments::tick`] has work.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.snap.entries.iter().filter_map(due).min()
    }

    fn check(&mut self, source: &Source, now: Now) -> Option<Intent> {
        let e = self.entry(source)?;
        let r = e.record.as_ref()?;
        let verified = e
            .stable
            .is_some_and(|(t, _)| t + u64::from(r.rollout.verify_seconds) * 1000 <= now.mono_ms);
        if verified {
            let mut r = r.clone();
            r.state = State::Healthy;
            r.since_ms = now.wall_ms;
            self.set(source, r);
            return Some(Intent::Keep(source.clone()));
        }
        let deadline = u64::from(r.rollout.health_deadline_seconds);
        if now.mono_ms >= r.started_mono + deadline * 1000 {
            let msg = format!("not Healthy within healthDeadlineSeconds ({deadline}s)");
            return self.fail(source, "HealthDeadlineExceeded", &msg, "", now);
        }
        None
    }

    fn fail(
        &mut self,
        source: &Source,
        reason: &str,
        message: &str,
        pod: &str,
        now: Now,
    ) -> Option<Intent> {
        let mut r = self.record(source)?.clone();
        r.reason = reason.to_string();
        r.message = message.to_string();
        r.pod = pod.to_string();
        r.since_ms = now.wall_ms;
        let back = self.kept(source).map(|k| k.revision);
        let intent = match (r.rollout.on_failure, back) {
            (OnFailure::Keep, _) => {
                r.state = State::Failed;
                None
            }
            (OnFailure::Rollback, Some(to)) if Some(to) != r.revision => {
                // Until [`Deployments::rollback_done`], in this same turn.
                r.state = State::Failed;
                Some(Intent::Rollback(source.clone()))
            }
            (OnFailure::Rollback, _) => {
                r.state = State::FailedUnableToRollback;
                r.message
                    .push_str(": there is no Healthy revision of this source to return to");
                None
            }
        };
        self.set(source, r);
        intent
    }

    /// The agent re-applied the kept document (`Err`: it could not).
    pub fn rollback_done(&mut self, source: &Source, result: Result<(), String>, now: Now) {
        let Some(mut r) = self.record(source).cloned() else {
            return;
        };
        let to = self.kept(source).map_or(0, |k| k.revision);
        let failed = r.revision.unwrap_or(0);
        match result {
            Ok(()) => {
                r.state = State::FailedRollbackComplete;
                r.rolled_back_to = Some(to);
                r.message.push_str(&format!(
                    ": rolled back to revision {to}; revision {failed} is not tried again until a newer revision arrives"
                ));
            }
            Err(e) => {
                r.state = State::FailedUnableToRollback;
                r.message
                    .push_str(&format!(": re-applying revision {to} failed: {e}"));
            }
        }
        r.since_ms = now.wall_ms;
        self.set(source, r);
    }

    /// The document of the revision that became `Healthy` ([`Intent::Keep`]).
    pub fn keep(&mut self, source: &Source, doc: SavedDoc) {
        let e = self.entry_mut(source);
        if e.kept.as_ref() != Some(&doc) {
            e.kept = Some(doc);
            self.changed = true;
        }
    }

    /// Whether `source` runs its kept document instead of the accepted one
    /// (after the device's own rollback).
    pub fn pinned(&self, source: &Source) -> bool {
        self.record(source)
            .is_some_and(|r| r.state == State::FailedRollbackComplete)
    }
}

/// When an `Applying` record is due: the end of its verify window, else
/// its deadline.
fn due(e: &Entry) -> Option<u64> {
    let r = e.record.as_ref().filter(|r| r.state == State::Applying)?;
    let deadline = r.started_mono + u64::from(r.rollout.health_deadline_seconds) * 1000;
    let verified = e
        .stable
        .map(|(t, _)| t + u64::from(r.rollout.verify_seconds) * 1000);
    Some(verified.map_or(deadline, |v| v.min(deadline)))
}

#[cfg(test)]
#[path = "deployment_tests.rs"]
mod tests;
