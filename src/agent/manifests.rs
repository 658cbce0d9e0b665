//! Static pods: every Pod in `*.yaml`, `*.yml` and `*.json` under the
//! manifests directory (`--manifests DIR`), and the ConfigMaps and Secrets
//! beside them (docs/config-and-secrets.md).
//!
//! The directory is followed with inotify (one fd, registered on the reactor).
//! After any event the directory is listed again and the result is diffed
//! against the previous scan by the agent; only files whose inode, size,
//! mtime or ctime changed are read and parsed again ([`rescan`]), so an edit
//! to one file does not re-parse the others. A file is read only up to
//! [`spec::load::MAX_MANIFEST_BYTES`] (1.5 MiB; a larger one is an error
//! naming it), and text nested deeper than [`spec::load::MAX_NESTING`] is
//! refused before parsing: together they bound the time one file can take
//! on the agent's thread. An invalid file is recorded with its error and
//! changes nothing: the pods it held before keep running, as they were.

use crate::spec::workload::Workload;
use crate::spec::{self, ConfigObject, Manifest, Objects, Pod};
use crate::vecmap::VecMap;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What one scan of the directory found.
#[derive(Debug, Default, Clone)]
pub struct Scan {
    /// Valid files and the pods they define.
    pub files: VecMap<PathBuf, Vec<Pod>>,
    /// The ConfigMaps and Secrets of the valid files.
    pub objects: VecMap<PathBuf, Vec<ConfigObject>>,
    /// The workloads of the valid files, each with its document (JSON).
    pub workloads: VecMap<PathBuf, Vec<(Workload, String)>>,
    /// Files that failed to load, with the error (naming the field).
    pub errors: VecMap<PathBuf, String>,
    /// How each file looked when it was parsed, and what parsing it gave
    /// (`None`: its pods, in `files`; `Some`: its parse error).
    parsed: VecMap<PathBuf, (Stamp, Option<String>)>,
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

fn is_manifest(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml") | Some("json")
    ) && !p
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Reads every manifest in `dir`. A file with any invalid document is an
/// error as a whole (a half-applied file would be a surprise).
pub fn scan(dir: &Path) -> io::Result<Scan> {
    rescan(dir, &Scan::default())
}

/// [`scan`], reusing what `prev` parsed for files that did not change.
pub fn rescan(dir: &Path, prev: &Scan) -> io::Result<Scan> {
    let mut out = Scan::default();
    let mut paths: Vec<(PathBuf, std::fs::Metadata)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_manifest(p))
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m)))
        .filter(|(_, m)| m.is_file())
        .collect();
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, meta) in paths {
        let stamp = Stamp::of(&meta);
        let unchanged = prev.parsed.get(&path).filter(|(s, _)| *s == stamp);
        let result = match unchanged {
            Some((_, Some(e))) => Err(e.clone()),
            Some((_, None)) => match prev.files.get(&path) {
                Some(pods) => Ok(Contents {
                    pods: pods.clone(),
                    objects: prev.objects.get(&path).cloned().unwrap_or_default(),
                    workloads: prev.workloads.get(&path).cloned().unwrap_or_default(),
                }),
                None => load(&path),
            },
            None => load(&path),
        };
        out.parsed
            .insert(path.clone(), (stamp, result.as_ref().err().cloned()));
        match result {
            Err(e) => {
                out.errors.insert(path, e);
            }
            Ok(c) => {
                if !c.objects.is_empty() {
                    out.objects.insert(path.clone(), c.objects);
                }
                if !c.workloads.is_empty() {
                    out.workloads.insert(path.clone(), c.workloads);
                }
                out.files.insert(path, c.pods);
            }
        }
    }
    Ok(out)
}

/// What one file defines.
#[derive(Default)]
struct Contents {
    pods: Vec<Pod>,
    objects: Vec<ConfigObject>,
    workloads: Vec<(Workload, String)>,
}

