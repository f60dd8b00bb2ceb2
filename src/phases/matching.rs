//! Phase 4, **origin match**: for each (repository, prefix) pair, the revisions with the prefix
//! that belong to the repository's origins.
//!
//! Pairs come from the plan sorted by normalised slug, so the pairs of one repository are
//! processed together, as a group, in parallel with other groups:
//!
//! 1. The origins: every origin the node scan found whose normalised URL one of
//!    `url_templates` gives for the slug (a re-cased rename has several); all their
//!    snapshots (every visit: slugs are reused over time) and branch heads.
//! 2. Each pair's candidates: the revisions with its prefix, by binary search in the scan's
//!    `candidates.flat`. None: `commit_not_found`.
//! 3. Membership ([`super::membership`]): a backward search from each candidate, at most
//!    `origin_search_budget` nodes per pair; what it leaves open is decided by one forward
//!    search of the group's whole history, shared by all its open pairs. So
//!    `commit_not_in_origin` always means "in no archived history of the origin".
//! 4. Every member is kept, ranked (branch heads first, then nearest to a snapshot, then
//!    smallest id): the walk gives each row the member whose tree holds its path.
//!
//! Output: [`crate::artifacts::matches`].
//!
//! Memory: the requested origins found (a few words each), one chunk of pairs and their
//! members, and per group in flight its searches' visited sets (the forward one holds the
//! group's history: a hash-map entry, ~40 bytes, per revision).

use std::collections::{HashMap, HashSet};

use dsi_progress_logger::ProgressLog;
use rayon::prelude::*;
use swh_graph::graph::{SwhBackwardGraph, SwhBidirectionalGraph, SwhForwardGraph};
use swh_graph::NodeType;

use super::membership::{backward, forward, Backward, Found, NodeIds, NodeKinds, Snapshots};
use crate::artifacts::candidates::{self as scan_files, Candidate, CandidatesById, Origin};
use crate::artifacts::flat::FlatWriter;
use crate::artifacts::matches::{Member, PairMatch, MEMBERS, PAIRS};
use crate::artifacts::plan::{self as plan_files, Pair, Prefix};
use crate::config::Config;
use crate::graph::{GraphError, NodeMaps};
use crate::model::slug::origin_keys;
use crate::model::{Counts, MatchStatus, Phase, Sha1Git, Shard, StatusCounts};

use super::{Context, Inputs, PhaseError};

/// Counts of the origin match.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MatchCounts {
    /// Pairs per outcome (`pairs_matched`, ...).
    #[serde(flatten)]
    pub pairs: StatusCounts<MatchStatus>,
    /// Pairs whose backward search ran out of budget (decided by a forward search).
    pub budget_hit: u64,
    /// Pairs decided by the backward search alone.
    pub decided_backward: u64,
    /// Forward searches (one per repository with open pairs).
    pub forward_searches: u64,
    /// Revisions and releases the forward searches visited.
    pub forward_visited: u64,
    /// Pairs with more than one candidate in their origin.
    pub pairs_with_several_candidates_in_origin: u64,
    /// Members written.
    pub members: u64,
}

impl Counts for MatchCounts {
    fn add(&mut self, o: &Self) {
        self.pairs.merge(&o.pairs);
        self.budget_hit += o.budget_hit;
        self.decided_backward += o.decided_backward;
        self.forward_searches += o.forward_searches;
        self.forward_visited += o.forward_visited;
        self.pairs_with_several_candidates_in_origin += o.pairs_with_several_candidates_in_origin;
        self.members += o.members;
    }
}

/// What the match reads besides the pairs.
pub struct Input<'a, G, K> {
    /// The scan's candidates, by id.
    pub candidates: &'a CandidatesById,
    /// The requested origins found, sorted by node (their index names them).
    pub origins: &'a [Origin],
    /// Origin indices by normalised URL.
    pub by_key: HashMap<&'a str, Vec<u32>>,
    /// The graph, both directions.
    pub graph: &'a G,
    /// Node types and ids.
    pub nodes: &'a K,
    /// URL templates.
    pub templates: &'a [String],
    /// Backward-search budget per pair.
    pub budget: usize,
}

/// One pair's answer before it is placed in the files.
struct Answer {
    status: MatchStatus,
    budget_hit: bool,
    candidates: u32,
    members: Vec<Member>,
}

/// The root directory of revision `rev`.
fn root_of<G: SwhForwardGraph>(g: &G, kinds: &impl NodeKinds, rev: usize) -> Option<usize> {
    g.successors(rev)
        .into_iter()
        .find(|&s| kinds.kind(s) == Some(NodeType::Directory))
}

