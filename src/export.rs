//! Phase 9, **export**: the dataset, one row per input row, with the file contents.
//!
//! Each resolved row is completed with what the content join and the fetch found: `sha1`,
//! `size`, `language` (from the file name), `content` (UTF-8 text), The Stack's quality
//! columns (`avg_line_length`, `max_line_length`, `alphanum_fraction`) and, when
//! `include_binary` is set, `content_bytes`. The final `status` is the walk's, refined for
//! rows that named a file: `ok`, `symlink`, `binary` (not UTF-8: no `content`),
//! `skipped` (SWH did not archive it; `skip_reason` says why), `content_not_found`,
//! `blob_missing`, `corrupt_blob` or `fetch_failed`; the walk's own status stays in
//! `resolution_status`. Bytes that failed verification never reach this phase.
//!
//! Output (`WORKDIR/export/part-NNNNN.parquet`, zstd, `rows_per_file` rows each) and the
//! counts per status in the manifest. With `only_ok`, only `ok` rows are written.
//!
//! Memory: one input batch and its contents, plus the join and store indexes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::config::ExportOptions;
use crate::content::Known;
use crate::fetch::{BlobStatus, BlobStores};
use crate::language::{language, quality};
use crate::table::{self, TableError};

/// The status of a row once its content is known, and its bytes when it has them.
pub fn content_status(
    resolution: &str,
    sha1_git: Option<&str>,
    join: &HashMap<String, Known>,
    store: &BlobStores,
) -> Result<(String, Option<Vec<u8>>), TableError> {
    if !matches!(resolution, "ok" | "symlink") {
        return Ok((resolution.to_string(), None));
    }
    let Some(known) = sha1_git.and_then(|s| join.get(s)) else {
        return Ok(("content_not_found".into(), None));
    };
    match known.status {
        "skipped" => return Ok(("skipped".into(), None)),
        "visible" => {}
        _ => return Ok(("content_not_found".into(), None)),
    }
    let sha1 = known
        .sha1
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|v| <[u8; 20]>::try_from(v).ok());
    let Some(rec) = sha1.and_then(|s| store.get(&s)) else {
        return Ok(("fetch_failed".into(), None));
    };
    match rec.1.status {
        BlobStatus::Ok => {
            let bytes = store.read(rec).map_err(|e| TableError {
                path: "blob store".into(),
                reason: e.to_string(),
            })?;
            Ok((resolution.to_string(), Some(bytes)))
        }
        other => Ok((other.name().into(), None)),
    }
}

/// Writes Parquet files of at most `rows` rows each, atomically within the phase folder.
struct RollingWriter {
    dir: PathBuf,
    rows_per_file: usize,
    schema: Option<SchemaRef>,
    writer: Option<ArrowWriter<std::fs::File>>,
    in_file: usize,
    files: usize,
}

