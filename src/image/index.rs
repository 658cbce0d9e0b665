//! The tag index `<root>/index.json` and the read side of the store:
//! `list`, `resolve`, and the `picolet image ls` table.
//!
//! `index.json` is an OCI image index: one manifest descriptor per tag,
//! with the normalized reference in `org.opencontainers.image.ref.name`
//! (so `skopeo copy oci:<root>:<ref> …` can read the store). Writers take
//! `flock(index.lock)`, read, modify and atomically replace the file;
//! readers (the agent) just read it.

use crate::vecmap::VecMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::PathBuf;

use super::digest::{JSON_LIMIT, parse_json, read_capped};
use super::oci::{ANNOTATION_REF_NAME, ConfigFile, Descriptor, Index, MEDIA_OCI_INDEX, Manifest};
use super::store::write_atomic;
use super::{Digest, ImageConfig, ImageError, ImageStore, Reference, sys};

/// One tagged image, as listed by `picolet image ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Normalized reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub repository: String,
    /// The tag; `None` for a digest-only reference.
    pub tag: Option<String>,
    /// `sha256:<config digest>`: the image ID.
    pub image_id: String,
    /// `sha256:<manifest digest>`.
    pub manifest_digest: String,
    /// Config plus layer blob sizes, in bytes (compressed, as stored).
    pub size: u64,
}

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// Normalized reference that was resolved.
    pub reference: String,
    /// `sha256:<config digest>`.
    pub image_id: String,
    /// `sha256:<manifest digest>`.
    pub manifest_digest: String,
    pub config: ImageConfig,
    /// Unpacked layer directories, TOP-MOST FIRST (overlay `lowerdir` order).
    pub layers: Vec<PathBuf>,
    /// From the image config, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// From the image config, normally `linux`.
    pub os: String,
}

/// One image stored by an import, once per reference it was tagged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    pub reference: String,
    pub image_id: String,
    pub manifest_digest: String,
    /// Block/character device nodes dropped from its layers by this import
    /// (layers already in the store are not unpacked again: 0).
    pub dropped_devices: u64,
}

/// The index annotation holding an entry's import time (Unix ms).
pub const ANNOTATION_IMPORTED: &str = "io.picolet.image.imported-ms";
/// The index annotation holding when a container using the entry's image
/// last started (Unix ms), kept by image GC.
pub const ANNOTATION_LAST_USED: &str = "io.picolet.image.last-used-ms";

/// `flock(index.lock)`, released on drop.
#[derive(Debug)]
pub struct IndexLock {
    _file: fs::File,
}

impl ImageStore {
    fn index_path(&self) -> PathBuf {
        self.root().join("index.json")
    }

