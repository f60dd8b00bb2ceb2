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

/// A read-only window of a bit-vector over nodes: the bits of one node range, read alone so
/// that a shard's job reads its part of the file, not the whole (6 GB at full scale).
#[derive(Debug, Clone)]
pub struct Bits {
    nodes: std::ops::Range<usize>,
    first_word: usize,
    words: Vec<u64>,
}

impl Bits {
    /// Reads the bits of `nodes` from a file written by [`write_bits`].
    pub fn read_range(path: &Path, nodes: std::ops::Range<usize>) -> std::io::Result<Self> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)?;
        let file_words = (file.metadata()?.len() / 8) as usize;
        let first_word = (nodes.start / 64).min(file_words);
        let end_word = nodes.end.div_ceil(64).min(file_words).max(first_word);
        let mut bytes = vec![0u8; (end_word - first_word) * 8];
        file.read_exact_at(&mut bytes, first_word as u64 * 8)?;
        Ok(Self {
            nodes,
            first_word,
            words: bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        })
    }

    /// Indices of the set bits in the window's node range, in increasing order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self.first_word;
        self.words
            .iter()
            .enumerate()
            .flat_map(move |(wi, &w)| {
                let mut w = w;
                std::iter::from_fn(move || {
                    if w == 0 {
                        return None;
                    }
                    let b = w.trailing_zeros() as usize;
                    w &= w - 1;
                    Some((first + wi) * 64 + b)
                })
            })
            .filter(|n| self.nodes.contains(n))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_only_their_range() {
        let bits = AtomicBits::new(300);
        for i in [0, 63, 64, 130, 200, 299] {
            bits.set(i);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        write_bits(&path, &bits.into_words()).unwrap();
        let all: Vec<usize> = Bits::read_range(&path, 0..300).unwrap().ones().collect();
        assert_eq!(all, [0, 63, 64, 130, 200, 299]);
        let mid: Vec<usize> = Bits::read_range(&path, 63..201).unwrap().ones().collect();
        assert_eq!(mid, [63, 64, 130, 200]);
        assert_eq!(Bits::read_range(&path, 131..200).unwrap().ones().count(), 0);
    }
}
