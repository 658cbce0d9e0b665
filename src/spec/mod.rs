//! Pod specs: the Kubernetes v1 subset, quantities, defaults, validation, loading.
//!
//! - [`types`]: the Pod types (Kubernetes field names and JSON shapes).
//! - [`load`]: YAML/JSON manifests → validated [`Pod`]s, with errors that
//!   name the field path ([`SpecError`]). Uses the field tables in
//!   `schema` (what is accepted, ignored or refused — all in one place).
//! - [`validate`]: Kubernetes' rules on a typed pod.
//! - [`quantity`]: `250m`, `128Mi`, `1e3`.
//! - [`defaults`]: pull policy, probe timing and handler, grace period,
//!   named ports, resource values.
//! - [`env`]: `fieldRef` values, `$(VAR)` expansion, argv.
//! - [`caps`]: Linux capability names and the effective set.
//!
//! The only I/O is [`load_file`] reading one file. No threads, no fds kept.

pub mod affinity;
pub mod caps;
pub mod defaults;
pub mod env;
mod error;
pub mod host_ports;
pub mod load;
pub mod names;
mod normalize;
pub mod objects;
pub mod quantity;
pub mod refs;
mod schema;
pub(crate) mod strict;
pub mod types;
pub mod validate;
pub mod workload;

#[cfg(test)]
mod tests;

pub use caps::{capability_number, effective_capabilities};
pub use defaults::{ProbeHandler, ProbeTiming, defaulted, resolve_port, signal_number};
pub use env::{EnvContext, container_argv, container_env, env_value, expand, field_ref_value};
pub use error::{ErrorKind, Origin, SpecError};
pub use load::{
    Manifest, check_nesting, load_file, load_manifests_file, load_manifests_str, load_str,
    load_value, pod_from_value,
};
pub use objects::{ConfigObject, ObjectKind, Objects};
pub use quantity::{ParsedQuantity, QuantityFormat};
pub use types::*;
pub use validate::{sysctl_name, validate, validate_all};
