//! The shims as the agent knows them: one connection and a few runtime
//! facts per pod, the connection generations, the queue of sandboxes
//! waiting for a start slot, the exec ids, and the exec probes waiting for
//! their `ExecDone` (a CLI's exec waits in the API server, [`super::api_server`]).
//! The lifecycle core owns the policy; this is bookkeeping only.

use super::sandbox::ShimConn;
use super::statefile::SandboxRecord;
use crate::api::EventHistory;
use crate::lifecycle::Input;
use crate::probe::NetNs;
use crate::vecmap::VecMap;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

/// Shims started at once. Starting one (files, cgroup, fork + exec of the
/// launcher) takes the reactor a millisecond or two and holds 2 fds until
/// the launcher exits; the rest wait in a queue, so that 110 pods starting
/// never keep the API, the broker's keepalive or SIGTERM waiting.
pub(super) const MAX_STARTING_SANDBOXES: usize = 8;

/// The agent's per-pod runtime facts (the lifecycle owns the policy).
#[derive(Debug, Default)]
pub(super) struct PodRt {
    pub(super) conn: Option<ShimConn>,
    pub(super) record: Option<SandboxRecord>,
    pub(super) netns: Option<Rc<NetNs>>,
    pub(super) cgroup: Option<PathBuf>,
    pub(super) removing: bool,
    /// Running instance per container, from the shim's reports.
    /// (instance, startedAt ms).
    pub(super) running: HashMap<String, (u64, i64)>,
    /// The last events, for `picolet describe`.
    pub(super) events: EventHistory,
}

/// Every pod's shim (see the module doc).
#[derive(Debug)]
pub(super) struct Shims {
    /// Per pod uid.
    pub(super) pods: HashMap<String, PodRt>,
    next_generation: u64,
    /// Pods whose sandbox waits for a start slot, in order.
    start_queue: VecDeque<String>,
    /// Shims being started (at most [`MAX_STARTING_SANDBOXES`]).
    starting: usize,
    next_exec: u64,
    /// Per exec probe's id: the pod's uid and the probe's result, to be
    /// filled in.
    probe_execs: HashMap<u64, (String, Box<Input>)>,
}

impl Shims {
    /// The shims of the state file (`sandboxes`), not yet connected.
    pub(super) fn new(sandboxes: VecMap<String, SandboxRecord>) -> Shims {
        let mut pods = HashMap::new();
        for (uid, rec) in sandboxes {
            let rt = PodRt {
                record: Some(rec),
                ..Default::default()
            };
            pods.insert(uid, rt);
        }
        Shims {
            pods,
            next_generation: 1,
            start_queue: VecDeque::new(),
            starting: 0,
            next_exec: 1,
            probe_execs: HashMap::new(),
        }
    }

    /// The pod's runtime facts, created empty if need be.
    pub(super) fn rt(&mut self, uid: &str) -> &mut PodRt {
        self.pods.entry(uid.to_string()).or_default()
    }

    /// The pod's shim connection, if any.
    pub(super) fn conn(&self, uid: &str) -> Option<&ShimConn> {
        self.pods.get(uid).and_then(|p| p.conn.as_ref())
    }

    /// Whether `generation` is the pod's current connection (messages of
    /// an older one are stale).
    pub(super) fn current(&self, uid: &str, generation: u64) -> bool {
        self.conn(uid).is_some_and(|c| c.generation == generation)
    }

    /// A new connection generation.
    pub(super) fn next_generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    /// What the state file keeps: each pod's shim identity.
    pub(super) fn records(&self) -> VecMap<String, SandboxRecord> {
        // Built by insert (one binary search each: the pods come from a
        // HashMap, in no order).
        let mut out = VecMap::new();
        for (uid, p) in &self.pods {
            if let Some(r) = p.record {
                out.insert(uid.clone(), r);
            }
        }
        out
    }

    /// Queues a sandbox to start.
    pub(super) fn queue_start(&mut self, uid: String) {
        self.start_queue.push_back(uid);
    }

    /// Takes a sandbox out of the queue; false if it was not queued.
    pub(super) fn unqueue(&mut self, uid: &str) -> bool {
        match self.start_queue.iter().position(|u| u == uid) {
            Some(i) => {
                self.start_queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// The next queued sandbox, if a start slot is free.
    #[must_use]
    pub(super) fn next_to_start(&mut self) -> Option<String> {
        if self.starting >= MAX_STARTING_SANDBOXES {
            return None;
        }
        self.start_queue.pop_front()
    }

    /// How many shims are being started.
    pub(super) fn starting(&self) -> usize {
        self.starting
    }

    /// A shim start began.
    pub(super) fn start_began(&mut self) {
        self.starting += 1;
    }

    /// A shim start ended (up or failed).
    pub(super) fn start_ended(&mut self) {
        self.starting = self.starting.saturating_sub(1);
    }

    /// A new exec id (for a probe's or a CLI's exec).
    pub(super) fn exec_id(&mut self) -> u64 {
        let id = self.next_exec;
        self.next_exec += 1;
        id
    }

    /// The exec probe `id` runs in pod `uid`; `result` is fed to the
    /// lifecycle when it is done.
    pub(super) fn wait_probe_exec(&mut self, id: u64, uid: &str, result: Box<Input>) {
        self.probe_execs.insert(id, (uid.to_string(), result));
    }

    /// The probe result waiting for exec `id`, if it is a probe's.
    pub(super) fn probe_exec_done(&mut self, id: u64) -> Option<Box<Input>> {
        self.probe_execs.remove(&id).map(|(_, r)| r)
    }

    /// Drops the exec probes running in pod `uid` (its connection is gone:
    /// no `ExecDone` will come for them, and their result is moot).
    pub(super) fn drop_probe_execs(&mut self, uid: &str) {
        self.probe_execs.retain(|_, (u, _)| u != uid);
    }
}
