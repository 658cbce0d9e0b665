//! The agent: the I/O shell around the pure cores (DESIGN §2): the
//! desired state ([`crate::desired`]), the lifecycle ([`lifecycle::Node`])
//! and the fleet session ([`crate::fleet::session`]).
//!
//! One OS thread. Every event source is a task on the [`crate::reactor`]
//! that sends a [`Msg`] to the main loop. Each source has its own small
//! struct in its own file: [`static_pods::StaticPods`] (the manifests
//! directory), [`fleet::Fleet`] (the broker link and session),
//! [`shims::Shims`] (one connection and runtime facts per pod),
//! [`api_server::ApiServer`] (the CLI's socket and the execs it waits
//! for), [`notify::Notify`] (sd_notify), [`signals::Stop`] (SIGTERM,
//! SIGINT, SIGHUP), [`disk::Disk`] (ephemeral storage) and
//! [`cgroups::PodCgroups`]. [`Agent`] holds them and the cores, feeds the
//! cores and carries out their outputs; a method that needs several parts
//! lives on `Agent` in the file of the event source that triggers it.
//! docs/agent.md has the map of which core decides what. The main loop never awaits anything but its inbox and the
//! cores' next timeout: work that waits (starting a shim, a tcp/http probe)
//! runs in its own task.
//!
//! fds: the reactor's epoll fd, the inotify fd of the manifests dir, a
//! signalfd, the API listening socket and its connections, one Unix socket
//! per shim, a pidfd while a shim starts, one netns fd per pod (probes),
//! and the broker's TCP socket when a fleet broker is configured ([`fleet`]).

mod adopt;
mod api_server;
mod cgroups;
pub mod container;
pub mod disk;
pub mod fds;
pub mod flags;
pub mod fleet;
mod fs_sys;
pub mod manifests;
mod metrics;
mod network;
pub mod node_labels;
pub mod notify;
mod outputs;
mod preload;
mod probes;
mod projection;
mod pulls;
pub mod sandbox;
mod shim_events;
mod shims;
mod signals;
pub mod statefile;
mod static_pods;
pub mod trash;
pub(crate) mod workloads;

use crate::clock::Now;
use crate::desired::{Change, Desired};
use crate::image::ImageStore;
use crate::lifecycle::{Input, Node};
use crate::reactor;
use crate::runtime::shim::proto::{self, Event};
use crate::store::StateStore;
use crate::sys::fs::private_dir;
use crate::vecmap::VecMap;
use api_server::ApiServer;
use async_channel::{Receiver, Sender};
use cgroups::PodCgroups;
use notify::Notify;
use sandbox::ShimConn;
use shims::Shims;
use signals::{Asked, Stop};
use statefile::{StateFile, StateV2, StateV3, StateV4, StateV5};
use static_pods::StaticPods;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

/// How the agent is configured (flags of `picolet agent`).
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub manifests: Option<PathBuf>,
    pub cgroup_root: Option<PathBuf>,
    pub node_name: String,
    /// `pids.max` for every pod.
    pub pids_max: Option<u64>,
    /// The most pods admitted at once (the kubelet's `maxPods`); lowered
    /// at start to what the fd limit allows ([`fds`]).
    pub max_pods: usize,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// How often disk usage and pressure are checked ([`disk`]).
    pub disk_interval: Duration,
    /// Node eviction thresholds (`nodefs`/`imagefs.available`).
    pub eviction: crate::lifecycle::eviction::Thresholds,
    /// Image garbage collection ([`disk`]).
    pub image_gc: crate::image::gc::GcPolicy,
    /// The picolet binary to run as `picolet shim` (default `/proc/self/exe`).
    pub exe: PathBuf,
    /// The fleet channel; `None`: static pods only.
    pub fleet: Option<crate::fleet::config::FleetSettings>,
    /// The pod network's CIDR; `None`: `podNetwork: none` (pods have only
    /// `lo`).
    pub pod_cidr: Option<crate::net::Cidr>,
    /// `status.hostIP` as configured; default: found at start.
    pub node_ip: Option<std::net::Ipv4Addr>,
    /// `RuntimeDefault` seccomp when a container sets no profile.
    pub seccomp_default: bool,
    /// `nodeLabels`: the configured node labels (see
    /// [`crate::spec::affinity::node_labels`] for all of them).
    pub node_labels: VecMap<String, String>,
    /// The node default of `picolet.io/auto-rollback`.
    pub auto_rollback: bool,
    /// CronJobs do not wait for NTP ([`crate::sys::time::clock_synchronized`]).
    pub assume_clock_synchronized: bool,
    /// How often the pods' cgroups are sampled ([`metrics`]); 0: off.
    pub metrics_interval: Duration,
    /// The Prometheus endpoint's address, if any.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file: {0}")]
    State(String),
    #[error("image store: {0}")]
    Image(String),
    #[error("fleet: {0}")]
    Fleet(String),
}

