//! Building a Stack-style dataset from export-shaped Parquet parts (the export's, or
//! `hydrate`'s): the work of the `dataset` phase and of `unearth hydrate`.
//!
//! Two passes over the parts, in order. The first ([`build_shard`], once per shard of the
//! phase) derives each text row's columns (language by linguist's method, `is_vendor`,
//! `is_generated`, the quality columns), applies the filters, and offers the rows that pass
//! to the shard's part of the deduplication ([`super::dedup`]: exact by sha1, near by MinHash
//! LSH). The second ([`build_merge`]) joins the clusters, derives again, writes the kept
//! rows into `data/<language>/` ([`super::layout`]) and every other row, with the reason,
//! into `removed.parquet`; then the card, `metadata.json` and the funnel picture
//! ([`super::card`], [`super::funnel`]).
//!
//! Parts are read by column name: `status`, `sha1`, `rel_path`, `content` must be there;
//! `sha1_git`, `repo`, `revision`, `snapshot`, `origin_url`, `src_encoding`, `row_id` and the
//! quality columns are used when they are; every other column is the input's own and is
//! carried.
//!
//! Memory: a shard holds one batch and its derived columns and the sort budget; the merge one
//! batch, one `u32` and one bit per candidate row (the clusters), the signatures mapped, and
//! the open writers' row groups ([`super::layout::BUFFERED`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;

use crate::config::DatasetOptions;
use crate::model::{Counts, DatasetStatus, LicenseType, RowStatus, Shard, Status, StatusCounts};
use crate::table::{self, TableError};

use super::card::{self, LicenseSummary, Summary};
use super::dedup::{Dedup, Fate};
use super::layout::Layout;
use super::licenses::Table;
use super::rows::{derive, language_name, verdict, Derived};
use super::{funnel, DatasetError};

/// What a build reads and where it writes.
pub struct Build<'a> {
    /// The export-shaped parts, in order.
    pub parts: &'a [PathBuf],
    /// Rows of the input (the parts may hold fewer: an export of `ok` rows only).
    pub input_rows: u64,
    /// The folder to write the dataset into (empty or new).
    pub out: &'a Path,
    /// A scratch folder for the sorts and signatures.
    pub scratch: &'a Path,
    /// The options.
    pub options: &'a DatasetOptions,
    /// Sort memory, in bytes.
    pub sort_budget: usize,
    /// Each revision's licenses (`run`); without it (`hydrate`) the parts' own
    /// `detected_licenses`, `license_type` and `license_confidence` columns are used when
    /// they have them.
    pub licenses: Option<&'a Table>,
    /// Where the rows came from, for `metadata.json`.
    pub source: serde_json::Value,
    /// The same in words, for the card.
    pub describe: &'a str,
}

/// The rows removed, with their reasons.
pub const REMOVED: &str = "removed.parquet";

/// Counts of a build.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BuildCounts {
    /// Rows of the parts.
    pub rows: u64,
    /// Languages written.
    pub languages: u64,
    /// Parquet files written under `data/`.
    pub files: u64,
    /// Content bytes of the kept rows.
    pub bytes: u64,
    /// Near-dedup candidate pairs checked against the threshold.
    pub pairs_checked: u64,
    /// Of those, similar enough.
    pub pairs_similar: u64,
    /// Rows offered to deduplication (text rows the filters kept).
    pub dedup_candidates: u64,
    /// Microseconds of deduplication (signatures, the sorts, the pair checks).
    pub dedup_micros: u64,
    /// Revisions with a root license file ([`super::licenses`]).
    pub license_revisions: u64,
    /// Their license files.
    pub license_files: u64,
    /// Distinct license texts matched against the SPDX texts.
    pub license_texts_matched: u64,
    /// Distinct license texts answered from a matched text with the same n-grams.
    pub license_texts_reused: u64,
    /// Distinct license texts the blob store lacks.
    pub license_texts_unreadable: u64,
    /// Microseconds of license detection.
    pub license_micros: u64,
    /// Rows per dataset status.
    #[serde(flatten)]
    pub status: StatusCounts<DatasetStatus>,
}