    /// Reads the tag index; a missing file is an empty index.
    pub(crate) fn read_index(&self) -> Result<Index, ImageError> {
        let path = self.index_path();
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Index {
                    schema_version: 2,
                    media_type: MEDIA_OCI_INDEX.to_string(),
                    manifests: Vec::new(),
                });
            }
            Err(e) => return Err(ImageError::io("open", &path)(e)),
        };
        let what = path.display().to_string();
        let bytes = read_capped(file, JSON_LIMIT, &what).map_err(|e| e.with_path(&path))?;
        parse_json(&bytes, &what)
    }

    fn lock_file(&self) -> Result<(fs::File, PathBuf), ImageError> {
        let lock_path = self.root().join("index.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(ImageError::io("open", &lock_path))?;
        Ok((lock, lock_path))
    }

    /// Takes `flock(index.lock)`, waiting for it. Held by an import for
    /// its whole run and by image removal and GC: while it is held, no
    /// other writer adds or deletes blobs, layers or tags.
    pub fn lock_index(&self) -> Result<IndexLock, ImageError> {
        let (lock, lock_path) = self.lock_file()?;
        sys::flock_exclusive(&lock).map_err(ImageError::io("flock", &lock_path))?;
        Ok(IndexLock { _file: lock })
    }

    /// [`ImageStore::lock_index`] without waiting: `None` while another
    /// process (an import) holds it.
    pub fn try_lock_index(&self) -> Result<Option<IndexLock>, ImageError> {
        let (lock, lock_path) = self.lock_file()?;
        let got = sys::flock_try_exclusive(&lock).map_err(ImageError::io("flock", &lock_path))?;
        Ok(got.then_some(IndexLock { _file: lock }))
    }

    /// Replaces `index.json` (sorted by reference); the caller holds the
    /// lock.
    pub(crate) fn write_index(
        &self,
        _lock: &IndexLock,
        index: &mut Index,
    ) -> Result<(), ImageError> {
        index
            .manifests
            .sort_by(|a, b| ref_name(a).cmp(&ref_name(b)));
        index.schema_version = 2;
        index.media_type = MEDIA_OCI_INDEX.to_string();
        let bytes = crate::jsonl::to_vec_pretty(&index).map_err(|source| ImageError::Json {
            what: "index.json".to_string(),
            source,
        })?;
        write_atomic(&self.index_path(), &bytes)
    }

    /// Points each reference at its manifest descriptor, replacing earlier
    /// entries for the same reference, and records the import time
    /// ([`ANNOTATION_IMPORTED`]); the caller holds the lock.
    pub(crate) fn add_tags(
        &self,
        lock: &IndexLock,
        tags: &[(Reference, Descriptor)],
    ) -> Result<(), ImageError> {
        let mut index = self.read_index()?;
        let now = crate::clock::wall_ms().to_string();
        for (reference, desc) in tags {
            let name = reference.to_string();
            index
                .manifests
                .retain(|d| ref_name(d) != Some(name.as_str()));
            let mut desc = desc.clone();
            desc.annotations = VecMap::from([
                (ANNOTATION_REF_NAME.to_string(), name),
                (ANNOTATION_IMPORTED.to_string(), now.clone()),
            ]);
            desc.platform = None;
            index.manifests.push(desc);
        }
        self.write_index(lock, &mut index)
    }

    /// Every tagged image, sorted by reference.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for desc in &index.manifests {
            let Some(name) = ref_name(desc) else { continue };
            let (manifest, _) = self.read_manifest(desc)?;
            let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
            let (repository, tag) = match Reference::parse(name) {
                Ok(r) => (r.repository(), r.tag().map(str::to_string)),
                Err(_) => (name.to_string(), None),
            };
            out.push(ImageSummary {
                reference: name.to_string(),
                repository,
                tag,
                image_id: manifest.config.digest.clone(),
                manifest_digest: desc.digest.clone(),
                size,
            });
        }
        Ok(out)
    }

    /// Looks up a reference (normalized first: `busybox` finds
    /// `docker.io/library/busybox:latest`). `name@sha256:<m>` also matches
    /// a stored tag of the same repository whose manifest digest is `m`;
    /// a bare `sha256:<hex>` matches an image ID or manifest digest.
    /// `Ok(None)` if absent; an error if the reference is invalid or a
    /// stored image is damaged (missing blob or unpacked layer).
    pub fn resolve(&self, reference: &str) -> Result<Option<ResolvedImage>, ImageError> {
        let index = self.read_index()?;
        match self.find(&index, reference)? {
            Some((name, desc)) => self.load(name, desc).map(Some),
            None => Ok(None),
        }
    }

    /// The index entry `reference` resolves to (see
    /// [`ImageStore::resolve`]), with the name it resolves as.
    pub(crate) fn find<'a>(
        &self,
        index: &'a Index,
        reference: &str,
    ) -> Result<Option<(String, &'a Descriptor)>, ImageError> {
        if let Some(hex) = reference.strip_prefix("sha256:") {
            if let Ok(id) = Digest::from_hex(hex) {
                let id = id.to_string();
                for desc in &index.manifests {
                    let (manifest, _) = self.read_manifest(desc)?;
                    if desc.digest == id || manifest.config.digest == id {
                        let name = ref_name(desc).unwrap_or(&id).to_string();
                        return Ok(Some((name, desc)));
                    }
                }
                return Ok(None);
            }
        }
        let wanted = Reference::parse(reference)?;
        let name = wanted.to_string();
        if let Some(desc) = index
            .manifests
            .iter()
            .find(|d| ref_name(d) == Some(name.as_str()))
        {
            return Ok(Some((name, desc)));
        }
        if let Some(digest) = wanted.digest() {
            let digest = digest.to_string();
            let repo = wanted.repository();
            let found = index.manifests.iter().find(|d| {
                d.digest == digest
                    && ref_name(d)
                        .and_then(|n| Reference::parse(n).ok())
                        .is_some_and(|r| r.repository() == repo)
            });
            if let Some(desc) = found {
                return Ok(Some((name, desc)));
            }
        }
        Ok(None)
    }

    pub(crate) fn read_manifest(
        &self,
        desc: &Descriptor,
    ) -> Result<(Manifest, Digest), ImageError> {
        let digest = Digest::parse(&desc.digest)?;
        let what = format!("manifest {digest}");
        let bytes = self.read_small_blob(&digest, &what)?;
        Ok((parse_json(&bytes, &what)?, digest))
    }

    fn load(&self, reference: String, desc: &Descriptor) -> Result<ResolvedImage, ImageError> {
        let (manifest, manifest_digest) = self.read_manifest(desc)?;
        let config_digest = Digest::parse(&manifest.config.digest)?;
        let what = format!("image config {config_digest}");
        let bytes = self.read_small_blob(&config_digest, &what)?;
        let config: ConfigFile = parse_json(&bytes, &what)?;
        let mut layers = Vec::with_capacity(config.rootfs.diff_ids.len());
        for diff_id in config.rootfs.diff_ids.iter().rev() {
            let path = self.layer_path(&Digest::parse(diff_id)?);
            if !path.is_dir() {
                return Err(ImageError::LayerMissing { path });
            }
            layers.push(path);
        }
        Ok(ResolvedImage {
            reference,
            image_id: config_digest.to_string(),
            manifest_digest: manifest_digest.to_string(),
            config: ImageConfig::from_run_config(config.config.unwrap_or_default()),
            layers,
            architecture: config.architecture,
            os: config.os,
        })
    }
}

