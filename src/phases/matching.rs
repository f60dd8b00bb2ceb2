//! Phase 3, **origin match**: for each (repo, prefix) pair, which candidate revision belongs
//! to the repository.
//!
//! 1. The origin: `url_templates` with the slug, each also with `.git` and in lower case,
//!    looked up by SWHID (`swh:1:ori:` is the SHA-1 of the URL). All matching origins count.
//! 2. All snapshots of those origins (every visit: slugs are reused over time) and their
//!    branch heads (releases followed to their revision).
//! 3. Candidates of the prefix (from the scan). A candidate belongs to the origin when a
//!    backward search from it on the transposed graph, through revisions, releases and
//!    snapshots, reaches one of the origin's snapshots. Searches are breadth-first, so the
//!    distance found is the shortest, and together visit at most `origin_search_budget`
//!    nodes per pair; a pair that ran out is flagged.
//! 4. Several candidates of the same origin with the same prefix (it happens with 7 hex
//!    digits): the winner is, in order, the one whose tree holds most of the pair's requested
//!    paths, then one that is a branch head or release target, then the closest to a snapshot,
//!    then the smallest id. The number of candidates is recorded.
//!
//! Output: [`crate::artifacts::matches`].
//!
//! Memory: per pair, the visited set of its search (at most the budget).

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;

use rayon::prelude::*;
use swh_graph::labels::EdgeLabel;
use swh_graph::{NodeType, SWHID};

use crate::artifacts::candidates::{self as cand_files, Candidate, CANDIDATES};
use crate::artifacts::matches::{self, PairMatch};
use crate::artifacts::plan::Plan;
use crate::config::Config;
use crate::graph::MatchGraph;
use crate::model::hashes::{hex, origin_id};
use crate::model::{Counts, MatchStatus, Phase, Sha1Git, Shard, StatusCounts};

use super::{Context, Inputs, PhaseError};

