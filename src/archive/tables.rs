//! ORC tables in the schema of Software Heritage's graph dataset export.
//!
//! Column names and types are those of the export (see `swh-example-dataset/orc`): ids as
//! lower-case hex strings, names and messages as binary, dates as nanosecond timestamps with
//! a separate offset. Persons are pseudonymised as SHA-256 of their fullname, as in the public
//! export; swh-graph's compression requires exactly that.
//!
//! Rows are buffered per table and written in batches; a table rolls over to a new file every
//! `rows_per_file` rows so that big tables come as several files, which is what the later
//! sharded phases split on.
//!
//! The ORC files themselves are written by Apache ORC's C++ writer through pyarrow, as SWH's
//! own export is written from Python: batches are first written as Arrow IPC files, then
//! [`convert_to_orc`] turns each into a zstd ORC file. orc-rust 0.7 (swh-graph's) cannot
//! write timestamps, and orc-rust 0.9's writer panics on ordinary timestamp columns: its
//! RLEv2 patched-base encoder subtracts a rounded 95th-percentile bit width from an unrounded
//! maximum width, which underflows when dates span more than about 2^24 seconds.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int16Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::ipc::writer::FileWriter;
use sha2::{Digest, Sha256};

use super::ArchiveError;

/// The type of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// UTF-8 string.
    Str,
    /// Raw bytes.
    Bin,
    /// 64-bit integer.
    I64,
    /// 32-bit integer.
    I32,
    /// 16-bit integer.
    I16,
    /// Nanoseconds since the epoch, no time zone.
    Ts,
}

/// One value of a row, `None` for NULL.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    /// A string value.
    Str(Option<&'a str>),
    /// A binary value.
    Bin(Option<&'a [u8]>),
    /// An i64 value.
    I64(Option<i64>),
    /// An i32 value.
    I32(Option<i32>),
    /// An i16 value.
    I16(Option<i16>),
    /// A timestamp in nanoseconds.
    Ts(Option<i64>),
}

use ColType::*;

/// Every table the builder writes, with its columns in export order.
pub const TABLES: &[(&str, &[(&str, ColType)])] = &[
    ("origin", &[("id", Str), ("url", Str)]),
    (
        "origin_visit",
        &[("origin", Str), ("visit", I64), ("date", Ts), ("type", Str)],
    ),
    (
        "origin_visit_status",
        &[
            ("origin", Str),
            ("visit", I64),
            ("date", Ts),
            ("status", Str),
            ("snapshot", Str),
            ("type", Str),
        ],
    ),
    ("snapshot", &[("id", Str)]),
    (
        "snapshot_branch",
        &[
            ("snapshot_id", Str),
            ("name", Bin),
            ("target", Str),
            ("target_type", Str),
        ],
    ),
    (
        "release",
        &[
            ("id", Str),
            ("name", Bin),
            ("message", Bin),
            ("target", Str),
            ("target_type", Str),
            ("author", Bin),
            ("date", Ts),
            ("date_offset", I16),
            ("date_raw_offset_bytes", Bin),
            ("raw_manifest", Bin),
        ],
    ),
    (
        "revision",
        &[
            ("id", Str),
            ("message", Bin),
            ("author", Bin),
            ("date", Ts),
            ("date_offset", I16),
            ("date_raw_offset_bytes", Bin),
            ("committer", Bin),
            ("committer_date", Ts),
            ("committer_offset", I16),
            ("committer_date_raw_offset_bytes", Bin),
            ("directory", Str),
            ("type", Str),
            ("raw_manifest", Bin),
        ],
    ),
    (
        "revision_history",
        &[("id", Str), ("parent_id", Str), ("parent_rank", I32)],
    ),
    (
        "revision_extra_headers",
        &[("id", Str), ("key", Bin), ("value", Bin)],
    ),
    ("directory", &[("id", Str), ("raw_manifest", Bin)]),
    (
        "directory_entry",
        &[
            ("directory_id", Str),
            ("name", Bin),
            ("type", Str),
            ("target", Str),
            ("perms", I32),
        ],
    ),
    (
        "content",
        &[
            ("sha1", Str),
            ("sha1_git", Str),
            ("sha256", Str),
            ("blake2s256", Str),
            ("length", I64),
            ("status", Str),
            ("data", Bin),
        ],
    ),
    (
        "skipped_content",
        &[
            ("sha1", Str),
            ("sha1_git", Str),
            ("sha256", Str),
            ("blake2s256", Str),
            ("length", I64),
            ("status", Str),
            ("reason", Str),
        ],
    ),
];

/// The Arrow schema of a table of [`TABLES`].
pub fn schema_of(table: &str) -> Option<SchemaRef> {
    let (_, cols) = TABLES.iter().find(|(t, _)| *t == table)?;
    let fields: Vec<Field> = cols
        .iter()
        .map(|(name, ty)| {
            let dt = match ty {
                Str => DataType::Utf8,
                Bin => DataType::Binary,
                I64 => DataType::Int64,
                I32 => DataType::Int32,
                I16 => DataType::Int16,
                Ts => DataType::Timestamp(TimeUnit::Nanosecond, None),
            };
            Field::new(*name, dt, true)
        })
        .collect();
    let metadata = [("swh_object_type".to_string(), table.to_string())]
        .into_iter()
        .collect();
    Some(Arc::new(Schema::new_with_metadata(fields, metadata)))
}

/// SWH's pseudonym of a person: SHA-256 of the fullname.
pub fn pseudonym(fullname: &[u8]) -> [u8; 32] {
    Sha256::digest(fullname).into()
}

enum Builder {
    Str(StringBuilder),
    Bin(BinaryBuilder),
    I64(Int64Builder),
    I32(Int32Builder),
    I16(Int16Builder),
    Ts(TimestampNanosecondBuilder),
}

impl Builder {
    fn new(ty: ColType) -> Self {
        match ty {
            Str => Builder::Str(StringBuilder::new()),
            Bin => Builder::Bin(BinaryBuilder::new()),
            I64 => Builder::I64(Int64Builder::new()),
            I32 => Builder::I32(Int32Builder::new()),
            I16 => Builder::I16(Int16Builder::new()),
            Ts => Builder::Ts(TimestampNanosecondBuilder::new()),
        }
    }

    fn push(&mut self, v: Val) -> bool {
        match (self, v) {
            (Builder::Str(b), Val::Str(v)) => b.append_option(v),
            (Builder::Bin(b), Val::Bin(v)) => b.append_option(v),
            (Builder::I64(b), Val::I64(v)) => b.append_option(v),
            (Builder::I32(b), Val::I32(v)) => b.append_option(v),
            (Builder::I16(b), Val::I16(v)) => b.append_option(v),
            (Builder::Ts(b), Val::Ts(v)) => b.append_option(v),
            _ => return false,
        }
        true
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::Bin(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
        }
    }
}

/// Suffix of the Arrow IPC files that [`convert_to_orc`] turns into `.orc` files.
const IPC_SUFFIX: &str = ".arrow-ipc";

/// The conversion, run by python3: every IPC file under the folder becomes a zstd ORC file.
const CONVERT: &str = r#"
import os, sys
import pyarrow.ipc, pyarrow.orc
root = sys.argv[1]
for table in sorted(os.listdir(root)):
    folder = os.path.join(root, table)
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".arrow-ipc"):
            continue
        src = os.path.join(folder, name)
        data = pyarrow.ipc.open_file(src).read_all()
        dest = src[: -len(".arrow-ipc")] + ".orc"
        pyarrow.orc.write_table(data, dest + ".tmp", compression="zstd")
        os.rename(dest + ".tmp", dest)
        os.remove(src)
