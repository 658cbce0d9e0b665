//! End to end: build the busybox images with the script, import all three
//! forms, and check what `resolve` hands to the runtime.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{build_images, in_kernel_overlay, is_root, overlay_lookup, skip_unless_root, store};
use crate::image::{Digest, ImageError, ImageStore, format_list, resolve_command, resolve_user};

fn read(layers: &[PathBuf], rel: &str) -> Option<String> {
    overlay_lookup(layers, rel).map(|p| fs::read_to_string(p).unwrap())
}

fn tmp_is_empty(store: &ImageStore) -> bool {
    fs::read_dir(store.root().join("tmp")).unwrap().count() == 0
}

/// Files and their bytes under `dir`, sorted by relative path.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_image_script_is_deterministic() {
    let a = build_images();
    let b = build_images();
    let (ta, tb) = (tree(a.path()), tree(b.path()));
    assert_eq!(
        ta.len(),
        7,
        "{:?}",
        ta.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    assert!(ta == tb, "two runs of build-busybox.sh differ");
}

#[test]
fn oci_layout_import_resolves_busybox_with_its_config() {
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let imported = store.import(&images.path().join("busybox-oci")).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].reference, "picolet.test/busybox:1");
    let img = store.resolve("picolet.test/busybox:1").unwrap().unwrap();
    assert_eq!(img.image_id, imported[0].image_id);
    // The image ID is the digest of the config blob.
    let config = fs::read(store.blob_path(&Digest::parse(&img.image_id).unwrap())).unwrap();
    assert_eq!(Digest::of_bytes(&config).to_string(), img.image_id);
    assert_eq!(img.config.entrypoint, Vec::<String>::new());
    assert_eq!(img.config.cmd, ["sh"]);
    assert_eq!(img.config.env, ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    assert_eq!(img.config.working_dir, "/");
    assert_eq!(img.config.user, "");
    assert_eq!(img.os, "linux");
    assert_eq!(resolve_command(&img.config, None, None), ["sh"]);
    assert_eq!(img.layers.len(), 1);

    let l = &img.layers;
    assert_eq!(read(l, "etc/picolet-image-version").as_deref(), Some("1\n"));
    assert!(read(l, "etc/picolet-whiteout-me").is_some());
    let busybox = fs::metadata(overlay_lookup(l, "bin/busybox").unwrap()).unwrap();
    assert_eq!(busybox.permissions().mode() & 0o7777, 0o755);
    let sh = overlay_lookup(l, "bin/sh").unwrap();
    assert_eq!(fs::read_link(sh).unwrap(), Path::new("busybox"));
    let tmpdir = fs::metadata(overlay_lookup(l, "tmp").unwrap()).unwrap();
    assert_eq!(tmpdir.permissions().mode() & 0o7777, 0o1777);
    assert!(overlay_lookup(l, "www").unwrap().is_dir());
    assert_eq!(resolve_user(l, "nobody").unwrap(), (65534, 65534));
    assert_eq!(resolve_user(l, "root:nobody").unwrap(), (0, 65534));
    if is_root() {
        assert_eq!((busybox.uid(), busybox.gid()), (0, 0));
    }

    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].repository, "picolet.test/busybox");
    assert_eq!(list[0].tag.as_deref(), Some("1"));
    assert!(list[0].size > 500_000, "{}", list[0].size);
    let table = format_list(&list);
    let row = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..3],
        ["picolet.test/busybox", "1", &img.image_id[7..20]],
        "{table}"
    );
    assert!(tmp_is_empty(&store));
}

#[test]
fn oci_archive_import_gives_the_same_image_as_the_layout() {
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let a = ImageStore::open(tmp.path().join("a")).unwrap();
    let b = ImageStore::open(tmp.path().join("b")).unwrap();
    let from_dir = a.import(&images.path().join("busybox-oci")).unwrap();
    let from_tar = b.import(&images.path().join("busybox.oci.tar")).unwrap();
    assert_eq!(from_dir, from_tar);
    let (ra, rb) = (
        a.resolve("picolet.test/busybox:1").unwrap().unwrap(),
        b.resolve("picolet.test/busybox:1").unwrap().unwrap(),
    );
    assert_eq!(ra.manifest_digest, rb.manifest_digest);
    assert_eq!(ra.layers[0].file_name(), rb.layers[0].file_name());
    assert_eq!(
        read(&rb.layers, "etc/picolet-image-version").as_deref(),
        Some("1\n")
    );
    assert!(tmp_is_empty(&b), "staging directory left behind");
}

