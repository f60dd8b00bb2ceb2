//! The content join's files (`WORKDIR/content/`): `join.parquet`, one row per content the
//! resolved rows need, with what the export tables say of it; and in shard folders
//! `found.parquet`, the same rows for the contents one shard's ORC files hold.
//!
//! Columns: `sha1_git` and `sha1` (hex), `length`, `status` (`visible`, `skipped`,
//! `content_not_found`) and `reason` (SWH's, for skipped contents).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt64Array};

use crate::model::{ContentStatus, Sha1, Sha1Git, Status, StatusCounts};
use crate::table::{self, TableError};

/// The join of a whole run.
pub const JOIN: &str = "join.parquet";
/// What one shard of the join found.
pub const FOUND: &str = "found.parquet";

/// What the archive knows of one content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Its sha1 (the object store key), when the table has it.
    pub sha1: Option<Sha1>,
    /// Length in bytes.
    pub length: Option<u64>,
    /// `visible` or `skipped` (`content_not_found` is never stored in a map).
    pub status: ContentStatus,
    /// SWH's reason, for skipped contents.
    pub reason: Option<String>,
}

/// Contents by git id.
pub type JoinMap = HashMap<Sha1Git, Known, crate::model::IdHash>;

/// Adds `k` for `id` to `map`, a visible copy winning over a skipped one.
pub fn insert(map: &mut JoinMap, id: Sha1Git, k: Known) {
    match map.get(&id) {
        Some(old) if old.status == ContentStatus::Visible => {}
        _ => {
            map.insert(id, k);
        }
    }
}

/// Writes one row per id of `ids` (sorted), `content_not_found` for those not in `found`;
/// returns the count per status.
pub fn write(
    path: &Path,
    ids: &[Sha1Git],
    found: &JoinMap,
) -> Result<StatusCounts<ContentStatus>, TableError> {
    let get = |id: &Sha1Git| found.get(id);
    let status = |id: &Sha1Git| get(id).map_or(ContentStatus::ContentNotFound, |k| k.status);
    let mut counts = StatusCounts::default();
    for id in ids {
        counts.bump(status(id));
    }
    table::write(
        path,
        vec![
            (
                "sha1_git",
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(Sha1Git::to_hex),
                )) as ArrayRef,
            ),
            (
                "sha1",
                Arc::new(StringArray::from_iter(
                    ids.iter()
                        .map(|id| get(id).and_then(|k| k.sha1).map(|s| s.to_hex())),
                )),
            ),
            (
                "length",
                Arc::new(UInt64Array::from_iter(
                    ids.iter().map(|id| get(id).and_then(|k| k.length)),
                )),
            ),
            (
                "status",
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|id| status(id).as_str()),
                )),
            ),
            (
                "reason",
                Arc::new(StringArray::from_iter(
                    ids.iter().map(|id| get(id).and_then(|k| k.reason.clone())),
                )),
            ),
        ],
    )?;
    Ok(counts)
}

/// Reads a join (or found) file back: the contents that are in a table, by git id.
pub fn load(path: &Path) -> Result<JoinMap, TableError> {
    let b = table::read(path)?;
    let ids = table::strings(&b, path, "sha1_git")?;
    let sha1 = table::strings(&b, path, "sha1")?;
    let length = table::opt_u64s(&b, path, "length")?;
    let status = table::strings(&b, path, "status")?;
    let reason = table::strings(&b, path, "reason")?;
    let mut out = JoinMap::default();
    for i in 0..b.num_rows() {
        let st = status[i].as_deref().and_then(ContentStatus::parse);
        let st = match st {
            Some(ContentStatus::ContentNotFound) => continue,
            Some(s) => s,
            None => {
                return Err(TableError::column(
                    path,
                    "status",
                    format!("row {i}: unknown status {:?}", status[i]),
                ))
            }
        };
        let id = ids[i].as_deref().map(Sha1Git::from_hex);
        let Some(Ok(id)) = id else {
            return Err(TableError::column(
                path,
                "sha1_git",
                format!("row {i}: not an id"),
            ));
        };
        let sha1 = match sha1[i].as_deref().map(Sha1::from_hex) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => return Err(TableError::column(path, "sha1", format!("row {i}: {e}"))),
            None => None,
        };
        out.insert(
            id,
            Known {
                sha1,
                length: length[i],
                status: st,
                reason: reason[i].clone(),
            },
        );
    }
    Ok(out)
}
