//! `unearth verify`: re-resolve a random sample of rows by another code path.
//!
//! The pipeline resolves paths from entries decoded by its own sequential label pass; this
//! check walks the same paths hop by hop with swh-graph's random-access
//! `labeled_successors`, starting from the revision looked up by its SWHID, and compares
//! status and content id. Other statuses are re-checked where random access can:
//!
//! - `invalid`: the row is validated again;
//! - `origin_not_found`: the URLs the templates give (as spelled, normalised, with `.git`)
//!   are looked up in the graph; none may exist;
//! - `commit_not_in_origin`: the history of the origins found that way is traversed forward;
//!   no revision in it may have the row's prefix.
//!
//! `commit_not_found` needs a pass over every revision, and is counted as not re-checked, as
//! are `commit_not_in_origin` rows whose origin is archived under another spelling.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::Path;
use std::str::FromStr;

use rand::seq::index::sample;
use rand::SeedableRng;
use swh_graph::labels::EdgeLabel;
use swh_graph::{NodeType, SWHID};

use crate::artifacts::resolved;
use crate::graph::origins::origins_of;
use crate::graph::LabelledGraph;
use crate::model::hashes::hex;
use crate::model::{RowStatus, Status};
use crate::table::{self, TableError};

/// Outcome of a verification.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Rows sampled.
    pub sampled: u64,
    /// Rows re-resolved and found equal.
    pub agreed: u64,
    /// Rows not re-checked, by status.
    pub unchecked: BTreeMap<String, u64>,
    /// Disagreements, described.
    pub disagreements: Vec<String>,
}

/// One row of the resolved output, as verification needs it.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its id.
    pub row_id: u64,
    /// `repo` of the input.
    pub repo: Option<String>,
    /// `commit_id` of the input.
    pub commit: Option<String>,
    /// `rel_path` of the input.
    pub path: Option<String>,
    /// The pipeline's revision.
    pub revision: Option<String>,
    /// The pipeline's content id.
    pub sha1_git: Option<String>,
    /// The pipeline's status.
    pub status: Option<RowStatus>,
}

/// Reads the rows at the sorted global positions `picks` of the resolved files, streaming:
/// only the sampled rows are held.
fn read_rows(dir: &Path, picks: &[usize]) -> Result<Vec<Row>, TableError> {
    let mut rows = Vec::with_capacity(picks.len());
    let mut offset = 0usize;
    let mut next = picks.iter().peekable();
    for f in resolved::files(dir)? {
        for b in resolved::batches(&f)? {
            let b = b?;
            let end = offset + b.len();
            if next.peek().is_some_and(|&&p| p < end) {
                let ids = table::u64s(&b.batch, &f, "row_id")?;
                let col = |n: &str| table::strings(&b.batch, &f, n);
                let (repo, commit, path) = (col("repo")?, col("commit_id")?, col("rel_path")?);
                let (rev, sha) = (col("revision")?, col("sha1_git")?);
                while let Some(&&p) = next.peek() {
                    if p >= end {
                        break;
                    }
                    let i = p - offset;
                    rows.push(Row {
                        row_id: ids[i],
                        repo: repo[i].clone(),
                        commit: commit[i].clone(),
                        path: path[i].clone(),
                        revision: rev[i].clone(),
                        sha1_git: sha[i].clone(),
                        status: b.status.get(i).copied(),
                    });
                    next.next();
                }
            }
            offset = end;
        }
    }
    Ok(rows)
}

/// Rows in the resolved files of `dir`, from their metadata.
pub fn count_rows(dir: &Path) -> Result<usize, TableError> {
    let mut n = 0;
    for f in resolved::files(dir)? {
        n += table::num_rows(&f)?;
    }
    Ok(n)
}

/// The first revision (breadth-first from the snapshots) with `prefix` (lower-case hex) in
/// the history of `origins`, traversing it forward by random access.
fn find_in_history(graph: &impl LabelledGraph, origins: &[usize], prefix: &str) -> Option<usize> {
    let props = graph.properties();
    let mut seen: HashSet<usize> = HashSet::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    for &o in origins {
        for snp in graph.successors(o) {
            if props.node_type(snp) == NodeType::Snapshot {
                queue.extend(graph.successors(snp));
            }
        }
    }
    while let Some(n) = queue.pop_front() {
        if !seen.insert(n) {
            continue;
        }
        match props.node_type(n) {
            NodeType::Revision if hex(&props.swhid(n).hash).starts_with(prefix) => return Some(n),
            NodeType::Revision | NodeType::Release => queue.extend(graph.successors(n)),
            _ => {}
        }
    }
    None
}

/// Resolves a row from scratch, one hop at a time, as a program using swh-graph's random
/// access would: the origin by its URLs, its history searched forward for the first
/// revision with the prefix, then the path. The per-row baseline of `unearth bench`.
pub fn resolve_by_random_access(
    graph: &impl LabelledGraph,
    templates: &[String],
    repo: Option<&str>,
    commit: Option<&str>,
    path: Option<&str>,
) -> (RowStatus, Option<String>) {
    let Ok(prefix) = crate::phases::plan::validate(repo, commit, path) else {
        return (RowStatus::Invalid, None);
    };
    let origins = origins_of(graph, repo.unwrap_or_default(), templates);
    if origins.is_empty() {
        return (RowStatus::OriginNotFound, None);
    }
    let Some(rev) = find_in_history(graph, &origins, &prefix) else {
        return (RowStatus::CommitNotInOrigin, None);
    };
    let rev_hex = hex(&graph.properties().swhid(rev).hash);
    walk_random_access(graph, &rev_hex, path.unwrap_or_default())
}

