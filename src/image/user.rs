//! Resolving an image `User` (`""`, `uid`, `uid:gid`, `name`,
//! `name:group`) to numeric IDs from the image's own `/etc/passwd` and
//! `/etc/group`. Reads those two files from the layer directories only.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::digest::{JSON_LIMIT, read_capped};
use super::{ImageError, sys};

/// Resolves `user` against `layers` (TOP-MOST FIRST). Rules (runc's):
/// `""` is root (0, 0); a numeric uid takes its primary gid from
/// `/etc/passwd` if listed, else 0; a name must be in `/etc/passwd`; an
/// explicit group is numeric or a name from `/etc/group`.
///
/// Each file is taken from the top-most layer that has it; a whiteout of
/// the file, or an opaque or deleted `/etc`, above it hides lower copies.
pub fn resolve_user(layers: &[PathBuf], user: &str) -> Result<(u32, u32), ImageError> {
    let err = |reason: &str| ImageError::UnknownUser {
        user: user.to_string(),
        reason: reason.to_string(),
    };
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if u.is_empty() || g == Some("") {
        return Err(err("empty user or group"));
    }
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(uid) if g.is_some() => (uid, 0),
        Ok(uid) => {
            let passwd = find_etc_file(layers, "passwd")?;
            let gid = passwd
                .as_deref()
                .and_then(|p| passwd_entries(p).find(|e| e.1 == uid))
                .map_or(0, |e| e.2);
            (uid, gid)
        }
        Err(_) => {
            let passwd = find_etc_file(layers, "passwd")?
                .ok_or_else(|| err("no /etc/passwd in the image"))?;
            let (_, uid, gid) = passwd_entries(&passwd)
                .find(|e| e.0 == u)
                .ok_or_else(|| err(&format!("no user {u:?} in /etc/passwd")))?;
            (uid, gid)
        }
    };
    let gid = match g {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = find_etc_file(layers, "group")?
                    .ok_or_else(|| err("no /etc/group in the image"))?;
                group_entries(&group)
                    .find(|e| e.0 == g)
                    .map(|e| e.1)
                    .ok_or_else(|| err(&format!("no group {g:?} in /etc/group")))?
            }
        },
    };
    Ok((uid, gid))
}

/// The gids of the image's `/etc/group` entries whose member list names
/// the user `uid` (by its first `/etc/passwd` name), as containerd adds
/// them; none when the image has no such user or files.
pub fn user_groups(layers: &[PathBuf], uid: u32) -> Vec<u32> {
    let file = |n| find_etc_file(layers, n).ok().flatten().unwrap_or_default();
    let passwd = file("passwd");
    let Some((name, _, _)) = passwd_entries(&passwd).find(|e| e.1 == uid) else {
        return Vec::new();
    };
    let group = file("group");
    group
        .lines()
        .filter_map(|line| {
            let mut f = line.splitn(4, ':');
            let (_, _, gid, members) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let gid = gid.parse().ok()?;
            members.split(',').any(|m| m.trim() == name).then_some(gid)
        })
        .collect()
}

/// `(name, uid, gid)` of each well-formed `/etc/passwd` line.
fn passwd_entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        (!name.is_empty() && !name.starts_with('#')).then_some((name, uid, gid))
    })
}

/// `(name, gid)` of each well-formed `/etc/group` line.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32)> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let gid = f.next()?.parse().ok()?;
        (!name.is_empty() && !name.starts_with('#')).then_some((name, gid))
    })
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    sys::lgetxattr(dir, "trusted.overlay.opaque")
        .ok()
        .flatten()
        .is_some_and(|v| v == b"y")
}

