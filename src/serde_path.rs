//! Typed reading of an untyped `serde_json::Value`, with the field path of
//! the first problem in the error (`spec.containers[1].lifecycle.preStop`).
//!
//! Every typed parse site (manifests, ConfigMaps/Secrets, status documents,
//! auth.json) first reads its text into one `Value` (`StrictValue`) and
//! then goes through [`from_value`]: each type's `Deserialize` tree is
//! instantiated once, for this one deserializer, instead of once per text
//! deserializer and again for `serde_path_to_error`'s wrappers (binary
//! size, docs/design-deviations.md §12).
//!
//! It behaves like `serde_json::from_value` (same visits, same messages —
//! serde_json's wording for `invalid type`/`invalid value`) and reports the
//! path as `serde_path_to_error` did: the innermost map key or sequence
//! index where the error arose, `.` for the root. Pure, no I/O.

use crate::yaml::Step;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A typed-read error: the message and where it arose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Path segments, innermost first (they are added while unwinding).
    rev_path: Vec<Segment>,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Index(usize),
    Key(String),
}

impl Error {
    /// The path in `serde_path_to_error`'s notation: `a.b[2].c`, or `.`
    /// for the root.
    pub fn path(&self) -> String {
        if self.rev_path.is_empty() {
            return ".".to_string();
        }
        let mut out = String::new();
        for (i, s) in self.rev_path.iter().rev().enumerate() {
            match s {
                Segment::Index(n) => out.push_str(&format!("[{n}]")),
                Segment::Key(k) => {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(k);
                }
            }
        }
        out
    }

    /// The path, empty for the root.
    pub fn field(&self) -> String {
        match self.path() {
            p if p == "." => String::new(),
            p => p,
        }
    }

    /// The message without the path (serde's text).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The path's steps, outermost first.
    pub fn steps(&self) -> Vec<Step<'_>> {
        (self.rev_path.iter().rev())
            .map(|s| match s {
                Segment::Index(i) => Step::Index(*i),
                Segment::Key(k) => Step::Key(k),
            })
            .collect()
    }

    fn at(mut self, s: Segment) -> Error {
        self.rev_path.push(s);
        self
    }
}

/// `path: message`, or only the message at the root (as
/// `serde_path_to_error::Error` displays).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.rev_path.is_empty() {
            write!(f, "{}: ", self.path())?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error {
            rev_path: Vec::new(),
            message: msg.to_string(),
        }
    }

    // serde_json's wording ("null", its float format).
    #[cold]
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Error {
        Error::custom(<serde_json::Error as de::Error>::invalid_type(unexp, exp))
    }

    #[cold]
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Error {
        Error::custom(<serde_json::Error as de::Error>::invalid_value(unexp, exp))
    }
}

/// Reads a `T` from `value`, as `serde_json::from_value` does, with the
/// path of the first problem.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    T::deserialize(Des(value))
}

/// A YAML document that could not be read as a `T`.
#[derive(Debug)]
pub enum YamlError {
    /// Not YAML, or a duplicate key: the reader's error (its message
    /// names the path and the position).
    Syntax(crate::yaml::Error),
    /// Valid YAML of the wrong shape: the typed error and where the node
    /// it names starts (line, column; 1-based).
    Type(Error, Option<(usize, usize)>),
}

/// `path: message at line L column C` (the path left out at the root).
impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            YamlError::Syntax(e) => write!(f, "{e}"),
            YamlError::Type(e, None) => write!(f, "{e}"),
            YamlError::Type(e, Some((line, column))) => {
                write!(f, "{e} at line {line} column {column}")
            }
        }
    }
}

/// Reads a `T` from one YAML document: text → one `Value` (duplicate keys
/// refused) → `T` by [`from_value`]. A type error is placed in the text
/// at the node it names (the key, for an unknown field), from the
/// positions the reader kept.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    #[cfg(test)]
    crate::yaml::tests::against_norway(text);
    let doc = crate::yaml::one(text).map_err(YamlError::Syntax)?;
    let value = doc.to_value().map_err(YamlError::Syntax)?;
    from_value(value).map_err(|e| {
        let at = doc.locate(&e.steps(), e.message.starts_with("unknown field"));
        YamlError::Type(e, at)
    })
}

/// The deserializer: one owned value.
struct Des(Value);

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => number_unexpected(n),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// `invalid type: <v>, expected <exp>`: what a visitor's default
/// `visit_*` gives for a value of the wrong kind.
#[cold]
#[inline(never)]
fn wrong_type(v: &Value, exp: &dyn de::Expected) -> Error {
    de::Error::invalid_type(unexpected(v), exp)
}

fn number_unexpected(n: &Number) -> de::Unexpected<'static> {
    if let Some(u) = n.as_u64() {
        de::Unexpected::Unsigned(u)
    } else if let Some(i) = n.as_i64() {
        de::Unexpected::Signed(i)
    } else {
        de::Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn visit_array<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, Error> {
    let len = items.len();
    let mut seq = Seq {
        iter: items.into_iter(),
        index: 0,
    };
    let out = visitor.visit_seq(&mut seq)?;
    if seq.iter.len() == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in array"))
    }
}

fn visit_object<'de, V: Visitor<'de>>(
    map: Map<String, Value>,
    visitor: V,
) -> Result<V::Value, Error> {
    let len = map.len();
    let mut access = Entries {
        iter: map.into_iter(),
        value: None,
        key: None,
    };
    let out = visitor.visit_map(&mut access)?;
    if access.iter.len() == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in map"))
    }
}

