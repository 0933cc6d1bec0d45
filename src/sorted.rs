//! A map from strings, kept as one vector sorted by key.
//!
//! It stands in for `BTreeMap<String, V>` in the statistics, the ledger's grant counts and
//! nonces, and the configuration's RPC table: small maps, read whole and written whole. Each
//! `BTreeMap` with another value type is a fresh copy of the tree's code in the Worker, about
//! 5 KB of wasm each; this is a binary search and a vector. It iterates in key order and is
//! stored as a JSON object, exactly as a `BTreeMap` is, so values stored by one read back as the
//! other.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::json::{self, Fields, Read};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedMap<V> {
    items: Vec<(String, V)>,
}

impl<V> Default for SortedMap<V> {
    fn default() -> Self {
        SortedMap { items: Vec::new() }
    }
}

impl<V> SortedMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.items[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        match self.find(key) {
            Ok(i) => Some(&mut self.items[i].1),
            Err(_) => None,
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; the value it replaces, if any.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, value)),
            Err(i) => {
                self.items.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).ok().map(|i| self.items.remove(i).1)
    }

    /// The value under `key`, made by `make` if there was none.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.items.insert(i, (key.to_string(), make()));
                i
            }
        };
        &mut self.items[i].1
    }

    /// Keeps the entries for which `keep` says yes.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.items.retain_mut(|(k, v)| keep(k, v));
    }

    /// Removes the entry with the smallest key.
    pub fn pop_first(&mut self) -> Option<(String, V)> {
        (!self.items.is_empty()).then(|| self.items.remove(0))
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.items.iter_mut().map(|(_, v)| v)
    }
}

impl<V: Default> SortedMap<V> {
    /// The value under `key`, a default one if there was none.
    pub fn or_default(&mut self, key: &str) -> &mut V {
        self.get_or_insert_with(key, V::default)
    }
}

impl<'a, V> IntoIterator for &'a SortedMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&(String, V)) -> (&String, &V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter().map(|(k, v)| (k, v))
    }
}

impl<V: Serialize> Serialize for SortedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.items.len()))?;
        for (k, v) in &self.items {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Read from a JSON object. Its keys come already in order (a parsed object is a `BTreeMap`), and a
/// repeated key has kept its last value, as a `BTreeMap` does.
impl<V: Read> Read for SortedMap<V> {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let mut map = SortedMap::new();
        for (k, v) in Fields::new(value)?.iter() {
            map.insert(k.clone(), V::read(v).map_err(|e| e.at(k))?);
        }
        Ok(map)
    }
}

/// A sort key: up to three numbers, then the item's position, which breaks ties so that equal
/// keys keep their order (as a stable sort would).
pub type Order = (u128, u64, u64, usize);

/// The positions of `keys`' items in the order of their keys.
///
/// Every sort in the Worker goes through this one function on this one type: each `sort_by_key`
/// on another type or closure is another copy of the standard library's sorts in the wasm, about
/// 2–4 KB each.
pub fn order(mut keys: Vec<Order>) -> impl Iterator<Item = usize> {
    keys.sort_unstable();
    keys.into_iter().map(|k| k.3)
}

/// `items` in the order `key` gives them (ties in their present order).
pub fn sort_by_order<T>(items: &mut Vec<T>, key: impl Fn(&T) -> (u128, u64, u64)) {
    let keys = items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (a, b, c) = key(t);
            (a, b, c, i)
        })
        .collect();
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order(keys).filter_map(|i| slots.get_mut(i).and_then(Option::take)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sorts_by_key_and_keeps_ties_in_order() {
        // A fixed pseudo-random list with many equal keys, against the standard stable sort.
        let mut x: u64 = 11;
        let items: Vec<(u64, u32)> = (0..500u32)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % 17, i)
            })
            .collect();
        let mut ours = items.clone();
        sort_by_order(&mut ours, |t| (u128::MAX - u128::from(t.0), 0, 0));
        let mut std_sorted = items;
        std_sorted.sort_by_key(|t| std::cmp::Reverse(t.0));
        assert_eq!(ours, std_sorted);
        let positions: Vec<usize> =
            order(vec![(2, 0, 0, 0), (1, 5, 0, 1), (1, 5, 0, 2), (1, 4, 9, 3)]).collect();
        assert_eq!(positions, [3, 1, 2, 0]);
    }

    #[test]
    fn behaves_and_serialises_as_a_btreemap() {
        let mut ours: SortedMap<u64> = SortedMap::new();
        let mut tree: BTreeMap<String, u64> = BTreeMap::new();
        // A fixed pseudo-random walk over a few keys: inserts, updates, removals, defaults.
        let mut x: u64 = 7;
        for step in 0..2000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = format!("k{}", (x >> 33) % 40);
            match step % 5 {
                0 | 1 => assert_eq!(ours.insert(key.clone(), step), tree.insert(key, step)),
                2 => assert_eq!(ours.remove(&key), tree.remove(&key)),
                3 => {
                    *ours.or_default(&key) += 1;
                    *tree.entry(key).or_default() += 1;
                }
                _ => {
                    ours.retain(|_, v| *v % 7 != 0);
                    tree.retain(|_, v| *v % 7 != 0);
                }
            }
            assert_eq!(ours.len(), tree.len());
        }
        let a: Vec<(&String, &u64)> = ours.iter().collect();
        let b: Vec<(&String, &u64)> = tree.iter().collect();
        assert_eq!(a, b);
        let json = serde_json::to_string(&ours).unwrap();
        assert_eq!(json, serde_json::to_string(&tree).unwrap());
        let back: SortedMap<u64> = json::parse(&json).unwrap();
        assert_eq!(back, ours);
    }

    #[test]
    fn reads_any_key_order_and_keeps_the_last_duplicate() {
        let m: SortedMap<u64> = json::parse(r#"{"b":1,"a":2,"c":3,"a":4}"#).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"a":4,"b":1,"c":3}"#);
        assert_eq!(m.get("a"), Some(&4));
        assert!(!m.contains_key("d"));
        assert!(json::parse::<SortedMap<u64>>("[1]").is_err());
        let e = json::parse::<SortedMap<u64>>(r#"{"a":1,"b":"2"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b: expected a whole number of at least 0, found a string"
        );
    }
}
