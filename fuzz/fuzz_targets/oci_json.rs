//! libFuzzer target for the OCI documents an image archive holds: the
//! index, the manifest, the image config and Docker's `manifest.json`. It
//! never panics; a document that parses survives a JSON round trip (the
//! ones picolet writes back: index and manifest). Seeds: every JSON
//! document the image tests parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::image::oci::{
    ConfigFile, DockerArchiveEntry, Index, Manifest, host_platform, select_platform, sniff_kind,
};

fuzz_target!(|data: &[u8]| {
    let _ = sniff_kind(data);
    if let Ok(index) = serde_json::from_slice::<Index>(data) {
        let again: Index = serde_json::from_slice(&serde_json::to_vec(&index).unwrap()).unwrap();
        assert_eq!(format!("{again:?}"), format!("{index:?}"));
        let _ = select_platform(&index.manifests, &host_platform());
    }
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        let again: Manifest =
            serde_json::from_slice(&serde_json::to_vec(&manifest).unwrap()).unwrap();
        assert_eq!(format!("{again:?}"), format!("{manifest:?}"));
    }
    let _ = serde_json::from_slice::<ConfigFile>(data);
    let _ = serde_json::from_slice::<Vec<DockerArchiveEntry>>(data);
});
