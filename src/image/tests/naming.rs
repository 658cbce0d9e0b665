//! Naming and lookup end to end: explicit names, short names, digests,
//! image IDs, nested indexes and several names in one layout.

use std::fs;
use std::path::Path;

use super::{build_images, store};
use crate::image::{Digest, ImageError};

#[test]
fn resolve_accepts_short_names_digests_and_image_ids() {
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let imported = store
        .import_as(&images.path().join("busybox-oci"), Some("busybox"))
        .unwrap();
    assert_eq!(imported[0].reference, "docker.io/library/busybox:latest");
    let by_name = store.resolve("busybox").unwrap().unwrap();
    assert_eq!(by_name.reference, "docker.io/library/busybox:latest");
    let pinned = format!("busybox@{}", imported[0].manifest_digest);
    let by_digest = store.resolve(&pinned).unwrap().unwrap();
    assert_eq!(by_digest.image_id, by_name.image_id);
    assert_eq!(by_digest.reference, format!("docker.io/library/{pinned}"));
    let by_id = store.resolve(&by_name.image_id).unwrap().unwrap();
    assert_eq!(by_id.reference, "docker.io/library/busybox:latest");
    let other = format!("other@{}", imported[0].manifest_digest);
    assert_eq!(store.resolve(&other).unwrap(), None);
    assert_eq!(store.resolve("busybox:2").unwrap(), None);
    assert_eq!(store.resolve("picolet.test/busybox:1").unwrap(), None);
    let err = store.resolve("Not A Ref").unwrap_err();
    assert!(err.to_string().contains("\"Not A Ref\""), "{err}");
}

/// Rewrites the layout's index.json: `entries` are (annotations, platform).
fn rewrite_index(layout: &Path, f: impl FnOnce(serde_json::Value) -> serde_json::Value) {
    let path = layout.join("index.json");
    let index: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    fs::write(&path, serde_json::to_vec(&f(index)).unwrap()).unwrap();
}

fn put_layout_blob(layout: &Path, bytes: &[u8]) -> String {
    let d = Digest::of_bytes(bytes);
    fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    d.to_string()
}

#[test]
fn a_nested_index_yields_the_host_platform_manifest() {
    let images = build_images();
    let layout = images.path().join("busybox-oci");
    let host = crate::image::oci::host_platform();
    let other_arch = if host.architecture == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let mut top = serde_json::Value::Null;
    rewrite_index(&layout, |index| {
        let mut real = index["manifests"][0].clone();
        real.as_object_mut().unwrap().remove("annotations");
        real["platform"] = serde_json::json!({"architecture": host.architecture, "os": "linux", "variant": host.variant});
        let missing = format!("sha256:{}", "0".repeat(64));
        let nested = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": missing, "size": 1,
                 "platform": {"architecture": other_arch, "os": "linux"}},
                real,
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": missing, "size": 1,
                 "platform": {"architecture": "unknown", "os": "unknown"}},
            ]
        });
        let nested_digest = put_layout_blob(&layout, &serde_json::to_vec(&nested).unwrap());
        top = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": nested_digest,
            "size": serde_json::to_vec(&nested).unwrap().len(),
            "annotations": {"org.opencontainers.image.ref.name": "7"}
        });
        serde_json::json!({"schemaVersion": 2, "manifests": [top.clone()]})
    });
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let imported = store.import(&layout).unwrap();
    // A bare tag is named after the directory: localhost/<stem>:<tag>.
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].reference, "localhost/busybox-oci:7");
    let img = store.resolve("localhost/busybox-oci:7").unwrap().unwrap();
    assert_eq!(img.config.cmd, ["sh"]);
}

#[test]
fn several_names_import_together_but_one_explicit_name_needs_one_image() {
    let images = build_images();
    let layout = images.path().join("busybox-oci");
    rewrite_index(&layout, |mut index| {
        let mut second = index["manifests"][0].clone();
        second["annotations"] = serde_json::json!({"io.containerd.image.name": "ghcr.io/x/y:2"});
        let mut third = index["manifests"][0].clone();
        third.as_object_mut().unwrap().remove("annotations");
        index["manifests"].as_array_mut().unwrap().push(second);
        index["manifests"].as_array_mut().unwrap().push(third);
        index
    });
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let err = store.import_as(&layout, Some("x:1")).unwrap_err();
    assert!(
        matches!(err, ImageError::AmbiguousName { count: 3, .. }),
        "{err:?}"
    );
    let imported = store.import(&layout).unwrap();
    let mut refs: Vec<&str> = imported.iter().map(|i| i.reference.as_str()).collect();
    refs.sort();
    assert_eq!(
        refs,
        [
            "ghcr.io/x/y:2",
            "localhost/busybox-oci:latest",
            "picolet.test/busybox:1"
        ]
    );
    assert!(imported.windows(2).all(|w| w[0].image_id == w[1].image_id));
    assert_eq!(store.list().unwrap().len(), 3);
}
