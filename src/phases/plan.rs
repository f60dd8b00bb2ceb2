//! Phase 1, **plan**: read the metadata once, validate every row, and gather what the later
//! phases need: the distinct `(repository, prefix)` pairs, the distinct prefixes, the
//! distinct path components.
//!
//! Input: Nemotron-style Parquet files with Utf8 or LargeUtf8 columns `repo`, `commit_id` and
//! `rel_path`; other columns are carried through to the outputs. All files must have the same
//! columns (names and types): a part with other columns is refused, naming both files, since
//! the outputs hold one schema. Every row has a stable id, its position in the input (files
//! in sorted order). Invalid rows are recorded with their file, row number in that file and
//! reason; they still appear in every output, with status `invalid`.
//!
//! A row's pair is keyed by its normalised slug ([`crate::model::slug`]) and its lower-case
//! prefix, so every spelling of a repository meets in one pair.
//!
//! Output: see [`crate::artifacts::plan`]. Nothing is kept per row: the walk reads the
//! metadata again and finds each row's pair by key.
//!
//! Memory: the rows of one Parquet batch, plus `sort_memory_mb` for the external sorts of
//! pair keys, prefixes and components (whatever the number of rows: runs spill to disk).

use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, Schema};
use dsi_progress_logger::ProgressLog;

use crate::artifacts::flat::FlatWriter;
use crate::artifacts::plan::{
    self as files, ComponentsWriter, Pair, PairIndex, PairsWriter, Prefix, Reject, RejectsWriter,
    COMPONENTS, PAIR_INDEX, PREFIXES,
};
use crate::config::Config;
use crate::model::slug::{key_hash, normalize_slug, pair_key};
use crate::model::{Counts, Phase, Shard};
use crate::sort::{Record, Sorter};
use crate::table::{self, TableError};

use super::{Context, Inputs, PhaseError};

/// Errors of the plan phase.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The configuration names no metadata.
    #[error("the configuration has no `metadata` (the input rows of `run`)")]
    NoMetadata,
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
    /// Two pair keys with one hash (never seen; 128-bit hashes).
    #[error("pairs {0:?} and {1:?} share a 128-bit key hash; report this")]
    HashCollision(String, String),
    /// An external sort failed.
    #[error(transparent)]
    Sort(#[from] crate::sort::SortError),
}

/// The required input columns.
pub const COLUMNS: [&str; 3] = ["repo", "commit_id", "rel_path"];

/// Lists the input files of `metadata`: the file itself, a folder's `part_*.parquet` (or all
/// its `*.parquet` when there is no `part_` file), or the matches of a glob; sorted.
pub fn input_files(metadata: &Path) -> Result<Vec<PathBuf>, PlanError> {
    if metadata.as_os_str().is_empty() {
        return Err(PlanError::NoMetadata);
    }
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
    if normalize_slug(repo).is_empty() {
        return Err(format!("repo {repo:?} names no repository"));
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

/// A valid row's pair: its normalised slug and prefix; or why the row is invalid.
pub fn row_pair(
    repo: Option<&str>,
    commit: Option<&str>,
    path: Option<&str>,
) -> Result<(String, String), String> {
    let prefix = validate(repo, commit, path)?;
    Ok((normalize_slug(repo.unwrap_or_default()), prefix))
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
    /// Distinct prefixes.
    pub prefixes: u64,
    /// Distinct path components.
    pub components: u64,
    /// Runs the external sorts spilled to disk.
    pub sort_runs: u64,
}

impl Counts for PlanCounts {
    fn add(&mut self, o: &Self) {
        self.rows += o.rows;
        self.rejected += o.rejected;
        self.pairs += o.pairs;
        self.prefixes += o.prefixes;
        self.components += o.components;
        self.sort_runs += o.sort_runs;
    }
}

/// What the plan reads.
#[derive(Debug, Clone)]
pub struct Input {
    /// The metadata files, in row-id order.
    pub files: Vec<PathBuf>,
}

/// A pair key with the depth of one of its paths, as sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyDepth {
    key: Vec<u8>,
    depth: u8,
}

impl Record for KeyDepth {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.depth);
        out.extend_from_slice(&self.key);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let (&depth, key) = b.split_first()?;
        Some(Self {
            key: key.to_vec(),
            depth,
        })
    }
    fn mem_size(&self) -> usize {
        self.key.capacity()
    }
}

impl Record for Prefix {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.digits);
        out.extend_from_slice(&self.bytes);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let (&digits, rest) = b.split_first()?;
        Some(Self {
            digits,
            bytes: rest.try_into().ok()?,
        })
    }
    fn mem_size(&self) -> usize {
        0
    }
}

impl Record for PairIndex {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash.to_le_bytes());
        out.extend_from_slice(&self.pair_id.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self {
            hash: u128::from_le_bytes(b.get(..16)?.try_into().ok()?),
            pair_id: u32::from_le_bytes(b.get(16..20)?.try_into().ok()?),
        })
    }
    fn mem_size(&self) -> usize {
        0
    }
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

/// The three sorts the read feeds.
struct Sorts {
    pairs: Sorter<KeyDepth>,
    prefixes: Sorter<Prefix>,
    components: Sorter<Vec<u8>>,
}

