//! The preload directory for air-gapped devices: image archives dropped
//! into `<state>/images/` (`*.tar`, `*.tar.gz`, `*.tgz`: oci-archive or
//! docker-archive, as `picolet image import` takes) are imported when the
//! agent starts, one at a time by `picolet image import FILE` children
//! (never on the agent's thread). `<state>/images/preload.json` records
//! each imported archive's size and mtime and the images it held: an
//! archive unchanged since is not read again (k3s read every archive at
//! every start). While archives are imported, a container whose image is
//! missing waits for them instead of trying the registry.

use super::{Agent, Msg};
use crate::reactor;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `preload.json`: `{"NAME": {"size": N, "mtime_ns": N, "images":
/// ["imported REF (ID)", …]}}` (a `serde_json` value: no type of its
/// own).
pub(super) type Cache = serde_json::Value;

/// `preload.json` in `store`.
fn cache_path(store: &Path) -> PathBuf {
    store.join("preload.json")
}

/// `preload.json`; empty when missing or unreadable (everything is
/// imported again: importing an image twice changes nothing).
fn read_cache(path: &Path) -> Cache {
    match std::fs::read(path).map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(v @ Cache::Object(_))) => v,
        _ => Cache::Null,
    }
}

/// The archives of `store` not imported as they are now, with their size
/// and mtime, in name order.
pub(super) fn to_import(store: &Path, cache: &Cache) -> Vec<(String, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64, i64)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let archive = [".tar", ".tar.gz", ".tgz"]
                .iter()
                .any(|x| name.ends_with(x));
            let md = e.metadata().ok().filter(|m| m.is_file() && archive)?;
            let mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
            let same = cache.get(&name).is_some_and(|c| {
                c["size"].as_u64() == Some(md.len()) && c["mtime_ns"].as_i64() == Some(mtime_ns)
            });
            (!same).then_some((name, md.len(), mtime_ns))
        })
        .collect();
    out.sort();
    out
}

/// What a preload child reported.
#[derive(Debug)]
pub struct Preloaded {
    pub name: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// The import's `imported …` lines, or why it failed.
    pub result: Result<Vec<String>, String>,
    /// The last archive.
    pub last: bool,
}

impl Agent {
    /// Starts importing the archives in the store that are new or changed.
    pub(super) fn start_preload(&mut self) {
        let store = self.cfg.state_dir.join("images");
        let cache = read_cache(&cache_path(&store));
        let todo = to_import(&store, &cache);
        if todo.is_empty() {
            return;
        }
        log::info!(
            "preload: importing {} image archive(s) from {}",
            todo.len(),
            store.display()
        );
        self.preload = Some((cache, Vec::new()));
        let (exe, state, tx) = (
            self.cfg.exe.clone(),
            self.cfg.state_dir.clone(),
            self.tx.clone(),
        );
        reactor::spawn(async move {
            let n = todo.len();
            for (i, (name, size, mtime_ns)) in todo.into_iter().enumerate() {
                let mut cmd = Command::new(&exe);
                cmd.args(["image", "import"])
                    .arg(state.join("images").join(&name))
                    .arg("--state-dir")
                    .arg(&state);
                let mut lines = Vec::new();
                let status = reactor::process::lines(&mut cmd, &mut |l| {
                    lines.push(String::from_utf8_lossy(l).into_owned())
                })
                .await;
                let result = match status {
                    Ok(s) if s.success() => Ok(lines),
                    Ok(s) => Err(format!("picolet image import: {s}")),
                    Err(e) => Err(format!("picolet image import: {e}")),
                };
                let p = Preloaded {
                    name,
                    size,
                    mtime_ns,
                    result,
                    last: i + 1 == n,
                };
                let _ = tx.send(Msg::Preloaded(Box::new(p))).await;
            }
        })
        .detach();
    }

    pub(super) fn on_preloaded(&mut self, p: Preloaded) {
        let Some((cache, _)) = self.preload.as_mut() else {
            return;
        };
        match p.result {
            Ok(images) => {
                log::info!("preload: {}: {}", p.name, images.join("; "));
                let entry =
                    serde_json::json!({"size": p.size, "mtime_ns": p.mtime_ns, "images": images});
                cache[p.name.as_str()] = entry;
                let path = cache_path(&self.cfg.state_dir.join("images"));
                let tmp = path.with_extension("json.tmp");
                let written = crate::jsonl::to_string_pretty(cache)
                    .map_err(std::io::Error::other)
                    .and_then(|b| std::fs::write(&tmp, b))
                    .and_then(|()| std::fs::rename(&tmp, &path));
                if let Err(e) = written {
                    log::warn!("preload: {}: {e}", path.display());
                }
            }
            // Not recorded: tried again at the next start.
            Err(e) => log::warn!("preload: {}: {e}", p.name),
        }
        if p.last {
            // The containers that waited: their images again.
            let waiting = self.preload.take().map(|(_, w)| w).unwrap_or_default();
            for (uid, container, image, policy) in waiting {
                let input = self.ensure_image(uid, container, &image, policy);
                self.pending.extend(input);
            }
        }
    }
}

/// A container waiting for the preload: (uid, container, image, policy).
pub(super) type Waiting = Vec<(String, String, String, crate::spec::PullPolicy)>;

/// What an import in progress holds: the cache and who waits.
pub(super) type Preload = Option<(Cache, Waiting)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_or_changed_archives_are_imported_again() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.tar", "a.tar.gz", "c.tgz", "index.json", "notes.txt"] {
            std::fs::write(dir.path().join(f), f).unwrap();
        }
        std::fs::create_dir(dir.path().join("d.tar")).unwrap();
        let all = to_import(dir.path(), &Cache::Null);
        let names: Vec<&str> = all.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names, ["a.tar.gz", "b.tar", "c.tgz"]);
        // As on_preloaded records them, through preload.json.
        let mut cache = Cache::Null;
        for (n, size, mtime_ns) in &all {
            cache[n.as_str()] = serde_json::json!({"size": size, "mtime_ns": mtime_ns, "images": ["imported x:1 (sha256:0)"]});
        }
        let file = dir.path().join("preload.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&cache).unwrap()).unwrap();
        let mut cache = read_cache(&file);
        assert!(to_import(dir.path(), &cache).is_empty());
        // Replaced by another archive of the same name: imported again.
        std::fs::write(dir.path().join("b.tar"), "a longer b").unwrap();
        cache["c.tgz"]["mtime_ns"] = serde_json::json!(1);
        let names: Vec<String> = to_import(dir.path(), &cache)
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(names, ["b.tar", "c.tgz"]);
        assert!(read_cache(&dir.path().join("missing.json")).is_null());
        std::fs::write(&file, "[1]").unwrap();
        assert!(
            read_cache(&file).is_null(),
            "not an object: everything again"
        );
    }
}
