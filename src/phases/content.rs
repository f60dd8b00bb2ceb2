//! Phase 8, **content join**: sha1_git -> sha1, length and archive status, from one pass
//! over the ORC `content` and `skipped_content` tables.
//!
//! SWH's blob store is keyed by plain sha1, which the graph does not have; the export tables
//! do. Only the needed columns are read (`sha1`, `sha1_git`, `length`, and `reason` for
//! skipped contents), file by file in name order (the unit shards split on), and kept only
//! when their sha1_git is one the resolved rows need.
//!
//! Output: [`crate::artifacts::join`]. Shards: ORC files; the merge unites them, a visible
//! copy winning over a skipped one.
//!
//! Memory: the set of needed ids (20 bytes each) and their answers.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use orc_rust::projection::ProjectionMask;
use orc_rust::ArrowReaderBuilder;

use crate::artifacts::join::{self, insert, JoinMap, Known, FOUND, JOIN};
use crate::artifacts::resolved;
use crate::config::Config;
use crate::model::{ContentStatus, Counts, Phase, Sha1, Sha1Git, Shard, StatusCounts};
use crate::table;

use super::{Context, Inputs, PhaseError};

/// Errors of the content join.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// An ORC table file that cannot be read.
    #[error("ORC table {path}")]
    Orc {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The configuration names no ORC folder.
    #[error(
        "the content join needs `orc = \"<folder of the export tables>\"` in the configuration"
    )]
    NoOrc,
}

/// The ORC files of `table` under `orc_dir`, sorted.
pub fn table_files(orc_dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(orc_dir.join(table))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "orc"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Every ORC file of `content` then `skipped_content` under `orc_dir`, with whether it is
/// of the skipped table: the list shards split.
pub fn all_files(orc_dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut files: Vec<(PathBuf, bool)> = table_files(orc_dir, "content")
        .into_iter()
        .map(|f| (f, false))
        .collect();
    files.extend(
        table_files(orc_dir, "skipped_content")
            .into_iter()
            .map(|f| (f, true)),
    );
    files
}

/// Reads one ORC file of `content` or `skipped_content`, recording the needed rows.
pub fn scan_file(
    path: &Path,
    skipped: bool,
    needed: &HashSet<Sha1Git>,
    found: &mut JoinMap,
) -> Result<u64, ContentError> {
    let err = |r: &dyn std::fmt::Display| ContentError::Orc {
        path: path.to_owned(),
        source: r.to_string().into(),
    };
    let file = File::open(path).map_err(|e| err(&e))?;
    let builder = ArrowReaderBuilder::try_new(file).map_err(|e| err(&e))?;
    let mut cols = vec!["sha1", "sha1_git", "length"];
    if skipped {
        cols.push("reason");
    }
    let mask = ProjectionMask::named_roots(builder.file_metadata().root_data_type(), &cols);
    let reader = builder.with_projection(mask).build();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| err(&e))?;
        rows += batch.num_rows() as u64;
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(table::str_values)
                .ok_or_else(|| err(&format!("no Utf8 {name} column")))
        };
        let sha1_git = text("sha1_git")?;
        let sha1 = text("sha1")?;
        let reason = if skipped { Some(text("reason")?) } else { None };
        let length = batch
            .column_by_name("length")
            .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
            .ok_or_else(|| err(&"no Int64 length column"))?;
        for i in 0..batch.num_rows() {
            let Some(Ok(id)) = sha1_git[i].map(Sha1Git::from_hex) else {
                continue;
            };
            if !needed.contains(&id) {
                continue;
            }
            let sha1 = match sha1[i].map(Sha1::from_hex) {
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => return Err(err(&format!("row {i}: sha1 {e}"))),
                None => None,
            };
            let known = Known {
                sha1,
                length: (!length.is_null(i)).then(|| length.value(i).max(0) as u64),
                status: if skipped {
                    ContentStatus::Skipped
                } else {
                    ContentStatus::Visible
                },
                reason: reason.as_ref().and_then(|r| r[i].map(str::to_string)),
            };
            insert(found, id, known);
        }
    }
    Ok(rows)
}

