//! Which revisions belong to an origin: the searches of the origin match.
//!
//! A revision belongs to an origin when some snapshot of the origin (any visit) reaches it
//! through branches, releases and parent revisions. Two searches decide it:
//!
//! - **backward**, from the revision over predecessors (revisions and releases) until one of
//!   the origin's snapshots: cheap when the revision is near a branch head, which is the
//!   common case, and bounded by a budget of nodes per pair;
//! - **forward**, from the origin's snapshots over branches, releases and parents: the whole
//!   archived history, once per origin and shared by every pair the backward search left
//!   open. It decides them exactly: a revision it does not reach is in no archived history
//!   of the origin.
//!
//! Both give the distance in hops from a snapshot (a branch head is at distance 1) and the
//! snapshot through which the revision was reached.

use std::collections::{HashMap, HashSet, VecDeque};

use swh_graph::graph::{SwhBackwardGraph, SwhForwardGraph};
use swh_graph::NodeType;

/// What the searches need to know of a node besides its arcs.
pub trait NodeKinds: Sync {
    /// The node's type.
    fn kind(&self, node: usize) -> Option<NodeType>;
}

impl NodeKinds for crate::graph::NodeMaps {
    fn kind(&self, node: usize) -> Option<NodeType> {
        self.node_type(node as u64)
    }
}

/// The snapshots of a group of origins (every visit of every origin a slug found) and the
/// revisions their branches name.
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    /// Snapshot node -> index of the origin (in the caller's list) that holds it first.
    pub origin_of: HashMap<usize, u32>,
    /// Revisions a branch names, directly or through releases.
    pub heads: HashSet<usize>,
}

impl Snapshots {
    /// The snapshots of `origins` (`(node, index)`) and their branch heads.
    pub fn of<G: SwhForwardGraph>(g: &G, kinds: &impl NodeKinds, origins: &[(usize, u32)]) -> Self {
        let mut s = Snapshots::default();
        for &(o, idx) in origins {
            for succ in g.successors(o) {
                if kinds.kind(succ) == Some(NodeType::Snapshot) {
                    s.origin_of.entry(succ).or_insert(idx);
                }
            }
        }
        for &snp in s.origin_of.keys() {
            let mut stack: Vec<usize> = g.successors(snp).into_iter().collect();
            let mut hops = 0;
            while let Some(t) = stack.pop() {
                match kinds.kind(t) {
                    Some(NodeType::Revision) => {
                        s.heads.insert(t);
                    }
                    Some(NodeType::Release) if hops < 1024 => {
                        hops += 1;
                        stack.extend(g.successors(t));
                    }
                    _ => {}
                }
            }
        }
        s
    }
}

/// Where a revision was found in an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Hops from the snapshot (a branch head is at 1).
    pub distance: u32,
    /// The snapshot it was reached through.
    pub snapshot: usize,
}

/// The backward search's verdict on one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backward {
    /// In the origin.
    Member(Found),
    /// Not in the origin: the search ran out of predecessors first.
    NotMember,
    /// The budget ran out first: undecided.
    Undecided,
}

/// Searches backward from `start` for one of `snapshots`, visiting at most `*budget` nodes
/// (decremented by the nodes visited).
pub fn backward<G: SwhBackwardGraph>(
    g: &G,
    kinds: &impl NodeKinds,
    start: usize,
    snapshots: &Snapshots,
    budget: &mut usize,
) -> Backward {
    let mut seen: HashSet<usize> = HashSet::from([start]);
    let mut queue = VecDeque::from([(start, 0u32)]);
    while let Some((n, d)) = queue.pop_front() {
        for p in g.predecessors(n) {
            match kinds.kind(p) {
                Some(NodeType::Snapshot) if snapshots.origin_of.contains_key(&p) => {
                    return Backward::Member(Found {
                        distance: d + 1,
                        snapshot: p,
                    });
                }
                Some(NodeType::Revision | NodeType::Release) if seen.insert(p) => {
                    if *budget == 0 {
                        return Backward::Undecided;
                    }
                    *budget -= 1;
                    queue.push_back((p, d + 1));
                }
                _ => {}
            }
        }
    }
    Backward::NotMember
}

/// The forward search's findings for the revisions it was asked about.
#[derive(Debug, Clone, Default)]
pub struct Forward {
    /// The asked revisions it reached, with where.
    pub found: HashMap<usize, Found>,
    /// Revisions (and releases) it visited.
    pub visited: u64,
}