/// The origin URLs tried for `slug`.
pub fn url_variants(slug: &str, templates: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for t in templates {
        let url = t.replace("{slug}", slug);
        for u in [
            url.clone(),
            format!("{url}.git"),
            url.to_lowercase(),
            format!("{}.git", url.to_lowercase()),
        ] {
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    out
}

/// Node of the origin with this URL, if the graph has it.
pub fn origin_node(graph: &impl crate::graph::LabelledGraph, url: &str) -> Option<usize> {
    let swhid = SWHID::from_str(&format!("swh:1:ori:{}", hex(&origin_id(url)))).ok()?;
    graph.properties().node_id(swhid).ok()
}

/// Number of `paths` that exist below directory `root` (random access, for tie-breaking).
fn paths_present(graph: &impl MatchGraph, root: usize, paths: &[&str]) -> usize {
    let props = graph.properties();
    paths
        .iter()
        .filter(|path| {
            let mut dir = root;
            for comp in path.split('/') {
                let mut next = None;
                for (succ, labels) in graph.labeled_successors(dir) {
                    for l in labels {
                        if let EdgeLabel::DirEntry(e) = l {
                            if props.label_name(e.label_name_id()) == comp.as_bytes() {
                                next = Some(succ);
                            }
                        }
                    }
                }
                match next {
                    Some(n) => dir = n,
                    None => return false,
                }
            }
            true
        })
        .count()
}

/// The root directory of revision `rev`.
pub fn root_dir(graph: &impl MatchGraph, rev: usize) -> Option<usize> {
    graph
        .successors(rev)
        .into_iter()
        .find(|&s| graph.properties().node_type(s) == NodeType::Directory)
}

/// Snapshots of `origins` (snapshot -> index of its origin) and the revisions their branches
/// name (releases followed).
fn snapshots_and_heads(
    graph: &impl MatchGraph,
    origins: &[(String, usize)],
) -> (HashMap<usize, usize>, HashSet<usize>) {
    let props = graph.properties();
    let mut snapshots: HashMap<usize, usize> = HashMap::new();
    let mut heads: HashSet<usize> = HashSet::new();
    for (i, (_, o)) in origins.iter().enumerate() {
        for s in graph.successors(*o) {
            if props.node_type(s) == NodeType::Snapshot {
                snapshots.entry(s).or_insert(i);
            }
        }
    }
    for &s in snapshots.keys() {
        let mut stack: Vec<usize> = graph.successors(s).into_iter().collect();
        let mut hops = 0;
        while let Some(t) = stack.pop() {
            match props.node_type(t) {
                NodeType::Revision => {
                    heads.insert(t);
                }
                NodeType::Release if hops < 64 => {
                    hops += 1;
                    stack.extend(graph.successors(t));
                }
                _ => {}
            }
        }
    }
    (snapshots, heads)
}

/// A candidate found in the origin: node, id, distance to a snapshot, that snapshot.
struct Member {
    node: usize,
    id: Sha1Git,
    distance: usize,
    snapshot: usize,
}

/// Backward breadth-first search from each candidate to `snapshots`; stops when the pair's
/// budget is spent. Returns the members and whether the budget ran out.
fn search(
    graph: &impl MatchGraph,
    candidates: &[Candidate],
    snapshots: &HashMap<usize, usize>,
    budget: usize,
) -> (Vec<Member>, bool) {
    let props = graph.properties();
    let mut visited_total = 0usize;
    let mut members = Vec::new();
    let mut budget_hit = false;
    for c in candidates {
        let start = c.node as usize;
        let mut seen: HashSet<usize> = HashSet::from([start]);
        let mut queue = VecDeque::from([(start, 0usize)]);
        let mut found = None;
        'bfs: while let Some((n, d)) = queue.pop_front() {
            for p in graph.predecessors(n) {
                let ty = props.node_type(p);
                if ty == NodeType::Snapshot {
                    if snapshots.contains_key(&p) {
                        found = Some((d + 1, p));
                        break 'bfs;
                    }
                    continue;
                }
                if !matches!(ty, NodeType::Revision | NodeType::Release) || !seen.insert(p) {
                    continue;
                }
                visited_total += 1;
                if visited_total > budget {
                    budget_hit = true;
                    break 'bfs;
                }
                queue.push_back((p, d + 1));
            }
        }
        if let Some((distance, snapshot)) = found {
            members.push(Member {
                node: start,
                id: c.id,
                distance,
                snapshot,
            });
        }
        if budget_hit {
            break;
        }
    }
    (members, budget_hit)
}

/// Matches one pair. `candidates` are the revisions with the prefix.
pub fn match_pair(
    graph: &impl MatchGraph,
    slug: &str,
    candidates: &[Candidate],
    paths: &[&str],
    templates: &[String],
    budget: usize,
) -> PairMatch {
    let props = graph.properties();
    let n_cand = candidates.len() as u32;
    let origins: Vec<(String, usize)> = url_variants(slug, templates)
        .into_iter()
        .filter_map(|u| origin_node(graph, &u).map(|n| (u, n)))
        .collect();
    if origins.is_empty() {
        return PairMatch::failed(MatchStatus::OriginNotFound, n_cand);
    }
    if candidates.is_empty() {
        return PairMatch::failed(MatchStatus::CommitNotFound, n_cand);
    }
    let (snapshots, heads) = snapshots_and_heads(graph, &origins);
    let (members, budget_hit) = search(graph, candidates, &snapshots, budget);
    let several = members.len() > 1;
    let score = |m: &Member| {
        let covered = if several {
            root_dir(graph, m.node).map_or(0, |r| paths_present(graph, r, paths))
        } else {
            0
        };
        (
            std::cmp::Reverse(covered),
            !heads.contains(&m.node),
            m.distance,
            m.id,
        )
    };
    let Some(best) = members.iter().min_by_key(|m| score(m)) else {
        let mut out = PairMatch::failed(MatchStatus::CommitNotInOrigin, n_cand);
        out.budget_hit = budget_hit;
        return out;
    };
    PairMatch {
        status: MatchStatus::Matched,
        origin_url: snapshots
            .get(&best.snapshot)
            .and_then(|&i| origins.get(i))
            .map(|o| o.0.clone()),
        snapshot: Some(Sha1Git(props.swhid(best.snapshot).hash)),
        revision_node: Some(best.node as u64),
        revision: Some(best.id),
        root: root_dir(graph, best.node).map(|r| r as u64),
        candidates: n_cand,
        in_origin: members.len() as u32,
        budget_hit,
    }
}

/// Matches every pair, in parallel. `pairs` are (slug, prefix); `pair_paths` the requested
/// paths of each pair; `candidates` all scan candidates.
pub fn match_all(
    graph: &(impl MatchGraph + Sync),
    pairs: &[(String, String)],
    pair_paths: &[Vec<&str>],
    candidates: &[Candidate],
    templates: &[String],
    budget: usize,
) -> Vec<PairMatch> {
    let mut by_id: Vec<Candidate> = candidates.to_vec();
    by_id.sort_by_key(|c| c.id);
    let hexes: Vec<String> = by_id.iter().map(|c| c.id.to_hex()).collect();
    let mut pl = dsi_progress_logger::concurrent_progress_logger!(
        item_name = "pair",
        display_memory = true,
        expected_updates = Some(pairs.len())
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Matching (repo, prefix) pairs to origins");
    let out = pairs
        .par_iter()
        .enumerate()
        .map_with(pl.clone(), |pl, (i, (slug, prefix))| {
            let lo = hexes.partition_point(|h| h.as_str() < prefix.as_str());
            let hi = lo + hexes[lo..].partition_point(|h| h.starts_with(prefix.as_str()));
            let no_paths = Vec::new();
            let paths = pair_paths.get(i).unwrap_or(&no_paths);
            let m = match_pair(graph, slug, &by_id[lo..hi], paths, templates, budget);
            pl.light_update();
            m
        })
        .collect();
    pl.done();
    out
}

/// Counts of the origin match.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MatchCounts {
    /// Pairs per outcome (`pairs_matched`, ...).
    #[serde(flatten)]
    pub pairs: StatusCounts<MatchStatus>,
    /// Pairs whose search ran out of budget.
    pub budget_hit: u64,
    /// Pairs with more than one candidate in their origin.
    pub pairs_with_several_candidates_in_origin: u64,
}

impl Counts for MatchCounts {
    fn add(&mut self, o: &Self) {
        self.pairs.merge(&o.pairs);
        self.budget_hit += o.budget_hit;
        self.pairs_with_several_candidates_in_origin += o.pairs_with_several_candidates_in_origin;
    }
}

/// What the origin match reads.
pub struct Input<'a, G> {
    /// The plan: pairs and their paths.
    pub plan: &'a Plan,
    /// The scan's candidates.
    pub candidates: Vec<Candidate>,
    /// The graph.
    pub graph: &'a G,
}

