//! `unearth hydrate`: the bytes of a dataset published as Software Heritage ids only (The
//! Stack v2 gives a `blob_id` per file), fetched, verified, decoded and written as a
//! Stack-style dataset.
//!
//! Three passes over the metadata, then the dataset:
//!
//! 1. **ids**: each row's id (`[hydrate] id_column`) read as `id_kind`: `sha1` (the S3 key)
//!    as it is, `sha1_git` or `swhid` (`swh:1:cnt:...`) joined to their sha1 through the
//!    `digestmap` (a lookup per id) or, without one, the ORC `content` tables of `orc` (one
//!    parallel pass over them for the ids the metadata names); the distinct sha1s go to an external sort (memory: the sort budget);
//! 2. **fetch**: the sorted sha1s, a chunk at a time, those not already in the store fetched
//!    from `[fetch] store` as `run` fetches (adaptive concurrency, retries, every body
//!    proven by its sha1 before it is kept) into `WORKDIR/blobs/hydrate/`; a rerun fetches only
//!    what is missing;
//! 3. **export**: every row again, in order, with its status (`ok`, `invalid`,
//!    `content_not_found`, `skipped`, `blob_missing`, `corrupt_blob`, `fetch_failed`,
//!    `binary`) and its text, decoded to UTF-8 from the row's `encoding_column` (as The Stack
//!    v2 requires), each blob verified again as it is read back, into
//!    `WORKDIR/hydrate/part-NNNNN.parquet`;
//!
//! then [`crate::dataset::build`] writes the dataset (`WORKDIR/dataset/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{Field, Schema};

use std::collections::HashSet;

use rayon::prelude::*;

use crate::artifacts::export::PartWriter;
use crate::artifacts::join::JoinMap;
use crate::config::{Config, IdKind};
use crate::dataset::{self, DatasetError};
use crate::digestmap::{DigestMap, DigestMapError};
use crate::model::{
    BlobStatus, ContentStatus, Counts, IdHash, RowStatus, Sha1, Sha1Git, Status, StatusCounts,
};
use crate::phases::fetch::{fetch_all, FetchCounts, Want};
use crate::phases::PhaseError;
use crate::sort::{SortError, Sorter};
use crate::store::pack::{source_tag, ReadError};
use crate::store::{BlobStores, PackStore, StoreError};
use crate::table::{self, TableError};

/// The pack store hydration fetches into, under `WORKDIR/blobs/`.
pub const STORE: &str = "hydrate";

/// Blobs fetched per round: the wanted list of one round is all the fetch holds.
const ROUND: usize = 1 << 16;

/// Input columns given the names the export uses, so that the dataset fills its own columns
/// from them: (input name, export name).
const RENAMED: [(&str, &str); 4] = [
    ("repo_name", "repo"),
    ("revision_id", "revision"),
    ("snapshot_id", "snapshot"),
    ("origin_url", "origin_url"),
];

