//! The per-pod shim process (DESIGN §1).

pub mod proto;
