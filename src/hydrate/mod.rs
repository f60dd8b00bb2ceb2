//! `unearth hydrate`: the bytes of a dataset published as Software Heritage ids only (The
//! Stack v2 gives a `blob_id` per file), fetched, verified, decoded and written as a
//! Stack-style dataset.
//!
//! A hydration is the last four phases of a run on other inputs ([`crate::model::Flow`]),
//! with the same checkpoints, shards and Slurm jobs:
//!
//! 1. **content** ([`ids`]): each row's id (`[hydrate] id_column`) read as `id_kind`:
//!    `sha1` (the S3 key) as it is, `sha1_git` or `swhid` (`swh:1:cnt:...`) joined to their
//!    sha1 through the `digestmap` or the ORC tables of `orc`; the distinct sha1s, sorted;
//! 2. **fetch** ([`steps::FetchStep`], sharded by sha1 range): the blobs not already stored,
//!    fetched from `[fetch] store` as `run` fetches them (adaptive concurrency, retries, every
//!    body proven by its sha1 before it is kept) into `WORKDIR/blobs/`;
//! 3. **export** ([`export`]): every row again, in order, with its status and its text,
//!    decoded from the row's `encoding_column`, each blob verified again as it is read;
//! 4. **dataset** ([`steps::DatasetStep`]): [`crate::dataset::build`].
//!
//! `crate::pipeline::hydrate` runs them.

pub mod export;
pub mod ids;
pub mod steps;

use std::path::PathBuf;

use crate::dataset::{self, DatasetError};
use crate::digestmap::DigestMapError;
use crate::model::{RowStatus, StatusCounts};
use crate::phases::fetch::FetchCounts;
use crate::phases::PhaseError;
use crate::sort::SortError;
use crate::store::StoreError;
use crate::table::TableError;

pub use ids::first_sha1s;

/// Errors of hydration.
#[derive(Debug, thiserror::Error)]
pub enum HydrateError {
    /// The configuration cannot be hydrated.
    #[error("{0}")]
    Config(String),
    /// A metadata file or an output file.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The fetch.
    #[error(transparent)]
    Phase(#[from] PhaseError),
    /// The blob store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sort of the ids.
    #[error(transparent)]
    Sort(#[from] SortError),
    /// The digestmap.
    #[error(transparent)]
    DigestMap(#[from] DigestMapError),
    /// The dataset.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A file or folder of the work directory.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Counts of a hydration, also written to `WORKDIR/hydrate.json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HydrateCounts {
    /// Input rows.
    pub rows: u64,
    /// Distinct blobs the rows name.
    pub blobs: u64,
    /// The fetch.
    pub fetch: FetchCounts,
    /// Rows per status.
    pub status: StatusCounts<RowStatus>,
    /// The dataset.
    pub dataset: dataset::build::BuildCounts,
}

/// Decodes `bytes` from the encoding labelled `label` (WHATWG labels: `UTF-8`,
/// `windows-1252`, `ISO-8859-1`, `Shift_JIS`, ...; none means UTF-8). `None` when the label
/// is unknown or the bytes are not text in it.
pub fn decode(bytes: &[u8], label: Option<&str>) -> Option<String> {
    let label = label
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or("utf-8");
    let enc = encoding_rs::Encoding::for_label(label.as_bytes())?;
    let (text, had_errors) = enc.decode_without_bom_handling(bytes);
    (!had_errors).then(|| text.into_owned())
}

/// The counts file of the last hydration, in the work directory.
pub const COUNTS: &str = "hydrate.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_from_the_row_encoding() {
        assert_eq!(
            decode(b"caf\xe9", Some("windows-1252")).as_deref(),
            Some("café")
        );
        assert_eq!(decode("café".as_bytes(), None).as_deref(), Some("café"));
        assert_eq!(
            decode("café".as_bytes(), Some(" UTF-8 ")).as_deref(),
            Some("café")
        );
        assert_eq!(decode(b"caf\xe9", Some("UTF-8")), None, "not UTF-8");
        assert_eq!(decode(b"abc", Some("no-such-encoding")), None);
    }
}