/// Errors of hydration.
#[derive(Debug, thiserror::Error)]
pub enum HydrateError {
    /// The configuration cannot be hydrated.
    #[error("{0}")]
    Config(String),
    /// A metadata file or an output file.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The fetch.
    #[error(transparent)]
    Phase(#[from] PhaseError),
    /// The blob store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sort of the ids.
    #[error(transparent)]
    Sort(#[from] SortError),
    /// The digestmap.
    #[error(transparent)]
    DigestMap(#[from] DigestMapError),
    /// The dataset.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A file or folder of the work directory.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> HydrateError + '_ {
    move |source| HydrateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Counts of a hydration, also written to `WORKDIR/hydrate.json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HydrateCounts {
    /// Input rows.
    pub rows: u64,
    /// Distinct blobs the rows name.
    pub blobs: u64,
    /// The fetch.
    pub fetch: FetchCounts,
    /// Rows per status.
    pub status: StatusCounts<RowStatus>,
    /// The dataset.
    pub dataset: dataset::build::BuildCounts,
}

/// How ids are read.
struct Ids {
    kind: IdKind,
    source: Join,
}

/// Where git ids find their sha1.
enum Join {
    /// The ids are sha1s.
    None,
    /// SWH's digestmap: a lookup per id.
    DigestMap(DigestMap),
    /// The ORC `content` and `skipped_content` tables, scanned once for the ids the metadata
    /// names (memory: each distinct id and its answer, as the content join holds them).
    Orc(JoinMap),
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
    fn open(config: &Config, files: &[PathBuf]) -> Result<Self, HydrateError> {
        let kind = config.hydrate.id_kind;
        let source = match (kind, &config.digestmap, &config.orc) {
            (IdKind::Sha1, _, _) => Join::None,
            (_, Some(dir), _) => Join::DigestMap(DigestMap::open(dir)?),
            (_, None, Some(orc)) => Join::Orc(orc_join(config, files, orc)?),
            (_, None, None) => {
                return Err(HydrateError::Config(format!(
                    "id_kind {} is joined to sha1 through SWH's digestmap or the ORC content \
                     tables: set `digestmap = \"<folder>\"` or `orc = \"<folder>\"` in the \
                     configuration",
                    kind.as_str()
                )))
            }
        };
        Ok(Self { kind, source })
    }

    /// The sha1 of an id, or the row status saying why there is none.
    fn sha1(&self, id: Option<&str>) -> Result<Result<Sha1, RowStatus>, HydrateError> {
        let Some(id) = id.map(str::trim) else {
            return Ok(Err(RowStatus::Invalid));
        };
        if self.kind == IdKind::Sha1 {
            return Ok(Sha1::from_hex(id).map_err(|_| RowStatus::Invalid));
        }
        let Some(git) = git_id(self.kind, id) else {
            return Ok(Err(RowStatus::Invalid));
        };
        match &self.source {
            Join::DigestMap(m) => Ok(m.sha1(&git)?.ok_or(RowStatus::ContentNotFound)),
            Join::Orc(map) => Ok(match map.get(&git) {
                Some(k) if k.status == ContentStatus::Skipped => Err(RowStatus::Skipped),
                Some(k) => k.sha1.ok_or(RowStatus::ContentNotFound),
                None => Err(RowStatus::ContentNotFound),
            }),
            Join::None => Ok(Err(RowStatus::ContentNotFound)),
        }
    }
}

/// The ORC tables' answers for every git id of the metadata: one pass over the metadata for
/// the distinct ids, then every table file read in parallel.
fn orc_join(config: &Config, files: &[PathBuf], orc: &Path) -> Result<JoinMap, HydrateError> {
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
            crate::phases::content::scan_file(path, *skipped, &needed, &mut found)
                .map_err(|e| HydrateError::Phase(e.into()))?;
            Ok(found)
        })
        .collect::<Result<_, HydrateError>>()?;
    let mut joined = JoinMap::default();
    for m in maps {
        for (id, k) in m {
            crate::artifacts::join::insert(&mut joined, id, k);
        }
    }
    Ok(joined)
}