impl RollingWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        let mut start = 0;
        while start < batch.num_rows() {
            if self.writer.is_none() {
                let path = self.dir.join(format!("part-{:05}.parquet", self.files));
                self.files += 1;
                let f = std::fs::File::create(&path).map_err(|e| err(&path, e))?;
                let schema = self.schema.clone().unwrap_or_else(|| batch.schema());
                self.writer = Some(
                    ArrowWriter::try_new(f, schema, Some(table::writer_properties()))
                        .map_err(|e| err(&path, e))?,
                );
                self.in_file = 0;
            }
            let n = (self.rows_per_file - self.in_file).min(batch.num_rows() - start);
            let w = self.writer.as_mut().expect("opened");
            w.write(&batch.slice(start, n))
                .map_err(|e| err(&self.dir, e))?;
            self.in_file += n;
            start += n;
            if self.in_file >= self.rows_per_file {
                self.writer
                    .take()
                    .expect("opened")
                    .close()
                    .map_err(|e| err(&self.dir, e))?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<usize, TableError> {
        if let Some(w) = self.writer.take() {
            w.close().map_err(|e| err(&self.dir, e))?;
        }
        Ok(self.files)
    }
}

fn err(path: &Path, e: impl ToString) -> TableError {
    TableError {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Exports the resolved rows of `walk_dir` into `out`; returns rows written per status.
pub fn run(
    walk_dir: &Path,
    join: &HashMap<String, Known>,
    store: &BlobStores,
    opts: &ExportOptions,
    out: &Path,
) -> Result<BTreeMap<String, u64>, TableError> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut writer = RollingWriter {
        dir: out.to_owned(),
        rows_per_file: opts.rows_per_file.max(1),
        schema: None,
        writer: None,
        in_file: 0,
        files: 0,
    };
    for file in table::parquet_files(walk_dir)? {
        let f = std::fs::File::open(&file).map_err(|e| err(&file, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| err(&file, e))?
            .build()
            .map_err(|e| err(&file, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| err(&file, e))?;
            let status = table::strings(&batch, &file, "status")?;
            let sha1_git = table::strings(&batch, &file, "sha1_git")?;
            let path = table::strings(&batch, &file, "rel_path")
                .or_else(|_| table::strings(&batch, &file, "input_rel_path"))?;
            let mut final_status = Vec::new();
            let mut texts: Vec<Option<String>> = Vec::new();
            let mut bytes: Vec<Option<Vec<u8>>> = Vec::new();
            let mut sha1s = Vec::new();
            let mut sizes = Vec::new();
            for i in 0..batch.num_rows() {
                let resolution = status[i].as_deref().unwrap_or("invalid");
                let (st, data) = content_status(resolution, sha1_git[i].as_deref(), join, store)?;
                let known = sha1_git[i].as_deref().and_then(|s| join.get(s));
                sha1s.push(known.and_then(|k| k.sha1.clone()));
                sizes.push(known.and_then(|k| k.length));
                let (st, text, raw) = match data {
                    Some(d) => match String::from_utf8(d) {
                        Ok(t) => (st, Some(t), None),
                        Err(e) => ("binary".to_string(), None, Some(e.into_bytes())),
                    },
                    None => (st, None, None),
                };
                final_status.push(st);
                texts.push(text);
                bytes.push(raw);
            }
            let keep: Vec<bool> = final_status
                .iter()
                .map(|s| !opts.only_ok || s == "ok")
                .collect();
            for (s, k) in final_status.iter().zip(&keep) {
                if *k {
                    *counts.entry(s.clone()).or_default() += 1;
                }
            }
            let q: Vec<Option<crate::language::Quality>> =
                texts.iter().map(|t| t.as_deref().map(quality)).collect();
            let mut fields: Vec<Field> = Vec::new();
            let mut cols: Vec<ArrayRef> = Vec::new();
            for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
                let name = if f.name() == "status" {
                    "resolution_status"
                } else {
                    f.name().as_str()
                };
                fields.push(f.as_ref().clone().with_name(name));
                cols.push(c.clone());
            }
            let mut add = |name: &str, ty: DataType, a: ArrayRef| {
                fields.push(Field::new(name, ty, true));
                cols.push(a);
            };
            add(
                "status",
                DataType::Utf8,
                Arc::new(StringArray::from_iter_values(final_status.iter())),
            );
            add("sha1", DataType::Utf8, Arc::new(StringArray::from(sha1s)));
            add("size", DataType::UInt64, Arc::new(UInt64Array::from(sizes)));
            let langs: Vec<Option<&str>> = path
                .iter()
                .map(|p| p.as_deref().and_then(language))
                .collect();
            add(
                "language",
                DataType::Utf8,
                Arc::new(StringArray::from(langs)),
            );
            add(
                "content",
                DataType::Utf8,
                Arc::new(StringArray::from(texts)),
            );
            if opts.include_binary {
                let b: BinaryArray = bytes.iter().map(|b| b.as_deref()).collect();
                add("content_bytes", DataType::Binary, Arc::new(b));
            }
            add(
                "avg_line_length",
                DataType::Float64,
                Arc::new(Float64Array::from_iter(
                    q.iter().map(|q| q.map(|q| q.avg_line_length)),
                )),
            );
            add(
                "max_line_length",
                DataType::UInt64,
                Arc::new(UInt64Array::from_iter(
                    q.iter().map(|q| q.map(|q| q.max_line_length)),
                )),
            );
            add(
                "alphanum_fraction",
                DataType::Float64,
                Arc::new(Float64Array::from_iter(
                    q.iter().map(|q| q.map(|q| q.alphanum_fraction)),
                )),
            );
            let schema = Arc::new(Schema::new(fields));
            let full = RecordBatch::try_new(schema.clone(), cols).map_err(|e| err(&file, e))?;
            let kept = arrow::compute::filter_record_batch(&full, &BooleanArray::from(keep))
                .map_err(|e| err(&file, e))?;
            if writer.schema.is_none() {
                writer.schema = Some(schema);
            }
            if kept.num_rows() > 0 {
                writer.write(&kept)?;
            }
        }
    }
    let files = writer.finish()?;
    counts.insert("files".into(), files as u64);
    Ok(counts)
}
