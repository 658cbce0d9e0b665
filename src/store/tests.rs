use crate::vecmap::VecMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PodV1 {
    uid: String,
    restarts: u32,
    exit: Option<i32>,
    labels: VecMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum StateFile {
    V1 { revision: u64, pods: Vec<PodV1> },
}

/// The same file format one version later: V1 unchanged, V2 appended.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum StateFileNext {
    V1 { revision: u64, pods: Vec<PodV1> },
    V2 { revision: u64 },
}

fn sample(revision: u64) -> StateFile {
    let pod = |n: u32| PodV1 {
        uid: format!("uid-{n}"),
        restarts: n,
        exit: (n % 2 == 0).then_some(n as i32),
        labels: [("app".to_string(), format!("web-{n}"))].into(),
    };
    StateFile::V1 {
        revision,
        pods: (0..3).map(pod).collect(),
    }
}

fn decode_err(bytes: &[u8]) -> StoreError {
    decode::<StateFile>(bytes).unwrap_err()
}

#[test]
fn encode_then_decode_returns_the_same_value() {
    let bytes = encode(&sample(7)).unwrap();
    assert_eq!(&bytes[..4], b"PCLT");
    assert_eq!(decode::<StateFile>(&bytes).unwrap(), sample(7));
}

#[test]
fn the_crc_is_crc32_iscsi_of_the_payload_little_endian() {
    let bytes = encode(&sample(1)).unwrap();
    let payload = postcard::to_stdvec(&sample(1)).unwrap();
    assert_eq!(&bytes[4..bytes.len() - 4], &payload[..]);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&payload);
    assert_eq!(&bytes[bytes.len() - 4..], &crc.to_le_bytes());
}

#[test]
fn a_bad_magic_is_reported_with_the_bytes_found() {
    let mut bytes = encode(&sample(1)).unwrap();
    bytes[0] = b'X';
    match decode_err(&bytes) {
        StoreError::BadMagic { found } => assert_eq!(&found, b"XCLT"),
        e => panic!("{e}"),
    }
    assert!(matches!(decode_err(b"{}"), StoreError::BadMagic { .. }));
}