/// Reads every row once: rejects are written, valid rows feed the sorts. Returns the files
/// with their row counts.
fn read_rows(
    input: &Input,
    sorts: &mut Sorts,
    rejects: &mut RejectsWriter,
) -> Result<Vec<(String, u64)>, PhaseError> {
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
                match row_pair(repo[i], commit[i], rel[i]) {
                    Ok((slug, prefix)) => {
                        let path = rel[i].unwrap_or_default();
                        let depth = path.split('/').count().min(255) as u8;
                        if let Some(p) = Prefix::parse(&prefix) {
                            sorts.prefixes.push(p).map_err(PlanError::from)?;
                        }
                        sorts
                            .pairs
                            .push(KeyDepth {
                                key: pair_key(&slug, &prefix),
                                depth,
                            })
                            .map_err(PlanError::from)?;
                        for c in path.split('/') {
                            sorts
                                .components
                                .push(c.as_bytes().to_vec())
                                .map_err(PlanError::from)?;
                        }
                    }
                    Err(reason) => rejects.push(Reject {
                        row_id,
                        file: file.display().to_string(),
                        row: in_file,
                        reason,
                    })?,
                }
                row_id += 1;
                in_file += 1;
                pl.light_update();
            }
        }
        per_file.push((file.display().to_string(), in_file));
    }
    pl.done();
    Ok(per_file)
}

/// Numbers the distinct pairs (in key order), writes `pairs.parquet` and `pairs.flat`;
/// returns how many there are.
fn write_pairs(ctx: &Context, sorter: Sorter<KeyDepth>, budget: usize) -> Result<u64, PhaseError> {
    let mut writer = PairsWriter::create(ctx.out)?;
    let mut index =
        Sorter::new(&ctx.scratch.join("index"), budget, false).map_err(PlanError::from)?;
    let mut current: Option<KeyDepth> = None;
    let mut next_id = 0u32;
    let mut emit = |k: KeyDepth| -> Result<(), PhaseError> {
        let text = String::from_utf8_lossy(&k.key).into_owned();
        let (slug, prefix) = text.split_once('\0').unwrap_or((&text, ""));
        index
            .push(PairIndex {
                hash: key_hash(&k.key),
                pair_id: next_id,
            })
            .map_err(PlanError::from)?;
        writer.push(Pair {
            id: next_id,
            slug: slug.to_string(),
            prefix: prefix.to_string(),
            depth: k.depth,
        })?;
        next_id += 1;
        Ok(())
    };
    for kd in sorter.finish().map_err(PlanError::from)? {
        let kd = kd.map_err(PlanError::from)?;
        match &mut current {
            // Records of one key come together; the last has the largest depth.
            Some(c) if c.key == kd.key => c.depth = c.depth.max(kd.depth),
            _ => {
                if let Some(done) = current.replace(kd) {
                    emit(done)?;
                }
            }
        }
    }
    if let Some(done) = current.take() {
        emit(done)?;
    }
    writer.finish()?;
    let mut flat = FlatWriter::create(&ctx.out.join(PAIR_INDEX))?;
    let mut last: Option<PairIndex> = None;
    for r in index.finish().map_err(PlanError::from)? {
        let r = r.map_err(PlanError::from)?;
        if let Some(l) = last.filter(|l| l.hash == r.hash) {
            return Err(
                PlanError::HashCollision(l.pair_id.to_string(), r.pair_id.to_string()).into(),
            );
        }
        flat.push(&r)?;
        last = Some(r);
    }
    flat.finish()?;
    Ok(next_id as u64)
}

/// Runs the plan into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<PlanCounts, PhaseError> {
    let budget = (ctx.config.options.sort_memory_mb << 20) / 3;
    let scratch = ctx.scratch;
    let mut sorts = Sorts {
        pairs: Sorter::new(&scratch.join("pairs"), budget, false).map_err(PlanError::from)?,
        prefixes: Sorter::new(&scratch.join("prefixes"), budget, true).map_err(PlanError::from)?,
        components: Sorter::new(&scratch.join("components"), budget, true)
            .map_err(PlanError::from)?,
    };
    let mut rejects = RejectsWriter::create(ctx.out)?;
    let per_file = read_rows(&input, &mut sorts, &mut rejects)?;
    let mut counts = PlanCounts {
        rows: per_file.iter().map(|f| f.1).sum(),
        rejected: rejects.finish()?,
        sort_runs: (sorts.pairs.runs() + sorts.prefixes.runs() + sorts.components.runs()) as u64,
        ..Default::default()
    };
    files::write_inputs(ctx.out, &per_file)?;
    let mut prefixes = FlatWriter::create(&ctx.out.join(PREFIXES))?;
    for p in sorts.prefixes.finish().map_err(PlanError::from)? {
        prefixes.push(&p.map_err(PlanError::from)?)?;
    }
    counts.prefixes = prefixes.finish()?;
    let mut names = ComponentsWriter::create(&ctx.out.join(COMPONENTS))?;
    for c in sorts.components.finish().map_err(PlanError::from)? {
        names.push(String::from_utf8_lossy(&c.map_err(PlanError::from)?).into_owned())?;
    }
    counts.components = names.finish()?;
    counts.pairs = write_pairs(ctx, sorts.pairs, budget * 3)?;
    Ok(counts)
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
        run(ctx, Input { files })
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
            (Some("/"), Some("abcd"), Some("x")),
            (Some(".git"), Some("abcd"), Some("x")),
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
        assert_eq!(
            row_pair(Some(" A/B.git "), Some("ABCD"), Some("x")),
            Ok(("a/b".into(), "abcd".into()))
        );
    }
}