/// The content of `/etc/<name>` in the merged view, without following
/// symlinks out of a layer (a symlinked `/etc` or file counts as absent).
fn find_etc_file(layers: &[PathBuf], name: &str) -> Result<Option<String>, ImageError> {
    for layer in layers {
        let etc = layer.join("etc");
        match fs::symlink_metadata(&etc) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(None), // whiteout, symlink or file hides lower /etc
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ImageError::io("stat", &etc)(e)),
        }
        let path = etc.join(name);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                let file = fs::File::open(&path).map_err(ImageError::io("open", &path))?;
                let what = path.display().to_string();
                let bytes = read_capped(file, JSON_LIMIT, &what).map_err(|e| e.with_path(&path))?;
                return Ok(Some(String::from_utf8_lossy(&bytes).into_owned()));
            }
            Ok(m) if is_whiteout(&m) => return Ok(None),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if is_opaque(&etc) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(ImageError::io("stat", &path)(e)),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path, passwd: Option<&str>, group: Option<&str>) -> PathBuf {
        fs::create_dir_all(dir.join("etc")).unwrap();
        if let Some(p) = passwd {
            fs::write(dir.join("etc/passwd"), p).unwrap();
        }
        if let Some(g) = group {
            fs::write(dir.join("etc/group"), g).unwrap();
        }
        dir.to_path_buf()
    }

    const PASSWD: &str = "# comment\nroot:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbroken line\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    const GROUP: &str = "root:x:0:\napps:x:1001:app\nnobody:x:65534:\n";

    #[test]
    fn user_forms_resolve_through_passwd_and_group() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = vec![layer(tmp.path(), Some(PASSWD), Some(GROUP))];
        assert_eq!(resolve_user(&layers, "").unwrap(), (0, 0));
        assert_eq!(resolve_user(&layers, "1000").unwrap(), (1000, 1001));
        assert_eq!(resolve_user(&layers, "4242").unwrap(), (4242, 0));
        assert_eq!(resolve_user(&layers, "1000:7").unwrap(), (1000, 7));
        assert_eq!(resolve_user(&layers, "app").unwrap(), (1000, 1001));
        assert_eq!(resolve_user(&layers, "app:nobody").unwrap(), (1000, 65534));
        assert_eq!(resolve_user(&layers, "nobody:0").unwrap(), (65534, 0));
        assert_eq!(resolve_user(&layers, "5:apps").unwrap(), (5, 1001));
    }

    #[test]
    fn the_users_groups_are_those_that_list_its_name() {
        let tmp = tempfile::tempdir().unwrap();
        let group = "root:x:0:\napps:x:1001:app\nwheel:x:10:root, app\nother:x:20:application\n";
        let layers = vec![layer(tmp.path(), Some(PASSWD), Some(group))];
        assert_eq!(user_groups(&layers, 1000), [1001, 10]);
        assert_eq!(user_groups(&layers, 0), [10]);
        assert!(user_groups(&layers, 4242).is_empty(), "no passwd entry");
        assert!(user_groups(&[], 1000).is_empty());
    }

    #[test]
    fn unknown_names_and_malformed_users_are_errors_naming_the_user() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = vec![layer(tmp.path(), Some(PASSWD), Some(GROUP))];
        for bad in ["ghost", "app:ghosts", ":0", "0:", "broken"] {
            let err = resolve_user(&layers, bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        let none: Vec<PathBuf> = Vec::new();
        assert_eq!(resolve_user(&none, "7").unwrap(), (7, 0));
        assert!(resolve_user(&none, "app").is_err());
    }

    #[test]
    fn the_top_most_layer_with_the_file_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = layer(&tmp.path().join("lower"), Some(PASSWD), Some(GROUP));
        let upper = layer(
            &tmp.path().join("upper"),
            Some("app:x:2000:2000::/:/bin/sh\n"),
            None,
        );
        let layers = vec![upper, lower];
        assert_eq!(resolve_user(&layers, "app").unwrap(), (2000, 2000));
        // group only exists in the lower layer
        assert_eq!(resolve_user(&layers, "app:apps").unwrap(), (2000, 1001));
        assert!(resolve_user(&layers, "nobody").is_err());
    }

    #[test]
    fn a_whiteout_above_hides_the_lower_passwd() {
        if crate::testutil::needs_root("creating a whiteout (mknod 0/0)") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let lower = layer(&tmp.path().join("lower"), Some(PASSWD), Some(GROUP));
        let upper = layer(&tmp.path().join("upper"), None, None);
        sys::mknod(&upper.join("etc/passwd"), libc::S_IFCHR, 0, 0).unwrap();
        let layers = vec![upper, lower];
        assert!(resolve_user(&layers, "app").is_err());
        assert_eq!(resolve_user(&layers, "1000").unwrap(), (1000, 0));
        assert_eq!(resolve_user(&layers, "1000:apps").unwrap(), (1000, 1001));
    }

    #[test]
    fn a_symlinked_etc_is_not_followed_out_of_the_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = layer(&tmp.path().join("outside"), Some(PASSWD), None);
        let top = tmp.path().join("top");
        fs::create_dir_all(&top).unwrap();
        std::os::unix::fs::symlink(outside.join("etc"), top.join("etc")).unwrap();
        assert!(resolve_user(&[top], "app").is_err());
    }
}
