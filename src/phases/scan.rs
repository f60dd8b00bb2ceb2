//! Phase 3, **node scan**: one sequential pass over the nodes, keeping the revisions whose id
//! starts with a requested prefix and the origins whose URL a requested slug may have.
//!
//! The pass reads `node2type.bin` for every node, `node2swhid.bin` only for revisions and the
//! URL only for origins, in node order, split into contiguous ranges across threads. Revision
//! records are read with positioned reads of whole runs of them (runs less than 64 KiB apart
//! merged, [`crate::graph::NodeMaps::for_each_hash`]): large sequential requests, and the
//! stretches of the file without a revision are never read.
//!
//! - Revisions: each id is first tested against a bit-vector indexed by the id's leading bits
//!   (one bit per bucket; a prefix shorter than the bucket width sets a range of bits), and
//!   only on a hit checked exactly against the sorted prefixes, by binary search in the
//!   plan's memory-mapped `prefixes.flat`, once per distinct prefix length.
//! - Origins: each URL is normalised ([`crate::model::slug`]) and looked up among the
//!   normalised URLs the requested slugs may have (`url_templates`), so that every spelling
//!   of a repository finds every origin recorded for it.
//!
//! Output: [`crate::artifacts::candidates`]. Shards: node-id ranges; the merge concatenates
//! them and sorts the candidates by id.
//!
//! Memory: the bit-vector (2^bits bits, at most 512 MiB), the hashes of the requested origin
//! URLs (16 bytes each: bounded by the requests, not by the archive's origins), the
//! candidates and origins of one chunk, and `sort_memory_mb` for the merge's sort.

use std::ops::Range;
use std::path::{Path, PathBuf};

use dsi_progress_logger::{concurrent_progress_logger, ProgressLog};
use rayon::prelude::*;
use swh_graph::graph::{SwhGraphWithProperties, SwhUnidirectionalGraph};
use swh_graph::NodeType;

use crate::artifacts::candidates::{self, Candidate, Origin, BY_ID, CANDIDATES, ORIGINS};
use crate::artifacts::flat::{FlatFile, FlatWriter};
use crate::artifacts::plan::{self as plan_files, Prefix, PREFIXES};
use crate::config::Config;
use crate::graph::{GraphError, NodeMaps};
use crate::model::slug::{key_hash, normalize_url, origin_keys};
use crate::model::{Counts, Phase, Sha1Git, Shard};
use crate::sort::Sorter;

use super::{Context, Inputs, PhaseError};

/// The requested prefixes: a bucket bit-vector for a fast negative, and the exact list.
pub struct PrefixSet {
    bits: u32,
    words: Vec<u64>,
    /// Distinct prefix lengths, in hex digits.
    lengths: Vec<u8>,
    exact: FlatFile<Prefix>,
}

