//! Layer unpacking against hand-made tars: traversal attacks, metadata,
//! whiteouts, compression and diff IDs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::{is_opaque, skip_unless_root};
use crate::image::unpack::unpack_layer;
use crate::image::{Digest, ImageError, ImageStore, sys};

/// Builds a tar in memory from raw entries (names are written verbatim,
/// so `..` and absolute paths get through, as in a malicious layer).
#[derive(Default)]
struct TarBuilder {
    b: Option<tar::Builder<Vec<u8>>>,
}

struct E<'a> {
    name: &'a str,
    kind: EntryType,
    link: &'a str,
    data: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    dev: (u32, u32),
}

fn e(name: &str, kind: EntryType) -> E<'_> {
    E {
        name,
        kind,
        link: "",
        data: b"",
        mode: if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        },
        uid: 0,
        gid: 0,
        dev: (0, 0),
    }
}

impl TarBuilder {
    fn add(&mut self, e: E<'_>) -> &mut Self {
        let b = self.b.get_or_insert_with(|| tar::Builder::new(Vec::new()));
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            old.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        }
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(1_000_000);
        if matches!(e.kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(e.dev.0).unwrap();
            h.set_device_minor(e.dev.1).unwrap();
        }
        h.set_cksum();
        b.append(&h, e.data).unwrap();
        self
    }

    fn pax(&mut self, kv: &[(&str, &[u8])]) -> &mut Self {
        let b = self.b.get_or_insert_with(|| tar::Builder::new(Vec::new()));
        b.append_pax_extensions(kv.iter().copied()).unwrap();
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        self.b.take().unwrap().into_inner().unwrap()
    }
}

/// Writes `tar` as a blob file and unpacks it into a fresh `layer` dir.
fn unpack(tmp: &Path, tar: &[u8]) -> (std::path::PathBuf, Result<Digest, ImageError>) {
    let blob = tmp.join("blob");
    fs::write(&blob, tar).unwrap();
    let layer = tmp.join("layer");
    let _ = fs::remove_dir_all(&layer);
    fs::create_dir(&layer).unwrap();
    let r = unpack_layer(&blob, &layer).map(|u| u.diff_id);
    (layer, r)
}

fn assert_unsafe(r: Result<Digest, ImageError>, entry: &str) {
    match r {
        Err(ImageError::UnsafePath { entry: got, .. }) => assert_eq!(got, entry),
        other => panic!("expected UnsafePath for {entry:?}, got {other:?}"),
    }
}

#[test]
fn tar_entries_with_dot_dot_are_rejected_and_nothing_lands_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = e("../evil", EntryType::Regular);
    f.data = b"x";
    let tar = TarBuilder::default()
        .add(e("ok", EntryType::Directory))
        .add(f)
        .finish();
    let (_, r) = unpack(tmp.path(), &tar);
    assert_unsafe(r, "../evil");
    assert!(!tmp.path().join("evil").exists());
    let tar = TarBuilder::default()
        .add(e("a/../../evil2", EntryType::Regular))
        .finish();
    assert_unsafe(unpack(tmp.path(), &tar).1, "a/../../evil2");
}

#[test]
fn absolute_tar_paths_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("abs-target");
    let name = target.display().to_string();
    let tar = TarBuilder::default()
        .add(e(&name, EntryType::Regular))
        .finish();
    assert_unsafe(unpack(tmp.path(), &tar).1, &name);
    assert!(!target.exists());
}

#[test]
fn writing_through_a_symlink_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let mut link = e("escape", EntryType::Symlink);
    let target = outside.display().to_string();
    link.link = &target;
    let mut file = e("escape/pwned", EntryType::Regular);
    file.data = b"owned";
    let tar = TarBuilder::default().add(link).add(file).finish();
    assert_unsafe(unpack(tmp.path(), &tar).1, "escape/pwned");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    // A relative symlink climbing out is caught the same way.
    let mut up = e("up", EntryType::Symlink);
    up.link = "../..";
    let tar = TarBuilder::default()
        .add(up)
        .add(e("up/x", EntryType::Directory))
        .finish();
    assert_unsafe(unpack(tmp.path(), &tar).1, "up/x");
}