/// Walks `path` from revision `rev_hex` with random-access labelled successors.
fn walk_random_access(
    graph: &impl LabelledGraph,
    rev_hex: &str,
    path: &str,
) -> (RowStatus, Option<String>) {
    let props = graph.properties();
    let not_found = (RowStatus::PathNotFound, None);
    let Some(rev) = SWHID::from_str(&format!("swh:1:rev:{rev_hex}"))
        .ok()
        .and_then(|s| props.node_id(s).ok())
    else {
        return (RowStatus::CommitNotFound, None);
    };
    let Some(mut node) = graph
        .successors(rev)
        .into_iter()
        .find(|&s| props.node_type(s) == NodeType::Directory)
    else {
        return (RowStatus::CommitNotFound, None);
    };
    let comps: Vec<&str> = path.split('/').collect();
    for (i, comp) in comps.iter().enumerate() {
        let mut hit = None;
        for (succ, labels) in graph.labeled_successors(node) {
            for l in labels {
                if let EdgeLabel::DirEntry(e) = l {
                    if props.label_name(e.label_name_id()) == comp.as_bytes() {
                        hit = Some((succ, e.permission()));
                    }
                }
            }
        }
        let Some((succ, perm)) = hit else {
            return not_found;
        };
        let last = i + 1 == comps.len();
        match props.node_type(succ) {
            NodeType::Directory if !last => node = succ,
            NodeType::Directory => return (RowStatus::IsDirectory, None),
            NodeType::Revision => return (RowStatus::Submodule, None),
            NodeType::Content if last => {
                let status = if perm == Some(swh_graph::labels::Permission::Symlink) {
                    RowStatus::Symlink
                } else {
                    RowStatus::Ok
                };
                return (status, Some(hex(&props.swhid(succ).hash)));
            }
            _ => return not_found,
        }
    }
    not_found
}

/// Checks one row; `None` when it cannot be re-checked, else whether it agrees (with the
/// disagreement described).
fn check(
    graph: &impl LabelledGraph,
    templates: &[String],
    row: &Row,
) -> Option<Result<(), String>> {
    let id = row.row_id;
    let status = row.status?;
    match status {
        RowStatus::Ok
        | RowStatus::Symlink
        | RowStatus::IsDirectory
        | RowStatus::Submodule
        | RowStatus::PathNotFound => {
            let (Some(rev), Some(path)) = (&row.revision, &row.path) else {
                return Some(Err(format!("row {id}: {status} without revision")));
            };
            let (s, sha) = walk_random_access(graph, rev, path);
            Some(if s == status && sha == row.sha1_git {
                Ok(())
            } else {
                Err(format!(
                    "row {id}: pipeline says {status} {:?}, random access says {s} {sha:?}",
                    row.sha1_git
                ))
            })
        }
        RowStatus::OriginNotFound => {
            let found = origins_of(graph, row.repo.as_deref().unwrap_or_default(), templates);
            Some(match found.first() {
                None => Ok(()),
                Some(n) => Err(format!(
                    "row {id}: origin_not_found, but origin node {n} has its URL"
                )),
            })
        }
        RowStatus::CommitNotInOrigin => {
            let origins = origins_of(graph, row.repo.as_deref().unwrap_or_default(), templates);
            if origins.is_empty() {
                return None;
            }
            let prefix = row
                .commit
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            Some(if find_in_history(graph, &origins, &prefix).is_some() {
                Err(format!(
                    "row {id}: commit_not_in_origin, but the origin's history has {prefix}"
                ))
            } else {
                Ok(())
            })
        }
        RowStatus::Invalid => Some(
            match crate::phases::plan::validate(
                row.repo.as_deref(),
                row.commit.as_deref(),
                row.path.as_deref(),
            ) {
                Err(_) => Ok(()),
                Ok(_) => Err(format!("row {id}: invalid, but validates")),
            },
        ),
        _ => None,
    }
}

/// `size` rows drawn at random (seeded) from the `total` rows of the resolved output in
/// `dir`, in row order.
pub fn sample_rows(
    dir: &Path,
    total: usize,
    size: usize,
    seed: u64,
) -> Result<Vec<Row>, TableError> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut picks = sample(&mut rng, total, size.min(total)).into_vec();
    picks.sort_unstable();
    read_rows(dir, &picks)
}

/// Verifies `sample_size` rows of the resolved output in `resolved_dir`.
pub fn verify(
    graph: &impl LabelledGraph,
    resolved_dir: &Path,
    templates: &[String],
    sample_size: usize,
    seed: u64,
) -> Result<Report, TableError> {
    let total = count_rows(resolved_dir)?;
    let rows = sample_rows(resolved_dir, total, sample_size, seed)?;
    let mut report = Report::default();
    for row in &rows {
        report.sampled += 1;
        match check(graph, templates, row) {
            Some(Ok(())) => report.agreed += 1,
            Some(Err(why)) => report.disagreements.push(why),
            None => {
                let s = row.status.map_or("unknown", |s| s.as_str());
                *report.unchecked.entry(s.to_string()).or_default() += 1;
            }
        }
    }
    Ok(report)
}
