//! `picolet apply -f FILE` and `picolet delete pod NAME` without
//! `--broker`: they act on the agent's manifests directory (static pods),
//! which the agent follows with inotify.
//!
//! The directory is `--manifests DIR` (or `--manifests-dir DIR`), else
//! `manifests` of the config file (`--config FILE`, else
//! `/etc/picolet/config.yaml` if it exists), else `/etc/picolet/manifests`
//! (what `picolet install` sets up). The agent's API socket (for the source
//! of a pod) is found as for `get` (`--state-dir`, else the config file's
//! `stateDir`, else `$PICOLET_STATE_DIR`, else `/var/lib/picolet`); the
//! agent need not run.
//!
//! - `apply` loads every file given with the agent's loader (the same field
//!   paths in errors); any error and nothing is written. Each pod goes to
//!   the file that defines it already (found by reading the directory as
//!   the agent does), or to a new `<namespace>_<name>.yaml`. A file is
//!   written whole, to a hidden temporary file in the directory, then
//!   renamed over the old one: the agent never sees half a file. A pod in a
//!   file with several documents has its document replaced (documents
//!   separated by `---` lines); a form that cannot be edited that way (a
//!   `List`, a JSON stream) is refused, naming the file. Prints kubectl's
//!   `pod/NAME created|configured|unchanged`.
//! - `delete pod NAME...` removes the file that defines the pod, or its
//!   document from a file with several. A pod the agent runs from the
//!   fleet is refused, naming its source (`fleet:device/<id>` or
//!   `fleet:group/<g>`); a pod found nowhere is kubectl's
//!   `Error from server (NotFound): pods "NAME" not found` (exit 1).
//!   Prints `pod "NAME" deleted` once the file is gone; the agent then
//!   stops the pod within its grace period.
//! - `--dry-run`: everything is checked and printed (with ` (dry run)`, as
//!   kubectl does), nothing is written.

use super::cli::Args;
use super::merge::key;
use crate::api::{self, Request, Response};
use crate::fleet::config::{AgentFileConfig, DEFAULT_CONFIG_PATH};
use crate::fleet::docs::is_fleet_source;
use crate::spec::Pod;
use crate::vecmap::VecMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The manifests directory used when neither flag nor config file names
/// one (`picolet install`'s).
pub const DEFAULT_MANIFESTS_DIR: &str = "/etc/picolet/manifests";

/// Where the command works: the manifests dir and the agent's state dir.
struct Place {
    dir: PathBuf,
    state_dir: PathBuf,
}

/// The fleet options, meaningless without `--broker`.
const FLEET_ONLY: &[&str] = &[
    "device",
    "group",
    "sign-key",
    "timeout",
    "topic-prefix",
    "ca",
    "cert",
    "key",
    "credentials",
    "prune",
];

fn place(a: &Args) -> Result<Place, String> {
    if let Some(o) = FLEET_ONLY.iter().find(|o| a.has(&[o])) {
        return Err(format!(
            "--{o} is an option of the fleet (give --broker URL); without --broker, apply and delete act on the local manifests directory"
        ));
    }
    let file = match a.one(&["config"]) {
        Some(p) => AgentFileConfig::load(Path::new(p)),
        None => AgentFileConfig::load_optional(Path::new(DEFAULT_CONFIG_PATH)),
    }
    .map_err(|e| e.to_string())?;
    let dir = a
        .one(&["manifests", "manifests-dir"])
        .map(PathBuf::from)
        .or(file.manifests)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MANIFESTS_DIR));
    if !dir.is_dir() {
        return Err(format!(
            "the manifests directory {} does not exist (give --manifests DIR, the agent's)",
            dir.display()
        ));
    }
    let state_dir =
        crate::cli::resolve_state_dir(a.one(&["state-dir"]).map(PathBuf::from), file.state_dir);
    Ok(Place { dir, state_dir })
}

/// Splits YAML text at its `---` document separator lines (the lines are
/// dropped; [`join_docs`] puts them back).
fn split_docs(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.split_inclusive('\n') {
        let l = line.trim_end();
        if l == "---" || l.starts_with("--- ") {
            docs.push(String::new());
        } else {
            docs.last_mut().expect("never empty").push_str(line);
        }
    }
    docs
}

