//! The decisions of a staged rollout (`picolet rollout -f … --group G`),
//! pure: the [`Progress`] (what is stored retained at
//! `<prefix>/rollouts/<G>`), the devices' reports and the time (wall ms:
//! the progress outlives the controller) go in; [`Action`]s come out, which
//! the shell ([`super`]) carries out in order. No I/O.
//!
//! - The targets are fixed at the start, sorted by device id. The batches
//!   are the first `canary` devices, then runs of `batchSize`.
//! - A batch is published (its devices `Updating`, an override each), then
//!   each device becomes `Healthy` (its `deployments` entry of `group/G`
//!   reports revision R `Healthy`) or `Failed`: the entry reports a failed
//!   state for R (`Failed`, `FailedRollbackComplete`,
//!   `FailedUnableToRollback`, `Rejected`, `RolledBack`), or it is not
//!   Healthy by `healthDeadlineSeconds` + [`MARGIN_MS`] after its
//!   override was published (reason `Offline` when the device is offline
//!   then, else `NotHealthyInTime`).
//! - When the failures reach `failureLimit`: `RollingBack` (abort
//!   requested: `Aborting`); every device updated so far is cleared
//!   (`Reverting`) and becomes `Reverted` once it no longer reports R
//!   (`NotReverted` if it does not within the same deadline): then
//!   `RolledBack` (or `Aborted`).
//! - When the last batch is done: the group document, then clear every
//!   override, then `Complete`.
//!
//! The progress is saved before overrides are published or cleared, and
//! after the group document (so a controller killed at any point resumes
//! with [`resume`], which publishes or clears again what may not have
//! gone out: both are idempotent).

use crate::vecmap::VecMap;
use serde_json::{Value, json};

/// Grace after a device's health deadline before the controller counts it
/// failed (the device decides first; this covers status delays and
/// silent devices).
pub const MARGIN_MS: i64 = 30_000;

/// `--batch` / `--max-failures`: a number, or a percentage of the targets
/// (rounded up, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    N(usize),
    Percent(usize),
}

impl Count {
    pub fn parse(flag: &str, s: &str) -> Result<Count, String> {
        let bad = || format!("--{flag} {s:?}: expected a number or a percentage (10%)");
        let c = match s.strip_suffix('%') {
            Some(p) => Count::Percent(p.parse().map_err(|_| bad())?),
            None => Count::N(s.parse().map_err(|_| bad())?),
        };
        match c {
            Count::N(0) | Count::Percent(0) => Err(format!("--{flag} {s}: must be at least 1")),
            Count::Percent(p) if p > 100 => Err(format!("--{flag} {s}: at most 100%")),
            c => Ok(c),
        }
    }

    /// The count for `total` targets.
    pub fn of(self, total: usize) -> usize {
        match self {
            Count::N(n) => n,
            Count::Percent(p) => (p * total).div_ceil(100).max(1),
        }
    }
}

/// The options a rollout was started with (all of them: a resume must
/// give the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub canary: usize,
    pub batch: String,
    pub max_failures: String,
    pub verify_seconds: u64,
    pub health_deadline_seconds: u64,
    pub selector: Vec<String>,
}

/// Where the rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// `rollout abort` asked; the controller rolls back.
    AbortRequested,
    RollingBack,
    Aborting,
    Complete,
    RolledBack,
    Aborted,
}

impl Phase {
    /// A finished rollout (a new one may start).
    pub fn done(self) -> bool {
        matches!(self, Phase::Complete | Phase::RolledBack | Phase::Aborted)
    }
}

/// One target's state in the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevState {
    Pending,
    Updating,
    Healthy,
    Failed,
    Reverting,
    Reverted,
    NotReverted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub state: DevState,
    /// Wall ms of its last publish or clear.
    pub since: i64,
    pub reason: String,
}