#[test]
fn every_single_byte_corruption_is_detected() {
    let good = encode(&sample(3)).unwrap();
    for i in 0..good.len() {
        let mut bytes = good.clone();
        bytes[i] ^= 0x5a;
        match decode::<StateFile>(&bytes) {
            Err(StoreError::BadMagic { .. }) => assert!(i < 4, "byte {i}"),
            Err(StoreError::CrcMismatch {
                stored, computed, ..
            }) => {
                assert!(i >= 4, "byte {i}");
                assert_ne!(stored, computed);
            }
            other => panic!("flipping byte {i} gave {other:?}"),
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    let good = encode(&sample(3)).unwrap();
    for cut in 0..good.len() {
        match decode::<StateFile>(&good[..cut]) {
            Err(StoreError::Truncated { len }) => assert!(cut < 8 && len == cut),
            Err(StoreError::CrcMismatch { ends_early, .. }) => {
                assert!(cut >= 8, "cut at {cut}");
                assert!(ends_early, "cut at {cut} not seen as ending early");
            }
            other => panic!("cut at {cut} gave {other:?}"),
        }
    }
}

#[test]
fn a_state_over_the_cap_is_refused_on_decode_and_encode() {
    let bytes = encode(&sample(3)).unwrap();
    let max = bytes.len() as u64 - 1;
    match decode_with_limit::<StateFile>(&bytes, max) {
        Err(StoreError::TooBig { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        encode_with_limit(&sample(3), max),
        Err(StoreError::TooBig { .. })
    ));
    assert_eq!(
        decode_with_limit::<StateFile>(&bytes, max + 1).unwrap(),
        sample(3)
    );
}

#[test]
fn an_unknown_newer_version_is_a_payload_error_not_a_crc_error() {
    let bytes = encode(&StateFileNext::V2 { revision: 9 }).unwrap();
    assert!(matches!(decode_err(&bytes), StoreError::Payload(_)));
    // ... while the old variant still reads under the new type.
    let old = encode(&sample(4)).unwrap();
    assert!(matches!(
        decode::<StateFileNext>(&old).unwrap(),
        StateFileNext::V1 { revision: 4, .. }
    ));
}

#[test]
fn trailing_payload_bytes_with_a_good_crc_are_a_payload_error() {
    // A payload longer than the type: e.g. a field appended without a new
    // version.
    let bytes = encode(&(sample(1), 5u8)).unwrap();
    assert!(matches!(decode_err(&bytes), StoreError::Payload(_)));
}

fn store() -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    (dir, store)
}

#[test]
fn a_fresh_directory_loads_nothing() {
    let (_d, mut s) = store();
    assert!(s.load::<StateFile>().unwrap().is_none());
}

#[test]
fn save_then_load_in_a_new_store_round_trips() {
    let (d, mut s) = store();
    assert!(s.save(&sample(1)).unwrap());
    let loaded = StateStore::new(d.path())
        .load::<StateFile>()
        .unwrap()
        .unwrap();
    assert_eq!(loaded.value, sample(1));
    assert!(loaded.recovered.is_none());
    assert!(!d.path().join(TMP_NAME).exists());
}

#[test]
fn the_second_save_keeps_the_first_as_prev() {
    let (d, mut s) = store();
    s.save(&sample(1)).unwrap();
    assert!(!s.prev_path().exists(), "nothing to keep on the first save");
    s.save(&sample(2)).unwrap();
    let prev = fs::read(d.path().join(PREV_NAME)).unwrap();
    assert_eq!(decode::<StateFile>(&prev).unwrap(), sample(1));
    let main = fs::read(d.path().join(FILE_NAME)).unwrap();
    assert_eq!(decode::<StateFile>(&main).unwrap(), sample(2));
}

#[test]
fn saving_an_unchanged_state_writes_nothing() {
    let (d, mut s) = store();
    s.save(&sample(1)).unwrap();
    s.save(&sample(2)).unwrap();
    let meta = |name| fs::metadata(d.path().join(name)).unwrap();
    let (m0, p0) = (meta(FILE_NAME), meta(PREV_NAME));
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!s.save(&sample(2)).unwrap());
    // A new store that loaded the same state does not write it back either.
    let mut s2 = StateStore::new(d.path());
    s2.load::<StateFile>().unwrap().unwrap();
    assert!(!s2.save(&sample(2)).unwrap());
    let (m1, p1) = (meta(FILE_NAME), meta(PREV_NAME));
    for (a, b) in [(&m0, &m1), (&p0, &p1)] {
        assert_eq!(
            (a.ino(), a.mtime(), a.mtime_nsec()),
            (b.ino(), b.mtime(), b.mtime_nsec())
        );
    }
    assert!(!d.path().join(TMP_NAME).exists());
    // A changed state is written: a new state.bin, the old one is .prev.
    assert!(s2.save(&sample(3)).unwrap());
    assert_ne!(meta(FILE_NAME).ino(), m1.ino());
    assert_eq!(meta(PREV_NAME).ino(), m1.ino());
}

#[test]
fn a_corrupt_state_file_falls_back_to_prev_and_says_why() {
    let (d, mut s) = store();
    s.save(&sample(1)).unwrap();
    s.save(&sample(2)).unwrap();
    let main = d.path().join(FILE_NAME);
    let mut bytes = fs::read(&main).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&main, &bytes).unwrap();

    let mut s = StateStore::new(d.path());
    let loaded = s.load::<StateFile>().unwrap().unwrap();
    assert_eq!(loaded.value, sample(1));
    match loaded.recovered {
        Some(StoreError::Corrupt { path, source }) => {
            assert_eq!(path, main);
            assert!(
                matches!(*source, StoreError::CrcMismatch { .. }),
                "{source}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Saving the recovered state repairs state.bin, and the corrupt file
    // never replaces the good .prev.
    assert!(s.save(&sample(1)).unwrap());
    assert_eq!(
        decode::<StateFile>(&fs::read(&main).unwrap()).unwrap(),
        sample(1)
    );
    let prev = fs::read(d.path().join(PREV_NAME)).unwrap();
    assert_eq!(decode::<StateFile>(&prev).unwrap(), sample(1));
}

#[test]
fn a_missing_state_file_falls_back_to_prev() {
    let (d, mut s) = store();
    s.save(&sample(1)).unwrap();
    s.save(&sample(2)).unwrap();
    fs::remove_file(d.path().join(FILE_NAME)).unwrap();
    let loaded = StateStore::new(d.path())
        .load::<StateFile>()
        .unwrap()
        .unwrap();
    assert_eq!(loaded.value, sample(1));
    assert!(loaded.recovered.unwrap().is_not_found());
}

#[test]
fn both_files_corrupt_is_an_error_that_names_both() {
    let (d, mut s) = store();
    s.save(&sample(1)).unwrap();
    s.save(&sample(2)).unwrap();
    fs::write(d.path().join(FILE_NAME), b"PCLT\x01").unwrap();
    fs::write(d.path().join(PREV_NAME), b"garbage!").unwrap();
    let err = StateStore::new(d.path()).load::<StateFile>().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(FILE_NAME) && msg.contains(PREV_NAME), "{msg}");
    match err {
        StoreError::BothUnusable { main, prev, .. } => {
            assert!(
                matches!(&*main, StoreError::Corrupt { source, .. } if matches!(**source, StoreError::Truncated { len: 5 }))
            );
            assert!(
                matches!(&*prev, StoreError::Corrupt { source, .. } if matches!(**source, StoreError::BadMagic { .. }))
            );
        }
        e => panic!("{e}"),
    }
}

#[test]
fn a_corrupt_state_file_without_prev_is_an_error() {
    let (d, _s) = store();
    fs::write(d.path().join(FILE_NAME), b"nonsense").unwrap();
    let err = StateStore::new(d.path()).load::<StateFile>().unwrap_err();
    match err {
        StoreError::BothUnusable { prev, .. } => assert!(prev.is_not_found()),
        e => panic!("{e}"),
    }
}

#[test]
fn a_file_over_the_cap_is_not_loaded() {
    let (d, mut s) = store();
    s.save(&sample(1)).unwrap();
    let len = fs::metadata(d.path().join(FILE_NAME)).unwrap().len();
    let mut small = StateStore::new(d.path()).with_max_size(len - 1);
    match small.load::<StateFile>().unwrap_err() {
        StoreError::BothUnusable { main, .. } => assert!(
            matches!(&*main, StoreError::Corrupt { source, .. } if matches!(**source, StoreError::TooBig { .. })),
            "{main}"
        ),
        e => panic!("{e}"),
    }
    // And a state over the cap is never written.
    assert!(matches!(
        small.save(&sample(9)),
        Err(StoreError::TooBig { .. })
    ));
    let on_disk = fs::read(d.path().join(FILE_NAME)).unwrap();
    assert_eq!(decode::<StateFile>(&on_disk).unwrap(), sample(1));
}

#[test]
fn a_save_without_load_keeps_a_valid_existing_file_as_prev() {
    let (d, mut s) = store();
    s.save(&sample(1)).unwrap();
    // A second store that never loaded: it checks state.bin before keeping it.
    let mut s2 = StateStore::new(d.path());
    assert!(s2.save(&sample(2)).unwrap());
    let prev = fs::read(d.path().join(PREV_NAME)).unwrap();
    assert_eq!(decode::<StateFile>(&prev).unwrap(), sample(1));
}

#[test]
fn a_symlink_planted_at_the_temp_name_is_not_followed() {
    let (d, mut s) = store();
    let victim = d.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, d.path().join(TMP_NAME)).unwrap();
    assert!(s.save(&sample(1)).unwrap());
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(!d.path().join(TMP_NAME).exists());
    // A dangling one must not create its target either.
    let target = d.path().join("created-through-link");
    std::os::unix::fs::symlink(&target, d.path().join(TMP_NAME)).unwrap();
    assert!(s.save(&sample(2)).unwrap());
    assert!(fs::symlink_metadata(&target).is_err());
    let mut fresh = StateStore::new(d.path());
    let loaded = fresh.load::<StateFile>().unwrap().unwrap();
    assert_eq!(loaded.value, sample(2));
    assert!(loaded.recovered.is_none());
    let m = fs::metadata(d.path().join(FILE_NAME)).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(m.mode() & 0o777, 0o600);
}

#[test]
fn the_reserve_is_twice_the_state_rounded_up_within_its_bounds() {
    let cap = DEFAULT_MAX_SIZE;
    assert_eq!(reserve_target(0, cap), RESERVE_MIN);
    assert_eq!(reserve_target(1, cap), RESERVE_MIN);
    assert_eq!(reserve_target(32 << 10, cap), 64 << 10);
    assert_eq!(reserve_target((32 << 10) + 1, cap), 128 << 10);
    assert_eq!(reserve_target(1 << 20, cap), 2 << 20);
    assert_eq!(reserve_target(cap, cap), cap);
    assert_eq!(reserve_target(u64::MAX, cap), cap);
    // A cap under the minimum still keeps the minimum.
    assert_eq!(reserve_target(10, 1000), RESERVE_MIN);
}

#[test]
fn a_save_allocates_the_reserve_and_a_symlink_there_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join(RESERVE_NAME)).unwrap();
    let mut store = StateStore::new(dir.path());
    assert!(store.save(&sample(1)).unwrap());
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert_eq!(store.reserve_len(), Some(0));

    fs::remove_file(dir.path().join(RESERVE_NAME)).unwrap();
    let mut store = StateStore::new(dir.path());
    assert!(store.save(&sample(2)).unwrap());
    let m = fs::metadata(store.reserve_path()).unwrap();
    assert_eq!(m.len(), RESERVE_MIN);
    assert_eq!(m.mode() & 0o777, 0o600);
    // Allocated, not sparse.
    assert!(m.blocks() * 512 >= RESERVE_MIN, "{} blocks", m.blocks());
    assert_eq!(store.reserve_len(), Some(RESERVE_MIN));
    // A sparse reserve (e.g. left by `truncate`) is rewritten with zeros.
    let f = File::create(store.reserve_path()).unwrap();
    f.set_len(RESERVE_MIN).unwrap();
    drop(f);
    let mut store = StateStore::new(dir.path());
    store.save(&sample(3)).unwrap();
    let m = fs::metadata(store.reserve_path()).unwrap();
    assert!(m.blocks() * 512 >= RESERVE_MIN, "{} blocks", m.blocks());
}