/// A string column of `b` by name, borrowed (`None` when absent).
fn strs<'a>(
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
fn for_each_batch(
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

/// Decodes `bytes` from the encoding labelled `label` (WHATWG labels: `UTF-8`,
/// `windows-1252`, `ISO-8859-1`, `Shift_JIS`, ...; none means UTF-8). `None` when the label
/// is unknown or the bytes are not text in it.
pub fn decode(bytes: &[u8], label: Option<&str>) -> Option<String> {
    let label = label
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or("utf-8");
    let enc = encoding_rs::Encoding::for_label(label.as_bytes())?;
    let (text, had_errors) = enc.decode_without_bom_handling(bytes);
    (!had_errors).then(|| text.into_owned())
}

/// Pass 1: the distinct sha1s the rows name, sorted.
fn distinct_sha1s(
    config: &Config,
    files: &[PathBuf],
    ids: &Ids,
    scratch: &Path,
) -> Result<(Sorter<Vec<u8>>, u64), HydrateError> {
    let budget = config.options.sort_memory_mb << 20;
    let mut sorter = Sorter::new(&scratch.join("ids"), budget, true)?;
    let mut rows = 0u64;
    for_each_batch(config, files, |file, b| {
        rows += b.num_rows() as u64;
        let col = strs(b, file, &config.hydrate.id_column)?.unwrap_or_default();
        for id in col {
            if let Ok(sha1) = ids.sha1(id)? {
                sorter.push(sha1.as_bytes().to_vec())?;
            }
        }
        Ok(())
    })?;
    Ok((sorter, rows))
}

/// Pass 2: fetches the blobs not yet stored, a round at a time.
fn fetch(
    config: &Config,
    sorted: Sorter<Vec<u8>>,
    counts: &mut HydrateCounts,
) -> Result<(), HydrateError> {
    let root = crate::phases::blob_dir(&config.workdir);
    let tag = source_tag(&config.fetch.source_id());
    let before = BlobStores::open(&root)?;
    let mut store = PackStore::open(&root.join(STORE))?;
    let mut round: Vec<Want> = Vec::with_capacity(ROUND);
    let mut flush = |round: &mut Vec<Want>, store: &mut PackStore| -> Result<(), HydrateError> {
        let c = fetch_all(round, store, &config.fetch, tag)?;
        counts.fetch.add(&c);
        round.clear();
        Ok(())
    };
    for sha1 in sorted.finish()? {
        let sha1 = sha1?;
        counts.blobs += 1;
        let Ok(bytes) = <[u8; 20]>::try_from(sha1.as_slice()) else {
            continue;
        };
        let sha1 = Sha1(bytes);
        let settled = before
            .get(&sha1)
            .is_some_and(|(_, r)| r.status == BlobStatus::Ok || r.source == tag);
        if !settled {
            round.push(Want {
                sha1,
                sha1_git: None,
                length: None,
            });
        }
        if round.len() >= ROUND {
            flush(&mut round, &mut store)?;
        }
    }
    flush(&mut round, &mut store)
}

/// Pass 3: every row with its status and text, into `out/part-NNNNN.parquet`.
fn export(
    config: &Config,
    files: &[PathBuf],
    ids: &Ids,
    out: &Path,
    counts: &mut HydrateCounts,
) -> Result<(), HydrateError> {
    let h = &config.hydrate;
    let stores = BlobStores::open(&crate::phases::blob_dir(&config.workdir))?;
    let mut writer: Option<PartWriter> = None;
    let mut row_id = 0u64;
    for_each_batch(config, files, |file, b| {
        let ids_col = strs(b, file, &h.id_column)?.unwrap_or_default();
        let enc_col = strs(b, file, &h.encoding_column)?;
        let mut status = Vec::with_capacity(b.num_rows());
        let mut sha1s = Vec::with_capacity(b.num_rows());
        let mut texts = Vec::with_capacity(b.num_rows());
        let mut sizes = Vec::with_capacity(b.num_rows());
        for (i, id) in ids_col.iter().enumerate() {
            let label = enc_col.as_ref().and_then(|c| c[i]);
            let (st, sha1, text, size) = match ids.sha1(*id)? {
                Err(st) => (st, None, None, None),
                Ok(sha1) => {
                    let (st, text, size) = read(&stores, &sha1, label)?;
                    (st, Some(sha1.to_hex()), text, size)
                }
            };
            counts.status.bump(st);
            status.push(st.as_str());
            sha1s.push(sha1);
            texts.push(text);
            sizes.push(size);
        }
        let row_ids = UInt64Array::from_iter_values(row_id..row_id + b.num_rows() as u64);
        row_id += b.num_rows() as u64;
        let (schema, cols) = export_columns(b, config, row_ids, status, sha1s, texts, sizes);
        let w =
            writer.get_or_insert_with(|| PartWriter::new(out, schema, config.export.rows_per_file));
        w.write(cols)?;
        Ok(())
    })?;
    if let Some(w) = writer {
        w.finish()?;
    }
    Ok(())
}

/// The status, text and size of the blob `sha1`, read back verified and decoded.
fn read(
    stores: &BlobStores,
    sha1: &Sha1,
    label: Option<&str>,
) -> Result<(RowStatus, Option<String>, Option<u64>), HydrateError> {
    let Some(at) = stores.get(sha1) else {
        return Ok((RowStatus::FetchFailed, None, None));
    };
    if at.1.status != BlobStatus::Ok {
        return Ok((at.1.status.row_status(), None, None));
    }
    match stores.read_verified(sha1, at) {
        Ok(bytes) => {
            let size = Some(bytes.len() as u64);
            match decode(&bytes, label) {
                Some(text) => Ok((RowStatus::Ok, Some(text), size)),
                None => Ok((RowStatus::Binary, None, size)),
            }
        }
        Err(ReadError::Damaged(_)) => Ok((RowStatus::CorruptBlob, None, None)),
        Err(ReadError::Io(e)) => Err(e.into()),
    }
}

/// The export's columns for one metadata batch: `row_id`, the input's columns (the path
/// column as `rel_path`, [`RENAMED`] ones under the export's names, the id and encoding
/// columns consumed, any other named like an export column renamed `input_<name>`), then
/// `status`, `sha1`, `size`, `content`, `src_encoding` and the quality columns.
fn export_columns(
    b: &RecordBatch,
    config: &Config,
    row_ids: UInt64Array,
    status: Vec<&'static str>,
    sha1s: Vec<Option<String>>,
    texts: Vec<Option<String>>,
    sizes: Vec<Option<u64>>,
) -> (Arc<Schema>, Vec<ArrayRef>) {
    let h = &config.hydrate;
    let qualities: Vec<Option<crate::phases::language::Quality>> = texts
        .iter()
        .map(|t| t.as_deref().map(crate::phases::language::quality))
        .collect();
    let encodings: Vec<Option<String>> = {
        let col = b
            .column_by_name(&h.encoding_column)
            .and_then(|c| table::str_values(c));
        (0..b.num_rows())
            .map(|i| {
                let label = col.as_ref().and_then(|c| c[i]).unwrap_or("UTF-8");
                texts[i].as_ref().map(|_| label.to_string())
            })
            .collect()
    };
    let ours: Vec<(&str, ArrayRef)> = vec![
        ("status", Arc::new(StringArray::from(status))),
        ("sha1", Arc::new(StringArray::from(sha1s))),
        ("size", Arc::new(UInt64Array::from(sizes))),
        ("content", Arc::new(StringArray::from(texts))),
        ("src_encoding", Arc::new(StringArray::from(encodings))),
        (
            "avg_line_length",
            Arc::new(arrow::array::Float64Array::from_iter(
                qualities.iter().map(|q| q.map(|q| q.avg_line_length)),
            )),
        ),
        (
            "max_line_length",
            Arc::new(UInt64Array::from_iter(
                qualities.iter().map(|q| q.map(|q| q.max_line_length)),
            )),
        ),
        (
            "alphanum_fraction",
            Arc::new(arrow::array::Float64Array::from_iter(
                qualities.iter().map(|q| q.map(|q| q.alphanum_fraction)),
            )),
        ),
    ];
    // Input columns: consumed, mapped to the export's names, or carried.
    let mut mapped: Vec<(String, usize)> = Vec::new();
    let mut carried: Vec<(&str, usize)> = Vec::new();
    let schema = b.schema();
    for (i, f) in schema.fields().iter().enumerate() {
        let name = f.name().as_str();
        if name == h.id_column || name == h.encoding_column {
            continue;
        }
        if name == h.path_column {
            mapped.push(("rel_path".into(), i));
        } else if let Some((_, to)) = RENAMED.iter().find(|(from, _)| *from == name) {
            mapped.push((to.to_string(), i));
        } else {
            carried.push((name, i));
        }
    }
    // The export's own names are reserved as the export reserves them, so that the dataset
    // reads the same shape from both (an input `language` becomes `input_language`).
    let export_fields = crate::artifacts::export::Added::fields(true);
    let mut reserved: Vec<&str> = crate::artifacts::resolved::WALK_COLUMNS.to_vec();
    reserved.push("resolution_status");
    reserved.extend(export_fields.iter().map(|f| f.name().as_str()));
    reserved.extend(ours.iter().map(|(n, _)| *n));
    reserved.extend(mapped.iter().map(|(n, _)| n.as_str()));
    let names =
        crate::artifacts::resolved::rename_inputs(carried.iter().map(|(n, _)| *n), &reserved);
    let mut fields = vec![Field::new(
        "row_id",
        arrow::datatypes::DataType::UInt64,
        false,
    )];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(row_ids)];
    for (name, i) in &mapped {
        fields.push(schema.field(*i).clone().with_name(name));
        cols.push(b.column(*i).clone());
    }
    for ((_, i), name) in carried.iter().zip(names) {
        fields.push(schema.field(*i).clone().with_name(name));
        cols.push(b.column(*i).clone());
    }
    for (name, col) in ours {
        fields.push(Field::new(name, col.data_type().clone(), true));
        cols.push(col);
    }
    (Arc::new(Schema::new(fields)), cols)
}

