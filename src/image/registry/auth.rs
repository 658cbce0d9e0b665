//! Registry authentication: `WWW-Authenticate` challenges (Bearer and
//! Basic), and credentials from `auth.json` (containers-auth.json, or
//! docker's `config.json`: `{"auths": {"HOST": {"auth": base64("user:pass")}}}`
//! or `{"username": …, "password": …}`). Pure except [`AuthFile::load`].

use crate::spec::strict::StrictValue;
use crate::vecmap::VecMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

/// Default credentials file (`--auth-file` / `$PICOLET_AUTH_FILE` override).
pub const DEFAULT_AUTH_FILE: &str = "/etc/picolet/auth.json";

/// A user name and password (or token as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// `Basic base64(user:password)`.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercase: `bearer` or `basic`.
    pub scheme: String,
    pub params: VecMap<String, String>,
}

impl Challenge {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

/// Parses `Bearer realm="https://auth",service="registry",scope="a:b:pull"`
/// (quoted or token values, commas inside quotes). `None` if empty.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = VecMap::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = rest[start..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = rest[i..].chars().next().unwrap_or('\0');
                value.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
        } else {
            let s = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value = rest[s..i].trim().to_string();
        }
        if !key.is_empty() {
            params.insert(key, value);
        }
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// One `auths` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// Written by `docker login` (old versions); carries nothing.
    #[serde(default)]
    #[allow(dead_code)]
    email: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawAuthFile {
    #[serde(default)]
    auths: VecMap<String, AuthEntry>,
    // Other keys of docker's config.json (credsStore, credHelpers,
    // proxies, …) belong to docker, not to this file's credentials.
}

/// Credentials by registry host.
#[derive(Debug, Default, Clone)]
pub struct AuthFile {
    by_host: VecMap<String, Credentials>,
}

/// The registry host an `auths` key names: `https://index.docker.io/v1/`
/// → `docker.io`; `quay.io/org` → `quay.io` (repository-scoped keys are
/// matched by host only).
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

