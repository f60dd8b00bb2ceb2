//! Phase 1, **plan**: read the metadata, validate every row, group rows by (repo, prefix).
//!
//! Input: Nemotron-style Parquet files with Utf8 or LargeUtf8 columns `repo`, `commit_id` and
//! `rel_path` (other columns are carried through to the output by the export, which re-reads
//! the input). Every row gets a stable id: its position in the input, files taken in sorted
//! order. Invalid rows are written to `rejects.parquet` with their file, row number in that
//! file and reason; they still appear in the final output, with status `invalid`.
//!
//! Output (`WORKDIR/plan/`): `rows.parquet` (row id, pair id, path id; nulls when invalid),
//! `pairs.parquet` (pair id, repo, lower-case hex prefix), `paths.parquet` (path id, path),
//! `rejects.parquet`, and `inputs.json` (the input files in row-id order).
//!
//! Memory: a hash map entry per distinct (repo, prefix) pair and per distinct path, plus
//! 8 bytes per row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::table;

/// Errors of the plan phase.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No input file matched.
    #[error("metadata {0}: no Parquet file found")]
    NoInput(PathBuf),
    /// An input file that is not a readable Parquet file.
    #[error("metadata file {path}: not a readable Parquet file: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A required column is missing or of the wrong type.
    #[error("metadata file {path}: column {column}: {reason}")]
    Column {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// An output could not be written.
    #[error(transparent)]
    Table(#[from] table::TableError),
    /// I/O on an output.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The required input columns.
pub const COLUMNS: [&str; 3] = ["repo", "commit_id", "rel_path"];

/// Lists the input files of `metadata`: the file itself, a folder's `part_*.parquet` (or all
/// its `*.parquet` when there is no `part_` file), or the matches of a glob; sorted.
pub fn input_files(metadata: &Path) -> Result<Vec<PathBuf>, PlanError> {
    let mut files: Vec<PathBuf> = if metadata.is_file() {
        vec![metadata.to_owned()]
    } else if metadata.is_dir() {
        let list = |pattern: &str| -> Vec<PathBuf> {
            let pat = metadata.join(pattern).display().to_string();
            glob::glob(&pat)
                .map(|g| g.filter_map(Result::ok).collect())
                .unwrap_or_default()
        };
        let parts = list("part_*.parquet");
        if parts.is_empty() {
            list("*.parquet")
        } else {
            parts
        }
    } else {
        glob::glob(&metadata.display().to_string())
            .map(|g| g.filter_map(Result::ok).filter(|p| p.is_file()).collect())
            .unwrap_or_default()
    };
    files.sort();
    if files.is_empty() {
        return Err(PlanError::NoInput(metadata.to_owned()));
    }
    Ok(files)
}

/// Why a row is invalid, or its normalised commit prefix.
pub fn validate(
    repo: Option<&str>,
    commit: Option<&str>,
    path: Option<&str>,
) -> Result<String, String> {
    let repo = repo.ok_or("repo is null")?;
    if repo.trim().is_empty() {
        return Err("repo is empty".into());
    }
    let commit = commit.ok_or("commit_id is null")?;
    if !(4..=40).contains(&commit.len()) {
        return Err(format!("commit_id {commit:?} must have 4 to 40 hex digits"));
    }
    if !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("commit_id {commit:?} is not hexadecimal"));
    }
    let path = path.ok_or("rel_path is null")?;
    if path.is_empty() {
        return Err("rel_path is empty".into());
    }
    if path.starts_with('/') {
        return Err(format!("rel_path {path:?} is absolute"));
    }
    for c in path.split('/') {
        match c {
            "" => return Err(format!("rel_path {path:?} has an empty component")),
            "." | ".." => return Err(format!("rel_path {path:?} has a {c:?} component")),
            _ => {}
        }
    }
    Ok(commit.to_ascii_lowercase())
}

/// Counts of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanCounts {
    /// Input rows.
    pub rows: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Distinct (repo, prefix) pairs.
    pub pairs: u64,
    /// Distinct paths.
    pub paths: u64,
}

/// Row accessor of a Utf8 or LargeUtf8 column.
type StrColumn<'a> = Box<dyn Fn(usize) -> Option<&'a str> + 'a>;

