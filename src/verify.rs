//! `unearth verify`: re-resolve a random sample of rows by another code path.
//!
//! The pipeline resolves paths from entries decoded by its own sequential label pass; this
//! check walks the same paths hop by hop with swh-graph's random-access
//! `labeled_successors`, starting from the revision looked up by its SWHID, and compares
//! status and content id. Rows whose origin was not found are checked by looking every URL
//! variant up again; invalid rows by validating them again. Other failures of the origin
//! match (`commit_not_found`, `commit_not_in_origin`) are counted as not re-checked.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use rand::seq::index::sample;
use rand::SeedableRng;
use swh_graph::labels::EdgeLabel;
use swh_graph::{NodeType, SWHID};

use crate::artifacts::resolved;
use crate::graph::LabelledGraph;
use crate::phases::matching::{origin_node, url_variants};
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
struct Row {
    row_id: u64,
    repo: Option<String>,
    commit: Option<String>,
    path: Option<String>,
    revision: Option<String>,
    sha1_git: Option<String>,
    status: String,
}

/// Reads the rows at the sorted global positions `picks` of the resolved files, streaming:
/// only the sampled rows are held.
fn read_rows(dir: &Path, picks: &[usize]) -> Result<Vec<Row>, TableError> {
    let mut rows = Vec::with_capacity(picks.len());
    let mut offset = 0usize;
    let mut next = picks.iter().peekable();
    for f in resolved::files(dir)? {
        let (_, batches) = table::open(&f)?;
        for b in batches {
            let b = b?;
            let end = offset + b.num_rows();
            if next.peek().is_some_and(|&&p| p < end) {
                let ids = table::u64s(&b, &f, "row_id")?;
                let col = |n: &str| table::strings(&b, &f, n);
                let (repo, commit, path) = (
                    col("repo").or_else(|_| col("input_repo"))?,
                    col("commit_id")?,
                    col("rel_path")?,
                );
                let (rev, sha, status) = (col("revision")?, col("sha1_git")?, col("status")?);
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
                        status: status[i].clone().unwrap_or_default(),
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
fn count_rows(dir: &Path) -> Result<usize, TableError> {
    let mut n = 0;
    for f in resolved::files(dir)? {
        n += table::num_rows(&f)?;
    }
    Ok(n)
}

/// Walks `path` from revision `rev_hex` with random-access labelled successors.
fn walk_random_access(
    graph: &impl LabelledGraph,
    rev_hex: &str,
    path: &str,
) -> (String, Option<String>) {
    let props = graph.properties();
    let Ok(swhid) = SWHID::from_str(&format!("swh:1:rev:{rev_hex}")) else {
        return ("bad_revision".into(), None);
    };
    let Ok(rev) = props.node_id(swhid) else {
        return ("revision_not_in_graph".into(), None);
    };
    let Some(mut node) = graph
        .successors(rev)
        .into_iter()
        .find(|&s| props.node_type(s) == NodeType::Directory)
    else {
        return ("no_root_directory".into(), None);
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
            return ("path_not_found".into(), None);
        };
        let last = i + 1 == comps.len();
        match props.node_type(succ) {
            NodeType::Directory if !last => node = succ,
            NodeType::Directory => return ("is_directory".into(), None),
            NodeType::Revision => return ("submodule".into(), None),
            NodeType::Content if last => {
                let status = if perm == Some(swh_graph::labels::Permission::Symlink) {
                    "symlink"
                } else {
                    "ok"
                };
                return (
                    status.into(),
                    Some(crate::model::hashes::hex(&props.swhid(succ).hash)),
                );
            }
            _ => return ("path_not_found".into(), None),
        }
    }
    ("path_not_found".into(), None)
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
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut picks = sample(&mut rng, total, sample_size.min(total)).into_vec();
    picks.sort_unstable();
    let rows = read_rows(resolved_dir, &picks)?;
    let mut report = Report::default();
    for row in &rows {
        report.sampled += 1;
        let agree = match row.status.as_str() {
            "ok" | "symlink" | "is_directory" | "submodule" | "path_not_found" => {
                let (Some(rev), Some(path)) = (&row.revision, &row.path) else {
                    report.disagreements.push(format!(
                        "row {}: {} without revision",
                        row.row_id, row.status
                    ));
                    continue;
                };
                let (status, sha) = walk_random_access(graph, rev, path);
                if status == row.status && sha == row.sha1_git {
                    true
                } else {
                    report.disagreements.push(format!(
                        "row {}: pipeline says {} {:?}, random access says {} {:?}",
                        row.row_id, row.status, row.sha1_git, status, sha
                    ));
                    false
                }
            }
            "origin_not_found" => {
                let slug = row.repo.clone().unwrap_or_default();
                let found = url_variants(&slug, templates)
                    .iter()
                    .find(|u| origin_node(graph, u).is_some())
                    .cloned();
                match found {
                    None => true,
                    Some(u) => {
                        report.disagreements.push(format!(
                            "row {}: origin_not_found, but {u} is in the graph",
                            row.row_id
                        ));
                        false
                    }
                }
            }
            "invalid" => {
                let ok = crate::phases::plan::validate(
                    row.repo.as_deref(),
                    row.commit.as_deref(),
                    row.path.as_deref(),
                )
                .is_err();
                if !ok {
                    report
                        .disagreements
                        .push(format!("row {}: invalid, but validates", row.row_id));
                }
                ok
            }
            other => {
                *report.unchecked.entry(other.to_string()).or_default() += 1;
                continue;
            }
        };
        if agree {
            report.agreed += 1;
        }
    }
    Ok(report)
}
