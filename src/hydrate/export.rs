//! The `export` phase of a hydration: every row of the metadata again, in order, with its
//! status (`ok`, `invalid`, `content_not_found`, `skipped`, `blob_missing`, `corrupt_blob`,
//! `fetch_failed`, `binary`) and its text, decoded to UTF-8 from the row's `encoding_column`
//! (as The Stack v2 requires), each blob verified again as it is read back, into
//! `export/part-NNNNN.parquet`.
//!
//! Memory: one metadata batch and its texts, the join of the git ids ([`super::ids`]), the
//! blob stores' indexes.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{Field, Schema};

use crate::artifacts::export::PartWriter;
use crate::config::Config;
use crate::model::{BlobStatus, Counts, Phase, RowStatus, Sha1, Shard, Status, StatusCounts};
use crate::phases::{Context, Inputs, PhaseError};
use crate::store::pack::ReadError;
use crate::store::BlobStores;
use crate::table;

use super::ids::{for_each_batch, metadata_files, metadata_inputs, strs};
use super::{decode, HydrateError};

/// Input columns given the names the export uses, so that the dataset fills its own columns
/// from them: (input name, export name).
const RENAMED: [(&str, &str); 4] = [
    ("repo_name", "repo"),
    ("revision_id", "revision"),
    ("snapshot_id", "snapshot"),
    ("origin_url", "origin_url"),
];

/// Counts of a hydration's export.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ExportCounts {
    /// Rows written (every input row).
    pub rows: u64,
    /// Parquet parts written.
    pub files: u64,
    /// Rows per status.
    #[serde(flatten)]
    pub status: StatusCounts<RowStatus>,
}

impl Counts for ExportCounts {
    fn add(&mut self, o: &Self) {
        self.rows += o.rows;
        self.files += o.files;
        self.status.merge(&o.status);
    }
}

/// Every row with its status and text, into `ctx.out/part-NNNNN.parquet`.
pub fn run(ctx: &Context) -> Result<ExportCounts, HydrateError> {
    let config = ctx.config;
    let h = &config.hydrate;
    let files = metadata_files(config)?;
    let ids = super::ids::load(ctx)?;
    let out = ctx.out;
    let mut counts = ExportCounts::default();
    let stores = BlobStores::open(&ctx.blobs())?;
    let mut writer: Option<PartWriter> = None;
    let mut row_id = 0u64;
    for_each_batch(config, &files, |file, b| {
        let ids_col = strs(b, file, &h.id_column)?.unwrap_or_default();
        let enc_col = strs(b, file, &h.encoding_column)?;
        let mut status = Vec::with_capacity(b.num_rows());
        let mut sha1s = Vec::with_capacity(b.num_rows());
        let mut texts = Vec::with_capacity(b.num_rows());
        let mut sizes = Vec::with_capacity(b.num_rows());
        for (i, id) in ids_col.iter().enumerate() {
            let label = enc_col.as_ref().and_then(|c| c[i]);
            let (st, sha1, text, size) = match ids.sha1(*id) {
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
    counts.rows = row_id;
    if let Some(w) = writer {
        counts.files = w.finish()? as u64;
    }
    Ok(counts)
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

/// The export of a hydration as the pipeline drives it.
pub struct Step;

impl crate::phases::Step for Step {
    const PHASE: Phase = Phase::Export;
    type Counts = ExportCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        let options = serde_json::json!({"hydrate": config.hydrate, "export": config.export});
        metadata_inputs(config, options)
    }

    fn run(ctx: &Context) -> Result<ExportCounts, PhaseError> {
        Ok(run(ctx)?)
    }
}
