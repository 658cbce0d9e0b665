//! Tests that need real files: layer unpacking with hand-made tars
//! (`unpack`), and end-to-end imports of the images built by
//! `tests/images/build-busybox.sh` (`e2e`).
//!
//! Root is needed for whiteouts (mknod 0/0), opaque xattrs, device nodes
//! and ownership; such tests check `euid` and say why they return early.
//! The kernel overlay check runs `unshare -m` + `mount -t overlay` in a
//! private mount namespace of a child process, so the host mount table is
//! never touched.

mod e2e;
mod gc;
mod naming;
mod unpack;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::{ImageStore, sys};

pub(super) use crate::testutil::is_root;

pub(super) fn skip_unless_root(test: &str) -> bool {
    crate::testutil::needs_root(&format!(
        "{test} (mknod whiteouts, trusted.* xattrs, chown)"
    ))
}

/// Runs the busybox image script into a fresh temp dir.
pub(super) fn build_images() -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images/build-busybox.sh");
    let status = Command::new("sh")
        .arg(&script)
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{} failed: {status}", script.display());
    out
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

pub(super) fn is_opaque(dir: &Path) -> bool {
    sys::lgetxattr(dir, "trusted.overlay.opaque").unwrap() == Some(b"y".to_vec())
}

/// Where `rel` is found in the overlay of `layers` (top-most first), as
/// overlayfs would resolve it: whiteouts and non-directories hide lower
/// layers, an opaque directory hides lower layers below it.
pub(super) fn overlay_lookup(layers: &[PathBuf], rel: &str) -> Option<PathBuf> {
    let comps: Vec<Component<'_>> = Path::new(rel).components().collect();
    for layer in layers {
        let mut p = layer.clone();
        let mut opaque_above = false;
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            let last = i + 1 == comps.len();
            match fs::symlink_metadata(&p) {
                Err(_) => break,
                Ok(m) if is_whiteout(&m) => return None,
                Ok(_) if last => return Some(p),
                Ok(m) if !m.is_dir() => return None,
                Ok(_) => opaque_above |= is_opaque(&p),
            }
        }
        if opaque_above {
            return None;
        }
    }
    None
}

/// Mounts the layers read-only with the kernel's overlayfs in a private
/// mount namespace and runs `script` inside the mount; `None` (with a
/// message) if that is not possible here.
pub(super) fn in_kernel_overlay(layers: &[PathBuf], script: &str) -> Option<String> {
    if crate::testutil::needs_root("the kernel overlay check") {
        return None;
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.contains("overlay") {
        crate::testutil::cannot_run("kernel overlay check: no overlayfs in /proc/filesystems");
        return None;
    }
    let scratch = tempfile::tempdir().unwrap();
    let empty = scratch.path().join("empty");
    let mnt = scratch.path().join("mnt");
    fs::create_dir(&empty).unwrap();
    fs::create_dir(&mnt).unwrap();
    // A read-only overlay needs at least two lower dirs.
    let mut lower: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
    lower.push(empty.display().to_string());
    let cmd = format!(
        "mount -t overlay overlay -o ro,lowerdir={} {} && cd {} && {script}",
        lower.join(":"),
        mnt.display(),
        mnt.display()
    );
    let probe = Command::new("unshare").args(["-m", "true"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        crate::testutil::cannot_run(&format!(
            "kernel overlay check: `unshare -m` does not work here: {probe:?}"
        ));
        return None;
    }
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &cmd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "overlay mount of {lower:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A fresh store at `<dir>/images`.
pub(super) fn store(dir: &Path) -> ImageStore {
    ImageStore::open(dir.join("images")).unwrap()
}
