//! Phase 5, **reachable set**: the directories the path walk may enter.
//!
//! For each member revision of each pair (every revision of the origin with the pair's
//! prefix: the walk tries them all), a breadth-first search from its root directory over
//! subdirectories, down to the depth the pair's deepest requested path needs (a path of k
//! components needs the directories at depths 0 to k-1). Roots are taken a chunk at a time,
//! deduplicated (forks share them) keeping the largest depth, and searched in parallel,
//! deepest first, so that the long searches start early and threads stay busy.
//!
//! Output: [`crate::artifacts::bits`] (`dirs.bits`).
//!
//! Memory: the bit-vector (one bit per graph node), one chunk of roots, and per running
//! search its frontier.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use swh_graph::graph::SwhForwardGraph;
use swh_graph::NodeType;

use crate::artifacts::bits::{self, AtomicBits, DIRS};
use crate::artifacts::matches::Matches;
use crate::artifacts::plan as plan_files;
use crate::config::Config;
use crate::graph::NodeMaps;
use crate::model::{Counts, Phase, Shard};

use super::{Context, Inputs, PhaseError};

/// Marks the directories reachable from each `(root, depth)`; returns the bits and their count.
/// `is_dir` tells a directory node from others.
pub fn reachable<G: SwhForwardGraph + Sync>(
    graph: &G,
    is_dir: &(impl Fn(usize) -> bool + Sync),
    roots: &[(usize, usize)],
) -> (AtomicBits, u64) {
    let bits = AtomicBits::new(graph.num_nodes());
    let count = reach_into(graph, is_dir, roots, &bits);
    (bits, count)
}

/// Marks into `bits` the directories reachable from each `(root, depth)` (a path of k
/// components needs the directories at depths 0 to k-1); returns how many were newly set.
/// Roots are deduplicated keeping their largest depth and searched in parallel, deepest
/// first, so that long searches start early.
pub fn reach_into<G: SwhForwardGraph + Sync>(
    graph: &G,
    is_dir: &(impl Fn(usize) -> bool + Sync),
    roots: &[(usize, usize)],
    bits: &AtomicBits,
) -> u64 {
    let n = graph.num_nodes();
    let mut deepest: HashMap<usize, usize> = HashMap::new();
    for &(r, d) in roots.iter().filter(|(r, _)| *r < n) {
        let e = deepest.entry(r).or_insert(0);
        *e = (*e).max(d);
    }
    let mut work: Vec<(usize, usize)> = deepest.into_iter().collect();
    work.sort_by_key(|&(r, d)| (std::cmp::Reverse(d), r));
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
                        if is_dir(s) {
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
    count.into_inner()
}

/// Counts of the reachable set.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReachCounts {
    /// Roots searched (one per matched pair).
    pub roots: u64,
    /// Directories marked.
    pub directories: u64,
}

impl Counts for ReachCounts {
    fn add(&mut self, o: &Self) {
        self.roots += o.roots;
        self.directories += o.directories;
    }
}

/// What the reachable set reads.
pub struct Input<'a, G> {
    /// The forward graph.
    pub graph: &'a G,
    /// The node types.
    pub maps: &'a NodeMaps,
    /// The match.
    pub matches: &'a Matches,
}

/// Roots searched per parallel step.
const CHUNK_ROOTS: usize = 1 << 20;

