//! Ephemeral-storage accounting: the I/O shell around
//! [`crate::lifecycle::eviction`].
//!
//! Measuring means walking directory trees, which can take any time: never
//! on the agent's thread. Every `interval` (while some pod sets an
//! `ephemeral-storage` limit) a child `picolet du PATH...` walks each pod's
//! container dirs (`<state>/pods/<uid>/containers/<name>/`: the writable
//! upper dirs of its instances), their log dirs and the pod's disk-backed
//! volumes, and prints one JSON line per path; the reactor reads it. The
//! result goes back to the main loop as [`super::Msg::DiskUsage`], and the
//! pure core decides whom to evict.
//!
//! Image GC ([`crate::image::gc`]) runs from the same tick: when the image
//! store's filesystem is over the high threshold, or under eviction
//! pressure (imagefs, or nodefs on the same filesystem), a child `picolet
//! image-gc ROOT REQUEST` deletes unused images under the store's lock and
//! reports as [`super::Msg::ImageGc`]; the layer trees it moved into the
//! trash are deleted by `picolet rmtree` children. Under pressure no pod
//! is evicted before a GC has completed (the kubelet reclaims node-level
//! resources first), nor while what it deleted is still in the trash.

use crate::image::gc::{self, GcPolicy, GcSchedule};
use crate::image::{GcReport, GcRequest, InUse};
use crate::lifecycle::eviction::{self, DiskMonitor, FsStats, PodUsage, Signal, Thresholds};
use crate::lifecycle::{Input, Node};
use crate::reactor;
use crate::vecmap::VecMap;
use async_channel::Sender;
use std::collections::HashSet;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How often pods with a limit are measured, by default (the kubelet's
/// housekeeping interval).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// What one path measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Container {
        uid: String,
        name: String,
    },
    Volumes {
        uid: String,
    },
    /// A disk-backed emptyDir with a `sizeLimit`.
    EmptyDir {
        uid: String,
        name: String,
    },
}

/// The agent's side: when to measure, and whether a measurement runs.
#[derive(Debug)]
pub struct Disk {
    monitor: DiskMonitor,
    thresholds: Thresholds,
    /// The thresholds crossed at the last check: (signal, threshold bytes,
    /// available bytes). Non-empty: the node has `DiskPressure`.
    pressure: Vec<(Signal, u64, u64)>,
    /// The pressure the measurement in flight acts on: taken when it
    /// started, only once the last evicted pod's files were gone.
    round_pressure: Option<(Signal, u64, u64)>,
    /// Rounds in a row spent waiting for the trash to empty: a tree that
    /// cannot be deleted must not stop node-pressure eviction for good.
    trash_waits: u32,
    gc_policy: GcPolicy,
    gc: GcSchedule,
    /// Manifest digest → Unix ms a container using it last started.
    image_last_used: VecMap<String, i64>,
    /// Images of the fleet's kept `Healthy` documents (what a device-side
    /// rollback returns to): never collected.
    kept_images: Vec<String>,
}

/// Rounds to wait for the trash before evicting anyway.
const MAX_TRASH_WAITS: u32 = 6;

impl Disk {
    pub fn new(interval: Duration, thresholds: Thresholds, gc_policy: GcPolicy) -> Disk {
        Disk {
            monitor: DiskMonitor::new(interval.as_millis() as u64),
            thresholds,
            pressure: Vec::new(),
            round_pressure: None,
            trash_waits: 0,
            gc_policy,
            gc: GcSchedule::new(),
            image_last_used: VecMap::new(),
            kept_images: Vec::new(),
        }
    }

    /// The images of the fleet's kept `Healthy` documents: exempt from
    /// image GC, as images in use are.
    pub fn set_kept_images(&mut self, images: Vec<String>) {
        self.kept_images = images;
    }

    /// A container using the image with this manifest digest started.
    pub fn note_image_use(&mut self, manifest: &str, wall_ms: i64) {
        self.image_last_used.insert(manifest.to_string(), wall_ms);
    }

    /// Whether the node is under disk pressure (last check).
    pub fn under_pressure(&self) -> bool {
        !self.pressure.is_empty()
    }

