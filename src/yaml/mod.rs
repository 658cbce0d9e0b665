//! YAML: our own reader and writer (docs/manifests.md, "YAML").
//!
//! The reader takes YAML text to `serde_json::Value` documents the way
//! serde_norway (libyaml, YAML 1.2 core schema) reads them, keeps every
//! node's position (so a typed error is placed without parsing again), and
//! refuses, at its line and column, whatever it does not read the same way
//! (tabs as indentation, `%TAG`, local tags, flow scalars with `:` inside,
//! ...). Duplicate keys are refused. The writer prints block style, quoting
//! every string another reader could take for something else (YAML 1.1's
//! `yes`/`on`, `0755`). Pure, no I/O.

mod emit;
mod parse;
#[cfg(test)]
pub(crate) mod tests;

pub use emit::to_string;
pub use parse::{Document, parse};

use serde_json::{Number, Value};
use std::fmt;

/// A YAML error: the path of the node it arose in (empty for the root or
/// for a syntax error), its message and its position (1-based; line 0: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    path: String,
    msg: String,
    line: usize,
    col: usize,
}

impl Error {
    pub(crate) fn new(msg: String, line: usize, col: usize) -> Error {
        Error {
            path: String::new(),
            msg,
            line,
            col,
        }
    }

    /// `spec.containers[0]`, or empty.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The message and position, without the path.
    pub fn message(&self) -> String {
        match self.line {
            0 => self.msg.clone(),
            l => format!("{} at line {l} column {}", self.msg, self.col),
        }
    }
}

/// `path: message at line L column C` (the path left out at the root).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

/// A node and where it starts (its properties, if any).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) v: N,
    pub(crate) line: usize,
    pub(crate) col: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum N {
    Scalar(String, Kind),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// An index into the document's anchors.
    Alias(usize),
}

/// How a scalar resolves: plain (by its text), quoted or block (string),
/// or by its standard tag. `Seq`/`Map`: tags, on collections only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Plain,
    Quoted,
    Str,
    Int,
    Bool,
    Null,
    Float,
    Seq,
    Map,
    /// Any other tag: refused where the value is read.
    Other,
}

/// One step of a path into a document.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Index(usize),
    Key(&'a str),
}

/// Reads the one document of `text` (serde_norway's `from_str`: none or
/// several are errors).
pub fn one(text: &str) -> Result<Document, Error> {
    let (mut docs, e) = parse(text);
    if let Some(e) = e {
        return Err(e);
    }
    match docs.len() {
        1 => Ok(docs.remove(0)),
        0 => Err(Error::new("EOF while parsing a value".into(), 0, 0)),
        _ => Err(Error::new(
            "deserializing from YAML containing more than one document is not supported".into(),
            0,
            0,
        )),
    }
}

/// Every document of `text` as values (a syntax error, or the first
/// document's error, ends it).
pub fn values(text: &str) -> Result<Vec<Value>, Error> {
    let (docs, e) = parse(text);
    let out = docs
        .iter()
        .map(Document::to_value)
        .collect::<Result<_, _>>()?;
    e.map_or(Ok(out), Err)
}

impl Document {
    /// The document as a value: aliases expanded (within a budget),
    /// scalars resolved, duplicate keys and non-string keys refused.
    pub fn to_value(&self) -> Result<Value, Error> {
        Conv {
            anchors: &self.anchors,
            jumps: 0,
            limit: self.events * 100,
            path: Vec::new(),
        }
        .value(&self.root, 0)
    }

    /// Where the node at `path` starts (with `key`, its key), as
    /// serde_norway's error for it would say; `None` when the path is not
    /// in the document.
    pub fn locate(&self, path: &[Step<'_>], key: bool) -> Option<(usize, usize)> {
        let mut n = self.deref(&self.root);
        for (i, step) in path.iter().enumerate() {
            match (&n.v, step) {
                (N::Seq(items), Step::Index(j)) => n = self.deref(items.get(*j)?),
                (N::Map(pairs), Step::Key(k)) => {
                    let (kn, vn) = pairs
                        .iter()
                        .find(|(kn, _)| matches!(&self.deref(kn).v, N::Scalar(s, _) if s == k))?;
                    if key && i + 1 == path.len() {
                        return Some((kn.line, kn.col));
                    }
                    n = self.deref(vn);
                }
                _ => return None,
            }
        }
        Some((n.line, n.col))
    }

    fn deref<'a>(&'a self, mut n: &'a Node) -> &'a Node {
        while let N::Alias(i) = n.v {
            n = &self.anchors[i];
        }
        n
    }
}

struct Conv<'d> {
    anchors: &'d [Node],
    jumps: usize,
    limit: usize,
    path: Vec<Step<'d>>,
}