/// Marks the directories every member's paths may enter into `ctx.out`, a chunk of roots at
/// a time.
pub fn run<G: SwhForwardGraph + Sync>(
    ctx: &Context,
    input: Input<G>,
) -> Result<ReachCounts, PhaseError> {
    let is_dir = |n: usize| input.maps.node_type(n as u64) == Some(NodeType::Directory);
    let marked = AtomicBits::new(input.maps.nodes);
    let mut counts = ReachCounts::default();
    let mut roots: Vec<(usize, usize)> = Vec::new();
    let flush = |roots: &mut Vec<(usize, usize)>, counts: &mut ReachCounts| {
        counts.roots += roots.len() as u64;
        counts.directories += reach_into(input.graph, &is_dir, roots, &marked);
        roots.clear();
    };
    for batch in plan_files::read_pairs(&ctx.upstream(Phase::Plan))? {
        for pair in batch? {
            let Some(pm) = input.matches.pair(pair.id) else {
                continue;
            };
            for m in input.matches.members(&pm) {
                if m.root != u64::MAX {
                    roots.push((m.root as usize, pair.depth as usize));
                }
            }
            if roots.len() >= CHUNK_ROOTS {
                flush(&mut roots, &mut counts);
            }
        }
    }
    flush(&mut roots, &mut counts);
    let path = ctx.out.join(DIRS);
    bits::write(&path, &marked.into_words()).map_err(|e| PhaseError::io(&path, e))?;
    Ok(counts)
}

/// The reachable set as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Reach;
    type Counts = ReachCounts;

    /// Under the `levels` strategy the label pass needs no reachable set: the phase writes
    /// an empty one.
    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(super::labels::strategy_inputs(config))
    }

    fn run(ctx: &Context) -> Result<ReachCounts, PhaseError> {
        if ctx.config.options.strategy == crate::config::Strategy::Levels {
            let path = ctx.out.join(DIRS);
            bits::write(&path, &[]).map_err(|e| PhaseError::io(&path, e))?;
            return Ok(ReachCounts::default());
        }
        let matches = Matches::open(&ctx.upstream(Phase::Match))?;
        let graph = crate::graph::open_forward(ctx.graph())?;
        let maps = NodeMaps::open(ctx.graph())?;
        run(
            ctx,
            Input {
                graph: &graph,
                maps: &maps,
                matches: &matches,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use swh_graph::graph::SwhGraph;
    use swh_graph::graph_builder::GraphBuilder;
    use swh_graph::labels::Permission;
    use swh_graph::SWHID;

    #[test]
    fn marks_directories_down_to_the_needed_depth_only() {
        // root -> a -> b -> c, root -> f (file); a second root shares a.
        let mut g = GraphBuilder::default();
        let id = |k: &str, n: u8| SWHID::from_str(&format!("swh:1:{k}:{:040x}", n)).unwrap();
        let root = g.node(id("dir", 1)).unwrap().done();
        let a = g.node(id("dir", 2)).unwrap().done();
        let b = g.node(id("dir", 3)).unwrap().done();
        let c = g.node(id("dir", 4)).unwrap().done();
        let f = g.node(id("cnt", 5)).unwrap().done();
        let root2 = g.node(id("dir", 6)).unwrap().done();
        g.dir_arc(root, a, Permission::Directory, b"a");
        g.dir_arc(a, b, Permission::Directory, b"b");
        g.dir_arc(b, c, Permission::Directory, b"c");
        g.dir_arc(root, f, Permission::Content, b"f");
        g.dir_arc(root2, a, Permission::Directory, b"a");
        let g = g.done().unwrap();
        use swh_graph::graph::SwhGraphWithProperties;
        let is_dir = |n: usize| g.properties().node_type(n) == NodeType::Directory;
        let set = |roots: &[(usize, usize)]| {
            let (bits, n) = reachable(&g, &is_dir, roots);
            let on: Vec<usize> = (0..g.num_nodes()).filter(|&i| bits.get(i)).collect();
            assert_eq!(on.len() as u64, n);
            on
        };
        // A path of one component needs the root only; of three, two levels below it.
        assert_eq!(set(&[(root, 1)]), [root]);
        assert_eq!(set(&[(root, 3)]), [root, a, b]);
        // Shared subtrees are counted once; the deepest request for a root wins.
        assert_eq!(set(&[(root, 2), (root2, 2), (root, 1)]), [root, a, root2]);
        // A root out of the graph is ignored, not a panic.
        assert_eq!(set(&[(10_000, 3)]), Vec::<usize>::new());
    }
}
