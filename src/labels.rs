//! Phase 5, **label pass**: one ordered pass over `graph-labelled.labels`, decoding only the
//! reachable directories and keeping only entries named like a requested path component.
//!
//! The labels file is a big-endian bitstream holding, node after node in id order, for each
//! arc (in successor order) a γ-coded count followed by that many labels of `width` bits
//! (`width` from the `labelspec` of `graph-labelled.properties`); a directory entry label is
//! `name_id << 3 | permission`. The bit offset where a node starts is read from the
//! Elias-Fano index `graph-labelled.ef`; arc targets come from the BV graph.
//!
//! Reachable directories are visited in id order, so the file is read forward only. Their
//! byte ranges are grouped into batches read with one `pread` each: two ranges closer than
//! `label_merge_gap` share a batch, and when the ranges to read exceed
//! `label_dense_fraction` of the file the gaps are read too, which turns the pass into a plain
//! sequential read. A batch never exceeds [`BATCH_BYTES`] unless one directory does.
//!
//! Requested names are mapped to label ids one by one, by binary search over the sorted
//! front-coded list of names (`label_name_id`), not by scanning all names.
//!
//! Output (`WORKDIR/labels/`): `entries.parquet` (directory, name id, permission, target;
//! sorted by directory and name id, which the walk binary-searches) and
//! `names.parquet` (each requested component and its label id, when the graph has it).
//!
//! Memory: one batch buffer, the requested name ids, the entries kept.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use dsi_bitstream::prelude::*;
use epserde::deser::{Deserialize, Flags};
use swh_graph::graph::{SwhForwardGraph, SwhGraphWithProperties, SwhUnidirectionalGraph};
use value_traits::slices::SliceByValue;

use crate::graph::suffixed;
use crate::reach::Bits;

/// Largest batch read at once, unless a single directory is larger.
pub const BATCH_BYTES: u64 = 64 << 20;

/// Errors of the label pass.
#[derive(Debug, thiserror::Error)]
#[error("label pass on {path}: {reason}")]
pub struct LabelError {
    /// The file involved.
    pub path: String,
    /// What failed.
    pub reason: String,
}

fn err(path: &Path, reason: impl ToString) -> LabelError {
    LabelError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// One kept directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Directory node.
    pub dir: u64,
    /// Label id of the entry name.
    pub name_id: u64,
    /// Permission code (swh-graph's `Permission` as a number).
    pub perm: u8,
    /// Target node.
    pub target: u64,
}

/// What the pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassStats {
    /// Directories decoded.
    pub dirs: u64,
    /// Arcs decoded.
    pub arcs: u64,
    /// Entries kept.
    pub kept: u64,
    /// Bytes read from the labels file.
    pub bytes_read: u64,
    /// Size of the labels file.
    pub file_bytes: u64,
    /// Batches (one `pread` each).
    pub batches: u64,
    /// Whether the pass read sequentially, gaps included.
    pub dense: bool,
    /// Microseconds of the pass itself (offsets looked up, ranges read and decoded).
    pub pass_micros: u64,
}

/// The label width declared in `<base>-labelled.properties`.
pub fn label_width(base: &Path) -> Result<usize, LabelError> {
    let path = suffixed(base, "-labelled.properties");
    let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e))?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "labelspec")
        .and_then(|(_, v)| {
            let v = v.replace('\\', "");
            let inner = v.trim().strip_suffix(')')?;
            inner.rsplit_once(',')?.1.trim().parse().ok()
        })
        .ok_or_else(|| err(&path, "no labelspec=...SwhLabel(DirEntry,WIDTH)"))
}

/// Maps each requested name to its label id, when the graph has the name.
pub fn name_ids<'a>(
    base: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, u64>, LabelError> {
    let graph = SwhUnidirectionalGraph::new(base)
        .and_then(|g| {
            g.init_properties()
                .load_properties(|p| p.load_label_names())
        })
        .map_err(|e| err(base, format!("{e:#}")))?;
    let props = graph.properties();
    let mut out = HashMap::new();
    for name in names {
        if let Ok(id) = props.label_name_id(name.as_bytes()) {
            out.insert(name.to_string(), id.0);
        }
    }
    Ok(out)
}

