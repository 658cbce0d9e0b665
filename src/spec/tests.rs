//! Unit tests of the `spec` module, one file per submodule.

mod admission;
mod affinity;
mod caps;
mod config;
mod defaults;
mod env;
mod examples;
mod fields_doc;
mod lifecycle;
mod load;
mod quantity;
mod unsupported;
mod validate;
mod validate_container;
mod yaml;

use crate::spec::{Pod, SpecError, load_str};

/// A minimal valid pod; tests add lines to it.
pub(crate) const MINIMAL: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: c
    image: picolet.test/busybox:1
";

/// Loads text that must hold exactly one document.
pub(crate) fn load_one(text: &str) -> Result<Pod, SpecError> {
    let mut all = load_str(text, "test.yaml");
    assert_eq!(all.len(), 1, "expected one document in:\n{text}");
    all.remove(0)
}

/// The error of text that must hold exactly one, invalid, document.
pub(crate) fn load_err(text: &str) -> SpecError {
    match load_one(text) {
        Ok(p) => panic!("expected an error, loaded {p:?}\nfrom:\n{text}"),
        Err(e) => e,
    }
}

/// `MINIMAL` with `extra` appended to the container `c` (indented by the caller).
pub(crate) fn with_container_lines(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}
