//! The files of the work directory: one module per file kind, with its name, its columns,
//! its writer and its reader. This is the only place a work-directory file's columns are
//! named; phases exchange data through these types, not through column names.
//!
//! | folder | module | files |
//! |---|---|---|
//! | `plan/` | [`plan`] | `pairs.parquet`, `components.parquet`, `rejects.parquet`, `pairs.flat`, `prefixes.flat`, `inputs.json` |
//! | `names/` | [`entries`] (names), [`bits`] | `names.flat`, `wanted.bits` |
//! | `scan/` | [`candidates`] | `candidates.parquet`, `candidates.flat`, `origins.parquet` |
//! | `match/` | [`matches`](mod@matches) | `pairs.flat`, `members.flat` |
//! | `reach/` | [`bits`] | `dirs.bits` |
//! | `labels/` | [`entries`] | `entries.flat` |
//! | `walk/` | [`resolved`], [`licenses`] | `resolved-NNNNN.parquet`, `licenses.flat` |
//! | `content/` | [`join`], [`ids`] (hydrate) | `join.parquet` (`found.parquet` in shards), `ids.flat` |
//! | `fetch/` | [`fetched`] | `fetched.parquet` |
//! | `export/` | [`export`] | `part-NNNNN.parquet`, `summary.json` |
//!
//! `.flat` files ([`flat`]) are arrays of fixed-size records behind a 16-byte header, sorted
//! by key and read memory-mapped with binary search: the tables later phases look up by key
//! without loading them.

pub mod bits;
pub mod candidates;
pub mod entries;
pub mod export;
pub mod fetched;
pub mod flat;
pub mod ids;
pub mod join;
pub mod licenses;
pub mod matches;
pub mod plan;
pub mod resolved;

use std::path::{Path, PathBuf};

use crate::table::{self, TableError};

/// Concatenates Parquet files of one schema into `out`, batch by batch.
pub fn concat(files: &[PathBuf], out: &Path) -> Result<(), TableError> {
    let mut writer: Option<table::Writer> = None;
    for f in files {
        let (schema, batches) = table::open(f)?;
        if writer.is_none() {
            writer = Some(table::Writer::create(out, schema)?);
        }
        for b in batches {
            if let Some(w) = writer.as_mut() {
                w.write(&b?)?;
            }
        }
    }
    match writer {
        Some(w) => w.close(),
        None => Err(TableError::io(
            out,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no file to concatenate"),
        )),
    }
}

/// A name part no other process picks at the same moment: process ids alone repeat across
/// the nodes of a cluster sharing one file system.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so
/// that `path` holds either its old content or the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", unique_suffix()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The file that marks a folder as unearth's output: only such a folder is ever replaced.
pub const OURS: &str = ".unearth-output";

/// Puts the finished folder `staging` in the place of `dest`, atomically for readers: a
/// `dest` that exists must be unearth's (it holds [`OURS`]); it is moved aside, `staging` is
/// renamed into place (and marked), and the old one removed.
pub fn replace_dir(staging: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::write(
        staging.join(OURS),
        b"written by unearth; replaced by its next run\n",
    )?;
    let aside = dest.with_file_name(format!(
        ".{}.old-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        unique_suffix()
    ));
    let had = match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() && dest.join(OURS).is_file() => {
            std::fs::rename(dest, &aside)?;
            true
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not unearth's output (no {OURS}); move it away or choose \
                     another folder",
                    dest.display()
                ),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    std::fs::rename(staging, dest)?;
    if had {
        std::fs::remove_dir_all(&aside)?;
    }
    Ok(())
}