/// The progress, stored retained at `<prefix>/rollouts/<G>` (JSON, see
/// [`Progress::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub group: String,
    pub revision: u64,
    /// The group's revision before (what devices return to).
    pub previous: u64,
    /// sha256 of the unsigned document.
    pub digest: String,
    pub phase: Phase,
    /// Batches started (the canary is the first when `canary` > 0).
    pub batch: usize,
    /// RFC 3339.
    pub started: String,
    pub options: Options,
    pub batch_size: usize,
    pub failure_limit: usize,
    /// The targets, sorted by id.
    pub devices: Vec<Device>,
}

/// What a device reports about group G (its retained status and online
/// flag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub online: Option<bool>,
    /// `observedRevision.groups.G`.
    pub observed: Option<u64>,
    /// Its `deployments` entry of `group/G`: revision, state.
    pub deployment: Option<(u64, String)>,
    /// That entry's reason or message (shown only).
    pub why: String,
    /// `node.labels` (for `--selector`).
    pub labels: VecMap<String, String>,
}

/// What the shell does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish the document to this device's override topic (retained).
    Publish(String),
    /// Clear this device's override (an empty retained message).
    Clear(String),
    /// Publish the document to the group's topic (retained).
    PublishGroup,
    /// Store the progress.
    Save,
    Done(Phase),
}

/// The device states that count a revision failed.
pub const FAILED_STATES: &[&str] = &[
    "Failed",
    "FailedRollbackComplete",
    "FailedUnableToRollback",
    "Rejected",
    "RolledBack",
];

const PHASES: [Phase; 7] = [
    Phase::Running,
    Phase::AbortRequested,
    Phase::RollingBack,
    Phase::Aborting,
    Phase::Complete,
    Phase::RolledBack,
    Phase::Aborted,
];

const STATES: [DevState; 7] = [
    DevState::Pending,
    DevState::Updating,
    DevState::Healthy,
    DevState::Failed,
    DevState::Reverting,
    DevState::Reverted,
    DevState::NotReverted,
];

/// The variant of `all` whose name (its `Debug` form) is `v`.
fn named<T: std::fmt::Debug + Copy>(all: &[T], v: &Value, what: &str) -> Result<T, String> {
    let name = v.as_str().unwrap_or("");
    all.iter()
        .copied()
        .find(|x| format!("{x:?}") == name)
        .ok_or_else(|| format!("{what}: unknown value {v}"))
}

fn text(v: &Value, k: &str) -> Result<String, String> {
    v[k].as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{k}: expected a string"))
}

fn num(v: &Value, k: &str) -> Result<u64, String> {
    v[k].as_u64()
        .ok_or_else(|| format!("{k}: expected a number"))
}

impl Progress {
    /// `{"group", "revision", "previous", "digest", "phase", "batch",
    /// "started", "options": {"canary", "batch", "maxFailures",
    /// "verifySeconds", "healthDeadlineSeconds", "selector"}, "batchSize",
    /// "failureLimit", "devices": [{"id", "state", "since", "reason"}]}`.
    /// Written by hand (no serde derive: it is smaller).
    pub fn to_json(&self) -> Vec<u8> {
        let o = &self.options;
        let devices: Vec<Value> = self
            .devices
            .iter()
            .map(|d| {
                json!({"id": d.id, "state": format!("{:?}", d.state), "since": d.since,
                       "reason": d.reason})
            })
            .collect();
        let v = json!({
            "group": self.group, "revision": self.revision, "previous": self.previous,
            "digest": self.digest, "phase": format!("{:?}", self.phase), "batch": self.batch,
            "started": self.started,
            "options": {"canary": o.canary, "batch": o.batch, "maxFailures": o.max_failures,
                        "verifySeconds": o.verify_seconds,
                        "healthDeadlineSeconds": o.health_deadline_seconds,
                        "selector": o.selector},
            "batchSize": self.batch_size, "failureLimit": self.failure_limit,
            "devices": devices,
        });
        serde_json::to_vec(&v).expect("a JSON value always serializes")
    }