impl Counts for BuildCounts {
    fn add(&mut self, o: &Self) {
        self.rows += o.rows;
        self.languages += o.languages;
        self.files += o.files;
        self.bytes += o.bytes;
        self.pairs_checked += o.pairs_checked;
        self.pairs_similar += o.pairs_similar;
        self.dedup_candidates += o.dedup_candidates;
        self.dedup_micros += o.dedup_micros;
        self.license_revisions += o.license_revisions;
        self.license_files += o.license_files;
        self.license_texts_matched += o.license_texts_matched;
        self.license_texts_reused += o.license_texts_reused;
        self.license_texts_unreadable += o.license_texts_unreadable;
        self.license_micros += o.license_micros;
        self.status.merge(&o.status);
    }
}

/// Output columns taken from the export as they are: (dataset name, export name).
const TAKEN: [(&str, &str); 7] = [
    ("blob_id", "sha1"),
    ("sha1_git", "sha1_git"),
    ("repo_name", "repo"),
    ("path", "rel_path"),
    ("revision_id", "revision"),
    ("snapshot_id", "snapshot"),
    ("origin_url", "origin_url"),
];

/// Quality columns taken from the export.
const QUALITY: [&str; 3] = ["avg_line_length", "max_line_length", "alphanum_fraction"];

/// Export columns the dataset does not carry (it has its own form of them, or they describe
/// the resolution, which stays in the export).
const DROPPED: [&str; 9] = [
    "size",
    "status",
    "resolution_status",
    "language",
    "content_bytes",
    "permissions",
    "candidates",
    "candidates_with_path",
    "content",
];

/// The license columns.
const LICENSE_COLUMNS: [&str; 3] = ["detected_licenses", "license_type", "license_confidence"];

/// The type of the license column `name` as unearth writes it.
fn license_type_of(name: &str) -> DataType {
    match name {
        "detected_licenses" => {
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
        }
        "license_confidence" => DataType::Float32,
        _ => DataType::Utf8,
    }
}

/// The dataset's schema for an export of schema `export`, and the export columns it carries
/// (the input's own, renamed when a dataset column has their name). `detected` says whether
/// unearth detects the licenses; if not, the parts' own license columns are taken.
fn schema(export: &Schema, detected: bool) -> (SchemaRef, Vec<(usize, String)>) {
    let mut fields: Vec<Field> = Vec::new();
    for (name, from) in TAKEN.iter() {
        let t = export
            .field_with_name(from)
            .map_or(DataType::Utf8, |f| f.data_type().clone());
        fields.push(Field::new(*name, t, true));
    }
    fields.extend([
        Field::new("language", DataType::Utf8, false),
        Field::new("extension", DataType::Utf8, false),
        Field::new("length_bytes", DataType::UInt64, true),
        Field::new("content", DataType::Utf8, false),
        Field::new("src_encoding", DataType::Utf8, false),
        Field::new("is_vendor", DataType::Boolean, false),
        Field::new("is_generated", DataType::Boolean, false),
    ]);
    for name in LICENSE_COLUMNS {
        let t = match export.field_with_name(name) {
            Ok(f) if !detected => f.data_type().clone(),
            _ => license_type_of(name),
        };
        fields.push(Field::new(name, t, true));
    }
    fields.extend([
        Field::new("avg_line_length", DataType::Float64, true),
        Field::new("max_line_length", DataType::UInt64, true),
        Field::new("alphanum_fraction", DataType::Float64, true),
        Field::new("dedup_cluster", DataType::UInt32, false),
    ]);
    let ours: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
    let reserved: Vec<&str> = ours.iter().map(String::as_str).collect();
    let consumed = |n: &str| {
        TAKEN.iter().any(|(_, f)| *f == n)
            || QUALITY.contains(&n)
            || DROPPED.contains(&n)
            || (!detected && LICENSE_COLUMNS.contains(&n))
    };
    let carried: Vec<(usize, &str)> = export
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !consumed(f.name()))
        .map(|(i, f)| (i, f.name().as_str()))
        .collect();
    let names =
        crate::artifacts::resolved::rename_inputs(carried.iter().map(|(_, n)| *n), &reserved);
    let carried: Vec<(usize, String)> = carried.iter().map(|(i, _)| *i).zip(names).collect();
    for (i, name) in &carried {
        fields.push(export.field(*i).clone().with_name(name));
    }
    (Arc::new(Schema::new(fields)), carried)
}

