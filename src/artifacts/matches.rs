//! The origin match's output (`WORKDIR/match/pairs.parquet`), one row per (repo, prefix)
//! pair in pair-id order.
//!
//! Columns: `pair_id`, `status`, `origin_url`, `snapshot` (hex), `revision_node`, `revision`
//! (hex), `root_node` (its root directory), `candidates` (revisions with the prefix in the
//! whole graph), `in_origin` (of those, how many the origin holds), `budget_hit`.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, StringArray, UInt32Array, UInt64Array};

use crate::model::{MatchStatus, Sha1Git, Status};
use crate::table::{self, TableError};

/// File name.
pub const PAIRS: &str = "pairs.parquet";

/// The answer for one pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairMatch {
    /// Outcome.
    pub status: MatchStatus,
    /// URL of the origin the revision was found in.
    pub origin_url: Option<String>,
    /// Snapshot through which it was reached.
    pub snapshot: Option<Sha1Git>,
    /// Winning revision node.
    pub revision_node: Option<u64>,
    /// Its id.
    pub revision: Option<Sha1Git>,
    /// Its root directory node.
    pub root: Option<u64>,
    /// Revisions with the prefix in the whole graph.
    pub candidates: u32,
    /// Of those, how many belong to the origin.
    pub in_origin: u32,
    /// Whether the search budget ran out.
    pub budget_hit: bool,
}

impl PairMatch {
    /// A pair that failed with `status`, among `candidates` revisions with its prefix.
    pub fn failed(status: MatchStatus, candidates: u32) -> Self {
        Self {
            status,
            origin_url: None,
            snapshot: None,
            revision_node: None,
            revision: None,
            root: None,
            candidates,
            in_origin: 0,
            budget_hit: false,
        }
    }
}

/// Writes the matches, in pair-id order.
pub fn write(path: &Path, m: &[PairMatch]) -> Result<(), TableError> {
    let hex = |v: Option<Sha1Git>| v.map(|s| s.to_hex());
    table::write(
        path,
        vec![
            (
                "pair_id",
                Arc::new(UInt32Array::from_iter_values(0..m.len() as u32)) as ArrayRef,
            ),
            (
                "status",
                Arc::new(StringArray::from_iter_values(
                    m.iter().map(|p| p.status.as_str()),
                )),
            ),
            (
                "origin_url",
                Arc::new(StringArray::from_iter(
                    m.iter().map(|p| p.origin_url.as_deref()),
                )),
            ),
            (
                "snapshot",
                Arc::new(StringArray::from_iter(m.iter().map(|p| hex(p.snapshot)))),
            ),
            (
                "revision_node",
                Arc::new(UInt64Array::from_iter(m.iter().map(|p| p.revision_node))),
            ),
            (
                "revision",
                Arc::new(StringArray::from_iter(m.iter().map(|p| hex(p.revision)))),
            ),
            (
                "root_node",
                Arc::new(UInt64Array::from_iter(m.iter().map(|p| p.root))),
            ),
            (
                "candidates",
                Arc::new(UInt32Array::from_iter_values(
                    m.iter().map(|p| p.candidates),
                )),
            ),
            (
                "in_origin",
                Arc::new(UInt32Array::from_iter_values(m.iter().map(|p| p.in_origin))),
            ),
            (
                "budget_hit",
                Arc::new(BooleanArray::from_iter(
                    m.iter().map(|p| Some(p.budget_hit)),
                )),
            ),
        ],
    )?;
    Ok(())
}

fn id(path: &Path, col: &str, i: usize, v: Option<&str>) -> Result<Option<Sha1Git>, TableError> {
    v.map(Sha1Git::from_hex)
        .transpose()
        .map_err(|e| TableError::column(path, col, format!("row {i}: {e}")))
}

/// Reads the matches back, in pair-id order.
pub fn read(path: &Path) -> Result<Vec<PairMatch>, TableError> {
    let b = table::read(path)?;
    let status = table::strings(&b, path, "status")?;
    let url = table::strings(&b, path, "origin_url")?;
    let snp = table::strings(&b, path, "snapshot")?;
    let rev_node = table::opt_u64s(&b, path, "revision_node")?;
    let rev = table::strings(&b, path, "revision")?;
    let root = table::opt_u64s(&b, path, "root_node")?;
    let cand = table::u32s(&b, path, "candidates")?;
    let in_origin = table::u32s(&b, path, "in_origin")?;
    let budget = table::column(&b, path, "budget_hit")?
        .as_boolean_opt()
        .ok_or_else(|| TableError::column(path, "budget_hit", "not Boolean"))?
        .clone();
    (0..b.num_rows())
        .map(|i| {
            let status = status[i]
                .as_deref()
                .and_then(MatchStatus::parse)
                .ok_or_else(|| {
                    TableError::column(path, "status", format!("row {i}: {:?}", status[i]))
                })?;
            Ok(PairMatch {
                status,
                origin_url: url[i].clone(),
                snapshot: id(path, "snapshot", i, snp[i].as_deref())?,
                revision_node: rev_node[i],
                revision: id(path, "revision", i, rev[i].as_deref())?,
                root: root[i],
                candidates: cand[i],
                in_origin: in_origin[i],
                budget_hit: budget.value(i),
            })
        })
        .collect()
}
