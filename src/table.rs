//! Small helpers for the Parquet files phases exchange.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Errors reading or writing a phase table.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TableError {
    /// The file.
    pub path: String,
    /// What failed.
    pub reason: String,
}

fn err(path: &Path, reason: impl ToString) -> TableError {
    TableError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The Parquet files directly in `dir`, sorted by name (phase outputs are numbered).
pub fn parquet_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, TableError> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

/// Writer properties of every Parquet file unearth writes.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
}

/// Writes named columns as one Parquet file (all columns nullable).
pub fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) -> Result<u64, TableError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let rows = columns.first().map(|(_, a)| a.len()).unwrap_or(0) as u64;
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|e| err(path, e))?;
    let file = std::fs::File::create(path).map_err(|e| err(path, e))?;
    let mut w =
        ArrowWriter::try_new(file, schema, Some(writer_properties())).map_err(|e| err(path, e))?;
    w.write(&batch).map_err(|e| err(path, e))?;
    w.close().map_err(|e| err(path, e))?;
    Ok(rows)
}

/// Reads a whole Parquet file as one batch.
pub fn read(path: &Path) -> Result<RecordBatch, TableError> {
    let file = std::fs::File::open(path).map_err(|e| err(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(path, e))?;
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| err(path, e))?;
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(|e| err(path, e))?;
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| err(path, e))
}

/// A column of a batch, by name, checked to exist.
pub fn column<'a>(
    batch: &'a RecordBatch,
    path: &Path,
    name: &str,
) -> Result<&'a ArrayRef, TableError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| err(path, format!("missing column {name}")))
}

/// A UInt64 column as values (nulls as `u64::MAX`).
pub fn u64s(batch: &RecordBatch, path: &Path, name: &str) -> Result<Vec<u64>, TableError> {
    let c = column(batch, path, name)?;
    let a = c
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| err(path, format!("column {name} is not UInt64")))?;
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { u64::MAX } else { a.value(i) })
        .collect())
}

/// A UInt32 column as values (nulls as `u32::MAX`).
pub fn u32s(batch: &RecordBatch, path: &Path, name: &str) -> Result<Vec<u32>, TableError> {
    let c = column(batch, path, name)?;
    let a = c
        .as_primitive_opt::<UInt32Type>()
        .ok_or_else(|| err(path, format!("column {name} is not UInt32")))?;
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { u32::MAX } else { a.value(i) })
        .collect())
}

/// A Utf8 or LargeUtf8 column as owned strings (nulls as `None`).
pub fn strings(
    batch: &RecordBatch,
    path: &Path,
    name: &str,
) -> Result<Vec<Option<String>>, TableError> {
    let c = column(batch, path, name)?;
    match c.data_type() {
        DataType::Utf8 => {
            let a = c.as_string::<i32>();
            Ok((0..a.len())
                .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
                .collect())
        }
        DataType::LargeUtf8 => {
            let a = c.as_string::<i64>();
            Ok((0..a.len())
                .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
                .collect())
        }
        other => Err(err(path, format!("column {name} is {other}, not Utf8"))),
    }
}
