//! Phase 5, **label pass**: one ordered pass over `graph-labelled.labels`, decoding only the
//! reachable directories and keeping only entries named like a requested path component.
//!
//! Reachable directories are visited in id order, so the file is read forward only (see
//! [`crate::graph::labels`] for its format). Their byte ranges are grouped into batches read
//! with one `pread` each: two ranges closer than `label_merge_gap` share a batch, and when the
//! ranges to read exceed `label_dense_fraction` of the file the gaps are read too, which turns
//! the pass into a plain sequential read. A batch never exceeds [`BATCH_BYTES`] unless one
//! directory does. Each directory's decoding must end exactly at the next node's offset.
//!
//! Requested names are mapped to label ids one by one, by binary search over the sorted
//! front-coded list of names (`label_name_id`), not by scanning all names.
//!
//! Output: [`crate::artifacts::entries`]. Shards: node-id ranges, concatenated in order.
//!
//! Memory: one batch buffer, the requested name ids, the entries kept.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use dsi_bitstream::prelude::*;
use swh_graph::graph::{SwhGraphWithProperties, SwhUnidirectionalGraph};

use crate::artifacts::bits::{Bits, DIRS};
use crate::artifacts::entries::{self, Entry, ENTRIES, NAMES};
use crate::artifacts::plan as plan_files;
use crate::config::Config;
use crate::graph::labels::{decode_node, LabelFile};
use crate::graph::GraphError;
use crate::model::{Counts, Phase, Shard};

use super::{Context, Inputs, PhaseError};

/// Largest batch read at once, unless a single directory is larger.
pub const BATCH_BYTES: u64 = 64 << 20;

/// Maps each requested name to its label id, when the graph has the name.
pub fn name_ids<'a>(
    base: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, u64>, GraphError> {
    let graph = SwhUnidirectionalGraph::new(base)
        .and_then(|g| {
            g.init_properties()
                .load_properties(|p| p.load_label_names())
        })
        .map_err(|e| GraphError::new(base, e))?;
    let props = graph.properties();
    let mut out = HashMap::new();
    for name in names {
        if let Ok(id) = props.label_name_id(name.as_bytes()) {
            out.insert(name.to_string(), id.0);
        }
    }
    Ok(out)
}

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
    /// Distinct requested path components (a constant of the run).
    pub components: u64,
    /// Of those, names the graph has (a constant of the run).
    pub components_in_graph: u64,
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
        self.components = self.components.max(o.components);
        self.components_in_graph = self.components_in_graph.max(o.components_in_graph);
    }
}

/// Groups node ranges `(node, start bit, end bit)` into batches `(first, end)` of indices:
/// ranges closer than `gap` bytes share a batch, and a batch stays under [`BATCH_BYTES`].
fn batches(ranges: &[(usize, u64, u64)], gap: u64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=ranges.len() {
        let split = i == ranges.len() || {
            let (_, s, e) = ranges[i];
            let prev_end = ranges[i - 1].2.div_ceil(8);
            let first = ranges[start].1 / 8;
            s / 8 > prev_end.saturating_add(gap) || e.div_ceil(8) - first > BATCH_BYTES
        };
        if split {
            out.push((start, i));
            start = i;
        }
    }
    out.retain(|b| b.0 < b.1);
    out
}

