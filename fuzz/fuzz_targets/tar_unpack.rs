//! libFuzzer target for the layer unpacker (`image::unpack_layer`: gzip,
//! zstd or plain tar): it never panics, and whatever the entries' paths and
//! link targets (`..`, absolute paths, symlinks and hard links out of the
//! layer, entries through a symlink), nothing is written outside the
//! destination. Seeds: every layer blob the image tests unpack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::image::unpack_layer;
use std::fs;

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("blob");
    let dest = tmp.path().join("a/dest");
    let outside = tmp.path().join("a/outside");
    fs::create_dir_all(&dest).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(&blob, data).unwrap();
    let _ = unpack_layer(&blob, &dest);
    let mut around: Vec<_> = fs::read_dir(tmp.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    around.sort();
    assert_eq!(around, ["dest", "outside"], "an entry escaped the layer");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "an entry escaped the layer"
    );
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        2,
        "an entry escaped the layer"
    );
});
