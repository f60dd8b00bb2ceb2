//! The plan's files (`WORKDIR/plan/`):
//!
//! - `pairs.parquet`: the distinct `(repository, prefix)` pairs, sorted by normalised slug
//!   then prefix, numbered in that order: `pair_id`, `slug` (normalised), `prefix`
//!   (lower-case hex), `depth` (components of the pair's longest requested path);
//! - `pairs.flat`: `(hash of the pair's key, pair_id)` sorted by hash, to find a row's pair;
//! - `prefixes.flat`: the distinct prefixes, by length then value, for the revision scan;
//! - `components.parquet`: the distinct path components (`name`), sorted, for the label pass;
//! - `rejects.parquet`: invalid rows (`row_id`, `file`, `row`, `reason`);
//! - `inputs.json`: the input files in row-id order, with their row counts.
//!
//! Nothing is per row: the walk reads the metadata again and finds each row's pair by key.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::flat::{le, FixedRecord, FlatError, FlatFile};
use crate::model::slug::{key_hash, pair_key};
use crate::table::{self, TableError};

/// The distinct pairs.
pub const PAIRS: &str = "pairs.parquet";
/// Pair ids by key hash.
pub const PAIR_INDEX: &str = "pairs.flat";
/// The distinct prefixes.
pub const PREFIXES: &str = "prefixes.flat";
/// The distinct path components.
pub const COMPONENTS: &str = "components.parquet";
/// The invalid rows.
pub const REJECTS: &str = "rejects.parquet";
/// The input files in row-id order, with their row counts (JSON).
pub const INPUTS: &str = "inputs.json";

/// An invalid input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Row id (position in the whole input).
    pub row_id: u64,
    /// The input file.
    pub file: String,
    /// Row number in that file.
    pub row: u64,
    /// Why it is invalid.
    pub reason: String,
}

/// One distinct pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Its id (rank in slug, prefix order).
    pub id: u32,
    /// Normalised slug.
    pub slug: String,
    /// Lower-case hex prefix.
    pub prefix: String,
    /// Components of its longest requested path.
    pub depth: u8,
}

fn pairs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pair_id", DataType::UInt32, false),
        Field::new("slug", DataType::Utf8, false),
        Field::new("prefix", DataType::Utf8, false),
        Field::new("depth", DataType::UInt8, false),
    ]))
}

/// A Parquet file written from records, a batch of 65,536 at a time: the writer of
/// `pairs.parquet`, `components.parquet` and `rejects.parquet`, each with its schema and its
/// records' columns.
pub struct RecordWriter<T> {
    path: std::path::PathBuf,
    writer: table::Writer,
    schema: SchemaRef,
    columns: fn(&[T]) -> Vec<ArrayRef>,
    pending: Vec<T>,
    /// Records written.
    pub count: u64,
}

impl<T> RecordWriter<T> {
    fn open(
        path: &Path,
        schema: SchemaRef,
        columns: fn(&[T]) -> Vec<ArrayRef>,
    ) -> Result<Self, TableError> {
        Ok(Self {
            writer: table::Writer::create(path, schema.clone())?,
            path: path.to_owned(),
            schema,
            columns,
            pending: Vec::new(),
            count: 0,
        })
    }

