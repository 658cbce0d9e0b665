//! Reading a YAML or JSON document into a `serde_json::Value`, refusing
//! duplicate keys (which `serde_json::Value` would silently overwrite, and
//! Kubernetes' strict decoding refuses). Pure, no I/O.

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// A `serde_json::Value` read without duplicate keys.
pub(crate) struct StrictValue(pub(crate) Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let track = Track::default();
        read(d, &track)
    }
}

/// Reads a value from `d`; on error, `track` holds the path of the node
/// where it arose (`spec.containers[0]`, empty for the root), as
/// `serde_path_to_error` reported it.
pub(crate) fn read<'de, D: Deserializer<'de>>(
    d: D,
    track: &Track,
) -> Result<StrictValue, D::Error> {
    StrictSeed {
        chain: &Chain::Root,
        track,
    }
    .deserialize(d)
    .map(StrictValue)
}

/// The path of the first error (innermost node).
#[derive(Default)]
pub(crate) struct Track(RefCell<Option<String>>);

impl Track {
    /// The path, empty for the root or when nothing failed.
    pub(crate) fn path(&self) -> String {
        self.0.borrow().clone().unwrap_or_default()
    }

    fn trigger(&self, chain: &Chain<'_>) {
        let mut p = self.0.borrow_mut();
        if p.is_none() {
            *p = Some(chain.to_string());
        }
    }
}

enum Chain<'a> {
    Root,
    Index(&'a Chain<'a>, usize),
    Key(&'a Chain<'a>, &'a str),
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chain::Root => Ok(()),
            Chain::Index(parent, i) => write!(f, "{parent}[{i}]"),
            Chain::Key(Chain::Root, k) => f.write_str(k),
            Chain::Key(parent, k) => write!(f, "{parent}.{k}"),
        }
    }
}

struct StrictSeed<'a> {
    chain: &'a Chain<'a>,
    track: &'a Track,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let (chain, track) = (self.chain, self.track);
        d.deserialize_any(StrictVisitor { chain, track })
            .inspect_err(|_| track.trigger(chain))
    }
}

struct StrictVisitor<'a> {
    chain: &'a Chain<'a>,
    track: &'a Track,
}

impl<'de> Visitor<'de> for StrictVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a finite number")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictSeed {
            chain: self.chain,
            track: self.track,
        }
        .deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let chain = Chain::Index(self.chain, items.len());
            let seed = StrictSeed {
                chain: &chain,
                track: self.track,
            };
            match seq.next_element_seed(seed) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    self.track.trigger(self.chain);
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        loop {
            let key = match map.next_key::<String>() {
                Ok(Some(key)) => key,
                Ok(None) => return Ok(Value::Object(out)),
                Err(e) => {
                    // A key that is not a string (serde_path_to_error's `?`).
                    self.track.trigger(&Chain::Key(self.chain, "?"));
                    return Err(e);
                }
            };
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let chain = Chain::Key(self.chain, &key);
            let seed = StrictSeed {
                chain: &chain,
                track: self.track,
            };
            match map.next_value_seed(seed) {
                Ok(v) => {
                    out.insert(key, v);
                }
                Err(e) => {
                    self.track.trigger(self.chain);
                    return Err(e);
                }
            }
        }
    }
}
