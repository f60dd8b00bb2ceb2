//! Phase 6, **label pass**: ordered passes over `graph-labelled.labels`, decoding only the
//! directories the paths need and keeping only entries named like a requested path component.
//! Under `strategy = "single-pass"` those are the reachable set's, in one pass ([`pass`]);
//! under `levels`, the directories the paths enter, one pass per depth
//! ([`super::levels`], which calls [`pass`] at each level).
//!
//! Directories are visited in id order, so the file is read forward only (see
//! [`crate::graph::labels`] for its format). Their byte ranges are grouped into batches read
//! with one `pread` each: two ranges closer than `label_merge_gap` share a batch, and when the
//! ranges to read exceed `label_dense_fraction` of the file the gaps are read too, which turns
//! the pass into a plain sequential read. A batch never exceeds [`BATCH_BYTES`] unless one
//! directory does. Each directory's decoding must end exactly at the next node's offset.
//!
//! Entries are kept when their name id is set in the names phase's bit-vector (one bit test
//! per label, no search), and written as they are found, each directory's sorted by name id.
//!
//! Output: [`crate::artifacts::entries`] (`entries.flat`). Shards: node-id ranges,
//! concatenated in order.
//!
//! Batches are read in groups of [`GROUP_BYTES`] (or one larger batch) and a group is decoded
//! on all threads while the next is read; the ranges [`PREFETCH_BYTES`] ahead are announced
//! to the kernel.
//!
//! Memory: two groups of batches and their entries (at most 2 x 64 MiB of bytes, when a batch
//! is that large), the requested-names bit-vector (one bit per label name of the graph), the
//! shard's window of the directories' bit-vector.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::artifacts::bits::{Bits, DIRS};
use crate::artifacts::entries::{Entry, ENTRIES};
use crate::artifacts::flat::FlatWriter;
use crate::config::{Config, Strategy};
use crate::graph::labels::{decode_labels, DecodeError, LabelFile};
use crate::graph::GraphError;
use crate::model::{Counts, Phase, Shard};

use super::names::WANTED;
use super::{Context, Inputs, PhaseError};

/// Largest batch read at once, unless a single directory is larger.
pub const BATCH_BYTES: u64 = 64 << 20;

/// Bytes of batches read before they are decoded together (small reads are grouped so
/// that each parallel step has enough work).
pub const GROUP_BYTES: u64 = 4 << 20;

/// How far ahead of the read position scattered ranges are announced to the kernel.
pub const PREFETCH_BYTES: u64 = 32 << 20;

/// Counts of the label pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LabelCounts {
    /// Directories decoded.
    pub directories: u64,
    /// Arcs decoded.
    pub arcs: u64,
    /// Entries kept.
    pub kept: u64,
    /// Bytes read from the labels file.
    pub bytes_read: u64,
    /// Batches (one `pread` each).
    pub batches: u64,
    /// Chunks that read sequentially, gaps included.
    pub dense_chunks: u64,
    /// Microseconds of the pass itself (offsets looked up, ranges read and decoded).
    pub pass_micros: u64,
    /// Chunks of the shard(s).
    pub chunks: u64,
    /// Chunks reused from an interrupted run.
    pub chunks_reused: u64,
    /// Levels (strategy `levels`): path depths swept.
    pub levels: u64,
    /// Items (strategy `levels`): distinct (directory, remaining path) pairs followed.
    pub items: u64,
}

impl Counts for LabelCounts {
    fn add(&mut self, o: &Self) {
        self.directories += o.directories;
        self.arcs += o.arcs;
        self.kept += o.kept;
        self.bytes_read += o.bytes_read;
        self.batches += o.batches;
        self.dense_chunks += o.dense_chunks;
        self.pass_micros += o.pass_micros;
        self.chunks += o.chunks;
        self.chunks_reused += o.chunks_reused;
        self.levels += o.levels;
        self.items += o.items;
    }
}

/// A bit-vector over label name ids: the requested names.
pub struct Wanted(Vec<u64>);

