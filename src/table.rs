//! Parquet helpers for the files unearth reads and writes: whole-file and batch-by-batch
//! reading, writing with one set of writer properties, and typed column access with errors
//! that name the file and the column. Which columns a given file has is decided in
//! [`crate::artifacts`], not here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Errors reading or writing a Parquet file.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be opened, read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet reader or writer failed.
    #[error("{path}: not a readable Parquet file")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Arrow refused the data (mismatched lengths or types).
    #[error("{path}")]
    Arrow {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A column is missing or of the wrong type.
    #[error("{path}: column {column}: {reason}")]
    Column {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
}

impl TableError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TableError::Io {
            path: path.to_owned(),
            source,
        }
    }
    /// A Parquet error on `path`.
    pub fn parquet(path: &Path, source: parquet::errors::ParquetError) -> Self {
        TableError::Parquet {
            path: path.to_owned(),
            source,
        }
    }
    /// An Arrow error on `path`.
    pub fn arrow(path: &Path, source: arrow::error::ArrowError) -> Self {
        TableError::Arrow {
            path: path.to_owned(),
            source,
        }
    }
    /// The underlying error, without the file name this error adds (for callers that name
    /// the file themselves).
    pub fn into_cause(self) -> Box<dyn std::error::Error + Send + Sync> {
        match self {
            TableError::Io { source, .. } => Box::new(source),
            TableError::Parquet { source, .. } => Box::new(source),
            TableError::Arrow { source, .. } => Box::new(source),
            other => Box::new(other),
        }
    }

    /// A problem with column `column` of `path`.
    pub fn column(path: &Path, column: &str, reason: impl Into<String>) -> Self {
        TableError::Column {
            path: path.to_owned(),
            column: column.to_string(),
            reason: reason.into(),
        }
    }
}

/// The Parquet files directly in `dir`, sorted by name (phase outputs are numbered).
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, TableError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TableError::io(dir, e))?
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

/// Writes named columns as one Parquet file (all columns nullable); returns the rows written.
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
    .map_err(|e| TableError::arrow(path, e))?;
    let mut w = Writer::create(path, schema)?;
    w.write(&batch)?;
    w.close()?;
    Ok(rows)
}

/// Buffered bytes at which a Parquet row group is closed.
pub const ROW_GROUP_BYTES: usize = 64 << 20;

/// A Parquet file being written batch by batch.
pub struct Writer {
    path: PathBuf,
    inner: ArrowWriter<std::fs::File>,
}

impl Writer {
    /// Creates `path` for batches of `schema`.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self, TableError> {
        let file = std::fs::File::create(path).map_err(|e| TableError::io(path, e))?;
        let inner = ArrowWriter::try_new(file, schema, Some(writer_properties()))
            .map_err(|e| TableError::parquet(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            inner,
        })
    }

    /// Appends a batch. A row group is closed once its buffered pages pass
    /// [`ROW_GROUP_BYTES`]: the writer buffers a whole row group, and rows that carry file
    /// contents would otherwise hold up to the default 1M rows (gigabytes) in memory.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        self.inner
            .write(batch)
            .map_err(|e| TableError::parquet(&self.path, e))?;
        if self.inner.in_progress_size() > ROW_GROUP_BYTES {
            self.inner
                .flush()
                .map_err(|e| TableError::parquet(&self.path, e))?;
        }
        Ok(())
    }

    /// Bytes of the row group being buffered.
    pub fn buffered(&self) -> usize {
        self.inner.in_progress_size()
    }

    /// Closes the row group being buffered (writes it out).
    pub fn flush(&mut self) -> Result<(), TableError> {
        self.inner
            .flush()
            .map_err(|e| TableError::parquet(&self.path, e))
    }

    /// Finishes the file.
    pub fn close(self) -> Result<(), TableError> {
        self.inner
            .close()
            .map(|_| ())
            .map_err(|e| TableError::parquet(&self.path, e))
    }
}