fn join_docs(docs: &[String]) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("---\n");
        }
        out.push_str(d);
    }
    out
}

/// Loads text with the agent's loader; the first error fails it all.
fn load(text: &str, source: &str) -> Result<Vec<Pod>, String> {
    crate::spec::load_str(text, source)
        .into_iter()
        .collect::<Result<Vec<Pod>, _>>()
        .map_err(|e| e.to_string())
}

fn same(a: &Pod, b: &Pod) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// The text of each pod of a file given with `-f`: the whole text for a
/// file of one pod, its document for a `---` stream, else the pod written
/// out as YAML.
fn pod_texts(text: &str, source: &str, pods: &[Pod]) -> Result<Vec<String>, String> {
    if pods.len() == 1 {
        return Ok(vec![text.to_string()]);
    }
    let docs: Vec<String> = split_docs(text)
        .into_iter()
        .filter(|d| load(d, source).is_ok_and(|p| !p.is_empty()))
        .collect();
    let fits = docs.len() == pods.len()
        && docs
            .iter()
            .zip(pods)
            .all(|(d, p)| load(d, source).is_ok_and(|l| l.len() == 1 && same(&l[0], p)));
    if fits {
        return Ok(docs);
    }
    pods.iter()
        .map(|p| {
            let t = serde_json::to_value(p)
                .map(|v| crate::yaml::to_string(&v))
                .map_err(|e| format!("{source}: {e}"))?;
            match load(&t, source) {
                Ok(l) if l.len() == 1 && same(&l[0], p) => Ok(t),
                _ => Err(format!(
                    "{source}: cannot split pod {} out of this file; give it in a file of its own",
                    key(p)
                )),
            }
        })
        .collect()
}

/// Reads the `-f` files (directories: their `*.yaml`, `*.yml`, `*.json`).
fn given(files: &[&str]) -> Result<Vec<(Pod, String)>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in super::cli::expand(files)? {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{source}: {e}"))?;
        let workload = crate::spec::load_manifests_str(&text, &source)
            .into_iter()
            .find_map(|m| match m {
                Ok(crate::spec::Manifest::Workload(w, _)) => Some(w.key()),
                _ => None,
            });
        if let Some(k) = workload {
            errors.push(format!(
                "{source}: {k}: apply without --broker writes pods only; copy the file into the manifests directory (the agent runs it from there) or publish it with --broker"
            ));
            continue;
        }
        let results = crate::spec::load_str(&text, &source);
        let mut pods = Vec::new();
        for r in results {
            match r {
                Ok(p) => pods.push(p),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if pods.is_empty() && errors.is_empty() {
            errors.push(format!("{source}: no pod in this file"));
        }
        if errors.is_empty() {
            let texts = pod_texts(&text, &source, &pods)?;
            out.extend(pods.into_iter().zip(texts));
        }
    }
    if !errors.is_empty() {
        return Err(format!("{}\nnothing was written", errors.join("\n")));
    }
    let mut seen = crate::vecmap::VecSet::new();
    for (p, _) in &out {
        if !seen.insert(key(p)) {
            return Err(format!(
                "pod {} is given twice; nothing was written",
                key(p)
            ));
        }
    }
    Ok(out)
}

/// The manifests of the directory as the agent reads them: each pod's
/// file (the first file, in path order, that defines it), and the files
/// that do not load.
struct Dir {
    owner: VecMap<String, PathBuf>,
    files: VecMap<PathBuf, Vec<Pod>>,
    errors: VecMap<PathBuf, String>,
}

fn read_dir(dir: &Path) -> Result<Dir, String> {
    let scan = crate::agent::manifests::scan(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut owner = VecMap::new();
    for (path, pods) in &scan.files {
        for p in pods {
            owner.entry(key(p)).or_insert_with(|| path.clone());
        }
    }
    Ok(Dir {
        owner,
        files: scan.files,
        errors: scan.errors,
    })
}

/// Writes `text` to `path` atomically: a hidden temporary file in the same
/// directory (the agent ignores dot files), synced, renamed over `path`.
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("pod.yaml");
    let tmp = path.with_file_name(format!(".{name}.picolet-tmp"));
    let err = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}

/// `path`'s text with the document of pod `k` replaced by `new` (or
/// dropped, `None`), checked by loading the result.
fn edit_file(
    path: &Path,
    pods: &[Pod],
    k: &str,
    new: Option<(&Pod, &str)>,
) -> Result<String, String> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{source}: {e}"))?;
    let mut docs = split_docs(&text);
    let at = docs
        .iter()
        .position(|d| load(d, &source).is_ok_and(|l| l.len() == 1 && key(&l[0]) == k));
    let refuse = || {
        format!(
            "{source} defines pod {k} among other pods in a form picolet cannot edit (not `---`-separated documents); edit it by hand"
        )
    };
    let i = at.ok_or_else(refuse)?;
    let mut want: Vec<Pod> = pods.to_vec();
    match new {
        Some((p, t)) => {
            let mut t = t.to_string();
            if !t.ends_with('\n') {
                t.push('\n');
            }
            docs[i] = t;
            for w in want.iter_mut().filter(|w| key(w) == k) {
                *w = p.clone();
            }
        }
        None => {
            docs.remove(i);
            want.retain(|w| key(w) != k);
        }
    }
    let out = join_docs(&docs);
    match load(&out, &source) {
        Ok(got) if got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| same(a, b)) => {
            Ok(out)
        }
        _ => Err(refuse()),
    }
}