    /// Appends a record.
    pub fn push(&mut self, record: T) -> Result<(), TableError> {
        self.pending.push(record);
        self.count += 1;
        if self.pending.len() >= 65_536 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TableError> {
        let records = std::mem::take(&mut self.pending);
        let batch = RecordBatch::try_new(self.schema.clone(), (self.columns)(&records))
            .map_err(|e| TableError::arrow(&self.path, e))?;
        self.writer.write(&batch)
    }

    /// Finishes the file; returns how many records it holds.
    pub fn finish(mut self) -> Result<u64, TableError> {
        self.flush()?;
        self.writer.close()?;
        Ok(self.count)
    }
}

/// Writes `pairs.parquet` (ids must come in order).
pub type PairsWriter = RecordWriter<Pair>;

impl PairsWriter {
    /// Creates `dir/pairs.parquet`.
    pub fn create(dir: &Path) -> Result<Self, TableError> {
        Self::open(&dir.join(PAIRS), pairs_schema(), |p| {
            vec![
                Arc::new(UInt32Array::from_iter_values(p.iter().map(|x| x.id))),
                Arc::new(StringArray::from_iter_values(
                    p.iter().map(|x| x.slug.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    p.iter().map(|x| x.prefix.as_str()),
                )),
                Arc::new(UInt8Array::from_iter_values(p.iter().map(|x| x.depth))),
            ]
        })
    }
}

/// Reads `pairs.parquet` batch by batch, in id order.
pub fn read_pairs(
    dir: &Path,
) -> Result<impl Iterator<Item = Result<Vec<Pair>, TableError>>, TableError> {
    let path = dir.join(PAIRS);
    let (_, batches) = table::open(&path)?;
    Ok(batches.map(move |b| {
        let b = b?;
        let ids = table::u32s(&b, &path, "pair_id")?;
        let slugs = table::strings(&b, &path, "slug")?;
        let prefixes = table::strings(&b, &path, "prefix")?;
        let depth = table::column(&b, &path, "depth")?
            .as_any()
            .downcast_ref::<UInt8Array>()
            .ok_or_else(|| TableError::column(&path, "depth", "not UInt8"))?
            .values()
            .to_vec();
        Ok((0..b.num_rows())
            .map(|i| Pair {
                id: ids[i],
                slug: slugs[i].clone().unwrap_or_default(),
                prefix: prefixes[i].clone().unwrap_or_default(),
                depth: depth[i],
            })
            .collect())
    }))
}

/// A pair's id by the hash of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PairIndex {
    /// [`key_hash`] of the pair's key.
    pub hash: u128,
    /// Its id.
    pub pair_id: u32,
}

impl FixedRecord for PairIndex {
    const SIZE: usize = 20;
    const KIND: [u8; 4] = *b"pair";
    fn write_to(&self, out: &mut [u8]) {
        out[..16].copy_from_slice(&self.hash.to_le_bytes());
        out[16..20].copy_from_slice(&self.pair_id.to_le_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        Self {
            hash: le::u128_at(b, 0),
            pair_id: le::u32_at(b, 16),
        }
    }
}

/// Finds a pair's id from its normalised slug and prefix.
pub struct PairLookup(FlatFile<PairIndex>);

impl PairLookup {
    /// Maps `dir/pairs.flat`.
    pub fn open(dir: &Path) -> Result<Self, FlatError> {
        Ok(Self(FlatFile::open(&dir.join(PAIR_INDEX))?))
    }

    /// The id of the pair `(slug, prefix)`, if the plan has it.
    pub fn get(&self, slug: &str, prefix: &str) -> Option<u32> {
        let h = key_hash(&pair_key(slug, prefix));
        let i = self.0.partition_point(|r| r.hash < h);
        self.0.get(i).filter(|r| r.hash == h).map(|r| r.pair_id)
    }
}

/// A requested prefix: its hex digits as bytes (zero-padded) and how many digits it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Prefix {
    /// Number of hex digits (4 to 40); sorts first, so each length is one run.
    pub digits: u8,
    /// The digits, two per byte, zero-padded.
    pub bytes: [u8; 20],
}

impl Prefix {
    /// The prefix of lower-case hex text (4 to 40 digits), `None` otherwise.
    pub fn parse(hex: &str) -> Option<Self> {
        if !(4..=40).contains(&hex.len()) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 20];
        for (i, c) in hex.bytes().enumerate() {
            let v = (c as char).to_digit(16)? as u8;
            bytes[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
        }
        Some(Self {
            digits: hex.len() as u8,
            bytes,
        })
    }