impl<'d> Conv<'d> {
    fn fail(&self, msg: String, n: &Node) -> Error {
        let mut path = String::new();
        for s in &self.path {
            match s {
                Step::Index(i) => path.push_str(&format!("[{i}]")),
                Step::Key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                }
            }
        }
        Error {
            path,
            ..Error::new(msg, n.line, n.col)
        }
    }

    fn jump(&mut self, i: usize, n: &Node) -> Result<&'d Node, Error> {
        self.jumps += 1;
        if self.jumps > self.limit {
            return Err(self.fail("repetition limit exceeded".into(), n));
        }
        Ok(&self.anchors[i])
    }

    fn value(&mut self, n: &'d Node, depth: usize) -> Result<Value, Error> {
        let collection = matches!(n.v, N::Seq(_) | N::Map(_));
        if collection && depth >= 128 {
            return Err(self.fail("recursion limit exceeded".into(), n));
        }
        match &n.v {
            N::Alias(i) => {
                let target = self.jump(*i, n)?;
                self.value(target, depth)
            }
            N::Scalar(s, k) => scalar(s, *k).map_err(|m| self.fail(m, n)),
            N::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Step::Index(i));
                    out.push(self.value(item, depth + 1)?);
                    self.path.pop();
                }
                Ok(Value::Array(out))
            }
            N::Map(pairs) => {
                let mut out = serde_json::Map::new();
                for (k, v) in pairs {
                    let mut kn = k;
                    while let N::Alias(i) = kn.v {
                        kn = self.jump(i, kn)?;
                    }
                    let key = match &kn.v {
                        N::Scalar(s, _) => s.as_str(),
                        other => {
                            let what = match other {
                                N::Seq(_) => "sequence",
                                _ => "map",
                            };
                            self.path.push(Step::Key("?"));
                            return Err(
                                self.fail(format!("invalid type: {what}, expected a string"), kn)
                            );
                        }
                    };
                    if out.contains_key(key) {
                        return Err(self.fail(format!("duplicate key {key:?}"), n));
                    }
                    self.path.push(Step::Key(key));
                    let value = self.value(v, depth + 1)?;
                    self.path.pop();
                    out.insert(key.to_string(), value);
                }
                Ok(Value::Object(out))
            }
        }
    }
}

/// A scalar's value, resolved as serde_norway does (YAML 1.2 core schema:
/// `null`/`~`/empty, `true`/`false` in three cases, integers in decimal,
/// `0x`, `0o`, `0b`, floats; a leading zero keeps digits a string).
pub(crate) fn scalar(s: &str, k: Kind) -> Result<Value, String> {
    let bad = |what: &str| Err(format!("invalid value: string {s:?}, expected {what}"));
    match k {
        Kind::Plain => {
            if s.is_empty() || is_null(s) {
                return Ok(Value::Null);
            }
            if let Some(b) = parse_bool(s) {
                return Ok(Value::Bool(b));
            }
            if let Some(i) = int(s) {
                return i;
            }
            if !digits_but_not_number(s) {
                if let Some(f) = parse_f64(s) {
                    return finite(f);
                }
            }
            Ok(Value::String(s.to_string()))
        }
        Kind::Bool => parse_bool(s)
            .map(Value::Bool)
            .map_or_else(|| bad("a boolean"), Ok),
        Kind::Int => int(s).unwrap_or_else(|| bad("an integer")),
        Kind::Float => parse_f64(s).map_or_else(|| bad("a float"), finite),
        Kind::Null if is_null(s) => Ok(Value::Null),
        Kind::Null => bad("null"),
        Kind::Other => Err(parse::TAG.into()),
        _ => Ok(Value::String(s.to_string())),
    }
}

fn finite(f: f64) -> Result<Value, String> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{f} is not a finite number"))
}

fn is_null(s: &str) -> bool {
    matches!(s, "null" | "Null" | "NULL" | "~")
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer as serde_norway reads it: `u64`, else `i64`; one that only
/// fits 128 bits is an error (serde_norway gives a 128-bit value that a
/// JSON value cannot hold).
fn int(s: &str) -> Option<Result<Value, String>> {
    if let Some(u) = radix(s, false, |t, r| u64::from_str_radix(t, r).ok()) {
        return Some(Ok(Value::Number(u.into())));
    }
    if let Some(i) = radix(s, true, |t, r| i64::from_str_radix(t, r).ok()) {
        return Some(Ok(Value::Number(i.into())));
    }
    let wide = radix(s, false, |t, r| u128::from_str_radix(t, r).ok().map(|_| ())).is_some()
        || radix(s, true, |t, r| i128::from_str_radix(t, r).ok().map(|_| ())).is_some();
    wide.then(|| Err(format!("integer {s} is out of range")))
}

/// serde_norway's `parse_unsigned_int` (`negative` false) and
/// `parse_negative_int` (true), over one parse function.
fn radix<T>(s: &str, negative: bool, parse: impl Fn(&str, u32) -> Option<T>) -> Option<T> {
    let prefixes = [("0x", 16), ("0o", 8), ("0b", 2)];
    if negative {
        for (p, r) in prefixes {
            if let Some(rest) = s.strip_prefix('-').and_then(|t| t.strip_prefix(p)) {
                if let Some(v) = parse(&format!("-{rest}"), r) {
                    return Some(v);
                }
            }
        }
        if digits_but_not_number(s) {
            return None;
        }
        return parse(s, 10);
    }
    let unpositive = s.strip_prefix('+').unwrap_or(s);
    for (p, r) in prefixes {
        if let Some(rest) = unpositive.strip_prefix(p) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Some(v) = parse(rest, r) {
                return Some(v);
            }
        }
    }
    if unpositive.starts_with(['+', '-']) || digits_but_not_number(s) {
        return None;
    }
    parse(unpositive, 10)
}

fn parse_f64(s: &str) -> Option<f64> {
    let unpositive = match s.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => s,
    };
    match (unpositive, s) {
        (".inf" | ".Inf" | ".INF", _) => return Some(f64::INFINITY),
        (_, "-.inf" | "-.Inf" | "-.INF") => return Some(f64::NEG_INFINITY),
        (_, ".nan" | ".NaN" | ".NAN") => return Some(f64::NAN),
        _ => {}
    }
    unpositive.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn digits_but_not_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    s.len() > 1 && s.starts_with('0') && s[1..].bytes().all(|b| b.is_ascii_digit())
}