    /// Reads [`Progress::to_json`]'s form; the error names the field.
    pub fn from_json(bytes: &[u8]) -> Result<Progress, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let o = &v["options"];
        let mut devices = Vec::new();
        for d in v["devices"].as_array().ok_or("devices: expected a list")? {
            devices.push(Device {
                id: text(d, "id")?,
                state: named(&STATES, &d["state"], "state")?,
                since: d["since"].as_i64().unwrap_or(0),
                reason: d["reason"].as_str().unwrap_or("").to_string(),
            });
        }
        let selector = o["selector"].as_array().map_or(Vec::new(), |a| {
            a.iter()
                .filter_map(|s| Some(s.as_str()?.to_string()))
                .collect()
        });
        Ok(Progress {
            group: text(&v, "group")?,
            revision: num(&v, "revision")?,
            previous: num(&v, "previous")?,
            digest: text(&v, "digest")?,
            phase: named(&PHASES, &v["phase"], "phase")?,
            batch: num(&v, "batch")? as usize,
            started: text(&v, "started")?,
            options: Options {
                canary: num(o, "canary")? as usize,
                batch: text(o, "batch")?,
                max_failures: text(o, "maxFailures")?,
                verify_seconds: num(o, "verifySeconds")?,
                health_deadline_seconds: num(o, "healthDeadlineSeconds")?,
                selector,
            },
            batch_size: num(&v, "batchSize")? as usize,
            failure_limit: num(&v, "failureLimit")? as usize,
            devices,
        })
    }

    /// A new rollout of `revision` (from `previous`) to `targets`, which
    /// come sorted by id (the shell's map of devices is).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        group: &str,
        revision: u64,
        previous: u64,
        digest: String,
        targets: Vec<String>,
        options: Options,
        batch: Count,
        max_failures: Count,
        started: String,
    ) -> Progress {
        debug_assert!(targets.windows(2).all(|w| w[0] < w[1]), "{targets:?}");
        let n = targets.len();
        Progress {
            group: group.to_string(),
            revision,
            previous,
            digest,
            phase: Phase::Running,
            batch: 0,
            started,
            options,
            batch_size: batch.of(n),
            failure_limit: max_failures.of(n),
            devices: targets
                .into_iter()
                .map(|id| Device {
                    id,
                    state: DevState::Pending,
                    since: 0,
                    reason: String::new(),
                })
                .collect(),
        }
    }

    /// The index ranges of the batches.
    pub fn batches(&self) -> Vec<std::ops::Range<usize>> {
        let n = self.devices.len();
        let mut out = Vec::new();
        let mut at = self.options.canary.min(n);
        if at > 0 {
            out.push(0..at);
        }
        while at < n {
            let end = (at + self.batch_size.max(1)).min(n);
            out.push(at..end);
            at = end;
        }
        out
    }

    pub fn count(&self, s: DevState) -> usize {
        self.devices.iter().filter(|d| d.state == s).count()
    }

    /// `rollout abort` was seen: true when it changes anything.
    pub fn request_abort(&mut self) -> bool {
        let run = self.phase == Phase::Running;
        if run {
            self.phase = Phase::AbortRequested;
        }
        run
    }

    fn deadline_passed(&self, d: &Device, now: i64) -> bool {
        now >= d.since + self.options.health_deadline_seconds as i64 * 1000 + MARGIN_MS
    }
}

/// What a controller resuming `p` sends again (see the module doc).
pub fn resume(p: &Progress) -> Vec<Action> {
    let (state, act): (_, fn(String) -> Action) = match p.phase {
        Phase::Running => (DevState::Updating, Action::Publish),
        Phase::RollingBack | Phase::Aborting => (DevState::Reverting, Action::Clear),
        _ => return Vec::new(),
    };
    p.devices
        .iter()
        .filter(|d| d.state == state)
        .map(|d| act(d.id.clone()))
        .collect()
}

