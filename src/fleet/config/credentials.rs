//! The MQTT credentials file: YAML with `username` (required) and
//! `password` (optional; MQTT 3.1.1 allows a username alone), no other key.
//!
//! ```yaml
//! username: pi-17
//! password: s3cret
//! ```
//!
//! The file must not be readable or writable by group or others (mode
//! 0600 or 0400), as ssh requires of private keys. Reads the one file named.

use super::{ConfigError, MAX_CONFIG_BYTES, read_capped};
use serde::Deserialize;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// MQTT CONNECT credentials.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Credentials {
    /// Reads and checks a credentials file.
    pub fn load(path: &Path) -> Result<Credentials, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: format!(
                    "credentials must not be accessible by group or others (mode {mode:04o}; chmod 600 it)"
                ),
            });
        }
        let text = read_capped(path, MAX_CONFIG_BYTES)?;
        let creds: Credentials =
            crate::serde_path::from_yaml(&text).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if creds.username.is_empty() {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: "username: must not be empty".to_string(),
            });
        }
        Ok(creds)
    }
}
