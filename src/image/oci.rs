//! OCI / Docker JSON documents (descriptor, index, manifest, image config,
//! docker-archive `manifest.json`) and platform selection for image
//! indexes. Pure: no I/O.

use crate::vecmap::VecMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Full image name (containerd, Docker ≥ 25 archives).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI layout reference name: a tag, or a full reference (skopeo, podman).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub annotations: VecMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// `platform` of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// OCI image index / Docker manifest list (also the layout's `index.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// OCI image manifest / Docker schema 2 manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The parts of an image config blob the store uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: String,
    #[serde(default)]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
}

/// `config` inside an image config: how to run the image.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// `rootfs` inside an image config.
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerArchiveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// What a descriptor points at, judged by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Index,
    Manifest,
    Unknown,
}

pub fn doc_kind(media_type: &str) -> DocKind {
    match media_type {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => DocKind::Index,
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => DocKind::Manifest,
        _ => DocKind::Unknown,
    }
}

/// Sniffs an index vs a manifest when the media type is missing.
pub fn sniff_kind(json: &[u8]) -> DocKind {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        manifests: Option<serde::de::IgnoredAny>,
        layers: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(json) {
        Ok(p) => match doc_kind(&p.media_type) {
            DocKind::Unknown if p.manifests.is_some() => DocKind::Index,
            DocKind::Unknown if p.layers.is_some() => DocKind::Manifest,
            k => k,
        },
        Err(_) => DocKind::Unknown,
    }
}

/// Whether a layer media type is a tar (any compression) we may unpack.
pub fn is_layer_media_type(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
}

/// The platform this binary runs on, in OCI names: x86_64→amd64,
/// aarch64→arm64, arm→arm with variant v7 (v6 without ARMv7 features).
pub fn host_platform() -> Platform {
    let (architecture, variant) = oci_arch(std::env::consts::ARCH, cfg!(target_feature = "v7"));
    Platform {
        architecture: architecture.to_string(),
        os: std::env::consts::OS.to_string(),
        variant: variant.to_string(),
    }
}

/// Maps a Rust `ARCH` name to the OCI architecture and variant.
pub fn oci_arch(arch: &str, armv7: bool) -> (&str, &'static str) {
    match arch {
        "x86_64" => ("amd64", ""),
        "x86" => ("386", ""),
        "aarch64" => ("arm64", "v8"),
        "arm" if armv7 => ("arm", "v7"),
        "arm" => ("arm", "v6"),
        "powerpc64" => ("ppc64le", ""),
        "loongarch64" => ("loong64", ""),
        other => (other, ""),
    }
}

/// How well `candidate` runs on `host`: `None` = not at all, higher is
/// better (an exact variant beats a compatible older one or none).
fn platform_score(candidate: &Platform, host: &Platform) -> Option<u32> {
    if !candidate.os.is_empty() && candidate.os != host.os {
        return None;
    }
    if candidate.architecture != host.architecture {
        return None;
    }
    if candidate.variant == host.variant {
        return Some(10);
    }
    if candidate.variant.is_empty() {
        return Some(5);
    }
    if host.architecture == "arm" {
        // ARMv7 runs v6 and v5 code; v6 runs v5.
        let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok());
        if let (Some(c), Some(h)) = (level(&candidate.variant), level(&host.variant)) {
            if c <= h {
                return Some(c);
            }
        }
    }
    None
}

