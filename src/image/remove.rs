//! Deleting images: the agent's image GC (run in its `picolet image-gc`
//! child), `picolet image rm` and `picolet image prune`.
//!
//! Everything here runs under the index lock ([`ImageStore::lock_index`]),
//! which `picolet image import` holds for its whole run: no import can
//! meanwhile find a blob or layer present, skip storing it, and tag an
//! image whose files are then deleted.
//!
//! Deleting an image removes its index entries first (one atomic rewrite
//! of `index.json`), then every blob and unpacked layer that no remaining
//! entry references (nor an image ID the agent still runs: a container
//! started from a tag that was re-imported since keeps its layers).
//! Blobs are single files and are unlinked; a layer is a directory tree,
//! so it is renamed into the trash and the caller deletes it (the agent
//! with its `picolet rmtree` child, the CLI itself). A crash in between
//! leaves unreferenced files, which the next GC, `rm` or `prune` deletes.

use crate::vecmap::VecMap;
use crate::vecmap::VecSet;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::digest::parse_json;
use super::gc::{self, GcImage};
use super::index::{ANNOTATION_IMPORTED, ANNOTATION_LAST_USED, IndexLock, ref_name};
use super::oci::{ConfigFile, Descriptor, Index};
use super::store::TEMP_COUNTER;
use super::{Digest, ImageError, ImageStore};

/// What one pod (or the agent's pods together) uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InUse {
    /// Image references the pods name (`spec.containers[].image`, init
    /// containers too).
    #[serde(default)]
    pub references: Vec<String>,
    /// Image IDs (config digests) their containers run or ran
    /// (`status.containerStatuses[].imageID`).
    #[serde(default)]
    pub image_ids: Vec<String>,
}

impl InUse {
    fn extend(&mut self, other: &InUse) {
        self.references.extend(other.references.iter().cloned());
        self.image_ids.extend(other.image_ids.iter().cloned());
    }
}

/// One GC run, as the agent asks its child for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRequest {
    /// Bytes to free; `u64::MAX`: every eligible unused image.
    pub want: u64,
    pub min_age_ms: u64,
    /// Unix ms.
    pub now_ms: i64,
    pub in_use: InUse,
    /// Manifest digest → Unix ms a container using it last started (the
    /// agent's records since its start; merged into the index).
    #[serde(default)]
    pub last_used: VecMap<String, i64>,
    /// The directory layer trees are renamed into (`<state>/trash`).
    pub trash: PathBuf,
}

/// One deleted image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedImage {
    pub references: Vec<String>,
    /// `sha256:<manifest digest>`.
    pub manifest: String,
    /// Bytes its deletion freed (objects only it referenced).
    pub bytes: u64,
}

/// What a GC, `rm` or `prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// What was asked for ([`GcRequest::want`]; 0 for `rm`).
    pub needed: u64,
    pub deleted: Vec<DeletedImage>,
    /// Bytes deleted: blobs and layers, measured before deletion.
    pub freed: u64,
    /// Bytes every eligible image would have freed.
    pub eligible: u64,
    /// Layer trees moved into the trash: the caller deletes them.
    pub trashed: Vec<PathBuf>,
    /// Blobs and layers deleted that no index entry referenced any more.
    pub objects: u64,
}

/// An index entry's files, as keys `blob:sha256:…` / `layer:sha256:…`.
fn objects_of(store: &ImageStore, desc: &Descriptor) -> Result<(Vec<String>, String), ImageError> {
    let (manifest, digest) = store.read_manifest(desc)?;
    let mut out = vec![format!("blob:{digest}")];
    let config_digest = Digest::parse(&manifest.config.digest)?;
    out.push(format!("blob:{config_digest}"));
    for l in &manifest.layers {
        out.push(format!("blob:{}", Digest::parse(&l.digest)?));
    }
    out.extend(config_layers(store, &config_digest)?);
    Ok((out, config_digest.to_string()))
}

/// The layer keys of the image config `config_digest`.
fn config_layers(store: &ImageStore, config_digest: &Digest) -> Result<Vec<String>, ImageError> {
    let what = format!("image config {config_digest}");
    let bytes = store.read_small_blob(config_digest, &what)?;
    let config: ConfigFile = parse_json(&bytes, &what)?;
    config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Ok(format!("layer:{}", Digest::parse(d)?)))
        .collect()
}

/// Unix ms of the file's mtime (0 if unknown).
fn mtime_ms(path: &Path) -> i64 {
    fs::metadata(path).map_or(0, |m| {
        m.mtime()
            .saturating_mul(1000)
            .saturating_add(m.mtime_nsec() / 1_000_000)
    })
}