/// Everything that can wake the main loop.
#[derive(Debug)]
pub enum Msg {
    ManifestsChanged,
    SandboxUp {
        uid: String,
        conn: ShimConn,
    },
    SandboxFailed {
        uid: String,
        message: String,
    },
    /// A pod without a shim connection was removed: any shim still on its
    /// socket has been stopped.
    SandboxStopped {
        uid: String,
    },
    Shim {
        uid: String,
        generation: u64,
        event: Event,
    },
    ShimClosed {
        uid: String,
        generation: u64,
    },
    Probe(Box<Input>),
    Api {
        req: crate::api::Request,
        /// fds that came with the request (an exec's stdio).
        fds: Vec<std::os::fd::OwnedFd>,
        reply: Sender<crate::api::Response>,
    },
    Signal(i32),
    /// From the broker connection's tasks.
    Fleet(fleet::LinkMsg),
    /// Time to try again to remove a removed pod's cgroup ([`cgroups`]).
    CgroupRetry {
        uid: String,
        cgroup: PathBuf,
        attempt: u32,
    },
    /// Time to measure ephemeral storage, if due ([`disk`]).
    DiskTick,
    /// A `picolet du` round: usage per pod uid, or why it failed.
    DiskUsage(Result<VecMap<String, crate::lifecycle::eviction::PodUsage>, String>),
    /// A `picolet image-gc` run: what it deleted, or why it failed.
    ImageGc(Result<crate::image::GcReport, String>),
    /// A `picolet pull` helper's progress or end ([`pulls`]).
    Pull(pulls::PullMsg),
    /// An archive of the preload directory was imported ([`preload`]).
    Preloaded(Box<preload::Preloaded>),
    /// Time to sample the pods' cgroups ([`metrics`]).
    MetricsTick,
    /// A scrape of the Prometheus endpoint wants the text ([`metrics`]).
    Scrape(Sender<String>),
}

/// Messages handled per turn of the main loop before the state is saved,
/// statuses are published and the other tasks (API, broker, signals) run.
const MSG_BATCH: usize = 64;

/// Queued inputs fed to the core per turn: a rescan of a 1,000-pod file
/// queues 1,000 `ApplyPod`s, fed over several turns with the API and the
/// broker served in between.
const FEED_BATCH: usize = 128;

/// Runs the agent until SIGTERM/SIGINT. Pods keep running after it exits.
pub fn run(cfg: Config) -> Result<(), AgentError> {
    reactor::block_on(async move {
        // Boxed: the agent (6 KB, most of it the fleet's error log) is
        // then not copied into this future's state and its callers' frames.
        let (agent, rx) = Agent::new(cfg)?;
        let mut agent = Box::new(agent);
        trash::empty_at_start(&agent.cfg.state_dir);
        agent.start(&rx).await?;
        agent.process(); // the first reconcile
        agent.notify.ready();
        agent.main_loop(rx).await
    })
}

