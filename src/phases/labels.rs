//! Phase 6, **label pass**: one ordered pass over `graph-labelled.labels`, decoding only the
//! reachable directories and keeping only entries named like a requested path component.
//!
//! Reachable directories are visited in id order, so the file is read forward only (see
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
//! Memory: one read batch (64 MiB at most), the requested-names bit-vector (one bit per label
//! name of the graph), the shard's window of the reachable bit-vector.

use std::ops::Range;
use std::path::{Path, PathBuf};

use dsi_bitstream::prelude::*;

use crate::artifacts::bits::{Bits, DIRS};
use crate::artifacts::entries::{Entry, ENTRIES};
use crate::artifacts::flat::FlatWriter;
use crate::config::Config;
use crate::graph::labels::{decode_node, LabelFile};
use crate::graph::GraphError;
use crate::model::{Counts, Phase, Shard};

use super::names::WANTED;
use super::{Context, Inputs, PhaseError};

/// Largest batch read at once, unless a single directory is larger.
pub const BATCH_BYTES: u64 = 64 << 20;

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

/// Runs the pass over the reachable directories in `nodes` (a shard or a chunk of one),
/// writing the entries whose name is wanted into `out`.
pub fn pass(
    labels: &LabelFile,
    reachable: &Bits,
    nodes: Range<usize>,
    wanted: &Wanted,
    options: (u64, f64),
    out: &mut FlatWriter<Entry>,
) -> Result<LabelCounts, PhaseError> {
    let (merge_gap, dense_fraction) = options;
    let started = std::time::Instant::now();
    let bad = |reason: String| PhaseError::Graph(GraphError::damaged(labels.path(), reason));
    // The reachable directories' bit ranges, in id order (computed twice rather than held).
    let ranges = || {
        reachable
            .ones()
            .skip_while(move |n| *n < nodes.start)
            .take_while(move |n| *n < nodes.end && *n < labels.nodes())
            .map(|n| {
                let (s, e) = labels.bits(n);
                (n, s, e)
            })
    };
    let mut to_read = 0u64;
    let mut dirs = 0u64;
    for_each_batch(ranges(), merge_gap, |b| -> Result<(), PhaseError> {
        if let Some(&(n, s, e)) = b
            .iter()
            .find(|(_, s, e)| s > e || e.div_ceil(8) > labels.len())
        {
            return Err(bad(format!(
                "node {n}: offsets {s}..{e} lie outside the labels file"
            )));
        }
        dirs += b.len() as u64;
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
        expected_updates = Some(dirs as usize)
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Decoding labels of reachable directories");
    let mut buf: Vec<u32> = Vec::new();
    let mut kept: Vec<Entry> = Vec::new();
    let width = labels.width();
    for_each_batch(ranges(), gap, |batch| -> Result<(), PhaseError> {
        let first_byte = (batch[0].1 / 8) & !3;
        let last_byte = batch[batch.len() - 1].2.div_ceil(8).min(labels.len());
        let len = (last_byte - first_byte) as usize;
        labels
            .read_words(first_byte, len, &mut buf)
            .map_err(|e| bad(format!("reading {len} bytes at {first_byte}: {e}")))?;
        counts.bytes_read += len as u64;
        counts.batches += 1;
        let mut reader = BufBitReader::<BE, _>::new(MemWordReader::new(&buf[..]));
        for &(node, start, end) in batch {
            reader
                .set_bit_pos(start - first_byte * 8)
                .map_err(|e| bad(format!("node {node}: {e:?}")))?;
            kept.clear();
            counts.arcs += decode_node(
                &mut reader,
                node,
                end - start,
                labels.successors(node),
                width,
                |succ, v| {
                    let name_id = v >> 3;
                    if wanted.contains(name_id) {
                        kept.push(Entry {
                            dir: node as u64,
                            name_id,
                            perm: (v & 7) as u8,
                            target: succ as u64,
                        });
                    }
                },
            )
            .map_err(|e| bad(e.to_string()))?;
            let at = reader.bit_pos().map_err(|e| bad(format!("{e:?}")))? + first_byte * 8;
            if at != end {
                return Err(bad(format!(
                    "node {node}: labels end at bit {at} instead of {end}"
                )));
            }
            // Directories come in id order; within one, by name for the walk's search.
            kept.sort_unstable();
            for e in &kept {
                out.push(e)?;
            }
            counts.kept += kept.len() as u64;
            counts.directories += 1;
            pl.light_update();
        }
        Ok(())
    })?;
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

/// The label pass as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Labels;
    type Counts = LabelCounts;

    /// Its options (merge gap, dense fraction) change how the file is read, not what is kept.
    fn inputs(_config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(Inputs::new())
    }

    fn run(ctx: &Context) -> Result<LabelCounts, PhaseError> {
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
