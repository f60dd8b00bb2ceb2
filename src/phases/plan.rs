//! Phase 1, **plan**: read the metadata, validate every row, group rows by (repo, prefix).
//!
//! Input: Nemotron-style Parquet files with Utf8 or LargeUtf8 columns `repo`, `commit_id` and
//! `rel_path`; other columns are carried through to the outputs. All files must have the same
//! columns (names and types): a part with other columns is refused, naming both files, since
//! the outputs hold one schema. Every row gets a stable id, its position in the input (files
//! in sorted order). Invalid rows are recorded with their file, row number in that file and
//! reason; they still appear in every output, with status `invalid`.
//!
//! Output: see [`crate::artifacts::plan`].
//!
//! Memory: a hash map entry per distinct (repo, prefix) pair and per distinct path, plus
//! 8 bytes per row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, Schema};
use dsi_progress_logger::ProgressLog;

use crate::artifacts::plan::{self as files, Reject};
use crate::config::Config;
use crate::model::{Counts, Phase, Shard};
use crate::table::{self, TableError};

use super::{Context, Inputs, PhaseError};

/// Errors of the plan phase.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No input file matched.
    #[error("metadata {0}: no Parquet file found")]
    NoInput(PathBuf),
    /// An input file that is not a readable Parquet file.
    #[error("metadata file {path}: not a readable Parquet file")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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
    /// Two input files with different columns.
    #[error(
        "metadata files {first} and {other} have different columns ({detail}); every part must \
         have the same columns and types"
    )]
    Schemas {
        /// The first file.
        first: PathBuf,
        /// The file that differs from it.
        other: PathBuf,
        /// How they differ.
        detail: String,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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

impl Counts for PlanCounts {
    fn add(&mut self, o: &Self) {
        self.rows += o.rows;
        self.rejected += o.rejected;
        self.pairs += o.pairs;
        self.paths += o.paths;
    }
}

/// What the plan reads.
#[derive(Debug, Clone)]
pub struct Input {
    /// The metadata files, in row-id order.
    pub files: Vec<PathBuf>,
}

/// What the plan produced (its files are in the context's output folder).
#[derive(Debug, Clone)]
pub struct Output {
    /// Its counts.
    pub counts: PlanCounts,
}

/// Checks the required columns' presence and types.
fn check_required(file: &Path, schema: &Schema) -> Result<(), PlanError> {
    for name in COLUMNS {
        let field = schema
            .field_with_name(name)
            .map_err(|_| PlanError::Column {
                path: file.to_owned(),
                column: name.into(),
                reason: "missing".into(),
            })?;
        if !matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
            return Err(PlanError::Column {
                path: file.to_owned(),
                column: name.into(),
                reason: format!("type {}, expected Utf8 or LargeUtf8", field.data_type()),
            });
        }
    }
    Ok(())
}