/// Matches every pair into `ctx.out`.
pub fn run<G: MatchGraph + Sync>(
    ctx: &Context,
    input: Input<G>,
) -> Result<MatchCounts, PhaseError> {
    let opts = &ctx.config.options;
    let pair_paths = input.plan.pair_paths();
    let found = match_all(
        input.graph,
        &input.plan.pairs,
        &pair_paths,
        &input.candidates,
        &opts.url_templates,
        opts.origin_search_budget,
    );
    let mut counts = MatchCounts::default();
    for m in &found {
        counts.pairs.bump(m.status);
        counts.budget_hit += m.budget_hit as u64;
        counts.pairs_with_several_candidates_in_origin += (m.in_origin > 1) as u64;
    }
    if counts.budget_hit > 0 {
        log::warn!(
            "origin match: {} pairs hit the search budget ({}); raise options.origin_search_budget",
            counts.budget_hit,
            opts.origin_search_budget
        );
    }
    matches::write(&ctx.out.join(matches::PAIRS), &found)?;
    Ok(counts)
}

/// The origin match as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Match;
    type Counts = MatchCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(Inputs::from([(
            "options".to_string(),
            config.match_fingerprint(),
        )]))
    }

    fn run(ctx: &Context) -> Result<MatchCounts, PhaseError> {
        let plan = Plan::load(&ctx.upstream(Phase::Plan))?;
        let candidates = cand_files::read(&ctx.upstream(Phase::Scan).join(CANDIDATES))?;
        let graph = crate::graph::open_matching(ctx.graph())?;
        run(
            ctx,
            Input {
                plan: &plan,
                candidates,
                graph: &graph,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swh_graph::graph::SwhGraphWithProperties;
    use swh_graph::graph_builder::GraphBuilder;
    use swh_graph::labels::Permission;

    #[test]
    fn url_variants_cover_suffix_and_case() {
        let v = url_variants("Owner/Repo", &["https://github.com/{slug}".to_string()]);
        assert_eq!(
            v,
            [
                "https://github.com/Owner/Repo",
                "https://github.com/Owner/Repo.git",
                "https://github.com/owner/repo",
                "https://github.com/owner/repo.git"
            ]
        );
    }

    fn swhid(kind: &str, n: u8) -> SWHID {
        SWHID::from_str(&format!("swh:1:{kind}:{}", hex(&[n; 20]))).unwrap()
    }

    /// origin -> snapshot -> r3 -> r2 -> r1 (r1 oldest); r1 and r2 share their first id byte
    /// (the "prefix"); r2's tree has `b.txt`, r1's has `a.txt`. A second origin holds only rx.
    fn history() -> (swh_graph::graph_builder::BuiltGraph, [Candidate; 3]) {
        let mut b = GraphBuilder::default();
        let url = "https://github.com/t/repo";
        let ori = b
            .node(SWHID::from_str(&format!("swh:1:ori:{}", hex(&origin_id(url)))).unwrap())
            .unwrap()
            .message(url.as_bytes().to_vec())
            .done();
        let snp = b.node(swhid("snp", 0x50)).unwrap().done();
        let rev_id = |n: u8| {
            let mut id = [n; 20];
            id[0] = 0xab;
            SWHID::from_str(&format!("swh:1:rev:{}", hex(&id))).unwrap()
        };
        let r1 = b.node(rev_id(1)).unwrap().done();
        let r2 = b.node(rev_id(2)).unwrap().done();
        let r3 = b.node(swhid("rev", 3)).unwrap().done();
        let other = b.node(rev_id(9)).unwrap().done();
        let (d1, d2) = (
            b.node(swhid("dir", 0x11)).unwrap().done(),
            b.node(swhid("dir", 0x12)).unwrap().done(),
        );
        let (c1, c2) = (
            b.node(swhid("cnt", 0x21)).unwrap().done(),
            b.node(swhid("cnt", 0x22)).unwrap().done(),
        );
        b.ori_arc(
            ori,
            snp,
            swh_graph::labels::VisitStatus::Full,
            1_700_000_000,
            swh_graph::labels::VisitType::Vcs,
        );
        b.snp_arc(snp, r3, b"refs/heads/main");
        b.arc(r3, r2);
        b.arc(r2, r1);
        b.arc(r1, d1);
        b.arc(r2, d2);
        b.arc(other, d1);
        b.dir_arc(d1, c1, Permission::Content, b"a.txt");
        b.dir_arc(d2, c2, Permission::Content, b"b.txt");
        let g = b.done().unwrap();
        let cand = |node: usize| Candidate {
            node: node as u64,
            id: Sha1Git(g.properties().swhid(node).hash),
        };
        let c = [cand(r1), cand(r2), cand(other)];
        (g, c)
    }

    #[test]
    fn the_tree_holding_the_paths_wins_a_collision() {
        let (g, c) = history();
        let t = ["https://github.com/{slug}".to_string()];
        let m = match_pair(&g, "t/repo", &c, &["a.txt"], &t, 100);
        assert_eq!(m.status, MatchStatus::Matched);
        assert_eq!(m.revision, Some(c[0].id));
        assert_eq!(
            m.in_origin, 2,
            "the other origin's revision is not a member"
        );
        assert_eq!(m.candidates, 3);
        let m = match_pair(&g, "T/Repo", &c, &["b.txt"], &t, 100);
        assert_eq!(
            m.revision,
            Some(c[1].id),
            "case variant of the slug, other path"
        );
        assert_eq!(m.origin_url.as_deref(), Some("https://github.com/t/repo"));
    }

    #[test]
    fn failures_are_told_apart() {
        let (g, c) = history();
        let t = ["https://github.com/{slug}".to_string()];
        assert_eq!(
            match_pair(&g, "t/none", &c, &[], &t, 100).status,
            MatchStatus::OriginNotFound
        );
        assert_eq!(
            match_pair(&g, "t/repo", &[], &[], &t, 100).status,
            MatchStatus::CommitNotFound
        );
        let m = match_pair(&g, "t/repo", &c[2..], &[], &t, 100);
        assert_eq!(m.status, MatchStatus::CommitNotInOrigin);
        // r1 is two revisions from the snapshot: a budget of one node runs out.
        let m = match_pair(&g, "t/repo", &c[..1], &[], &t, 1);
        assert_eq!(
            (m.status, m.budget_hit),
            (MatchStatus::CommitNotInOrigin, true)
        );
    }
}
