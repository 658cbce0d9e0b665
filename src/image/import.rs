//! `picolet image import FILE|DIR`: OCI image layouts, oci-archive tars
//! and docker-archive tars (optionally gzipped), auto-detected.
//!
//! Detection: a source with an `oci-layout` file is an OCI layout (this
//! includes Docker ≥ 25 archives, which are both); otherwise one with
//! `manifest.json` is a docker-archive.
//!
//! Naming (in this order):
//! 1. `import_as(path, Some(REF))`: the one image in the source is stored
//!    as REF (normalized; `:latest` if untagged). A source with several
//!    images is an error.
//! 2. OCI: annotation `io.containerd.image.name` (a full name), else
//!    `org.opencontainers.image.ref.name`: a value containing `/`, `:` or
//!    `@` is a full reference (`picolet.test/busybox:1`,
//!    `busybox:latest`); a bare word is a *tag* and is stored as
//!    `localhost/<stem>:<tag>`, where `<stem>` is the file or directory
//!    name without `.tar`/`.gz`/`.tgz`/`.oci`/`.docker` suffixes, lowercased,
//!    other characters mapped to `-` (`busybox.oci.tar` with ref.name `1`
//!    → `localhost/busybox:1`).
//! 3. docker-archive: each `RepoTags` entry.
//! 4. An image with no name at all becomes `localhost/<stem>:latest`; two
//!    nameless images in one source are an error (use `--name`).
//!
//! Index entries are grouped by name; in each group (and in nested
//! indexes) the manifest for the running platform is chosen, see
//! [`super::oci::select_platform`]. Every blob is verified against its
//! digest and every layer against its diff ID; the tag index is updated
//! last, after a `syncfs`, so a crash leaves no tag pointing at missing
//! content.

use crate::vecmap::VecMap;
use std::fs;
use std::path::Path;

use super::digest::parse_json;
use super::oci::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ConfigFile, Descriptor, DocKind,
    DockerArchiveEntry, Index, MEDIA_OCI_CONFIG, MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST, Manifest, doc_kind, host_platform, is_layer_media_type, select_platform,
    sniff_kind,
};
use super::reference::valid_tag;
use super::source::{Source, blob_rel};
use super::unpack::{Compression, detect_compression};
use super::{Digest, ImageError, ImageStore, ImportedImage, Reference};

/// Nested index depth limit (guards against reference cycles).
const MAX_INDEX_DEPTH: usize = 4;

/// One image found in a source, before it is stored.
#[derive(Debug)]
struct Candidate {
    names: Vec<Reference>,
    kind: CandidateKind,
}

#[derive(Debug)]
enum CandidateKind {
    Oci(Descriptor),
    Docker(DockerArchiveEntry),
}

impl ImageStore {
    /// Imports every image in `path` (see the module docs for formats and
    /// naming). Returns one entry per stored reference.
    pub fn import(&self, path: &Path) -> Result<Vec<ImportedImage>, ImageError> {
        self.import_as(path, None)
    }

