//! The minimal fleet controller (`docs/fleet.md`): `picolet apply`, `picolet
//! delete pod`, `picolet fleet status` and `picolet keygen`; without
//! `--broker`, `apply` and `delete` act on the local manifests directory
//! instead ([`local`]). Each fleet command is
//! one short process that talks to the broker through [`client::Client`]
//! (the fleet [`Session`](crate::fleet::session::Session) on the reactor,
//! inside `block_on`); there is no controller state besides the broker's
//! retained messages.
//!
//! # Revisions
//! `apply` and `delete` publish the next revision of the target's desired
//! document: `max(current, observed) + 1`, where `current` is the revision
//! of the retained desired document on the topic (if any) and `observed` is
//! the highest revision of that topic any device reports in its status
//! (`observedRevision.device` of the device, or `observedRevision.groups.G`
//! over every device). Taking the maximum of both keeps working when the
//! broker lost its retained messages (a restart without persistence): a
//! device ignores any revision at or below the one it accepted. Both are
//! read after a barrier ([`client::Client::sync`]), so every retained
//! message is in before the revision is chosen.
//!
//! # Merging
//! `apply` merges the pods given into the retained document (by
//! `namespace/name`; `--prune` replaces the set), `delete pod` removes
//! pods from it ([`merge`]). The diff is printed before publishing;
//! `--dry-run` stops there, and an unchanged set is not published (unless
//! no device reports the retained revision: then it is sent again). The
//! merged document is what gets signed (`--sign-key`).
//!
//! # Waiting
//! After publishing, the command waits (default 30 s, `--timeout 0` to not
//! wait) until:
//! - `--device ID`: the device's status reports `observedRevision.device ≥
//!   revision`;
//! - `--group G`: at least one device reports `observedRevision.groups.G ≥
//!   revision`, and no online device that reports an earlier revision of G
//!   is still behind.
//!
//! It fails at once when a device reports a new error about the document
//! (malformed, unsigned, bad signature, stale), and exits 1 after success
//! when a device refused pods of this revision (policy, name clash). Then
//! it waits for the pods it added or changed, on every device that took
//! the revision, to be Ready (or Succeeded) or to fail (a failing container
//! reason such as `ErrImagePull`, or phase `Failed`): exit 1 with the pod's
//! error. A changed pod counts once the device reports its new version (a
//! new uid; for an image-only change, the new images in its container
//! statuses). The default time-out is 60 s for all of it. On a TTY
//! (`isatty(1)`) a progress line shows what the devices report.
//!
//! Files read: the manifests (`-f`), the signing key, the TLS files and the
//! credentials file. `keygen` writes a key pair.

mod cli;
pub mod client;
mod local;
mod merge;
pub(crate) mod pods;
pub mod rollout;
mod status;
mod wait;

pub use cli::{USAGE, run};

use crate::fleet::topics::{Source, Topics};

/// The desired document a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Device(String),
    Group(String),
}

impl Target {
    pub fn source(&self) -> Source {
        match self {
            Target::Device(d) => Source::Device(d.clone()),
            Target::Group(g) => Source::Group(g.clone()),
        }
    }

    /// Topic filters to watch: the status and online flag of the device,
    /// or of every device for a group.
    pub fn watch_filters(&self, topics: &Topics) -> Vec<String> {
        match self {
            Target::Device(d) => vec![topics.device_status(d), topics.device_online(d)],
            Target::Group(_) => vec![topics.all_status_filter(), topics.all_online_filter()],
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Device(d) => write!(f, "device {d}"),
            Target::Group(g) => write!(f, "group {g}"),
        }
    }
}
