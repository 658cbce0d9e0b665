//! Label selectors for `get -l` and `logs -l`: the subset of kubectl's
//! syntax that is equality and set based. Requirements are separated by
//! commas and must all hold:
//!
//! - `a=b`, `a==b`: label `a` is `b`; `a!=b`: it is not (or `a` is unset);
//! - `a`: label `a` is set; `!a`: it is not;
//! - `a in (x,y)`: `a` is one of the values; `a notin (x)`: it is none of
//!   them (or unset).
//!
//! Anything else (`a>1`, `a=b=c`, a stray parenthesis) is refused with the
//! requirement it could not read.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    Ne(String),
    Exists,
    Missing,
    In(Vec<String>),
    NotIn(Vec<String>),
}

/// A parsed selector: requirements that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<(String, Op)>);

const SYNTAX: &str = "use a=b, a==b, a!=b, a, !a, a in (x,y) or a notin (x), joined by commas";

fn key_ok(k: &str) -> bool {
    let (prefix, name) = k.rsplit_once('/').unwrap_or(("", k));
    let chars = |s: &str, extra: &[char]| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    };
    !name.is_empty()
        && name.len() <= 63
        && chars(name, &['.'])
        && (k.len() == name.len() || (!prefix.is_empty() && chars(prefix, &['.'])))
}

fn value_ok(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Selector {
    /// Parses `text` (the value of `-l`).
    pub fn parse(text: &str) -> Result<Selector, String> {
        let bad = |r: &str| format!("-l {text:?}: cannot read the requirement {r:?}: {SYNTAX}");
        // Split on the commas outside parentheses.
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0i32, 0);
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
            if !(0..=1).contains(&depth) {
                return Err(bad(text));
            }
        }
        parts.push(&text[start..]);
        let mut reqs = Vec::new();
        for part in parts {
            let r = part.trim();
            let req = Self::requirement(r).ok_or_else(|| bad(r))?;
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }

    fn requirement(r: &str) -> Option<(String, Op)> {
        let key = |k: &str| key_ok(k.trim()).then(|| k.trim().to_string());
        let value = |v: &str| value_ok(v.trim()).then(|| v.trim().to_string());
        if let Some(k) = r.strip_prefix('!') {
            return Some((key(k)?, Op::Missing));
        }
        for (sep, set_op) in [(" notin ", false), (" in ", true)] {
            if let Some((k, rest)) = r.split_once(sep) {
                let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
                let values = inner.split(',').map(value).collect::<Option<Vec<_>>>()?;
                let op = if set_op {
                    Op::In(values)
                } else {
                    Op::NotIn(values)
                };
                return Some((key(k)?, op));
            }
        }
        if let Some((k, v)) = r.split_once("!=") {
            return Some((key(k)?, Op::Ne(value(v)?)));
        }
        if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
            return Some((key(k)?, Op::Eq(value(v)?)));
        }
        Some((key(r)?, Op::Exists))
    }

    /// Whether `labels` (a JSON object of strings, or null) match.
    pub fn matches(&self, labels: &Value) -> bool {
        self.0.iter().all(|(k, op)| {
            let v = labels.get(k).and_then(Value::as_str);
            match op {
                Op::Eq(want) => v == Some(want.as_str()),
                Op::Ne(not) => v != Some(not.as_str()),
                Op::Exists => v.is_some(),
                Op::Missing => v.is_none(),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => !v.is_some_and(|v| set.iter().any(|s| s == v)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(sel: &str, labels: Value) -> bool {
        Selector::parse(sel).unwrap().matches(&labels)
    }

    #[test]
    fn equality_and_set_requirements_match_as_in_kubernetes() {
        let l = json!({"app": "web", "tier": "front", "example.com/team": "a"});
        assert!(m("app=web", l.clone()));
        assert!(m("app==web,tier=front", l.clone()));
        assert!(!m("app=web,tier=back", l.clone()));
        assert!(m("app!=db", l.clone()));
        assert!(m("zone!=x", l.clone()), "!= matches an unset label");
        assert!(!m("app!=web", l.clone()));
        assert!(m("tier", l.clone()));
        assert!(!m("zone", l.clone()));
        assert!(m("!zone", l.clone()));
        assert!(!m("!app", l.clone()));
        assert!(m("app in (db, web)", l.clone()));
        assert!(!m("app in (db)", l.clone()));
        assert!(m("app notin (db),zone notin (x)", l.clone()));
        assert!(!m("app notin (web,db)", l.clone()));
        assert!(m("example.com/team=a", l.clone()));
        assert!(m("app=", json!({"app": ""})));
        assert!(!m("app", Value::Null));
        assert!(m("!app", Value::Null));
    }

    #[test]
    fn anything_else_is_refused_with_the_requirement() {
        for (sel, part) in [
            ("app>1", "app>1"),
            ("app=web,a=b=c", "a=b=c"),
            ("app in web", "app in web"),
            ("app in (a,b", "app in (a,b"),
            ("a=(b)", "a=(b)"),
            ("", ""),
            ("app=web,", ""),
            ("x/y/z=1", "x/y/z=1"),
            ("a in ((b))", "a in ((b))"),
        ] {
            let e = Selector::parse(sel).unwrap_err();
            assert!(
                e.contains(&format!("cannot read the requirement {part:?}")),
                "{sel}: {e}"
            );
            assert!(e.contains("a notin (x)"), "{e}");
        }
    }
}
