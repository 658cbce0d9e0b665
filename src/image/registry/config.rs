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
//!
//! The same schema is a fleet desired document's `registries` block
//! ([`Registries::from_fleet`]), where `tls` takes the PEM text itself
//! (`ca`, `cert`, `key`) and refuses the `*_file` keys: a fleet cannot name
//! files on a device. A file may use either. Several sources merge per
//! registry host key, the first one's entry whole ([`Registries::merge`]).

use crate::vecmap::VecMap;
use crate::yaml::Step;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use super::auth::Credentials;
use super::http::{HostTls, Pem, Url};

/// Default path (`--registries-config` / `$PICOLET_REGISTRIES_CONFIG`).
pub const DEFAULT_REGISTRIES: &str = "/etc/picolet/registries.yaml";

/// A problem in a registries config: the field path
/// (`mirrors["docker.io"].endpoint[0]`) and what is wrong. Never a
/// password or PEM text.
#[derive(Debug, Clone)]
pub struct Bad {
    pub path: String,
    pub message: String,
    /// Where, to place it in a YAML file.
    at: At,
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.is_empty() {
            true => f.write_str(&self.message),
            false => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Where a value is: keys and indexes from the root.
#[derive(Debug, Clone, Default)]
struct At(Vec<Seg>);

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

impl At {
    fn key(&self, k: &str) -> At {
        let mut a = self.clone();
        a.0.push(Seg::Key(k.to_string()));
        a
    }
    fn index(&self, i: usize) -> At {
        let mut a = self.clone();
        a.0.push(Seg::Index(i));
        a
    }
    /// `mirrors["docker.io"].endpoint[0]`: host keys (depth 1) quoted.
    fn path(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Index(n) => out.push_str(&format!("[{n}]")),
                Seg::Key(k) if i == 1 => out.push_str(&format!("[{k:?}]")),
                Seg::Key(k) => {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(k);
                }
            }
        }
        out
    }
    fn steps(&self) -> Vec<Step<'_>> {
        (self.0.iter())
            .map(|s| match s {
                Seg::Key(k) => Step::Key(k),
                Seg::Index(n) => Step::Index(*n),
            })
            .collect()
    }
    fn bad(&self, message: impl Into<String>) -> Bad {
        Bad {
            path: self.path(),
            message: message.into(),
            at: self.clone(),
        }
    }
}

/// What a value is, for "invalid type" (never the value itself: it could
/// be a password or a key).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "map",
    }
}

fn expected(v: &Value, at: &At, what: &str) -> Bad {
    at.bad(format!("invalid type: {}, expected {what}", kind(v)))
}

/// The entries of map `v` (null: none), each key one of `keys` unless
/// `keys` is empty (host keys).
fn map<'v>(v: &'v Value, at: &At, keys: &[&str]) -> Result<Vec<(&'v String, &'v Value)>, Bad> {
    let m = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Object(m) => m,
        v => return Err(expected(v, at, "a map")),
    };
    if let Some(k) = m
        .keys()
        .find(|k| !keys.is_empty() && !keys.contains(&k.as_str()))
    {
        let list: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        return Err(at.key(k).bad(format!(
            "unknown field `{k}`, expected one of {}",
            list.join(", ")
        )));
    }
    Ok(m.iter().collect())
}

/// The string at `v` (null: none).
fn string(v: Option<&Value>, at: &At) -> Result<Option<String>, Bad> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(expected(v, at, "a string")),
    }
}

/// Which form is read: a file on the device, or a fleet document's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    File,
    Fleet,
}

/// A repository-name rewrite: `^prefix(.*)` → `before$1after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    prefix: String,
    capture: bool,
    replacement: String,
}