#[test]
fn docker_archive_import_applies_the_whiteout_and_the_opaque_directory() {
    if skip_unless_root("docker_archive_import_applies_the_whiteout_and_the_opaque_directory") {
        return;
    }
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let imported = store
        .import(&images.path().join("busybox.docker.tar"))
        .unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].reference, "picolet.test/busybox:2");
    let img = store.resolve("picolet.test/busybox:2").unwrap().unwrap();
    assert_eq!(img.config.cmd, ["sh"]);
    let l = &img.layers;
    assert_eq!(l.len(), 2);
    // Top-most first: the second layer holds version 2.
    assert_eq!(
        fs::read_to_string(l[0].join("etc/picolet-image-version")).unwrap(),
        "2\n"
    );
    assert_eq!(
        fs::read_to_string(l[1].join("etc/picolet-image-version")).unwrap(),
        "1\n"
    );
    assert_eq!(read(l, "etc/picolet-image-version").as_deref(), Some("2\n"));
    assert!(l[1].join("etc/picolet-whiteout-me").is_file());
    assert_eq!(read(l, "etc/picolet-whiteout-me"), None);
    assert_eq!(read(l, "opt/picolet/layer1"), None);
    assert_eq!(
        read(l, "opt/picolet/layer2").as_deref(),
        Some("from layer 2\n")
    );
    assert!(overlay_lookup(l, "bin/busybox").is_some());
    assert_eq!(resolve_user(l, "nobody").unwrap(), (65534, 65534));

    let script = "cat etc/picolet-image-version; ls opt/picolet; \
                  test -e etc/picolet-whiteout-me && echo present || echo gone; \
                  test -x bin/busybox && echo busybox";
    if let Some(out) = in_kernel_overlay(l, script) {
        assert_eq!(out, "2\nlayer2\ngone\nbusybox\n");
    }
    assert!(tmp_is_empty(&store));
}

#[test]
fn all_three_forms_share_one_store_and_the_common_layer() {
    if skip_unless_root("all_three_forms_share_one_store_and_the_common_layer") {
        return;
    }
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    for f in [
        "busybox-oci",
        "busybox.oci.tar",
        "busybox.docker.tar",
        "busybox.docker.tar",
    ] {
        store.import(&images.path().join(f)).unwrap();
    }
    let list = store.list().unwrap();
    let refs: Vec<&str> = list.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(refs, ["picolet.test/busybox:1", "picolet.test/busybox:2"]);
    // Layer 1 is gzip in the OCI image and plain in the docker one, but has
    // one diff ID, so it is unpacked once.
    let layers = fs::read_dir(store.root().join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layers, 2);
    let one = store.resolve("picolet.test/busybox:1").unwrap().unwrap();
    let two = store.resolve("picolet.test/busybox:2").unwrap().unwrap();
    assert_eq!(one.layers[0], two.layers[1]);
    assert_ne!(one.image_id, two.image_id);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(store.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
}

#[test]
fn a_corrupted_blob_fails_the_import_with_its_digest_named() {
    let images = build_images();
    let layout = images.path().join("busybox-oci");
    let blobs = layout.join("blobs/sha256");
    // The layer is the biggest blob; flip its last byte.
    let mut biggest: Vec<PathBuf> = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    biggest.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let layer = biggest.pop().unwrap();
    let mut bytes = fs::read(&layer).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    fs::write(&layer, &bytes).unwrap();
    let digest = format!("sha256:{}", layer.file_name().unwrap().to_str().unwrap());

    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let err = store.import(&layout).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&digest), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.resolve("picolet.test/busybox:1").unwrap(), None);
    assert_eq!(
        fs::read_dir(store.root().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert!(tmp_is_empty(&store));

    // The same corruption inside an oci-archive is caught while staging.
    let archive = images.path().join("corrupt.oci.tar");
    let mut builder = tar::Builder::new(fs::File::create(&archive).unwrap());
    builder.append_dir_all(".", &layout).unwrap();
    builder.finish().unwrap();
    let err = store.import(&archive).unwrap_err();
    assert!(err.to_string().contains(&digest), "{err}");
    assert!(tmp_is_empty(&store));
}

#[test]
fn a_blob_damaged_in_the_store_is_reported_by_resolve() {
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let imported = store.import(&images.path().join("busybox-oci")).unwrap();
    let manifest = store.blob_path(&Digest::parse(&imported[0].manifest_digest).unwrap());
    fs::write(&manifest, b"{}").unwrap();
    let err = store.resolve("picolet.test/busybox:1").unwrap_err();
    assert!(
        err.to_string().contains(&imported[0].manifest_digest),
        "{err}"
    );
}

#[test]
fn a_file_that_is_no_image_archive_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let junk = tmp.path().join("junk.tar");
    fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let err = store.import(&junk).unwrap_err();
    assert!(matches!(err, ImageError::UnknownFormat { .. }), "{err:?}");
    let dir = tmp.path().join("emptydir");
    fs::create_dir(&dir).unwrap();
    assert!(matches!(
        store.import(&dir),
        Err(ImageError::UnknownFormat { .. })
    ));
    assert!(tmp_is_empty(&store));
}

