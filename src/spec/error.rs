//! `SpecError`: every error of the `spec` module, with the field path it is about.
//!
//! Rendered as `<origin>: <path>: <message>`, for example
//! `pods.yaml (document 2): spec.containers[0].image: must not be empty`.
//! The origin is absent for pods that did not come from a file or document,
//! and the path is empty for errors about a whole document (syntax, I/O).

use std::fmt;

/// Where a manifest came from: a file name (or any label the caller gives,
/// such as `mqtt:picolet/devices/x/desired`) and the 1-based index of the
/// YAML document inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.source, self.document)
    }
}

/// What went wrong, so callers can react without parsing the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The text is not valid YAML/JSON.
    Syntax,
    /// The document is not a `v1` `Pod` (wrong `kind` or `apiVersion`).
    NotAPod,
    /// A field Kubernetes does not have (a typo, or a newer API).
    UnknownField,
    /// A Kubernetes field that picolet does not implement.
    Unsupported,
    /// A value of the wrong type, or a missing required field.
    Type,
    /// A value that breaks a validation rule.
    Invalid,
}

/// An error about a manifest, naming the field path (`spec.containers[1].ports[0].name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.origin.as_ref(), .path, .message))]
pub struct SpecError {
    pub origin: Option<Origin>,
    /// Dotted field path with `[i]` indices; empty for a whole document.
    pub path: String,
    pub kind: ErrorKind,
    pub message: String,
}

fn render(origin: Option<&Origin>, path: &str, message: &str) -> String {
    let mut out = String::new();
    if let Some(o) = origin {
        out.push_str(&o.to_string());
        out.push_str(": ");
    }
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

impl SpecError {
    /// A new error without origin.
    pub fn new(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            origin: None,
            path: path.into(),
            kind,
            message: message.into(),
        }
    }

    /// A validation error (`ErrorKind::Invalid`).
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError::new(ErrorKind::Invalid, path, message)
    }

    /// This error with its origin set (kept if already set).
    pub fn with_origin(mut self, origin: &Origin) -> SpecError {
        if self.origin.is_none() {
            self.origin = Some(origin.clone());
        }
        self
    }

    /// This error with `prefix` put in front of its path (`items[2]` + `spec` → `items[2].spec`).
    pub fn under(mut self, prefix: &str) -> SpecError {
        self.path = join(prefix, &self.path);
        self
    }
}

/// Joins two path segments with a dot, leaving out empty ones.
pub(crate) fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if rest.starts_with('[') => format!("{prefix}{rest}"),
        (false, false) => format!("{prefix}.{rest}"),
    }
}