/// One export batch's text rows: their derived columns and first verdicts.
struct Judged {
    /// Per row: derived columns and verdict, for rows the export has text for.
    rows: Vec<Option<(Derived, DatasetStatus)>>,
}

/// The columns of an export batch the dataset reads.
struct View<'a> {
    status: Vec<Option<&'a str>>,
    path: Vec<Option<&'a str>>,
    content: &'a StringArray,
    sha1: Vec<Option<&'a str>>,
    /// Each row's license type, when known (from the table, or the part's own column).
    license: Vec<Option<LicenseType>>,
}

/// Each row's license type: looked up by revision in `table`, else read from the part's
/// `license_type` column (The Stack v2 has one), else unknown.
fn license_kinds(
    b: &RecordBatch,
    file: &Path,
    table: Option<&Table>,
) -> Result<Vec<Option<LicenseType>>, TableError> {
    let strings = |name: &str| match b.column_by_name(name) {
        Some(_) => table::strs(b, file, name),
        None => Ok(vec![None; b.num_rows()]),
    };
    Ok(match table {
        Some(t) => strings("revision")?
            .into_iter()
            .map(|r| Some(t.get(r).kind))
            .collect(),
        None => strings("license_type")?
            .into_iter()
            .map(|k| k.and_then(LicenseType::parse))
            .collect(),
    })
}

fn view<'a>(
    b: &'a RecordBatch,
    file: &Path,
    licenses: Option<&Table>,
) -> Result<View<'a>, TableError> {
    let strings = |name: &str| table::strs(b, file, name);
    let content = table::column(b, file, "content")?
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| TableError::column(file, "content", "is not a string column"))?;
    // Parts without paths (hydrated ids alone) detect languages from contents only.
    let path = match b.column_by_name("rel_path") {
        Some(_) => strings("rel_path")?,
        None => vec![None; b.num_rows()],
    };
    Ok(View {
        status: strings("status")?,
        path,
        content,
        sha1: strings("sha1")?,
        license: license_kinds(b, file, licenses)?,
    })
}

fn judge(v: &View, opts: &DatasetOptions) -> Judged {
    let rows = (0..v.content.len())
        .into_par_iter()
        .map(|i| {
            let ok = v.status[i].and_then(RowStatus::parse) == Some(RowStatus::Ok);
            if !ok || v.content.is_null(i) {
                return None;
            }
            let d = derive(v.path[i].unwrap_or(""), v.content.value(i));
            let st = verdict(&d, v.license[i], opts);
            Some((d, st))
        })
        .collect();
    Judged { rows }
}

fn sha1_bytes(hex_text: Option<&str>) -> [u8; 20] {
    let mut out = [0u8; 20];
    if let Some(h) = hex_text {
        let _ = hex::decode_to_slice(h, &mut out);
    }
    out
}

/// Every export batch in order, with its file.
fn for_each_batch(
    files: &[PathBuf],
    mut each: impl FnMut(&Path, &RecordBatch) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    for file in files {
        let (_, batches) = table::open(file)?;
        for b in batches {
            each(file, &b?)?;
        }
    }
    Ok(())
}