fn string_column<'a>(
    batch: &'a arrow::array::RecordBatch,
    path: &Path,
    name: &str,
) -> Result<StrColumn<'a>, PlanError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| PlanError::Column {
            path: path.to_owned(),
            column: name.into(),
            reason: "missing".into(),
        })?;
    match col.data_type() {
        DataType::Utf8 => {
            let a = col.as_string::<i32>();
            Ok(Box::new(move |i| (!a.is_null(i)).then(|| a.value(i))))
        }
        DataType::LargeUtf8 => {
            let a = col.as_string::<i64>();
            Ok(Box::new(move |i| (!a.is_null(i)).then(|| a.value(i))))
        }
        other => Err(PlanError::Column {
            path: path.to_owned(),
            column: name.into(),
            reason: format!("type {other}, expected Utf8 or LargeUtf8"),
        }),
    }
}

/// Runs the plan from `metadata` into the folder `out`.
pub fn run(metadata: &Path, out: &Path) -> Result<PlanCounts, PlanError> {
    let files = input_files(metadata)?;
    let mut pairs: HashMap<(String, String), u32> = HashMap::new();
    let mut paths: HashMap<String, u32> = HashMap::new();
    let (mut pair_col, mut path_col): (Vec<Option<u32>>, Vec<Option<u32>>) = (vec![], vec![]);
    let mut rejects: (Vec<u64>, Vec<String>, Vec<u64>, Vec<String>) = Default::default();
    let mut row_id = 0u64;
    let mut per_file = Vec::new();
    let mut pl = dsi_progress_logger::progress_logger!(item_name = "row", display_memory = true);
    use dsi_progress_logger::ProgressLog;
    pl.start("Planning metadata rows");
    for file in &files {
        let unreadable = |e: &dyn std::fmt::Display| PlanError::Unreadable {
            path: file.clone(),
            reason: e.to_string(),
        };
        let f = std::fs::File::open(file).map_err(|e| unreadable(&e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| unreadable(&e))?;
        let schema = builder.schema().clone();
        for name in COLUMNS {
            let field = schema
                .field_with_name(name)
                .map_err(|_| PlanError::Column {
                    path: file.clone(),
                    column: name.into(),
                    reason: "missing".into(),
                })?;
            if !matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
                return Err(PlanError::Column {
                    path: file.clone(),
                    column: name.into(),
                    reason: format!("type {}, expected Utf8 or LargeUtf8", field.data_type()),
                });
            }
        }
        let reader = builder.build().map_err(|e| unreadable(&e))?;
        let mut in_file = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| unreadable(&e))?;
            let repo = string_column(&batch, file, "repo")?;
            let commit = string_column(&batch, file, "commit_id")?;
            let rel = string_column(&batch, file, "rel_path")?;
            for i in 0..batch.num_rows() {
                match validate(repo(i), commit(i), rel(i)) {
                    Ok(prefix) => {
                        let n = pairs.len() as u32;
                        let key = (repo(i).unwrap_or_default().to_string(), prefix);
                        pair_col.push(Some(*pairs.entry(key).or_insert(n)));
                        let n = paths.len() as u32;
                        let p = rel(i).unwrap_or_default();
                        let id = match paths.get(p) {
                            Some(id) => *id,
                            None => {
                                paths.insert(p.to_string(), n);
                                n
                            }
                        };
                        path_col.push(Some(id));
                    }
                    Err(reason) => {
                        pair_col.push(None);
                        path_col.push(None);
                        rejects.0.push(row_id);
                        rejects.1.push(file.display().to_string());
                        rejects.2.push(in_file);
                        rejects.3.push(reason);
                    }
                }
                row_id += 1;
                in_file += 1;
                pl.light_update();
            }
        }
        per_file.push((file.display().to_string(), in_file));
    }
    pl.done();

    table::write(
        &out.join("rows.parquet"),
        vec![
            (
                "row_id",
                Arc::new(UInt64Array::from_iter_values(0..row_id)) as ArrayRef,
            ),
            ("pair_id", Arc::new(UInt32Array::from(pair_col))),
            ("path_id", Arc::new(UInt32Array::from(path_col))),
        ],
    )?;
    let mut pair_list: Vec<(&(String, String), &u32)> = pairs.iter().collect();
    pair_list.sort_by_key(|(_, id)| **id);
    table::write(
        &out.join("pairs.parquet"),
        vec![
            (
                "pair_id",
                Arc::new(UInt32Array::from_iter_values(
                    pair_list.iter().map(|(_, i)| **i),
                )) as ArrayRef,
            ),
            (
                "repo",
                Arc::new(StringArray::from_iter_values(
                    pair_list.iter().map(|(k, _)| k.0.as_str()),
                )),
            ),
            (
                "prefix",
                Arc::new(StringArray::from_iter_values(
                    pair_list.iter().map(|(k, _)| k.1.as_str()),
                )),
            ),
        ],
    )?;
    let mut path_list: Vec<(&String, &u32)> = paths.iter().collect();
    path_list.sort_by_key(|(_, id)| **id);
    table::write(
        &out.join("paths.parquet"),
        vec![
            (
                "path_id",
                Arc::new(UInt32Array::from_iter_values(
                    path_list.iter().map(|(_, i)| **i),
                )) as ArrayRef,
            ),
            (
                "path",
                Arc::new(StringArray::from_iter_values(
                    path_list.iter().map(|(p, _)| p.as_str()),
                )),
            ),
        ],
    )?;
    let rejected = rejects.0.len() as u64;
    table::write(
        &out.join("rejects.parquet"),
        vec![
            ("row_id", Arc::new(UInt64Array::from(rejects.0)) as ArrayRef),
            ("file", Arc::new(StringArray::from(rejects.1))),
            ("row", Arc::new(UInt64Array::from(rejects.2))),
            ("reason", Arc::new(StringArray::from(rejects.3))),
        ],
    )?;
    let inputs_path = out.join("inputs.json");
    std::fs::write(
        &inputs_path,
        serde_json::to_string_pretty(&per_file).expect("serialises"),
    )
    .map_err(|source| PlanError::Io {
        path: inputs_path.clone(),
        source,
    })?;
    Ok(PlanCounts {
        rows: row_id,
        rejected,
        pairs: pairs.len() as u64,
        paths: paths.len() as u64,
    })
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
    pub fn load(dir: &Path) -> Result<Self, PlanError> {
        let rows_path = dir.join("rows.parquet");
        let rows = table::read(&rows_path)?;
        let pairs_path = dir.join("pairs.parquet");
        let pairs = table::read(&pairs_path)?;
        let paths_path = dir.join("paths.parquet");
        let paths = table::read(&paths_path)?;
        let repos = table::strings(&pairs, &pairs_path, "repo")?;
        let prefixes = table::strings(&pairs, &pairs_path, "prefix")?;
        let inputs_path = dir.join("inputs.json");
        let text = std::fs::read_to_string(&inputs_path).map_err(|source| PlanError::Io {
            path: inputs_path.clone(),
            source,
        })?;
        Ok(Self {
            row_pair: table::u32s(&rows, &rows_path, "pair_id")?,
            row_path: table::u32s(&rows, &rows_path, "path_id")?,
            pairs: repos
                .into_iter()
                .zip(prefixes)
                .map(|(r, p)| (r.unwrap_or_default(), p.unwrap_or_default()))
                .collect(),
            paths: table::strings(&paths, &paths_path, "path")?
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
            files: serde_json::from_str(&text).map_err(|e| PlanError::Unreadable {
                path: inputs_path,
                reason: e.to_string(),
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_rows() {
        assert_eq!(
            validate(Some("a/b"), Some("ABCD"), Some("x/y")),
            Ok("abcd".into())
        );
        for (r, c, p) in [
            (None, Some("abcd"), Some("x")),
            (Some(""), Some("abcd"), Some("x")),
            (Some("a/b"), Some("abc"), Some("x")),
            (Some("a/b"), Some("abcg"), Some("x")),
            (Some("a/b"), Some(&"a".repeat(41)[..]), Some("x")),
            (Some("a/b"), Some("abcd"), Some("/x")),
            (Some("a/b"), Some("abcd"), Some("x//y")),
            (Some("a/b"), Some("abcd"), Some("x/")),
            (Some("a/b"), Some("abcd"), Some("./x")),
            (Some("a/b"), Some("abcd"), Some("x/../y")),
            (Some("a/b"), Some("abcd"), Some("")),
            (Some("a/b"), Some("abcd"), None),
        ] {
            assert!(validate(r, c, p).is_err(), "{r:?} {c:?} {p:?}");
        }
    }
}
