//! The resolved rows (`WORKDIR/walk/resolved-NNNNN.parquet`), one file per input file, rows
//! in input order, every input row exactly once.
//!
//! Columns: `row_id`, the input's own columns, then what the walk found: `origin_url`,
//! `snapshot` (`swh:1:snp:...`), `revision` (hex), `sha1_git` (the content, hex),
//! `permissions` (git mode), `status`, `candidates` (revisions sharing the prefix in the
//! whole graph) and `candidates_with_path` (how many revisions of the origin with the prefix
//! hold the row's path: more than one means the prefix is ambiguous for this row). An
//! input column whose name is one of these is renamed `input_<name>` (prefixed again until
//! the name is unique), so that every file has unique column names. The required input
//! columns (`repo`, `commit_id`, `rel_path`) never clash and keep their names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::model::{RowStatus, Sha1Git, Status};
use crate::table::{self, TableError};

/// The columns the walk writes besides the input's: `row_id` first, then these, in order.
pub const WALK_COLUMNS: [&str; 9] = [
    "row_id",
    "origin_url",
    "snapshot",
    "revision",
    "sha1_git",
    "permissions",
    "status",
    "candidates",
    "candidates_with_path",
];

/// The type of each of [`WALK_COLUMNS`] after `row_id`.
fn walk_type(name: &str) -> DataType {
    match name {
        "permissions" | "candidates" | "candidates_with_path" => DataType::UInt32,
        _ => DataType::Utf8,
    }
}

/// Name of the resolved file of input file number `i`.
pub fn file_name(i: usize) -> String {
    format!("resolved-{i:05}.parquet")
}

/// The resolved files of a walk folder, in input order.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, TableError> {
    Ok(table::parquet_files(dir)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("resolved-"))
        })
        .collect())
}

/// Names for input columns that avoid `reserved` and each other: a clashing name gets
/// `input_` prefixed until it is unique.
pub fn rename_inputs<'a>(
    inputs: impl IntoIterator<Item = &'a str>,
    reserved: &[&str],
) -> Vec<String> {
    let inputs: Vec<&str> = inputs.into_iter().collect();
    let mut taken: Vec<String> = reserved.iter().map(|s| s.to_string()).collect();
    // Names that need no change are taken first, so that a renamed column never takes the
    // name of another input column.
    taken.extend(
        inputs
            .iter()
            .filter(|n| !reserved.contains(n))
            .map(|n| n.to_string()),
    );
    inputs
        .iter()
        .map(|&n| {
            if !reserved.contains(&n) {
                return n.to_string();
            }
            let mut name = format!("input_{n}");
            while taken.contains(&name) {
                name = format!("input_{name}");
            }
            taken.push(name.clone());
            name
        })
        .collect()
}

/// What the walk found for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Origin the revision was found in.
    pub origin_url: Option<String>,
    /// Snapshot through which it was reached.
    pub snapshot: Option<Sha1Git>,
    /// The revision.
    pub revision: Option<Sha1Git>,
    /// The content (or link blob).
    pub sha1_git: Option<Sha1Git>,
    /// Git mode of the leaf entry.
    pub permissions: Option<u32>,
    /// Status.
    pub status: RowStatus,
    /// Revisions with the row's prefix in the whole graph.
    pub candidates: Option<u32>,
    /// Revisions of the origin with the prefix whose tree holds the row's path.
    pub candidates_with_path: Option<u32>,
}

/// Writes one resolved file.
pub struct ResolvedWriter {
    schema: SchemaRef,
    writer: table::Writer,
    path: PathBuf,
}

impl ResolvedWriter {
    /// Creates `path` for rows of an input file with schema `input`.
    pub fn create(path: &Path, input: &Schema) -> Result<Self, TableError> {
        let mut fields = vec![Field::new("row_id", DataType::UInt64, false)];
        let names = rename_inputs(
            input.fields().iter().map(|f| f.name().as_str()),
            &WALK_COLUMNS,
        );
        // Input fields are nullable in the output whatever the part said, so that every part
        // of a dataset has one schema.
        for (f, name) in input.fields().iter().zip(names) {
            fields.push(f.as_ref().clone().with_name(name).with_nullable(true));
        }
        for name in &WALK_COLUMNS[1..] {
            fields.push(Field::new(*name, walk_type(name), true));
        }
        let schema = Arc::new(Schema::new(fields));
        let writer = table::Writer::create(path, schema.clone())?;
        Ok(Self {
            schema,
            writer,
            path: path.to_owned(),
        })
    }