/// Runs the pass over the reachable directories in `nodes` (a shard or a chunk of one),
/// keeping entries whose name id is in `wanted` (sorted).
pub fn pass(
    labels: &LabelFile,
    reachable: &Bits,
    nodes: Range<usize>,
    wanted: &[u64],
    merge_gap: u64,
    dense_fraction: f64,
) -> Result<(Vec<Entry>, LabelCounts), PhaseError> {
    let started = std::time::Instant::now();
    let bad = |reason: String| PhaseError::Graph(GraphError::damaged(labels.path(), reason));
    // Bit ranges of the reachable directories, in id order.
    let ranges: Vec<(usize, u64, u64)> = reachable
        .ones()
        .skip_while(|n| *n < nodes.start)
        .take_while(|n| *n < nodes.end && *n < labels.nodes())
        .map(|n| {
            let (s, e) = labels.bits(n);
            (n, s, e)
        })
        .collect();
    if let Some(&(n, s, e)) = ranges
        .iter()
        .find(|(_, s, e)| s > e || e.div_ceil(8) > labels.len())
    {
        return Err(bad(format!(
            "node {n}: offsets {s}..{e} lie outside the labels file"
        )));
    }
    let span = |b: &(usize, usize)| ranges[b.1 - 1].2.div_ceil(8) - ranges[b.0].1 / 8;
    let mut plan = batches(&ranges, merge_gap);
    let to_read: u64 = plan.iter().map(span).sum();
    let dense = (to_read as f64) > dense_fraction * labels.len() as f64;
    if dense {
        plan = batches(&ranges, u64::MAX / 4);
    }
    let mut counts = LabelCounts {
        dense_chunks: dense as u64,
        ..Default::default()
    };
    let mut kept = Vec::new();
    let mut pl = dsi_progress_logger::progress_logger!(
        item_name = "directory",
        display_memory = true,
        expected_updates = Some(ranges.len())
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Decoding labels of reachable directories");
    let mut buf: Vec<u32> = Vec::new();
    let width = labels.width();
    for &(lo, hi) in &plan {
        let first_byte = (ranges[lo].1 / 8) & !3;
        let last_byte = ranges[hi - 1].2.div_ceil(8).min(labels.len());
        let len = (last_byte - first_byte) as usize;
        labels
            .read_words(first_byte, len, &mut buf)
            .map_err(|e| bad(format!("reading {len} bytes at {first_byte}: {e}")))?;
        counts.bytes_read += len as u64;
        counts.batches += 1;
        let mut reader = BufBitReader::<BE, _>::new(MemWordReader::new(&buf[..]));
        for &(node, start, end) in &ranges[lo..hi] {
            reader
                .set_bit_pos(start - first_byte * 8)
                .map_err(|e| bad(format!("node {node}: {e:?}")))?;
            counts.arcs += decode_node(
                &mut reader,
                node,
                end - start,
                labels.successors(node),
                width,
                |succ, v| {
                    let name_id = v >> 3;
                    if wanted.binary_search(&name_id).is_ok() {
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
            counts.directories += 1;
            pl.light_update();
        }
    }
    pl.done();
    // Directories come in id order; within one, order by name for binary search in the walk.
    kept.sort_unstable();
    counts.kept = kept.len() as u64;
    counts.pass_micros = started.elapsed().as_micros() as u64;
    Ok((kept, counts))
}

/// What the label pass reads.
pub struct Input {
    /// The requested path components.
    pub components: Vec<String>,
    /// The reachable directories of the shard's node range.
    pub reachable: Bits,
    /// The shard's node range.
    pub nodes: Range<usize>,
}

/// Runs the pass over the context's shard, chunk by chunk, into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<LabelCounts, PhaseError> {
    let opts = &ctx.config.options;
    let names = name_ids(ctx.graph(), input.components.iter().map(String::as_str))?;
    let mut wanted: Vec<u64> = names.values().copied().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let labels = LabelFile::open(ctx.graph())?;
    let per_chunk = ctx.config.shards.chunk_nodes.max(1);
    let nodes = input.nodes.clone();
    let k = nodes.len().div_ceil(per_chunk).max(1);
    let (files, mut counts, stats) = ctx.chunks.run(k, ENTRIES, |i, tmp| {
        let lo = nodes.start + i * per_chunk;
        let (kept, c) = pass(
            &labels,
            &input.reachable,
            lo..(lo + per_chunk).min(nodes.end),
            &wanted,
            opts.label_merge_gap,
            opts.label_dense_fraction,
        )?;
        entries::write_entries(&tmp.join(ENTRIES), &kept)?;
        Ok(c)
    })?;
    crate::artifacts::concat(&files, &ctx.out.join(ENTRIES))?;
    entries::write_names(&ctx.out.join(NAMES), &names)?;
    counts.chunks = stats.chunks;
    counts.chunks_reused = stats.reused;
    counts.components = input.components.len() as u64;
    counts.components_in_graph = names.len() as u64;
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
        let paths = plan_files::read_paths(&ctx.upstream(Phase::Plan))?;
        let mut components: Vec<String> = paths
            .iter()
            .flat_map(|p| p.split('/'))
            .map(str::to_string)
            .collect();
        components.sort_unstable();
        components.dedup();
        let nodes = ctx.shard.range(crate::graph::num_nodes(ctx.graph())?);
        let bits_path = ctx.upstream(Phase::Reach).join(DIRS);
        let reachable = Bits::read_range(&bits_path, nodes.clone())
            .map_err(|e| PhaseError::io(&bits_path, e))?;
        run(
            ctx,
            Input {
                components,
                reachable,
                nodes,
            },
        )
    }

    fn merge(
        ctx: &Context,
        shards: &[PathBuf],
        summed: LabelCounts,
    ) -> Result<LabelCounts, PhaseError> {
        super::concat_shards(shards, ENTRIES, ctx.out)?;
        let first = shards
            .first()
            .ok_or(PhaseError::NotSharded(Phase::Labels))?;
        let (from, to) = (first.join(NAMES), ctx.out.join(NAMES));
        std::fs::copy(&from, &to).map_err(|e| PhaseError::io(&to, e))?;
        Ok(summed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_batched_by_gap_and_size() {
        // Three nodes of 64 bits each; the third far away.
        let r = [(1, 0, 64), (2, 64, 128), (3, 1 << 30, (1 << 30) + 64)];
        assert_eq!(batches(&r, 0), [(0, 2), (2, 3)]);
        assert_eq!(
            batches(&r, u64::MAX / 4),
            [(0, 2), (2, 3)],
            "size caps the batch"
        );
        assert_eq!(batches(&r[..2], 0), [(0, 2)]);
        assert!(batches(&[], 0).is_empty());
    }
}
