//! # unearth
//!
//! unearth rebuilds code datasets out of the Software Heritage (SWH) archive. Given metadata
//! rows `(repo, commit_id, rel_path)`, such as those NVIDIA published for the Nemotron code
//! pretraining data, it finds the file each row names in SWH's compressed graph and fetches
//! its bytes, turning every hop of the graph into a sequential pass over a file.
//!
//! ```
//! use unearth::archive::demo;
//! use unearth::artifacts::resolved;
//! use unearth::config::Config;
//! use unearth::model::{Phase, RowStatus};
//! use unearth::pipeline::Pipeline;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let demo_dir = dir.path().join("demo");
//! // A small SWH archive built from git repositories, with Nemotron-style metadata rows.
//! demo::build_demo(&demo_dir)?;
//! let pipeline = Pipeline::open(Config::load(&demo_dir.join(demo::CONFIG))?)?;
//! // Resolve every row: plan, revision scan, origin match, reachable set, names, labels, walk.
//! let outcomes = pipeline.run_until(Phase::Walk)?;
//! assert_eq!(outcomes.len(), 7);
//! // Every input row comes out exactly once, with a status.
//! let mut rows = 0;
//! let mut ok = 0;
//! for file in resolved::files(&pipeline.workdir().phase_dir("walk"))? {
//!     for batch in resolved::batches(&file)? {
//!         let batch = batch?;
//!         rows += batch.len();
//!         ok += batch.status.iter().filter(|s| **s == RowStatus::Ok).count();
//!     }
//! }
//! assert_eq!(rows, 46);
//! assert!(ok > 20);
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! Dependencies run one way: the command line (`src/main.rs`) calls the [`pipeline`] (and the
//! tools beside it: [`slurm`], [`status`], [`verify`], [`bench`](mod@bench)); the pipeline drives the
//! [`phases`] generically; phases use the [`graph`], the blob [`store`], the work-directory
//! [`artifacts`] and the shared [`model`]. [`config`] and [`table`] are leaves every layer may
//! use. [`archive`] builds SWH archives from git repositories, the ground truth every phase is
//! tested against.
//!
//! The phases, in order (see [`model::Phase`]):
//!
//! 1. [`phases::plan`]: read and validate metadata, group rows by (repo, prefix);
//! 2. [`phases::scan`]: one sequential pass over revision nodes against a prefix bit-vector;
//! 3. [`phases::matching`]: which candidate revision belongs to the repository's origin;
//! 4. [`phases::reach`]: directories reachable to the depth the paths need;
//! 5. [`phases::labels`]: one ordered pass over the labels file, keeping requested names;
//! 6. [`phases::walk`]: every row down its path, and the `resolved` output;
//! 7. [`phases::content`]: sha1_git -> sha1 from the ORC content tables;
//! 8. [`phases::fetch`]: blobs from S3 or a folder, verified, into a durable local store;
//! 9. [`phases::export`]: the Parquet dataset with contents, language and quality columns.

#![warn(missing_docs)]

pub mod archive;
pub mod artifacts;
pub mod bench;
pub mod config;
pub mod dataset;
pub mod digestmap;
pub mod evolve;
pub mod graph;
pub mod hydrate;
pub mod model;
pub mod orc;
pub mod phases;
pub mod picture;
pub mod pipeline;
pub mod slurm;
pub mod sort;
pub mod status;
pub mod store;
pub mod table;
pub mod verify;
