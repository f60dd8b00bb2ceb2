//! The phases, one module each, with a typed input and output.
//!
//! Every phase module has an `Input` (what it reads, opened from the work directory and the
//! graph), a `run(&Context, Input) -> Result<Output>` that does the work and writes its files
//! into [`Context::out`], and a `Step` type implementing [`Step`], which is how the pipeline
//! (generic over phases) fingerprints, runs and merges it. Phases read the files of earlier
//! phases only through [`crate::artifacts`].

pub mod chunks;
pub mod content;
pub mod dataset;
pub mod export;
pub mod fetch;
pub mod labels;
pub mod language;
pub mod levels;
pub mod matching;
pub mod membership;
pub mod names;
pub mod plan;
pub mod reach;
pub mod scan;
pub mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::model::{Counts, Phase, Shard};

pub use chunks::Chunks;

/// Fingerprints of what a phase reads, by name: files (`metadata:PATH`), options, and the
/// manifests of earlier phases (`phase:NAME`).
pub type Inputs = BTreeMap<String, String>;

/// Errors of any phase.
#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    /// The metadata cannot be planned.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// A Parquet file of the work directory or the input.
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// The graph cannot be loaded or read.
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    /// The export tables cannot be read.
    #[error(transparent)]
    Content(#[from] content::ContentError),
    /// The blob store or its source.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A flat record file of the work directory.
    #[error(transparent)]
    Flat(#[from] crate::artifacts::flat::FlatError),
    /// Building the dataset.
    #[error(transparent)]
    Dataset(#[from] crate::dataset::DatasetError),
    /// A hydration's input or options.
    #[error(transparent)]
    Hydrate(Box<crate::hydrate::HydrateError>),
    /// Another file of the work directory.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An input changed under a phase that was planned from it.
    #[error("{0}; rerun from the plan (`unearth run`)")]
    Changed(String),
    /// `merge` asked of a phase that does not shard.
    #[error("phase {0} is not sharded")]
    NotSharded(Phase),
}

impl From<crate::hydrate::HydrateError> for PhaseError {
    fn from(e: crate::hydrate::HydrateError) -> Self {
        match e {
            crate::hydrate::HydrateError::Phase(p) => p,
            e => PhaseError::Hydrate(Box::new(e)),
        }
    }
}

impl PhaseError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        PhaseError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What a phase runs with: the configuration, where the earlier phases' outputs are, and
/// where its own go.
pub struct Context<'a> {
    /// The run's configuration.
    pub config: &'a Config,
    /// The work directory; a finished phase's files are in `workdir/<phase>/`.
    pub workdir: &'a Path,
    /// Where this phase (or shard) writes its files; renamed into place when it succeeds.
    pub out: &'a Path,
    /// The shard being run (the whole input as shard 0/1 when the phase is not sharded).
    pub shard: Shard,
    /// Checkpointed chunks of this shard's work.
    pub chunks: &'a Chunks,
    /// A scratch folder for temporary files (sort runs), removed when the phase ends.
    pub scratch: &'a Path,
    /// Fetch again the blobs recorded as missing or corrupt.
    pub retry_missing: bool,
}

impl Context<'_> {
    /// The folder of a finished earlier phase.
    pub fn upstream(&self, phase: Phase) -> PathBuf {
        self.workdir.join(phase.name())
    }

    /// The durable blob store, outside any phase folder so that a killed fetch keeps it.
    pub fn blobs(&self) -> PathBuf {
        blob_dir(self.workdir)
    }

    /// Basename of the compressed graph.
    pub fn graph(&self) -> &Path {
        &self.config.graph
    }
}

/// The blob store folder of a work directory.
pub fn blob_dir(workdir: &Path) -> PathBuf {
    workdir.join("blobs")
}

/// A phase as the pipeline drives it.
pub trait Step {
    /// Which phase this is.
    const PHASE: Phase;
    /// The counts it records in its manifest.
    type Counts: Counts;

    /// Fingerprints of what the phase (one shard of it) reads outside the work directory:
    /// input files and the options it depends on.
    fn inputs(config: &Config, shard: Shard) -> Result<Inputs, PhaseError>;

    /// Whether a finished checkpoint with these counts may be reused (a fetch that gave up on
    /// some blobs may not: the next run retries them).
    fn reusable(_counts: &Self::Counts, _retry_missing: bool) -> bool {
        true
    }

    /// Runs the phase (one shard of it) into `ctx.out`.
    fn run(ctx: &Context) -> Result<Self::Counts, PhaseError>;

    /// Merges the shards' folders, in shard order, into `ctx.out`; `summed` is the sum of
    /// the shards' counts, which the merge returns, completed.
    fn merge(
        _ctx: &Context,
        _shards: &[PathBuf],
        _summed: Self::Counts,
    ) -> Result<Self::Counts, PhaseError> {
        Err(PhaseError::NotSharded(Self::PHASE))
    }
}

/// Fingerprint of an input file: path, size and modification time.
pub fn file_fingerprint(path: &Path) -> Result<String, PhaseError> {
    let meta = std::fs::metadata(path).map_err(|e| PhaseError::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{} {} {}", path.display(), meta.len(), mtime))
}

/// Concatenates the file `name` of each shard folder, in order, into `out/name`.
pub fn concat_shards(shards: &[PathBuf], name: &str, out: &Path) -> Result<(), PhaseError> {
    let files: Vec<PathBuf> = shards.iter().map(|d| d.join(name)).collect();
    crate::artifacts::concat(&files, &out.join(name))?;
    Ok(())
}
