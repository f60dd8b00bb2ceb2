//! The `content` phase of a hydration: every row's id read as `[hydrate] id_kind` and, for
//! git ids, joined to its sha1; the distinct sha1s, sorted, into `content/ids.flat` (what the
//! fetch shards read) and the join of the git ids into `content/join.parquet` (what the
//! export reads).
//!
//! Git ids (`sha1_git`, `swhid`) are joined through SWH's digestmap (a lookup per distinct
//! id) or, without one, the ORC `content` and `skipped_content` tables of `orc` (one pass over
//! the metadata for the distinct ids, then every table file read in parallel). Memory: each
//! distinct git id and its answer (about 100 bytes), as the content join of a run holds them;
//! the sha1s go through an external sort (the sort budget).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use rayon::prelude::*;

use crate::artifacts::flat::FlatWriter;
use crate::artifacts::ids::IDS;
use crate::artifacts::join::{self, JoinMap, Known, JOIN};
use crate::config::{Config, IdKind};
use crate::digestmap::DigestMap;
use crate::model::{
    ContentStatus, Counts, IdHash, Phase, RowStatus, Sha1, Sha1Git, Shard, StatusCounts,
};
use crate::phases::{Context, Inputs, PhaseError};
use crate::sort::Sorter;
use crate::table::{self, TableError};

use super::HydrateError;

/// Counts of the ids phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct IdsCounts {
    /// Input rows.
    pub rows: u64,
    /// Distinct blobs the rows name.
    pub blobs: u64,
    /// Distinct git ids joined (0 for sha1 ids).
    pub git_ids: u64,
    /// Rows without a blob, per status (`invalid`, `content_not_found`, `skipped`).
    #[serde(flatten)]
    pub status: StatusCounts<RowStatus>,
}

impl Counts for IdsCounts {
    fn add(&mut self, o: &Self) {
        self.rows += o.rows;
        self.blobs += o.blobs;
        self.git_ids += o.git_ids;
        self.status.merge(&o.status);
    }
}

/// How ids become sha1s.
pub(super) struct Ids {
    kind: IdKind,
    join: Option<JoinMap>,
}

/// The git id `id` names as a `kind` id, or `None` when it is not one.
fn git_id(kind: IdKind, id: &str) -> Option<Sha1Git> {
    let hex = match kind {
        IdKind::Sha1 => return None,
        IdKind::Sha1Git => id,
        IdKind::Swhid => id.strip_prefix("swh:1:cnt:")?,
    };
    Sha1Git::from_hex(hex).ok()
}

impl Ids {
    /// Ids of `config`'s kind, git ids answered by `join`.
    pub(super) fn new(config: &Config, join: Option<JoinMap>) -> Self {
        Self {
            kind: config.hydrate.id_kind,
            join,
        }
    }

    /// The sha1 of an id, or the row status saying why there is none.
    pub(super) fn sha1(&self, id: Option<&str>) -> Result<Sha1, RowStatus> {
        let Some(id) = id.map(str::trim) else {
            return Err(RowStatus::Invalid);
        };
        if self.kind == IdKind::Sha1 {
            return Sha1::from_hex(id).map_err(|_| RowStatus::Invalid);
        }
        let git = git_id(self.kind, id).ok_or(RowStatus::Invalid)?;
        match self.join.as_ref().and_then(|m| m.get(&git)) {
            Some(k) if k.status == ContentStatus::Skipped => Err(RowStatus::Skipped),
            Some(k) => k.sha1.ok_or(RowStatus::ContentNotFound),
            None => Err(RowStatus::ContentNotFound),
        }
    }
}

/// The join of the git ids the metadata names, from the digestmap or the ORC tables.
fn join_git_ids(
    config: &Config,
    files: &[PathBuf],
) -> Result<(JoinMap, Vec<Sha1Git>), HydrateError> {
    let kind = config.hydrate.id_kind;
    let mut needed: HashSet<Sha1Git, IdHash> = HashSet::default();
    for_each_batch(config, files, |file, b| {
        let col = strs(b, file, &config.hydrate.id_column)?.unwrap_or_default();
        needed.extend(
            col.into_iter()
                .flatten()
                .filter_map(|id| git_id(kind, id.trim())),
        );
        Ok(())
    })?;
    let mut sorted: Vec<Sha1Git> = needed.iter().copied().collect();
    sorted.sort();
    let joined = join_ids(config, &needed)?;
    Ok((joined, sorted))
}