    /// Like [`ImageStore::import`], but with `name` the single image in
    /// `path` is stored under that reference instead.
    pub fn import_as(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<Vec<ImportedImage>, ImageError> {
        let name = name.map(Reference::parse).transpose()?;
        // Held for the whole import: image GC and removal (which take it
        // too) never delete a blob or layer this import found present and
        // is about to tag.
        let lock = self.lock_index()?;
        self.clean_stale_temp();
        let meta = fs::metadata(path).map_err(ImageError::io("stat", path))?;
        let source = if meta.is_dir() {
            Source::Dir(path.to_path_buf())
        } else {
            Source::stage(self, path)?
        };
        let stem = name_stem(path);
        let mut candidates = if source.has_file("oci-layout") {
            oci_candidates(&source, &stem)?
        } else if source.has_file("manifest.json") {
            docker_candidates(&source)?
        } else {
            return Err(ImageError::UnknownFormat {
                path: path.to_path_buf(),
                reason: "neither oci-layout nor manifest.json found".to_string(),
            });
        };
        if let Some(name) = name {
            if candidates.len() != 1 {
                return Err(ImageError::AmbiguousName {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    count: candidates.len(),
                });
            }
            candidates[0].names = vec![name];
        }
        let nameless = candidates.iter().filter(|c| c.names.is_empty()).count();
        if nameless > 1 {
            return Err(ImageError::AmbiguousName {
                path: path.to_path_buf(),
                name: format!("localhost/{stem}:latest"),
                count: nameless,
            });
        }
        let default_name = Reference::parse(&format!("localhost/{stem}:latest"))?;
        let mut tags = Vec::new();
        let mut imported = Vec::new();
        for mut candidate in candidates {
            if candidate.names.is_empty() {
                candidate.names.push(default_name.clone());
            }
            let (desc, image_id, dropped_devices) = match &candidate.kind {
                CandidateKind::Oci(desc) => self.store_oci(&source, desc)?,
                CandidateKind::Docker(entry) => self.store_docker(&source, entry)?,
            };
            for name in candidate.names {
                imported.push(ImportedImage {
                    reference: name.to_string(),
                    image_id: image_id.to_string(),
                    manifest_digest: desc.digest.clone(),
                    dropped_devices,
                });
                tags.push((name, desc.clone()));
            }
        }
        self.sync()?;
        self.add_tags(&lock, &tags)?;
        Ok(imported)
    }

    /// Stores an OCI manifest with its config and layers; returns the
    /// manifest descriptor, the image ID and the device nodes dropped.
    fn store_oci(
        &self,
        src: &Source,
        desc: &Descriptor,
    ) -> Result<(Descriptor, Digest, u64), ImageError> {
        let digest = Digest::parse(&desc.digest)?;
        let bytes = src.read_blob_json(&digest)?;
        let manifest: Manifest = parse_json(&bytes, &format!("manifest {digest}"))?;
        let config_digest = Digest::parse(&manifest.config.digest)?;
        let config_bytes = src.read_blob_json(&config_digest)?;
        let config: ConfigFile =
            parse_json(&config_bytes, &format!("image config {config_digest}"))?;
        let diff_ids = checked_diff_ids(&config, manifest.layers.len(), &config_digest)?;
        self.put_blob(&config_bytes[..], Some(&config_digest), "image config")?;
        let mut dropped = 0;
        for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
            if !is_layer_media_type(&layer.media_type) {
                return Err(ImageError::UnsupportedMediaType {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
            let blob = Digest::parse(&layer.digest)?;
            src.ingest(self, &blob_rel(&blob), Some(&blob))?;
            dropped += self.ensure_layer_counted(&blob, diff_id)?.1;
        }
        self.put_blob(&bytes[..], Some(&digest), &format!("manifest {digest}"))?;
        let media_type = match (desc.media_type.as_str(), manifest.media_type.as_str()) {
            ("", "") => MEDIA_OCI_MANIFEST.to_string(),
            ("", m) => m.to_string(),
            (d, _) => d.to_string(),
        };
        let stored = Descriptor {
            media_type,
            digest: digest.to_string(),
            size: bytes.len() as u64,
            annotations: VecMap::new(),
            platform: None,
        };
        Ok((stored, config_digest, dropped))
    }

    /// Stores a docker-archive image: computes the blob digests and writes
    /// an OCI manifest for it.
    fn store_docker(
        &self,
        src: &Source,
        entry: &DockerArchiveEntry,
    ) -> Result<(Descriptor, Digest, u64), ImageError> {
        let (config_digest, config_size) = src.ingest(self, &entry.config, None)?;
        let what = format!("image config {}", entry.config);
        let config_bytes = self.read_small_blob(&config_digest, &what)?;
        let config: ConfigFile = parse_json(&config_bytes, &what)?;
        let diff_ids = checked_diff_ids(&config, entry.layers.len(), &config_digest)?;
        let mut layers = Vec::new();
        let mut dropped = 0;
        for (rel, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let (blob, size) = src.ingest(self, rel, None)?;
            let media_type = layer_media_type(&self.blob_path(&blob))?;
            dropped += self.ensure_layer_counted(&blob, diff_id)?.1;
            layers.push(Descriptor {
                media_type: media_type.to_string(),
                digest: blob.to_string(),
                size,
                annotations: VecMap::new(),
                platform: None,
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_OCI_MANIFEST.to_string(),
            config: Descriptor {
                media_type: MEDIA_OCI_CONFIG.to_string(),
                digest: config_digest.to_string(),
                size: config_size,
                annotations: VecMap::new(),
                platform: None,
            },
            layers,
        };
        let bytes = serde_json::to_vec(&manifest).map_err(|source| ImageError::Json {
            what: "generated manifest".to_string(),
            source,
        })?;
        let (digest, size) = self.put_blob(&bytes[..], None, "generated manifest")?;
        let stored = Descriptor {
            media_type: MEDIA_OCI_MANIFEST.to_string(),
            digest: digest.to_string(),
            size,
            annotations: VecMap::new(),
            platform: None,
        };
        Ok((stored, config_digest, dropped))
    }
}

/// The config's diff IDs, which must match the manifest's layer count.
fn checked_diff_ids(
    config: &ConfigFile,
    layers: usize,
    config_digest: &Digest,
) -> Result<Vec<Digest>, ImageError> {
    if config.rootfs.diff_ids.len() != layers {
        return Err(ImageError::InvalidImage {
            what: format!("config {config_digest}"),
            reason: format!(
                "{} diff_ids for {layers} layers",
                config.rootfs.diff_ids.len()
            ),
        });
    }
    config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect()
}

/// OCI media type for a docker-archive layer, from its first bytes.
fn layer_media_type(blob: &Path) -> Result<&'static str, ImageError> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let mut file = fs::File::open(blob).map_err(ImageError::io("open", blob))?;
    let n = file.read(&mut head).map_err(ImageError::io("read", blob))?;
    match detect_compression(&head[..n]) {
        Compression::Gzip => Ok(MEDIA_OCI_LAYER_GZIP),
        Compression::None => Ok(MEDIA_OCI_LAYER),
        other => Err(ImageError::UnsupportedCompression {
            digest: blob.display().to_string(),
            compression: match other {
                Compression::Zstd => "zstd",
                Compression::Bzip2 => "bzip2",
                _ => "xz",
            },
        }),
    }
}

/// The `<stem>` used in default names: see the module docs.
pub(crate) fn name_stem(path: &Path) -> String {
    let base = path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        .unwrap_or_default();
    let mut s = base.as_str();
    loop {
        let before = s.len();
        for ext in [".tar", ".gz", ".tgz", ".oci", ".docker"] {
            s = s.strip_suffix(ext).unwrap_or(s);
        }
        if s.len() == before {
            break;
        }
    }
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut out = String::new();
    for c in mapped.trim_matches('-').chars() {
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    if out.is_empty() {
        "image".to_string()
    } else {
        out
    }
}

/// Names from an OCI index entry's annotations (see the module docs).
fn oci_names(ann: &VecMap<String, String>, stem: &str) -> Result<Vec<Reference>, ImageError> {
    if let Some(full) = ann.get(ANNOTATION_IMAGE_NAME) {
        return Ok(vec![Reference::parse(full)?]);
    }
    match ann.get(ANNOTATION_REF_NAME) {
        None => Ok(Vec::new()),
        Some(r) if r.contains(['/', ':', '@']) => Ok(vec![Reference::parse(r)?]),
        Some(tag) if valid_tag(tag) => {
            Ok(vec![Reference::parse(&format!("localhost/{stem}:{tag}"))?])
        }
        Some(bad) => Err(ImageError::InvalidReference {
            reference: bad.clone(),
            reason: format!("{ANNOTATION_REF_NAME} is neither a reference nor a tag"),
        }),
    }
}

fn oci_candidates(src: &Source, stem: &str) -> Result<Vec<Candidate>, ImageError> {
    let layout: serde_json::Value = parse_json(&src.read_small("oci-layout")?, "oci-layout")?;
    let version = layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !version.starts_with("1.") {
        return Err(ImageError::UnknownFormat {
            path: src.location().to_path_buf(),
            reason: format!("unsupported imageLayoutVersion {version:?}"),
        });
    }
    let index: Index = parse_json(&src.read_small("index.json")?, "index.json")?;
    let mut groups: Vec<(Vec<Reference>, Vec<Descriptor>)> = Vec::new();
    for desc in index.manifests {
        let names = oci_names(&desc.annotations, stem)?;
        match groups.iter_mut().find(|g| g.0 == names) {
            Some(g) => g.1.push(desc),
            None => groups.push((names, vec![desc])),
        }
    }
    let host = host_platform();
    let mut out = Vec::new();
    for (names, descs) in groups {
        let desc = pick_manifest(src, &descs, &host, 0)?;
        out.push(Candidate {
            names,
            kind: CandidateKind::Oci(desc),
        });
    }
    Ok(out)
}

/// Chooses the platform manifest among `descs`, descending into indexes.
fn pick_manifest(
    src: &Source,
    descs: &[Descriptor],
    host: &super::oci::Platform,
    depth: usize,
) -> Result<Descriptor, ImageError> {
    let chosen =
        select_platform(descs, host).map_err(|available| ImageError::NoMatchingPlatform {
            path: src.location().to_path_buf(),
            wanted: host.to_string(),
            available,
        })?;
    let kind = match doc_kind(&chosen.media_type) {
        DocKind::Unknown => {
            let digest = Digest::parse(&chosen.digest)?;
            sniff_kind(&src.read_blob_json(&digest)?)
        }
        k => k,
    };
    match kind {
        DocKind::Manifest => Ok(chosen.clone()),
        DocKind::Index if depth < MAX_INDEX_DEPTH => {
            let digest = Digest::parse(&chosen.digest)?;
            let nested: Index =
                parse_json(&src.read_blob_json(&digest)?, &format!("index {digest}"))?;
            pick_manifest(src, &nested.manifests, host, depth + 1)
        }
        DocKind::Index => Err(ImageError::InvalidImage {
            what: chosen.digest.clone(),
            reason: "image indexes nested too deeply".to_string(),
        }),
        DocKind::Unknown => Err(ImageError::UnsupportedMediaType {
            digest: chosen.digest.clone(),
            media_type: chosen.media_type.clone(),
        }),
    }
}

fn docker_candidates(src: &Source) -> Result<Vec<Candidate>, ImageError> {
    let entries: Vec<DockerArchiveEntry> =
        parse_json(&src.read_small("manifest.json")?, "manifest.json")?;
    let mut out = Vec::new();
    for entry in entries {
        let names = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Candidate {
            names,
            kind: CandidateKind::Docker(entry),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_stems_drop_archive_suffixes_and_odd_characters() {
        assert_eq!(name_stem(Path::new("/x/busybox.oci.tar")), "busybox");
        assert_eq!(name_stem(Path::new("/x/My App.docker.tar.gz")), "my-app");
        assert_eq!(name_stem(Path::new("/x/busybox-oci")), "busybox-oci");
        assert_eq!(name_stem(Path::new("/x/.tar")), "image");
    }

    #[test]
    fn oci_ref_names_are_full_references_or_bare_tags() {
        let ann = |k: &str, v: &str| VecMap::from([(k.to_string(), v.to_string())]);
        let names = |a| {
            oci_names(&a, "stem")
                .unwrap()
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(ann(ANNOTATION_REF_NAME, "picolet.test/busybox:1")),
            ["picolet.test/busybox:1"]
        );
        assert_eq!(
            names(ann(ANNOTATION_REF_NAME, "busybox:1")),
            ["docker.io/library/busybox:1"]
        );
        assert_eq!(names(ann(ANNOTATION_REF_NAME, "1")), ["localhost/stem:1"]);
        assert_eq!(
            names(ann(ANNOTATION_IMAGE_NAME, "ghcr.io/a/b:2")),
            ["ghcr.io/a/b:2"]
        );
        assert!(names(VecMap::new()).is_empty());
        assert!(oci_names(&ann(ANNOTATION_REF_NAME, "bad tag"), "stem").is_err());
    }
}