impl PrefixSet {
    /// Builds the set from the plan's `prefixes.flat`, read once in order.
    pub fn open(plan_dir: &Path) -> Result<Self, PhaseError> {
        let exact: FlatFile<Prefix> = FlatFile::open(&plan_dir.join(PREFIXES))?;
        // About 64 buckets per prefix keeps false positives near 1/64, within 2^16..2^32 bits.
        let want = (exact.len().max(1) as u64 * 64).next_power_of_two();
        let bits = want.trailing_zeros().clamp(16, 32);
        let mut words = vec![0u64; (1usize << bits) / 64];
        let mut lengths = Vec::new();
        for p in exact.iter_from(0) {
            if lengths.last() != Some(&p.digits) {
                lengths.push(p.digits);
            }
            let lead = u32::from_be_bytes([p.bytes[0], p.bytes[1], p.bytes[2], p.bytes[3]]) as u64;
            let pbits = (p.digits as u32 * 4).min(32);
            // The bucket range every id with this prefix falls in.
            let lo = lead >> (32 - bits);
            let hi = if pbits >= bits {
                lo
            } else {
                lo | ((1u64 << (bits - pbits)) - 1)
            };
            for b in lo..=hi {
                words[(b / 64) as usize] |= 1 << (b % 64);
            }
        }
        Ok(Self {
            bits,
            words,
            lengths,
            exact,
        })
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

    /// Whether the id starts with one of the prefixes.
    pub fn matches(&self, id: &[u8; 20]) -> bool {
        self.lengths.iter().any(|&digits| {
            let p = Prefix::of_id(id, digits);
            let i = self.exact.partition_point(|x| *x < p);
            self.exact.get(i) == Some(p)
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
    /// Origin nodes.
    pub origins: u64,
    /// Origins whose normalised URL was requested.
    pub origins_found: u64,
    /// Microseconds of the pass itself (files opened, before writing the output).
    pub pass_micros: u64,
    /// Bytes of `node2swhid.bin` read (runs of revision records; stretches of 64 KiB or
    /// more without one skipped).
    pub swhid_bytes_read: u64,
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
        self.origins += o.origins;
        self.origins_found += o.origins_found;
        self.swhid_bytes_read += o.swhid_bytes_read;
        self.pass_micros += o.pass_micros;
        self.chunks += o.chunks;
        self.chunks_reused += o.chunks_reused;
        self.bucket_bits = self.bucket_bits.max(o.bucket_bits);
    }
}

/// The graph with origin URLs (node messages) loaded.
type UrlGraph = SwhUnidirectionalGraph<
    swh_graph::properties::SwhGraphProperties<
        swh_graph::properties::NoMaps,
        swh_graph::properties::NoTimestamps,
        swh_graph::properties::NoPersons,
        swh_graph::properties::NoContents,
        swh_graph::properties::MappedStrings,
        swh_graph::properties::NoLabelNames,
    >,
>;

/// What the scan reads.
pub struct Input {
    /// The requested prefixes.
    pub prefixes: PrefixSet,
    /// Hashes of the normalised origin URLs the requested slugs may have, sorted.
    pub origin_keys: Vec<u128>,
    /// The node tables.
    pub maps: NodeMaps,
    /// Origin URLs.
    pub urls: UrlGraph,
    /// The nodes to scan.
    pub nodes: Range<usize>,
}

/// What one range of nodes holds.
#[derive(Default)]
struct Found {
    candidates: Vec<Candidate>,
    origins: Vec<Origin>,
    counts: ScanCounts,
}

/// Scans `nodes`; returns the candidates and origins found, in node order.
fn scan(input: &Input, nodes: Range<usize>) -> Result<Found, PhaseError> {
    let started = std::time::Instant::now();
    let n = input.maps.nodes;
    let nodes = nodes.start.min(n)..nodes.end.min(n);
    const CHUNK: usize = 1 << 20;
    let mut pl = concurrent_progress_logger!(
        item_name = "node",
        display_memory = true,
        expected_updates = Some(nodes.len())
    );
    pl.start(format!("Scanning nodes {nodes:?}"));
    let parts: Vec<Found> = (0..nodes.len().div_ceil(CHUNK))
        .into_par_iter()
        .map_with(
            (pl.clone(), Vec::new(), Vec::new()),
            |(pl, types, buf), c| {
                let mut f = Found::default();
                let range = nodes.start + c * CHUNK..(nodes.start + (c + 1) * CHUNK).min(nodes.end);
                input.maps.types_of(range.clone(), types);
                // Revisions: their records read in runs (the stretches without one skipped).
                let read = input.maps.for_each_hash(
                    range.clone(),
                    types,
                    NodeType::Revision,
                    buf,
                    |node, hash| scan_revision(input, node, hash, &mut f),
                )?;
                f.counts.swhid_bytes_read = read;
                f.counts.nodes = range.len() as u64;
                for (node, t) in range.clone().zip(types.iter()) {
                    if *t == Some(NodeType::Origin) {
                        scan_origin(input, node, &mut f);
                    }
                }
                pl.update_with_count(range.len());
                Ok::<_, PhaseError>(f)
            },
        )
        .collect::<Result<_, _>>()?;
    pl.done();
    let mut total = Found::default();
    for f in parts {
        total.counts.add(&f.counts);
        total.candidates.extend(f.candidates);
        total.origins.extend(f.origins);
    }
    total.counts.candidates = total.candidates.len() as u64;
    total.counts.origins_found = total.origins.len() as u64;
    total.counts.pass_micros = started.elapsed().as_micros() as u64;
    total.counts.bucket_bits = input.prefixes.bucket_bits() as u64;
    Ok(total)
}

fn scan_revision(input: &Input, node: usize, hash: [u8; 20], f: &mut Found) {
    f.counts.revisions += 1;
    if !input.prefixes.maybe(&hash) {
        return;
    }
    f.counts.bucket_hits += 1;
    if input.prefixes.matches(&hash) {
        f.candidates.push(Candidate {
            id: Sha1Git(hash),
            node: node as u64,
        });
    }
}

fn scan_origin(input: &Input, node: usize, f: &mut Found) {
    f.counts.origins += 1;
    let Some(url) = input.urls.properties().message(node) else {
        return;
    };
    let url = String::from_utf8_lossy(&url).into_owned();
    let key = normalize_url(&url);
    if input
        .origin_keys
        .binary_search(&key_hash(key.as_bytes()))
        .is_ok()
    {
        f.origins.push(Origin {
            key,
            node: node as u64,
            url,
        });
    }
}

/// Runs the scan of the context's shard, chunk by chunk, into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<ScanCounts, PhaseError> {
    let per_chunk = ctx.config.shards.chunk_nodes.max(1);
    let nodes = input.nodes.clone();
    let k = nodes.len().div_ceil(per_chunk).max(1);
    let (files, mut counts, stats) = ctx.chunks.run(k, &[CANDIDATES, ORIGINS], |i, tmp| {
        let lo = nodes.start + i * per_chunk;
        let found = scan(&input, lo..(lo + per_chunk).min(nodes.end))?;
        candidates::write(&tmp.join(CANDIDATES), &found.candidates)?;
        candidates::write_origins(&tmp.join(ORIGINS), &found.origins)?;
        Ok(found.counts)
    })?;
    crate::artifacts::concat(&files[0], &ctx.out.join(CANDIDATES))?;
    crate::artifacts::concat(&files[1], &ctx.out.join(ORIGINS))?;
    counts.chunks = stats.chunks;
    counts.chunks_reused = stats.reused;
    counts.bucket_bits = input.prefixes.bucket_bits() as u64;
    Ok(counts)
}

/// The hashes of the normalised origin URLs the plan's slugs may have, sorted.
fn requested_origins(plan_dir: &Path, templates: &[String]) -> Result<Vec<u128>, PhaseError> {
    let mut keys = Vec::new();
    let mut last_slug = String::new();
    for batch in plan_files::read_pairs(plan_dir)? {
        for p in batch? {
            // Pairs come sorted by slug: each slug once.
            if p.slug != last_slug {
                for k in origin_keys(&p.slug, templates) {
                    keys.push(key_hash(k.as_bytes()));
                }
                last_slug = p.slug;
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// Opens the origin URLs of the graph at `base`.
fn open_urls(base: &Path) -> Result<UrlGraph, GraphError> {
    SwhUnidirectionalGraph::new(base)
        .and_then(|g| g.init_properties().load_properties(|p| p.load_strings()))
        .map_err(|e| GraphError::new(base, e))
}

/// The scan as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Scan;
    type Counts = ScanCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(Inputs::from([(
            "origins".to_string(),
            config.origin_fingerprint(),
        )]))
    }

    fn run(ctx: &Context) -> Result<ScanCounts, PhaseError> {
        let plan = ctx.upstream(Phase::Plan);
        let maps = NodeMaps::open(ctx.graph())?;
        let nodes = ctx.shard.range(maps.nodes);
        let input = Input {
            prefixes: PrefixSet::open(&plan)?,
            origin_keys: requested_origins(&plan, &ctx.config.options.url_templates)?,
            urls: open_urls(ctx.graph())?,
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
        super::concat_shards(shards, ORIGINS, ctx.out)?;
        sort_by_id(ctx)?;
        Ok(summed)
    }
}

/// Writes `candidates.flat`: the merged candidates sorted by id.
fn sort_by_id(ctx: &Context) -> Result<(), PhaseError> {
    let budget = ctx.config.options.sort_memory_mb << 20;
    let mut sorter = Sorter::new(&ctx.scratch.join("by-id"), budget, false)
        .map_err(super::plan::PlanError::from)?;
    for batch in candidates::read(&ctx.out.join(CANDIDATES))? {
        for c in batch? {
            sorter.push(c).map_err(super::plan::PlanError::from)?;
        }
    }
    let mut out = FlatWriter::create(&ctx.out.join(BY_ID))?;
    for c in sorter.finish().map_err(super::plan::PlanError::from)? {
        out.push(&c.map_err(super::plan::PlanError::from)?)?;
    }
    out.finish()?;
    Ok(())
}