/// Traverses the history of `snapshots` forward (breadth-first, so distances are the
/// shortest) until every revision of `wanted` is reached or the history is exhausted.
pub fn forward<G: SwhForwardGraph>(
    g: &G,
    kinds: &impl NodeKinds,
    snapshots: &Snapshots,
    wanted: &HashSet<usize>,
) -> Forward {
    let mut out = Forward::default();
    let mut seen: HashSet<usize> = HashSet::new();
    let mut queue: VecDeque<(usize, u32, usize)> = VecDeque::new();
    let mut snaps: Vec<usize> = snapshots.origin_of.keys().copied().collect();
    snaps.sort_unstable();
    for s in snaps {
        for t in g.successors(s) {
            if matches!(kinds.kind(t), Some(NodeType::Revision | NodeType::Release))
                && seen.insert(t)
            {
                queue.push_back((t, 1, s));
            }
        }
    }
    while let Some((n, d, snp)) = queue.pop_front() {
        out.visited += 1;
        if wanted.contains(&n) {
            out.found.entry(n).or_insert(Found {
                distance: d,
                snapshot: snp,
            });
            if out.found.len() == wanted.len() {
                break;
            }
        }
        for t in g.successors(n) {
            if matches!(kinds.kind(t), Some(NodeType::Revision | NodeType::Release))
                && seen.insert(t)
            {
                queue.push_back((t, d + 1, snp));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use swh_graph::graph::SwhGraphWithProperties;
    use swh_graph::graph_builder::{BuiltGraph, GraphBuilder};
    use swh_graph::SWHID;

    struct Kinds<'a>(&'a BuiltGraph);
    impl NodeKinds for Kinds<'_> {
        fn kind(&self, n: usize) -> Option<NodeType> {
            Some(self.0.properties().node_type(n))
        }
    }

    /// ori -> snp -> r[n-1] -> ... -> r[0]; a second line other[0..3] not in the origin.
    fn line(n: usize) -> (BuiltGraph, Vec<usize>, Vec<usize>, usize) {
        let mut b = GraphBuilder::default();
        let id = |k: &str, i: usize| SWHID::from_str(&format!("swh:1:{k}:{i:040x}")).unwrap();
        let ori = b.node(id("ori", 1)).unwrap().done();
        let snp = b.node(id("snp", 1)).unwrap().done();
        let revs: Vec<usize> = (0..n)
            .map(|i| b.node(id("rev", i + 10)).unwrap().done())
            .collect();
        let other: Vec<usize> = (0..3)
            .map(|i| b.node(id("rev", i + 1_000_000)).unwrap().done())
            .collect();
        b.arc(ori, snp);
        b.snp_arc(snp, revs[n - 1], b"refs/heads/main");
        for i in 1..n {
            b.arc(revs[i], revs[i - 1]);
        }
        b.arc(other[2], other[1]);
        b.arc(other[1], other[0]);
        b.arc(other[0], revs[0]);
        (b.done().unwrap(), revs, other, ori)
    }

    #[test]
    fn backward_decides_near_heads_and_forward_decides_the_rest() {
        let n = 50;
        let (g, revs, other, ori) = line(n);
        let k = Kinds(&g);
        let snaps = Snapshots::of(&g, &k, &[(ori, 0)]);
        assert_eq!(snaps.heads, HashSet::from([revs[n - 1]]));
        // The head is one hop from the snapshot.
        let mut budget = 5;
        let head = backward(&g, &k, revs[n - 1], &snaps, &mut budget);
        assert!(matches!(head, Backward::Member(Found { distance: 1, .. })));
        // The root is 50 hops away: a budget of 5 leaves it undecided.
        let mut budget = 5;
        assert_eq!(
            backward(&g, &k, revs[0], &snaps, &mut budget),
            Backward::Undecided
        );
        assert_eq!(budget, 0);
        // A revision whose descendants never meet the origin is decided by exhaustion.
        let mut budget = 1000;
        assert_eq!(
            backward(&g, &k, other[2], &snaps, &mut budget),
            Backward::NotMember
        );
        // Forward: the root found at its true distance; the other line is not reached.
        let wanted = HashSet::from([revs[0], other[1]]);
        let f = forward(&g, &k, &snaps, &wanted);
        assert_eq!(f.found.get(&revs[0]).map(|x| x.distance), Some(n as u32));
        assert!(!f.found.contains_key(&other[1]));
        assert_eq!(f.visited as usize, n, "the whole history, nothing more");
        // The same distance backward with enough budget.
        let mut budget = 1000;
        assert!(matches!(
            backward(&g, &k, revs[0], &snaps, &mut budget),
            Backward::Member(Found { distance, .. }) if distance == n as u32
        ));
    }
}