    /// `statvfs` of the state dir (nodefs) and the image store (imagefs),
    /// against the thresholds; logs each transition of `DiskPressure`.
    /// Returns the image filesystem's stats and whether the pressure is on
    /// it (imagefs, or nodefs on the same filesystem): image GC helps.
    fn check_pressure(&mut self, dirs: &Dirs<'_>) -> (FsStats, bool) {
        let stat = |p: &Path| {
            super::fs_sys::statvfs(p).unwrap_or_else(|e| {
                log::debug!("statvfs {}: {e}", p.display());
                eviction::FsStats {
                    total: 0,
                    available: 0,
                }
            })
        };
        let images = dirs.state_dir.join("images");
        let nodefs = stat(dirs.state_dir);
        let imagefs = stat(&images);
        let now = eviction::pressure(self.thresholds, nodefs, imagefs);
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        let same_fs = dev(dirs.state_dir).is_some() && dev(dirs.state_dir) == dev(&images);
        let on_images = now.iter().any(|(sig, _, _)| {
            *sig == Signal::ImagefsAvailable || (*sig == Signal::NodefsAvailable && same_fs)
        });
        match (self.pressure.is_empty(), now.is_empty()) {
            (true, false) => {
                for (sig, threshold, available) in &now {
                    log::warn!(
                        "DiskPressure: {} {available} bytes < {threshold}: {}evicting pods (BestEffort first)",
                        sig.name(),
                        if on_images {
                            "deleting unused images, then "
                        } else {
                            ""
                        }
                    );
                }
            }
            (false, true) => log::info!("DiskPressure over"),
            _ => {}
        }
        self.pressure = now;
        (imagefs, on_images)
    }

    /// Starts a `picolet image-gc` child if one is due: over the high
    /// threshold (free down to the low one), or under pressure on the
    /// image filesystem (every eligible unused image).
    #[allow(clippy::too_many_arguments)]
    fn maybe_collect_images(
        &mut self,
        node: &Node,
        dirs: &Dirs<'_>,
        program: &Path,
        tx: &Sender<super::Msg>,
        now_ms: u64,
        imagefs: FsStats,
        pressure: bool,
    ) {
        let want = if pressure {
            u64::MAX
        } else {
            gc::bytes_to_free(self.gc_policy, imagefs)
        };
        if !self.gc.start(now_ms, want, pressure) {
            return;
        }
        if pressure {
            log::info!("image GC: disk pressure: deleting every unused image before evicting pods");
        } else {
            log::info!(
                "image GC: the image filesystem is over {}% used: freeing {want} bytes (down to {}%)",
                self.gc_policy.high_pct,
                self.gc_policy.low_pct
            );
        }
        let req = GcRequest {
            want,
            min_age_ms: self.gc_policy.min_age_ms,
            now_ms: crate::clock::wall_ms(),
            in_use: in_use_with(node, &self.kept_images),
            last_used: self.image_last_used.clone(),
            trash: super::trash::trash_dir(dirs.state_dir),
        };
        let request = match serde_json::to_string(&req) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.try_send(super::Msg::ImageGc(Err(e.to_string())));
                return;
            }
        };
        let mut cmd = Command::new(program);
        cmd.arg("image-gc")
            .arg(dirs.state_dir.join("images"))
            .arg(request);
        let tx = tx.clone();
        reactor::spawn(async move {
            let result = match reactor::process::output(&mut cmd, 1 << 20).await {
                Ok((status, out)) if status.success() => serde_json::from_slice::<GcReport>(&out)
                    .map_err(|e| format!("picolet image-gc: {e}")),
                Ok((status, out)) => Err(format!(
                    "picolet image-gc: {status}: {}",
                    String::from_utf8_lossy(&out).trim()
                )),
                Err(e) => Err(format!("picolet image-gc: {e}")),
            };
            let _ = tx.send(super::Msg::ImageGc(result)).await;
        })
        .detach();
    }

    /// A `picolet image-gc` child finished: log what it deleted (the
    /// kubelet's events as log lines), delete the layer trees it moved into
    /// the trash.
    pub fn on_image_gc(&mut self, result: Result<GcReport, String>, now_ms: u64) {
        self.on_image_gc_with(Path::new("/proc/self/exe"), result, now_ms)
    }

    /// [`Disk::on_image_gc`] with the program that removes trees (tests).
    pub fn on_image_gc_with(
        &mut self,
        program: &Path,
        result: Result<GcReport, String>,
        now_ms: u64,
    ) {
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                self.gc.finished(now_ms, false);
                log::warn!("Warning ImageGCFailed: {e}");
                return;
            }
        };
        self.gc.finished(now_ms, report.freed > 0);
        for d in &report.deleted {
            log::info!(
                "image GC: deleted image {} ({}): {} bytes freed",
                d.references.join(", "),
                d.manifest,
                d.bytes
            );
        }
        if report.objects > 0 {
            log::info!(
                "image GC: {} unreferenced blobs and layers deleted, {} bytes",
                report.objects,
                report.freed
            );
        }
        for t in &report.trashed {
            super::trash::remove_moved(program, t);
        }
        if report.needed != u64::MAX && report.freed < report.needed {
            log::warn!(
                "Warning FreeDiskSpaceFailed: {}",
                gc::shortfall_message(report.needed, report.freed)
            );
        } else if report.needed == u64::MAX && report.deleted.is_empty() {
            log::info!("image GC: no unused image old enough to delete");
        }
    }

    /// Starts a ticker task: a [`super::Msg::DiskTick`] every interval.
    pub fn spawn_ticker(&self, tx: Sender<super::Msg>) {
        let every = Duration::from_millis(self.monitor.interval_ms.max(100));
        reactor::spawn(async move {
            loop {
                reactor::sleep(every).await;
                if tx.send(super::Msg::DiskTick).await.is_err() {
                    return;
                }
            }
        })
        .detach();
    }

    /// On a tick: starts `picolet du` over the limited pods' dirs if one
    /// is due; its result arrives as `Msg::DiskUsage`.
    pub fn tick(
        &mut self,
        node: &Node,
        dirs: &Dirs<'_>,
        program: &Path,
        tx: &Sender<super::Msg>,
        now_ms: u64,
    ) {
        // Whether the trash is empty, looked at before statvfs: when it is,
        // the space of what was deleted is back in these numbers.
        let trash_empty = trash_is_empty(dirs.state_dir);
        let (imagefs, images_pressed) = self.check_pressure(dirs);
        self.maybe_collect_images(node, dirs, program, tx, now_ms, imagefs, images_pressed);
        let targets = targets(node, dirs, self.under_pressure());
        if !self.monitor.start(now_ms, !targets.is_empty()) {
            return;
        }
        // An evicted pod's files still being deleted (its sandbox, or its
        // dirs in the trash, or deleted images' layers): the space is on
        // its way back; wait for it before evicting more for node
        // pressure. On the image filesystem, unused images go first.
        let trash_busy = !self.pressure.is_empty() && !trash_empty;
        self.trash_waits = if trash_busy { self.trash_waits + 1 } else { 0 };
        let settled = !eviction::cleaning(node.pods())
            && (!trash_busy || self.trash_waits > MAX_TRASH_WAITS)
            && (!images_pressed || self.gc.may_evict());
        self.round_pressure = self.pressure.first().copied().filter(|_| settled);
        let program = program.to_path_buf();
        let tx = tx.clone();
        reactor::spawn(async move {
            let usage = measure(&program, &targets).await;
            let _ = tx.send(super::Msg::DiskUsage(usage)).await;
        })
        .detach();
    }

    /// A measurement finished: the evictions it calls for, as inputs.
    #[must_use = "the evictions are to be fed to the lifecycle"]
    pub fn on_usage(
        &mut self,
        node: &Node,
        usage: Result<VecMap<String, PodUsage>, String>,
    ) -> Vec<Input> {
        self.monitor.finished();
        let usage = match usage {
            Ok(u) => u,
            Err(e) => {
                log::warn!("measuring ephemeral storage: {e}");
                return Vec::new();
            }
        };
        let mut evict = eviction::decide(node.pods(), &usage);
        // Node pressure: one more pod per round, unless one goes already.
        if let Some((signal, threshold, available)) = self.round_pressure.take() {
            if evict.is_empty() {
                evict.extend(eviction::pressure_victim(
                    node.pods(),
                    &usage,
                    signal,
                    threshold,
                    available,
                ));
            }
        }
        evict
            .into_iter()
            .map(|e| {
                log::warn!("pod {}: evicted: {}", e.uid, e.message);
                Input::EvictPod {
                    uid: e.uid,
                    message: e.message,
                    container: e.container,
                }
            })
            .collect()
    }
}