fn annotation_ms(desc: &Descriptor, key: &str) -> Option<i64> {
    desc.annotations.get(key)?.parse().ok()
}

/// The index grouped by manifest: one [`GcImage`] per manifest digest,
/// `None` objects for an entry whose files cannot be read (damaged).
struct Inventory {
    images: Vec<GcImage>,
    /// Manifest digests whose files could not be read.
    damaged: VecSet<String>,
    /// Config digest per manifest digest.
    image_ids: VecMap<String, String>,
}

impl ImageStore {
    fn object_path(&self, key: &str) -> Option<PathBuf> {
        let (kind, digest) = key.split_once(':')?;
        let digest = Digest::parse(digest).ok()?;
        match kind {
            "blob" => Some(self.blob_path(&digest)),
            "layer" => Some(self.layer_path(&digest)),
            _ => None,
        }
    }

    /// Bytes allocated by one object (a blob, or a layer tree walked).
    fn object_size(&self, key: &str) -> u64 {
        let Some(path) = self.object_path(key) else {
            return 0;
        };
        crate::agent::disk::du(&path, &mut HashSet::new()).unwrap_or(0)
    }

    fn inventory(&self, index: &Index, in_use: &InUse, now_ms: i64) -> Inventory {
        let mut used_manifests = VecSet::new();
        for r in &in_use.references {
            if let Ok(Some((_, d))) = self.find(index, r) {
                used_manifests.insert(d.digest.clone());
            }
        }
        let used_ids: VecSet<&str> = in_use.image_ids.iter().map(String::as_str).collect();
        let mut groups: VecMap<&str, Vec<&Descriptor>> = VecMap::new();
        for d in &index.manifests {
            groups.entry(d.digest.as_str()).or_default().push(d);
        }
        let mut inv = Inventory {
            images: Vec::new(),
            damaged: VecSet::new(),
            image_ids: VecMap::new(),
        };
        for (digest, descs) in groups {
            let (objects, image_id) = match objects_of(self, descs[0]) {
                Ok(o) => o,
                Err(e) => {
                    log::warn!("image {digest}: {e}; left alone by image GC");
                    inv.damaged.insert(digest.to_string());
                    continue;
                }
            };
            let imported_ms = descs
                .iter()
                .filter_map(|d| annotation_ms(d, ANNOTATION_IMPORTED))
                .min()
                .unwrap_or_else(|| {
                    Digest::parse(digest).map_or(0, |m| mtime_ms(&self.blob_path(&m)))
                });
            let last_used_ms = descs
                .iter()
                .filter_map(|d| annotation_ms(d, ANNOTATION_LAST_USED))
                .max();
            let in_use = used_manifests.contains(digest) || used_ids.contains(image_id.as_str());
            inv.image_ids.insert(digest.to_string(), image_id);
            inv.images.push(GcImage {
                manifest: digest.to_string(),
                references: descs
                    .iter()
                    .filter_map(|d| ref_name(d).map(str::to_string))
                    .collect(),
                objects,
                imported_ms,
                // In use now: used now, as the kubelet's image detection.
                last_used_ms: if in_use { Some(now_ms) } else { last_used_ms },
                in_use,
            });
        }
        inv
    }

    /// The agent's image GC: deletes the unused images [`gc::plan`]
    /// picks for `req.want` bytes, then every unreferenced blob and layer.
    /// The caller holds the lock.
    pub fn collect_garbage(
        &self,
        lock: &IndexLock,
        req: &GcRequest,
    ) -> Result<GcReport, ImageError> {
        let index = self.read_index()?;
        let mut inv = self.inventory(&index, &req.in_use, req.now_ms);
        for img in &mut inv.images {
            if let Some(t) = req.last_used.get(&img.manifest) {
                img.last_used_ms = Some(img.last_used_ms.map_or(*t, |u| u.max(*t)));
            }
        }
        let mut sizes = VecMap::new();
        for img in inv
            .images
            .iter()
            .filter(|i| i.eligible(req.now_ms, req.min_age_ms))
        {
            for o in &img.objects {
                if !sizes.contains_key(o) {
                    sizes.insert(o.clone(), self.object_size(o));
                }
            }
        }
        let plan = gc::plan(&inv.images, &sizes, req.want, req.now_ms, req.min_age_ms);
        let doomed: VecSet<&str> = plan.delete.iter().map(String::as_str).collect();
        let mut report = self.delete(
            lock,
            index,
            &inv,
            &|d| doomed.contains(d.digest.as_str()),
            req,
        )?;
        report.needed = req.want;
        report.eligible = plan.eligible;
        Ok(report)
    }

