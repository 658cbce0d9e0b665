//! picolet: Kubernetes-style pods on small Linux devices, from one static binary.
//!
//! # Implementation
//!
//! Processes and threads:
//! - `picolet agent`: exactly **one OS thread**. Everything runs on the
//!   [`reactor`] (a `polling::Poller`, timers in an ordered map and a
//!   task executor of its own).
//!   It never forks itself; it starts helpers with `std::process::Command`.
//! - `picolet shim`: one per pod, re-executed from `/proc/self/exe` and
//!   double-forked away from the agent. A synchronous `poll(2)` loop that
//!   holds the pod's namespaces, spawns and reaps its containers and writes
//!   their logs (see [`runtime::shim`]).
//! - `picolet unpack`: a short-lived helper that gunzips and untars one
//!   image layer, so that CPU-heavy work never runs on the agent's thread.
//! - `picolet apply | delete pod | fleet status | keygen`: the fleet
//!   controller commands ([`controller`]), one short process each, on the
//!   same reactor (one thread).
//!
//! Files (see DESIGN §4): `<state-dir>/state.bin` (+ `.prev`),
//! `<state-dir>/picolet.sock`, `<state-dir>/images/`, `<state-dir>/pods/<uid>/`,
//! and container logs under `<run-dir>/logs/` (RAM by default).
//!
//! The pure cores take time as an argument ([`clock::Now`], or an
//! `Instant`) and do no I/O: [`lifecycle`] (the kubelet rules), the
//! [`store`] codec, the MQTT session ([`fleet::session`]), the fleet
//! documents ([`fleet::doc`], except `NodeInfo::read`), the node policy
//! ([`fleet::policy`]), the pod spec ([`spec`]: loading, defaults,
//! validation) and the sd_notify status limiter
//! ([`agent::notify::StatusLimiter`]). The rest is the I/O shell around
//! them (`agent`, `runtime`, `image`, `probe`, `api`, `reactor`).

pub mod agent;
pub mod api;
pub mod assets;
pub mod check;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod desired;
pub mod fleet;
pub mod image;
pub mod install;
pub mod jsonl;
pub mod lifecycle;
pub mod metrics;
pub mod net;
pub mod probe;
pub mod reactor;
pub mod runtime;
pub mod serde_path;
pub mod spec;
pub mod store;
pub mod sys;
#[cfg(test)]
mod testutil;
pub mod vecmap;
pub mod workloads;
pub mod yaml;
