//! A simulated node for the controllers' tests: it carries out the
//! intents (pods appear Pending; deleted pods terminate, then go), and
//! the test decides when pods become ready, fail or succeed, and moves a
//! virtual clock.

use super::{Env, Intent, PodObs, Workloads};
use crate::clock::Now;
use crate::lifecycle::Phase;
use crate::spec::Pod;
use crate::spec::workload::{Workload, workload_from_value};
use crate::vecmap::VecMap;

pub struct Sim {
    pub w: Workloads,
    pub env: Env,
    pub now: Now,
    /// The node's pods by name.
    pub pods: VecMap<String, (Pod, PodObs)>,
    /// Every intent carried out, in order.
    pub log: Vec<Intent>,
    /// Deleted pods take this long to go (ms); 0: at once.
    pub grace_ms: u64,
    terminating_since: VecMap<String, u64>,
    next_uid: u64,
    /// The claim directories (`namespace/claim`) pods were given; gone
    /// on `DeleteVolume`.
    pub volumes: crate::vecmap::VecSet<String>,
    /// The node rejects every new pod at admission with this `status.reason`
    /// and `status.message` (as `crate::lifecycle` does: phase `Failed`).
    pub reject: Option<(String, String)>,
}

/// A workload from YAML text.
pub fn workload(yaml: &str) -> (Workload, String) {
    let v = crate::yaml::parse(yaml).0[0].to_value().unwrap();
    let doc = serde_json::to_string(&v).unwrap();
    (workload_from_value(v).unwrap(), doc)
}

#[allow(dead_code)] // the kinds' tests use what they need
impl Sim {
    pub fn new() -> Sim {
        Sim {
            w: Workloads::new(42),
            env: Env {
                node_name: "node-1".into(),
                clock_synced: true,
                ..Default::default()
            },
            now: Now {
                mono_ms: 1_000_000,
                wall_ms: 1_780_000_000_000,
            },
            pods: VecMap::new(),
            log: Vec::new(),
            grace_ms: 0,
            terminating_since: VecMap::new(),
            next_uid: 0,
            volumes: Default::default(),
            reject: None,
        }
    }

    /// Applies a workload from YAML (as a static manifest).
    pub fn apply(&mut self, yaml: &str) {
        let (w, doc) = workload(yaml);
        let uid = format!("uid-{}", w.metadata.name);
        self.w
            .apply(w, doc, "/manifests/test.yaml".into(), uid, self.now);
    }

    /// Syncs until nothing more happens (at most 20 rounds); returns the
    /// intents of this call.
    pub fn sync(&mut self) -> Vec<Intent> {
        let mut all = Vec::new();
        for _ in 0..20 {
            let out = self.step();
            // Quiet: nothing but events, and no timer due now (a
            // CronJob's new Job runs at once).
            let quiet = out.iter().all(|i| matches!(i, Intent::Event { .. }))
                && self.w.poll_timeout().is_none_or(|w| w > self.now.mono_ms);
            all.extend(out);
            if quiet {
                break;
            }
        }
        all
    }

    /// One `sync`, its intents carried out.
    pub fn step(&mut self) -> Vec<Intent> {
        self.reap();
        let obs = self.obs();
        let out = self.w.sync(self.now, &self.env, &obs);
        for i in &out {
            self.carry_out(i);
        }
        out
    }

    /// What the agent would feed `sync`: every pod.
    pub fn obs(&self) -> Vec<PodObs> {
        self.pods.values().map(|(_, o)| o.clone()).collect()
    }

    fn carry_out(&mut self, i: &Intent) {
        self.log.push(i.clone());
        match i {
            Intent::CreatePod(pod) => {
                assert!(
                    !self.pods.contains_key(&pod.metadata.name),
                    "pod {} created twice",
                    pod.metadata.name
                );
                self.next_uid += 1;
                let mut obs = PodObs {
                    namespace: pod.metadata.namespace.clone(),
                    name: pod.metadata.name.clone(),
                    uid: format!("pod-{}", self.next_uid),
                    owner_uid: pod.metadata.owner_references[0].uid.clone(),
                    labels: pod.metadata.labels.clone(),
                    phase: Phase::Pending,
                    ready: false,
                    ready_since_ms: None,
                    terminating: false,
                    restarts: 0,
                    created_ms: self.now.mono_ms,
                    reason: String::new(),
                    message: String::new(),
                    exit_codes: Vec::new(),
                };
                if let Some((reason, message)) = &self.reject {
                    obs.phase = Phase::Failed;
                    obs.reason = reason.clone();
                    obs.message = message.clone();
                }
                for v in &pod.spec.volumes {
                    if let Some(c) = &v.persistent_volume_claim {
                        let ns = &pod.metadata.namespace;
                        self.volumes.insert(format!("{ns}/{}", c.claim_name));
                    }
                }
                self.pods
                    .insert(pod.metadata.name.clone(), ((**pod).clone(), obs));
            }
            Intent::DeletePod { name, .. } => {
                if let Some((_, o)) = self.pods.get_mut(name) {
                    if !o.terminating {
                        o.terminating = true;
                        o.ready = false;
                        self.terminating_since
                            .insert(name.clone(), self.now.mono_ms);
                    }
                }
            }
            Intent::DeleteVolume { namespace, claim } => {
                let v = format!("{namespace}/{claim}");
                assert!(
                    !self.pods.values().any(|(p, _)| uses(p, &v)),
                    "volume {v} deleted while a pod uses it"
                );
                self.volumes.remove(&v);
            }
            Intent::Event { .. } => {}
        }
    }

