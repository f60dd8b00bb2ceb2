//! The fetch's output (`WORKDIR/fetch/fetched.parquet`): each needed blob's sha1 (hex) and
//! its status (`ok`, `blob_missing`, `corrupt_blob`, `fetch_failed`), by sha1.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::model::{BlobStatus, Sha1, Status};
use crate::table::{self, TableError};

/// File name.
pub const FETCHED: &str = "fetched.parquet";

/// The statuses of a fetch, written round by round (a round's statuses are all it holds).
pub struct FetchedWriter {
    path: std::path::PathBuf,
    schema: SchemaRef,
    inner: table::Writer,
}

impl FetchedWriter {
    /// Creates the file at `path`.
    pub fn create(path: &Path) -> Result<Self, TableError> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("sha1", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
        ]));
        Ok(Self {
            path: path.to_owned(),
            inner: table::Writer::create(path, schema.clone())?,
            schema,
        })
    }

    /// Appends statuses, in the order given (by sha1).
    pub fn write(&mut self, rows: &[(Sha1, BlobStatus)]) -> Result<(), TableError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.to_hex()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| TableError::arrow(&self.path, e))?;
        self.inner.write(&batch)
    }

    /// Finishes the file.
    pub fn finish(self) -> Result<(), TableError> {
        self.inner.close()
    }
}
