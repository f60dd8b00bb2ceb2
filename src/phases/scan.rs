//! Phase 2, **revision scan**: one sequential pass over the nodes, keeping the revisions
//! whose id starts with a requested prefix.
//!
//! The pass reads `node2type.bin` for every node and `node2swhid.bin` only for revisions,
//! both in node order, split into contiguous ranges across threads. Each revision id is
//! first tested against a bit-vector indexed by the id's leading bits (one bit per bucket;
//! a prefix shorter than the bucket width sets a range of bits), and only on a hit checked
//! exactly against the sorted list of requested prefixes. Nothing is held per revision.
//!
//! Output: [`crate::artifacts::candidates`]. Shards: node-id ranges, concatenated in order.
//!
//! Memory: the bit-vector (2^bits bits, bits chosen from the number of prefixes, at most
//! 2^32 bits = 512 MiB) plus the sorted prefixes, plus the candidates found.

use std::ops::Range;
use std::path::PathBuf;

use dsi_progress_logger::{concurrent_progress_logger, ProgressLog};
use rayon::prelude::*;
use swh_graph::NodeType;

use crate::artifacts::candidates::{self, Candidate, CANDIDATES};
use crate::artifacts::plan as plan_files;
use crate::config::Config;
use crate::graph::NodeMaps;
use crate::model::{Counts, Phase, Sha1Git, Shard};

use super::{Context, Inputs, PhaseError};

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
    /// Builds the set of lower-case hex prefixes (4 to 40 digits); others are ignored.
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut sorted: Vec<String> = prefixes
            .into_iter()
            .filter(|p| (4..=40).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
            .collect();
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

    /// Whether the hex id (40 digits) starts with one of the prefixes.
    pub fn matches(&self, hex: &str) -> bool {
        self.lengths.iter().any(|&l| {
            hex.get(..l)
                .is_some_and(|h| self.sorted.binary_search_by(|p| p.as_str().cmp(h)).is_ok())
        })
    }
}

/// Counts of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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
    /// Chunks of the shard(s).
    pub chunks: u64,
    /// Chunks reused from an interrupted run.
    pub chunks_reused: u64,
    /// Width of the bucket bit-vector (a constant of the run, not summed).
    pub bucket_bits: u64,
}

impl Counts for ScanCounts {
    fn add(&mut self, o: &Self) {
        self.nodes += o.nodes;
        self.revisions += o.revisions;
        self.bucket_hits += o.bucket_hits;
        self.candidates += o.candidates;
        self.pass_micros += o.pass_micros;
        self.chunks += o.chunks;
        self.chunks_reused += o.chunks_reused;
        self.bucket_bits = self.bucket_bits.max(o.bucket_bits);
    }
}

/// What the scan reads.
pub struct Input {
    /// The requested prefixes.
    pub prefixes: PrefixSet,
    /// The node tables.
    pub maps: NodeMaps,
    /// The nodes to scan.
    pub nodes: Range<usize>,
}

/// Scans `nodes`; returns the candidates found, in node order, and the counts.
pub fn scan(
    prefixes: &PrefixSet,
    maps: &NodeMaps,
    nodes: Range<usize>,
) -> (Vec<Candidate>, ScanCounts) {
    let started = std::time::Instant::now();
    let n = maps.nodes;
    let nodes = nodes.start.min(n)..nodes.end.min(n);
    const CHUNK: usize = 1 << 20;
    let mut pl = concurrent_progress_logger!(
        item_name = "node",
        display_memory = true,
        expected_updates = Some(nodes.len())
    );
    pl.start(format!("Scanning revision nodes {nodes:?}"));
    let parts: Vec<(Vec<Candidate>, ScanCounts)> = (0..nodes.len().div_ceil(CHUNK))
        .into_par_iter()
        .map_with(pl.clone(), |pl, c| {
            let mut found = Vec::new();
            let mut counts = ScanCounts::default();
            let range = nodes.start + c * CHUNK..(nodes.start + (c + 1) * CHUNK).min(nodes.end);
            counts.nodes = range.len() as u64;
            for node in range.clone() {
                if maps.types.get(node).ok() != Some(NodeType::Revision) {
                    continue;
                }
                counts.revisions += 1;
                let Ok(swhid) = maps.swhids.get(node) else {
                    continue;
                };
                if !prefixes.maybe(&swhid.hash) {
                    continue;
                }
                counts.bucket_hits += 1;
                let hex = crate::model::hashes::hex(&swhid.hash);
                if prefixes.matches(&hex) {
                    found.push(Candidate {
                        node: node as u64,
                        id: Sha1Git(swhid.hash),
                    });
                }
            }
            counts.candidates = found.len() as u64;
            pl.update_with_count(range.len());
            (found, counts)
        })
        .collect();
    pl.done();
    let mut total = ScanCounts::default();
    let mut all = Vec::new();
    for (found, c) in parts {
        total.add(&c);
        all.extend(found);
    }
    total.pass_micros = started.elapsed().as_micros() as u64;
    total.bucket_bits = prefixes.bucket_bits() as u64;
    (all, total)
}

/// Runs the scan of the context's shard, chunk by chunk, into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<ScanCounts, PhaseError> {
    let per_chunk = ctx.config.shards.chunk_nodes.max(1);
    let nodes = input.nodes.clone();
    let k = nodes.len().div_ceil(per_chunk).max(1);
    let (files, mut counts, stats) = ctx.chunks.run(k, CANDIDATES, |i, tmp| {
        let lo = nodes.start + i * per_chunk;
        let (found, c) = scan(
            &input.prefixes,
            &input.maps,
            lo..(lo + per_chunk).min(nodes.end),
        );
        candidates::write(&tmp.join(CANDIDATES), &found)?;
        Ok(c)
    })?;
    crate::artifacts::concat(&files, &ctx.out.join(CANDIDATES))?;
    counts.chunks = stats.chunks;
    counts.chunks_reused = stats.reused;
    counts.bucket_bits = input.prefixes.bucket_bits() as u64;
    Ok(counts)
}

/// The scan as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Scan;
    type Counts = ScanCounts;

    fn inputs(_config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(Inputs::new())
    }

    fn run(ctx: &Context) -> Result<ScanCounts, PhaseError> {
        let pairs = plan_files::read_pairs(&ctx.upstream(Phase::Plan))?;
        let maps = NodeMaps::open(ctx.graph())?;
        let nodes = ctx.shard.range(maps.nodes);
        let input = Input {
            prefixes: PrefixSet::new(pairs.iter().map(|(_, prefix)| prefix.as_str())),
            maps,
            nodes,
        };
        run(ctx, input)
    }

    fn merge(
        ctx: &Context,
        shards: &[PathBuf],
        summed: ScanCounts,
    ) -> Result<ScanCounts, PhaseError> {
        super::concat_shards(shards, CANDIDATES, ctx.out)?;
        Ok(summed)
    }
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
        let set = PrefixSet::new(["abcd", "1234567", "ffffffffffffffffffff", "xyz!"]);
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
        assert!(!set.matches("ab"), "short text is no match, not a panic");
    }
}
