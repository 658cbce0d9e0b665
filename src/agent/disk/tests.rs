use super::{Disk, du, parse_du};
use crate::image::GcReport;
use crate::image::gc::GcPolicy;
use crate::lifecycle::eviction::Thresholds;
use crate::reactor;
use std::collections::HashSet;
use std::time::Duration;

#[test]
fn du_counts_allocated_bytes_once_per_inode_and_not_through_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("upper");
    std::fs::create_dir_all(d.join("a/b")).unwrap();
    std::fs::write(d.join("a/b/big"), vec![1u8; 1 << 20]).unwrap();
    std::fs::hard_link(d.join("a/b/big"), d.join("a/link")).unwrap();
    // A sparse file counts for what it allocates, not its length.
    let f = std::fs::File::create(d.join("sparse")).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("x"), vec![1u8; 4 << 20]).unwrap();
    std::os::unix::fs::symlink(&outside, d.join("sym")).unwrap();
    let n = du(&d, &mut HashSet::new()).unwrap();
    assert!(n >= 1 << 20, "{n}");
    assert!(n < (1 << 20) + (256 << 10), "{n}");
    assert_eq!(
        du(&dir.path().join("missing"), &mut HashSet::new()).unwrap(),
        0
    );
}

#[test]
fn eviction_settings_default_to_the_kubelets_and_out_of_range_values_are_refused() {
    use crate::fleet::config::AgentFileConfig;
    let s = AgentFileConfig::default().resolve("h").unwrap();
    assert_eq!(s.eviction_interval_seconds, 10);
    assert_eq!(s.eviction, Thresholds::default());
    assert_eq!(
        (
            s.eviction.nodefs_available_pct,
            s.eviction.imagefs_available_pct
        ),
        (10, 15)
    );
    let (_, f) = crate::agent::flags::parse(
        [
            "--eviction-interval",
            "2",
            "--eviction-nodefs-available",
            "0",
            "--eviction-imagefs-available",
            "30",
        ]
        .map(Into::into)
        .to_vec(),
    )
    .unwrap();
    let s = f.resolve("h").unwrap();
    assert_eq!(s.eviction_interval_seconds, 2);
    assert_eq!(
        (
            s.eviction.nodefs_available_pct,
            s.eviction.imagefs_available_pct
        ),
        (0, 30)
    );
    for (set, key) in [
        (
            AgentFileConfig {
                eviction_interval_seconds: Some(0),
                ..Default::default()
            },
            "evictionIntervalSeconds",
        ),
        (
            AgentFileConfig {
                eviction_nodefs_available_percent: Some(100),
                ..Default::default()
            },
            "evictionNodefsAvailablePercent",
        ),
        (
            AgentFileConfig {
                eviction_imagefs_available_percent: Some(250),
                ..Default::default()
            },
            "evictionImagefsAvailablePercent",
        ),
    ] {
        let e = set.resolve("h").unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn image_gc_settings_default_to_the_kubelets_and_bad_ones_are_refused_by_name() {
    use crate::fleet::config::AgentFileConfig;
    let s = AgentFileConfig::default().resolve("h").unwrap();
    assert_eq!(s.image_gc, GcPolicy::default());
    assert_eq!(
        (
            s.image_gc.high_pct,
            s.image_gc.low_pct,
            s.image_gc.min_age_ms
        ),
        (85, 80, 120_000)
    );
    let (_, f) = crate::agent::flags::parse(
        [
            "--image-gc-high-threshold",
            "90",
            "--image-gc-low-threshold",
            "50",
            "--image-minimum-gc-age",
            "0",
        ]
        .map(Into::into)
        .to_vec(),
    )
    .unwrap();
    let p = f.resolve("h").unwrap().image_gc;
    assert_eq!((p.high_pct, p.low_pct, p.min_age_ms), (90, 50, 0));
    let file: AgentFileConfig = serde_norway::from_str(
        "imageGCHighThresholdPercent: 100\nimageGCLowThresholdPercent: 10\nimageMinimumGCAgeSeconds: 60\n",
    )
    .unwrap();
    let p = file.resolve("h").unwrap().image_gc;
    assert_eq!((p.high_pct, p.low_pct, p.min_age_ms), (100, 10, 60_000));
    for (set, key) in [
        (
            AgentFileConfig {
                image_gc_high_threshold_percent: Some(0),
                ..Default::default()
            },
            "imageGCHighThresholdPercent",
        ),
        (
            AgentFileConfig {
                image_gc_high_threshold_percent: Some(70),
                ..Default::default()
            },
            "imageGCLowThresholdPercent",
        ),
        (
            AgentFileConfig {
                image_minimum_gc_age_seconds: Some(u64::MAX),
                ..Default::default()
            },
            "imageMinimumGCAgeSeconds",
        ),
    ] {
        let e = set.resolve("h").unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn a_gc_report_has_its_trashed_layers_deleted_and_lets_eviction_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let program = crate::testutil::script(
        dir.path(),
        "rmtree",
        "[ \"$1\" = rmtree ] && exec rm -rf \"$2\"",
    );
    let layer = dir.path().join("trash/1-0-image-layer");
    std::fs::create_dir_all(layer.join("usr/bin")).unwrap();
    let mut d = Disk::new(
        Duration::from_secs(1),
        Thresholds::default(),
        GcPolicy::default(),
    );
    // Under pressure: a GC starts; pods wait for it.
    assert!(d.gc.start(0, u64::MAX, true));
    assert!(!d.gc.may_evict());
    let report = GcReport {
        needed: u64::MAX,
        deleted: vec![crate::image::DeletedImage {
            references: vec!["x.io/a:1".into()],
            manifest: "sha256:00".into(),
            bytes: 10,
        }],
        freed: 10,
        eligible: 10,
        trashed: vec![layer.clone()],
        objects: 3,
    };
    reactor::block_on(async {
        d.on_image_gc_with(&program, Ok(report), 1);
        for _ in 0..500 {
            if !layer.exists() {
                return;
            }
            reactor::sleep(Duration::from_millis(10)).await;
        }
        panic!("the trashed layer was not deleted");
    });
    assert!(d.gc.may_evict());
    // A failed child (store busy) also lets eviction go on.
    assert!(d.gc.start(2, u64::MAX, true));
    d.on_image_gc_with(&program, Err("busy".into()), 3);
    assert!(d.gc.may_evict() && !d.gc.in_flight());
}

#[test]
fn du_output_is_one_count_per_path_in_order() {
    assert_eq!(parse_du(b"1\n0\n4096\n", 3).unwrap(), vec![1, 0, 4096]);
    assert!(parse_du(b"1\n", 2).is_err());
    assert!(parse_du(b"/x: Permission denied\n", 1).is_err());
}

#[test]
fn images_of_kept_healthy_documents_count_as_in_use_for_image_gc() {
    let node = crate::lifecycle::Node::new("n".into());
    let kept = vec!["registry.local/app:1".to_string()];
    let u = super::in_use_with(&node, &kept);
    assert_eq!(u.references, kept);
    assert!(super::in_use(&node).references.is_empty());
}
