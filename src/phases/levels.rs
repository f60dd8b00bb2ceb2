//! Phase 6 with `strategy = "levels"`: **level-synchronous path resolution**.
//!
//! Instead of marking every directory reachable from each member revision down to the
//! deepest requested depth (the reachable set) and decoding them all, the paths are followed
//! one level at a time, and at each level only the directories they actually enter are
//! decoded:
//!
//! 1. Every row's path, in the tree of every member revision of its pair, becomes an item
//!    `(root directory, label ids of its components)`; items are sorted and deduplicated
//!    (rows sharing a revision and a path are one item).
//! 2. At level d, the directories the items stand in are decoded by the label pass's reader
//!    ([`super::labels::pass`]): in ascending node order, nearby ranges read together, so
//!    the level is one forward sweep over the labels file that skips what it does not need.
//! 3. Each item looks its next component up among the entries just decoded; when that is a
//!    directory and components remain, it becomes an item of level d+1 in that directory.
//!
//! The entries of every level, merged, are what the single pass would have kept for the
//! directories the walk enters, so the walk's answers are the same (a test compares the
//! `resolved` outputs of both strategies). No reachable set is needed: `reach` does no work
//! under this strategy.
//!
//! A component whose name no label has ends the item (the walk stops there too); so does a
//! file, a link or a submodule. A directory met at two depths is decoded at both (rare: a
//! folder moved up or down); its entries are kept once.
//!
//! Memory: one bit per graph node for the level's directories, `sort_memory_mb` for the
//! items' sort (spilled to disk beyond it), and the label pass's two read batches. The rows
//! are read once, for level 0.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use swh_graph::NodeType;

use crate::artifacts::bits::{AtomicBits, Bits};
use crate::artifacts::entries::{Entries, Entry, Names, ENTRIES};
use crate::artifacts::flat::{FlatFile, FlatWriter};
use crate::artifacts::matches::Matches;
use crate::artifacts::plan::PairLookup;
use crate::graph::labels::LabelFile;
use crate::graph::NodeMaps;
use crate::model::Counts;
use crate::sort::{Record, Sorter};
use crate::table;

use super::labels::{pass, LabelCounts, Wanted};
use super::plan::{row_pair, PlanError};
use super::walk::row_columns;
use super::PhaseError;

/// A path still to follow: the directory it stands in and the label ids of the components
/// left, the first one to look up in that directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    /// The directory node.
    pub dir: u64,
    /// Label ids of the remaining components.
    pub names: Vec<u64>,
}

impl Record for Item {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dir.to_le_bytes());
        for n in &self.names {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 8 || !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut words = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()));
        Some(Self {
            dir: words.next()?,
            names: words.collect(),
        })
    }
    fn mem_size(&self) -> usize {
        32 + 8 * self.names.capacity()
    }
}

/// What the levels read.
pub struct Input {
    /// The input files, in row order.
    pub files: Vec<(String, u64)>,
    /// Pairs by key.
    pub pairs: PairLookup,
    /// The match.
    pub matches: Matches,
    /// The requested names' label ids.
    pub names: Names,
    /// The requested names, as a bit-vector over label ids.
    pub wanted: Wanted,
    /// Node types.
    pub maps: NodeMaps,
}

/// Runs the levels into `out/entries.flat`, with `scratch` for the sorts and the levels'
/// entries; `options` as for [`pass`].
pub fn run(
    input: &Input,
    labels: &LabelFile,
    out: &Path,
    scratch: &Path,
    sort_budget: usize,
    options: (u64, f64),
) -> Result<LabelCounts, PhaseError> {
    let nodes = labels.nodes();
    let mut counts = LabelCounts::default();
    let started = std::time::Instant::now();
    let (mut items, mut dirs) = first_items(input, scratch, sort_budget, nodes)?;
    let mut level_files: Vec<PathBuf> = Vec::new();
    let mut level = 0usize;
    while let Some(sorted_items) = items.take() {
        let here = scratch.join(format!("level-{level}"));
        std::fs::create_dir_all(&here).map_err(|e| PhaseError::io(&here, e))?;
        let bits = Bits::from_words(
            std::mem::replace(&mut dirs, AtomicBits::new(0)).into_words(),
            0..nodes,
        );
        let mut w = FlatWriter::create(&here.join(ENTRIES))?;
        let c = pass(labels, &bits, 0..nodes, &input.wanted, options, &mut w)?;
        w.finish()?;
        drop(bits);
        counts.add(&c);
        let entries = Entries::open(&here)?;
        // The next level's items, and the directories they stand in.
        dirs = AtomicBits::new(nodes);
        let mut next: Sorter<Item> =
            Sorter::new(&here.join("sort"), sort_budget, true).map_err(PlanError::from)?;
        let mut any = false;
        for item in sorted_items {
            let item = item.map_err(PlanError::from)?;
            counts.items += 1;
            let Some((&name, rest)) = item.names.split_first() else {
                continue;
            };
            let Some((_, target)) = entries.lookup(item.dir, name) else {
                continue;
            };
            if rest.is_empty() || input.maps.node_type(target) != Some(NodeType::Directory) {
                continue;
            }
            dirs.set(target as usize);
            any = true;
            next.push(Item {
                dir: target,
                names: rest.to_vec(),
            })
            .map_err(PlanError::from)?;
        }
        level_files.push(here.join(ENTRIES));
        level += 1;
        if any {
            items = Some(next.finish().map_err(PlanError::from)?);
        }
    }
    counts.levels = level as u64;
    counts.kept = merge_levels(&level_files, &out.join(ENTRIES))?;
    counts.pass_micros = started.elapsed().as_micros() as u64;
    Ok(counts)
}