impl Wanted {
    /// Reads the names phase's bit-vector.
    pub fn read(dir: &Path) -> Result<Self, PhaseError> {
        let path = dir.join(WANTED);
        let bytes = std::fs::read(&path).map_err(|e| PhaseError::io(&path, e))?;
        Ok(Self(
            bytes
                .chunks(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a[..c.len()].copy_from_slice(c);
                    u64::from_le_bytes(a)
                })
                .collect(),
        ))
    }

    /// A bit-vector with bit i of `words` set for the requested name id i.
    pub fn from_words(words: Vec<u64>) -> Self {
        Self(words)
    }

    /// Whether label name `id` was requested.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.0
            .get((id / 64) as usize)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }
}

/// Groups node ranges `(node, start bit, end bit)` into batches: ranges closer than `gap`
/// bytes share a batch, and a batch stays under [`BATCH_BYTES`]. Calls `f` on each batch.
fn for_each_batch<E>(
    ranges: impl Iterator<Item = (usize, u64, u64)>,
    gap: u64,
    mut f: impl FnMut(&[(usize, u64, u64)]) -> Result<(), E>,
) -> Result<(), E> {
    let mut batch: Vec<(usize, u64, u64)> = Vec::new();
    for r in ranges {
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            let far = r.1 / 8 > last.2.div_ceil(8).saturating_add(gap);
            let big = r.2.div_ceil(8) - first.1 / 8 > BATCH_BYTES;
            if far || big {
                f(&batch)?;
                batch.clear();
            }
        }
        batch.push(r);
    }
    if !batch.is_empty() {
        f(&batch)?;
    }
    Ok(())
}

/// A batch read from the labels file: its bytes (from `first_byte`) and its directories.
struct Batch {
    first_byte: u64,
    bytes: Vec<u8>,
    nodes: Vec<(usize, u64, u64)>,
}

/// Decodes one directory of a batch, appending its kept entries (sorted by name) to `out`.
/// Successors are decoded only when an entry is kept: the arcs are counted from the labels
/// alone, and then checked against the forward graph's outdegree.
fn decode_dir(
    labels: &LabelFile,
    batch: &Batch,
    (node, start, end): (usize, u64, u64),
    wanted: &Wanted,
    kept: &mut Vec<(u64, u64)>,
    out: &mut Vec<Entry>,
) -> Result<u64, DecodeError> {
    let base = batch.first_byte * 8;
    kept.clear();
    let arcs = decode_labels(
        &batch.bytes,
        node,
        start - base,
        end - base,
        labels.width(),
        |arc, v| {
            if wanted.contains(v >> 3) {
                kept.push((arc, v));
            }
        },
    )?;
    if kept.is_empty() {
        return Ok(arcs);
    }
    let degree = labels.outdegree(node) as u64;
    if degree != arcs {
        return Err(DecodeError::Read {
            node,
            reason: format!("{arcs} arcs in its labels but {degree} successors in the graph"),
        });
    }
    let from = out.len();
    let mut next = kept.iter().peekable();
    for (arc, succ) in labels.successors(node).enumerate() {
        while let Some(&&(_, v)) = next.peek().filter(|(a, _)| *a == arc as u64) {
            out.push(Entry {
                dir: node as u64,
                name_id: v >> 3,
                perm: (v & 7) as u8,
                target: succ as u64,
            });
            next.next();
        }
        if next.peek().is_none() {
            break;
        }
    }
    // Within a directory, entries are sorted by name for the walk's search.
    out[from..].sort_unstable();
    Ok(arcs)
}

/// Decodes a batch on all threads; returns its entries in node order and its arc count.
fn decode_batch(
    labels: &LabelFile,
    batch: &Batch,
    wanted: &Wanted,
) -> Result<(Vec<Entry>, u64), DecodeError> {
    let piece = batch
        .nodes
        .len()
        .div_ceil(4 * rayon::current_num_threads())
        .max(64);
    let parts: Vec<(Vec<Entry>, u64)> = batch
        .nodes
        .par_chunks(piece)
        .map(|nodes| {
            let (mut out, mut kept, mut arcs) = (Vec::new(), Vec::new(), 0);
            for &n in nodes {
                arcs += decode_dir(labels, batch, n, wanted, &mut kept, &mut out)?;
            }
            Ok((out, arcs))
        })
        .collect::<Result<_, DecodeError>>()?;
    let arcs = parts.iter().map(|p| p.1).sum();
    Ok((parts.into_iter().flat_map(|p| p.0).collect(), arcs))
}