/// One decision step at `now` (wall ms): see the module doc.
pub fn step(p: &mut Progress, reports: &VecMap<String, Report>, now: i64) -> Vec<Action> {
    let none = Report::default();
    let rev = p.revision;
    let mut out = Vec::new();
    let mut changed = false;
    match p.phase {
        Phase::Complete | Phase::RolledBack | Phase::Aborted => return vec![Action::Done(p.phase)],
        Phase::AbortRequested => {
            p.phase = Phase::Aborting;
            return roll_back(p, now);
        }
        Phase::Running => {
            for i in 0..p.devices.len() {
                let d = &p.devices[i];
                if d.state != DevState::Updating {
                    continue;
                }
                let r = reports.get(&d.id).unwrap_or(&none);
                let (state, reason) = match &r.deployment {
                    Some((v, s)) if *v == rev && s == "Healthy" => {
                        (DevState::Healthy, String::new())
                    }
                    Some((v, s)) if *v == rev && FAILED_STATES.contains(&s.as_str()) => {
                        (DevState::Failed, s.clone())
                    }
                    _ if p.deadline_passed(d, now) => {
                        let why = if r.online == Some(false) {
                            "Offline"
                        } else {
                            "NotHealthyInTime"
                        };
                        (DevState::Failed, why.to_string())
                    }
                    _ => continue,
                };
                let d = &mut p.devices[i];
                (d.state, d.reason, d.since) = (state, reason, now);
                changed = true;
            }
            if p.count(DevState::Failed) >= p.failure_limit {
                p.phase = Phase::RollingBack;
                return roll_back(p, now);
            }
            let batches = p.batches();
            let busy = p.batch > 0
                && batches[p.batch - 1]
                    .clone()
                    .any(|i| p.devices[i].state == DevState::Updating);
            if !busy {
                match batches.get(p.batch).cloned() {
                    Some(range) => {
                        p.batch += 1;
                        out.push(Action::Save);
                        for d in &mut p.devices[range] {
                            (d.state, d.since) = (DevState::Updating, now);
                            out.push(Action::Publish(d.id.clone()));
                        }
                        return out;
                    }
                    None => {
                        out.push(Action::PublishGroup);
                        out.extend(p.devices.iter().map(|d| Action::Clear(d.id.clone())));
                        p.phase = Phase::Complete;
                        out.extend([Action::Save, Action::Done(Phase::Complete)]);
                        return out;
                    }
                }
            }
        }
        Phase::RollingBack | Phase::Aborting => {
            for i in 0..p.devices.len() {
                let d = &p.devices[i];
                if d.state != DevState::Reverting {
                    continue;
                }
                let r = reports.get(&d.id).unwrap_or(&none);
                let state = if r.observed.is_some() && r.observed != Some(rev) {
                    DevState::Reverted
                } else if p.deadline_passed(d, now) {
                    DevState::NotReverted
                } else {
                    continue;
                };
                let offline = r.online == Some(false);
                let d = &mut p.devices[i];
                d.state = state;
                if state == DevState::NotReverted && offline {
                    d.reason = "Offline".into();
                }
                changed = true;
            }
            if p.count(DevState::Reverting) == 0 {
                return finish(p);
            }
        }
    }
    if changed {
        out.push(Action::Save);
    }
    out
}

/// Clears every device updated so far (see the module doc).
fn roll_back(p: &mut Progress, now: i64) -> Vec<Action> {
    let mut out = vec![Action::Save];
    for d in &mut p.devices {
        if matches!(
            d.state,
            DevState::Updating | DevState::Healthy | DevState::Failed
        ) {
            (d.state, d.since) = (DevState::Reverting, now);
            out.push(Action::Clear(d.id.clone()));
        }
    }
    if out.len() == 1 {
        return finish(p);
    }
    out
}

fn finish(p: &mut Progress) -> Vec<Action> {
    p.phase = match p.phase {
        Phase::Aborting => Phase::Aborted,
        _ => Phase::RolledBack,
    };
    vec![Action::Save, Action::Done(p.phase)]
}

#[cfg(test)]
mod tests;