    /// `id` cut to `digits` hex digits (the rest zeroed): the prefix it would match.
    pub fn of_id(id: &[u8; 20], digits: u8) -> Self {
        let mut bytes = *id;
        let d = digits as usize;
        if d < 40 {
            if d % 2 == 1 {
                bytes[d / 2] &= 0xf0;
            }
            for b in bytes.iter_mut().skip(d.div_ceil(2)) {
                *b = 0;
            }
        }
        Self { digits, bytes }
    }
}

impl FixedRecord for Prefix {
    const SIZE: usize = 21;
    const KIND: [u8; 4] = *b"pref";
    fn write_to(&self, out: &mut [u8]) {
        out[0] = self.digits;
        out[1..21].copy_from_slice(&self.bytes);
    }
    fn read_from(b: &[u8]) -> Self {
        Self {
            digits: b[0],
            bytes: le::id_at(b, 1),
        }
    }
}

/// Writes `components.parquet` from names in sorted order.
pub type ComponentsWriter = RecordWriter<String>;

fn names_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]))
}

impl ComponentsWriter {
    /// Creates `path`.
    pub fn create(path: &Path) -> Result<Self, TableError> {
        Self::open(path, names_schema(), |names| {
            vec![Arc::new(StringArray::from_iter_values(
                names.iter().map(String::as_str),
            )) as ArrayRef]
        })
    }
}

/// Reads `components.parquet` batch by batch.
pub fn read_components(
    dir: &Path,
) -> Result<impl Iterator<Item = Result<Vec<String>, TableError>>, TableError> {
    let path = dir.join(COMPONENTS);
    let (_, batches) = table::open(&path)?;
    Ok(batches.map(move |b| {
        let b = b?;
        Ok(table::strings(&b, &path, "name")?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect())
    }))
}

fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("row_id", DataType::UInt64, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("row", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// Writes `rejects.parquet`.
pub type RejectsWriter = RecordWriter<Reject>;

impl RejectsWriter {
    /// Creates `dir/rejects.parquet`.
    pub fn create(dir: &Path) -> Result<Self, TableError> {
        Self::open(&dir.join(REJECTS), rejects_schema(), |r| {
            vec![
                Arc::new(UInt64Array::from_iter_values(r.iter().map(|x| x.row_id))),
                Arc::new(StringArray::from_iter_values(
                    r.iter().map(|x| x.file.as_str()),
                )),
                Arc::new(UInt64Array::from_iter_values(r.iter().map(|x| x.row))),
                Arc::new(StringArray::from_iter_values(
                    r.iter().map(|x| x.reason.as_str()),
                )),
            ]
        })
    }
}

/// Writes `inputs.json`: `[[file, rows], ...]` in row-id order.
pub fn write_inputs(dir: &Path, files: &[(String, u64)]) -> Result<(), TableError> {
    let path = dir.join(INPUTS);
    let text = serde_json::to_string_pretty(files).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| TableError::io(&path, e))
}

/// Reads `inputs.json`.
pub fn read_inputs(dir: &Path) -> Result<Vec<(String, u64)>, TableError> {
    let path = dir.join(INPUTS);
    let text = std::fs::read_to_string(&path).map_err(|e| TableError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TableError::column(&path, "files", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cut_ids_as_hex_prefixes_do() {
        let id: [u8; 20] = hex::decode("abcdef0123456789abcdef0123456789abcdef01")
            .unwrap()
            .try_into()
            .unwrap();
        for p in [
            "abcd",
            "abcde",
            "abcdef0",
            "abcdef0123456789abcdef0123456789abcdef01",
        ] {
            let prefix = Prefix::parse(p).unwrap();
            assert_eq!(Prefix::of_id(&id, prefix.digits), prefix, "{p}");
        }
        assert_ne!(Prefix::of_id(&id, 5), Prefix::parse("abcdf").unwrap());
        assert!(Prefix::parse("abc").is_none());
        assert!(Prefix::parse("abcg").is_none());
        assert!(
            Prefix::parse("ABCD").is_some(),
            "case is the caller's business"
        );
    }
}