    /// Terminating pods whose grace has passed go.
    fn reap(&mut self) {
        let now = self.now.mono_ms;
        let grace = self.grace_ms;
        let gone: Vec<String> = self
            .terminating_since
            .iter()
            .filter(|(_, t)| now >= **t + grace)
            .map(|(n, _)| n.clone())
            .collect();
        for n in gone {
            self.terminating_since.remove(&n);
            self.pods.remove(&n);
        }
    }

    /// Moves the clock (both clocks) and syncs when a timer is due.
    pub fn advance(&mut self, ms: u64) -> Vec<Intent> {
        self.now = self.now.plus_ms(ms);
        self.sync()
    }

    /// Running pods, not terminating, by name.
    pub fn live(&self) -> Vec<&PodObs> {
        self.pods
            .values()
            .map(|(_, o)| o)
            .filter(|o| !o.terminating)
            .collect()
    }

    /// Marks a pod Running and Ready (since now).
    pub fn ready(&mut self, name: &str) {
        let now = self.now.mono_ms;
        let o = &mut self.pods.get_mut(name).expect("no such pod").1;
        o.phase = Phase::Running;
        if !o.ready {
            o.ready = true;
            o.ready_since_ms = Some(now);
        }
    }

    /// Every live pod that is not ready becomes ready.
    pub fn all_ready(&mut self) {
        let names: Vec<String> = self.live().iter().map(|o| o.name.clone()).collect();
        for n in names {
            self.ready(&n);
        }
    }

    /// The pod ends (`Succeeded` with exit 0, `Failed` otherwise).
    pub fn exit(&mut self, name: &str, code: i32) {
        let o = &mut self.pods.get_mut(name).expect("no such pod").1;
        o.phase = if code == 0 {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
        o.ready = false;
        o.exit_codes = vec![("main".into(), code)];
    }

    /// The pod runs but crashes: not ready, restarts counted.
    pub fn crash(&mut self, name: &str) {
        let o = &mut self.pods.get_mut(name).expect("no such pod").1;
        o.phase = Phase::Running;
        o.ready = false;
        o.ready_since_ms = None;
        o.restarts += 1;
    }

    /// The pod spec of a live pod.
    pub fn spec(&self, name: &str) -> &Pod {
        &self.pods[name].0
    }

    /// A save and restore of the controllers (an agent restart).
    /// An agent restart: the state as the state file keeps it (the
    /// snapshot and, from version 5, the doomed claims) and nothing else.
    pub fn restart(&mut self) {
        let saved = (self.w.snapshot(), self.w.doomed_claims().to_vec());
        let bytes = postcard::to_allocvec(&saved).unwrap();
        let (snap, doomed): (super::WorkloadsSnap, Vec<super::DoomedClaim>) =
            postcard::from_bytes(&bytes).unwrap();
        self.w = Workloads::restore(snap, self.now, self.now);
        self.w.restore_doomed_claims(doomed);
    }

    /// The device reboots after `down_ms` off: the mono clock starts again
    /// at `mono_ms`, the wall clock at `wall_ms` (a device without a
    /// real-time clock boots at a stale time). The controllers restore
    /// from the state file (saved now); the pods come back as the
    /// lifecycle restores them, their mono times keeping their age.
    pub fn reboot(&mut self, mono_ms: u64, wall_ms: i64) {
        let saved_at = self.now;
        let saved = (self.w.snapshot(), self.w.doomed_claims().to_vec());
        let bytes = postcard::to_allocvec(&saved).unwrap();
        let (snap, doomed): (super::WorkloadsSnap, Vec<super::DoomedClaim>) =
            postcard::from_bytes(&bytes).unwrap();
        self.now = Now { mono_ms, wall_ms };
        let back = |t: u64| (t + mono_ms).saturating_sub(saved_at.mono_ms);
        for (_, o) in self.pods.values_mut() {
            o.created_ms = back(o.created_ms);
            o.ready_since_ms = o.ready_since_ms.map(back);
        }
        for t in self.terminating_since.values_mut() {
            *t = back(*t);
        }
        self.w = Workloads::restore(snap, saved_at, self.now);
        self.w.restore_doomed_claims(doomed);
    }
}

/// Whether `pod` mounts the claim `ns/claim`.
fn uses(pod: &Pod, v: &str) -> bool {
    pod.spec.volumes.iter().any(|x| {
        x.persistent_volume_claim
            .as_ref()
            .is_some_and(|c| format!("{}/{}", pod.metadata.namespace, c.claim_name) == v)
    })
}