/// Runs the pass over the reachable directories in `nodes` (a shard or a chunk of one) of the
/// graph at `base`, keeping entries
/// whose name id is in `wanted` (sorted).
pub fn pass(
    base: &Path,
    reachable: &Bits,
    nodes: std::ops::Range<usize>,
    wanted: &[u64],
    merge_gap: u64,
    dense_fraction: f64,
) -> Result<(Vec<Entry>, PassStats), LabelError> {
    let width = label_width(base)?;
    let graph = SwhUnidirectionalGraph::new(base).map_err(|e| err(base, format!("{e:#}")))?;
    let labelled = suffixed(base, "-labelled");
    let ef_path = suffixed(&labelled, ".ef");
    // SAFETY: the file is a valid epserde serialisation written by swh-graph / webgraph.
    let ef = unsafe { swh_graph::webgraph::graphs::bvgraph::EF::mmap(&ef_path, Flags::empty()) }
        .map_err(|e| err(&ef_path, e))?;
    let ef = ef.uncase();
    let labels_path = suffixed(&labelled, ".labels");
    let file = std::fs::File::open(&labels_path).map_err(|e| err(&labels_path, e))?;
    let file_bytes = file.metadata().map_err(|e| err(&labels_path, e))?.len();

    let started = std::time::Instant::now();
    // Bit ranges of the reachable directories, in id order.
    let ranges: Vec<(usize, u64, u64)> = reachable
        .ones()
        .skip_while(|n| *n < nodes.start)
        .take_while(|n| *n < nodes.end)
        .map(|n| (n, ef.index_value(n), ef.index_value(n + 1)))
        .collect();
    let batches = |gap: u64| -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..=ranges.len() {
            let split = i == ranges.len() || {
                let (_, s, e) = ranges[i];
                let prev_end = ranges[i - 1].2.div_ceil(8);
                let first = ranges[start].1 / 8;
                s / 8 > prev_end + gap || e.div_ceil(8) - first > BATCH_BYTES
            };
            if split {
                out.push((start, i));
                start = i;
            }
        }
        out
    };
    let span = |b: &(usize, usize)| ranges[b.1 - 1].2.div_ceil(8) - ranges[b.0].1 / 8;
    let mut plan = batches(merge_gap);
    let to_read: u64 = plan.iter().map(span).sum();
    let dense = (to_read as f64) > dense_fraction * file_bytes as f64;
    if dense {
        plan = batches(u64::MAX / 4);
    }

    let mut stats = PassStats {
        file_bytes,
        dense,
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
    for (lo, hi) in plan.iter().filter(|b| b.0 < b.1) {
        let first_byte = (ranges[*lo].1 / 8) & !3;
        let last_byte = ranges[hi - 1].2.div_ceil(8).min(file_bytes);
        let len = (last_byte - first_byte) as usize;
        // Words in file order, read natively as webgraph's memory map does; the big-endian
        // bit reader converts them. Reading straight into the words avoids a second copy.
        buf.clear();
        buf.resize(len.div_ceil(4) + 4, 0);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf[..]);
        file.read_exact_at(&mut bytes[..len], first_byte)
            .map_err(|e| err(&labels_path, e))?;
        bytes[len..].fill(0);
        stats.bytes_read += len as u64;
        stats.batches += 1;
        let mut reader = BufBitReader::<BE, _>::new(MemWordReader::new_inf(&buf[..]));
        for &(node, start, end) in &ranges[*lo..*hi] {
            reader
                .set_bit_pos(start - first_byte * 8)
                .map_err(|e| err(&labels_path, format!("{e:?}")))?;
            for succ in graph.successors(node) {
                let count = reader
                    .read_gamma()
                    .map_err(|e| err(&labels_path, format!("{e:?}")))?;
                for _ in 0..count {
                    let v = reader
                        .read_bits(width)
                        .map_err(|e| err(&labels_path, format!("{e:?}")))?;
                    let name_id = v >> 3;
                    if wanted.binary_search(&name_id).is_ok() {
                        kept.push(Entry {
                            dir: node as u64,
                            name_id,
                            perm: (v & 7) as u8,
                            target: succ as u64,
                        });
                    }
                }
                stats.arcs += 1;
            }
            let at = reader
                .bit_pos()
                .map_err(|e| err(&labels_path, format!("{e:?}")))?;
            if at + first_byte * 8 != end {
                return Err(err(
                    &labels_path,
                    format!(
                        "node {node}: labels end at bit {} instead of {end}",
                        at + first_byte * 8
                    ),
                ));
            }
            stats.dirs += 1;
            pl.light_update();
        }
    }
    pl.done();
    // Directories come in id order; within one, order by name for binary search in the walk.
    kept.sort_unstable();
    stats.kept = kept.len() as u64;
    stats.pass_micros = started.elapsed().as_micros() as u64;
    Ok((kept, stats))
}