/// The cores, and one struct per event source (see the module doc).
struct Agent {
    // The core and what it needs.
    cfg: Config,
    /// The lifecycle core: every admitted pod and what to do next.
    node: Node,
    /// Which source owns each pod, and what should run (the fleet's
    /// documents included).
    desired: Desired,
    /// The workload controllers ([`workloads`]).
    workloads: crate::workloads::Workloads,
    /// The time zones the CronJobs name (`workloads::Env::zones`).
    zones: VecMap<String, Result<crate::workloads::tz::Zone, String>>,
    /// The clock's sync state when last asked (mono ms, synced).
    clock_checked: Option<(u64, bool)>,
    /// Inputs for `node`, fed in order ([`Agent::feed`]).
    pending: VecDeque<Input>,
    /// The state changed since it was saved.
    dirty: bool,
    store: StateStore,
    images: ImageStore,
    /// Registry pulls under way ([`pulls`]).
    pulls: pulls::Pulls,
    /// The preload directory's imports, while under way ([`preload`]).
    preload: preload::Preload,
    /// Every event source's way into the main loop.
    tx: Sender<Msg>,
    // The event sources.
    /// The manifests directory.
    statics: StaticPods,
    /// The ConfigMaps and Secrets pods may read (static ones).
    objects: std::rc::Rc<crate::spec::Objects>,
    /// When each object was first seen (its AGE in `get`).
    objects_seen: VecMap<(crate::spec::ObjectKind, String), i64>,
    /// The fleet channel, when a broker is configured.
    fleet: Option<Box<fleet::Fleet>>,
    /// Every pod's shim connection and runtime facts.
    shims: Shims,
    /// The CLI's socket.
    api: ApiServer,
    /// sd_notify.
    notify: Notify,
    /// SIGTERM/SIGINT (stop) and SIGHUP (rescan).
    stop: Stop,
    /// Ephemeral-storage accounting.
    disk: disk::Disk,
    /// The pods' cgroups.
    cgroups: PodCgroups,
    /// The pod network; `None` with `podNetwork: none`.
    net: Option<network::PodNet>,
    /// Resource metrics ([`metrics`]).
    metrics: metrics::AgentMetrics,
}

