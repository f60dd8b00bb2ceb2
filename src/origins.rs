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
//! Output (`WORKDIR/match/pairs.parquet`), one row per pair: status (`matched`,
//! `origin_not_found`, `commit_not_found`, `commit_not_in_origin`), origin URL, snapshot,
//! revision (node and hex), its root directory, candidates with the prefix in the whole
//! graph, candidates in the origin, and whether the budget was hit.
//!
//! Memory: per pair, the visited set of its search (at most the budget).

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringArray, UInt32Array, UInt64Array};
use rayon::prelude::*;
use swh_graph::labels::EdgeLabel;
use swh_graph::{NodeType, SWHID};

use crate::graph::FullGraph;
use crate::hashes::{hex, origin_id};

/// Status of a pair after matching.
pub const MATCHED: &str = "matched";

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
pub fn origin_node(graph: &impl FullGraph, url: &str) -> Option<usize> {
    let swhid = SWHID::from_str(&format!("swh:1:ori:{}", hex(&origin_id(url)))).ok()?;
    graph.properties().node_id(swhid).ok()
}

/// The answer for one pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairMatch {
    /// `matched` or the failure status.
    pub status: &'static str,
    /// URL of the origin the revision was found in.
    pub origin_url: Option<String>,
    /// Snapshot (hex) through which it was reached.
    pub snapshot: Option<String>,
    /// Winning revision node.
    pub revision: Option<u64>,
    /// Its hex id.
    pub revision_hex: Option<String>,
    /// Its root directory node.
    pub root: Option<u64>,
    /// Revisions with the prefix in the whole graph.
    pub candidates: u32,
    /// Of those, how many belong to the origin.
    pub in_origin: u32,
    /// Whether the search budget ran out.
    pub budget_hit: bool,
}

/// Number of `paths` that exist below directory `root` (random access, for tie-breaking).
fn paths_present(graph: &impl FullGraph, root: usize, paths: &[&str]) -> usize {
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

fn root_dir(graph: &impl FullGraph, rev: usize) -> Option<usize> {
    graph
        .successors(rev)
        .into_iter()
        .find(|&s| graph.properties().node_type(s) == NodeType::Directory)
}

/// Matches one pair. `candidates` are the (node, hex) of revisions with the prefix.
pub fn match_pair(
    graph: &impl FullGraph,
    slug: &str,
    candidates: &[(u64, String)],
    paths: &[&str],
    templates: &[String],
    budget: usize,
) -> PairMatch {
    let props = graph.properties();
    let mut out = PairMatch {
        candidates: candidates.len() as u32,
        ..Default::default()
    };
    let origins: Vec<(String, usize)> = url_variants(slug, templates)
        .into_iter()
        .filter_map(|u| origin_node(graph, &u).map(|n| (u, n)))
        .collect();
    if origins.is_empty() {
        out.status = "origin_not_found";
        return out;
    }
    if candidates.is_empty() {
        out.status = "commit_not_found";
        return out;
    }
    // Snapshots of every visit, and the revisions their branches name.
    let mut snapshots: HashMap<usize, usize> = HashMap::new(); // snapshot -> origin index
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
    // Backward breadth-first search from each candidate to the origin's snapshots.
    let mut visited_total = 0usize;
    let mut members: Vec<(usize, String, usize, usize)> = Vec::new(); // node, hex, distance, snapshot
    for (node, id) in candidates {
        let start = *node as usize;
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
                    out.budget_hit = true;
                    break 'bfs;
                }
                queue.push_back((p, d + 1));
            }
        }
        if let Some((d, s)) = found {
            members.push((start, id.clone(), d, s));
        }
        if out.budget_hit {
            break;
        }
    }
    out.in_origin = members.len() as u32;
    if members.is_empty() {
        out.status = "commit_not_in_origin";
        return out;
    }
    let score = |m: &(usize, String, usize, usize)| {
        let covered = if members.len() > 1 {
            root_dir(graph, m.0).map_or(0, |r| paths_present(graph, r, paths))
        } else {
            0
        };
        (
            std::cmp::Reverse(covered),
            !heads.contains(&m.0),
            m.2,
            m.1.clone(),
        )
    };
    let best = members
        .iter()
        .min_by_key(|m| score(m))
        .expect("members is not empty");
    out.status = MATCHED;
    out.origin_url = Some(origins[snapshots[&best.3]].0.clone());
    out.snapshot = Some(hex(&props.swhid(best.3).hash));
    out.revision = Some(best.0 as u64);
    out.revision_hex = Some(best.1.clone());
    out.root = root_dir(graph, best.0).map(|r| r as u64);
    out
}

/// Matches every pair, in parallel. `pairs` are (slug, prefix); `pair_paths` the requested
/// paths of each pair; `candidates` all scan candidates.
pub fn match_all(
    graph: &(impl FullGraph + Sync),
    pairs: &[(String, String)],
    pair_paths: &[Vec<&str>],
    candidates: &[(u64, String)],
    templates: &[String],
    budget: usize,
) -> Vec<PairMatch> {
    let mut by_id: Vec<(u64, String)> = candidates.to_vec();
    by_id.sort_by(|a, b| a.1.cmp(&b.1));
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
            let lo = by_id.partition_point(|c| c.1.as_str() < prefix.as_str());
            let hi = lo + by_id[lo..].partition_point(|c| c.1.starts_with(prefix.as_str()));
            let m = match_pair(
                graph,
                slug,
                &by_id[lo..hi],
                &pair_paths[i],
                templates,
                budget,
            );
            pl.light_update();
            m
        })
        .collect();
    pl.done();
    out
}

/// Writes the matches as `pairs.parquet` columns.
pub fn columns(matches: &[PairMatch]) -> Vec<(&'static str, ArrayRef)> {
    vec![
        (
            "pair_id",
            Arc::new(UInt32Array::from_iter_values(0..matches.len() as u32)) as ArrayRef,
        ),
        (
            "status",
            Arc::new(StringArray::from_iter_values(
                matches.iter().map(|m| m.status),
            )),
        ),
        (
            "origin_url",
            Arc::new(StringArray::from_iter(
                matches.iter().map(|m| m.origin_url.as_deref()),
            )),
        ),
        (
            "snapshot",
            Arc::new(StringArray::from_iter(
                matches.iter().map(|m| m.snapshot.as_deref()),
            )),
        ),
        (
            "revision_node",
            Arc::new(UInt64Array::from_iter(matches.iter().map(|m| m.revision))),
        ),
        (
            "revision",
            Arc::new(StringArray::from_iter(
                matches.iter().map(|m| m.revision_hex.as_deref()),
            )),
        ),
        (
            "root_node",
            Arc::new(UInt64Array::from_iter(matches.iter().map(|m| m.root))),
        ),
        (
            "candidates",
            Arc::new(UInt32Array::from_iter_values(
                matches.iter().map(|m| m.candidates),
            )),
        ),
        (
            "in_origin",
            Arc::new(UInt32Array::from_iter_values(
                matches.iter().map(|m| m.in_origin),
            )),
        ),
        (
            "budget_hit",
            Arc::new(BooleanArray::from_iter(
                matches.iter().map(|m| Some(m.budget_hit)),
            )),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
