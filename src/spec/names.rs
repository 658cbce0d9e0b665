//! Name syntax rules of Kubernetes (`apimachinery/pkg/util/validation`).
//!
//! Each check returns `Err(message)` in Kubernetes' wording; the validator
//! adds the field path. Pure functions, no I/O.

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
/// Used for container, volume and namespace names.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err(format!("{s:?} must be no more than 63 characters"));
    }
    if label_ok(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS-1123 label: it must consist of lower case alphanumeric \
             characters or '-', and must start and end with an alphanumeric character"
        ))
    }
}

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            is_lower_alnum(f)
                && is_lower_alnum(l)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
/// Used for the pod name.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("{s:?} must be no more than 253 characters"));
    }
    if s.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS-1123 subdomain: it must consist of lower case alphanumeric \
             characters, '-' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

/// IANA service name (port names): at most 15 characters of `[-a-z0-9]`,
/// at least one letter, no leading, trailing or doubled `-`.
pub fn iana_svc_name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 15 {
        return Err(format!("{s:?} must be 1 to 15 characters long"));
    }
    if !b.iter().all(|&c| is_lower_alnum(c) || c == b'-') {
        return Err(format!(
            "{s:?} must contain only lower case alphanumeric characters or '-'"
        ));
    }
    if !b.iter().any(u8::is_ascii_lowercase) {
        return Err(format!("{s:?} must contain at least one letter"));
    }
    if b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Err(format!("{s:?} must not begin or end with '-'"));
    }
    if s.contains("--") {
        return Err(format!("{s:?} must not contain consecutive '-'"));
    }
    Ok(())
}

/// Environment variable name: `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`,
/// `..` or starting with `..`.
pub fn env_var_name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let head = |c: u8| c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_');
    let ok = match b.first() {
        Some(&f) => head(f) && b.iter().all(|&c| head(c) || c.is_ascii_digit()),
        None => false,
    };
    if !ok {
        return Err(format!(
            "{s:?} is not a valid environment variable name: it must consist of alphabetic \
             characters, digits, '_', '-' or '.', and must not start with a digit"
        ));
    }
    if s == "." || s.starts_with("..") {
        return Err(format!("{s:?} must not be '.' or '..' or start with '..'"));
    }
    Ok(())
}

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Qualified name (label and annotation keys): `[prefix/]name`, where the
/// prefix is a DNS subdomain and the name is at most 63 characters of
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err(format!("{s:?}: prefix part must not be empty"));
        }
        dns1123_subdomain(p).map_err(|e| format!("{s:?}: prefix part {e}"))?;
    }
    if name.len() > 63 || !name_part_ok(name) {
        return Err(format!(
            "{s:?} is not a valid qualified name: the name part must be 1 to 63 alphanumeric \
             characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        ));
    }
    Ok(())
}

/// Label value: empty, or at most 63 characters like a qualified name's name part.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || (s.len() <= 63 && name_part_ok(s)) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid label value: at most 63 alphanumeric characters, '-', '_' or \
             '.', starting and ending with an alphanumeric character"
        ))
    }
}

/// HTTP header name as Kubernetes checks it: `[-A-Za-z0-9]+`.
pub fn http_header_name(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid HTTP header name: use alphanumeric characters and '-'"
        ))
    }
}
