//! Image references (`[domain/]path[:tag][@digest]`), normalized the way
//! containerd prints them: `busybox` → `docker.io/library/busybox:latest`.
//!
//! Grammar (distribution/reference): the first path component is a domain
//! if it contains `.` or `:`, is `localhost`, or has an upper-case letter;
//! otherwise the domain is `docker.io`, and single-component Docker Hub
//! names get `library/`. `index.docker.io` becomes `docker.io`. A reference
//! with neither tag nor digest gets `:latest`; a digest-only reference
//! keeps no tag (`docker.io/library/busybox@sha256:…`).

use std::fmt;
use std::str::FromStr;

use super::{Digest, ImageError};

const DEFAULT_DOMAIN: &str = "docker.io";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes `s`. Errors name the bad reference.
    pub fn parse(s: &str) -> Result<Reference, ImageError> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let d = Digest::parse(d).map_err(|e| bad(&e.to_string()))?;
                (rest, Some(d))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad("invalid tag (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"));
            }
        }
        if name.is_empty() {
            return Err(bad("empty repository name"));
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(domain) {
            return Err(bad("invalid registry domain"));
        }
        if path
            .split('/')
            .any(|c| c.bytes().any(|b| b.is_ascii_uppercase()))
        {
            return Err(bad("repository name must be lowercase"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(bad("invalid repository path component"));
        }
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(bad("repository name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain: domain.to_string(),
            path,
            tag,
            digest,
        })
    }

    /// Registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`, the IMAGE column of `picolet image ls`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag; `None` only for digest-only references.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned manifest digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ImageError> {
        if !valid_tag(tag) {
            return Err(ImageError::InvalidReference {
                reference: format!("{}:{tag}", self.repository()),
                reason: "invalid tag".to_string(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    }
}

pub(crate) fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]`, host being dot-separated labels or a bracketed IPv6.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(stripped) = d.strip_prefix('[') {
        match stripped.split_once(']') {
            Some((v6, rest)) => {
                if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match rest.strip_prefix(':') {
                    Some(p) => ("v6", Some(p)),
                    None if rest.is_empty() => ("v6", None),
                    None => return false,
                }
            }
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn short_names_normalize_like_containerd() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("me/app:v1"), "docker.io/me/app:v1");
        assert_eq!(norm("index.docker.io/me/app"), "docker.io/me/app:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn registries_with_dots_ports_or_localhost_are_domains() {
        assert_eq!(norm("ghcr.io/x/y:1.2"), "ghcr.io/x/y:1.2");
        assert_eq!(norm("localhost:5000/a/b"), "localhost:5000/a/b:latest");
        assert_eq!(norm("localhost/a"), "localhost/a:latest");
        assert_eq!(norm("picolet.test/busybox:1"), "picolet.test/busybox:1");
        assert_eq!(norm("[::1]:5000/a"), "[::1]:5000/a:latest");
        let r = Reference::parse("localhost:5000/a/b").unwrap();
        assert_eq!((r.domain(), r.path()), ("localhost:5000", "a/b"));
        assert_eq!(r.repository(), "localhost:5000/a/b");
    }

    #[test]
    fn digest_references_keep_no_default_tag() {
        let r = Reference::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().hex(), HEX);
        let r = Reference::parse(&format!("busybox:1@sha256:{HEX}")).unwrap();
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox:1@sha256:{HEX}")
        );
        assert_eq!(r.tag(), Some("1"));
    }

    #[test]
    fn bad_references_are_rejected_with_the_reference_in_the_message() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "ghcr.io/x/Y",
            "host:port/a",
            "busybox:-tag",
            "a/b:c:d",
        ] {
            let err = Reference::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        let long_name = "a".repeat(250);
        assert!(Reference::parse(&long_name).is_err());
    }

    #[test]
    fn path_components_allow_the_distribution_separators() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a0/b1/c2"] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a___b", "a._b", ".a", "a_"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uppercase_first_component_is_a_domain_and_with_tag_replaces_tag_and_digest() {
        assert_eq!(norm("Registry/x"), "Registry/x:latest");
        let r = Reference::parse(&format!("a:1@sha256:{HEX}")).unwrap();
        assert_eq!(
            r.with_tag("2").unwrap().to_string(),
            "docker.io/library/a:2"
        );
        assert!(r.with_tag("bad tag").is_err());
    }
}
