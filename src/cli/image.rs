//! `picolet image import|ls|rm|prune`: the image store under the state
//! directory, used directly. `rm` and `prune` ask the running agent which
//! images its pods use and refuse those (`--force`: delete without asking).

use super::args::{Args, Spec};
use super::{Common, state_dir};
use crate::api::{Request, Response};
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

pub(super) fn image(args: Vec<OsString>) -> Result<ExitCode, String> {
    if args.first().is_some_and(|a| a == "pull") {
        return super::pull::image_pull(args[1..].to_vec());
    }
    let a = Args::parse(
        args,
        &Spec {
            valued: &["name", "state-dir"],
            flags: &["force"],
        },
    )?;
    let free = &a.free;
    let store =
        crate::image::ImageStore::open(state_dir(&a)?.join("images")).map_err(|e| e.to_string())?;
    match free.first().map(String::as_str) {
        Some("import") => {
            let path = free
                .get(1)
                .ok_or("usage: picolet image import FILE|DIR [--name REF]")?;
            let imported = store
                .import_as(Path::new(path), a.one(&["name"]))
                .map_err(|e| e.to_string())?;
            for i in imported {
                match i.dropped_devices {
                    0 => super::out(&format!("imported {} ({})\n", i.reference, i.image_id))?,
                    n => super::out(&format!(
                        "imported {} ({}); dropped {n} device node{} from its layers\n",
                        i.reference,
                        i.image_id,
                        if n == 1 { "" } else { "s" }
                    ))?,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("ls") | Some("list") => {
            let list = store.list().map_err(|e| e.to_string())?;
            super::out(&crate::image::format_list(&list))?;
            Ok(ExitCode::SUCCESS)
        }
        Some("rm") | Some("rmi") => {
            let refs = &free[1..];
            if refs.is_empty() {
                return Err("usage: picolet image rm REF... [--force]".into());
            }
            let pods = images_in_use(&a, a.has(&["force"]))?;
            let trash = state_dir(&a)?.join("trash");
            locked(&store, |lock| {
                store.remove(lock, refs, &pods, &trash, crate::clock::wall_ms())
            })
        }
        Some("prune") => {
            if let Some(f) = free.get(1) {
                return Err(format!("unexpected argument {f:?}"));
            }
            let pods = images_in_use(&a, a.has(&["force"]))?;
            let mut all = crate::image::InUse::default();
            for (_, u) in pods {
                all.references.extend(u.references);
                all.image_ids.extend(u.image_ids);
            }
            let trash = state_dir(&a)?.join("trash");
            locked(&store, |lock| {
                store.prune(lock, &all, &trash, crate::clock::wall_ms())
            })
        }
        _ => Err(
            "usage: picolet image import FILE|DIR | image pull REF | image ls | image rm REF... | image prune"
                .into(),
        ),
    }
}

/// What the running agent's pods use, per pod, for `image rm`/`prune`;
/// with `force`, nothing (the agent is not asked).
fn images_in_use(a: &Args, force: bool) -> Result<Vec<(String, crate::image::InUse)>, String> {
    if force {
        return Ok(Vec::new());
    }
    let common = Common::of(a)?;
    let resp = common.call(Request::GetPods).map_err(|e| {
        format!(
            "cannot ask the agent which images its pods use ({e}); start it, or add --force to delete without asking"
        )
    })?;
    let Response::Pods { pods, .. } = resp else {
        return Err("unexpected response".into());
    };
    let strs = |v: &serde_json::Value, list: &str, field: &str| -> Vec<String> {
        v[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c[field].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(pods
        .iter()
        .map(|p| {
            let meta = &p.pod["metadata"];
            let name = format!(
                "{}/{}",
                meta["namespace"].as_str().unwrap_or("default"),
                meta["name"].as_str().unwrap_or("")
            );
            let spec = &p.pod["spec"];
            let mut references = strs(spec, "containers", "image");
            references.extend(strs(spec, "initContainers", "image"));
            let mut image_ids = strs(&p.status, "containerStatuses", "imageID");
            image_ids.extend(strs(&p.status, "initContainerStatuses", "imageID"));
            (
                name,
                crate::image::InUse {
                    references,
                    image_ids,
                },
            )
        })
        .collect())
}

/// Runs `op` (`image rm` or `prune`) under the store's index lock, then,
/// with the lock released, deletes and prints what it moved to the trash.
fn locked(
    store: &crate::image::ImageStore,
    op: impl FnOnce(
        &crate::image::IndexLock,
    ) -> Result<crate::image::GcReport, crate::image::ImageError>,
) -> Result<ExitCode, String> {
    let lock = store.lock_index().map_err(|e| e.to_string())?;
    let report = op(&lock).map_err(|e| e.to_string())?;
    drop(lock);
    print_removed(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// Deletes the layer trees `image rm`/`prune` moved into the trash, and
/// prints what went.
fn print_removed(report: &crate::image::GcReport) -> Result<(), String> {
    for t in &report.trashed {
        if let Err(e) = std::fs::remove_dir_all(t) {
            eprintln!("picolet image: removing {}: {e}", t.display());
        }
    }
    for d in &report.deleted {
        for r in &d.references {
            super::out(&format!("deleted {r} ({})\n", d.manifest))?;
        }
    }
    super::out(&format!(
        "{} bytes freed ({} blobs and layers)\n",
        report.freed, report.objects
    ))
}