/// What pass 1 found.
struct FirstPass {
    rows: u64,
    candidates: u64,
    dedup_micros: u64,
}

/// Pass 1: the verdicts, and the candidates offered to this shard of the deduplication,
/// whose files go to `build.out`.
fn first_pass(build: &Build, shard: Shard) -> Result<FirstPass, DatasetError> {
    let opts = build.options;
    let near = opts.near_dedup.then_some(&opts.minhash);
    let mut dedup = Dedup::new(
        build.out,
        &build.scratch.join("dedup"),
        build.sort_budget,
        opts.exact_dedup,
        near,
        shard,
    )?;
    let mut rows = 0u64;
    let mut candidates = 0u64;
    let mut dedup_time = std::time::Duration::ZERO;
    for_each_batch(build.parts, |file, b| {
        rows += b.num_rows() as u64;
        let v = view(b, file, build.licenses)?;
        let judged = judge(&v, opts);
        let offered: Vec<([u8; 20], &str)> = judged
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Some((_, DatasetStatus::Kept))))
            .map(|(i, _)| (sha1_bytes(v.sha1[i]), v.content.value(i)))
            .collect();
        candidates += offered.len() as u64;
        let start = std::time::Instant::now();
        dedup.add(&offered)?;
        dedup_time += start.elapsed();
        Ok(())
    })?;
    let start = std::time::Instant::now();
    dedup.finish()?;
    dedup_time += start.elapsed();
    Ok(FirstPass {
        rows,
        candidates,
        dedup_micros: dedup_time.as_micros() as u64,
    })
}

/// A batch of a part being written, and the licenses table.
struct Batch<'a> {
    b: &'a RecordBatch,
    file: &'a Path,
    licenses: Option<&'a Table>,
}

/// The license columns of the rows at `idx` of `batch`: detected through the table, or the
/// part's own columns taken as they are (nulls when it lacks them).
fn license_columns(
    batch: &Batch,
    idx: &UInt32Array,
    schema: &Schema,
) -> Result<Vec<ArrayRef>, TableError> {
    let (b, file) = (batch.b, batch.file);
    let Some(table) = batch.licenses else {
        return LICENSE_COLUMNS
            .iter()
            .map(|name| match b.column_by_name(name) {
                Some(col) => {
                    arrow::compute::take(col, idx, None).map_err(|e| TableError::arrow(file, e))
                }
                None => {
                    let t = schema
                        .field_with_name(name)
                        .map_or(DataType::Utf8, |f| f.data_type().clone());
                    Ok(arrow::array::new_null_array(&t, idx.len()))
                }
            })
            .collect();
    };
    let revisions = match b.column_by_name("revision") {
        Some(_) => table::strs(b, file, "revision")?,
        None => vec![None; b.num_rows()],
    };
    let mut ids = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    let mut kinds = Vec::with_capacity(idx.len());
    let mut confidence = Vec::with_capacity(idx.len());
    for i in idx.values() {
        let l = table.get(revisions[*i as usize]);
        for id in &l.ids {
            ids.values().append_value(id);
        }
        ids.append(true);
        kinds.push(l.kind.as_str());
        confidence.push(l.confidence);
    }
    Ok(vec![
        Arc::new(ids.finish()),
        Arc::new(StringArray::from(kinds)),
        Arc::new(arrow::array::Float32Array::from(confidence)),
    ])
}