/// What the node's pods use: every image their containers name (init
/// containers too, any phase) and every image ID their containers ran.
pub fn in_use(node: &Node) -> InUse {
    in_use_with(node, &[])
}

/// [`in_use`] plus `kept` (references of images to keep all the same).
pub fn in_use_with(node: &Node, kept: &[String]) -> InUse {
    let mut refs: crate::vecmap::VecSet<String> = kept.iter().cloned().collect();
    let mut ids = crate::vecmap::VecSet::new();
    for p in node.pods() {
        for c in p.spec.all_containers() {
            refs.insert(c.image.clone());
        }
        for cs in p
            .status
            .init_container_statuses
            .iter()
            .chain(&p.status.container_statuses)
        {
            if !cs.image_id.is_empty() {
                ids.insert(cs.image_id.clone());
            }
        }
    }
    InUse {
        references: refs.into_iter().collect(),
        image_ids: ids.into_iter().collect(),
    }
}

/// Whether `<state>/trash` holds nothing (one small `read_dir`).
fn trash_is_empty(state_dir: &Path) -> bool {
    std::fs::read_dir(super::trash::trash_dir(state_dir)).map_or(true, |mut rd| rd.next().is_none())
}

/// Where pods keep their files.
#[derive(Debug)]
pub struct Dirs<'a> {
    pub state_dir: &'a Path,
    pub run_dir: &'a Path,
}

