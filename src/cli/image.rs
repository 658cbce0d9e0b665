//! `picolet image import` and `picolet image ls`: the image store under
//! the state directory, used directly (the agent need not run).

use super::args::{Args, Spec};
use super::state_dir;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

pub(super) fn image(args: Vec<OsString>) -> Result<ExitCode, String> {
    let a = Args::parse(
        args,
        &Spec {
            valued: &["name", "state-dir"],
            flags: &[],
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
                    0 => println!("imported {} ({})", i.reference, i.image_id),
                    n => println!(
                        "imported {} ({}); dropped {n} device node{} from its layers",
                        i.reference,
                        i.image_id,
                        if n == 1 { "" } else { "s" }
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("ls") | Some("list") => {
            let list = store.list().map_err(|e| e.to_string())?;
            print!("{}", crate::image::format_list(&list));
            Ok(ExitCode::SUCCESS)
        }
        _ => Err("usage: picolet image import FILE|DIR | picolet image ls".into()),
    }
}
