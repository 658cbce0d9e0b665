//! libFuzzer target for the layer unpacker (`image::unpack_layer`: gzip or
//! plain tar; zstd, bzip2 and xz are refused): it never panics, and
//! whatever the entries' paths and link targets (`..`, absolute paths,
//! symlinks and hard links out of the layer, entries through a symlink),
//! nothing is written outside the destination. Seeds: every layer blob the
//! image tests unpack.
//!
//! Speed (the unpacker itself is unchanged):
//! - one scratch directory (under `$TMPDIR`, which `scripts/fuzz.sh` points
//!   at the `/dev/shm` tmpfs) serves every execution; only the destination
//!   is emptied between runs, so an execution costs the unpack plus a few
//!   syscalls, not a fresh temporary tree;
//! - a gzip input that inflates to more than [`MAX_INFLATED`] is skipped.
//!   Deflate reaches about 1000:1: the image tests' gzip-bomb seed, cut to
//!   the old 64 KiB `max_len`, inflated to 65 MB on every execution of it
//!   or its mutants (and inflating is the slow part here: with coverage on
//!   every compare it took 60 % of the time even at 128 KiB). Nothing is
//!   lost: the tar headers are in the first kilobytes, and the unpacker's
//!   own bound (100 × the blob + 64 MiB) is out of a fuzz input's reach
//!   anyway (the image tests cover it).
#![no_main]

use flate2::read::MultiGzDecoder;
use libfuzzer_sys::fuzz_target;
use picolet::image::unpack_layer;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The most a gzip input may inflate to for the unpacker to be run on it.
const MAX_INFLATED: u64 = 32 << 10;

/// `$TMPDIR/picolet-fuzz-tar.<pid>/{blob, a/dest, a/outside}`, made once
/// per process. libFuzzer exits without running destructors, so each start
/// removes the directories of processes that are gone.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        for entry in fs::read_dir(&tmp).unwrap().flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a/dest")).unwrap();
        fs::create_dir_all(dir.join("a/outside")).unwrap();
        dir
    })
}

const PREFIX: &str = "picolet-fuzz-tar.";

fn names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

/// Whether `data` is gzip that inflates to more than [`MAX_INFLATED`]
/// (counting what inflates before a corrupt byte, as the unpacker would).
fn inflates_too_far(data: &[u8]) -> bool {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return false;
    }
    let mut z = MultiGzDecoder::new(data).take(MAX_INFLATED + 1);
    let mut buf = [0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match z.read(&mut buf) {
            Ok(0) => return n > MAX_INFLATED,
            Ok(k) => n += k as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return n > MAX_INFLATED,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if inflates_too_far(data) {
        return;
    }
    let tmp = scratch();
    let blob = tmp.join("blob");
    let dest = tmp.join("a/dest");
    fs::write(&blob, data).unwrap();
    let _ = unpack_layer(&blob, &dest);
    assert_eq!(
        names(&tmp.join("a")),
        ["dest", "outside"],
        "an entry escaped the layer"
    );
    assert!(
        names(&tmp.join("a/outside")).is_empty(),
        "an entry escaped the layer"
    );
    assert_eq!(names(tmp), ["a", "blob"], "an entry escaped the layer");
    // A fresh, empty destination for the next run (the layer's root entry
    // may have changed its mode, owner or xattrs). As root, read-only
    // directories the layer made do not stop the removal.
    if fs::remove_dir(&dest).is_err() {
        fs::remove_dir_all(&dest).unwrap();
    }
    fs::create_dir(&dest).unwrap();
});