/// The answers for the git ids `needed`: from the digestmap (a lookup per id) when there is
/// one, else from the ORC tables.
fn join_ids(config: &Config, needed: &HashSet<Sha1Git, IdHash>) -> Result<JoinMap, HydrateError> {
    match (&config.digestmap, &config.orc) {
        (Some(dir), _) => {
            let map = DigestMap::open(dir)?;
            let mut joined = JoinMap::default();
            for id in needed {
                if let Some(sha1) = map.sha1(id)? {
                    let k = Known {
                        sha1: Some(sha1),
                        length: None,
                        status: ContentStatus::Visible,
                        reason: None,
                    };
                    joined.insert(*id, k);
                }
            }
            Ok(joined)
        }
        (None, Some(orc)) => orc_join(orc, needed),
        (None, None) => Err(HydrateError::Config(format!(
            "id_kind {} is joined to sha1 through SWH's digestmap or the ORC content tables: \
             set `digestmap = \"<folder>\"` or `orc = \"<folder>\"` in the configuration",
            config.hydrate.id_kind.as_str()
        ))),
    }
}

/// The ORC tables' answers for `needed`: every table file read in parallel.
fn orc_join(orc: &Path, needed: &HashSet<Sha1Git, IdHash>) -> Result<JoinMap, HydrateError> {
    let tables = crate::phases::content::all_files(orc);
    if tables.is_empty() {
        return Err(HydrateError::Config(format!(
            "{}: no ORC content tables (content/*.orc) to join the ids with",
            orc.display()
        )));
    }
    let maps: Vec<JoinMap> = tables
        .par_iter()
        .map(|(path, skipped)| {
            let mut found = JoinMap::default();
            crate::phases::content::scan_file(path, *skipped, needed, &mut found)
                .map_err(|e| HydrateError::Phase(e.into()))?;
            Ok(found)
        })
        .collect::<Result<_, HydrateError>>()?;
    let mut joined = JoinMap::default();
    for m in maps {
        for (id, k) in m {
            join::insert(&mut joined, id, k);
        }
    }
    Ok(joined)
}

/// A string column of `b` by name, borrowed (`None` when absent).
pub(super) fn strs<'a>(
    b: &'a RecordBatch,
    file: &Path,
    name: &str,
) -> Result<Option<Vec<Option<&'a str>>>, TableError> {
    match b.column_by_name(name) {
        Some(_) => table::strs(b, file, name).map(Some),
        None => Ok(None),
    }
}

/// Every metadata batch in order, with its file; the id column must be in every file.
pub(super) fn for_each_batch(
    config: &Config,
    files: &[PathBuf],
    mut each: impl FnMut(&Path, &RecordBatch) -> Result<(), HydrateError>,
) -> Result<(), HydrateError> {
    let id = &config.hydrate.id_column;
    for file in files {
        let (schema, batches) = table::open(file)?;
        if schema.field_with_name(id).is_err() {
            return Err(TableError::column(
                file,
                id,
                "is not a column of this file (`[hydrate] id_column`)",
            )
            .into());
        }
        for b in batches {
            each(file, &b?)?;
        }
    }
    Ok(())
}

/// The metadata files of `config`.
pub(super) fn metadata_files(config: &Config) -> Result<Vec<PathBuf>, PhaseError> {
    Ok(crate::phases::plan::input_files(&config.metadata)?)
}

/// Fingerprints of the metadata files, and `options` under `hydrate_options` (the options
/// of `[hydrate]` the phase reads).
pub(super) fn metadata_inputs(
    config: &Config,
    options: serde_json::Value,
) -> Result<Inputs, PhaseError> {
    let mut inputs = Inputs::new();
    for f in metadata_files(config)? {
        inputs.insert(
            format!("metadata:{}", f.display()),
            crate::phases::file_fingerprint(&f)?,
        );
    }
    inputs.insert("hydrate_options".into(), options.to_string());
    Ok(inputs)
}

