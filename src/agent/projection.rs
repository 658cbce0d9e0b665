//! Writing configMap, secret, downwardAPI and projected volumes, and
//! resolving `subPath`s, on this machine.
//!
//! [`write_atomic`] is the kubelet's `AtomicWriter`: the files go into a
//! fresh hidden directory `..<timestamp>`, the symlink `..data` is swapped
//! to it with one `rename(2)`, and each top-level name the pod sees is a
//! symlink `name → ..data/name`. A reader sees the old set or the new set
//! of files, never a mix. Only when something changed is anything written.
//!
//! [`resolve_sub_path`] does the kubelet's escape checks for a `subPath`.

use crate::spec::refs::File;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

/// The symlink to the current data directory.
pub const DATA_DIR: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// The current files of `dir` as `(path, data, mode)`, or `None` when it
/// has no `..data` yet.
fn current(dir: &Path) -> Option<(PathBuf, Vec<File>)> {
    let target = std::fs::read_link(dir.join(DATA_DIR)).ok()?;
    let ts = dir.join(&target);
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(ts.join(&rel)).ok()?.flatten() {
            let r = rel.join(e.file_name());
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                stack.push(r);
            } else {
                files.push(File {
                    path: r.to_string_lossy().into_owned(),
                    data: std::fs::read(e.path()).ok()?,
                    mode: meta.permissions().mode() & 0o7777,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Some((target, files))
}

/// The first component of a relative path.
fn top(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

/// Writes `files` (sorted by path, relative, checked by validation) into
/// `dir` as described in the module doc. Returns whether anything changed.
pub fn write_atomic(dir: &Path, files: &[File], wall_ns: i64) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let old = current(dir);
    if let Some((_, old_files)) = &old {
        if old_files == files {
            return Ok(false);
        }
    }
    // `..2026_12_06_00_40_05.123456789`
    let stamp: String = crate::clock::rfc3339_nano(wall_ns)
        .trim_end_matches('Z')
        .chars()
        .map(|c| if matches!(c, '-' | 'T' | ':') { '_' } else { c })
        .collect();
    let mut name = format!("..{stamp}");
    let mut n = 0;
    while dir.join(&name).symlink_metadata().is_ok() {
        n += 1;
        name = format!("..{stamp}_{n}");
    }
    let ts = dir.join(&name);
    std::fs::create_dir(&ts)?;
    std::fs::set_permissions(&ts, std::fs::Permissions::from_mode(0o755))?;
    for f in files {
        let path = ts.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode & 0o7777))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&name, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_DIR))?;
    // The names the pod sees.
    let wanted: crate::vecmap::VecSet<&str> = files.iter().map(|f| top(&f.path)).collect();
    for t in &wanted {
        let link = dir.join(t);
        if link.symlink_metadata().is_err() {
            symlink(Path::new(DATA_DIR).join(t), &link)?;
        }
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let fname = e.file_name();
        let fname = fname.to_string_lossy();
        if fname.starts_with("..") || wanted.contains(fname.as_ref()) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_symlink()) {
            std::fs::remove_file(e.path())?;
        }
    }
    if let Some((old_target, _)) = old {
        if old_target.as_os_str() != name.as_str() {
            let _ = std::fs::remove_dir_all(dir.join(old_target));
        }
    }
    Ok(true)
}

/// Resolves `sub` (relative, checked by validation) inside the volume at
/// `root`, with the kubelet's checks: not absolute, no `..`, and no
/// symlink that leads outside the volume. A missing path is created as a
/// directory (0750), as the kubelet does. Returns the resolved path, which
/// has no symlink left in it.
pub fn resolve_sub_path(root: &Path, sub: &str) -> Result<PathBuf, String> {
    if sub.starts_with('/') {
        return Err(format!(
            "error SubPath `{sub}` must not be an absolute path"
        ));
    }
    if Path::new(sub)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(format!(
            "unable to provision SubPath `{sub}`: must not contain '..'"
        ));
    }
    let base =
        std::fs::canonicalize(root).map_err(|e| format!("volume {}: {e}", root.display()))?;
    let outside = || format!("subPath {sub:?} leads outside of its volume");
    let full = base.join(sub);
    // The longest existing prefix, resolved; the rest is created.
    let mut existing = full.clone();
    let mut rest = Vec::new();
    while existing.symlink_metadata().is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(p)) => {
                rest.push(n.to_os_string());
                existing = p.to_path_buf();
            }
            _ => return Err(outside()),
        }
    }
    let resolved = std::fs::canonicalize(&existing).map_err(|_| outside())?;
    if !resolved.starts_with(&base) {
        return Err(outside());
    }
    let mut out = resolved;
    for n in rest.into_iter().rev() {
        out.push(n);
        match std::fs::create_dir(&out) {
            Ok(()) => {
                let _ = std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o750));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("creating subPath {sub:?}: {e}")),
        }
        // Created by someone else meanwhile as a symlink: check again.
        let again = std::fs::canonicalize(&out).map_err(|_| outside())?;
        if !again.starts_with(&base) {
            return Err(outside());
        }
        out = again;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, data: &str, mode: u32) -> File {
        File {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn write_atomic_swaps_the_data_link_and_keeps_per_key_links() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("v");
        assert!(write_atomic(&dir, &[f("a", "1", 0o644), f("b/c", "2", 0o600)], 1).unwrap());
        let first = std::fs::read_link(dir.join("..data")).unwrap();
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(std::fs::read_to_string(dir.join("b/c")).unwrap(), "2");
        let mode = std::fs::metadata(dir.join("b/c"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Unchanged: nothing written.
        assert!(!write_atomic(&dir, &[f("a", "1", 0o644), f("b/c", "2", 0o600)], 2).unwrap());
        assert_eq!(std::fs::read_link(dir.join("..data")).unwrap(), first);
        // Changed: a new directory, the old one gone, `b` no longer listed.
        assert!(write_atomic(&dir, &[f("a", "3", 0o644)], 3).unwrap());
        let second = std::fs::read_link(dir.join("..data")).unwrap();
        assert_ne!(first, second);
        assert!(!dir.join(&first).exists());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert!(dir.join("b").symlink_metadata().is_err());
    }

    #[test]
    fn sub_paths_that_leave_the_volume_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("vol");
        std::fs::create_dir_all(root.join("in")).unwrap();
        symlink("/etc", root.join("evil")).unwrap();
        symlink("in", root.join("good")).unwrap();
        assert!(
            resolve_sub_path(&root, "evil")
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            resolve_sub_path(&root, "evil/x/y")
                .unwrap_err()
                .contains("outside")
        );
        assert!(resolve_sub_path(&root, "../x").unwrap_err().contains(".."));
        assert!(
            resolve_sub_path(&root, "/etc")
                .unwrap_err()
                .contains("absolute")
        );
        let base = std::fs::canonicalize(&root).unwrap();
        assert_eq!(resolve_sub_path(&root, "good").unwrap(), base.join("in"));
        assert_eq!(
            resolve_sub_path(&root, "new/dir").unwrap(),
            base.join("new/dir")
        );
        assert!(base.join("new/dir").is_dir());
    }
}
