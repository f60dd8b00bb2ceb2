//! The dataset (`WORKDIR/export/`): `part-NNNNN.parquet` (zstd, at most `rows_per_file` rows
//! each) and `summary.json` (the counts per status).
//!
//! Columns: the resolved file's, with the walk's `status` renamed `resolution_status`, then
//! `status` (final), `sha1`, `size`, `language`, `content` (UTF-8 text), `content_bytes`
//! (with `include_binary`), `avg_line_length`, `max_line_length`, `alphanum_fraction`. An
//! input column whose name is one of these is renamed `input_<name>`, as in the resolved
//! files, so that every part has unique column names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::resolved::{rename_inputs, WALK_COLUMNS};
use crate::model::{CountMap, RowStatus, Status};
use crate::table::{self, TableError};

/// The summary file.
pub const SUMMARY: &str = "summary.json";

/// The values the export adds to a batch of resolved rows, one entry per row: the only place
/// these columns are named, typed and ordered.
#[derive(Debug, Default)]
pub struct Added {
    /// Final status.
    pub status: Vec<RowStatus>,
    /// sha1 (hex), when the content join knows it.
    pub sha1: Vec<Option<String>>,
    /// Content length.
    pub size: Vec<Option<u64>>,
    /// Language from the file name.
    pub language: Vec<Option<&'static str>>,
    /// UTF-8 text.
    pub content: Vec<Option<String>>,
    /// Bytes of non-UTF-8 contents (kept only with `include_binary`).
    pub content_bytes: Vec<Option<Vec<u8>>>,
    /// Mean line length.
    pub avg_line_length: Vec<Option<f64>>,
    /// Longest line.
    pub max_line_length: Vec<Option<u64>>,
    /// Share of alphanumeric characters.
    pub alphanum_fraction: Vec<Option<f64>>,
}

impl Added {
    /// The added columns' names and types, in order.
    pub fn fields(include_binary: bool) -> Vec<Field> {
        let mut cols = vec![
            ("status", DataType::Utf8),
            ("sha1", DataType::Utf8),
            ("size", DataType::UInt64),
            ("language", DataType::Utf8),
            ("content", DataType::Utf8),
        ];
        if include_binary {
            cols.push(("content_bytes", DataType::Binary));
        }
        cols.extend([
            ("avg_line_length", DataType::Float64),
            ("max_line_length", DataType::UInt64),
            ("alphanum_fraction", DataType::Float64),
        ]);
        cols.into_iter()
            .map(|(n, t)| Field::new(n, t, true))
            .collect()
    }

    /// The added columns' arrays, in the order of [`Added::fields`].
    pub fn into_arrays(self, include_binary: bool) -> Vec<ArrayRef> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                self.status.iter().map(|s| s.as_str()),
            )),
            Arc::new(StringArray::from(self.sha1)),
            Arc::new(UInt64Array::from(self.size)),
            Arc::new(StringArray::from(self.language)),
            Arc::new(StringArray::from(self.content)),
        ];
        if include_binary {
            let raw: BinaryArray = self.content_bytes.iter().map(|b| b.as_deref()).collect();
            cols.push(Arc::new(raw));
        }
        cols.push(Arc::new(Float64Array::from(self.avg_line_length)));
        cols.push(Arc::new(UInt64Array::from(self.max_line_length)));
        cols.push(Arc::new(Float64Array::from(self.alphanum_fraction)));
        cols
    }
}

/// The export schema for resolved rows of schema `resolved`.
pub fn schema(resolved: &Schema, include_binary: bool) -> SchemaRef {
    let added = Added::fields(include_binary);
    let mut reserved: Vec<&str> = WALK_COLUMNS.to_vec();
    reserved.push("resolution_status");
    reserved.extend(added.iter().map(|f| f.name().as_str()));
    // The resolved file's input columns are those that are not the walk's own.
    let inputs: Vec<&str> = resolved
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !WALK_COLUMNS.contains(n))
        .collect();
    let mut renamed = rename_inputs(inputs.iter().copied(), &reserved).into_iter();
    let mut fields: Vec<Field> = Vec::new();
    for f in resolved.fields() {
        let name = f.name().as_str();
        let new = if name == "status" {
            "resolution_status".to_string()
        } else if WALK_COLUMNS.contains(&name) {
            name.to_string()
        } else {
            renamed.next().unwrap_or_else(|| name.to_string())
        };
        fields.push(f.as_ref().clone().with_name(new));
    }
    fields.extend(added);
    Arc::new(Schema::new(fields))
}

/// Writes Parquet parts of at most `rows_per_file` rows each into a folder.
pub struct PartWriter {
    dir: PathBuf,
    rows_per_file: usize,
    schema: SchemaRef,
    writer: Option<table::Writer>,
    in_file: usize,
    files: usize,
}

impl PartWriter {
    /// Parts of `schema` into `dir`.
    pub fn new(dir: &Path, schema: SchemaRef, rows_per_file: usize) -> Self {
        Self {
            dir: dir.to_owned(),
            rows_per_file: rows_per_file.max(1),
            schema,
            writer: None,
            in_file: 0,
            files: 0,
        }
    }

    /// Appends rows made of `columns` (in the schema's order).
    pub fn write(&mut self, columns: Vec<ArrayRef>) -> Result<(), TableError> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| TableError::arrow(&self.dir, e))?;
        let mut start = 0;
        while start < batch.num_rows() {
            if self.writer.is_none() {
                let path = self.dir.join(format!("part-{:05}.parquet", self.files));
                self.files += 1;
                self.writer = Some(table::Writer::create(&path, self.schema.clone())?);
                self.in_file = 0;
            }
            let n = (self.rows_per_file - self.in_file).min(batch.num_rows() - start);
            if let Some(w) = self.writer.as_mut() {
                w.write(&batch.slice(start, n))?;
            }
            self.in_file += n;
            start += n;
            if self.in_file >= self.rows_per_file {
                if let Some(w) = self.writer.take() {
                    w.close()?;
                }
            }
        }
        Ok(())
    }

    /// Finishes the last part; returns the number of parts.
    pub fn finish(mut self) -> Result<usize, TableError> {
        if let Some(w) = self.writer.take() {
            w.close()?;
        }
        Ok(self.files)
    }
}

/// Writes `summary.json` into `dir`.
pub fn write_summary(dir: &Path, counts: &CountMap) -> Result<(), TableError> {
    let path = dir.join(SUMMARY);
    let text = serde_json::to_string_pretty(counts).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|e| TableError::io(&path, e))
}
