//! Image deletion with real files: the busybox images share their first
//! layer; deleting `:2` frees only its own files, `:1` keeps working, and
//! deletion never races an import (the index lock).

use crate::vecmap::VecMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{build_images, skip_unless_root, store};
use crate::image::{ANNOTATION_LAST_USED, GcRequest, ImageError, ImageStore, InUse};

const ONE: &str = "picolet.test/busybox:1";
const TWO: &str = "picolet.test/busybox:2";

/// A store with `:1` (OCI layout) and `:2` (docker archive) imported.
fn two_images(dir: &Path) -> (ImageStore, tempfile::TempDir) {
    let images = build_images();
    let store = store(dir);
    store.import(&images.path().join("busybox-oci")).unwrap();
    store
        .import(&images.path().join("busybox.docker.tar"))
        .unwrap();
    (store, images)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn uses(refs: &[&str]) -> InUse {
    InUse {
        references: refs.iter().map(|r| r.to_string()).collect(),
        image_ids: Vec::new(),
    }
}

fn request(want: u64, min_age_ms: u64, in_use: InUse, trash: &Path) -> GcRequest {
    GcRequest {
        want,
        min_age_ms,
        now_ms: crate::clock::wall_ms(),
        in_use,
        last_used: VecMap::new(),
        trash: trash.to_path_buf(),
    }
}

fn trash_all(paths: &[PathBuf]) {
    for p in paths {
        fs::remove_dir_all(p).unwrap();
    }
}

#[test]
fn gc_deletes_the_unused_image_and_only_the_files_no_other_image_needs() {
    if skip_unless_root("gc_deletes_the_unused_image_and_only_the_files_no_other_image_needs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, _images) = two_images(tmp.path());
    let trash = tmp.path().join("trash");
    let one = store.resolve(ONE).unwrap().unwrap();
    let two = store.resolve(TWO).unwrap().unwrap();
    assert_eq!(two.layers.len(), 2);
    assert_eq!(two.layers[1], one.layers[0], "the shared base layer");
    let blobs_before = names(&store.root().join("blobs/sha256")).len();

    // Too young (the default 2 minutes): nothing goes.
    let lock = store.lock_index().unwrap();
    let r = store
        .collect_garbage(&lock, &request(u64::MAX, 120_000, uses(&[ONE]), &trash))
        .unwrap();
    assert!(r.deleted.is_empty(), "{r:?}");
    assert_eq!(r.freed, 0);
    // The image in use got its last use recorded in the index.
    let index = fs::read_to_string(store.root().join("index.json")).unwrap();
    assert!(index.contains(ANNOTATION_LAST_USED), "{index}");

    // Old enough: `:2` goes, `:1` (in use) stays.
    let r = store
        .collect_garbage(&lock, &request(u64::MAX, 0, uses(&[ONE]), &trash))
        .unwrap();
    drop(lock);
    assert_eq!(r.deleted.len(), 1, "{r:?}");
    assert_eq!(r.deleted[0].references, [TWO]);
    assert_eq!(r.deleted[0].manifest, two.manifest_digest);
    assert!(
        r.deleted[0].bytes > 0 && r.freed >= r.deleted[0].bytes,
        "{r:?}"
    );
    // Its own layer went to the trash (for the caller to delete), the
    // shared one stays; its manifest, config and layer blob are gone.
    assert_eq!(r.trashed.len(), 1, "{r:?}");
    assert!(r.trashed[0].starts_with(&trash));
    assert!(!two.layers[0].exists());
    assert!(one.layers[0].is_dir());
    // Of the blobs only `:1`'s manifest, config and layer remain (the
    // docker archive stored its own copy of the base layer's blob).
    assert!(blobs_before > 3);
    assert_eq!(names(&store.root().join("blobs/sha256")).len(), 3);
    trash_all(&r.trashed);
    assert!(store.resolve(TWO).unwrap().is_none());
    let again = store.resolve(ONE).unwrap().unwrap();
    assert_eq!(again, one);
    assert_eq!(store.list().unwrap().len(), 1);

    // Nothing left to collect: a second run deletes nothing.
    let lock = store.lock_index().unwrap();
    let r = store
        .collect_garbage(&lock, &request(u64::MAX, 0, uses(&[ONE]), &trash))
        .unwrap();
    assert!(r.deleted.is_empty() && r.objects == 0, "{r:?}");
    // Unused now: `:1` goes too, and the store is empty.
    let r = store
        .collect_garbage(&lock, &request(1, 0, InUse::default(), &trash))
        .unwrap();
    assert_eq!(r.deleted.len(), 1);
    trash_all(&r.trashed);
    assert!(names(&store.root().join("blobs/sha256")).is_empty());
    assert!(names(&store.root().join("layers/sha256")).is_empty());
}

#[test]
fn rm_refuses_an_image_a_pod_uses_and_removes_one_nobody_uses() {
    if skip_unless_root("rm_refuses_an_image_a_pod_uses_and_removes_one_nobody_uses") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, _images) = two_images(tmp.path());
    let trash = tmp.path().join("trash");
    let one = store.resolve(ONE).unwrap().unwrap();
    let pods = vec![("default/web".to_string(), uses(&["picolet.test/busybox:1"]))];
    let lock = store.lock_index().unwrap();
    let now = crate::clock::wall_ms();
    let e = store
        .remove(&lock, &[ONE.to_string()], &pods, &trash, now)
        .unwrap_err();
    assert!(
        matches!(&e, ImageError::InUse { pod, .. } if pod == "default/web"),
        "{e}"
    );
    // By image ID too: the pod's container runs it.
    let by_id = vec![(
        "default/old".to_string(),
        InUse {
            references: vec![],
            image_ids: vec![one.image_id.clone()],
        },
    )];
    let e = store
        .remove(
            &lock,
            std::slice::from_ref(&one.image_id),
            &by_id,
            &trash,
            now,
        )
        .unwrap_err();
    assert!(e.to_string().contains("in use by pod default/old"), "{e}");
    let e = store
        .remove(&lock, &["x.io/missing:1".to_string()], &pods, &trash, now)
        .unwrap_err();
    assert!(matches!(e, ImageError::NotFound { .. }), "{e}");
    assert_eq!(
        store.list().unwrap().len(),
        2,
        "a refused rm removes nothing"
    );
    let r = store
        .remove(&lock, &[TWO.to_string()], &pods, &trash, now)
        .unwrap();
    assert_eq!(r.deleted.len(), 1);
    trash_all(&r.trashed);
    assert!(store.resolve(TWO).unwrap().is_none());
    assert_eq!(store.resolve(ONE).unwrap().unwrap(), one);
}

#[test]
fn a_retagged_images_files_are_kept_while_a_container_runs_it() {
    if skip_unless_root("a_retagged_images_files_are_kept_while_a_container_runs_it") {
        return;
    }
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let trash = tmp.path().join("trash");
    store
        .import_as(&images.path().join("busybox-oci"), Some("x.io/app:v"))
        .unwrap();
    let old = store.resolve("x.io/app:v").unwrap().unwrap();
    // The tag moves to another image; the old one is referenced by no tag.
    store
        .import_as(
            &images.path().join("busybox.docker.tar"),
            Some("x.io/app:v"),
        )
        .unwrap();
    let new = store.resolve("x.io/app:v").unwrap().unwrap();
    assert_ne!(old.image_id, new.image_id);
    // A container still runs the old image: its layers stay.
    let running = InUse {
        references: vec!["x.io/app:v".into()],
        image_ids: vec![old.image_id.clone()],
    };
    let lock = store.lock_index().unwrap();
    let r = store.prune(&lock, &running, &trash, 0).unwrap();
    assert!(r.deleted.is_empty(), "{r:?}");
    assert!(old.layers.iter().all(|l| l.is_dir()));
    // It stopped: the old manifest blob, the files only the old image had
    // (none here: its one layer is the new one's base) are swept.
    let r = store
        .prune(&lock, &uses(&["x.io/app:v"]), &trash, 0)
        .unwrap();
    assert!(r.deleted.is_empty(), "{r:?}");
    assert!(r.objects >= 1, "the old manifest or config blob: {r:?}");
    assert_eq!(store.resolve("x.io/app:v").unwrap().unwrap(), new);
}

#[test]
fn an_import_waits_for_the_lock_before_writing_anything() {
    if skip_unless_root("an_import_waits_for_the_lock_before_writing_anything") {
        return;
    }
    let images = build_images();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let lock = store.lock_index().unwrap();
    assert!(store.try_lock_index().unwrap().is_none());
    let s2 = store.clone();
    let src = images.path().join("busybox-oci");
    let t = std::thread::spawn(move || s2.import(&src).map(|v| v.len()));
    std::thread::sleep(std::time::Duration::from_millis(500));
    // While GC (here: the test) holds the lock, the import has stored
    // nothing it could later tag without its files.
    assert!(names(&store.root().join("blobs/sha256")).is_empty());
    assert!(names(&store.root().join("layers/sha256")).is_empty());
    assert!(!t.is_finished());
    drop(lock);
    assert_eq!(t.join().unwrap().unwrap(), 1);
    assert!(store.resolve(ONE).unwrap().is_some());
    assert!(store.try_lock_index().unwrap().is_some());
}

#[test]
fn the_gc_child_reports_as_json_and_refuses_a_busy_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let root = store.root().display().to_string();
    let req = serde_json::to_string(&request(
        u64::MAX,
        0,
        InUse::default(),
        &tmp.path().join("t"),
    ))
    .unwrap();
    assert_eq!(crate::image::gc_main(&[root.clone(), req.clone()]), 0);
    assert_eq!(crate::image::gc_main(&[root.clone(), "{".into()]), 2);
    let _lock = store.lock_index().unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(crate::image::gc_main(&[root, req]), 1);
    assert!(t0.elapsed() >= std::time::Duration::from_secs(4));
}