/// Runs the pass over the directories set in `dirs` within `nodes` (a shard or a chunk of
/// one), writing the entries whose name is wanted into `out`. Each batch is decoded on all
/// threads while the next one is read.
pub fn pass(
    labels: &LabelFile,
    dirs: &Bits,
    nodes: Range<usize>,
    wanted: &Wanted,
    options: (u64, f64),
    out: &mut FlatWriter<Entry>,
) -> Result<LabelCounts, PhaseError> {
    let (merge_gap, dense_fraction) = options;
    let started = std::time::Instant::now();
    let bad = |reason: String| PhaseError::Graph(GraphError::damaged(labels.path(), reason));
    // The directories' bit ranges, in id order (computed again for the count, the prefetch
    // and the reads rather than held).
    let ranges = || {
        dirs.ones()
            .skip_while(move |n| *n < nodes.start)
            .take_while(move |n| *n < nodes.end && *n < labels.nodes())
            .map(|n| {
                let (s, e) = labels.bits(n);
                (n, s, e)
            })
    };
    let mut to_read = 0u64;
    let mut count = 0u64;
    for_each_batch(ranges(), merge_gap, |b| -> Result<(), PhaseError> {
        if let Some(&(n, s, e)) = b
            .iter()
            .find(|(_, s, e)| s > e || e.div_ceil(8) > labels.len())
        {
            return Err(bad(format!(
                "node {n}: offsets {s}..{e} lie outside the labels file"
            )));
        }
        count += b.len() as u64;
        to_read += b[b.len() - 1].2.div_ceil(8) - b[0].1 / 8;
        Ok(())
    })?;
    let dense = (to_read as f64) > dense_fraction * labels.len() as f64;
    let gap = if dense { u64::MAX / 4 } else { merge_gap };
    let mut counts = LabelCounts {
        dense_chunks: dense as u64,
        ..Default::default()
    };
    let mut pl = dsi_progress_logger::progress_logger!(
        item_name = "directory",
        display_memory = true,
        expected_updates = Some(count as usize)
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Decoding labels of the directories the paths need");
    let read = |nodes: &[(usize, u64, u64)], mut bytes: Vec<u8>| -> Result<Batch, PhaseError> {
        let first_byte = nodes[0].1 / 8;
        let last_byte = nodes[nodes.len() - 1].2.div_ceil(8).min(labels.len());
        let len = (last_byte - first_byte) as usize;
        labels
            .read_bytes(first_byte, len, &mut bytes)
            .map_err(|e| bad(format!("reading {len} bytes at {first_byte}: {e}")))?;
        Ok(Batch {
            first_byte,
            bytes,
            nodes: nodes.to_vec(),
        })
    };
    // Buffers are reused: a fresh 64 MiB buffer per batch costs a page fault per page.
    let read_group = |group: &[Vec<(usize, u64, u64)>],
                      spare: &mut Vec<Vec<u8>>|
     -> Result<Vec<Batch>, PhaseError> {
        group
            .iter()
            .map(|nodes| read(nodes, spare.pop().unwrap_or_default()))
            .collect()
    };
    let decode_group = |group: &[Batch]| -> Vec<Result<(Vec<Entry>, u64), DecodeError>> {
        group
            .par_iter()
            .map(|b| decode_batch(labels, b, wanted))
            .collect()
    };
    let mut write = |group: Vec<Batch>,
                     decoded: Vec<Result<(Vec<Entry>, u64), DecodeError>>,
                     spare: &mut Vec<Vec<u8>>| {
        for (batch, d) in group.into_iter().zip(decoded) {
            let (entries, arcs) = d.map_err(|e| bad(e.to_string()))?;
            for e in &entries {
                out.push(e)?;
            }
            counts.arcs += arcs;
            counts.kept += entries.len() as u64;
            counts.directories += batch.nodes.len() as u64;
            counts.bytes_read += (batch.bytes.len() - 16) as u64;
            counts.batches += 1;
            pl.update_with_count(batch.nodes.len());
            spare.push(batch.bytes);
        }
        Ok::<(), PhaseError>(())
    };
    // Scattered reads: the ranges up to PREFETCH_BYTES ahead are announced to the kernel,
    // page-aligned and coalesced, so the disk serves them concurrently.
    let mut ahead = ranges().peekable();
    let mut announced = 0u64;
    let mut prefetch = |upto: u64| {
        if dense {
            return;
        }
        let mut run: Option<(u64, u64)> = None;
        while let Some(&(_, s, e)) = ahead.peek() {
            let (lo, hi) = ((s / 8) & !4095, e.div_ceil(8).next_multiple_of(4096));
            if lo > upto.saturating_add(PREFETCH_BYTES) {
                break;
            }
            ahead.next();
            let lo = lo.max(announced);
            if hi <= lo {
                continue;
            }
            announced = hi;
            run = match run {
                Some((a, b)) if lo <= b + 4096 => Some((a, hi.max(b))),
                Some((a, b)) => {
                    labels.will_need(a, b - a);
                    Some((lo, hi))
                }
                None => Some((lo, hi)),
            };
        }
        if let Some((a, b)) = run {
            labels.will_need(a, b - a);
        }
    };
    // Batches are read in groups of GROUP_BYTES (many small reads, or one large), and one
    // group is decoded on all threads while the next is read.
    let mut pending: Vec<Batch> = Vec::new();
    let mut group: Vec<Vec<(usize, u64, u64)>> = Vec::new();
    let mut group_bytes = 0u64;
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut flush = |group: &mut Vec<Vec<(usize, u64, u64)>>| -> Result<(), PhaseError> {
        let mut fresh = std::mem::take(&mut spare);
        let (next, decoded) =
            rayon::join(|| read_group(group, &mut fresh), || decode_group(&pending));
        spare = fresh;
        write(std::mem::take(&mut pending), decoded, &mut spare)?;
        pending = next?;
        group.clear();
        Ok(())
    };
    for_each_batch(ranges(), gap, |nodes| -> Result<(), PhaseError> {
        prefetch(nodes[0].1 / 8);
        group_bytes += nodes[nodes.len() - 1].2.div_ceil(8) - nodes[0].1 / 8;
        group.push(nodes.to_vec());
        if group_bytes >= GROUP_BYTES {
            flush(&mut group)?;
            group_bytes = 0;
        }
        Ok(())
    })?;
    // The last group is read while the one before is decoded, then decoded alone.
    flush(&mut group)?;
    flush(&mut group)?;
    pl.done();
    counts.pass_micros = started.elapsed().as_micros() as u64;
    Ok(counts)
}

/// What the label pass reads.
pub struct Input {
    /// The requested names.
    pub wanted: Wanted,
    /// The reachable directories of the shard's node range.
    pub reachable: Bits,
    /// The shard's node range.
    pub nodes: Range<usize>,
}

/// Runs the pass over the context's shard, chunk by chunk, into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<LabelCounts, PhaseError> {
    let opts = &ctx.config.options;
    let labels = LabelFile::open(ctx.graph())?;
    let per_chunk = ctx.config.shards.chunk_nodes.max(1);
    let nodes = input.nodes.clone();
    let k = nodes.len().div_ceil(per_chunk).max(1);
    let (files, mut counts, stats) = ctx.chunks.run(k, &[ENTRIES], |i, tmp| {
        let lo = nodes.start + i * per_chunk;
        let mut out = FlatWriter::create(&tmp.join(ENTRIES))?;
        let c = pass(
            &labels,
            &input.reachable,
            lo..(lo + per_chunk).min(nodes.end),
            &input.wanted,
            (opts.label_merge_gap, opts.label_dense_fraction),
            &mut out,
        )?;
        out.finish()?;
        Ok(c)
    })?;
    crate::artifacts::flat::concat::<Entry>(&files[0], &ctx.out.join(ENTRIES))?;
    counts.chunks = stats.chunks;
    counts.chunks_reused = stats.reused;
    Ok(counts)
}