/// Runs the ids phase into `ctx.out`.
pub fn run(ctx: &Context) -> Result<IdsCounts, HydrateError> {
    let config = ctx.config;
    let files = metadata_files(config)?;
    let mut counts = IdsCounts::default();
    let join = match config.hydrate.id_kind {
        IdKind::Sha1 => None,
        _ => {
            let (joined, ids) = join_git_ids(config, &files)?;
            counts.git_ids = ids.len() as u64;
            join::write(&ctx.out.join(JOIN), &ids, &joined)?;
            Some(joined)
        }
    };
    let ids = Ids::new(config, join);
    let budget = config.options.sort_memory_mb << 20;
    let mut sorter = Sorter::new(&ctx.scratch.join("ids"), budget, true)?;
    for_each_batch(config, &files, |file, b| {
        counts.rows += b.num_rows() as u64;
        let col = strs(b, file, &config.hydrate.id_column)?.unwrap_or_default();
        for id in col {
            match ids.sha1(id) {
                Ok(sha1) => sorter.push(sha1.as_bytes().to_vec())?,
                Err(st) => counts.status.bump(st),
            }
        }
        Ok(())
    })?;
    let path = ctx.out.join(IDS);
    let mut out = FlatWriter::<Sha1>::create(&path).map_err(PhaseError::from)?;
    for sha1 in sorter.finish()? {
        let sha1 = sha1?;
        if let Ok(bytes) = <[u8; 20]>::try_from(sha1.as_slice()) {
            out.push(&Sha1(bytes)).map_err(PhaseError::from)?;
            counts.blobs += 1;
        }
    }
    out.finish().map_err(PhaseError::from)?;
    Ok(counts)
}

/// The ids as the export reads them: through the join the ids phase wrote.
pub(super) fn load(ctx: &Context) -> Result<Ids, PhaseError> {
    let join = match ctx.config.hydrate.id_kind {
        IdKind::Sha1 => None,
        _ => Some(join::load(&ctx.upstream(Phase::Content).join(JOIN))?),
    };
    Ok(Ids::new(ctx.config, join))
}

/// The ids phase of a hydration as the pipeline drives it.
pub struct Step;

impl crate::phases::Step for Step {
    const PHASE: Phase = Phase::Content;
    type Counts = IdsCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        let h = &config.hydrate;
        let options = serde_json::json!({"id_column": h.id_column, "id_kind": h.id_kind});
        let mut inputs = metadata_inputs(config, options)?;
        if config.hydrate.id_kind != IdKind::Sha1 {
            // What the join reads: the digestmap when there is one, else the ORC tables.
            match (&config.digestmap, &config.orc) {
                (Some(dir), _) => {
                    for name in crate::digestmap::FILES {
                        let f = dir.join(name);
                        inputs.insert(
                            format!("digestmap:{name}"),
                            crate::phases::file_fingerprint(&f)?,
                        );
                    }
                }
                (None, Some(orc)) => {
                    for (f, _) in crate::phases::content::all_files(orc) {
                        inputs.insert(
                            format!("orc:{}", f.display()),
                            crate::phases::file_fingerprint(&f)?,
                        );
                    }
                }
                (None, None) => {}
            }
        }
        Ok(inputs)
    }

    fn run(ctx: &Context) -> Result<IdsCounts, PhaseError> {
        Ok(run(ctx)?)
    }
}

/// The sha1s of the first `n` rows of the metadata with a valid, known id, in row order (the
/// benchmark fetches them one at a time, as The Stack v2's own loop does). Git ids are joined
/// as the ids phase joins them, for these rows only.
pub fn first_sha1s(config: &Config, n: usize) -> Result<Vec<Sha1>, HydrateError> {
    let files = metadata_files(config)?;
    let kind = config.hydrate.id_kind;
    let mut first: Vec<String> = Vec::new();
    'files: for file in &files {
        let (_, batches) = table::open(file)?;
        for b in batches {
            let b = b?;
            let col = strs(&b, file, &config.hydrate.id_column)?.unwrap_or_default();
            for id in col.into_iter().flatten() {
                if first.len() >= n {
                    break 'files;
                }
                first.push(id.to_string());
            }
        }
    }
    let join = match kind {
        IdKind::Sha1 => None,
        _ => {
            let needed: HashSet<Sha1Git, IdHash> = first
                .iter()
                .filter_map(|id| git_id(kind, id.trim()))
                .collect();
            Some(join_ids(config, &needed)?)
        }
    };
    let ids = Ids::new(config, join);
    Ok(first
        .iter()
        .filter_map(|id| ids.sha1(Some(id)).ok())
        .collect())
}