/// How two schemas differ (names and types, in order), or `None`.
fn schema_difference(a: &Schema, b: &Schema) -> Option<String> {
    let cols = |s: &Schema| -> Vec<(String, DataType)> {
        s.fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    let (ca, cb) = (cols(a), cols(b));
    if ca == cb {
        return None;
    }
    let show = |c: &[(String, DataType)]| {
        c.iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!("[{}] vs [{}]", show(&ca), show(&cb)))
}

/// Writes the plan's files into `out`, pairs and paths in id order.
fn write_outputs(
    out: &Path,
    pair_col: Vec<Option<u32>>,
    path_col: Vec<Option<u32>>,
    pairs: &HashMap<(String, String), u32>,
    paths: &HashMap<String, u32>,
    rejects: &[Reject],
    per_file: &[(String, u64)],
) -> Result<(), TableError> {
    files::write_rows(out, pair_col, path_col)?;
    let mut pair_list: Vec<(&(String, String), &u32)> = pairs.iter().collect();
    pair_list.sort_by_key(|(_, id)| **id);
    let pair_refs: Vec<(&str, &str)> = pair_list
        .iter()
        .map(|(k, _)| (k.0.as_str(), k.1.as_str()))
        .collect();
    files::write_pairs(out, &pair_refs)?;
    let mut path_list: Vec<(&String, &u32)> = paths.iter().collect();
    path_list.sort_by_key(|(_, id)| **id);
    let path_refs: Vec<&str> = path_list.iter().map(|(p, _)| p.as_str()).collect();
    files::write_paths(out, &path_refs)?;
    files::write_rejects(out, rejects)?;
    files::write_inputs(out, per_file)
}

/// Runs the plan into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<Output, PhaseError> {
    let mut pairs: HashMap<(String, String), u32> = HashMap::new();
    let mut paths: HashMap<String, u32> = HashMap::new();
    let (mut pair_col, mut path_col): (Vec<Option<u32>>, Vec<Option<u32>>) = (vec![], vec![]);
    let mut rejects: Vec<Reject> = Vec::new();
    let mut row_id = 0u64;
    let mut per_file = Vec::new();
    let mut first_schema: Option<(PathBuf, Schema)> = None;
    let mut pl = dsi_progress_logger::progress_logger!(item_name = "row", display_memory = true);
    pl.start("Planning metadata rows");
    for file in &input.files {
        let unreadable = |e: TableError| PlanError::Unreadable {
            path: file.clone(),
            source: e.into_cause(),
        };
        let (schema, batches) = table::open(file).map_err(unreadable)?;
        check_required(file, &schema)?;
        match &first_schema {
            None => first_schema = Some((file.clone(), schema.as_ref().clone())),
            Some((first, s)) => {
                if let Some(detail) = schema_difference(s, &schema) {
                    return Err(PlanError::Schemas {
                        first: first.clone(),
                        other: file.clone(),
                        detail,
                    }
                    .into());
                }
            }
        }
        let mut in_file = 0u64;
        for batch in batches {
            let batch = batch.map_err(unreadable)?;
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(table::str_values)
                    .ok_or_else(|| PlanError::Column {
                        path: file.clone(),
                        column: name.into(),
                        reason: "missing or not Utf8 in a row group".into(),
                    })
            };
            let (repo, commit, rel) = (col("repo")?, col("commit_id")?, col("rel_path")?);
            for i in 0..batch.num_rows() {
                match validate(repo[i], commit[i], rel[i]) {
                    Ok(prefix) => {
                        let n = pairs.len() as u32;
                        let key = (repo[i].unwrap_or_default().to_string(), prefix);
                        pair_col.push(Some(*pairs.entry(key).or_insert(n)));
                        let p = rel[i].unwrap_or_default();
                        let id = match paths.get(p) {
                            Some(id) => *id,
                            None => {
                                let n = paths.len() as u32;
                                paths.insert(p.to_string(), n);
                                n
                            }
                        };
                        path_col.push(Some(id));
                    }
                    Err(reason) => {
                        pair_col.push(None);
                        path_col.push(None);
                        rejects.push(Reject {
                            row_id,
                            file: file.display().to_string(),
                            row: in_file,
                            reason,
                        });
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

    write_outputs(
        ctx.out, pair_col, path_col, &pairs, &paths, &rejects, &per_file,
    )?;
    Ok(Output {
        counts: PlanCounts {
            rows: row_id,
            rejected: rejects.len() as u64,
            pairs: pairs.len() as u64,
            paths: paths.len() as u64,
        },
    })
}

/// The plan as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Plan;
    type Counts = PlanCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        let mut inputs = Inputs::new();
        for f in input_files(&config.metadata)? {
            inputs.insert(
                format!("metadata:{}", f.display()),
                super::file_fingerprint(&f)?,
            );
        }
        Ok(inputs)
    }

    fn run(ctx: &Context) -> Result<PlanCounts, PhaseError> {
        let files = input_files(&ctx.config.metadata)?;
        Ok(run(ctx, Input { files })?.counts)
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
