//! # unearth
//!
//! unearth rebuilds code datasets out of the Software Heritage (SWH) archive. Given metadata
//! rows `(repo, commit_id, rel_path)`, such as those NVIDIA published for the Nemotron code
//! pretraining data, it finds the file each row names in SWH's compressed graph and fetches
//! its bytes, turning every hop of the graph into a sequential pass over a file.
//!
//! This crate is organised by pipeline phase; see `ARCHITECTURE.md` for the whole design.
//! The phases that resolve rows to contents, each a module with a typed input and output,
//! run by [`pipeline`] with checkpoints in a work directory ([`checkpoint`], [`config`]):
//!
//! 1. [`plan`]: read and validate metadata, group rows by (repo, prefix);
//! 2. [`scan`]: one sequential pass over revision nodes against a prefix bit-vector;
//! 3. [`origins`]: which candidate revision belongs to the repository's origin;
//! 4. [`reach`]: directories reachable to the depth the paths need;
//! 5. [`labels`]: one ordered pass over the labels file, keeping requested names;
//! 6. [`walk`]: every row down its path, and the `resolved` output;
//! 7. [`content`]: sha1_git -> sha1 from the ORC content tables;
//! 8. [`fetch`]: blobs from S3 or a folder, verified, into a durable local store;
//! 9. [`export`]: the Parquet dataset with contents, language and quality columns.
//!
//! [`verify`] re-resolves a sample by random access. Around them:
//!
//! - [`archive`]: builds real SWH archives (export ORC tables, compressed graph, blob store)
//!   from local git repositories, the ground truth every other phase is tested against,
//!   and [`archive::demo`], a synthetic set of repositories with metadata and expected answers.
//! - [`graph`]: opens a compressed graph (SWH's or ours) and summarises it.
//! - [`hashes`]: the identifiers SWH computes.

#![warn(missing_docs)]

pub mod archive;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod content;
pub mod export;
pub mod faults;
pub mod fetch;
pub mod graph;
pub mod hashes;
pub mod labels;
pub mod language;
pub mod origins;
pub mod pipeline;
pub mod plan;
pub mod reach;
pub mod scan;
pub mod shard;
pub mod slurm;
pub mod status;
pub mod table;
pub mod verify;
pub mod walk;
