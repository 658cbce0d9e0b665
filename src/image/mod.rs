//! Images: a local content-addressed store, import of OCI layouts,
//! oci-archives and docker-archives, and the pure rules for running an
//! image (command, environment, user, pull policy), image GC, and
//! registry pulls ([`registry`], run in a helper process or the CLI).
//!
//! # Files
//! Everything lives under one root, `<state-dir>/images`:
//! `blobs/sha256/<hex>`,
//! `layers/sha256/<diff-id>/` (unpacked, whiteouts in overlayfs form),
//! `index.json` (tag → manifest, an OCI image index), `index.lock`,
//! `tmp/`. Writers: `picolet image import`, `image rm`, `image prune` and
//! the agent's `picolet image-gc` child, one at a time under
//! `flock(index.lock)` (an import holds it for its whole run). Readers:
//! the agent (`resolve`, `list`), without locks: every file appears by
//! atomic rename, and deletion removes the index entry before its files.
//!
//! # Processes, threads, fds
//! No threads, no child processes. Import and [`unpack_layer`] are
//! synchronous and CPU-heavy (sha256, gunzip, untar): the agent must run
//! them in a short-lived helper process, never on its reactor thread.
//! `resolve`/`list` only read a few small JSON files. Files are opened and
//! closed within each call; `index.lock` is held only while rewriting the
//! index.
//!
//! # Privileges
//! Unpacking whiteouts (mknod 0/0), opaque directories
//! (`trusted.overlay.opaque`) and ownership needs root; without root,
//! ownership is not preserved and the others are errors. Block and
//! character devices in layers are never created (see `unpack`), and
//! unpacking is bounded (see `budget`).
//!
//! # Usage
//! ```no_run
//! # fn main() -> Result<(), picolet::image::ImageError> {
//! use picolet::image::{ImageStore, resolve_command};
//! let store = ImageStore::open("/var/lib/picolet/images")?;
//! store.import(std::path::Path::new("busybox.oci.tar"))?;
//! if let Some(img) = store.resolve("picolet.test/busybox:1")? {
//!     let argv = resolve_command(&img.config, None, None); // ["sh"]
//!     let lowerdir = img.layers.iter().map(|p| p.display().to_string())
//!         .collect::<Vec<_>>().join(":");
//! #   let _ = (argv, lowerdir);
//! }
//! # Ok(()) }
//! ```

mod budget;
mod command;
mod digest;
mod error;
pub mod gc;
pub(crate) mod gzip;
mod import;
mod index;
pub mod oci;
mod reference;
pub mod registry;
mod remove;
mod source;
mod store;
mod sys;
mod unpack;
mod user;

#[cfg(test)]
mod tests;

pub use command::{ImageConfig, merge_env, resolve_command};
pub use digest::{Digest, JSON_LIMIT};
pub use error::ImageError;
pub(crate) use index::human_size;
pub use index::{
    ANNOTATION_IMPORTED, ANNOTATION_LAST_USED, ImageSummary, ImportedImage, IndexLock,
    ResolvedImage, format_list,
};
pub use reference::Reference;
pub use remove::{DeletedImage, GcReport, GcRequest, InUse, gc_main};
pub use store::ImageStore;
pub use unpack::{Unpacked, unpack_layer};
pub use user::{resolve_user, user_groups};