/// The checkpoint inputs of the phases whose work depends on the strategy (reach, labels).
pub fn strategy_inputs(config: &Config) -> Inputs {
    Inputs::from([(
        "strategy".to_string(),
        config.options.strategy.name().to_string(),
    )])
}

/// The levels strategy ([`super::levels`]) over the whole graph, into `ctx.out`.
fn run_levels(ctx: &Context) -> Result<LabelCounts, PhaseError> {
    let plan = ctx.upstream(Phase::Plan);
    let names = ctx.upstream(Phase::Names);
    let input = super::levels::Input {
        files: crate::artifacts::plan::read_inputs(&plan)?,
        pairs: crate::artifacts::plan::PairLookup::open(&plan)?,
        matches: crate::artifacts::matches::Matches::open(&ctx.upstream(Phase::Match))?,
        names: crate::artifacts::entries::Names::open(&names)?,
        wanted: Wanted::read(&names)?,
        maps: crate::graph::NodeMaps::open(ctx.graph())?,
    };
    let opts = &ctx.config.options;
    let labels = LabelFile::open(ctx.graph())?;
    let scratch = ctx.scratch.join("levels");
    let counts = super::levels::run(
        &input,
        &labels,
        ctx.out,
        &scratch,
        opts.sort_memory_mb << 20,
        (opts.label_merge_gap, opts.label_dense_fraction),
    )?;
    std::fs::remove_dir_all(&scratch).map_err(|e| PhaseError::io(&scratch, e))?;
    Ok(counts)
}

