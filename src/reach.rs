//! Phase 4, **reachable set**: the directories the path walk may enter.
//!
//! For each winning revision, a breadth-first search from its root directory over
//! subdirectories, down to the depth its deepest requested path needs (a path of k
//! components needs the directories at depths 0 to k-1). Roots are deduplicated (forks share
//! them) keeping the largest depth, and searched in parallel, deepest first, so that the long
//! searches start early and threads stay busy.
//!
//! Output (`WORKDIR/reach/dirs.bits`): a bit-vector over all nodes (little-endian 64-bit
//! words), one bit per reachable directory.
//!
//! Memory: the bit-vector (one bit per graph node), and per running search its frontier.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use swh_graph::NodeType;

use crate::graph::FullGraph;

/// A bit-vector over nodes, settable from several threads.
pub struct AtomicBits(Vec<AtomicU64>);

impl AtomicBits {
    /// `n` zero bits.
    pub fn new(n: usize) -> Self {
        Self((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    /// Sets bit `i`; true if it was clear.
    pub fn set(&self, i: usize) -> bool {
        let mask = 1u64 << (i % 64);
        self.0[i / 64].fetch_or(mask, Ordering::Relaxed) & mask == 0
    }

    /// The words, for writing.
    pub fn into_words(self) -> Vec<u64> {
        self.0.into_iter().map(AtomicU64::into_inner).collect()
    }
}

/// A read-only bit-vector over nodes.
#[derive(Debug, Clone)]
pub struct Bits(pub Vec<u64>);

impl Bits {
    /// Reads a bit-vector written by [`write_bits`].
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        Ok(Self(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ))
    }

    /// Bit `i`.
    pub fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Indices of the set bits, in increasing order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

/// Writes words as little-endian bytes.
pub fn write_bits(path: &Path, words: &[u64]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for w in words {
        f.write_all(&w.to_le_bytes())?;
    }
    f.flush()
}

/// Marks the directories reachable from each `(root, depth)`; returns the bits and their count.
pub fn reachable(graph: &(impl FullGraph + Sync), roots: &[(usize, usize)]) -> (AtomicBits, u64) {
    let mut deepest: HashMap<usize, usize> = HashMap::new();
    for &(r, d) in roots {
        let e = deepest.entry(r).or_insert(0);
        *e = (*e).max(d);
    }
    let mut work: Vec<(usize, usize)> = deepest.into_iter().collect();
    work.sort_by_key(|&(r, d)| (std::cmp::Reverse(d), r));
    let bits = AtomicBits::new(graph.num_nodes());
    let count = AtomicU64::new(0);
    let mut pl = dsi_progress_logger::concurrent_progress_logger!(
        item_name = "root",
        display_memory = true,
        expected_updates = Some(work.len())
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Marking reachable directories");
    work.par_iter()
        .for_each_with(pl.clone(), |pl, &(root, depth)| {
            let mut frontier = vec![root];
            if bits.set(root) {
                count.fetch_add(1, Ordering::Relaxed);
            }
            for _ in 1..depth {
                let mut next = Vec::new();
                for d in frontier {
                    for s in graph.successors(d) {
                        if graph.properties().node_type(s) == NodeType::Directory {
                            if bits.set(s) {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            next.push(s);
                        }
                    }
                }
                next.sort_unstable();
                next.dedup();
                frontier = next;
                if frontier.is_empty() {
                    break;
                }
            }
            pl.light_update();
        });
    pl.done();
    (bits, count.into_inner())
}
