//! The revision scan's output (`WORKDIR/scan/candidates.parquet`): every revision whose id
//! starts with a requested prefix, by node id. Columns `node` and `sha1_git` (hex).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt64Array};

use crate::model::Sha1Git;
use crate::table::{self, TableError};

/// File name.
pub const CANDIDATES: &str = "candidates.parquet";

/// A revision with a requested prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    /// Its node.
    pub node: u64,
    /// Its id.
    pub id: Sha1Git,
}

/// Writes `candidates`.
pub fn write(path: &Path, candidates: &[Candidate]) -> Result<(), TableError> {
    table::write(
        path,
        vec![
            (
                "node",
                Arc::new(UInt64Array::from_iter_values(
                    candidates.iter().map(|c| c.node),
                )) as ArrayRef,
            ),
            (
                "sha1_git",
                Arc::new(StringArray::from_iter_values(
                    candidates.iter().map(|c| c.id.to_hex()),
                )),
            ),
        ],
    )?;
    Ok(())
}

/// Reads candidates back.
pub fn read(path: &Path) -> Result<Vec<Candidate>, TableError> {
    let b = table::read(path)?;
    let nodes = table::u64s(&b, path, "node")?;
    let ids = table::strings(&b, path, "sha1_git")?;
    nodes
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (node, id))| {
            let id = id
                .as_deref()
                .map(Sha1Git::from_hex)
                .transpose()
                .map_err(|e| TableError::column(path, "sha1_git", format!("row {i}: {e}")))?
                .ok_or_else(|| TableError::column(path, "sha1_git", format!("row {i}: null")))?;
            Ok(Candidate { node, id })
        })
        .collect()
}
