//! Stack-style datasets: the pieces that turn resolved files into a dataset users pick.
//!
//! - [`linguist`]: language by file name, extension and content heuristics; vendored and
//!   generated files;
//! - [`rows`]: the columns derived from a file, and the filters;
//! - [`minhash`] and [`dedup`]: exact and near deduplication (MinHash LSH), out of core;
//! - [`licenses`]: each repository's licenses, from its root license files;
//! - [`layout`]: the files, `data/<language>/train-NNNNN-of-MMMMM.parquet`;
//! - [`card`] and [`funnel`]: the dataset card, `metadata.json` and where the rows went;
//! - [`build`]: all of it, from export-shaped Parquet parts.

pub mod build;
pub mod card;
pub mod dedup;
pub mod funnel;
pub mod layout;
pub mod licenses;
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
    /// License detection.
    #[error(transparent)]
    License(#[from] licenses::LicenseError),
    /// A picture could not be drawn.
    #[error("picture: {0}")]
    Picture(String),
}

/// Publishes the finished dataset `built` at `dest` (`[dataset] out`): its files are linked
/// (copied across file systems) into a staging folder beside `dest`, which then takes
/// `dest`'s place; a `dest` that is not unearth's output is refused, never replaced.
pub fn publish(built: &std::path::Path, dest: &std::path::Path) -> std::io::Result<()> {
    use crate::artifacts::{replace_dir, unique_suffix};
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = dest.with_file_name(format!(".{name}.tmp-{}", unique_suffix()));
    let result = link_tree(built, &staging).and_then(|()| replace_dir(&staging, dest));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// Links (or copies) every file under `from` to the same place under `to`.
fn link_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            link_tree(&src, &dst)?;
        } else if entry.file_name() != crate::artifacts::OURS
            && std::fs::hard_link(&src, &dst).is_err()
        {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}
