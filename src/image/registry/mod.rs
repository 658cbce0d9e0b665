//! Registry pulls: an HTTP/1.1 client ([`http`]), the OCI distribution
//! protocol with auth ([`auth`]), mirrors and per-registry TLS
//! ([`config`]), platform choice ([`platform`]) and resumable blob
//! downloads into the store ([`pull`]). Runs in the `picolet pull` helper
//! process or `picolet image pull`, never on the agent's thread (blocking
//! I/O, up to [`pull::PARALLEL`] download threads).

pub mod auth;
pub mod config;
pub mod http;
pub mod platform;
pub mod pull;
