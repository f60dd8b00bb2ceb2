//! Phase 7, **content join**: sha1_git -> sha1, length and archive status, from one pass
//! over the ORC `content` and `skipped_content` tables.
//!
//! SWH's blob store is keyed by plain sha1, which the graph does not have; the export tables
//! do. Only the needed columns are read (`sha1`, `sha1_git`, `length`, and `reason` for
//! skipped contents), file by file in name order (the unit a sharded run will split on), and
//! kept only when their sha1_git is one the resolved rows need.
//!
//! Output (`WORKDIR/content/join.parquet`), one row per needed sha1_git: `sha1` and `length`
//! when known, and `status`: `visible`, `skipped` (with SWH's `reason`) or
//! `content_not_found` (in neither table).
//!
//! Memory: the set of needed ids (20 bytes each) and their answers.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Int64Type};
use orc_rust::projection::ProjectionMask;
use orc_rust::ArrowReaderBuilder;

use crate::table;

/// Errors of the content join.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// An ORC table file that cannot be read.
    #[error("ORC table {path}: {reason}")]
    Orc {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The configuration names no ORC folder.
    #[error(
        "the content join needs `orc = \"<folder of the export tables>\"` in the configuration"
    )]
    NoOrc,
    /// A phase table.
    #[error(transparent)]
    Table(#[from] table::TableError),
}

/// What the archive knows of one content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Hex sha1 (the object store key), when the table has it.
    pub sha1: Option<String>,
    /// Length in bytes.
    pub length: Option<u64>,
    /// `visible` or `skipped`.
    pub status: &'static str,
    /// SWH's reason, for skipped contents.
    pub reason: Option<String>,
}

/// The ORC files of `table` under `orc_dir`, sorted.
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