impl<'de> de::Deserializer<'de> for Des {
    type Error = Error;

    // Not inlined: each type's visitor is then linked once here, and not
    // again inside `deserialize_option` for every `Option<T>` field.
    #[inline(never)]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(a) => visit_array(a, visitor),
            Value::Object(m) => visit_object(m, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            v => visitor.visit_some(Des(v)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (variant, value) = match self.0 {
            Value::Object(m) => {
                let mut iter = m.into_iter();
                let (variant, value) = match iter.next() {
                    Some(v) => v,
                    None => {
                        return Err(de::Error::invalid_value(
                            de::Unexpected::Map,
                            &"map with a single key",
                        ));
                    }
                };
                if iter.next().is_some() {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Map,
                        &"map with a single key",
                    ));
                }
                (variant, Some(value))
            }
            Value::String(variant) => (variant, None),
            other => {
                return Err(de::Error::invalid_type(
                    unexpected(&other),
                    &"string or map",
                ));
            }
        };
        visitor.visit_enum(Variant { variant, value })
    }

    // A struct or map is read only from an object: a derived struct's
    // `visit_seq` (positional fields, which no Kubernetes object has) is
    // then never linked. serde_json also reads a struct from an array.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(m) => visit_object(m, visitor),
            other => Err(wrong_type(&other, &visitor)),
        }
    }

    // A sequence or string is read only from an array or string: what
    // `deserialize_any` would give for the other kinds, serde's visitors
    // for sequences and strings (`Vec`, sets, `String`, `PathBuf`) refuse
    // with this same error, and it is then linked once, not once per
    // element type. Not inlined, as `deserialize_any`.
    #[inline(never)]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(a) => visit_array(a, visitor),
            other => Err(wrong_type(&other, &visitor)),
        }
    }

    #[inline(never)]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_string(s),
            other => Err(wrong_type(&other, &visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

struct Seq {
    iter: std::vec::IntoIter<Value>,
    index: usize,
}

// The bookkeeping around each element and map value is kept out of the
// generic `next_element_seed`/`next_value_seed` (one copy per element or
// field type): binary size, docs/design-deviations.md §12.
impl Seq {
    /// The next element; `index` is then one past it.
    #[inline(never)]
    fn next_item(&mut self) -> Option<Des> {
        let v = self.iter.next()?;
        self.index += 1;
        Some(Des(v))
    }

    /// `e` placed at the element last taken.
    #[cold]
    #[inline(never)]
    fn failed(&self, e: Error) -> Error {
        e.at(Segment::Index(self.index - 1))
    }
}

impl<'de> SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.next_item() {
            None => Ok(None),
            Some(v) => seed.deserialize(v).map(Some).map_err(|e| self.failed(e)),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Entries {
    iter: serde_json::map::IntoIter,
    value: Option<Value>,
    key: Option<String>,
}

impl Entries {
    /// The next key, to be read; its value is kept for `next_value_seed`.
    #[inline(never)]
    fn next_entry(&mut self) -> Option<serde::de::value::StringDeserializer<Error>> {
        let (k, v) = self.iter.next()?;
        self.value = Some(v);
        self.key = Some(k.clone());
        Some(k.into_deserializer())
    }

    /// The value of the key last read (its key stays, for [`Self::failed`],
    /// until the next key replaces it).
    #[inline(never)]
    fn take_value(&mut self) -> Result<Des, Error> {
        match self.value.take() {
            Some(v) => Ok(Des(v)),
            None => {
                self.key = None;
                Err(de::Error::custom("value is missing"))
            }
        }
    }

    /// `e` placed at the key last read.
    #[cold]
    #[inline(never)]
    fn failed(&mut self, e: Error) -> Error {
        e.at(Segment::Key(self.key.take().unwrap_or_default()))
    }
}

impl<'de> MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.next_entry() {
            None => Ok(None),
            Some(key) => seed.deserialize(key).map(Some).map_err(|e| self.failed(e)),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self.take_value()?;
        seed.deserialize(v).map_err(|e| self.failed(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Variant {
    variant: String,
    value: Option<Value>,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = Error;
    type Variant = VariantValue;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantValue), Error> {
        let name = self.variant.clone();
        let key: serde::de::value::StringDeserializer<Error> = self.variant.into_deserializer();
        let v = seed.deserialize(key)?;
        Ok((
            v,
            VariantValue {
                name,
                value: self.value,
            },
        ))
    }
}

struct VariantValue {
    name: String,
    value: Option<Value>,
}

impl<'de> VariantAccess<'de> for VariantValue {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Some(v) => {
                de::Deserialize::deserialize(Des(v)).map_err(|e| e.at(Segment::Key(self.name)))
            }
            None => Ok(()),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.value {
            Some(v) => seed
                .deserialize(Des(v))
                .map_err(|e| e.at(Segment::Key(self.name))),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Some(Value::Array(a)) => {
                visit_array(a, visitor).map_err(|e| e.at(Segment::Key(self.name)))
            }
            Some(other) => Err(de::Error::invalid_type(
                unexpected(&other),
                &"tuple variant",
            )),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Some(Value::Object(m)) => {
                visit_object(m, visitor).map_err(|e| e.at(Segment::Key(self.name)))
            }
            Some(other) => Err(de::Error::invalid_type(
                unexpected(&other),
                &"struct variant",
            )),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}

#[cfg(test)]
mod tests;