/// The group's origins as indexes into `input.origins`, from its slug's normalised URLs, in
/// order of preference: by URL, so that ties between origins do not depend on node order.
fn group_origins<G, K>(input: &Input<G, K>, slug: &str) -> Vec<u32> {
    let mut out: Vec<u32> = origin_keys(slug, input.templates)
        .iter()
        .filter_map(|k| input.by_key.get(k.as_str()))
        .flatten()
        .copied()
        .collect();
    out.sort_unstable_by(|&a, &b| {
        let (a, b) = (&input.origins[a as usize], &input.origins[b as usize]);
        (a.url.as_str(), a.node).cmp(&(b.url.as_str(), b.node))
    });
    out.dedup();
    out
}

/// Matches the pairs of one repository (one slug).
fn match_group<G, K>(input: &Input<G, K>, pairs: &[Pair]) -> (Vec<Answer>, MatchCounts)
where
    G: SwhForwardGraph + SwhBackwardGraph,
    K: NodeIds,
{
    let mut counts = MatchCounts::default();
    let slug = pairs.first().map(|p| p.slug.as_str()).unwrap_or_default();
    let cands: Vec<Vec<Candidate>> = pairs
        .iter()
        .map(|p| Prefix::parse(&p.prefix).map_or(Vec::new(), |x| input.candidates.with_prefix(&x)))
        .collect();
    let origins = group_origins(input, slug);
    let failed = |status, c: &Vec<Candidate>| Answer {
        status,
        budget_hit: false,
        candidates: c.len() as u32,
        members: Vec::new(),
    };
    if origins.is_empty() {
        let answers = cands
            .iter()
            .map(|c| failed(MatchStatus::OriginNotFound, c))
            .collect();
        return (answers, counts);
    }
    let nodes: Vec<usize> = origins
        .iter()
        .map(|&i| input.origins[i as usize].node as usize)
        .collect();
    let snapshots = Snapshots::of(input.graph, input.nodes, &nodes);
    // Backward searches; what they leave open waits for the forward search.
    let mut found: Vec<Vec<(usize, Found)>> = vec![Vec::new(); pairs.len()];
    let mut open: Vec<Vec<usize>> = vec![Vec::new(); pairs.len()];
    for (i, c) in cands.iter().enumerate() {
        let mut budget = input.budget;
        for cand in c {
            let node = cand.node as usize;
            match backward(input.graph, input.nodes, node, &snapshots, &mut budget) {
                Backward::Member(f) => found[i].push((node, f)),
                Backward::NotMember => {}
                Backward::Undecided => open[i].push(node),
            }
        }
    }
    let wanted: HashSet<usize> = open.iter().flatten().copied().collect();
    if !wanted.is_empty() {
        let f = forward(input.graph, input.nodes, &snapshots, &wanted);
        counts.forward_searches += 1;
        counts.forward_visited += f.visited;
        for (i, o) in open.iter().enumerate() {
            found[i].extend(o.iter().filter_map(|n| f.found.get(n).map(|x| (*n, *x))));
        }
    }
    let answers = (0..pairs.len())
        .map(|i| {
            if cands[i].is_empty() {
                return failed(MatchStatus::CommitNotFound, &cands[i]);
            }
            let members = members(input, &origins, &snapshots, &found[i]);
            Answer {
                status: if members.is_empty() {
                    MatchStatus::CommitNotInOrigin
                } else {
                    MatchStatus::Matched
                },
                budget_hit: !open[i].is_empty(),
                candidates: cands[i].len() as u32,
                members,
            }
        })
        .collect();
    (answers, counts)
}

/// The ranked members of one pair, from where its revisions were found; `origins` are the
/// group's, in the order `snapshots` was made with.
fn members<G, K>(
    input: &Input<G, K>,
    origins: &[u32],
    snapshots: &Snapshots,
    found: &[(usize, Found)],
) -> Vec<Member>
where
    G: SwhForwardGraph,
    K: NodeIds,
{
    let mut out: Vec<Member> = found
        .iter()
        .map(|&(node, f)| Member {
            revision_node: node as u64,
            revision: Sha1Git(input.nodes.id(node).unwrap_or_default()),
            root: root_of(input.graph, input.nodes, node).map_or(u64::MAX, |r| r as u64),
            snapshot: Sha1Git(input.nodes.id(f.snapshot).unwrap_or_default()),
            origin: snapshots
                .origin_of
                .get(&f.snapshot)
                .and_then(|&pos| origins.get(pos as usize))
                .copied()
                .unwrap_or_default(),
            distance: f.distance,
            head: snapshots.heads.contains(&node),
        })
        .collect();
    out.sort_by_key(Member::rank);
    out
}