"#;

/// Checks that python3 with pyarrow, which writes the ORC files, is available.
pub fn check_orc_writer() -> Result<(), ArchiveError> {
    let ok = Command::new("python3")
        .args(["-c", "import pyarrow.orc, pyarrow.ipc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(())
    } else {
        Err(ArchiveError::Other(
            "writing ORC tables needs python3 with pyarrow (scripts/setup.sh installs it)".into(),
        ))
    }
}

/// Turns every table's Arrow IPC files under `orc_dir` into ORC files, in place.
pub fn convert_to_orc(orc_dir: &Path) -> Result<(), ArchiveError> {
    let out = Command::new("python3")
        .args(["-c", CONVERT])
        .arg(orc_dir)
        .output()
        .map_err(|e| ArchiveError::io(orc_dir, e))?;
    if !out.status.success() {
        return Err(ArchiveError::Orc {
            path: orc_dir.to_owned(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Rows buffered before they are handed to the writer as one batch.
const BATCH_ROWS: usize = 8192;

/// Writes one table as one or more ORC files under `<orc dir>/<table>/`.
pub struct TableWriter {
    name: &'static str,
    dir: PathBuf,
    schema: SchemaRef,
    builders: Vec<Builder>,
    buffered: usize,
    rows_in_file: u64,
    rows_per_file: u64,
    files: u32,
    writer: Option<FileWriter<File>>,
    /// Rows written so far.
    pub rows: u64,
}

impl TableWriter {
    fn new(orc_dir: &Path, name: &'static str, rows_per_file: u64) -> Result<Self, ArchiveError> {
        let unknown = || ArchiveError::Other(format!("unknown export table {name}"));
        let (_, cols) = TABLES
            .iter()
            .find(|(t, _)| *t == name)
            .ok_or_else(unknown)?;
        let dir = orc_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| ArchiveError::io(&dir, e))?;
        Ok(Self {
            name,
            dir,
            schema: schema_of(name).ok_or_else(unknown)?,
            builders: cols.iter().map(|(_, ty)| Builder::new(*ty)).collect(),
            buffered: 0,
            rows_in_file: 0,
            rows_per_file: rows_per_file.max(1),
            files: 0,
            writer: None,
            rows: 0,
        })
    }

    /// Appends a row; values must follow the table's column order and types.
    pub fn push(&mut self, row: &[Val]) -> Result<(), ArchiveError> {
        assert_eq!(row.len(), self.builders.len(), "row width of {}", self.name);
        for (i, (b, v)) in self.builders.iter_mut().zip(row).enumerate() {
            assert!(b.push(*v), "type of column {i} of {}", self.name);
        }
        self.buffered += 1;
        self.rows += 1;
        self.rows_in_file += 1;
        if self.buffered >= BATCH_ROWS || self.rows_in_file >= self.rows_per_file {
            self.flush_batch()?;
        }
        if self.rows_in_file >= self.rows_per_file {
            self.close_file()?;
        }
        Ok(())
    }

    fn open_file(&mut self) -> Result<&mut FileWriter<File>, ArchiveError> {
        if self.writer.is_none() {
            let path = self
                .dir
                .join(format!("{}-{:05}{IPC_SUFFIX}", self.name, self.files));
            self.files += 1;
            let file = File::create(&path).map_err(|e| ArchiveError::io(&path, e))?;
            let orc = |e: arrow::error::ArrowError| ArchiveError::Orc {
                path: path.clone(),
                reason: e.to_string(),
            };
            // Compressed: the staged files of a large archive would otherwise need several
            // times the disk of its ORC tables before the conversion.
            let options = arrow::ipc::writer::IpcWriteOptions::default()
                .try_with_compression(Some(arrow::ipc::CompressionType::ZSTD))
                .map_err(orc)?;
            let writer =
                FileWriter::try_new_with_options(file, &self.schema, options).map_err(orc)?;
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("just opened"))
    }

    fn flush_batch(&mut self) -> Result<(), ArchiveError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| ArchiveError::Orc {
                path: self.dir.clone(),
                reason: e.to_string(),
            })?;
        self.buffered = 0;
        let dir = self.dir.clone();
        self.open_file()?
            .write(&batch)
            .map_err(|e| ArchiveError::Orc {
                path: dir,
                reason: e.to_string(),
            })
    }

    fn close_file(&mut self) -> Result<(), ArchiveError> {
        if let Some(mut w) = self.writer.take() {
            w.finish().map_err(|e| ArchiveError::Orc {
                path: self.dir.clone(),
                reason: e.to_string(),
            })?;
        }
        self.rows_in_file = 0;
        Ok(())
    }

    /// Writes what is buffered and closes the current file. A table with no row still gets
    /// one empty file, as the export has, so that readers find every table.
    pub fn finish(mut self) -> Result<u64, ArchiveError> {
        self.flush_batch()?;
        if self.files == 0 {
            self.open_file()?;
        }
        self.close_file()?;
        Ok(self.rows)
    }
}

/// The writers of every table of one archive.
pub struct Tables {
    writers: Vec<TableWriter>,
}

impl Tables {
    /// Creates `orc_dir/<table>/` for every table.
    pub fn create(orc_dir: &Path, rows_per_file: u64) -> Result<Self, ArchiveError> {
        let writers = TABLES
            .iter()
            .map(|(name, _)| TableWriter::new(orc_dir, name, rows_per_file))
            .collect::<Result<_, _>>()?;
        Ok(Self { writers })
    }

    /// The writer of `table`.
    pub fn table(&mut self, table: &str) -> Result<&mut TableWriter, ArchiveError> {
        self.writers
            .iter_mut()
            .find(|w| w.name == table)
            .ok_or_else(|| ArchiveError::Other(format!("unknown export table {table}")))
    }

    /// Closes every table, writes the ORC files, and returns the row count of each table.
    pub fn finish(self, orc_dir: &Path) -> Result<Vec<(String, u64)>, ArchiveError> {
        let rows = self
            .writers
            .into_iter()
            .map(|w| {
                let name = w.name.to_string();
                w.finish().map(|rows| (name, rows))
            })
            .collect::<Result<Vec<_>, _>>()?;
        convert_to_orc(orc_dir)?;
        Ok(rows)
    }
}