fn io_err(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AgentError {
    let path = path.to_path_buf();
    move |source| AgentError::Io { what, path, source }
}

impl Agent {
    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    fn new(cfg: Config) -> Result<(Agent, Receiver<Msg>), AgentError> {
        // Root only: see `sys::fs::private_dir` and docs/security.md.
        let pods_dir = cfg.state_dir.join("pods");
        for d in [&cfg.state_dir, &cfg.run_dir, &pods_dir] {
            private_dir(d).map_err(io_err("creating", d))?;
        }
        // Pull credentials a killed agent left behind (its helpers' files).
        pulls::sweep_credentials(&cfg.run_dir);
        let images = ImageStore::open(cfg.state_dir.join("images"))
            .map_err(|e| AgentError::Image(e.to_string()))?;
        let mut store = StateStore::new(&cfg.state_dir);
        let now = Now::read();
        let mut saved_workloads = None;
        let mut saved_fleet = (VecMap::new(), Default::default());
        let (mut node, sandboxes, sources, fleet_docs) = match store.load::<StateFile>() {
            Ok(Some(loaded)) => {
                if let Some(why) = loaded.recovered.as_ref() {
                    log::warn!(
                        "state.bin was unusable ({why}); recovered the previous copy state.bin.prev"
                    );
                }
                let StateV5 {
                    v4:
                        StateV4 {
                            v3:
                                StateV3 {
                                    v2: state,
                                    workloads,
                                },
                            overrides,
                            deployments,
                        },
                    doomed_claims,
                } = loaded.value.into_latest();
                saved_workloads = Some((workloads, doomed_claims, state.node.saved_at));
                saved_fleet = (overrides, deployments);
                let node = Node::restore(state.node, cfg.node_name.clone(), now)
                    .map_err(|e| AgentError::State(e.to_string()))?;
                (node, state.sandboxes, state.sources, state.fleet_docs)
            }
            Ok(None) => (
                Node::new(cfg.node_name.clone()),
                VecMap::new(),
                VecMap::new(),
                VecMap::new(),
            ),
            Err(e) => {
                log::error!(
                    "state file unusable and no good previous copy ({e}); starting empty and reconciling shims found under pods/"
                );
                (
                    Node::new(cfg.node_name.clone()),
                    VecMap::new(),
                    VecMap::new(),
                    VecMap::new(),
                )
            }
        };
        node.set_pod_network(cfg.pod_cidr.is_some());
        node.set_labels(node_labels::node_labels(&cfg));
        node.set_limits(
            fds::budget_max_pods(cfg.max_pods),
            // A document per source, an override per group, and a kept
            // Healthy document per source.
            spec_budget(cfg.fleet.as_ref().map_or(0, |f| {
                (2 + 3 * f.groups.len()).saturating_mul(f.max_document_bytes)
            })),
        );
        let (fleet, docs) = match cfg.fleet.clone() {
            Some(settings) => {
                let saved = fleet::SavedFleet {
                    docs: fleet_docs,
                    overrides: saved_fleet.0,
                    deployments: saved_fleet.1,
                };
                let (fleet, docs) = fleet::Fleet::new(settings, saved, now)?;
                (Some(Box::new(fleet)), Some(docs))
            }
            None => {
                if !fleet_docs.is_empty() {
                    log::warn!(
                        "no broker configured: the stored fleet desired state is dropped and its pods are deleted"
                    );
                }
                (None, None)
            }
        };
        let mut desired = Desired::new(sources, docs);
        let workloads = match saved_workloads {
            Some((snap, doomed, saved_at)) => {
                let mut w = crate::workloads::Workloads::restore(snap, saved_at, now);
                w.restore_doomed_claims(doomed);
                w
            }
            None => crate::workloads::Workloads::new(workloads::seed()),
        };
        desired.restore_workload_owners(workloads.sources());
        let cgroups = PodCgroups::detect(cfg.cgroup_root.clone());
        let (tx, rx) = async_channel::unbounded();
        let mut disk = disk::Disk::new(cfg.disk_interval, cfg.eviction, cfg.image_gc);
        if let (Some(f), Some(docs)) = (fleet.as_ref(), desired.fleet()) {
            disk.set_kept_images(f.kept_images(docs));
        }
        let statics = StaticPods::new(cfg.manifests.clone());
        let api = ApiServer::new(&cfg.state_dir);
        let net = network::PodNet::setup(&cfg);
        let mut pending = VecDeque::new();
        pending.push_back(Input::NodeAddress {
            host_ip: network::host_ip(&cfg),
        });
        Ok((
            Agent {
                cfg,
                node,
                desired,
                workloads,
                zones: VecMap::new(),
                clock_checked: None,
                pending,
                dirty: false,
                store,
                images,
                pulls: Default::default(),
                preload: None,
                tx,
                statics,
                objects: Default::default(),
                objects_seen: VecMap::new(),
                fleet,
                shims: Shims::new(sandboxes),
                api,
                notify: Notify::from_env(),
                stop: Stop::default(),
                disk,
                cgroups,
                net,
                metrics: Default::default(),
            },
            rx,
        ))
    }

    /// Adopts running shims, starts the event sources, applies the manifests.
    async fn start(&mut self, rx: &Receiver<Msg>) -> Result<(), AgentError> {
        self.start_preload();
        self.adopt(rx).await;
        self.sweep_pod_cgroups();
        self.reconcile_network();
        self.api
            .listen(self.tx.clone())
            .map_err(io_err("listening on", self.api.path()))?;
        self.stop
            .listen(self.tx.clone())
            .map_err(io_err("signalfd", &self.cfg.state_dir))?;
        if self.statics.watch(self.tx.clone())? {
            self.rescan();
        }
        self.fleet_start();
        self.disk.spawn_ticker(self.tx.clone());
        self.metrics_start()
    }

    async fn main_loop(&mut self, rx: Receiver<Msg>) -> Result<(), AgentError> {
        loop {
            self.process();
            if self.stop.now() {
                self.fleet_stop().await;
                self.api.stop();
                log::info!("agent stopping; pods keep running under their shims");
                return Ok(());
            }
            if !self.pending.is_empty() {
                // More queued inputs than one turn feeds: go on next turn,
                // before any new message (whose inputs must come after).
                self.fleet_tick();
                futures_lite::future::yield_now().await;
                continue;
            }
            let fleet = self.fleet.as_ref().and_then(|f| f.poll_timeout());
            let deadline = [
                self.node.poll_timeout(),
                fleet,
                self.workloads.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let msg = match deadline {
                Some(t) => {
                    let wait = t.saturating_sub(crate::clock::boottime_ms());
                    futures_lite::future::or(async { rx.recv().await.ok() }, async {
                        reactor::sleep(Duration::from_millis(wait)).await;
                        None
                    })
                    .await
                }
                None => rx.recv().await.ok(),
            };
            match msg {
                Some(m) => self.on_msg(m),
                None => self.node.handle(Input::Tick, Now::read()),
            }
            // Whatever else is queued, up to a batch: each message's
            // inputs are fed in order, but the state is saved and the
            // statuses published once per batch, not once per message.
            for _ in 1..MSG_BATCH {
                if self.stop.flagged() || !self.feed() {
                    break;
                }
                match rx.try_recv() {
                    Ok(m) => self.on_msg(m),
                    Err(_) => break,
                }
            }
            // The session's timers fire even while messages keep coming.
            self.fleet_tick();
            // Let the other tasks run (the API, the broker link, signals):
            // a busy inbox never returns `Pending` by itself.
            futures_lite::future::yield_now().await;
        }
    }

    /// Fires the fleet session's timers when due.
    fn fleet_tick(&mut self) {
        if let Some(f) = self.fleet.as_mut() {
            f.tick(Now::read());
        }
    }

    /// Feeds pending inputs (at most [`FEED_BATCH`]) and carries out
    /// outputs; true when no input is left queued.
    fn feed(&mut self) -> bool {
        for _ in 0..FEED_BATCH {
            self.drain_outputs();
            match self.pending.pop_front() {
                Some(input) => self.node.handle(input, Now::read()),
                None => return true,
            }
        }
        self.drain_outputs();
        self.pending.is_empty()
    }

    fn drain_outputs(&mut self) {
        self.fleet_drain();
        while let Some(out) = self.node.poll_output() {
            self.fleet_observe(&out);
            self.on_output(out);
        }
    }

    /// Starts queued sandboxes while fewer than
    /// [`shims::MAX_STARTING_SANDBOXES`] shims are starting.
    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    fn start_queued_sandboxes(&mut self) {
        while let Some(uid) = self.shims.next_to_start() {
            self.create_sandbox(uid);
        }
    }

    /// Feeds pending inputs and carries out outputs until both are empty,
    /// starts queued sandboxes, then saves the state and publishes.
    fn process(&mut self) {
        let started = std::time::Instant::now();
        // The controllers run when the lifecycle core has taken every
        // queued input, at most a few times per turn (their pods are then
        // fed in the same turn).
        let mut syncs = 0;
        loop {
            if !self.feed() {
                break; // the rest in the next turns
            }
            if syncs < 3 {
                syncs += 1;
                self.sync_workloads();
            }
            let before = self.shims.starting();
            self.start_queued_sandboxes();
            if self.shims.starting() == before && self.pending.is_empty() {
                break;
            }
        }
        self.deploy_turn();
        self.fleet_flush();
        if self.dirty {
            self.dirty = false;
            self.persist();
        }
        self.notify.pods_running(
            self.node
                .pods()
                .filter(|p| p.status.phase == crate::lifecycle::Phase::Running)
                .count(),
        );
        let took = started.elapsed();
        if took > Duration::from_millis(50) {
            log::debug!("one turn of the main loop took {took:?}");
        }
    }

    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    fn on_msg(&mut self, msg: Msg) {
        let now = Now::read();
        match msg {
            Msg::ManifestsChanged => self.rescan(),
            Msg::SandboxUp { uid, conn } => {
                self.shims.start_ended();
                match self.wire_pod(&uid, conn.pid) {
                    Ok(()) => {
                        self.shims.rt(&uid).conn = Some(conn);
                        self.node.handle(Input::SandboxReady { uid }, now);
                    }
                    Err(message) => {
                        // No sandbox without its network: this shim goes
                        // (a retry starts a new one).
                        conn.send(proto::Request::Shutdown);
                        log::warn!("pod {uid}: sandbox failed: {message}");
                        self.node.handle(Input::SandboxFailed { uid, message }, now);
                    }
                }
            }
            Msg::SandboxStopped { uid } => self.finish_remove(&uid),
            Msg::SandboxFailed { uid, message } => {
                self.shims.start_ended();
                log::warn!("pod {uid}: sandbox failed: {message}");
                self.node.handle(Input::SandboxFailed { uid, message }, now);
            }
            Msg::Shim {
                uid,
                generation,
                event,
            } => self.on_shim_event(uid, generation, event),
            Msg::ShimClosed { uid, generation } => self.on_shim_closed(uid, generation),
            Msg::Probe(input) => self.node.handle(*input, now),
            Msg::Api { req, fds, reply } => self.on_api(req, fds, reply),
            Msg::Fleet(m) => self.on_fleet_msg(m),
            Msg::DiskTick => {
                let dirs = disk::Dirs {
                    state_dir: &self.cfg.state_dir,
                    run_dir: &self.cfg.run_dir,
                };
                self.disk
                    .tick(&self.node, &dirs, &self.cfg.exe, &self.tx, now.mono_ms);
            }
            Msg::DiskUsage(usage) => {
                let evict = self.disk.on_usage(&self.node, usage);
                self.pending.extend(evict);
            }
            Msg::CgroupRetry {
                uid,
                cgroup,
                attempt,
            } => self.on_cgroup_retry(uid, cgroup, attempt),
            Msg::ImageGc(report) => self.disk.on_image_gc(report, now.mono_ms),
            Msg::Pull(m) => self.on_pull_msg(m),
            Msg::Preloaded(p) => self.on_preloaded(*p),
            Msg::MetricsTick => self.sample_metrics(),
            Msg::Scrape(reply) => {
                let _ = reply.try_send(self.render_metrics());
            }
            Msg::Signal(s) => match self.stop.on_signal(s) {
                Asked::Rescan => self.rescan(),
                Asked::Stop => {}
            },
        }
    }

    /// The ConfigMaps and Secrets pods read: the manifests directory's
    /// (local, trusted: they win a name clash), then the fleet's. When they
    /// changed, the volumes that show them are rewritten.
    fn update_objects(&mut self) {
        let mut objects = self.statics.objects();
        for o in self
            .desired
            .fleet()
            .map(|f| f.objects())
            .unwrap_or_default()
        {
            if !objects.insert_first(o.clone()) {
                log::warn!(
                    "the fleet's {} {} is ignored: the manifests directory defines it",
                    o.kind.name(),
                    o.key()
                );
            }
        }
        for refused in objects.keep_immutable(&self.objects) {
            log::warn!("{refused}");
        }
        if *self.objects != objects {
            let now = crate::clock::wall_ms();
            // Seen before: since then; new: since now; gone: forgotten.
            let mut seen = VecMap::new();
            for o in objects.iter() {
                let k = (o.kind, o.key());
                let since = self.objects_seen.get(&k).copied().unwrap_or(now);
                seen.insert(k, since);
            }
            self.objects_seen = seen;
            self.objects = std::rc::Rc::new(objects);
            self.refresh_volumes();
        }
    }

    /// Reads the manifests directory again and reconciles its pods.
    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    fn rescan(&mut self) {
        if let Some(statics) = self.statics.rescan() {
            self.desired.set_static_workloads(self.statics.workloads());
            self.reconcile(Some(statics));
        }
    }

    /// The one reconcile path: `statics` when the manifests were read
    /// again, `None` when the fleet's documents changed. Queues what the
    /// desired-state core decided ([`crate::desired`]).
    fn reconcile(&mut self, statics: Option<Vec<crate::desired::StaticPod>>) {
        let now = Now::read();
        self.update_objects();
        let done = self.desired.reconcile(statics, now.wall_ms);
        if let Some(f) = self.fleet.as_mut() {
            f.status_changed();
        }
        for (source, e) in &done.new_errors {
            log::warn!("fleet: {}: {}", e.topic, e.message);
            let object = crate::fleet::doc::ObjectRef::desired(source);
            self.publish_event(
                object,
                crate::lifecycle::EventType::Warning,
                &e.reason,
                &e.message,
            );
        }
        for change in done.changes {
            match change {
                Change::Apply(pod) => self.pending.push_back(Input::ApplyPod {
                    pod: *pod,
                    fresh_uid: new_uid(),
                }),
                Change::Delete {
                    namespace,
                    name,
                    owner,
                } => {
                    if matches!(owner, crate::desired::Owner::Fleet(_)) {
                        log::info!("fleet: pod {namespace}/{name} is no longer desired");
                    }
                    self.pending.push_back(Input::DeletePod { namespace, name });
                }
                Change::ApplyWorkload {
                    workload,
                    doc,
                    owner,
                } => self
                    .workloads
                    .apply(*workload, doc, owner.label(), new_uid(), now),
                Change::DeleteWorkload { key, owner } => {
                    if matches!(owner, crate::desired::Owner::Fleet(_)) {
                        log::info!("fleet: {key} is no longer desired");
                    }
                    self.workloads.remove(&key, now);
                }
            }
        }
        self.load_zones();
        self.dirty = true;
    }

    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    fn persist(&mut self) {
        let (overrides, deployments) = self
            .fleet
            .as_ref()
            .map(|f| f.saved_extra(self.desired.fleet()))
            .unwrap_or_default();
        let state = StateFile::V5(StateV5 {
            v4: StateV4 {
                v3: StateV3 {
                    workloads: self.workloads.snapshot(),
                    v2: self.state_v2(),
                },
                overrides,
                deployments,
            },
            doomed_claims: self.workloads.doomed_claims().to_vec(),
        });
        match self.store.save(&state) {
            Ok(true) => log::debug!("state saved"),
            Ok(false) => {}
            Err(e) => log::error!("saving state: {e}"),
        }
    }

    fn state_v2(&self) -> StateV2 {
        StateV2 {
            node: self.node.snapshot(),
            sandboxes: self.shims.records(),
            // Only the admitted pods' sources: a rejected pod is not in the
            // snapshot (its file is read again at start), and thousands of
            // them would make every save as large as the manifests.
            sources: {
                let keys: Vec<String> = self
                    .node
                    .admitted()
                    .map(|p| format!("{}/{}", p.namespace(), p.name()))
                    .collect();
                self.desired.saved(keys.iter().map(String::as_str))
            },
            fleet_docs: self.fleet_saved(),
        }
    }
}

/// The state file's room for admitted pods' specs: half its cap, less what
/// the saved fleet documents (`docs`: one per source, each up to
/// `maxDocumentBytes`) may take beyond the other half, so that the whole
/// state always fits and every save succeeds.
fn spec_budget(docs: usize) -> usize {
    let cap = crate::store::DEFAULT_MAX_SIZE as usize;
    // 1 MiB for statuses, shim records and sources.
    let room = cap.saturating_sub(docs).saturating_sub(1 << 20);
    let budget = crate::lifecycle::DEFAULT_SPEC_BUDGET.min(room);
    if budget < crate::lifecycle::DEFAULT_SPEC_BUDGET {
        log::warn!(
            "fleet documents may take {docs} bytes of the state file's {cap}: pod specs get \
             {budget} bytes; lower maxDocumentBytes or the number of groups for more"
        );
    }
    budget
}

impl Agent {
    /// The core's input for an exit the shim reported, with the
    /// termination message read as the kubelet reads it.
    fn exited(
        &self,
        uid: &str,
        name: String,
        instance: u64,
        started_at_ns: i64,
        exit: proto::Exit,
    ) -> Input {
        let message = self
            .node
            .pod(uid)
            .and_then(|p| {
                let pod = &p.spec;
                let share = crate::lifecycle::termination::pod_share(
                    pod.spec.containers.len() + pod.spec.init_containers.len(),
                );
                let c = pod.spec.containers.iter().chain(&pod.spec.init_containers);
                let c = c.into_iter().find(|c| c.name == name)?;
                let pod_dir = self.cfg.state_dir.join("pods").join(uid);
                let log_dir = container::log_dir(&self.cfg.run_dir, pod, uid, &name);
                let dirs = (pod_dir.as_path(), log_dir.as_path());
                Some(container::termination_message(
                    c,
                    dirs,
                    instance,
                    exit.exit_code,
                    share,
                ))
            })
            .unwrap_or_default();
        Input::ContainerExited {
            uid: uid.to_string(),
            container: name,
            instance,
            exit_code: exit.exit_code,
            signal: exit.signal,
            oom_killed: exit.oom_killed,
            started_at_ms: started_at_ns / 1_000_000,
            finished_at_ms: exit.finished_at_ns / 1_000_000,
            message,
        }
    }
}

/// Keeps the logs of the current and the previous instance (for
/// `picolet logs --previous`); older ones are removed.
fn prune_logs(log_dir: &std::path::Path, instance: u64) {
    let Ok(rd) = std::fs::read_dir(log_dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let n = name.split('.').next().and_then(|n| n.parse::<u64>().ok());
        if n.is_some_and(|n| n + 1 < instance) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A random RFC 4122 version-4 UUID, for pods whose manifest has no uid.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    if !crate::sys::process::getrandom(&mut b) {
        // Fall back to time and pid; uniqueness per node is what matters.
        let t = crate::clock::wall_ns() as u128 ^ ((std::process::id() as u128) << 64);
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn pod_specs_get_half_the_state_file_unless_fleet_documents_need_more() {
        let mib = 1 << 20;
        assert_eq!(super::spec_budget(0), 8 * mib);
        // A device and two groups of 1 MiB documents: still 8 MiB.
        assert_eq!(super::spec_budget(3 * mib), 8 * mib);
        // Three 4 MiB documents: 16 - 12 - 1 MiB are left.
        assert_eq!(super::spec_budget(12 * mib), 3 * mib);
        assert_eq!(super::spec_budget(64 * mib), 0);
    }
}
