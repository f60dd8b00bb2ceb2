//! The node scan's outputs (`WORKDIR/scan/`):
//!
//! - `candidates.parquet`: every revision whose id starts with a requested prefix, by node
//!   (`node`, `sha1_git` hex);
//! - `candidates.flat`: the same, sorted by id, for the origin match to find a prefix's
//!   candidates by binary search;
//! - `origins.parquet`: every origin whose normalised URL a requested slug may have
//!   (`node`, `url`, `key` = the normalised URL).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt64Array};

use super::flat::{le, FixedRecord, FlatError, FlatFile};
use super::plan::Prefix;
use crate::model::Sha1Git;
use crate::table::{self, TableError};

/// Candidates by node.
pub const CANDIDATES: &str = "candidates.parquet";
/// Candidates by id.
pub const BY_ID: &str = "candidates.flat";
/// The requested origins found.
pub const ORIGINS: &str = "origins.parquet";

/// A revision with a requested prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    /// Its id (sorts first: the flat file is by id).
    pub id: Sha1Git,
    /// Its node.
    pub node: u64,
}

impl FixedRecord for Candidate {
    const SIZE: usize = 28;
    const KIND: [u8; 4] = *b"cand";
    fn write_to(&self, out: &mut [u8]) {
        out[..20].copy_from_slice(self.id.as_bytes());
        out[20..28].copy_from_slice(&self.node.to_le_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        Self {
            id: Sha1Git(le::id_at(b, 0)),
            node: le::u64_at(b, 20),
        }
    }
}

impl crate::sort::Record for Candidate {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.node.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        (b.len() == 28).then(|| Self::read_from(b))
    }
    fn mem_size(&self) -> usize {
        0
    }
}

/// Writes candidates (node order) into `path`.
pub fn write(path: &Path, candidates: &[Candidate]) -> Result<(), TableError> {
    table::write(
        path,
        vec![
            (
                "node",
                Arc::new(UInt64Array::from_iter_values(
                    candidates.iter().map(|c| c.node),
                )) as ArrayRef,
            ),
            (
                "sha1_git",
                Arc::new(StringArray::from_iter_values(
                    candidates.iter().map(|c| c.id.to_hex()),
                )),
            ),
        ],
    )?;
    Ok(())
}

/// Reads candidates (node order) batch by batch.
pub fn read(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Vec<Candidate>, TableError>>, TableError> {
    let (_, batches) = table::open(path)?;
    let path = path.to_owned();
    Ok(batches.map(move |b| {
        let b = b?;
        let nodes = table::u64s(&b, &path, "node")?;
        let ids = table::strings(&b, &path, "sha1_git")?;
        nodes
            .into_iter()
            .zip(ids)
            .enumerate()
            .map(|(i, (node, id))| {
                let id = id
                    .as_deref()
                    .map(Sha1Git::from_hex)
                    .transpose()
                    .map_err(|e| TableError::column(&path, "sha1_git", format!("row {i}: {e}")))?
                    .ok_or_else(|| {
                        TableError::column(&path, "sha1_git", format!("row {i}: null"))
                    })?;
                Ok(Candidate { id, node })
            })
            .collect()
    }))
}

/// The candidates by id, mapped.
pub struct CandidatesById(FlatFile<Candidate>);

impl CandidatesById {
    /// Maps `dir/candidates.flat`.
    pub fn open(dir: &Path) -> Result<Self, FlatError> {
        Ok(Self(FlatFile::open(&dir.join(BY_ID))?))
    }

    /// The candidates whose id starts with `prefix`, by id.
    pub fn with_prefix(&self, prefix: &Prefix) -> Vec<Candidate> {
        let cut = |c: &Candidate| Prefix::of_id(c.id.as_bytes(), prefix.digits).bytes;
        let start = self.0.partition_point(|c| cut(c) < prefix.bytes);
        self.0
            .iter_from(start)
            .take_while(|c| cut(c) == prefix.bytes)
            .collect()
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A requested origin found in the graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// Its normalised URL.
    pub key: String,
    /// Its node.
    pub node: u64,
    /// Its URL as archived.
    pub url: String,
}

/// Writes origins into `path`.
pub fn write_origins(path: &Path, origins: &[Origin]) -> Result<(), TableError> {
    table::write(
        path,
        vec![
            (
                "node",
                Arc::new(UInt64Array::from_iter_values(
                    origins.iter().map(|o| o.node),
                )) as ArrayRef,
            ),
            (
                "url",
                Arc::new(StringArray::from_iter_values(
                    origins.iter().map(|o| o.url.as_str()),
                )),
            ),
            (
                "key",
                Arc::new(StringArray::from_iter_values(
                    origins.iter().map(|o| o.key.as_str()),
                )),
            ),
        ],
    )?;
    Ok(())
}

/// Reads origins back.
pub fn read_origins(path: &Path) -> Result<Vec<Origin>, TableError> {
    let b = table::read(path)?;
    let nodes = table::u64s(&b, path, "node")?;
    let urls = table::strings(&b, path, "url")?;
    let keys = table::strings(&b, path, "key")?;
    Ok((0..b.num_rows())
        .map(|i| Origin {
            key: keys[i].clone().unwrap_or_default(),
            node: nodes[i],
            url: urls[i].clone().unwrap_or_default(),
        })
        .collect())
}
