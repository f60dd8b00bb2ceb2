//! Stack-style datasets (issue 12): the pieces that turn resolved files into a dataset users
//! pick. So far: near-duplicate detection with MinHash LSH ([`minhash`]); language with content
//! heuristics, vendored and generated files ([`linguist`]).

pub mod linguist;
pub mod minhash;