/// The label pass as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Labels;
    type Counts = LabelCounts;

    /// Its options (merge gap, dense fraction) change how the file is read, not what is
    /// kept; the strategy changes which directories are kept.
    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(strategy_inputs(config))
    }

    fn run(ctx: &Context) -> Result<LabelCounts, PhaseError> {
        if ctx.config.options.strategy == Strategy::Levels {
            return run_levels(ctx);
        }
        let nodes = ctx.shard.range(crate::graph::num_nodes(ctx.graph())?);
        let bits_path = ctx.upstream(Phase::Reach).join(DIRS);
        let reachable = Bits::read_range(&bits_path, nodes.clone())
            .map_err(|e| PhaseError::io(&bits_path, e))?;
        let input = Input {
            wanted: Wanted::read(&ctx.upstream(Phase::Names))?,
            reachable,
            nodes,
        };
        run(ctx, input)
    }

    fn merge(
        ctx: &Context,
        shards: &[PathBuf],
        summed: LabelCounts,
    ) -> Result<LabelCounts, PhaseError> {
        let files: Vec<PathBuf> = shards.iter().map(|d| d.join(ENTRIES)).collect();
        crate::artifacts::flat::concat::<Entry>(&files, &ctx.out.join(ENTRIES))?;
        Ok(summed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(r: &[(usize, u64, u64)], gap: u64) -> Vec<usize> {
        let mut sizes = Vec::new();
        for_each_batch(r.iter().copied(), gap, |b| -> Result<(), ()> {
            sizes.push(b.len());
            Ok(())
        })
        .unwrap();
        sizes
    }

    #[test]
    fn ranges_are_batched_by_gap_and_size() {
        // Three nodes of 64 bits each; the third far away.
        let r = [(1, 0, 64), (2, 64, 128), (3, 1 << 30, (1 << 30) + 64)];
        assert_eq!(batches(&r, 0), [2, 1]);
        assert_eq!(batches(&r, u64::MAX / 4), [2, 1], "size caps the batch");
        assert_eq!(batches(&r[..2], 0), [2]);
        assert!(batches(&[], 0).is_empty());
    }
}
