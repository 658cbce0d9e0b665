//! `VecMap`: a map kept as a vector sorted by key, for the small maps the
//! agent and the commands hold (a few to a few hundred entries).
//!
//! It iterates in key order like a `BTreeMap`, so swapping one for the
//! other changes no output; what it saves is code. Every `BTreeMap<K, V>`
//! links its own copy of the B-tree's insert, search, rebalancing and drop
//! (3 to 7 KB per key and value type on aarch64); a `VecMap` is a binary
//! search over a `Vec` (docs/design-deviations.md §12, sessions 10 and
//! 11). It serializes as a `BTreeMap` does, byte for byte, so it stands
//! in for one in the state file, manifests and messages; `VecSet` is the
//! same for `BTreeSet`. Insertion and removal move the entries after the
//! slot: fine for these sizes; the fleet controller's per-device maps
//! (one entry per device) stay fast up to about 20,000 devices
//! (`cargo bench --bench vecmap`).

use std::borrow::Borrow;

/// Entries sorted by key, no key twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub const fn new() -> Self {
        VecMap(Vec::new())
    }

    /// `Ok(index)` of `key`, or `Err(index)` where it would go.
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; the old value, if there was one (the key
    /// itself is kept, as `BTreeMap::insert` does).
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `key`, inserted as `V::default()` if missing.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (key, V::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// `key`'s slot, for `or_insert`, `or_insert_with`, `or_default`.
    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        let at = self.find(&key);
        Entry { map: self, at, key }
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// The `n` entries with the smallest keys, removed.
    pub fn drain_first(&mut self, n: usize) -> std::vec::Drain<'_, (K, V)> {
        self.0.drain(..n)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// Keeps the entries `f` returns true for.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        self.0.retain_mut(|(k, v)| f(k, v));
    }
}

/// A key's slot in a `VecMap`, found once (`VecMap::entry`).
#[derive(Debug)]
pub struct Entry<'a, K, V> {
    map: &'a mut VecMap<K, V>,
    at: Result<usize, usize>,
    key: K,
}

impl<'a, K, V> Entry<'a, K, V> {
    /// The value, `f()` inserted first if the key was missing.
    pub fn or_insert_with(self, f: impl FnOnce() -> V) -> &'a mut V {
        let i = match self.at {
            Ok(i) => i,
            Err(i) => {
                self.map.0.insert(i, (self.key, f()));
                i
            }
        };
        &mut self.map.0[i].1
    }

    pub fn or_insert(self, value: V) -> &'a mut V {
        self.or_insert_with(|| value)
    }

    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }
}

impl<K: Ord, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    /// In key order.
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    /// Inserted one by one: a later value of a key wins, as in a
    /// `BTreeMap`.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = VecMap::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    /// In key order.
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Borrow<Q> + Ord, Q: Ord + ?Sized, V> std::ops::Index<&Q> for VecMap<K, V> {
    type Output = V;

    /// The value of `key`; panics if there is none, as `BTreeMap`'s.
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("key in the map")
    }
}

/// As a `BTreeMap`'s: a map, in key order (the same bytes in postcard and
/// JSON, so a field may switch from one to the other without changing a
/// file or a message).
impl<K: serde::Serialize, V: serde::Serialize> serde::Serialize for VecMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// As a `BTreeMap`'s: a later value of a repeated key wins; the error for
/// anything but a map expects "a map".
impl<'de, K: serde::Deserialize<'de> + Ord, V: serde::Deserialize<'de>> serde::Deserialize<'de>
    for VecMap<K, V>
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: serde::Deserialize<'de> + Ord, V: serde::Deserialize<'de>>
            serde::de::Visitor<'de> for Visit<K, V>
        {
            type Value = VecMap<K, V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let mut map = VecMap::new();
                while let Some((k, v)) = a.next_entry()? {
                    map.insert(k, v);
                }
                Ok(map)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl<K: Ord, V> Extend<(K, V)> for VecMap<K, V> {
    /// Inserted one by one, as `BTreeMap::extend`.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for VecMap<K, V> {
    fn from(a: [(K, V); N]) -> Self {
        a.into_iter().collect()
    }
}

/// `VecSet`: a set kept as a sorted vector, for the same reason and the
/// same sizes as `VecMap` (it is one, with `()` values): it iterates in
/// order like a `BTreeSet` without linking a B-tree per element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecSet<T>(VecMap<T, ()>);

impl<T> Default for VecSet<T> {
    fn default() -> Self {
        VecSet(VecMap::default())
    }
}

impl<T: Ord> VecSet<T> {
    pub const fn new() -> Self {
        VecSet(VecMap::new())
    }

    /// True if `value` was not there yet (then it is added).
    pub fn insert(&mut self, value: T) -> bool {
        self.0.insert(value, ()).is_none()
    }

    pub fn contains<Q: Ord + ?Sized>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.0.contains_key(value)
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.0.remove(value).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.0.0.iter().map(|(t, _)| t)
    }

    /// The values of `self` not in `other`, in order.
    pub fn difference<'a>(&'a self, other: &'a VecSet<T>) -> impl Iterator<Item = &'a T> {
        self.iter().filter(move |t| !other.contains(*t))
    }

    pub fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
        self.0.retain(|t, _| f(t));
    }
}