/// The content ids the resolved rows need (rows resolved to a file or a link), sorted.
pub fn needed_contents(walk_dir: &Path) -> Result<Vec<Sha1Git>, PhaseError> {
    let mut ids = Vec::new();
    for f in resolved::files(walk_dir)? {
        for b in resolved::batches(&f)? {
            let b = b?;
            for (st, id) in b.status.iter().zip(&b.sha1_git) {
                if let (true, Some(id)) = (st.has_content(), id) {
                    ids.push(*id);
                }
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Counts of the content join.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ContentCounts {
    /// ORC files read.
    pub orc_files: u64,
    /// ORC rows read.
    pub orc_rows_read: u64,
    /// Microseconds of the passes.
    pub pass_micros: u64,
    /// Chunks (ORC files) of the shard(s).
    pub chunks: u64,
    /// Chunks reused from an interrupted run.
    pub chunks_reused: u64,
    /// Needed contents found in the shard's files (shards only).
    pub found: u64,
    /// Contents the resolved rows need (the merge).
    pub needed: u64,
    /// Needed contents per status (the merge).
    #[serde(flatten)]
    pub status: StatusCounts<ContentStatus>,
}

impl Counts for ContentCounts {
    fn add(&mut self, o: &Self) {
        self.orc_files += o.orc_files;
        self.orc_rows_read += o.orc_rows_read;
        self.pass_micros += o.pass_micros;
        self.chunks += o.chunks;
        self.chunks_reused += o.chunks_reused;
        self.found += o.found;
        self.needed += o.needed;
        self.status.merge(&o.status);
    }
}

/// What one shard of the content join reads.
pub struct Input {
    /// The contents the resolved rows need.
    pub needed: HashSet<Sha1Git>,
    /// The shard's ORC files, with whether each is of `skipped_content`.
    pub files: Vec<(PathBuf, bool)>,
}

/// Joins the shard's ORC files, one chunk per file, into `ctx.out/found.parquet`.
pub fn run(ctx: &Context, input: Input) -> Result<ContentCounts, PhaseError> {
    let (parts, mut counts, stats) = ctx.chunks.run(input.files.len(), &[FOUND], |i, tmp| {
        let started = std::time::Instant::now();
        let (path, skipped) = &input.files[i];
        let mut found = JoinMap::new();
        let rows = scan_file(path, *skipped, &input.needed, &mut found)?;
        let mut ids: Vec<Sha1Git> = found.keys().copied().collect();
        ids.sort_unstable();
        join::write(&tmp.join(FOUND), &ids, &found)?;
        Ok(ContentCounts {
            orc_files: 1,
            orc_rows_read: rows,
            pass_micros: started.elapsed().as_micros() as u64,
            ..Default::default()
        })
    })?;
    let mut found = JoinMap::new();
    for f in &parts[0] {
        for (id, k) in join::load(f)? {
            insert(&mut found, id, k);
        }
    }
    let mut ids: Vec<Sha1Git> = found.keys().copied().collect();
    ids.sort_unstable();
    join::write(&ctx.out.join(FOUND), &ids, &found)?;
    counts.chunks = stats.chunks;
    counts.chunks_reused = stats.reused;
    counts.found = ids.len() as u64;
    Ok(counts)
}

fn orc(config: &Config) -> Result<&Path, ContentError> {
    config.orc.as_deref().ok_or(ContentError::NoOrc)
}

/// The shard's ORC files.
fn shard_files(config: &Config, shard: Shard) -> Result<Vec<(PathBuf, bool)>, ContentError> {
    let files = all_files(orc(config)?);
    Ok(files[shard.range(files.len())].to_vec())
}

/// The content join as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Content;
    type Counts = ContentCounts;

    /// Only the shard's own ORC files, so that fixing one file redoes one shard.
    fn inputs(config: &Config, shard: Shard) -> Result<Inputs, PhaseError> {
        let mut inputs = Inputs::new();
        for (f, _) in shard_files(config, shard)? {
            inputs.insert(format!("orc:{}", f.display()), super::file_fingerprint(&f)?);
        }
        Ok(inputs)
    }

    fn run(ctx: &Context) -> Result<ContentCounts, PhaseError> {
        let needed = needed_contents(&ctx.upstream(Phase::Walk))?
            .into_iter()
            .collect();
        let files = shard_files(ctx.config, ctx.shard)?;
        run(ctx, Input { needed, files })
    }

    fn merge(
        ctx: &Context,
        shards: &[PathBuf],
        summed: ContentCounts,
    ) -> Result<ContentCounts, PhaseError> {
        let needed = needed_contents(&ctx.upstream(Phase::Walk))?;
        let mut found = JoinMap::new();
        for d in shards {
            for (id, k) in join::load(&d.join(FOUND))? {
                insert(&mut found, id, k);
            }
        }
        let status = join::write(&ctx.out.join(JOIN), &needed, &found)?;
        Ok(ContentCounts {
            found: 0,
            needed: needed.len() as u64,
            status,
            ..summed
        })
    }
}