impl Rewrite {
    fn parse(pattern: &str, replacement: &str) -> Result<Rewrite, String> {
        let refuse = || {
            format!(
                "rewrite pattern {pattern:?} is not supported (only \"^prefix(.*)\" or \"^name$\")"
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
    /// The hosts with a `configs` entry (what [`Registries::merge`] keeps
    /// whole).
    configs: Vec<String>,
    /// Credentials by host (`configs.<host>.auth`).
    pub auth: VecMap<String, Credentials>,
    /// TLS by host (`configs.<host>.tls`).
    pub tls: HashMap<String, HostTls>,
}

/// The PEM of `name_file` or `name` (not both) in `tls` at `at`.
fn pem(tls: &Value, at: &At, name: &str, form: Form) -> Result<Option<Pem>, Bad> {
    let file_key = format!("{name}_file");
    let file = string(tls.get(&file_key), &at.key(&file_key))?;
    let inline = string(tls.get(name), &at.key(name))?;
    let field = at.key(name);
    match (file, inline) {
        (Some(_), _) if form == Form::Fleet => Err(at.key(&file_key).bad(format!(
            "a fleet document cannot name files on the device: give the PEM text as {name}"
        ))),
        (Some(_), Some(_)) => Err(field.bad(format!("give {name} or {name}_file, not both"))),
        (Some(f), None) => Ok(Some(Pem::File(f.into()))),
        (None, Some(text)) => {
            use crate::fleet::transport::{NamedPem, certificates_in, private_key_in};
            let path = field.path();
            let p = NamedPem {
                name: PathBuf::from(&path),
                pem: text.as_bytes().to_vec(),
            };
            let checked = match name {
                "key" => private_key_in(&p).map(drop),
                _ => certificates_in(&p).map(drop),
            };
            if let Err(e) = checked {
                let e = e.to_string();
                let m = e.strip_prefix(&format!("{path}: ")).unwrap_or(&e);
                return Err(field.bad(format!("{m} (PEM text expected)")));
            }
            Ok(Some(Pem::Inline { field: path, text }))
        }
        (None, None) => Ok(None),
    }
}

impl Registries {
    /// Reads the schema from `v` (k3s's keys; unknown ones refused).
    fn walk(v: &Value, form: Form) -> Result<Registries, Bad> {
        let root = At::default();
        let mut out = Registries::default();
        let top = map(v, &root, &["mirrors", "configs"])?;
        let get = |k: &str| top.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let mirrors = root.key("mirrors");
        for (host, m) in map(get("mirrors").unwrap_or(&Value::Null), &mirrors, &[])? {
            let at = mirrors.key(host);
            map(m, &at, &["endpoint", "rewrite"])?;
            let mut urls = Vec::new();
            let ep = at.key("endpoint");
            let list = match m.get("endpoint") {
                None | Some(Value::Null) => &[][..],
                Some(Value::Array(a)) => &a[..],
                Some(v) => return Err(expected(v, &ep, "a sequence")),
            };
            for (i, e) in list.iter().enumerate() {
                let at = ep.index(i);
                let e = string(Some(e), &at)?.ok_or_else(|| at.bad("expected a string"))?;
                // The reason only: the URL could hold a user:password@.
                let url = Url::parse(&e).map_err(|err| {
                    at.bad(match err {
                        super::http::HttpError::BadUrl { reason, .. } => reason,
                        other => other.to_string(),
                    })
                })?;
                urls.push(url);
            }
            let mut rewrites = Vec::new();
            let rw = at.key("rewrite");
            for (pat, rep) in map(m.get("rewrite").unwrap_or(&Value::Null), &rw, &[])? {
                let at = rw.key(pat);
                let rep = string(Some(rep), &at)?.unwrap_or_default();
                rewrites.push(Rewrite::parse(pat, &rep).map_err(|e| at.bad(e))?);
            }
            out.mirrors.insert(host.clone(), (urls, rewrites));
        }
        let configs = root.key("configs");
        for (host, c) in map(get("configs").unwrap_or(&Value::Null), &configs, &[])? {
            let at = configs.key(host);
            map(c, &at, &["auth", "tls"])?;
            out.configs.push(host.clone());
            if let Some(a) = c.get("auth").filter(|a| !a.is_null()) {
                let at = at.key("auth");
                map(a, &at, &["username", "password", "auth"])?;
                let s = |k: &str| string(a.get(k), &at.key(k));
                let not_b64 = || at.key("auth").bad("is not base64 of user:password");
                let creds = match (s("auth")?, s("username")?, s("password")?) {
                    (Some(b64), None, None) => {
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .ok()
                            .and_then(|r| String::from_utf8(r).ok())
                            .ok_or_else(not_b64)?;
                        let (u, p) = raw.split_once(':').ok_or_else(not_b64)?;
                        Credentials {
                            username: u.into(),
                            password: p.into(),
                        }
                    }
                    (None, Some(username), Some(password)) => Credentials { username, password },
                    _ => return Err(at.bad("give either auth or username and password")),
                };
                out.auth.insert(host.clone(), creds);
            }
            if let Some(t) = c.get("tls").filter(|t| !t.is_null()) {
                let at = at.key("tls");
                const TLS: [&str; 7] = [
                    "ca_file",
                    "cert_file",
                    "key_file",
                    "ca",
                    "cert",
                    "key",
                    "insecure_skip_verify",
                ];
                map(t, &at, &TLS)?;
                let skip = at.key("insecure_skip_verify");
                match t.get("insecure_skip_verify") {
                    None | Some(Value::Null) | Some(Value::Bool(false)) => {}
                    Some(Value::Bool(true)) => {
                        return Err(skip.bad(
                            "is not supported; give the registry's CA (or use an http:// endpoint)",
                        ));
                    }
                    Some(v) => return Err(expected(v, &skip, "a boolean")),
                }
                let tls = HostTls {
                    ca: pem(t, &at, "ca", form)?,
                    cert: pem(t, &at, "cert", form)?,
                    key: pem(t, &at, "key", form)?,
                };
                if tls.cert.is_some() != tls.key.is_some() {
                    return Err(at.bad("cert and key (or cert_file and key_file) go together"));
                }
                out.tls.insert(host.clone(), tls);
            }
        }
        Ok(out)
    }

    /// Parses the YAML text; `what` names the file in errors (with the
    /// line and column of the node at fault).
    pub fn parse(text: &str, what: &str) -> Result<Registries, String> {
        if text.trim().is_empty() {
            return Ok(Registries::default());
        }
        let doc = crate::yaml::one(text).map_err(|e| format!("{what}: {e}"))?;
        let v = doc.to_value().map_err(|e| format!("{what}: {e}"))?;
        Registries::walk(&v, Form::File).map_err(|e| {
            let key = e.message.starts_with("unknown field");
            let at = doc.locate(&e.at.steps(), key);
            let at = at.map_or(String::new(), |(l, c)| format!(" at line {l} column {c}"));
            format!("{what}: {e}{at}")
        })
    }

    /// Reads a fleet document's `registries` block: the same schema, PEM
    /// given inline only. Errors name the path under the block.
    pub fn from_fleet(v: &Value) -> Result<Registries, Bad> {
        Registries::walk(v, Form::Fleet)
    }

    /// Adds `other`'s mirrors and configs for the registry host keys this
    /// one has none for: per key, the first source's entry is kept whole
    /// (`mirrors[h]` and `configs[h]` are not merged field by field).
    pub fn merge(&mut self, mut other: Registries) {
        for (host, m) in other.mirrors {
            if !self.mirrors.contains_key(&host) {
                self.mirrors.insert(host, m);
            }
        }
        for host in other.configs {
            if self.configs.contains(&host) {
                continue;
            }
            if let Some(a) = other.auth.remove(&host) {
                self.auth.insert(host.clone(), a);
            }
            if let Some(t) = other.tls.remove(&host) {
                self.tls.insert(host.clone(), t);
            }
            self.configs.push(host);
        }
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
        assert_eq!(tls.ca, Some(Pem::File("/etc/picolet/ca.pem".into())));
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
        assert!(r.tls["mirror.lan:5000"].cert.is_some());
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
                "mirrors[\"docker.io\"].endpoints: unknown field `endpoints`",
            ),
            (
                "configs:\n  h:\n    tls:\n      cafile: x\n",
                "configs[\"h\"].tls.cafile: unknown field `cafile`",
            ),
            ("mirror: {}\n", "unknown field `mirror`"),
            (
                "configs:\n  h:\n    tls:\n      insecure_skip_verify: true\n",
                "tls.insecure_skip_verify: is not supported",
            ),
            (
                "mirrors:\n  d:\n    rewrite:\n      \"lib[a-z]+\": x\n",
                "rewrite pattern \"lib[a-z]+\" is not supported",
            ),
            (
                "mirrors:\n  d:\n    endpoint: [\"ftp://x\"]\n",
                "mirrors[\"d\"].endpoint[0]",
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
        let r = Rewrite::parse("^library/(.*)$", "mirror/${1}").unwrap();
        assert_eq!(
            r.apply("library/busybox").as_deref(),
            Some("mirror/busybox")
        );
        assert_eq!(r.apply("me/app"), None);
        let exact = Rewrite::parse("^me/app$", "other/app").unwrap();
        assert_eq!(exact.apply("me/app").as_deref(), Some("other/app"));
        assert_eq!(exact.apply("me/app2"), None);
        let dotted = Rewrite::parse(r"^a\.b/(.*)", "c/$1").unwrap();
        assert_eq!(dotted.apply("a.b/x").as_deref(), Some("c/x"));
    }

    const CA: &str = include_str!("fixtures/test-ca.pem");
    const KEY: &str = include_str!("fixtures/test-client.key");

    fn fleet(v: serde_json::Value) -> Result<Registries, Bad> {
        Registries::from_fleet(&v)
    }

    #[test]
    fn the_fleet_form_takes_pem_text_and_refuses_files_with_their_path() {
        use serde_json::json;
        let r = fleet(json!({
            "mirrors": {"docker.io": {"endpoint": ["http://10.0.0.2:5000"]}},
            "configs": {"10.0.0.2:5000": {
                "auth": {"username": "u", "password": "p"},
                "tls": {"ca": CA, "cert": CA, "key": KEY}}}
        }))
        .unwrap();
        assert_eq!(
            r.endpoints("docker.io", "library/a")[0].url.host,
            "10.0.0.2"
        );
        let tls = &r.tls["10.0.0.2:5000"];
        assert!(matches!(&tls.ca, Some(Pem::Inline { field, text })
            if field == r#"configs["10.0.0.2:5000"].tls.ca"# && text == CA));
        // Debug never shows the text.
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("BEGIN") && !shown.contains("\"p\""),
            "{shown}"
        );
        for (v, path, want) in [
            (
                json!({"configs": {"r": {"tls": {"ca_file": "/etc/ca.pem"}}}}),
                r#"configs["r"].tls.ca_file"#,
                "cannot name files on the device",
            ),
            (
                json!({"configs": {"r": {"tls": {"cert": CA, "key_file": "/k"}}}}),
                r#"configs["r"].tls.key_file"#,
                "give the PEM text as key",
            ),
            (
                json!({"mirrors": {"docker.io": {"endpoint": ["ftp://x"]}}}),
                r#"mirrors["docker.io"].endpoint[0]"#,
                "",
            ),
            (
                json!({"mirrors": {"docker.io": {"endpoint": ["https://u:secret@m"]}}}),
                r#"mirrors["docker.io"].endpoint[0]"#,
                "user:password@ in URLs is not supported",
            ),
            (
                json!({"mirrors": {"docker.io": {"endpoints": []}}}),
                r#"mirrors["docker.io"].endpoints"#,
                "unknown field `endpoints`",
            ),
            (
                json!({"configs": {"r": {"tls": {"ca": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"}}}}),
                r#"configs["r"].tls.ca"#,
                "PEM text expected",
            ),
            (
                json!({"configs": {"r": {"tls": {"cert": CA, "key": CA}}}}),
                r#"configs["r"].tls.key"#,
                "PEM text expected",
            ),
            (
                json!({"configs": {"r": {"tls": {"cert": CA}}}}),
                r#"configs["r"].tls"#,
                "go together",
            ),
            (
                json!({"configs": {"r": {"auth": {"username": "u", "password": ["hunter2"]}}}}),
                r#"configs["r"].auth.password"#,
                "invalid type: sequence, expected a string",
            ),
            (
                json!({"configs": {"r": {"tls": "secret PEM text"}}}),
                r#"configs["r"].tls"#,
                "invalid type: string, expected",
            ),
            (json!({"registries": {}}), "registries", "unknown field"),
        ] {
            let e = fleet(v.clone()).unwrap_err();
            assert_eq!(e.path, path, "{v}: {e}");
            assert!(e.message.contains(want), "{v}: {e}");
            assert!(
                !e.message.contains("secret") && !e.message.contains("hunter2"),
                "{e}"
            );
        }
    }

    #[test]
    fn sources_merge_per_host_key_the_first_entry_whole() {
        let device = Registries::parse(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://device:5000\"]\nconfigs:\n  r:\n    auth: {username: device, password: d}\n",
            "device",
        )
        .unwrap();
        let group = Registries::parse(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://group:5000\"]\n  quay.io:\n    endpoint: [\"http://group-quay\"]\nconfigs:\n  q:\n    auth: {username: group, password: g}\n",
            "group",
        )
        .unwrap();
        let local = Registries::parse(
            "mirrors:\n  \"*\":\n    endpoint: [\"https://cache\"]\nconfigs:\n  r:\n    tls: {ca_file: /etc/ca.pem}\n  s:\n    auth: {username: local, password: l}\n",
            "local",
        )
        .unwrap();
        let mut r = device;
        r.merge(group);
        r.merge(local);
        let first = |d: &str| r.endpoints(d, "a")[0].url.host.clone();
        assert_eq!(first("docker.io"), "device");
        assert_eq!(first("quay.io"), "group-quay");
        assert_eq!(
            first("ghcr.io"),
            "cache",
            "the local \"*\" still serves the rest"
        );
        assert_eq!(r.auth["r"].username, "device");
        // configs["r"] is the device's whole: the local file's tls for r is gone.
        assert!(!r.tls.contains_key("r"));
        assert_eq!(r.auth["q"].username, "group");
        assert_eq!(r.auth["s"].username, "local");
    }

    #[test]
    fn a_json_file_with_pem_text_reads_as_yaml() {
        let v = serde_json::json!({"configs": {"127.0.0.1:5000": {
            "auth": {"username": "u", "password": "p:\"q\\"},
            "tls": {"ca": CA, "cert": CA, "key": KEY}}}});
        let r = Registries::parse(&v.to_string(), "pull-registries-1.json").unwrap();
        assert_eq!(r.auth["127.0.0.1:5000"].password, "p:\"q\\");
        assert!(
            matches!(&r.tls["127.0.0.1:5000"].key, Some(Pem::Inline { text, .. }) if text == KEY)
        );
    }
}