/// Opens `path` for reading batch by batch; returns its schema and the batches.
pub fn open(path: &Path) -> Result<(SchemaRef, Batches), TableError> {
    let file = std::fs::File::open(path).map_err(|e| TableError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| TableError::parquet(path, e))?;
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| TableError::parquet(path, e))?;
    Ok((
        schema,
        Batches {
            path: path.to_owned(),
            reader,
        },
    ))
}

/// The batches of one Parquet file, with errors naming it.
pub struct Batches {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, TableError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.reader
            .next()
            .map(|r| r.map_err(|e| TableError::arrow(&self.path, e)))
    }
}

/// Number of rows of a Parquet file, from its metadata.
pub fn num_rows(path: &Path) -> Result<usize, TableError> {
    let file = std::fs::File::open(path).map_err(|e| TableError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| TableError::parquet(path, e))?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as usize)
}

/// Reads a whole Parquet file as one batch.
pub fn read(path: &Path) -> Result<RecordBatch, TableError> {
    let (schema, batches) = open(path)?;
    let batches: Vec<RecordBatch> = batches.collect::<Result<_, _>>()?;
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| TableError::arrow(path, e))
}

/// A column of a batch, by name, checked to exist.
pub fn column<'a>(
    batch: &'a RecordBatch,
    path: &Path,
    name: &str,
) -> Result<&'a ArrayRef, TableError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| TableError::column(path, name, "missing"))
}

/// A UInt64 column as values (nulls as `u64::MAX`).
pub fn u64s(batch: &RecordBatch, path: &Path, name: &str) -> Result<Vec<u64>, TableError> {
    let c = column(batch, path, name)?;
    let a = c.as_primitive_opt::<UInt64Type>().ok_or_else(|| {
        TableError::column(path, name, format!("is {}, not UInt64", c.data_type()))
    })?;
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { u64::MAX } else { a.value(i) })
        .collect())
}

/// A UInt64 column as optional values.
pub fn opt_u64s(
    batch: &RecordBatch,
    path: &Path,
    name: &str,
) -> Result<Vec<Option<u64>>, TableError> {
    let c = column(batch, path, name)?;
    let a = c.as_primitive_opt::<UInt64Type>().ok_or_else(|| {
        TableError::column(path, name, format!("is {}, not UInt64", c.data_type()))
    })?;
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect())
}

/// A UInt32 column as values (nulls as `u32::MAX`).
pub fn u32s(batch: &RecordBatch, path: &Path, name: &str) -> Result<Vec<u32>, TableError> {
    let c = column(batch, path, name)?;
    let a = c.as_primitive_opt::<UInt32Type>().ok_or_else(|| {
        TableError::column(path, name, format!("is {}, not UInt32", c.data_type()))
    })?;
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { u32::MAX } else { a.value(i) })
        .collect())
}

/// A Utf8 or LargeUtf8 column as borrowed strings (nulls as `None`).
pub fn strs<'a>(
    batch: &'a RecordBatch,
    path: &Path,
    name: &str,
) -> Result<Vec<Option<&'a str>>, TableError> {
    let c = column(batch, path, name)?;
    str_values(c)
        .ok_or_else(|| TableError::column(path, name, format!("is {}, not Utf8", c.data_type())))
}

/// A Utf8 or LargeUtf8 column as owned strings (nulls as `None`).
pub fn strings(
    batch: &RecordBatch,
    path: &Path,
    name: &str,
) -> Result<Vec<Option<String>>, TableError> {
    Ok(strs(batch, path, name)?
        .into_iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

/// The values of a Utf8 or LargeUtf8 array, borrowed; `None` for other types.
pub fn str_values(c: &ArrayRef) -> Option<Vec<Option<&str>>> {
    match c.data_type() {
        DataType::Utf8 => {
            let a = c.as_string::<i32>();
            Some(
                (0..a.len())
                    .map(|i| (!a.is_null(i)).then(|| a.value(i)))
                    .collect(),
            )
        }
        DataType::LargeUtf8 => {
            let a = c.as_string::<i64>();
            Some(
                (0..a.len())
                    .map(|i| (!a.is_null(i)).then(|| a.value(i)))
                    .collect(),
            )
        }
        _ => None,
    }
}