impl AuthFile {
    /// Parses the file's text; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<AuthFile, String> {
        // Text → one `Value` → typed (docs/design-deviations.md §12).
        let value = serde_json::from_slice::<StrictValue>(text.as_bytes())
            .map_err(|e| format!("{what}: {e}"))?;
        AuthFile::from_value(value.0).map_err(|e| format!("{what}: {e}"))
    }

    /// The credentials of a Secret of type `kubernetes.io/dockerconfigjson`
    /// (key `.dockerconfigjson`: `{"auths": {…}}`) or the legacy
    /// `kubernetes.io/dockercfg` (key `.dockercfg`: the bare host map);
    /// `None` for other types. An error is (field path, message), and
    /// never holds a value.
    pub fn from_secret(
        secret_type: &str,
        data: &VecMap<String, Vec<u8>>,
    ) -> Option<Result<AuthFile, (String, String)>> {
        let (key, auths) = match secret_type {
            "kubernetes.io/dockerconfigjson" => (".dockerconfigjson", true),
            "kubernetes.io/dockercfg" => (".dockercfg", false),
            _ => return None,
        };
        let parsed = match data.get(key) {
            None => Err("Required value".to_string()),
            Some(text) => serde_json::from_slice::<StrictValue>(text)
                .map_err(|e| format!("Invalid value: \"<secret contents redacted>\": {e}"))
                .and_then(|v| {
                    // The bare map read as `auths`, its paths without it.
                    let v = match auths {
                        true => v.0,
                        false => serde_json::json!({ "auths": v.0 }),
                    };
                    AuthFile::from_value(v).map_err(|m| match auths {
                        true => m,
                        false => m.replacen("auths.", "", 1),
                    })
                }),
        };
        Some(parsed.map_err(|m| (format!("data[{key}]"), m)))
    }

    /// `{"auths": {…}}`. Errors name the path, never a value (serde's
    /// "invalid type: string \"…\"" would).
    fn from_value(value: serde_json::Value) -> Result<AuthFile, String> {
        let raw = crate::serde_path::from_value::<RawAuthFile>(value).map_err(|e| {
            let m = e.message();
            match m.split_once(", expected") {
                Some((_, exp)) if m.starts_with("invalid ") => {
                    format!("{}: invalid value (redacted), expected{exp}", e.path())
                }
                _ => e.to_string(),
            }
        })?;
        let pre = "auths.";
        let mut by_host = VecMap::new();
        for (key, e) in raw.auths {
            if e.identitytoken.is_some() || e.registrytoken.is_some() {
                return Err(format!(
                    "{pre}{key}: identitytoken/registrytoken are not supported; use auth or username/password"
                ));
            }
            let creds = match (e.auth, e.username, e.password) {
                (Some(a), None, None) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(a.trim())
                        .map_err(|_| format!("{pre}{key}.auth is not base64"))?;
                    let raw = String::from_utf8(raw)
                        .map_err(|_| format!("{pre}{key}.auth is not UTF-8"))?;
                    let (u, p) = raw.split_once(':').ok_or_else(|| {
                        format!("{pre}{key}.auth does not decode to user:password")
                    })?;
                    Credentials {
                        username: u.to_string(),
                        password: p.to_string(),
                    }
                }
                (None, Some(username), Some(password)) => Credentials { username, password },
                (None, None, None) => continue,
                _ => {
                    return Err(format!(
                        "{pre}{key}: give either auth or username and password"
                    ));
                }
            };
            by_host.insert(key_host(&key), creds);
        }
        Ok(AuthFile { by_host })
    }

    /// Reads `path`; a missing file is empty.
    pub fn load(path: &Path) -> Result<AuthFile, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => AuthFile::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Credentials for a registry host (`docker.io`, `localhost:5000`).
    pub fn get(&self, host: &str) -> Option<&Credentials> {
        self.by_host.get(&key_host(host))
    }

    /// Adds credentials for `host` unless it has some already: the first
    /// source that names a host wins.
    pub fn insert(&mut self, host: &str, creds: Credentials) {
        self.by_host.entry(key_host(host)).or_insert(creds);
    }

    /// Adds `other`'s hosts that this one does not name (this one wins).
    pub fn merge(&mut self, other: &AuthFile) {
        for (h, c) in &other.by_host {
            self.insert(h, c.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// As an auth.json text that [`AuthFile::parse`] reads back.
    pub fn to_json(&self) -> String {
        let auths: Vec<String> = self
            .by_host
            .iter()
            .map(|(h, c)| {
                let host = serde_json::Value::from(h.as_str());
                format!("{host}:{{\"auth\":\"{}\"}}", &c.basic()[6..])
            })
            .collect();
        format!("{{\"auths\":{{{}}}}}", auths.join(","))
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved kept).
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_challenges_parse_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push",error="invalid_token""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(
            c.param("scope"),
            Some("repository:library/busybox:pull,push")
        );
        assert_eq!(c.param("error"), Some("invalid_token"));
        let b = parse_challenge(r#"Basic realm="basic-realm""#).unwrap();
        assert_eq!(
            (b.scheme.as_str(), b.param("realm")),
            ("basic", Some("basic-realm"))
        );
        assert_eq!(parse_challenge("").map(|c| c.scheme), None);
    }

    #[test]
    fn auth_json_reads_base64_auth_and_username_password_by_host() {
        let text = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
            "localhost:5000": {"username": "u", "password": "p"},
            "quay.io/org": {"auth": "YTpi", "email": "x@y"}
        }, "credsStore": "desktop"}"#;
        let f = AuthFile::parse(text, "auth.json").unwrap();
        let c = f.get("docker.io").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("user", "pa:ss")
        );
        assert_eq!(f.get("localhost:5000").unwrap().password, "p");
        assert_eq!(f.get("quay.io").unwrap().username, "a");
        assert!(f.get("ghcr.io").is_none());
        assert_eq!(f.get("localhost:5000").unwrap().basic(), "Basic dTpw");
        assert!(!format!("{c:?}").contains("pa:ss"));
    }

    #[test]
    fn bad_auth_json_entries_are_refused_with_their_key() {
        for (text, want) in [
            (
                r#"{"auths":{"h":{"auth":"!!"}}}"#,
                "auths.h.auth is not base64",
            ),
            (
                r#"{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}"#,
                "does not decode to user:password",
            ),
            (
                r#"{"auths":{"h":{"username":"u"}}}"#,
                "either auth or username and password",
            ),
            (r#"{"auths":{"h":{"identitytoken":"t"}}}"#, "identitytoken"),
            (
                r#"{"auths":{"h":{"pasword":"t"}}}"#,
                "auths.h.pasword: unknown field `pasword`",
            ),
        ] {
            let e = AuthFile::parse(text, "f").unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn pull_secrets_of_both_docker_types_give_credentials() {
        let data = |k: &str, v: &str| VecMap::from([(k.to_string(), v.as_bytes().to_vec())]);
        let f = AuthFile::from_secret(
            "kubernetes.io/dockerconfigjson",
            &data(
                ".dockerconfigjson",
                r#"{"auths":{"r.lan:5000":{"username":"u","password":"p"}}}"#,
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.get("r.lan:5000").unwrap().password, "p");
        // The legacy type is the bare host map.
        let f = AuthFile::from_secret(
            "kubernetes.io/dockercfg",
            &data(
                ".dockercfg",
                r#"{"https://index.docker.io/v1/":{"auth":"dTpw","email":"e"}}"#,
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.get("docker.io").unwrap().username, "u");
        assert!(AuthFile::from_secret("Opaque", &data(".dockerconfigjson", "{}")).is_none());
    }

    #[test]
    fn bad_pull_secrets_are_refused_at_their_key_without_their_value() {
        let data = |k: &str, v: &str| VecMap::from([(k.to_string(), v.as_bytes().to_vec())]);
        let json = "kubernetes.io/dockerconfigjson";
        for (ty, key, text, path, want) in [
            (
                json,
                ".dockercfg",
                "{}",
                "data[.dockerconfigjson]",
                "Required value",
            ),
            (
                json,
                ".dockerconfigjson",
                "{topsecret",
                "data[.dockerconfigjson]",
                "Invalid value: \"<secret contents redacted>\": key must be a string",
            ),
            (
                json,
                ".dockerconfigjson",
                r#"{"auths":"topsecret"}"#,
                "data[.dockerconfigjson]",
                "auths: invalid value (redacted), expected a map",
            ),
            (
                "kubernetes.io/dockercfg",
                ".dockercfg",
                r#"{"h":{"auth":"dG9wc2VjcmV0"}}"#,
                "data[.dockercfg]",
                "h.auth does not decode to user:password",
            ),
        ] {
            let (p, m) = AuthFile::from_secret(ty, &data(key, text))
                .unwrap()
                .unwrap_err();
            assert_eq!(p, path, "{text}");
            assert!(m.starts_with(want), "{text}: {m}");
            assert!(!m.contains("topsecret"), "{m}");
        }
    }

    #[test]
    fn merged_credentials_keep_the_first_source_per_host_and_round_trip() {
        let pod =
            AuthFile::parse(r#"{"auths":{"h":{"username":"pod","password":"1"}}}"#, "a").unwrap();
        let node = AuthFile::parse(
            r#"{"auths":{"h":{"username":"node","password":"2"},"g":{"auth":"bjoz"}}}"#,
            "b",
        )
        .unwrap();
        let mut m = pod.clone();
        m.merge(&node);
        assert_eq!(m.get("h").unwrap().username, "pod");
        assert_eq!(m.get("g").unwrap().password, "3");
        m.insert(
            "g",
            Credentials {
                username: "yaml".into(),
                password: "4".into(),
            },
        );
        assert_eq!(
            m.get("g").unwrap().username,
            "n",
            "registries.yaml comes last"
        );
        let back = AuthFile::parse(&m.to_json(), "x").unwrap();
        assert_eq!(back.to_json(), m.to_json());
        assert_eq!(back.get("h"), m.get("h"));
        assert!(AuthFile::default().is_empty() && !m.is_empty());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_escape("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
