//! Stack-style datasets: the pieces that turn resolved files into a dataset users pick.
//!
//! - [`linguist`]: language by file name, extension and content heuristics; vendored and
//!   generated files;
//! - [`rows`]: the columns derived from a file, and the filters;
//! - [`minhash`] and [`dedup`]: exact and near deduplication (MinHash LSH), out of core;
//! - [`layout`]: the files, `data/<language>/train-NNNNN-of-MMMMM.parquet`;
//! - [`card`] and [`funnel`]: the dataset card, `metadata.json` and where the rows went;
//! - [`build`]: all of it, from export-shaped Parquet parts.

pub mod build;
pub mod card;
pub mod dedup;
pub mod funnel;
pub mod layout;
pub mod linguist;
pub mod minhash;
pub mod rows;

/// Errors of building a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Deduplication.
    #[error(transparent)]
    Dedup(#[from] dedup::DedupError),
    /// A part read, or a file of the dataset written.
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// A picture could not be drawn.
    #[error("picture: {0}")]
    Picture(String),
}
