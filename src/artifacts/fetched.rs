//! The fetch's output (`WORKDIR/fetch/fetched.parquet`): each needed blob's sha1 (hex) and
//! its status (`ok`, `blob_missing`, `corrupt_blob`, `fetch_failed`), by sha1.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};

use crate::model::{BlobStatus, Sha1, Status};
use crate::table::{self, TableError};

/// File name.
pub const FETCHED: &str = "fetched.parquet";

/// Writes the statuses, in the order given.
pub fn write(path: &Path, rows: &[(Sha1, BlobStatus)]) -> Result<(), TableError> {
    table::write(
        path,
        vec![
            (
                "sha1",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.0.to_hex()),
                )) as ArrayRef,
            ),
            (
                "status",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.as_str()),
                )),
            ),
        ],
    )?;
    Ok(())
}
