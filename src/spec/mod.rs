//! Pod specs: the Kubernetes v1 subset, quantities, defaults, validation, loading.

pub mod types;
pub use types::*;