impl<T: Ord> FromIterator<T> for VecSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        VecSet(iter.into_iter().map(|t| (t, ())).collect())
    }
}

impl<T: Ord> Extend<T> for VecSet<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(|t| (t, ())));
    }
}

impl<T: Ord> IntoIterator for VecSet<T> {
    type Item = T;
    type IntoIter = std::iter::Map<std::vec::IntoIter<(T, ())>, fn((T, ())) -> T>;

    /// In order.
    fn into_iter(self) -> Self::IntoIter {
        self.0.0.into_iter().map(|(t, ())| t)
    }
}

impl<'a, T: Ord> IntoIterator for &'a VecSet<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (T, ())>, fn(&'a (T, ())) -> &'a T>;

    /// In order.
    fn into_iter(self) -> Self::IntoIter {
        self.0.0.iter().map(|(t, ())| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The same operations on a `VecMap` and a `BTreeMap` give the same
    /// answers and the same order.
    #[test]
    fn behaves_as_a_btreemap() {
        let mut v = VecMap::new();
        let mut b = BTreeMap::new();
        // A fixed pseudo-random walk of inserts, replacements and removals.
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let key = format!("k{}", (x >> 8) % 97);
            match (x >> 4) % 3 {
                0 | 1 => assert_eq!(v.insert(key.clone(), x), b.insert(key, x)),
                _ => assert_eq!(v.remove(key.as_str()), b.remove(key.as_str())),
            }
            assert_eq!(v.len(), b.len());
            let probe = format!("k{}", x % 97);
            assert_eq!(v.get(probe.as_str()), b.get(probe.as_str()));
            assert_eq!(
                v.contains_key(probe.as_str()),
                b.contains_key(probe.as_str())
            );
        }
        assert!(v.iter().eq(b.iter()));
        assert!(v.keys().eq(b.keys()));
        assert!((&v).into_iter().eq(&b));
        let some = b.keys().next().unwrap();
        assert_eq!(v[some.as_str()], b[some.as_str()]);
        assert!(v.values().rev().eq(b.values().rev()));
        *v.get_mut("k5").unwrap_or(&mut 0) += 1;
        if let Some(n) = b.get_mut("k5") {
            *n += 1;
        }
        *v.entry_or_default("k5".into()) += 7;
        *b.entry("k5".into()).or_default() += 7;
        *v.entry_or_default("new".into()) += 7;
        *b.entry("new".into()).or_default() += 7;
        assert!(v.iter().eq(b.iter()));
        v.retain(|k, _| k.len() == 2);
        b.retain(|k, _| k.len() == 2);
        let two: Vec<_> = v.drain_first(2).collect();
        assert_eq!(two, [b.pop_first().unwrap(), b.pop_first().unwrap()]);
        assert!(v.clone().into_iter().eq(b.clone()));
        let pairs = [(3, 'a'), (1, 'b'), (3, 'c')];
        let c: VecMap<_, _> = pairs.into_iter().collect();
        let d: BTreeMap<_, _> = pairs.into_iter().collect();
        assert!(c.into_iter().eq(d));
        assert!(!v.is_empty());
    }

    /// Serialized as a `BTreeMap` of the same content, byte for byte, in
    /// postcard (the state file) and JSON (MQTT, the API); read back the
    /// same way, a repeated key's later value winning.
    #[test]
    fn serde_as_a_btreemap() {
        let pairs = [("b", 2u64), ("a", 1), ("c", 300), ("", 0)];
        let v: VecMap<String, u64> = pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        let b: BTreeMap<String, u64> = pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        let pv = postcard::to_allocvec(&v).unwrap();
        assert_eq!(pv, postcard::to_allocvec(&b).unwrap());
        let jv = serde_json::to_string(&v).unwrap();
        assert_eq!(jv, serde_json::to_string(&b).unwrap());
        assert_eq!(jv, r#"{"":0,"a":1,"b":2,"c":300}"#);
        assert_eq!(postcard::from_bytes::<VecMap<String, u64>>(&pv).unwrap(), v);
        let nested: VecMap<String, VecMap<String, String>> =
            serde_json::from_str(r#"{"z":{"y":"1","x":"2"},"a":{}}"#).unwrap();
        let nested_b: BTreeMap<String, BTreeMap<String, String>> =
            serde_json::from_str(r#"{"z":{"y":"1","x":"2"},"a":{}}"#).unwrap();
        assert_eq!(
            postcard::to_allocvec(&nested).unwrap(),
            postcard::to_allocvec(&nested_b).unwrap()
        );
        let dup = r#"{"k":1,"j":2,"k":3}"#;
        let dv: VecMap<String, u64> = serde_json::from_str(dup).unwrap();
        let db: BTreeMap<String, u64> = serde_json::from_str(dup).unwrap();
        assert!(dv.iter().eq(db.iter()));
        assert_eq!(dv["k"], 3);
        let ev = serde_json::from_str::<VecMap<String, u64>>("[1]").unwrap_err();
        let eb = serde_json::from_str::<BTreeMap<String, u64>>("[1]").unwrap_err();
        assert_eq!(ev.to_string(), eb.to_string());
    }

    /// `entry` and `extend` as `BTreeMap`'s.
    #[test]
    fn entry_and_extend() {
        let mut v: VecMap<&str, u32> = VecMap::from([("b", 1)]);
        *v.entry("b").or_insert(10) += 1;
        *v.entry("a").or_insert(10) += 1;
        *v.entry("c").or_default() += 5;
        assert_eq!(*v.entry("c").or_insert_with(|| unreachable!()), 5);
        v.extend([("d", 4), ("a", 0)]);
        for x in v.values_mut() {
            *x += 100;
        }
        for (_, x) in v.iter_mut().rev().take(1) {
            *x += 1000;
        }
        let got: Vec<_> = v.into_iter().collect();
        assert_eq!(got, [("a", 100), ("b", 102), ("c", 105), ("d", 1104)]);
    }

    /// `VecSet` answers as a `BTreeSet` and iterates in the same order.
    #[test]
    fn vecset_behaves_as_a_btreeset() {
        use std::collections::BTreeSet;
        let mut v = VecSet::new();
        let mut b = BTreeSet::new();
        let mut x: u32 = 7;
        for _ in 0..1000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let n = (x >> 8) % 61;
            if (x >> 4) % 3 == 0 {
                assert_eq!(v.remove(&n), b.remove(&n));
            } else {
                assert_eq!(v.insert(n), b.insert(n));
            }
            assert_eq!(v.contains(&(x % 61)), b.contains(&(x % 61)));
            assert_eq!(v.len(), b.len());
        }
        assert!(v.iter().eq(b.iter()));
        let w: VecSet<u32> = (0..40).rev().collect();
        let c: BTreeSet<u32> = (0..40).collect();
        assert!(v.difference(&w).eq(b.difference(&c)));
        v.extend([1000, 3]);
        b.extend([1000, 3]);
        v.retain(|n| n % 2 == 1);
        b.retain(|n| n % 2 == 1);
        assert!((&v).into_iter().eq(&b));
        assert!(v.into_iter().eq(b));
        assert!(VecSet::<u8>::default().is_empty());
    }

    /// `insert` over an existing key keeps the first key value (equal
    /// keys need not be identical), as `BTreeMap` does.
    #[test]
    fn insert_keeps_the_old_key() {
        #[derive(Debug, Clone, Copy)]
        struct K(u8, u8); // ordered by .0 only
        impl PartialEq for K {
            fn eq(&self, o: &K) -> bool {
                self.0 == o.0
            }
        }
        impl Eq for K {}
        impl PartialOrd for K {
            fn partial_cmp(&self, o: &K) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for K {
            fn cmp(&self, o: &K) -> std::cmp::Ordering {
                self.0.cmp(&o.0)
            }
        }
        let mut v = VecMap::new();
        v.insert(K(1, 1), "a");
        assert_eq!(v.insert(K(1, 2), "b"), Some("a"));
        assert_eq!(v.keys().next().unwrap().1, 1);
        assert_eq!(v.get(&K(1, 9)), Some(&"b"));
    }
}