#[test]
fn hard_links_outside_the_layer_or_through_symlinks_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = e("h", EntryType::Link);
    h.link = "../../etc/passwd";
    let tar = TarBuilder::default().add(h).finish();
    assert_unsafe(unpack(tmp.path(), &tar).1, "h");

    let mut h = e("h", EntryType::Link);
    h.link = "/etc/passwd";
    let tar = TarBuilder::default().add(h).finish();
    assert_unsafe(unpack(tmp.path(), &tar).1, "h");

    let mut s = e("etc", EntryType::Symlink);
    s.link = "/etc";
    let mut h = e("h", EntryType::Link);
    h.link = "etc/passwd";
    let tar = TarBuilder::default().add(s).add(h).finish();
    assert_unsafe(unpack(tmp.path(), &tar).1, "h");

    let mut h = e("h", EntryType::Link);
    h.link = "missing";
    let tar = TarBuilder::default().add(h).finish();
    assert!(matches!(
        unpack(tmp.path(), &tar).1,
        Err(ImageError::BadEntry { .. })
    ));
}

#[test]
fn a_symlink_replacing_a_directory_does_not_redirect_its_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    let mut d = e("d", EntryType::Directory);
    d.mode = 0o700;
    let mut sub = e("d/sub", EntryType::Directory);
    sub.mode = 0o700;
    let mut s = e("d", EntryType::Symlink);
    let target = outside.display().to_string();
    s.link = &target;
    let tar = TarBuilder::default().add(d).add(sub).add(s).finish();
    let (layer, r) = unpack(tmp.path(), &tar);
    r.unwrap();
    assert!(
        fs::symlink_metadata(layer.join("d"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let mode = fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
}

#[test]
fn files_dirs_symlinks_and_hard_links_keep_modes_and_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = e("./usr/bin/tool", EntryType::Regular);
    f.data = b"#!/bin/sh\n";
    f.mode = 0o755;
    let mut dir = e("./usr/share/", EntryType::Directory);
    dir.mode = 0o750;
    let mut link = e("./usr/bin/alias", EntryType::Symlink);
    link.link = "tool";
    let mut hard = e("./usr/bin/hard", EntryType::Link);
    hard.link = "./usr/bin/tool";
    let mut root = e("./", EntryType::Directory);
    root.mode = 0o711;
    let tar = TarBuilder::default()
        .add(root)
        .add(f)
        .add(dir)
        .add(link)
        .add(hard)
        .finish();
    let (layer, r) = unpack(tmp.path(), &tar);
    r.unwrap();
    let tool = fs::metadata(layer.join("usr/bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o755);
    assert_eq!(tool.mtime(), 1_000_000);
    assert_eq!(
        fs::read(layer.join("usr/bin/tool")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert_eq!(
        fs::read_link(layer.join("usr/bin/alias")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        fs::metadata(layer.join("usr/bin/hard")).unwrap().ino(),
        tool.ino()
    );
    let share = fs::metadata(layer.join("usr/share")).unwrap();
    assert_eq!(share.permissions().mode() & 0o7777, 0o750);
    assert_eq!(share.mtime(), 1_000_000);
    assert_eq!(
        fs::metadata(&layer).unwrap().permissions().mode() & 0o7777,
        0o711
    );
    // Parent dirs created implicitly are 0755.
    let bin = fs::metadata(layer.join("usr/bin")).unwrap();
    assert_eq!(bin.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn later_entries_replace_earlier_ones_of_another_type() {
    let tmp = tempfile::tempdir().unwrap();
    let mut file = e("x", EntryType::Regular);
    file.data = b"file";
    let mut file2 = e("y/z", EntryType::Regular);
    file2.data = b"z";
    let mut y = e("y", EntryType::Regular);
    y.data = b"now a file";
    let tar = TarBuilder::default()
        .add(e("x", EntryType::Directory))
        .add(file)
        .add(file2)
        .add(y)
        .finish();
    let (layer, r) = unpack(tmp.path(), &tar);
    r.unwrap();
    assert_eq!(fs::read(layer.join("x")).unwrap(), b"file");
    assert_eq!(fs::read(layer.join("y")).unwrap(), b"now a file");
}

#[test]
fn ownership_setuid_and_fifos_are_preserved_as_root() {
    if skip_unless_root("ownership_setuid_and_fifos_are_preserved_as_root") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut suid = e("bin/su", EntryType::Regular);
    suid.mode = 0o4755;
    suid.uid = 1000;
    suid.gid = 1001;
    suid.data = b"elf";
    let mut d = e("home/app", EntryType::Directory);
    d.uid = 1000;
    d.gid = 1000;
    d.mode = 0o700;
    let mut fifo = e("run/fifo", EntryType::Fifo);
    fifo.mode = 0o600;
    let mut link = e("home/app/l", EntryType::Symlink);
    link.link = "/nowhere";
    link.uid = 1000;
    let tar = TarBuilder::default()
        .add(suid)
        .add(d)
        .add(fifo)
        .add(link)
        .finish();
    let (layer, r) = unpack(tmp.path(), &tar);
    r.unwrap();
    let m = fs::metadata(layer.join("bin/su")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o4755));
    let m = fs::metadata(layer.join("home/app")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o700));
    assert!(
        fs::symlink_metadata(layer.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let m = fs::symlink_metadata(layer.join("home/app/l")).unwrap();
    assert_eq!(m.uid(), 1000);
}

/// The device entries of finding 1: a loop device, the kernel log and a
/// Pi's SD card, all 0666.
fn device_layer() -> Vec<u8> {
    let mut b = TarBuilder::default();
    b.add(e("dev", EntryType::Directory));
    for (name, kind, dev) in [
        ("dev/loop0", EntryType::Block, (7, 0)),
        ("dev/kmsg", EntryType::Char, (1, 11)),
        ("dev/mmcblk0", EntryType::Block, (179, 0)),
    ] {
        let mut n = e(name, kind);
        n.dev = dev;
        n.mode = 0o666;
        b.add(n);
    }
    let mut fifo = e("run/fifo", EntryType::Fifo);
    fifo.mode = 0o666;
    let mut f = e("etc/hostname", EntryType::Regular);
    f.data = b"ok";
    b.add(fifo).add(f).finish()
}

#[test]
fn device_nodes_in_a_layer_are_dropped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = device_layer();
    let blob = tmp.path().join("blob");
    fs::write(&blob, &tar).unwrap();
    let layer = tmp.path().join("layer");
    fs::create_dir(&layer).unwrap();
    // No root needed: no mknod of a device is attempted.
    let unpacked = unpack_layer(&blob, &layer).unwrap();
    assert_eq!(unpacked.dropped_devices, 3);
    assert_eq!(unpacked.diff_id, Digest::of_bytes(&tar));
    for name in ["dev/loop0", "dev/kmsg", "dev/mmcblk0"] {
        assert!(
            fs::symlink_metadata(layer.join(name)).is_err(),
            "{name} was created"
        );
    }
    assert!(layer.join("dev").is_dir());
    assert_eq!(fs::read(layer.join("etc/hostname")).unwrap(), b"ok");
    // FIFOs are harmless and kept.
    let m = fs::symlink_metadata(layer.join("run/fifo")).unwrap();
    assert!(m.file_type().is_fifo());
}

#[test]
fn a_zero_zero_char_device_is_kept_as_an_overlay_whiteout() {
    if skip_unless_root("a_zero_zero_char_device_is_kept_as_an_overlay_whiteout") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar = TarBuilder::default()
        .add(e("gone", EntryType::Char))
        .finish();
    let blob = tmp.path().join("blob");
    fs::write(&blob, &tar).unwrap();
    let layer = tmp.path().join("layer");
    fs::create_dir(&layer).unwrap();
    let unpacked = unpack_layer(&blob, &layer).unwrap();
    assert_eq!(unpacked.dropped_devices, 0);
    let m = fs::symlink_metadata(layer.join("gone")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
}

/// Concatenated gzip members: a tar header for one `size`-byte file, then
/// `mib` members of 1 MiB of zeros each (about 1 KiB compressed each), as
/// a decompression bomb is built. No end-of-archive marker is needed.
pub(super) fn gzip_bomb(mib: u64) -> Vec<u8> {
    let gz = |data: &[u8]| {
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        g.write_all(data).unwrap();
        g.finish().unwrap()
    };
    let mut h = Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_entry_type(EntryType::Regular);
    h.set_size(mib << 20);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let mut out = gz(h.as_bytes());
    let zeros = gz(&vec![0u8; 1 << 20]);
    for _ in 0..mib {
        out.extend_from_slice(&zeros);
    }
    out
}

#[test]
fn a_gzip_bomb_layer_is_refused_and_nothing_is_left_in_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("images")).unwrap();
    // 200 MiB of zeros in about 200 KB: over 100x + 64 MiB.
    let bomb = gzip_bomb(200);
    assert!(bomb.len() < 400_000, "{}", bomb.len());
    let (blob, _) = store.put_blob(&bomb[..], None, "bomb").unwrap();
    let diff_id = Digest::of_bytes(b"whatever");
    match store.ensure_layer(&blob, &diff_id) {
        Err(ImageError::LayerTooLarge {
            limit, compressed, ..
        }) => {
            assert_eq!(compressed, bomb.len() as u64);
            assert_eq!(limit, compressed * 100 + (64 << 20));
        }
        other => panic!("expected LayerTooLarge, got {other:?}"),
    }
    let msg = store.ensure_layer(&blob, &diff_id).unwrap_err().to_string();
    assert!(msg.contains("decompression bomb"), "{msg}");
    assert!(!store.layer_path(&diff_id).exists());
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(store.root().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_layer_that_would_eat_the_reserved_free_space_is_refused_midway() {
    use crate::image::budget::Space;
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("images")).unwrap();
    // A plain tar of 24 MiB: the ratio allows it, the free space does not.
    let mut data = vec![0u8; 24 << 20];
    data[0] = 1;
    let mut f = e("big", EntryType::Regular);
    f.data = &data;
    let tar = TarBuilder::default().add(f).finish();
    let (blob, _) = store.put_blob(&tar[..], None, "big").unwrap();
    let right = Digest::of_bytes(&tar);
    drop(tar);
    let dir = fs::File::open(store.root()).unwrap();
    let (avail, _) = sys::fs_space(&dir).unwrap();
    // Room for about 8 MiB above the reserve.
    let space = Space::with_reserve(store.root(), avail - (8 << 20));
    match store.ensure_layer_within(&blob, &right, space) {
        Err(ImageError::NoSpace { reserve, .. }) => assert_eq!(reserve, avail - (8 << 20)),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(!store.layer_path(&right).exists());
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    // With the real reserve it fits.
    let (dir, dropped) = store.ensure_layer_counted(&blob, &right).unwrap();
    assert_eq!(
        (fs::metadata(dir.join("big")).unwrap().len(), dropped),
        (24 << 20, 0)
    );
}

/// An old-GNU sparse entry (type `S`): 512 bytes of data placed at the end
/// of a `real`-byte file.
pub(super) fn gnu_sparse_tar(real: u64) -> Vec<u8> {
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{v:0width$o}", width = field.len() - 1);
        field[..s.len()].copy_from_slice(s.as_bytes());
        field[s.len()] = 0;
    };
    let mut h = Header::new_gnu();
    h.set_path("sparse").unwrap();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(512);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    {
        let g = h.as_gnu_mut().unwrap();
        octal(&mut g.realsize, real);
        octal(&mut g.sparse[0].offset, real - 512);
        octal(&mut g.sparse[0].numbytes, 512);
    }
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &[7u8; 512][..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn old_gnu_sparse_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = gnu_sparse_tar(1 << 30);
    assert!(tar.len() < 10_000);
    let (layer, r) = unpack(tmp.path(), &tar);
    match r {
        Err(ImageError::BadEntry { entry, reason }) => {
            assert_eq!(entry, "sparse");
            assert!(reason.contains("sparse"), "{reason}");
        }
        other => panic!("expected a refused sparse entry, got {other:?}"),
    }
    assert!(fs::symlink_metadata(layer.join("sparse")).is_err());
}

#[test]
fn pax_sparse_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = e("GNUSparseFile.0/data", EntryType::Regular);
    f.data = b"map and data";
    let tar = TarBuilder::default()
        .pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"data"),
            ("GNU.sparse.realsize", b"1073741824"),
        ])
        .add(f)
        .finish();
    let (layer, r) = unpack(tmp.path(), &tar);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("sparse"), "{msg}");
    assert!(!layer.join("GNUSparseFile.0").join("data").exists());
}

#[test]
fn whiteouts_become_overlay_char_devices_and_opaque_xattrs() {
    if skip_unless_root("whiteouts_become_overlay_char_devices_and_opaque_xattrs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut own = e("keep", EntryType::Regular);
    own.data = b"mine";
    let tar = TarBuilder::default()
        .add(e("a/.wh.gone", EntryType::Regular))
        .add(e("c/.wh..wh..opq", EntryType::Regular))
        .add(e("c/new", EntryType::Regular))
        .add(e(".wh..wh.plnk", EntryType::Directory))
        .add(own)
        .add(e(".wh.keep", EntryType::Regular))
        .add(e(".wh.later", EntryType::Regular))
        .add(e("later", EntryType::Directory))
        .finish();
    let (layer, r) = unpack(tmp.path(), &tar);
    r.unwrap();
    let m = fs::symlink_metadata(layer.join("a/gone")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0, "{m:?}");
    assert!(!layer.join("a/.wh.gone").exists());
    assert!(is_opaque(&layer.join("c")));
    assert!(!is_opaque(&layer.join("a")));
    assert!(layer.join("c/new").is_file());
    assert!(!layer.join(".wh..wh.plnk").exists());
    // A whiteout never hides an entry of its own layer...
    assert_eq!(fs::read(layer.join("keep")).unwrap(), b"mine");
    // ...and a later entry replaces an earlier whiteout.
    assert!(layer.join("later").is_dir());
}

#[test]
fn whiteouts_of_dot_dot_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = TarBuilder::default()
        .add(e("a/.wh...", EntryType::Regular))
        .finish();
    assert_unsafe(unpack(tmp.path(), &tar).1, "a/.wh...");
}

#[test]
fn only_user_and_capability_xattrs_are_applied() {
    if skip_unless_root("only_user_and_capability_xattrs_are_applied") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar = TarBuilder::default()
        .pax(&[
            ("SCHILY.xattr.user.picolet", b"yes"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ])
        .add(e("f", EntryType::Regular))
        .finish();
    let (layer, r) = unpack(tmp.path(), &tar);
    r.unwrap();
    let f = layer.join("f");
    assert_eq!(
        sys::lgetxattr(&f, "trusted.overlay.redirect").unwrap(),
        None
    );
    match sys::lgetxattr(&f, "user.picolet") {
        Ok(v) => assert_eq!(v, Some(b"yes".to_vec())),
        Err(err) => eprintln!("user xattrs unsupported on this filesystem: {err}"),
    }
}

#[test]
fn gzip_and_plain_layers_unpack_to_the_same_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = e("hello", EntryType::Regular);
    f.data = b"hello world\n";
    let tar = TarBuilder::default().add(f).finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let plain = unpack(tmp.path(), &tar).1.unwrap();
    let (layer, zipped) = unpack(tmp.path(), &gz);
    assert_eq!(plain, Digest::of_bytes(&tar));
    assert_eq!(zipped.unwrap(), plain);
    assert_eq!(fs::read(layer.join("hello")).unwrap(), b"hello world\n");
}

#[test]
fn zstd_layers_are_rejected_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let r = unpack(tmp.path(), &[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]).1;
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("zstd"), "{msg}");
}

#[test]
fn ensure_layer_rejects_a_wrong_diff_id_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("images")).unwrap();
    let mut f = e("f", EntryType::Regular);
    f.data = b"data";
    let tar = TarBuilder::default().add(f).finish();
    let (blob, _) = store.put_blob(&tar[..], None, "test layer").unwrap();
    let wrong = Digest::of_bytes(b"something else");
    match store.ensure_layer(&blob, &wrong) {
        Err(ImageError::DiffIdMismatch { expected, .. }) => assert_eq!(expected, wrong.to_string()),
        other => panic!("expected DiffIdMismatch, got {other:?}"),
    }
    assert!(!store.layer_path(&wrong).exists());
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    let right = Digest::of_bytes(&tar);
    let dir = store.ensure_layer(&blob, &right).unwrap();
    assert_eq!(dir, store.layer_path(&right));
    assert_eq!(fs::read(dir.join("f")).unwrap(), b"data");
    // Second call finds it without unpacking again.
    fs::remove_file(store.blob_path(&blob)).unwrap();
    assert_eq!(store.ensure_layer(&blob, &right).unwrap(), dir);
}