/// Splits a chunk of pairs (sorted by slug) into groups of one slug.
fn groups(pairs: &[Pair]) -> Vec<&[Pair]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=pairs.len() {
        if i == pairs.len() || pairs[i].slug != pairs[start].slug {
            out.push(&pairs[start..i]);
            start = i;
        }
    }
    out
}

/// Pairs matched per parallel step.
const CHUNK_PAIRS: usize = 50_000;

/// Matches every pair of the plan into `ctx.out`.
pub fn run<G, K>(ctx: &Context, input: Input<G, K>) -> Result<MatchCounts, PhaseError>
where
    G: SwhForwardGraph + SwhBackwardGraph + Sync,
    K: NodeIds,
{
    let mut pairs_out: FlatWriter<PairMatch> = FlatWriter::create(&ctx.out.join(PAIRS))?;
    let mut members_out: FlatWriter<Member> = FlatWriter::create(&ctx.out.join(MEMBERS))?;
    let mut counts = MatchCounts::default();
    let mut next_member = 0u64;
    let mut pl = dsi_progress_logger::progress_logger!(item_name = "pair", display_memory = true);
    pl.start("Matching (repo, prefix) pairs to origins");
    let mut pending: Vec<Pair> = Vec::new();
    let mut batches = plan_files::read_pairs(&ctx.upstream(Phase::Plan))?;
    loop {
        let next = batches.next().transpose()?;
        let done = next.is_none();
        pending.extend(next.unwrap_or_default());
        if pending.len() < CHUNK_PAIRS && !done {
            continue;
        }
        // Cut at a slug boundary, so a group is never split across chunks.
        let cut = if done {
            pending.len()
        } else {
            let last = pending.last().map(|p| p.slug.clone()).unwrap_or_default();
            pending
                .iter()
                .rposition(|p| p.slug != last)
                .map_or(0, |i| i + 1)
        };
        let chunk: Vec<Pair> = pending.drain(..cut).collect();
        let results: Vec<(Vec<Answer>, MatchCounts)> = groups(&chunk)
            .par_iter()
            .map(|g| match_group(&input, g))
            .collect();
        for (answers, c) in results {
            counts.add(&c);
            for a in answers {
                counts.pairs.bump(a.status);
                counts.budget_hit += a.budget_hit as u64;
                counts.decided_backward += (!a.budget_hit) as u64;
                counts.pairs_with_several_candidates_in_origin += (a.members.len() > 1) as u64;
                pairs_out.push(&PairMatch {
                    status: a.status,
                    budget_hit: a.budget_hit,
                    candidates: a.candidates,
                    in_origin: a.members.len() as u32,
                    first_member: next_member,
                })?;
                for m in &a.members {
                    members_out.push(m)?;
                }
                next_member += a.members.len() as u64;
                pl.light_update();
            }
        }
        if done && pending.is_empty() {
            break;
        }
    }
    pl.done();
    pairs_out.finish()?;
    counts.members = members_out.finish()?;
    if counts.budget_hit > 0 {
        log::info!(
            "origin match: {} pairs went past the backward budget ({}) and were decided by {} \
             forward searches",
            counts.budget_hit,
            input.budget,
            counts.forward_searches
        );
    }
    Ok(counts)
}

/// The requested origins the scan found, sorted by node.
pub fn load_origins(scan_dir: &std::path::Path) -> Result<Vec<Origin>, PhaseError> {
    let mut origins = scan_files::read_origins(&scan_dir.join(scan_files::ORIGINS))?;
    origins.sort_by_key(|o| o.node);
    origins.dedup_by_key(|o| o.node);
    Ok(origins)
}

/// The origin match as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Match;
    type Counts = MatchCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(Inputs::from([(
            "origins".to_string(),
            config.origin_fingerprint(),
        )]))
    }

    fn run(ctx: &Context) -> Result<MatchCounts, PhaseError> {
        let scan = ctx.upstream(Phase::Scan);
        let candidates = CandidatesById::open(&scan)?;
        let origins = load_origins(&scan)?;
        let mut by_key: HashMap<&str, Vec<u32>> = HashMap::new();
        for (i, o) in origins.iter().enumerate() {
            by_key.entry(o.key.as_str()).or_default().push(i as u32);
        }
        let base = ctx.graph();
        let graph = SwhBidirectionalGraph::new(base).map_err(|e| GraphError::new(base, e))?;
        let nodes = NodeMaps::open(base)?;
        let input = Input {
            candidates: &candidates,
            origins: &origins,
            by_key,
            graph: &graph,
            nodes: &nodes,
            templates: &ctx.config.options.url_templates,
            budget: ctx.config.options.origin_search_budget,
        };
        run(ctx, input)
    }
}
