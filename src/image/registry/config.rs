//! `/etc/picolet/registries.yaml`, in k3s's format:
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["https://mirror.example:5000", "http://10.0.0.2:5000"]
//!     rewrite:
//!       "^library/(.*)": "dockerhub/$1"
//!   "*":                     # every other registry
//!     endpoint: ["https://cache.example"]
//! configs:
//!   mirror.example:5000:
//!     auth: {username: u, password: p}      # or {auth: base64(u:p)}
//!     tls: {ca_file: /etc/picolet/ca.pem, cert_file: c.pem, key_file: k.pem}
//! ```
//!
//! Endpoints are tried in order, then the registry itself
//! (`https://<host>`, `docker.io` → `https://registry-1.docker.io`). Plain
//! HTTP is used only for an endpoint written `http://…`: that is how a
//! registry is listed insecure. `rewrite` is limited to prefix patterns
//! (`^prefix(.*)` with `$1` in the replacement); other regexes are refused,
//! as are unknown keys (named by their path) and `insecure_skip_verify`.

use crate::vecmap::VecMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::auth::Credentials;
use super::http::{HostTls, Url};

/// Default path (`--registries-config` / `$PICOLET_REGISTRIES_CONFIG`).
pub const DEFAULT_REGISTRIES: &str = "/etc/picolet/registries.yaml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    mirrors: VecMap<String, RawMirror>,
    #[serde(default)]
    configs: VecMap<String, RawConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    #[serde(default)]
    endpoint: Vec<String>,
    #[serde(default)]
    rewrite: VecMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    auth: Option<RawAuth>,
    #[serde(default)]
    tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    insecure_skip_verify: Option<bool>,
}

/// A repository-name rewrite: `^prefix(.*)` → `before$1after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    prefix: String,
    capture: bool,
    replacement: String,
}

impl Rewrite {
    fn parse(pattern: &str, replacement: &str, path: &str) -> Result<Rewrite, String> {
        let refuse = || {
            format!(
                "{path}: rewrite pattern {pattern:?} is not supported (only \"^prefix(.*)\" or \"^name$\")"
            )
        };
        let body = pattern.strip_prefix('^').ok_or_else(refuse)?;
        let (lit, capture) =
            if let Some(l) = body.strip_suffix("(.*)$").or(body.strip_suffix("(.*)")) {
                (l, true)
            } else if let Some(l) = body.strip_suffix('$') {
                (l, false)
            } else {
                return Err(refuse());
            };
        // Literal characters only; `\.` is a dot.
        let mut prefix = String::new();
        let mut chars = lit.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => prefix.push(chars.next().ok_or_else(refuse)?),
                '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => {
                    return Err(refuse());
                }
                c => prefix.push(c),
            }
        }
        Ok(Rewrite {
            prefix,
            capture,
            replacement: replacement.to_string(),
        })
    }

    /// The rewritten repository path, if the pattern matches.
    pub fn apply(&self, name: &str) -> Option<String> {
        let rest = name.strip_prefix(&self.prefix)?;
        if !self.capture && !rest.is_empty() {
            return None;
        }
        Some(self.replacement.replace("${1}", rest).replace("$1", rest))
    }
}

/// One place to fetch a repository from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL; requests go to `<base path>/v2/<name>/…`.
    pub url: Url,
    /// The repository path at this endpoint (after `rewrite`).
    pub name: String,
    /// Whether this is a mirror (not the registry itself).
    pub mirror: bool,
}

/// The parsed `registries.yaml`.
#[derive(Debug, Default, Clone)]
pub struct Registries {
    mirrors: VecMap<String, (Vec<Url>, Vec<Rewrite>)>,
    /// Credentials by host (`configs.<host>.auth`).
    pub auth: VecMap<String, Credentials>,
    /// TLS by host (`configs.<host>.tls`).
    pub tls: HashMap<String, HostTls>,
}

