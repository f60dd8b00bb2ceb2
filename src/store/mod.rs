//! Blobs: where they come from ([`source`]), how a body is proven ([`verify`]), and the
//! durable local store verified bytes are kept in ([`pack`]); how many requests are in flight
//! ([`limiter`]).

pub mod limiter;
pub mod pack;
pub mod source;
pub mod verify;

use std::path::{Path, PathBuf};

pub use pack::{BlobStores, PackStore, Record};
pub use source::Source;

/// Errors of the blob store and its sources.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the local store could not be read or written.
    #[error("blob store {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the local store is not in the store's format.
    #[error("blob store {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The configured source is not usable.
    #[error("fetch.store {store}: {reason}")]
    Config {
        /// The store as configured.
        store: String,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
