//! The fleet channel (DESIGN §5): topics, desired/status/event documents,
//! signatures, node policy and the agent's config file.
//!
//! - [`topics`]: topic names under a prefix, and the inbound topic parser.
//! - [`doc`]: desired documents (JSON or postcard, optionally signed),
//!   merging device and group documents, revisions, status and events.
//! - [`sign`]: ed25519 keys, signatures and key files (`picolet keygen`).
//! - [`policy`]: what a remote pod may do on this device.
//! - [`config`]: the agent's config file (`/etc/picolet/config.yaml`).
//!
//! Everything here is pure (time comes in as an argument) except reading
//! the config, key and credentials files, `sign::keygen` writing a key
//! pair, and `doc::NodeInfo::read` reading `/proc`. No threads, no fds kept.

pub mod config;
pub mod doc;
pub mod policy;
pub mod sign;
pub mod topics;