pub(crate) fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

/// The `picolet image ls` table, laid out like `crictl images`:
/// `IMAGE  TAG  IMAGE ID  SIZE`, 13-digit IDs, decimal sizes (`4.5MB`).
pub fn format_list(images: &[ImageSummary]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "TAG".to_string(),
        "IMAGE ID".to_string(),
        "SIZE".to_string(),
    ]];
    for img in images {
        let id = img
            .image_id
            .strip_prefix("sha256:")
            .unwrap_or(&img.image_id);
        rows.push([
            img.repository.clone(),
            img.tag.clone().unwrap_or_else(|| "<none>".to_string()),
            id.chars().take(13).collect(),
            human_size(img.size),
        ]);
    }
    // crictl's tabwriter: min width 20, padding 3, last column unpadded.
    let mut widths = [0usize; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(20);
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// Decimal size with 4 significant digits, like Go's `units.HumanSize`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    let int_digits = if size < 1.0 {
        1
    } else {
        size.log10().floor() as i32 + 1
    };
    let decimals = usize::try_from((4 - int_digits).max(0)).unwrap_or(0);
    let mut s = format!("{size:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    format!("{s}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_size_matches_go_units_four_significant_digits() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_500_000), "4.5MB");
        assert_eq!(human_size(4_496_640), "4.497MB");
        assert_eq!(human_size(1_234_567_890), "1.235GB");
        assert_eq!(human_size(123_456), "123.5kB");
    }

    #[test]
    fn format_list_lays_out_a_crictl_style_table() {
        let img = ImageSummary {
            reference: "docker.io/library/busybox:latest".into(),
            repository: "docker.io/library/busybox".into(),
            tag: Some("latest".into()),
            image_id: format!("sha256:{}", "ab".repeat(32)),
            manifest_digest: String::new(),
            size: 2_220_000,
        };
        let untagged = ImageSummary {
            tag: None,
            repository: "x.io/a".into(),
            ..img.clone()
        };
        let out = format_list(&[img, untagged]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("{:<28}{:<20}{:<20}SIZE", "IMAGE", "TAG", "IMAGE ID")
        );
        assert_eq!(
            lines[1],
            format!(
                "{:<28}{:<20}{:<20}2.22MB",
                "docker.io/library/busybox", "latest", "ababababababa"
            )
        );
        assert!(lines[2].starts_with("x.io/a"));
        assert!(lines[2].contains("<none>"));
        assert_eq!(lines.len(), 3);
    }
}
