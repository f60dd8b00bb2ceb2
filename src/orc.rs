//! Reading the ORC tables of Software Heritage's graph dataset export (`content`,
//! `skipped_content`), a file at a time and only the columns asked for, with errors that name
//! the file.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, LargeStringArray, RecordBatch, StringArray};
use orc_rust::projection::ProjectionMask;
use orc_rust::ArrowReaderBuilder;

/// An ORC table file that cannot be read, or holds what its reader did not expect.
#[derive(Debug, thiserror::Error)]
#[error("ORC table {path}")]
pub struct OrcError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl OrcError {
    /// An error of `path`.
    pub fn new(path: &Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

/// The ORC files of `table` under `orc_dir`, sorted by name (none when the folder is absent:
/// an export may lack a table, `skipped_content` most often).
pub fn table_files(orc_dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(orc_dir.join(table))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "orc"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Reads the columns `columns` of the ORC file `path`, batch by batch, into `each`; returns
/// the number of rows read. An error of `each` is reported as the file's.
pub fn for_each_batch(
    path: &Path,
    columns: &[&str],
    mut each: impl FnMut(&RecordBatch) -> Result<(), String>,
) -> Result<u64, OrcError> {
    let file = File::open(path).map_err(|e| OrcError::new(path, e))?;
    let builder = ArrowReaderBuilder::try_new(file).map_err(|e| OrcError::new(path, e))?;
    let mask = ProjectionMask::named_roots(builder.file_metadata().root_data_type(), columns);
    let mut rows = 0;
    for batch in builder.with_projection(mask).build() {
        let batch = batch.map_err(|e| OrcError::new(path, e))?;
        rows += batch.num_rows() as u64;
        each(&batch).map_err(|e| OrcError::new(path, e))?;
    }
    Ok(rows)
}

/// A text column of a batch, read in place.
pub enum Texts<'a> {
    /// Utf8, as orc-rust reads ORC strings.
    Small(&'a StringArray),
    /// LargeUtf8.
    Large(&'a LargeStringArray),
}

impl<'a> Texts<'a> {
    /// Row `i`'s text, `None` when null.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Texts::Small(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texts::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// The text column `name` of `batch`, or why not.
pub fn text<'a>(batch: &'a RecordBatch, name: &str) -> Result<Texts<'a>, String> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| format!("no column {name}"))?;
    c.as_string_opt::<i32>()
        .map(Texts::Small)
        .or_else(|| c.as_string_opt::<i64>().map(Texts::Large))
        .ok_or_else(|| format!("column {name} is {}, not Utf8", c.data_type()))
}
