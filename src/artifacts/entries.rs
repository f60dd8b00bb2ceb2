//! The label pass's output (`WORKDIR/labels/`): `entries.parquet`, the directory entries it
//! kept (`dir`, `name_id`, `perm`, `target`; sorted by directory then name id, which the walk
//! binary-searches), and `names.parquet`, each requested path component with its label id
//! (`name`, `name_id`) when the graph has it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, StringArray, UInt64Array, UInt8Array};
use arrow::datatypes::UInt8Type;

use crate::table::{self, TableError};

/// File name of the kept entries.
pub const ENTRIES: &str = "entries.parquet";
/// File name of the requested names.
pub const NAMES: &str = "names.parquet";

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

/// Writes entries into `path`.
pub fn write_entries(path: &Path, entries: &[Entry]) -> Result<(), TableError> {
    table::write(
        path,
        vec![
            (
                "dir",
                Arc::new(UInt64Array::from_iter_values(entries.iter().map(|e| e.dir))) as ArrayRef,
            ),
            (
                "name_id",
                Arc::new(UInt64Array::from_iter_values(
                    entries.iter().map(|e| e.name_id),
                )),
            ),
            (
                "perm",
                Arc::new(UInt8Array::from_iter_values(entries.iter().map(|e| e.perm))),
            ),
            (
                "target",
                Arc::new(UInt64Array::from_iter_values(
                    entries.iter().map(|e| e.target),
                )),
            ),
        ],
    )?;
    Ok(())
}

/// Reads entries back, checking they are sorted (the walk's binary search relies on it).
pub fn read_entries(path: &Path) -> Result<Vec<Entry>, TableError> {
    let b = table::read(path)?;
    let dirs = table::u64s(&b, path, "dir")?;
    let names = table::u64s(&b, path, "name_id")?;
    let targets = table::u64s(&b, path, "target")?;
    let perms = table::column(&b, path, "perm")?
        .as_primitive_opt::<UInt8Type>()
        .ok_or_else(|| TableError::column(path, "perm", "not UInt8"))?
        .clone();
    let entries: Vec<Entry> = (0..b.num_rows())
        .map(|i| Entry {
            dir: dirs[i],
            name_id: names[i],
            perm: perms.value(i),
            target: targets[i],
        })
        .collect();
    if entries.windows(2).any(|w| w[0] > w[1]) {
        return Err(TableError::column(path, "dir", "entries are not sorted"));
    }
    Ok(entries)
}

/// Writes the requested names and their label ids into `path`.
pub fn write_names(path: &Path, names: &HashMap<String, u64>) -> Result<(), TableError> {
    let mut list: Vec<(&String, &u64)> = names.iter().collect();
    list.sort();
    table::write(
        path,
        vec![
            (
                "name",
                Arc::new(StringArray::from_iter_values(
                    list.iter().map(|(n, _)| n.as_str()),
                )) as ArrayRef,
            ),
            (
                "name_id",
                Arc::new(UInt64Array::from_iter_values(list.iter().map(|(_, i)| **i))),
            ),
        ],
    )?;
    Ok(())
}

/// Reads the requested names back.
pub fn read_names(path: &Path) -> Result<HashMap<String, u64>, TableError> {
    let b = table::read(path)?;
    Ok(table::strings(&b, path, "name")?
        .into_iter()
        .zip(table::u64s(&b, path, "name_id")?)
        .map(|(n, i)| (n.unwrap_or_default(), i))
        .collect())
}