#[test]
fn a_gzip_layer_with_a_wrong_diff_id_is_refused_before_it_is_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("images")).unwrap();
    let mut f = e("f", EntryType::Regular);
    f.data = b"data";
    let tar = TarBuilder::default().add(f).finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let (blob, _) = store
        .put_blob(&gz.finish().unwrap()[..], None, "gz")
        .unwrap();
    let wrong = Digest::of_bytes(b"not it");
    match store.ensure_layer(&blob, &wrong) {
        Err(ImageError::DiffIdMismatch { actual, .. }) => {
            assert_eq!(actual, Digest::of_bytes(&tar).to_string())
        }
        other => panic!("expected DiffIdMismatch, got {other:?}"),
    }
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(store.root().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn put_blob_refuses_content_that_does_not_match_its_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let claimed = Digest::of_bytes(b"good");
    let err = store
        .put_blob(&b"evil"[..], Some(&claimed), "blob x")
        .unwrap_err();
    assert!(err.to_string().contains(&claimed.to_string()), "{err}");
    assert!(!store.blob_path(&claimed).exists());
    assert!(!store.blob_path(&Digest::of_bytes(b"evil")).exists());
    assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn index_writes_do_not_follow_a_planted_temp_symlink() {
    use std::sync::atomic::Ordering;
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    // The temp names are predictable: `.<name>.tmp-<pid>-<counter>`.
    let next = crate::image::store::TEMP_COUNTER.load(Ordering::Relaxed);
    for n in next..next + 64 {
        let name = format!(".index.json.tmp-{}-{n}", std::process::id());
        std::os::unix::fs::symlink(&victim, tmp.path().join(name)).unwrap();
    }
    let index = tmp.path().join("index.json");
    crate::image::store::write_atomic(&index, b"{}").unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(fs::read(&index).unwrap(), b"{}");
    assert!(fs::symlink_metadata(&index).unwrap().is_file());
}
