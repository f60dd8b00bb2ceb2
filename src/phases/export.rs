//! Phase 10, **export**: the dataset, one row per input row, with the file contents.
//!
//! Each resolved row is completed with what the content join and the fetch found: `sha1`,
//! `size`, `language` (from the file name), `content` (UTF-8 text), The Stack's quality
//! columns (`avg_line_length`, `max_line_length`, `alphanum_fraction`) and, when
//! `include_binary` is set, `content_bytes`. The final `status` is the walk's, refined for
//! rows that named a file: `ok`, `symlink`, `binary` (not UTF-8: no `content`), `skipped`
//! (SWH did not archive it), `content_not_found`, `blob_missing`, `corrupt_blob` or
//! `fetch_failed`; the walk's own status stays in `resolution_status`.
//!
//! Bytes are verified where they are read: every blob read back from the store must hash to
//! its sha1. A damaged one gives its rows `corrupt_blob`, never wrong bytes, and is recorded
//! so that the next run fetches it again; the export goes on.
//!
//! Output: [`crate::artifacts::export`]. With `only_ok`, only `ok` rows are written.
//!
//! Memory: one input batch and its contents, plus the join and store indexes.

use arrow::array::{ArrayRef, BooleanArray};

use crate::artifacts::export::{self as parts, Added, PartWriter};
use crate::artifacts::join::{self, JoinMap, JOIN};
use crate::artifacts::resolved::{self, ResolvedBatch};
use crate::config::{Config, ExportOptions};
use crate::model::{
    BlobStatus, ContentStatus, Counts, Phase, RowStatus, Sha1Git, Shard, StatusCounts,
};
use crate::store::pack::ReadError;
use crate::store::BlobStores;

use super::language::{language, quality};
use super::{Context, Inputs, PhaseError};

/// The status of a row once its content is known, and its bytes when it has them.
pub fn content_status(
    resolution: RowStatus,
    sha1_git: Option<Sha1Git>,
    join: &JoinMap,
    store: &BlobStores,
) -> Result<(RowStatus, Option<Vec<u8>>), PhaseError> {
    if !resolution.has_content() {
        return Ok((resolution, None));
    }
    let Some(known) = sha1_git.and_then(|s| join.get(&s)) else {
        return Ok((RowStatus::ContentNotFound, None));
    };
    match known.status {
        ContentStatus::Skipped => return Ok((RowStatus::Skipped, None)),
        ContentStatus::Visible => {}
        ContentStatus::ContentNotFound => return Ok((RowStatus::ContentNotFound, None)),
    }
    let Some((sha1, at)) = known.sha1.and_then(|s| Some((s, store.get(&s)?))) else {
        return Ok((RowStatus::FetchFailed, None));
    };
    match at.1.status {
        BlobStatus::Ok => match store.read_verified(&sha1, at) {
            Ok(bytes) => Ok((resolution, Some(bytes))),
            Err(ReadError::Damaged(_)) => Ok((RowStatus::CorruptBlob, None)),
            Err(ReadError::Io(e)) => Err(e.into()),
        },
        other => Ok((other.row_status(), None)),
    }
}

/// Counts of the export.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ExportCounts {
    /// Parquet parts written.
    pub files: u64,
    /// Rows written per final status.
    #[serde(flatten)]
    pub status: StatusCounts<RowStatus>,
}

impl Counts for ExportCounts {
    fn add(&mut self, o: &Self) {
        self.files += o.files;
        self.status.merge(&o.status);
    }
}

/// The export's columns for one batch of resolved rows, and their final statuses.
fn columns(
    b: &ResolvedBatch,
    join: &JoinMap,
    store: &BlobStores,
    opts: &ExportOptions,
) -> Result<(Vec<ArrayRef>, Vec<RowStatus>), PhaseError> {
    let paths = b.strings("rel_path").unwrap_or_default();
    let mut added = Added::default();
    for i in 0..b.len() {
        let (st, data) = content_status(b.status[i], b.sha1_git[i], join, store)?;
        let known = b.sha1_git[i].and_then(|s| join.get(&s));
        added
            .sha1
            .push(known.and_then(|k| k.sha1).map(|s| s.to_hex()));
        added.size.push(known.and_then(|k| k.length));
        let (st, text, raw) = match data {
            Some(d) => match String::from_utf8(d) {
                Ok(t) => (st, Some(t), None),
                Err(e) => (RowStatus::Binary, None, Some(e.into_bytes())),
            },
            None => (st, None, None),
        };
        let q = text.as_deref().map(quality);
        added.avg_line_length.push(q.map(|q| q.avg_line_length));
        added.max_line_length.push(q.map(|q| q.max_line_length));
        added.alphanum_fraction.push(q.map(|q| q.alphanum_fraction));
        added
            .language
            .push(paths.get(i).copied().flatten().and_then(language));
        added.status.push(st);
        added.content.push(text);
        added.content_bytes.push(raw);
    }
    let statuses = added.status.clone();
    let mut cols: Vec<ArrayRef> = b.batch.columns().to_vec();
    cols.extend(added.into_arrays(opts.include_binary));
    Ok((cols, statuses))
}

/// What the export reads.
pub struct Input {
    /// The content join.
    pub join: JoinMap,
    /// The blob stores.
    pub store: BlobStores,
}

/// Exports the resolved rows into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<ExportCounts, PhaseError> {
    let opts = &ctx.config.export;
    let mut counts = ExportCounts::default();
    let mut writer: Option<PartWriter> = None;
    for file in resolved::files(&ctx.upstream(Phase::Walk))? {
        for b in resolved::batches(&file)? {
            let b = b?;
            let (cols, statuses) = columns(&b, &input.join, &input.store, opts)?;
            let w = writer.get_or_insert_with(|| {
                let schema = parts::schema(&b.batch.schema(), opts.include_binary);
                PartWriter::new(ctx.out, schema, opts.rows_per_file)
            });
            let keep: Vec<bool> = statuses
                .iter()
                .map(|s| !opts.only_ok || *s == RowStatus::Ok)
                .collect();
            for (s, k) in statuses.iter().zip(&keep) {
                if *k {
                    counts.status.bump(*s);
                }
            }
            if keep.iter().any(|k| *k) {
                let mask = BooleanArray::from(keep);
                let cols = cols
                    .iter()
                    .map(|c| arrow::compute::filter(c, &mask))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| crate::table::TableError::arrow(&file, e))?;
                w.write(cols)?;
            }
        }
    }
    counts.files = match writer {
        Some(w) => w.finish()? as u64,
        None => 0,
    };
    // The summary a dataset user looks for, beside the data.
    parts::write_summary(ctx.out, &counts.to_map())?;
    Ok(counts)
}

/// The export as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Export;
    type Counts = ExportCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        let text = serde_json::to_string(&config.export).unwrap_or_default();
        Ok(Inputs::from([("export_options".to_string(), text)]))
    }

    fn run(ctx: &Context) -> Result<ExportCounts, PhaseError> {
        let input = Input {
            join: join::load(&ctx.upstream(Phase::Content).join(JOIN))?,
            store: BlobStores::open(&ctx.blobs())?,
        };
        run(ctx, input)
    }
}