/// Writes the rows of `batch` at `keep` (one language) with their derived columns.
fn write_language(
    layout: &mut Layout,
    carried: &[(usize, String)],
    batch: &Batch,
    language: &str,
    keep: &[(usize, &Derived, u32)],
) -> Result<(), DatasetError> {
    let (b, file) = (batch.b, batch.file);
    let idx = UInt32Array::from_iter_values(keep.iter().map(|(i, _, _)| *i as u32));
    // A column the parts lack is all nulls, typed as the schema says.
    let take = |name: &str, as_type: &DataType| -> Result<ArrayRef, TableError> {
        match b.column_by_name(name) {
            Some(col) => {
                arrow::compute::take(col, &idx, None).map_err(|e| TableError::arrow(file, e))
            }
            None => Ok(arrow::array::new_null_array(as_type, keep.len())),
        }
    };
    let schema = layout.schema().clone();
    let typed = |name: &str| {
        schema
            .field_with_name(name)
            .map_or(DataType::Utf8, |f| f.data_type().clone())
    };
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (name, from) in TAKEN.iter() {
        cols.push(take(from, &typed(name))?);
    }
    let content = take("content", &DataType::Utf8)?;
    // Lengths from the taken texts, looked up once rather than by name per row.
    let lengths: Vec<u64> = match content.as_any().downcast_ref::<StringArray>() {
        Some(c) => (0..c.len()).map(|j| c.value(j).len() as u64).collect(),
        None => vec![0; keep.len()],
    };
    cols.push(Arc::new(StringArray::from_iter_values(
        keep.iter().map(|_| language),
    )));
    cols.push(Arc::new(StringArray::from_iter_values(
        keep.iter().map(|(_, d, _)| d.extension.as_str()),
    )));
    cols.push(Arc::new(UInt64Array::from_iter_values(
        lengths.iter().copied(),
    )));
    cols.push(content);
    cols.push(match b.column_by_name("src_encoding") {
        Some(_) => take("src_encoding", &DataType::Utf8)?,
        None => Arc::new(StringArray::from_iter_values(keep.iter().map(|_| "UTF-8"))),
    });
    cols.push(Arc::new(BooleanArray::from_iter(
        keep.iter().map(|(_, d, _)| Some(d.is_vendor)),
    )));
    cols.push(Arc::new(BooleanArray::from_iter(
        keep.iter().map(|(_, d, _)| Some(d.is_generated)),
    )));
    cols.extend(license_columns(batch, &idx, &schema)?);
    for q in QUALITY {
        cols.push(take(q, &typed(q))?);
    }
    cols.push(Arc::new(UInt32Array::from_iter_values(
        keep.iter().map(|(_, _, c)| *c),
    )));
    for (i, _) in carried {
        cols.push(
            arrow::compute::take(b.column(*i), &idx, None)
                .map_err(|e| TableError::arrow(file, e))?,
        );
    }
    let batch = RecordBatch::try_new(schema, cols).map_err(|e| TableError::arrow(file, e))?;
    layout.write(language, &batch, &lengths)?;
    Ok(())
}

/// The rows removed, as they are written to [`REMOVED`].
#[derive(Default)]
struct Removed {
    row_id: Vec<Option<u64>>,
    repo: Vec<Option<String>>,
    path: Vec<Option<String>>,
    status: Vec<Option<String>>,
    dataset_status: Vec<&'static str>,
    cluster: Vec<Option<u32>>,
}

impl Removed {
    fn columns(self) -> Vec<(&'static str, ArrayRef)> {
        vec![
            (
                "row_id",
                Arc::new(UInt64Array::from(self.row_id)) as ArrayRef,
            ),
            ("repo", Arc::new(StringArray::from(self.repo))),
            ("rel_path", Arc::new(StringArray::from(self.path))),
            ("status", Arc::new(StringArray::from(self.status))),
            (
                "dataset_status",
                Arc::new(StringArray::from(self.dataset_status)),
            ),
            ("dedup_cluster", Arc::new(UInt32Array::from(self.cluster))),
        ]
    }
}

/// A license filter without licenses would remove every row: refused up front.
fn check_license_filter(build: &Build) -> Result<(), DatasetError> {
    let opts = build.options;
    if let (false, None, Some(first)) = (
        opts.license_types.is_empty(),
        build.licenses,
        build.parts.first(),
    ) {
        let (schema, _) = table::open(first)?;
        if schema.field_with_name("license_type").is_err() {
            return Err(TableError::column(
                first,
                "license_type",
                "is missing, and `[dataset] license_types` filters on it (hydrated rows take \
                 the input's own license columns)",
            )
            .into());
        }
    }
    Ok(())
}