/// A tmpfs of `size` mounted on a fresh temp dir, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        if crate::testutil::needs_root("mounting a tmpfs") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("picolet-test")
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            crate::testutil::cannot_run("cannot mount a tmpfs");
            return None;
        }
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` until the filesystem is full.
    fn fill(&self, name: &str) {
        let mut f = File::create(self.path().join(name)).unwrap();
        let chunk = vec![7u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A state of about `kib` KiB that differs per `revision`.
fn big_sample(revision: u64, kib: usize) -> StateFile {
    let pods = (0..kib)
        .map(|n| PodV1 {
            uid: format!("{revision}-{n}-{}", "x".repeat(1000)),
            restarts: n as u32,
            exit: None,
            labels: VecMap::new(),
        })
        .collect();
    StateFile::V1 { revision, pods }
}

#[test]
fn a_save_on_a_filled_filesystem_uses_the_reserve_and_the_reserve_comes_back() {
    let Some(fs_) = SmallFs::mount("4m") else {
        return;
    };
    let dir = fs_.path().join("state");
    fs::create_dir(&dir).unwrap();
    let mut store = StateStore::new(&dir);
    assert!(store.save(&big_sample(1, 20)).unwrap());
    assert_eq!(store.reserve_len(), Some(64 << 10));

    // A container fills the filesystem.
    fs_.fill("filler");
    // A changed state still saves: the reserve made room.
    assert!(store.save(&big_sample(2, 30)).unwrap());
    let loaded: StateFile = StateStore::new(&dir).load().unwrap().unwrap().value;
    assert_eq!(loaded, big_sample(2, 30));
    let prev: StateFile = decode(&fs::read(store.prev_path()).unwrap()).unwrap();
    assert_eq!(prev, big_sample(1, 20));
    assert!(store.reserve_len().unwrap() < 64 << 10);

    // Space returns: the next save (even unchanged) re-creates the reserve.
    fs::remove_file(fs_.path().join("filler")).unwrap();
    assert!(!store.save(&big_sample(2, 30)).unwrap());
    assert_eq!(store.reserve_len(), Some(64 << 10));
    let m = fs::metadata(store.reserve_path()).unwrap();
    assert!(m.len() == 64 << 10 && m.blocks() * 512 >= 64 << 10);

    // Full again, and the state doubled: the reserve (plus `.prev`) is
    // room enough, and the current state stays loadable throughout.
    fs_.fill("filler2");
    assert!(store.save(&big_sample(3, 60)).unwrap());
    let loaded: StateFile = StateStore::new(&dir).load().unwrap().unwrap().value;
    assert_eq!(loaded, big_sample(3, 60));
    assert!(!dir.join(TMP_NAME).exists());

    // Still full and not enough room: the save fails cleanly (no tmp
    // file left eating space) and the last state is intact.
    let err = store.save(&big_sample(4, 500)).unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert!(!dir.join(TMP_NAME).exists());
    let loaded: StateFile = StateStore::new(&dir).load().unwrap().unwrap().value;
    assert_eq!(loaded, big_sample(3, 60));

    fs::remove_file(fs_.path().join("filler2")).unwrap();
    assert!(store.save(&big_sample(4, 500)).unwrap());
    let want = reserve_target(
        encode(&big_sample(4, 500)).unwrap().len() as u64,
        DEFAULT_MAX_SIZE,
    );
    assert_eq!(want, 1024 << 10);
    assert_eq!(store.reserve_len(), Some(want));
}