/// The counts file of the last hydration, in the work directory.
pub const COUNTS: &str = "hydrate.json";

/// The sha1s of the first `n` rows of the metadata with a valid id, in row order (the
/// benchmark fetches them one at a time, as The Stack v2's own loop does).
pub fn first_sha1s(config: &Config, n: usize) -> Result<Vec<Sha1>, HydrateError> {
    let files = crate::phases::plan::input_files(&config.metadata)
        .map_err(|e| HydrateError::Phase(e.into()))?;
    let ids = Ids::open(config, &files)?;
    let mut out = Vec::new();
    for file in &files {
        let (_, batches) = table::open(file)?;
        for b in batches {
            let b = b?;
            let col = strs(&b, file, &config.hydrate.id_column)?.unwrap_or_default();
            for id in col {
                if out.len() >= n {
                    return Ok(out);
                }
                if let Ok(sha1) = ids.sha1(id)? {
                    out.push(sha1);
                }
            }
        }
    }
    Ok(out)
}

/// Hydrates the metadata of `config` into its dataset; returns the counts.
pub fn run(config: &Config) -> Result<HydrateCounts, HydrateError> {
    let files = crate::phases::plan::input_files(&config.metadata)
        .map_err(|e| HydrateError::Phase(e.into()))?;
    let ids = Ids::open(config, &files)?;
    let workdir = &config.workdir;
    std::fs::create_dir_all(workdir).map_err(io(workdir))?;
    let scratch = workdir.join(format!(".hydrate.scratch-{}", std::process::id()));
    let result = (|| {
        let mut counts = HydrateCounts::default();
        let (sorted, rows) = distinct_sha1s(config, &files, &ids, &scratch)?;
        counts.rows = rows;
        fetch(config, sorted, &mut counts)?;
        let out = workdir.join("hydrate");
        let staging = workdir.join(format!(".hydrate.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        export(config, &files, &ids, &staging, &mut counts)?;
        crate::artifacts::replace_dir(&staging, &out).map_err(io(&out))?;
        let parts = table::parquet_files(&out)?;
        // Built aside and swapped in whole: a published copy (hard links) of the last one is
        // never rewritten in place, and a failed run leaves the last one as it was.
        let built = workdir.join("dataset");
        let staging = workdir.join(format!(".dataset.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        counts.dataset = dataset::build::build(&dataset::build::Build {
            licenses: None,
            parts: &parts,
            input_rows: rows,
            out: &staging,
            scratch: &scratch,
            options: &config.dataset,
            sort_budget: config.options.sort_memory_mb << 20,
            source: serde_json::json!({
                "metadata": config.metadata,
                "id_column": config.hydrate.id_column,
                "id_kind": config.hydrate.id_kind.as_str(),
                "store": config.fetch.store,
            }),
            describe: &format!(
                "the ids of `{}` (column `{}`), hydrated from `{}`",
                config.metadata.display(),
                config.hydrate.id_column,
                config.fetch.store
            ),
        })?;
        crate::artifacts::replace_dir(&staging, &built).map_err(io(&built))?;
        if let Some(out) = &config.dataset.out {
            dataset::publish(&built, out).map_err(io(out))?;
        }
        let path = workdir.join(COUNTS);
        let text = serde_json::to_vec_pretty(&counts).unwrap_or_default();
        crate::artifacts::write_atomically(&path, &text).map_err(io(&path))?;
        Ok(counts)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_from_the_row_encoding() {
        assert_eq!(
            decode(b"caf\xe9", Some("windows-1252")).as_deref(),
            Some("café")
        );
        assert_eq!(decode("café".as_bytes(), None).as_deref(), Some("café"));
        assert_eq!(
            decode("café".as_bytes(), Some(" UTF-8 ")).as_deref(),
            Some("café")
        );
        assert_eq!(decode(b"caf\xe9", Some("UTF-8")), None, "not UTF-8");
        assert_eq!(decode(b"abc", Some("no-such-encoding")), None);
    }
}