/// Level 0: an item per row and member revision with a root, from one read of the rows;
/// returns the sorted items (none when no row has one) and their directories.
fn first_items(
    input: &Input,
    scratch: &Path,
    sort_budget: usize,
    nodes: usize,
) -> Result<(Option<crate::sort::Sorted<Item>>, AtomicBits), PhaseError> {
    let dirs = AtomicBits::new(nodes);
    let mut sorter: Sorter<Item> =
        Sorter::new(&scratch.join("level-0-sort"), sort_budget, true).map_err(PlanError::from)?;
    let mut any = false;
    let planned: u64 = input.files.iter().map(|f| f.1).sum();
    let mut pl = dsi_progress_logger::progress_logger!(
        item_name = "row",
        display_memory = true,
        expected_updates = Some(planned as usize)
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Reading the rows' paths");
    for (file, _) in &input.files {
        let file = Path::new(file);
        let (_, batches) = table::open(file)?;
        for batch in batches {
            let batch = batch?;
            let (repo, commit, path) = row_columns(file, &batch)?;
            for i in 0..batch.num_rows() {
                let Ok((slug, prefix)) = row_pair(repo[i], commit[i], path[i]) else {
                    continue;
                };
                let Some(pm) = input
                    .pairs
                    .get(&slug, &prefix)
                    .and_then(|p| input.matches.pair(p))
                else {
                    continue;
                };
                if pm.status.failure().is_some() {
                    continue;
                }
                // The walk stops at the first component no label has: so does the item.
                let names: Vec<u64> = path[i]
                    .unwrap_or_default()
                    .split('/')
                    .map_while(|c| input.names.get(c.as_bytes()))
                    .collect();
                if names.is_empty() {
                    continue;
                }
                for m in input.matches.members(&pm) {
                    if m.root == u64::MAX || m.root as usize >= nodes {
                        continue;
                    }
                    dirs.set(m.root as usize);
                    any = true;
                    sorter
                        .push(Item {
                            dir: m.root,
                            names: names.clone(),
                        })
                        .map_err(PlanError::from)?;
                }
            }
            pl.update_with_count(batch.num_rows());
        }
    }
    pl.done();
    let items = if any {
        Some(sorter.finish().map_err(PlanError::from)?)
    } else {
        None
    };
    Ok((items, dirs))
}

/// Merges the levels' entries (each sorted) into one sorted file, each entry once.
fn merge_levels(files: &[PathBuf], out: &Path) -> Result<u64, PhaseError> {
    let opened: Vec<FlatFile<Entry>> = files
        .iter()
        .map(|f| FlatFile::open(f))
        .collect::<Result<_, _>>()?;
    let mut iters: Vec<_> = opened.iter().map(|f| f.iter_from(0)).collect();
    let mut heap = BinaryHeap::new();
    for (i, it) in iters.iter_mut().enumerate() {
        if let Some(e) = it.next() {
            heap.push(Reverse((e, i)));
        }
    }
    let mut w = FlatWriter::create(out)?;
    let mut last: Option<Entry> = None;
    while let Some(Reverse((e, i))) = heap.pop() {
        if last != Some(e) {
            w.push(&e)?;
            last = Some(e);
        }
        if let Some(n) = iters[i].next() {
            heap.push(Reverse((n, i)));
        }
    }
    Ok(w.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_refuse_bad_bytes() {
        let item = Item {
            dir: 7,
            names: vec![1, u64::MAX, 3],
        };
        let mut bytes = Vec::new();
        item.encode(&mut bytes);
        assert_eq!(Item::decode(&bytes), Some(item));
        assert_eq!(Item::decode(&bytes[..5]), None);
        assert_eq!(Item::decode(&bytes[..12]), None);
    }
}