    /// `picolet image rm REF...`: removes each reference (a tag; a bare
    /// image ID or manifest digest removes every tag of that image), then
    /// whatever no remaining entry references. Refused (nothing removed)
    /// if a reference is missing, or its image is in use by one of
    /// `pods` (name, what it uses). The caller holds the lock.
    pub fn remove(
        &self,
        lock: &IndexLock,
        references: &[String],
        pods: &[(String, InUse)],
        trash: &Path,
        now_ms: i64,
    ) -> Result<GcReport, ImageError> {
        let index = self.read_index()?;
        let mut all = InUse::default();
        for (_, u) in pods {
            all.extend(u);
        }
        let inv = self.inventory(&index, &all, now_ms);
        let mut names = VecSet::new();
        let mut whole = VecSet::new();
        for r in references {
            let Some((name, desc)) = self.find(&index, r)? else {
                return Err(ImageError::NotFound {
                    reference: r.clone(),
                });
            };
            let image_id = inv.image_ids.get(&desc.digest).cloned().unwrap_or_default();
            for (pod, u) in pods {
                let by_name = u.references.iter().any(
                    |x| matches!(self.find(&index, x), Ok(Some((_, d))) if d.digest == desc.digest),
                );
                if by_name || u.image_ids.contains(&image_id) {
                    return Err(ImageError::InUse {
                        reference: r.clone(),
                        pod: pod.clone(),
                    });
                }
            }
            if r.starts_with("sha256:") {
                whole.insert(desc.digest.clone());
            } else {
                names.insert(name);
            }
        }
        let req = GcRequest {
            want: 0,
            min_age_ms: 0,
            now_ms,
            in_use: all,
            last_used: VecMap::new(),
            trash: trash.to_path_buf(),
        };
        self.delete(
            lock,
            index,
            &inv,
            &|d| whole.contains(&d.digest) || ref_name(d).is_some_and(|n| names.contains(n)),
            &req,
        )
    }

    /// `picolet image prune`: deletes every image no pod uses, whatever
    /// its age. The caller holds the lock.
    pub fn prune(
        &self,
        lock: &IndexLock,
        in_use: &InUse,
        trash: &Path,
        now_ms: i64,
    ) -> Result<GcReport, ImageError> {
        self.collect_garbage(
            lock,
            &GcRequest {
                want: u64::MAX,
                min_age_ms: 0,
                now_ms,
                in_use: in_use.clone(),
                last_used: VecMap::new(),
                trash: trash.to_path_buf(),
            },
        )
    }