/// Pods the agent runs, by `namespace/name`, with their source; empty when
/// the agent does not answer.
fn agent_sources(state_dir: &Path) -> VecMap<String, String> {
    match api::call(state_dir, &Request::GetPods) {
        Ok(Response::Pods { pods, .. }) => pods
            .into_iter()
            .map(|e| {
                let m = &e.pod["metadata"];
                let ns = m["namespace"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("default");
                let name = m["name"].as_str().unwrap_or("");
                (format!("{ns}/{name}"), e.source)
            })
            .collect(),
        _ => VecMap::new(),
    }
}

/// How to delete a pod of the fleet, for the refusal.
fn fleet_hint(source: &str, name: &str) -> String {
    let rest = source.strip_prefix("fleet:").unwrap_or(source);
    match rest.split_once('/') {
        Some(("device", d)) => format!("picolet delete pod {name} --device {d} --broker URL"),
        Some(("group", g)) => format!("picolet delete pod {name} --group {g} --broker URL"),
        _ => "the fleet controller".to_string(),
    }
}

/// `picolet apply -f FILE...` without `--broker`.
pub(super) fn apply(a: &Args) -> Result<ExitCode, String> {
    let files = a.all(&["f", "filename"]);
    if files.is_empty() {
        return Err("usage: picolet apply -f FILE... [--manifests DIR]".into());
    }
    a.no_free()?;
    let place = place(a)?;
    let pods = given(&files)?;
    let dir = read_dir(&place.dir)?;
    let sources = agent_sources(&place.state_dir);
    let dry = a.has(&["dry-run"]);
    let note = if dry { " (dry run)" } else { "" };
    for (pod, text) in pods {
        let k = key(&pod);
        let name = &pod.metadata.name;
        let Some(path) = dir.owner.get(&k) else {
            let path = place.dir.join(format!(
                "{}_{}.yaml",
                pod.metadata.namespace_or_default(),
                name
            ));
            if let Some(e) = dir.errors.get(&path) {
                return Err(format!(
                    "{} exists and does not load ({e}); fix or remove it first",
                    path.display()
                ));
            }
            if path.exists() {
                return Err(format!(
                    "{} exists and does not define pod {k}",
                    path.display()
                ));
            }
            if let Some(src) = sources.get(&k).filter(|s| is_fleet_source(s)) {
                eprintln!(
                    "warning: pod \"{name}\" comes from the fleet ({src}); the static pod written to {} takes its place (static pods win)",
                    path.display()
                );
            }
            if !dry {
                write_atomic(&path, &text)?;
            }
            println!("pod/{name} created{note}");
            continue;
        };
        let in_file = &dir.files[path];
        let old = in_file
            .iter()
            .find(|p| key(p) == k)
            .expect("the owner defines it");
        if same(old, &pod) {
            println!("pod/{name} unchanged{note}");
            continue;
        }
        let out = if in_file.len() == 1 {
            text
        } else {
            edit_file(path, in_file, &k, Some((&pod, &text)))?
        };
        if !dry {
            write_atomic(path, &out)?;
        }
        println!("pod/{name} configured{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `picolet delete pod NAME...` without `--broker`.
pub(super) fn delete(a: &Args, names: &[String]) -> Result<ExitCode, String> {
    let place = place(a)?;
    let ns = a.one(&["n", "namespace"]).unwrap_or("default");
    let dir = read_dir(&place.dir)?;
    let dry = a.has(&["dry-run"]);
    let mut sources = None;
    let mut code = ExitCode::SUCCESS;
    for name in names {
        let k = format!("{ns}/{name}");
        if let Some(path) = dir.owner.get(&k) {
            let in_file = &dir.files[path];
            if in_file.len() > 1 {
                let out = edit_file(path, in_file, &k, None)?;
                if !dry {
                    write_atomic(path, &out)?;
                }
            } else if !dry {
                std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            println!(
                "pod \"{name}\" deleted{}",
                if dry { " (dry run)" } else { "" }
            );
            continue;
        }
        let sources = sources.get_or_insert_with(|| agent_sources(&place.state_dir));
        code = ExitCode::from(1);
        match sources.get(&k) {
            Some(src) if is_fleet_source(src) => eprintln!(
                "error: pod \"{name}\" comes from the fleet ({src}), not from the manifests directory {}: delete it there ({})",
                place.dir.display(),
                fleet_hint(src, name)
            ),
            Some(src) if src != "unknown" => eprintln!(
                "error: pod \"{name}\" comes from {src}, outside the manifests directory {} (give the agent's --manifests DIR)",
                place.dir.display()
            ),
            _ => eprintln!("Error from server (NotFound): pods \"{name}\" not found"),
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: main\n    image: busybox:1\n";

    #[test]
    fn a_document_of_a_multi_document_file_is_replaced_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.yaml");
        let db = WEB.replace("name: web", "name: db");
        std::fs::write(&path, format!("# mine\n{WEB}---\n{db}")).unwrap();
        let pods = load(&std::fs::read_to_string(&path).unwrap(), "x").unwrap();
        let new_text = WEB.replace("busybox:1", "busybox:2");
        let new = load(&new_text, "x").unwrap().remove(0);
        let out = edit_file(&path, &pods, "default/web", Some((&new, &new_text))).unwrap();
        assert_eq!(out, format!("{new_text}---\n{db}"));
        let out = edit_file(&path, &pods, "default/db", None).unwrap();
        assert_eq!(out, format!("# mine\n{WEB}"));
        // A List cannot be edited document by document.
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: web}\n  spec: {containers: [{name: main, image: busybox:1}]}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: db}\n  spec: {containers: [{name: main, image: busybox:1}]}\n";
        std::fs::write(&path, list).unwrap();
        let pods = load(list, "x").unwrap();
        assert_eq!(pods.len(), 2);
        let e = edit_file(&path, &pods, "default/db", None).unwrap_err();
        assert!(e.contains("in a form picolet cannot edit"), "{e}");
    }

    #[test]
    fn a_stream_given_with_f_is_split_into_its_documents() {
        let db = WEB.replace("name: web", "name: db");
        let text = format!("{WEB}---\n{db}");
        let pods = load(&text, "x").unwrap();
        assert_eq!(pod_texts(&text, "x", &pods).unwrap(), [WEB.to_string(), db]);
    }

    #[test]
    fn a_workload_file_is_refused_with_where_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yaml");
        std::fs::write(
            &path,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: main, image: busybox:1}]}\n",
        )
        .unwrap();
        let e = given(&[path.to_str().unwrap()]).unwrap_err();
        assert!(
            e.contains("Deployment default/web: apply without --broker writes pods only"),
            "{e}"
        );
        assert!(e.contains("nothing was written"), "{e}");
    }
}
