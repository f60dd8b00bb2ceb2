//! Phase 2, **revision scan**: one sequential pass over the nodes, keeping the revisions
//! whose id starts with a requested prefix.
//!
//! The pass reads `node2type.bin` for every node and `node2swhid.bin` only for revisions,
//! both in node order, split into contiguous ranges across threads. Each revision id is
//! first tested against a bit-vector indexed by the id's leading bits (one bit per bucket;
//! a prefix shorter than the bucket width sets a range of bits), and only on a hit checked
//! exactly against the sorted list of requested prefixes. Nothing is held per revision.
//!
//! Output (`WORKDIR/scan/candidates.parquet`): node id and hex id of each candidate, by node.
//!
//! Memory: the bit-vector (2^bits bits, bits chosen from the number of prefixes, at most
//! 2^32 bits = 512 MiB) plus the sorted prefixes, plus the candidates found.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt64Array};
use dsi_progress_logger::{concurrent_progress_logger, ProgressLog};
use rayon::prelude::*;
use swh_graph::map::{Node2SWHID, Node2Type};
use swh_graph::NodeType;

use crate::graph::{num_nodes, suffixed};
use crate::table;

/// Errors of the scan.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A graph file could not be loaded.
    #[error("cannot load {path}: {reason}")]
    Graph {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The output could not be written.
    #[error(transparent)]
    Table(#[from] table::TableError),
}

/// The requested prefixes: a bucket bit-vector for a fast negative, and the exact list.
#[derive(Debug, Clone)]
pub struct PrefixSet {
    bits: u32,
    words: Vec<u64>,
    /// Distinct prefixes, sorted.
    sorted: Vec<String>,
    /// Distinct prefix lengths, in hex digits.
    lengths: Vec<usize>,
}

impl PrefixSet {
    /// Builds the set of lower-case hex prefixes (4 to 40 digits).
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut sorted: Vec<String> = prefixes.into_iter().map(str::to_string).collect();
        sorted.sort();
        sorted.dedup();
        // About 64 buckets per prefix keeps false positives near 1/64, within 2^16..2^32 bits.
        let want = (sorted.len().max(1) as u64 * 64).next_power_of_two();
        let bits = want.trailing_zeros().clamp(16, 32);
        let mut words = vec![0u64; (1usize << bits) / 64];
        for p in &sorted {
            let digits = p.len().min(8);
            let value = u64::from_str_radix(&p[..digits], 16).unwrap_or(0);
            let pbits = (digits * 4) as u32;
            let (lo, hi) = if pbits >= bits {
                let b = value >> (pbits - bits);
                (b, b + 1)
            } else {
                let shift = bits - pbits;
                (value << shift, (value + 1) << shift)
            };
            for b in lo..hi {
                words[(b / 64) as usize] |= 1 << (b % 64);
            }
        }
        let mut lengths: Vec<usize> = sorted.iter().map(String::len).collect();
        lengths.sort();
        lengths.dedup();
        Self {
            bits,
            words,
            sorted,
            lengths,
        }
    }

    /// Number of buckets bits (the bit-vector has 2^bits bits).
    pub fn bucket_bits(&self) -> u32 {
        self.bits
    }

    /// Whether an id with these leading bytes may match (no false negatives).
    #[inline]
    pub fn maybe(&self, id: &[u8; 20]) -> bool {
        let lead = u32::from_be_bytes([id[0], id[1], id[2], id[3]]) as u64;
        let b = lead >> (32 - self.bits);
        self.words[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    /// Whether the hex id starts with one of the prefixes.
    pub fn matches(&self, hex: &str) -> bool {
        self.lengths.iter().any(|&l| {
            self.sorted
                .binary_search_by(|p| p.as_str().cmp(&hex[..l]))
                .is_ok()
        })
    }
}

/// Counts of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanCounts {
    /// Nodes read.
    pub nodes: u64,
    /// Revision nodes.
    pub revisions: u64,
    /// Revisions that passed the bit-vector.
    pub bucket_hits: u64,
    /// Revisions matching a prefix exactly.
    pub candidates: u64,
    /// Microseconds of the pass itself (files opened, before writing the output).
    pub pass_micros: u64,
}

/// Scans the nodes in `nodes` (a shard, or a chunk of one) of the graph at `base` for
/// revisions matching `prefixes`; writes `out/candidates.parquet`.
pub fn run(
    base: &Path,
    prefixes: &PrefixSet,
    nodes: std::ops::Range<usize>,
    out: &Path,
) -> Result<ScanCounts, ScanError> {
    let graph_err = |path: std::path::PathBuf, e: &dyn std::fmt::Display| ScanError::Graph {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let n = num_nodes(base).map_err(|e| graph_err(suffixed(base, ".properties"), &e))?;
    let types_path = suffixed(base, ".node2type.bin");
    let types = Node2Type::load(&types_path, n).map_err(|e| graph_err(types_path, &e))?;
    let swhids_path = suffixed(base, ".node2swhid.bin");
    let swhids = Node2SWHID::load(&swhids_path).map_err(|e| graph_err(swhids_path, &e))?;

    let started = std::time::Instant::now();
    let nodes = nodes.start.min(n)..nodes.end.min(n);
    const CHUNK: usize = 1 << 20;
    let mut pl = concurrent_progress_logger!(
        item_name = "node",
        display_memory = true,
        expected_updates = Some(nodes.len())
    );
    pl.start(format!("Scanning revision nodes {nodes:?}"));
    let chunks: Vec<(Vec<(u64, String)>, ScanCounts)> = (0..nodes.len().div_ceil(CHUNK))
        .into_par_iter()
        .map_with(pl.clone(), |pl, c| {
            let mut found = Vec::new();
            let mut counts = ScanCounts::default();
            let range = nodes.start + c * CHUNK..(nodes.start + (c + 1) * CHUNK).min(nodes.end);
            counts.nodes = range.len() as u64;
            for node in range.clone() {
                if types.get(node).ok() != Some(NodeType::Revision) {
                    continue;
                }
                counts.revisions += 1;
                let Ok(swhid) = swhids.get(node) else {
                    continue;
                };
                if !prefixes.maybe(&swhid.hash) {
                    continue;
                }
                counts.bucket_hits += 1;
                let hex = crate::hashes::hex(&swhid.hash);
                if prefixes.matches(&hex) {
                    found.push((node as u64, hex));
                }
            }
            counts.candidates = found.len() as u64;
            pl.update_with_count(range.len());
            (found, counts)
        })
        .collect();
    pl.done();
    let mut total = ScanCounts {
        pass_micros: started.elapsed().as_micros() as u64,
        ..Default::default()
    };
    let mut nodes = Vec::new();
    let mut ids = Vec::new();
    for (found, c) in chunks {
        total.nodes += c.nodes;
        total.revisions += c.revisions;
        total.bucket_hits += c.bucket_hits;
        total.candidates += c.candidates;
        for (node, hex) in found {
            nodes.push(node);
            ids.push(hex);
        }
    }
    table::write(
        &out.join("candidates.parquet"),
        vec![
            ("node", Arc::new(UInt64Array::from(nodes)) as ArrayRef),
            ("sha1_git", Arc::new(StringArray::from(ids))),
        ],
    )?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> [u8; 20] {
        let mut full = hex.to_string();
        full.extend(std::iter::repeat_n('0', 40 - hex.len()));
        hex::decode(full).unwrap().try_into().unwrap()
    }

    #[test]
    fn prefix_set_has_no_false_negatives() {
        let set = PrefixSet::new(["abcd", "1234567", "ffffffffffffffffffff"]);
        for hex in [
            "abcd0000",
            "abcdffff",
            "12345670",
            "1234567f",
            "ffffffffffffffffffff01",
        ] {
            assert!(set.maybe(&id(hex)), "{hex}");
            let full = format!("{hex:0<40}");
            assert!(set.matches(&full), "{hex}");
        }
        assert!(!set.matches(&format!("{:0<40}", "abce")));
        assert!(!set.matches(&format!("{:0<40}", "1234566")));
        assert!(!set.maybe(&id("00000000")));
    }
}
