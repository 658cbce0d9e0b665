//! The fleet channel (DESIGN §5): MQTT 3.1.1 to the fleet controller.
//!
//! - [`session`]: the sans-IO MQTT client session (pure core: no I/O, no
//!   clock, no threads).
//! - [`transport`]: `mqtt://` (TCP) and `mqtts://` (rustls, ring provider)
//!   byte streams on the [`crate::reactor`]. Opens one TCP socket per
//!   connection; reads the CA, client certificate and key files (or the
//!   system roots) on every connect.
//! - [`topics`]: topic names under a prefix, and the inbound topic parser.
//! - [`doc`]: desired documents (JSON or postcard, optionally signed),
//!   merging device and group documents, revisions, status and events.
//! - [`docs`]: the accepted desired documents the agent holds per source:
//!   revisions, refusals, merge, static-pod clashes and node policy.
//! - [`sign`]: ed25519 keys, signatures and key files (`picolet keygen`).
//! - [`policy`]: what a remote pod may do on this device.
//! - [`config`]: the agent's config file (`/etc/picolet/config.yaml`).
//!
//! Everything but `transport` is pure (time comes in as an argument) except
//! reading the config, key and credentials files, `sign::keygen` writing a
//! key pair, and `doc::NodeInfo::read` reading `/proc`.

pub mod config;
pub mod deployment;
pub mod doc;
pub mod docs;
pub mod policy;
pub mod session;
pub mod sign;
pub mod topics;
pub mod transport;

#[cfg(test)]
pub(crate) mod test_broker;