impl Dirs<'_> {
    fn pod(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }
}

/// The paths to measure for every running pod with a limit, or for every
/// running pod when `all` (node pressure).
pub fn targets(node: &Node, dirs: &Dirs<'_>, all: bool) -> Vec<(Target, Vec<PathBuf>)> {
    let mut out = Vec::new();
    for p in node.pods() {
        if p.status.phase.is_terminal()
            || p.is_terminating()
            || !(all || eviction::has_limit(&p.spec))
        {
            continue;
        }
        let pod_dir = dirs.pod(&p.uid);
        let logs = super::container::pod_log_dir(dirs.run_dir, &p.spec, &p.uid);
        for c in p.spec.all_containers() {
            out.push((
                Target::Container {
                    uid: p.uid.clone(),
                    name: c.name.clone(),
                },
                vec![pod_dir.join("containers").join(&c.name), logs.join(&c.name)],
            ));
        }
        out.push((
            Target::Volumes { uid: p.uid.clone() },
            vec![pod_dir.join("volumes")],
        ));
        for (name, _) in eviction::empty_dir_limits(&p.spec) {
            out.push((
                Target::EmptyDir {
                    uid: p.uid.clone(),
                    name: name.to_string(),
                },
                vec![pod_dir.join("volumes").join(name)],
            ));
        }
    }
    out
}

/// Runs `program du PATH...` and folds its lines into usage per pod.
async fn measure(
    program: &Path,
    targets: &[(Target, Vec<PathBuf>)],
) -> Result<VecMap<String, PodUsage>, String> {
    let paths: Vec<&PathBuf> = targets.iter().flat_map(|(_, p)| p).collect();
    let mut cmd = Command::new(program);
    cmd.arg("du").args(&paths);
    let limit = 64 * paths.len() + 4096;
    let (status, out) = reactor::process::output(&mut cmd, limit)
        .await
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if !status.success() {
        return Err(format!(
            "picolet du: {status}: {}",
            String::from_utf8_lossy(&out).trim()
        ));
    }
    let sizes = parse_du(&out, paths.len())?;
    let mut usage: VecMap<String, PodUsage> = VecMap::new();
    let mut sizes = sizes.into_iter();
    for (target, ps) in targets {
        let bytes = sizes
            .by_ref()
            .take(ps.len())
            .fold(0u64, |a, b| a.saturating_add(b));
        match target {
            Target::Container { uid, name } => {
                *usage
                    .entry(uid.clone())
                    .or_default()
                    .containers
                    .entry(name.clone())
                    .or_default() += bytes;
            }
            Target::Volumes { uid } => usage.entry(uid.clone()).or_default().volumes += bytes,
            Target::EmptyDir { uid, name } => {
                let u = usage.entry(uid.clone()).or_default();
                u.empty_dirs.insert(name.clone(), bytes);
            }
        }
    }
    Ok(usage)
}

/// `picolet du`'s output: one decimal byte count per line, one line per
/// path in order.
pub fn parse_du(out: &[u8], n: usize) -> Result<Vec<u64>, String> {
    let text = std::str::from_utf8(out).map_err(|_| "picolet du: output is not UTF-8")?;
    let sizes = text
        .lines()
        .map(|l| l.trim().parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("picolet du: {e} in {text:?}"))?;
    if sizes.len() != n {
        return Err(format!("picolet du: {} lines for {n} paths", sizes.len()));
    }
    Ok(sizes)
}

/// `picolet du PATH...`, the agent's child: for each path, prints the bytes
/// allocated under it (`st_blocks × 512`, each inode once, not crossing
/// into other filesystems, not following symlinks; a missing path is 0),
/// one line per path. Returns the exit code; an error goes to stdout.
pub fn du_main(args: &[String]) -> i32 {
    let mut out = io::stdout().lock();
    for p in args {
        let mut seen = HashSet::new();
        match du(Path::new(p), &mut seen) {
            Ok(n) => {
                if writeln!(out, "{n}").is_err() {
                    return 1;
                }
            }
            Err(e) => {
                let _ = writeln!(out, "{p}: {e}");
                return 1;
            }
        }
    }
    0
}

/// Bytes allocated under `path` (see [`du_main`]).
pub fn du(path: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
    let top = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let dev = top.dev();
    let mut total = 0u64;
    let mut stack = vec![(path.to_path_buf(), top)];
    while let Some((p, m)) = stack.pop() {
        if m.dev() != dev || !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        total = total.saturating_add(m.blocks().saturating_mul(512));
        if !m.is_dir() {
            continue;
        }
        let rd = match std::fs::read_dir(&p) {
            Ok(rd) => rd,
            // Removed while walking (an instance's dir being pruned).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = match e {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match e.metadata() {
                Ok(m) => stack.push((e.path(), m)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
