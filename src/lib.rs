//! # unearth
//!
//! unearth rebuilds code datasets out of the Software Heritage (SWH) archive. Given metadata
//! rows `(repo, commit_id, rel_path)`, such as those NVIDIA published for the Nemotron code
//! pretraining data, it finds the file each row names in SWH's compressed graph and fetches
//! its bytes, turning every hop of the graph into a sequential pass over a file.
//!
//! This crate is organised by pipeline phase; see `ARCHITECTURE.md` for the whole design.
//! What exists today:
//!
//! - [`archive`]: builds real SWH archives (export ORC tables, compressed graph, blob store)
//!   from local git repositories, the ground truth every other phase is tested against,
//!   and [`archive::demo`], a synthetic set of repositories with metadata and expected answers.
//! - [`graph`]: opens a compressed graph (SWH's or ours) and summarises it.
//! - [`hashes`]: the identifiers SWH computes.

#![warn(missing_docs)]

pub mod archive;
pub mod graph;
pub mod hashes;