/// Picks the descriptor for `host` among index entries. Entries for the
/// `unknown` platform (build attestations) are ignored; if exactly one
/// entry remains it is taken whatever its platform (so a single-arch image
/// for another arch still imports). `Err` lists the available platforms.
pub fn select_platform<'a>(
    entries: &'a [Descriptor],
    host: &Platform,
) -> Result<&'a Descriptor, String> {
    let usable: Vec<&Descriptor> = entries
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_none_or(|p| p.architecture != "unknown" && p.os != "unknown")
        })
        .collect();
    if usable.len() == 1 {
        return Ok(usable[0]);
    }
    let mut best: Option<(u32, &Descriptor)> = None;
    for d in &usable {
        let score = match &d.platform {
            Some(p) => platform_score(p, host),
            None => Some(1),
        };
        if let Some(s) = score {
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, d));
            }
        }
    }
    best.map(|(_, d)| d).ok_or_else(|| {
        let names: Vec<String> = usable
            .iter()
            .map(|d| {
                d.platform
                    .as_ref()
                    .map_or("none".to_string(), |p| p.to_string())
            })
            .collect();
        if names.is_empty() {
            "no manifests".to_string()
        } else {
            names.join(", ")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(arch: &str, variant: &str) -> Descriptor {
        Descriptor {
            media_type: MEDIA_OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}{variant}"),
            size: 1,
            annotations: VecMap::new(),
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.into(),
            }),
        }
    }

    fn host(arch: &str, variant: &str) -> Platform {
        Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.into(),
        }
    }

    #[test]
    fn rust_arch_names_map_to_oci_names() {
        assert_eq!(oci_arch("x86_64", false), ("amd64", ""));
        assert_eq!(oci_arch("aarch64", false), ("arm64", "v8"));
        assert_eq!(oci_arch("arm", true), ("arm", "v7"));
        assert_eq!(oci_arch("arm", false), ("arm", "v6"));
        assert_eq!(oci_arch("riscv64", false), ("riscv64", ""));
        assert_eq!(host_platform().os, "linux");
    }

    #[test]
    fn select_platform_picks_the_host_architecture_from_a_list() {
        let list = [
            desc("amd64", ""),
            desc("arm64", "v8"),
            desc("arm", "v7"),
            desc("arm", "v6"),
        ];
        assert_eq!(
            select_platform(&list, &host("amd64", "")).unwrap(),
            &list[0]
        );
        assert_eq!(
            select_platform(&list, &host("arm64", "v8")).unwrap(),
            &list[1]
        );
        assert_eq!(
            select_platform(&list, &host("arm", "v7")).unwrap(),
            &list[2]
        );
        assert_eq!(
            select_platform(&list, &host("arm", "v6")).unwrap(),
            &list[3]
        );
    }

    #[test]
    fn armv7_host_falls_back_to_v6_and_arm64_accepts_no_variant() {
        let list = [desc("amd64", ""), desc("arm", "v6"), desc("arm64", "")];
        assert_eq!(
            select_platform(&list, &host("arm", "v7")).unwrap(),
            &list[1]
        );
        assert_eq!(
            select_platform(&list, &host("arm64", "v8")).unwrap(),
            &list[2]
        );
        let v7_only = [desc("amd64", ""), desc("arm", "v7")];
        let err = select_platform(&v7_only, &host("arm", "v6")).unwrap_err();
        assert_eq!(err, "linux/amd64, linux/arm/v7");
    }

    #[test]
    fn a_single_manifest_is_taken_even_for_another_arch_and_attestations_are_ignored() {
        let single = [desc("s390x", "")];
        assert_eq!(
            select_platform(&single, &host("amd64", "")).unwrap(),
            &single[0]
        );
        let with_attestation = [desc("s390x", ""), desc("unknown", "")];
        let picked = select_platform(&with_attestation, &host("amd64", "")).unwrap();
        assert_eq!(picked, &with_attestation[0]);
        assert_eq!(
            select_platform(&[], &host("amd64", "")).unwrap_err(),
            "no manifests"
        );
    }

    #[test]
    fn sniffing_tells_indexes_from_manifests_without_media_types() {
        assert_eq!(
            sniff_kind(br#"{"schemaVersion":2,"manifests":[]}"#),
            DocKind::Index
        );
        let m = br#"{"schemaVersion":2,"config":{"digest":"x","size":1},"layers":[]}"#;
        assert_eq!(sniff_kind(m), DocKind::Manifest);
        assert_eq!(sniff_kind(b"nope"), DocKind::Unknown);
        assert_eq!(doc_kind(MEDIA_DOCKER_LIST), DocKind::Index);
    }
}
