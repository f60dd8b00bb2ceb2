//! The label pass's outputs (`WORKDIR/labels/`):
//!
//! - `names.flat`: each requested path component the graph has, as `(hash of the name, label
//!   id)`, sorted by hash, so the walk finds a component's label id by binary search;
//! - `entries.flat`: the directory entries the pass kept, `(directory, name id, permission,
//!   target)`, sorted by directory then name id, so the walk finds an entry by binary
//!   search.
//!
//! Both are read memory-mapped: the walk holds no copy of them.

use std::path::Path;

use super::flat::{le, FixedRecord, FlatError, FlatFile};
use crate::model::slug::key_hash;

/// Label ids of the requested names.
pub const NAMES: &str = "names.flat";
/// The kept entries.
pub const ENTRIES: &str = "entries.flat";

/// One kept directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Directory node.
    pub dir: u64,
    /// Label id of the entry name.
    pub name_id: u64,
    /// Permission code (swh-graph's `Permission` as a number).
    pub perm: u8,
    /// Target node.
    pub target: u64,
}

impl FixedRecord for Entry {
    const SIZE: usize = 25;
    const KIND: [u8; 4] = *b"entr";
    fn write_to(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.dir.to_le_bytes());
        out[8..16].copy_from_slice(&self.name_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.target.to_le_bytes());
        out[24] = self.perm;
    }
    fn read_from(b: &[u8]) -> Self {
        Self {
            dir: le::u64_at(b, 0),
            name_id: le::u64_at(b, 8),
            target: le::u64_at(b, 16),
            perm: b[24],
        }
    }
}

/// A requested name's label id, by the hash of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NameId {
    /// [`key_hash`] of the name's bytes.
    pub hash: u128,
    /// Its label id.
    pub id: u64,
}

impl FixedRecord for NameId {
    const SIZE: usize = 24;
    const KIND: [u8; 4] = *b"name";
    fn write_to(&self, out: &mut [u8]) {
        out[..16].copy_from_slice(&self.hash.to_le_bytes());
        out[16..24].copy_from_slice(&self.id.to_le_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        Self {
            hash: le::u128_at(b, 0),
            id: le::u64_at(b, 16),
        }
    }
}

impl crate::sort::Record for NameId {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut b = [0u8; 24];
        self.write_to(&mut b);
        out.extend_from_slice(&b);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        (b.len() == 24).then(|| Self::read_from(b))
    }
    fn mem_size(&self) -> usize {
        0
    }
}

/// The kept entries, mapped.
pub struct Entries(FlatFile<Entry>);

impl Entries {
    /// Maps `dir/entries.flat`.
    pub fn open(dir: &Path) -> Result<Self, FlatError> {
        Ok(Self(FlatFile::open(&dir.join(ENTRIES))?))
    }

    /// The entry named `name` in directory `dir`: its permission code and target.
    pub fn lookup(&self, dir: u64, name: u64) -> Option<(u8, u64)> {
        let i = self.0.partition_point(|e| (e.dir, e.name_id) < (dir, name));
        self.0
            .get(i)
            .filter(|e| e.dir == dir && e.name_id == name)
            .map(|e| (e.perm, e.target))
    }

    /// The kept entries of directory `dir`, by name id.
    pub fn in_dir(&self, dir: u64) -> impl Iterator<Item = Entry> + '_ {
        let start = self.0.partition_point(|e| e.dir < dir);
        self.0.iter_from(start).take_while(move |e| e.dir == dir)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.0.iter_from(0)
    }
}

/// The requested names' label ids, mapped.
pub struct Names(FlatFile<NameId>);

impl Names {
    /// Maps `dir/names.flat`.
    pub fn open(dir: &Path) -> Result<Self, FlatError> {
        Ok(Self(FlatFile::open(&dir.join(NAMES))?))
    }

    /// The label id of `name`, when the graph has it and it was requested.
    pub fn get(&self, name: &[u8]) -> Option<u64> {
        let h = key_hash(name);
        let i = self.0.partition_point(|r| r.hash < h);
        self.0.get(i).filter(|r| r.hash == h).map(|r| r.id)
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