fn strings(batch: &arrow::array::RecordBatch, name: &str) -> Option<Vec<Option<String>>> {
    let c = batch.column_by_name(name)?;
    match c.data_type() {
        DataType::Utf8 => {
            let a = c.as_string::<i32>();
            Some(
                (0..a.len())
                    .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
                    .collect(),
            )
        }
        DataType::LargeUtf8 => {
            let a = c.as_string::<i64>();
            Some(
                (0..a.len())
                    .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Reads one ORC file of `content` or `skipped_content`, recording the needed rows.
pub fn scan_file(
    path: &Path,
    skipped: bool,
    needed: &HashMap<String, ()>,
    found: &mut HashMap<String, Known>,
) -> Result<u64, ContentError> {
    let err = |r: &dyn std::fmt::Display| ContentError::Orc {
        path: path.to_owned(),
        reason: r.to_string(),
    };
    let file = File::open(path).map_err(|e| err(&e))?;
    let builder = ArrowReaderBuilder::try_new(file).map_err(|e| err(&e))?;
    let mut cols = vec!["sha1", "sha1_git", "length"];
    if skipped {
        cols.push("reason");
    }
    let mask = ProjectionMask::named_roots(builder.file_metadata().root_data_type(), &cols);
    let reader = builder.with_projection(mask).build();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| err(&e))?;
        rows += batch.num_rows() as u64;
        let sha1_git =
            strings(&batch, "sha1_git").ok_or_else(|| err(&"no Utf8 sha1_git column"))?;
        let sha1 = strings(&batch, "sha1").ok_or_else(|| err(&"no Utf8 sha1 column"))?;
        let reason = if skipped {
            strings(&batch, "reason")
        } else {
            None
        };
        let length = batch
            .column_by_name("length")
            .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
            .ok_or_else(|| err(&"no Int64 length column"))?;
        for i in 0..batch.num_rows() {
            let Some(id) = &sha1_git[i] else { continue };
            if !needed.contains_key(id) {
                continue;
            }
            let known = Known {
                sha1: sha1[i].clone(),
                length: (!length.is_null(i)).then(|| length.value(i).max(0) as u64),
                status: if skipped { "skipped" } else { "visible" },
                reason: reason.as_ref().and_then(|r| r[i].clone()),
            };
            // A visible copy wins over a skipped one.
            match found.get(id) {
                Some(k) if k.status == "visible" => {}
                _ => {
                    found.insert(id.clone(), known);
                }
            }
        }
    }
    Ok(rows)
}

/// Every ORC file of `content` then `skipped_content` under `orc_dir`, with whether it is
/// of the skipped table: the list shards split.
pub fn all_files(orc_dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut files: Vec<(PathBuf, bool)> = table_files(orc_dir, "content")
        .into_iter()
        .map(|f| (f, false))
        .collect();
    files.extend(
        table_files(orc_dir, "skipped_content")
            .into_iter()
            .map(|f| (f, true)),
    );
    files
}

/// Reads `files`, keeping the rows whose sha1_git is needed; returns them and the rows read.
pub fn scan(
    files: &[(PathBuf, bool)],
    needed: &[String],
) -> Result<(HashMap<String, Known>, u64), ContentError> {
    let want: HashMap<String, ()> = needed.iter().map(|s| (s.clone(), ())).collect();
    let mut found: HashMap<String, Known> = HashMap::new();
    let mut rows = 0;
    for (f, skipped) in files {
        rows += scan_file(f, *skipped, &want, &mut found)?;
    }
    Ok((found, rows))
}

/// Adds `other` into `into`, a visible copy winning over a skipped one.
pub fn merge_into(into: &mut HashMap<String, Known>, other: HashMap<String, Known>) {
    for (id, k) in other {
        match into.get(&id) {
            Some(old) if old.status == "visible" => {}
            _ => {
                into.insert(id, k);
            }
        }
    }
}

/// Writes one row per id of `ids` (sorted), `content_not_found` for those not in `found`;
/// returns the count per status.
pub fn write(
    path: &Path,
    ids: &[String],
    found: &HashMap<String, Known>,
) -> Result<HashMap<&'static str, u64>, ContentError> {
    let get = |id: &String| found.get(id);
    let mut counts: HashMap<&'static str, u64> = HashMap::new();
    for id in ids {
        *counts
            .entry(get(id).map_or("content_not_found", |k| k.status))
            .or_default() += 1;
    }
    table::write(
        path,
        vec![
            (
                "sha1_git",
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|s| s.as_str()),
                )) as ArrayRef,
            ),
            (
                "sha1",
                Arc::new(StringArray::from_iter(
                    ids.iter().map(|id| get(id).and_then(|k| k.sha1.clone())),
                )),
            ),
            (
                "length",
                Arc::new(UInt64Array::from_iter(
                    ids.iter().map(|id| get(id).and_then(|k| k.length)),
                )),
            ),
            (
                "status",
                Arc::new(StringArray::from_iter_values(
                    ids.iter()
                        .map(|id| get(id).map_or("content_not_found", |k| k.status)),
                )),
            ),
            (
                "reason",
                Arc::new(StringArray::from_iter(
                    ids.iter().map(|id| get(id).and_then(|k| k.reason.clone())),
                )),
            ),
        ],
    )?;
    Ok(counts)
}

/// The join read back: sha1_git -> what is known.
pub fn load(path: &Path) -> Result<HashMap<String, Known>, table::TableError> {
    let b = table::read(path)?;
    let ids = table::strings(&b, path, "sha1_git")?;
    let sha1 = table::strings(&b, path, "sha1")?;
    let length = table::u64s(&b, path, "length")?;
    let status = table::strings(&b, path, "status")?;
    let reason = table::strings(&b, path, "reason")?;
    Ok((0..b.num_rows())
        .filter_map(|i| {
            let st: &'static str = match status[i].as_deref() {
                Some("visible") => "visible",
                Some("skipped") => "skipped",
                _ => "content_not_found",
            };
            ids[i].clone().map(|id| {
                (
                    id,
                    Known {
                        sha1: sha1[i].clone(),
                        length: (length[i] != u64::MAX).then_some(length[i]),
                        status: st,
                        reason: reason[i].clone(),
                    },
                )
            })
        })
        .collect())
}
