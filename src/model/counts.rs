//! Typed counts of a phase, and their flat form in manifests.
//!
//! Each phase reports a struct of named counters ([`Counts`]); a checkpoint manifest stores it
//! as a flat map of `name -> u64` (what `unearth status`, the benchmarks and people reading
//! `manifest.json` see). Per-status counts ([`StatusCounts`]) flatten to `status_<status>`
//! (or `pairs_<status>` for the origin match), one key per status that occurred.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::status::Status;

/// The flat form of counts: counter name to value.
pub type CountMap = BTreeMap<String, u64>;

/// Counts a phase reports in its manifest.
pub trait Counts:
    Serialize + DeserializeOwned + Default + Clone + fmt::Debug + Send + Sync
{
    /// Adds another shard's counts (constants such as a bucket width are kept, not summed).
    fn add(&mut self, other: &Self);

    /// The flat form.
    fn to_map(&self) -> CountMap {
        let value = serde_json::to_value(self).unwrap_or_default();
        value
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_u64().map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reads the flat form back (missing counters are zero).
    fn from_map(map: &CountMap) -> Self {
        let object: serde_json::Map<String, serde_json::Value> =
            map.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
        serde_json::from_value(serde_json::Value::Object(object)).unwrap_or_default()
    }
}

/// How many of something ended with each status; flattens to `<prefix><status>` keys.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusCounts<S: Status> {
    counts: BTreeMap<S, u64>,
    _prefix: PhantomData<S>,
}

impl<S: Status> Default for StatusCounts<S> {
    fn default() -> Self {
        Self {
            counts: BTreeMap::new(),
            _prefix: PhantomData,
        }
    }
}

impl<S: Status> fmt::Debug for StatusCounts<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.counts.iter().map(|(k, v)| (k.as_str(), v)))
            .finish()
    }
}

impl<S: Status> StatusCounts<S> {
    /// One more of `status`.
    pub fn bump(&mut self, status: S) {
        self.add_n(status, 1);
    }

    /// `n` more of `status`.
    pub fn add_n(&mut self, status: S, n: u64) {
        *self.counts.entry(status).or_default() += n;
    }

    /// How many ended with `status`.
    pub fn get(&self, status: S) -> u64 {
        self.counts.get(&status).copied().unwrap_or(0)
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Statuses that occurred, with their counts, in the order of `S::ALL`.
    pub fn iter(&self) -> impl Iterator<Item = (S, u64)> + '_ {
        self.counts.iter().map(|(s, n)| (*s, *n))
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &Self) {
        for (s, n) in other.iter() {
            self.add_n(s, n);
        }
    }
}

impl<S: Status> Serialize for StatusCounts<S> {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        let mut map = s.serialize_map(Some(self.counts.len()))?;
        for (status, n) in &self.counts {
            map.serialize_entry(&format!("{}{}", S::COUNT_PREFIX, status.as_str()), n)?;
        }
        map.end()
    }
}

impl<'de, S: Status> Deserialize<'de> for StatusCounts<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<S>(PhantomData<S>);
        impl<'de, S: Status> Visitor<'de> for V<S> {
            type Value = StatusCounts<S>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of status counts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut out = StatusCounts::default();
                // Flattened into a struct, this sees every key the struct did not claim: keep
                // those that name a status, ignore the others.
                while let Some((key, value)) = access.next_entry::<String, serde_json::Value>()? {
                    let status = key.strip_prefix(S::COUNT_PREFIX).and_then(S::parse);
                    if let (Some(s), Some(n)) = (status, value.as_u64()) {
                        out.add_n(s, n);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::status::{MatchStatus, RowStatus};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Example {
        rows: u64,
        #[serde(flatten)]
        status: StatusCounts<RowStatus>,
        #[serde(flatten)]
        pairs: StatusCounts<MatchStatus>,
    }

    impl Counts for Example {
        fn add(&mut self, other: &Self) {
            self.rows += other.rows;
            self.status.merge(&other.status);
            self.pairs.merge(&other.pairs);
        }
    }

    #[test]
    fn counts_flatten_and_come_back() {
        let mut c = Example {
            rows: 3,
            ..Default::default()
        };
        c.status.bump(RowStatus::Ok);
        c.status.add_n(RowStatus::PathNotFound, 2);
        c.pairs.bump(MatchStatus::Matched);
        let map = c.to_map();
        assert_eq!(
            map.keys().collect::<Vec<_>>(),
            [
                "pairs_matched",
                "rows",
                "status_ok",
                "status_path_not_found"
            ]
        );
        assert_eq!(Example::from_map(&map), c);
        let mut twice = c.clone();
        twice.add(&c);
        assert_eq!(twice.status.get(RowStatus::PathNotFound), 4);
        assert_eq!(twice.status.total(), 6);
    }
}