fn skopeo() -> bool {
    let ok = Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok || !crate::testutil::cannot_run("skopeo is not installed (apt-get install skopeo)")
}

#[test]
fn skopeo_written_archives_import_and_skopeo_reads_the_store() {
    if !skopeo() || skip_unless_root("skopeo_written_archives_import_and_skopeo_reads_the_store") {
        return;
    }
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let original = store.import(&images.path().join("busybox-oci")).unwrap();
    let layout = format!(
        "oci:{}:picolet.test/busybox:1",
        images.path().join("busybox-oci").display()
    );
    let docker = tmp.path().join("skopeo.docker.tar");
    let oci = tmp.path().join("skopeo.oci.tar");
    for dest in [
        format!("docker-archive:{}:skopeo.test/busybox:9", docker.display()),
        format!("oci-archive:{}:skopeo.test/busybox:8", oci.display()),
    ] {
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", &layout, &dest])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // skopeo's docker-archive links layers with symlinks.
    let from_docker = store.import(&docker).unwrap();
    assert_eq!(from_docker[0].reference, "skopeo.test/busybox:9");
    assert_eq!(from_docker[0].image_id, original[0].image_id);
    let from_oci = store.import(&oci).unwrap();
    assert_eq!(from_oci[0].image_id, original[0].image_id);
    let img = store.resolve(&from_oci[0].reference).unwrap().unwrap();
    assert_eq!(
        read(&img.layers, "etc/picolet-image-version").as_deref(),
        Some("1\n")
    );
    // The store itself is an OCI layout skopeo can read.
    let src = format!("oci:{}:picolet.test/busybox:1", store.root().display());
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "inspect", "--raw", &src])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        Digest::of_bytes(&out.stdout).to_string(),
        original[0].manifest_digest
    );
}

#[test]
fn gzipped_and_extracted_docker_archives_import_like_the_plain_one() {
    if skip_unless_root("gzipped_and_extracted_docker_archives_import_like_the_plain_one") {
        return;
    }
    let images = build_images();
    let plain = images.path().join("busybox.docker.tar");
    let gz_path = images.path().join("busybox.docker.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(&gz_path).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut fs::File::open(&plain).unwrap(), &mut gz).unwrap();
    gz.finish().unwrap();
    let extracted = images.path().join("extracted");
    tar::Archive::new(fs::File::open(&plain).unwrap())
        .unpack(&extracted)
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let want = store(&tmp.path().join("plain")).import(&plain).unwrap();
    for (i, source) in [gz_path, extracted].iter().enumerate() {
        let s = ImageStore::open(tmp.path().join(i.to_string())).unwrap();
        assert_eq!(s.import(source).unwrap(), want, "{}", source.display());
        let img = s.resolve("picolet.test/busybox:2").unwrap().unwrap();
        assert_eq!(
            read(&img.layers, "etc/picolet-image-version").as_deref(),
            Some("2\n")
        );
    }
}

#[test]
fn temp_entries_of_dead_importers_are_removed_by_the_next_import() {
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    // PIDs never exceed 2^22 on Linux, so this importer is surely gone.
    let stale = store.root().join("tmp/999999999-0-layer");
    fs::create_dir_all(stale.join("etc")).unwrap();
    let live = store
        .root()
        .join(format!("tmp/{}-999-blob", std::process::id()));
    fs::write(&live, b"in flight").unwrap();
    store.import(&images.path().join("busybox-oci")).unwrap();
    assert!(!stale.exists());
    assert!(live.exists(), "an entry of a live process was removed");
}