    /// Appends the rows of one input batch, whose first row has id `first_row_id`.
    pub fn write(
        &mut self,
        first_row_id: u64,
        input: &RecordBatch,
        rows: &[Resolution],
    ) -> Result<(), TableError> {
        let n = input.num_rows();
        let mut cols: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
            first_row_id..first_row_id + n as u64,
        ))];
        cols.extend(input.columns().iter().cloned());
        let hex = |v: Option<Sha1Git>| v.map(|s| s.to_hex());
        cols.push(Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.origin_url.as_deref()),
        )));
        cols.push(Arc::new(StringArray::from_iter(
            rows.iter()
                .map(|r| r.snapshot.map(|s| format!("swh:1:snp:{s}"))),
        )));
        cols.push(Arc::new(StringArray::from_iter(
            rows.iter().map(|r| hex(r.revision)),
        )));
        cols.push(Arc::new(StringArray::from_iter(
            rows.iter().map(|r| hex(r.sha1_git)),
        )));
        cols.push(Arc::new(UInt32Array::from_iter(
            rows.iter().map(|r| r.permissions),
        )));
        cols.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.status.as_str()),
        )));
        cols.push(Arc::new(UInt32Array::from_iter(
            rows.iter().map(|r| r.candidates),
        )));
        cols.push(Arc::new(UInt32Array::from_iter(
            rows.iter().map(|r| r.candidates_with_path),
        )));
        let batch = RecordBatch::try_new(self.schema.clone(), cols)
            .map_err(|e| TableError::arrow(&self.path, e))?;
        self.writer.write(&batch)
    }

    /// Finishes the file.
    pub fn close(self) -> Result<(), TableError> {
        self.writer.close()
    }
}

/// A batch of resolved rows with typed access to the walk's columns.
pub struct ResolvedBatch {
    /// The rows as stored.
    pub batch: RecordBatch,
    /// Per row: its status.
    pub status: Vec<RowStatus>,
    /// Per row: its content id.
    pub sha1_git: Vec<Option<Sha1Git>>,
}

impl ResolvedBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// A text column (`rel_path`, `repo`...), borrowed.
    pub fn strings(&self, name: &str) -> Option<Vec<Option<&str>>> {
        self.batch.column_by_name(name).and_then(table::str_values)
    }
}

/// Reads the resolved file `path` batch by batch.
pub fn batches(
    path: &Path,
) -> Result<impl Iterator<Item = Result<ResolvedBatch, TableError>>, TableError> {
    let (_, batches) = table::open(path)?;
    let path = path.to_owned();
    Ok(batches.map(move |b| typed(&path, b?)))
}

fn typed(path: &Path, batch: RecordBatch) -> Result<ResolvedBatch, TableError> {
    let status_col = table::column(&batch, path, "status")?;
    let status_text = table::str_values(status_col)
        .ok_or_else(|| TableError::column(path, "status", "not Utf8"))?;
    let status = status_text
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.and_then(RowStatus::parse).ok_or_else(|| {
                TableError::column(path, "status", format!("row {i}: unknown status {s:?}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sha_col = table::column(&batch, path, "sha1_git")?;
    let sha_text = table::str_values(sha_col)
        .ok_or_else(|| TableError::column(path, "sha1_git", "not Utf8"))?;
    let sha1_git = sha_text
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            None => Ok(None),
            Some(t) => Sha1Git::from_hex(t)
                .map(Some)
                .map_err(|e| TableError::column(path, "sha1_git", format!("row {i}: {e}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ResolvedBatch {
        batch,
        status,
        sha1_git,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clashing_input_columns_get_unique_names() {
        let names = rename_inputs(
            ["repo", "status", "input_status", "row_id", "extra"],
            &WALK_COLUMNS,
        );
        assert_eq!(
            names,
            [
                "repo",
                "input_input_status",
                "input_status",
                "input_row_id",
                "extra"
            ]
        );
        let mut all: Vec<&str> = WALK_COLUMNS.to_vec();
        all.extend(names.iter().map(String::as_str));
        let before = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), before, "unique");
    }
}