    /// Removes the entries `doomed` picks, records last use on the rest,
    /// rewrites the index, then deletes the unreferenced objects.
    fn delete(
        &self,
        lock: &IndexLock,
        mut index: Index,
        inv: &Inventory,
        doomed: &dyn Fn(&Descriptor) -> bool,
        req: &GcRequest,
    ) -> Result<GcReport, ImageError> {
        let before = index.clone();
        let mut gone: VecMap<String, Vec<String>> = VecMap::new();
        index.manifests.retain(|d| {
            if doomed(d) {
                gone.entry(d.digest.clone())
                    .or_default()
                    .extend(ref_name(d).map(str::to_string));
                false
            } else {
                true
            }
        });
        let mut touched: VecMap<&str, i64> = VecMap::new();
        for i in &inv.images {
            if let Some(t) = i.last_used_ms {
                touched.insert(i.manifest.as_str(), t);
            }
        }
        for d in &mut index.manifests {
            let t = touched
                .get(d.digest.as_str())
                .copied()
                .into_iter()
                .chain(req.last_used.get(&d.digest).copied())
                .max();
            if let Some(t) = t {
                if annotation_ms(d, ANNOTATION_LAST_USED).is_none_or(|old| old < t) {
                    d.annotations
                        .insert(ANNOTATION_LAST_USED.to_string(), t.to_string());
                }
            }
        }
        if index != before {
            self.write_index(lock, &mut index)?;
        }
        // What stays referenced: every remaining entry's files, and the
        // layers of image IDs containers run.
        let mut keep: VecSet<String> = VecSet::new();
        let mut complete = true;
        for d in &index.manifests {
            match objects_of(self, d) {
                Ok((objects, _)) => keep.extend(objects),
                Err(_) => {
                    complete = false;
                    keep.insert(format!("blob:{}", d.digest));
                }
            }
        }
        for id in &req.in_use.image_ids {
            let Some(hex) = id.strip_prefix("sha256:") else {
                continue;
            };
            let Ok(digest) = Digest::from_hex(hex) else {
                continue;
            };
            if self.blob_path(&digest).exists() {
                keep.insert(format!("blob:{digest}"));
                match config_layers(self, &digest) {
                    Ok(layers) => keep.extend(layers),
                    Err(_) => complete = false,
                }
            }
        }
        let mut report = GcReport::default();
        let mut bytes_of: VecMap<String, u64> = VecMap::new();
        if complete {
            for (kind, dir) in [("blob", "blobs/sha256"), ("layer", "layers/sha256")] {
                let dir = self.root().join(dir);
                let rd = fs::read_dir(&dir).map_err(ImageError::io("read", &dir))?;
                for e in rd {
                    let e = e.map_err(ImageError::io("read", &dir))?;
                    let name = e.file_name();
                    let Some(hex) = name.to_str() else { continue };
                    let Ok(digest) = Digest::from_hex(hex) else {
                        continue;
                    };
                    let key = format!("{kind}:{digest}");
                    if keep.contains(&key) {
                        continue;
                    }
                    let size = self.object_size(&key);
                    let path = e.path();
                    let done = if kind == "blob" {
                        match fs::remove_file(&path) {
                            Ok(()) => true,
                            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                            Err(e) => return Err(ImageError::io("remove", &path)(e)),
                        }
                    } else {
                        match self.to_trash(&path, &req.trash) {
                            Ok(Some(t)) => {
                                report.trashed.push(t);
                                true
                            }
                            Ok(None) => false,
                            Err(e) => return Err(ImageError::io("move to the trash", &path)(e)),
                        }
                    };
                    if done {
                        report.objects += 1;
                        report.freed = report.freed.saturating_add(size);
                        bytes_of.insert(key, size);
                    }
                }
            }
        } else {
            log::warn!(
                "image store {}: a damaged image is referenced; unreferenced files are kept",
                self.root().display()
            );
        }
        for (manifest, references) in gone {
            let bytes = inv
                .images
                .iter()
                .find(|i| i.manifest == manifest)
                .map_or(0, |i| {
                    i.objects
                        .iter()
                        .collect::<VecSet<_>>()
                        .into_iter()
                        .filter_map(|o| bytes_of.get(o))
                        .sum()
                });
            report.deleted.push(DeletedImage {
                references,
                manifest,
                bytes,
            });
        }
        Ok(report)
    }

    /// Renames a layer tree into `trash` (or, on another filesystem, into
    /// the store's `tmp/`); `None` if it is gone already.
    fn to_trash(&self, path: &Path, trash: &Path) -> io::Result<Option<PathBuf>> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}-image-layer", std::process::id());
        let _ = fs::create_dir_all(trash);
        let target = trash.join(&name);
        match fs::rename(path, &target) {
            Ok(()) => return Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => log::debug!("rename {} into {}: {e}", path.display(), trash.display()),
        }
        let target = self.root().join("tmp").join(name);
        match fs::rename(path, &target) {
            Ok(()) => Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `picolet image-gc REQUEST-JSON`, the agent's child: takes the index
/// lock (waiting at most a few seconds: an import may hold it for long),
/// runs [`ImageStore::collect_garbage`] on the store at `ROOT` and prints
/// the [`GcReport`] as one JSON line. Returns the exit code; an error goes
/// to stdout.
pub fn gc_main(args: &[String]) -> i32 {
    let [root, request] = args else {
        println!("usage: picolet image-gc ROOT REQUEST-JSON");
        return 2;
    };
    let req: GcRequest = match serde_json::from_str(request) {
        Ok(r) => r,
        Err(e) => {
            println!("invalid request: {e}");
            return 2;
        }
    };
    let result = (|| {
        let store = ImageStore::open(root)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let lock = loop {
            if let Some(l) = store.try_lock_index()? {
                break l;
            }
            if std::time::Instant::now() >= deadline {
                return Err(ImageError::Busy {
                    path: store.root().join("index.lock"),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        store.collect_garbage(&lock, &req)
    })();
    match result {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(s) => {
                println!("{s}");
                0
            }
            Err(e) => {
                println!("{e}");
                1
            }
        },
        Err(e) => {
            println!("{e}");
            1
        }
    }
}