/// The pods, objects and workloads of one file, or its first error
/// (naming the file).
fn load(path: &Path) -> Result<Contents, String> {
    let docs = spec::load_manifests_file(path).map_err(|e| e.to_string())?;
    let mut c = Contents::default();
    for d in docs {
        match d.map_err(|e| e.to_string())? {
            Manifest::Pod(p) => c.pods.push(*p),
            Manifest::Object(o) => c.objects.push(o),
            Manifest::Workload(w, doc) => {
                // A CronJob's time zone must exist on this device.
                crate::sys::time::check_time_zone(&w)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                c.workloads.push((*w, doc))
            }
        }
    }
    Ok(c)
}

/// The workloads of a scan, with the file of each; one defined twice
/// (same kind, namespace and name) belongs to the first file.
pub fn workloads(scan: &Scan) -> Vec<crate::desired::StaticWorkload> {
    let mut seen = crate::vecmap::VecSet::new();
    let mut out = Vec::new();
    for (path, list) in &scan.workloads {
        for (w, doc) in list {
            if seen.insert(w.key()) {
                out.push(crate::desired::StaticWorkload {
                    workload: w.clone(),
                    doc: doc.clone(),
                    path: path.display().to_string(),
                });
            } else {
                log::warn!(
                    "{}: {} is already defined by another file",
                    path.display(),
                    w.key()
                );
            }
        }
    }
    out
}

/// The ConfigMaps and Secrets of a scan; an object defined twice belongs
/// to the first file (in path order).
pub fn objects(scan: &Scan) -> Objects {
    let mut out = Objects::default();
    for (path, list) in &scan.objects {
        for o in list {
            if !out.insert_first(o.clone()) {
                log::warn!(
                    "{}: {} {} is already defined by another file",
                    path.display(),
                    o.kind.name(),
                    o.key()
                );
            }
        }
    }
    out
}

/// Merges a new scan into the previous one: files that now fail keep their
/// previous pods (nothing changes for an invalid edit).
pub fn merge_keep_last_good(prev: &Scan, mut next: Scan) -> Scan {
    for path in next.errors.keys() {
        if let Some(pods) = prev.files.get(path) {
            next.files.insert(path.clone(), pods.clone());
        }
        if let Some(objects) = prev.objects.get(path) {
            next.objects.insert(path.clone(), objects.clone());
        }
        if let Some(w) = prev.workloads.get(path) {
            next.workloads.insert(path.clone(), w.clone());
        }
    }
    next
}

/// The desired pods of a scan, keyed by `namespace/name`. A name defined in
/// two files is an error for the later file (in path order).
pub fn desired(scan: &mut Scan) -> VecMap<String, Pod> {
    let mut out = VecMap::new();
    let mut clashes = Vec::new();
    for (path, pods) in &scan.files {
        for pod in pods {
            let key = format!("{}/{}", pod.metadata.namespace, pod.metadata.name);
            if out.contains_key(&key) {
                clashes.push((path.clone(), key))
            } else {
                out.insert(key, pod.clone());
            }
        }
    }
    for (path, key) in clashes {
        scan.errors.insert(
            path.clone(),
            format!(
                "{}: pod {key} is already defined by another file",
                path.display()
            ),
        );
    }
    out
}

/// An inotify fd watching one directory for changes to its entries.
#[derive(Debug)]
pub struct Watch {
    inotify: Inotify,
}

impl Watch {
    pub fn new(dir: &Path) -> io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(io::Error::from)?;
        // React when a writer closes the file or renames it into place, not
        // on every write(2): a half-written file is never read.
        let mask = AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        inotify.add_watch(dir, mask).map_err(io::Error::from)?;
        Ok(Watch { inotify })
    }

    /// Drains pending events; returns how many were read (0 = none).
    pub fn drain(&self) -> io::Result<usize> {
        let mut total = 0;
        loop {
            match self.inotify.read_events() {
                Ok(events) if events.is_empty() => return Ok(total),
                Ok(events) => total += events.len(),
                Err(nix::errno::Errno::EAGAIN) => return Ok(total),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for Watch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}