impl Registries {
    /// Parses the YAML text; `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Registries, String> {
        if text.trim().is_empty() {
            return Ok(Registries::default());
        }
        let raw: Raw = crate::serde_path::from_yaml(text).map_err(|e| format!("{what}: {e}"))?;
        let mut out = Registries::default();
        for (host, m) in raw.mirrors {
            let mut urls = Vec::new();
            for (i, e) in m.endpoint.iter().enumerate() {
                let url = Url::parse(e)
                    .map_err(|err| format!("{what}: mirrors.{host}.endpoint[{i}]: {err}"))?;
                urls.push(url);
            }
            let mut rewrites = Vec::new();
            for (pat, rep) in &m.rewrite {
                rewrites.push(Rewrite::parse(
                    pat,
                    rep,
                    &format!("{what}: mirrors.{host}.rewrite"),
                )?);
            }
            out.mirrors.insert(host, (urls, rewrites));
        }
        for (host, c) in raw.configs {
            if let Some(a) = c.auth {
                let creds = match (a.auth, a.username, a.password) {
                    (Some(b64), None, None) => {
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .ok()
                            .and_then(|r| String::from_utf8(r).ok())
                            .ok_or(format!(
                                "{what}: configs.{host}.auth.auth is not base64 of user:password"
                            ))?;
                        let (u, p) = raw.split_once(':').ok_or(format!(
                            "{what}: configs.{host}.auth.auth is not base64 of user:password"
                        ))?;
                        Credentials {
                            username: u.into(),
                            password: p.into(),
                        }
                    }
                    (None, Some(username), Some(password)) => Credentials { username, password },
                    _ => {
                        return Err(format!(
                            "{what}: configs.{host}.auth: give either auth or username and password"
                        ));
                    }
                };
                out.auth.insert(host.clone(), creds);
            }
            if let Some(t) = c.tls {
                if t.insecure_skip_verify == Some(true) {
                    return Err(format!(
                        "{what}: configs.{host}.tls.insecure_skip_verify is not supported; give ca_file (or use an http:// endpoint)"
                    ));
                }
                if t.cert_file.is_some() != t.key_file.is_some() {
                    return Err(format!(
                        "{what}: configs.{host}.tls: cert_file and key_file go together"
                    ));
                }
                out.tls.insert(
                    host,
                    HostTls {
                        ca_file: t.ca_file,
                        client_cert: t.cert_file,
                        client_key: t.key_file,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Reads `path`; a missing file means no mirrors and no settings.
    pub fn load(path: &Path) -> Result<Registries, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => Registries::parse(&t, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registries::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Where to fetch `domain/path` from, in order: its mirrors (or the
    /// `*` mirrors), then the registry itself.
    pub fn endpoints(&self, domain: &str, path: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let upstream_host = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        if let Some((urls, rewrites)) = self.mirrors.get(domain).or_else(|| self.mirrors.get("*")) {
            let name = rewrites
                .iter()
                .find_map(|r| r.apply(path))
                .unwrap_or_else(|| path.to_string());
            for u in urls {
                out.push(Endpoint {
                    url: u.clone(),
                    name: name.clone(),
                    mirror: !(u.host == upstream_host || u.authority() == domain),
                });
            }
        }
        if let Ok(url) = Url::parse(&format!("https://{upstream_host}")) {
            if !out
                .iter()
                .any(|e| e.url.authority() == url.authority() && e.url.tls)
            {
                out.push(Endpoint {
                    url,
                    name: path.to_string(),
                    mirror: false,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.example:5000"
      - "http://10.0.0.2:5000/prefix"
    rewrite:
      "^library/(.*)": "dockerhub/$1"
  "*":
    endpoint: ["https://cache.example"]
configs:
  "mirror.example:5000":
    auth:
      username: u
      password: p
    tls:
      ca_file: /etc/picolet/ca.pem
      cert_file: /etc/picolet/c.pem
      key_file: /etc/picolet/k.pem
  ghcr.io:
    auth:
      auth: dTpw
"#;

    #[test]
    fn k3s_registries_yaml_gives_mirrors_in_order_then_the_upstream() {
        let r = Registries::parse(K3S, "registries.yaml").unwrap();
        let e = r.endpoints("docker.io", "library/busybox");
        let urls: Vec<String> = e.iter().map(|e| e.url.to_string()).collect();
        assert_eq!(
            urls,
            [
                "https://mirror.example:5000/",
                "http://10.0.0.2:5000/prefix",
                "https://registry-1.docker.io/"
            ]
        );
        assert_eq!(e[0].name, "dockerhub/busybox");
        assert_eq!(e[2].name, "library/busybox");
        assert!(e[0].mirror && !e[2].mirror);
        // The "*" mirror serves every other registry.
        let q = r.endpoints("quay.io", "a/b");
        assert_eq!(q[0].url.to_string(), "https://cache.example/");
        assert_eq!(q[1].url.to_string(), "https://quay.io/");
        assert_eq!(r.auth["mirror.example:5000"].username, "u");
        assert_eq!(r.auth["ghcr.io"].password, "p");
        let tls = &r.tls["mirror.example:5000"];
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(Path::new("/etc/picolet/ca.pem"))
        );
        // No file, no mirrors: only the registry itself, over https.
        let none = Registries::default().endpoints("localhost:5000", "x");
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].url.to_string(), "https://localhost:5000/");
    }

    /// The example of docs/images.md parses and means what it says.
    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../../docs/images.md");
        let yaml = doc
            .split("```yaml\nmirrors:")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .map(|y| format!("mirrors:{y}"))
            .expect("docs/images.md has a registries.yaml example");
        let r = Registries::parse(&yaml, "docs/images.md").unwrap();
        let e = r.endpoints("docker.io", "library/busybox");
        assert_eq!(e[0].name, "dockerhub/busybox");
        assert_eq!(e.len(), 3);
        assert!(!r.endpoints("registry.lan:5000", "a")[0].url.tls);
        assert_eq!(r.endpoints("quay.io", "a")[0].url.host, "cache.lan");
        assert!(r.tls["mirror.lan:5000"].client_cert.is_some());
    }

    #[test]
    fn an_http_endpoint_for_the_registry_itself_lists_it_insecure() {
        let r = Registries::parse(
            "mirrors:\n  \"127.0.0.1:5000\":\n    endpoint: [\"http://127.0.0.1:5000\"]\n",
            "f",
        )
        .unwrap();
        let e = r.endpoints("127.0.0.1:5000", "busybox");
        assert_eq!(e.len(), 2);
        assert!(!e[0].url.tls && !e[0].mirror);
    }

    #[test]
    fn unknown_keys_and_unsupported_settings_are_refused_with_their_path() {
        for (text, want) in [
            (
                "mirrors:\n  docker.io:\n    endpoints: []\n",
                "mirrors.docker.io.endpoints: unknown field `endpoints`",
            ),
            (
                "configs:\n  h:\n    tls:\n      ca: x\n",
                "configs.h.tls.ca: unknown field `ca`",
            ),
            ("mirror: {}\n", "unknown field `mirror`"),
            (
                "configs:\n  h:\n    tls:\n      insecure_skip_verify: true\n",
                "insecure_skip_verify is not supported",
            ),
            (
                "mirrors:\n  d:\n    rewrite:\n      \"lib[a-z]+\": x\n",
                "rewrite pattern \"lib[a-z]+\" is not supported",
            ),
            (
                "mirrors:\n  d:\n    endpoint: [\"ftp://x\"]\n",
                "mirrors.d.endpoint[0]",
            ),
            (
                "configs:\n  h:\n    auth:\n      username: u\n",
                "either auth or username and password",
            ),
        ] {
            let e = Registries::parse(text, "registries.yaml").unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with("registries.yaml: "), "{e}");
        }
    }

    #[test]
    fn rewrites_apply_to_prefixes_and_exact_names() {
        let r = Rewrite::parse("^library/(.*)$", "mirror/${1}", "p").unwrap();
        assert_eq!(
            r.apply("library/busybox").as_deref(),
            Some("mirror/busybox")
        );
        assert_eq!(r.apply("me/app"), None);
        let exact = Rewrite::parse("^me/app$", "other/app", "p").unwrap();
        assert_eq!(exact.apply("me/app").as_deref(), Some("other/app"));
        assert_eq!(exact.apply("me/app2"), None);
        let dotted = Rewrite::parse(r"^a\.b/(.*)", "c/$1", "p").unwrap();
        assert_eq!(dotted.apply("a.b/x").as_deref(), Some("c/x"));
    }
}
