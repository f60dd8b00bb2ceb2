//! The plan's files (`WORKDIR/plan/`): every row's pair and path, the distinct pairs and
//! paths, the rejected rows, and the input files in row-id order.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt32Array, UInt64Array};

use crate::table::{self, TableError};

/// Per row: `row_id`, `pair_id`, `path_id` (nulls for invalid rows).
pub const ROWS: &str = "rows.parquet";
/// Per distinct (repo, prefix): `pair_id`, `repo`, `prefix` (lower-case hex).
pub const PAIRS: &str = "pairs.parquet";
/// Per distinct path: `path_id`, `path`.
pub const PATHS: &str = "paths.parquet";
/// Per invalid row: `row_id`, `file`, `row` (in that file), `reason`.
pub const REJECTS: &str = "rejects.parquet";
/// The input files in row-id order, with their row counts (JSON).
pub const INPUTS: &str = "inputs.json";

/// An invalid input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Row id (position in the whole input).
    pub row_id: u64,
    /// The input file.
    pub file: String,
    /// Row number in that file.
    pub row: u64,
    /// Why it is invalid.
    pub reason: String,
}

/// Writes `rows.parquet`: row ids `0..n` with their pair and path ids.
pub fn write_rows(
    dir: &Path,
    pairs: Vec<Option<u32>>,
    paths: Vec<Option<u32>>,
) -> Result<(), TableError> {
    let n = pairs.len() as u64;
    table::write(
        &dir.join(ROWS),
        vec![
            (
                "row_id",
                Arc::new(UInt64Array::from_iter_values(0..n)) as ArrayRef,
            ),
            ("pair_id", Arc::new(UInt32Array::from(pairs))),
            ("path_id", Arc::new(UInt32Array::from(paths))),
        ],
    )?;
    Ok(())
}

/// Writes `pairs.parquet` from the pairs in id order.
pub fn write_pairs(dir: &Path, pairs: &[(&str, &str)]) -> Result<(), TableError> {
    table::write(
        &dir.join(PAIRS),
        vec![
            (
                "pair_id",
                Arc::new(UInt32Array::from_iter_values(0..pairs.len() as u32)) as ArrayRef,
            ),
            (
                "repo",
                Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.0))),
            ),
            (
                "prefix",
                Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.1))),
            ),
        ],
    )?;
    Ok(())
}

/// Writes `paths.parquet` from the paths in id order.
pub fn write_paths(dir: &Path, paths: &[&str]) -> Result<(), TableError> {
    table::write(
        &dir.join(PATHS),
        vec![
            (
                "path_id",
                Arc::new(UInt32Array::from_iter_values(0..paths.len() as u32)) as ArrayRef,
            ),
            (
                "path",
                Arc::new(StringArray::from_iter_values(paths.iter().copied())),
            ),
        ],
    )?;
    Ok(())
}

/// Writes `rejects.parquet`.
pub fn write_rejects(dir: &Path, rejects: &[Reject]) -> Result<(), TableError> {
    table::write(
        &dir.join(REJECTS),
        vec![
            (
                "row_id",
                Arc::new(UInt64Array::from_iter_values(
                    rejects.iter().map(|r| r.row_id),
                )) as ArrayRef,
            ),
            (
                "file",
                Arc::new(StringArray::from_iter_values(
                    rejects.iter().map(|r| r.file.as_str()),
                )),
            ),
            (
                "row",
                Arc::new(UInt64Array::from_iter_values(rejects.iter().map(|r| r.row))),
            ),
            (
                "reason",
                Arc::new(StringArray::from_iter_values(
                    rejects.iter().map(|r| r.reason.as_str()),
                )),
            ),
        ],
    )?;
    Ok(())
}

/// Writes `inputs.json`: `[[file, rows], ...]` in row-id order.
pub fn write_inputs(dir: &Path, files: &[(String, u64)]) -> Result<(), TableError> {
    let path = dir.join(INPUTS);
    let text = serde_json::to_string_pretty(files).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| TableError::io(&path, e))
}

/// The plan read back by later phases.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Per row: pair id (`u32::MAX` if invalid).
    pub row_pair: Vec<u32>,
    /// Per row: path id (`u32::MAX` if invalid).
    pub row_path: Vec<u32>,
    /// Per pair: (repo, prefix).
    pub pairs: Vec<(String, String)>,
    /// Per path id: the path.
    pub paths: Vec<String>,
    /// Input files in row order, with their row counts.
    pub files: Vec<(String, u64)>,
}

impl Plan {
    /// Reads the plan written into `dir`.
    pub fn load(dir: &Path) -> Result<Self, TableError> {
        let rows_path = dir.join(ROWS);
        let rows = table::read(&rows_path)?;
        let pairs = read_pairs(dir)?;
        let row_pair = table::u32s(&rows, &rows_path, "pair_id")?;
        let row_path = table::u32s(&rows, &rows_path, "path_id")?;
        let paths = read_paths(dir)?;
        // Ids index the other tables: check them once here, so that no later phase can index
        // out of bounds on a damaged plan.
        for (&pair, &path) in row_pair.iter().zip(&row_path) {
            if (pair != u32::MAX && pair as usize >= pairs.len())
                || (path != u32::MAX && path as usize >= paths.len())
            {
                return Err(TableError::column(&rows_path, "pair_id", "id out of range"));
            }
        }
        Ok(Self {
            row_pair,
            row_path,
            pairs,
            paths,
            files: read_inputs(dir)?,
        })
    }

    /// Per pair, its distinct requested paths (sorted).
    pub fn pair_paths(&self) -> Vec<Vec<&str>> {
        let mut out: Vec<Vec<&str>> = vec![Vec::new(); self.pairs.len()];
        for (&pair, &path) in self.row_pair.iter().zip(&self.row_path) {
            if pair != u32::MAX {
                out[pair as usize].push(self.paths[path as usize].as_str());
            }
        }
        for v in &mut out {
            v.sort_unstable();
            v.dedup();
        }
        out
    }
}

/// Reads `pairs.parquet`: (repo, prefix) in pair-id order.
pub fn read_pairs(dir: &Path) -> Result<Vec<(String, String)>, TableError> {
    let path = dir.join(PAIRS);
    let b = table::read(&path)?;
    let repos = table::strings(&b, &path, "repo")?;
    let prefixes = table::strings(&b, &path, "prefix")?;
    Ok(repos
        .into_iter()
        .zip(prefixes)
        .map(|(r, p)| (r.unwrap_or_default(), p.unwrap_or_default()))
        .collect())
}

/// Reads `paths.parquet`: paths in path-id order.
pub fn read_paths(dir: &Path) -> Result<Vec<String>, TableError> {
    let path = dir.join(PATHS);
    let b = table::read(&path)?;
    Ok(table::strings(&b, &path, "path")?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// Reads `inputs.json`.
pub fn read_inputs(dir: &Path) -> Result<Vec<(String, u64)>, TableError> {
    let path = dir.join(INPUTS);
    let text = std::fs::read_to_string(&path).map_err(|e| TableError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TableError::column(&path, "files", e.to_string()))
}
