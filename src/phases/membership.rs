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
//! snapshot through which the revision was reached. Several origins can reach a revision at
//! the same distance (a re-cased rename: both spellings were visited and often share their
//! snapshots); the snapshot then belongs to, and the revision is credited to, the origin
//! that comes first in the caller's order (the match orders origins by URL), whatever order
//! the graph gives its arcs in, so that the answer is the same on every graph of the archive.

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

/// What the match needs besides kinds: the ids of nodes.
pub trait NodeIds: NodeKinds {
    /// The hash of the node's SWHID.
    fn id(&self, node: usize) -> Option<[u8; 20]>;
}

impl NodeIds for crate::graph::NodeMaps {
    fn id(&self, node: usize) -> Option<[u8; 20]> {
        self.hash(node as u64)
    }
}

/// The snapshots of a group of origins (every visit of every origin a slug found) and the
/// revisions their branches name.
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    /// Snapshot node -> position (in the caller's order) of the first origin that holds it.
    pub origin_of: HashMap<usize, u32>,
    /// Snapshot node -> its id, the tie-break between snapshots of one origin.
    ids: HashMap<usize, [u8; 20]>,
    /// Revisions a branch names, directly or through releases.
    pub heads: HashSet<usize>,
}

impl Snapshots {
    /// The snapshots of `origins` (origin nodes, in order of preference) and their branch
    /// heads.
    pub fn of<G: SwhForwardGraph>(g: &G, kinds: &impl NodeIds, origins: &[usize]) -> Self {
        let mut s = Snapshots::default();
        for (pos, &o) in origins.iter().enumerate() {
            for succ in g.successors(o) {
                if kinds.kind(succ) == Some(NodeType::Snapshot) {
                    s.origin_of.entry(succ).or_insert(pos as u32);
                }
            }
        }
        for &snp in s.origin_of.keys() {
            s.ids.insert(snp, kinds.id(snp).unwrap_or_default());
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

    /// The preference of snapshot `snp` (lower first): its origin's position, then its id.
    fn preference(&self, snp: usize) -> (u32, [u8; 20]) {
        (
            self.origin_of.get(&snp).copied().unwrap_or(u32::MAX),
            self.ids.get(&snp).copied().unwrap_or([0xff; 20]),
        )
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
/// (decremented by the nodes visited). The first snapshots met are at the shortest distance;
/// the rest of that level is scanned too, so that the preferred one among them is credited.
pub fn backward<G: SwhBackwardGraph>(
    g: &G,
    kinds: &impl NodeKinds,
    start: usize,
    snapshots: &Snapshots,
    budget: &mut usize,
) -> Backward {
    let mut seen: HashSet<usize> = HashSet::from([start]);
    let mut queue = VecDeque::from([(start, 0u32)]);
    let mut best: Option<Found> = None;
    while let Some((n, d)) = queue.pop_front() {
        if let Some(b) = best {
            if d + 1 > b.distance {
                break;
            }
        }
        for p in g.predecessors(n) {
            match kinds.kind(p) {
                Some(NodeType::Snapshot) if snapshots.origin_of.contains_key(&p) => {
                    let better = best
                        .is_none_or(|b| snapshots.preference(p) < snapshots.preference(b.snapshot));
                    if better {
                        best = Some(Found {
                            distance: d + 1,
                            snapshot: p,
                        });
                    }
                }
                Some(NodeType::Revision | NodeType::Release)
                    if best.is_none() && seen.insert(p) =>
                {
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
    match best {
        Some(f) => Backward::Member(f),
        None => Backward::NotMember,
    }
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
/// shortest) until every revision of `wanted` is reached or the history is exhausted. A node
/// reached at the same distance from several snapshots is credited to the preferred one: its
/// credit is settled before it leaves the queue, since every node of the level before is
/// handled first.
pub fn forward<G: SwhForwardGraph>(
    g: &G,
    kinds: &impl NodeKinds,
    snapshots: &Snapshots,
    wanted: &HashSet<usize>,
) -> Forward {
    let mut out = Forward::default();
    // Node -> (distance, snapshot credited).
    let mut seen: HashMap<usize, (u32, usize)> = HashMap::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut snaps: Vec<usize> = snapshots.origin_of.keys().copied().collect();
    snaps.sort_unstable_by_key(|&s| snapshots.preference(s));
    let history = |t: usize| matches!(kinds.kind(t), Some(NodeType::Revision | NodeType::Release));
    let reach = |seen: &mut HashMap<usize, (u32, usize)>,
                 queue: &mut VecDeque<usize>,
                 t,
                 d,
                 snp| {
        match seen.get_mut(&t) {
            None => {
                seen.insert(t, (d, snp));
                queue.push_back(t);
            }
            Some((dt, st)) if *dt == d && snapshots.preference(snp) < snapshots.preference(*st) => {
                *st = snp;
            }
            Some(_) => {}
        }
    };
    for s in snaps {
        for t in g.successors(s) {
            if history(t) {
                reach(&mut seen, &mut queue, t, 1, s);
            }
        }
    }
    while let Some(n) = queue.pop_front() {
        let (d, snp) = seen[&n];
        out.visited += 1;
        if wanted.contains(&n) {
            out.found.insert(
                n,
                Found {
                    distance: d,
                    snapshot: snp,
                },
            );
            if out.found.len() == wanted.len() {
                break;
            }
        }
        for t in g.successors(n) {
            if history(t) {
                reach(&mut seen, &mut queue, t, d + 1, snp);
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
    impl NodeIds for Kinds<'_> {
        fn id(&self, n: usize) -> Option<[u8; 20]> {
            Some(self.0.properties().swhid(n).hash)
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
        let snaps = Snapshots::of(&g, &k, &[ori]);
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

    #[test]
    fn ties_go_to_the_preferred_origin_whatever_the_node_order() {
        // Two origins with a snapshot each, both naming one head; the history below it is a
        // diamond (a merge), so the root is reached twice at the same distance.
        let mut b = GraphBuilder::default();
        let id = |k: &str, i: usize| SWHID::from_str(&format!("swh:1:{k}:{i:040x}")).unwrap();
        let o1 = b.node(id("ori", 1)).unwrap().done();
        let o2 = b.node(id("ori", 2)).unwrap().done();
        let s1 = b.node(id("snp", 1)).unwrap().done();
        let s2 = b.node(id("snp", 2)).unwrap().done();
        let merge = b.node(id("rev", 4)).unwrap().done();
        let left = b.node(id("rev", 3)).unwrap().done();
        let right = b.node(id("rev", 2)).unwrap().done();
        let root = b.node(id("rev", 1)).unwrap().done();
        b.arc(o1, s1);
        b.arc(o2, s2);
        b.snp_arc(s1, merge, b"refs/heads/main");
        b.snp_arc(s2, merge, b"refs/heads/main");
        b.arc(merge, left);
        b.arc(merge, right);
        b.arc(left, root);
        b.arc(right, root);
        let g = b.done().unwrap();
        let k = Kinds(&g);
        for (order, want) in [([o1, o2], s1), ([o2, o1], s2)] {
            let snaps = Snapshots::of(&g, &k, &order);
            for start in [merge, root] {
                let mut budget = 100;
                let got = backward(&g, &k, start, &snaps, &mut budget);
                let Backward::Member(f) = got else {
                    panic!("{got:?}")
                };
                assert_eq!(f.snapshot, want, "backward from {start}");
                let f = forward(&g, &k, &snaps, &HashSet::from([start]));
                assert_eq!(f.found[&start].snapshot, want, "forward to {start}");
                assert_eq!(f.found[&start].distance, if start == root { 3 } else { 1 });
            }
        }
    }
}