/// Shard `shard` of the dataset's first pass: every row judged, the candidates offered to
/// this shard of the deduplication ([`super::dedup`]), its files written into `build.out`.
/// Shard 0 alone reports the rows and candidates (every shard sees them all).
pub fn build_shard(build: &Build, shard: Shard) -> Result<BuildCounts, DatasetError> {
    check_license_filter(build)?;
    let out = build.out;
    std::fs::create_dir_all(out).map_err(|e| TableError::io(out, e))?;
    let first = first_pass(build, shard)?;
    let mut counts = BuildCounts {
        dedup_micros: first.dedup_micros,
        ..BuildCounts::default()
    };
    if shard.index == 0 {
        counts.rows = first.rows;
        counts.dedup_candidates = first.candidates;
    }
    Ok(counts)
}

/// Builds the dataset of `build.parts` into `build.out` from the folders of every shard of
/// the first pass ([`build_shard`]), in order; `summed` is the sum of their counts, returned
/// completed.
pub fn build_merge(
    build: &Build,
    shards: &[PathBuf],
    summed: BuildCounts,
) -> Result<BuildCounts, DatasetError> {
    let opts = build.options;
    let out = build.out;
    check_license_filter(build)?;
    let candidates =
        u32::try_from(summed.dedup_candidates).map_err(|_| super::dedup::DedupError::TooMany)?;
    let start = std::time::Instant::now();
    let near = opts.near_dedup.then_some(&opts.minhash);
    let clusters = super::dedup::clusters(shards, candidates, near)?;
    let merge_micros = start.elapsed().as_micros() as u64;
    std::fs::create_dir_all(out).map_err(|e| TableError::io(out, e))?;
    let mut counts = BuildCounts {
        pairs_checked: clusters.counts.pairs_checked,
        pairs_similar: clusters.counts.pairs_similar,
        dedup_micros: summed.dedup_micros + merge_micros,
        ..summed
    };
    counts.status = StatusCounts::default();
    let mut rows = 0u64;
    let mut export_status: StatusCounts<RowStatus> = StatusCounts::default();
    let mut layout: Option<(Layout, Vec<(usize, String)>)> = None;
    let removed_path = out.join(REMOVED);
    let mut removed_writer: Option<table::Writer> = None;
    let mut candidate = 0u32;
    let mut license_summary = LicenseSummary::default();
    for_each_batch(build.parts, |file, b| {
        rows += b.num_rows() as u64;
        let v = view(b, file, build.licenses)?;
        let judged = judge(&v, opts);
        let (layout, carried) = layout.get_or_insert_with(|| {
            let (schema, carried) = schema(&b.schema(), build.licenses.is_some());
            (Layout::new(out, schema, opts.file_mb), carried)
        });
        let row_ids = table::opt_u64s(b, file, "row_id").unwrap_or_default();
        let repos = match b.column_by_name("repo") {
            Some(_) => table::strs(b, file, "repo")?,
            None => vec![None; b.num_rows()],
        };
        let has_license = build.licenses.is_some() || b.column_by_name("license_type").is_some();
        let revisions = match (build.licenses, b.column_by_name("revision")) {
            (Some(_), Some(_)) => table::strs(b, file, "revision")?,
            _ => vec![None; b.num_rows()],
        };
        let mut by_language: std::collections::BTreeMap<&str, Vec<(usize, &Derived, u32)>> =
            Default::default();
        let mut removed = Removed::default();
        for (i, r) in judged.rows.iter().enumerate() {
            if let Some(s) = v.status[i].and_then(RowStatus::parse) {
                export_status.bump(s);
            }
            let (st, cluster) = match r {
                None => (DatasetStatus::NoText, None),
                Some((d, DatasetStatus::Kept)) => {
                    let c = candidate;
                    candidate += 1;
                    if c >= candidates {
                        return Err(super::dedup::DedupError::Mismatch(candidates).into());
                    }
                    match clusters.fate(c) {
                        Fate::Kept => {
                            if has_license {
                                let kind = v.license[i].map_or("unknown", |k| k.as_str());
                                *license_summary.types.entry(kind.into()).or_default() += 1;
                            }
                            if let Some(t) = build.licenses {
                                for id in t.get(revisions[i]).ids {
                                    *license_summary.ids.entry(id.into()).or_default() += 1;
                                }
                            }
                            by_language
                                .entry(language_name(d.language))
                                .or_default()
                                .push((i, d, clusters.cluster(c)));
                            (DatasetStatus::Kept, None)
                        }
                        Fate::Exact => (DatasetStatus::ExactDuplicate, Some(clusters.cluster(c))),
                        Fate::Near => (DatasetStatus::NearDuplicate, Some(clusters.cluster(c))),
                    }
                }
                Some((_, st)) => (*st, None),
            };
            counts.status.bump(st);
            if st != DatasetStatus::Kept {
                removed.row_id.push(row_ids.get(i).copied().flatten());
                removed.repo.push(repos[i].map(str::to_string));
                removed.path.push(v.path[i].map(str::to_string));
                removed.status.push(v.status[i].map(str::to_string));
                removed.dataset_status.push(st.as_str());
                removed.cluster.push(cluster);
            }
        }
        for (language, keep) in &by_language {
            let ctx = Batch {
                b,
                file,
                licenses: build.licenses,
            };
            write_language(layout, carried, &ctx, language, keep)?;
        }
        if !removed.dataset_status.is_empty() {
            let batch = RecordBatch::try_from_iter(removed.columns())
                .map_err(|e| TableError::arrow(&removed_path, e))?;
            let w = match removed_writer.as_mut() {
                Some(w) => w,
                None => {
                    removed_writer.insert(table::Writer::create(&removed_path, batch.schema())?)
                }
            };
            w.write(&batch)?;
        }
        Ok(())
    })?;
    match removed_writer {
        Some(w) => w.close()?,
        None => {
            table::write(&removed_path, Removed::default().columns())?;
        }
    }
    let languages = match layout {
        Some((l, _)) => l.finish()?,
        None => Vec::new(),
    };
    counts.languages = languages.len() as u64;
    counts.files = languages.iter().map(|l| l.files.len() as u64).sum();
    counts.bytes = languages.iter().map(|l| l.bytes).sum();
    if candidate != candidates {
        return Err(super::dedup::DedupError::Mismatch(candidates).into());
    }
    counts.rows = rows;
    let input = build.input_rows.max(rows);
    let stages = funnel::stages(input, &export_status, &counts.status);
    let mut removed_counts = funnel::nonzero(&counts.status);
    removed_counts.retain(|(k, _)| {
        *k != DatasetStatus::Kept.as_str() && *k != DatasetStatus::NoText.as_str()
    });
    let summary = Summary {
        source: build.describe,
        stages: &stages,
        languages: &languages,
        removed: &removed_counts,
        licenses: &license_summary,
        options: opts,
    };
    let io = |path: PathBuf| move |e| TableError::io(&path, e);
    funnel::draw(&stages, &out.join(card::FUNNEL)).map_err(DatasetError::Picture)?;
    card::write_card(out, &summary).map_err(io(out.join(card::CARD)))?;
    let mut source = build.source.clone();
    if let Some(o) = source.as_object_mut() {
        o.insert("rows".into(), rows.into());
        o.insert(
            "statuses".into(),
            serde_json::to_value(&export_status).unwrap_or_default(),
        );
    }
    card::write_metadata(out, &summary, source).map_err(io(out.join(card::METADATA)))?;
    Ok(counts)
}
