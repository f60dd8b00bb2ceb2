//! Phase 7, **path walk**: every row from its revision's root directory down its path, using
//! only the entries the label pass kept, and the `resolved` output.
//!
//! The metadata is read again, batch by batch; each row finds its pair by key
//! ([`crate::artifacts::plan::PairLookup`]), the pair its members
//! ([`crate::artifacts::matches`]), and the path is walked in the tree of every member, with
//! one binary search in the mapped `names.flat` per component and one in `entries.flat` per
//! directory entered. Rows of a batch are resolved in parallel and written in input order.
//!
//! When several revisions of the origin share the row's prefix, the row goes to one whose
//! tree holds its path (any status but `path_not_found`); among those, the first in rank
//! order: a branch head or release target first, then the nearest to a snapshot, then the
//! smallest id. `candidates_with_path` says how many held it, so ambiguous rows can be
//! dropped. When none holds it, the row is `path_not_found` in the first member.
//!
//! Statuses, in the order they are decided: `invalid` (plan), `origin_not_found`,
//! `commit_not_found`, `commit_not_in_origin` (origin match), then along the path:
//! `path_not_found` (a component is absent, or a file is walked through), `submodule` (the
//! path reaches a gitlink), and at the leaf `ok` (a file), `symlink` (a symbolic link: the
//! content is the link's own blob, its target path) or `is_directory`.
//!
//! Output: [`crate::artifacts::resolved`], one file per input file, rows in input order; and
//! [`crate::artifacts::licenses`]: the license files at the root of every revision a row
//! went to (content entries named as [`crate::model::license::file_names`] lists, links
//! excluded), for the dataset's license detection.
//!
//! Memory: one batch of rows and their answers; every table is read memory-mapped; the root
//! license files go through the external sorter (`sort_memory_mb`).

use std::path::Path;

use arrow::array::RecordBatch;
use rayon::prelude::*;
use swh_graph::NodeType;

use crate::artifacts::candidates::Origin;
use crate::artifacts::entries::{Entries, Names};
use crate::artifacts::flat::FlatWriter;
use crate::artifacts::licenses::{RootLicense, LICENSES};
use crate::artifacts::matches::Matches;
use crate::artifacts::plan::{self as plan_files, PairLookup};
use crate::artifacts::resolved::{self, Resolution, ResolvedWriter};
use crate::config::Config;
use crate::graph::NodeMaps;
use crate::model::{Counts, Phase, RowStatus, Sha1Git, Shard, StatusCounts};
use crate::table;

use super::plan::row_pair;
use super::{Context, Inputs, PhaseError};

/// Git mode of each swh-graph permission code.
pub const GIT_MODES: [u32; 6] = [0, 0o100644, 0o100755, 0o120000, 0o040000, 0o160000];

/// Permission code of symbolic links.
const SYMLINK: u8 = 3;

/// The answer for one path in one tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathResult {
    /// Status.
    pub status: RowStatus,
    /// Content (or link blob) id.
    pub sha1_git: Option<Sha1Git>,
    /// Git mode of the leaf entry.
    pub permissions: Option<u32>,
}

impl PathResult {
    fn status(status: RowStatus) -> Self {
        Self {
            status,
            sha1_git: None,
            permissions: None,
        }
    }
}

/// How a walk sees the graph: label ids of names, kept entries, node types and ids.
pub trait Tree {
    /// The label id of a component, if requested and in the graph.
    fn name_id(&self, name: &str) -> Option<u64>;
    /// The entry named `name` in `dir`: permission code and target.
    fn entry(&self, dir: u64, name: u64) -> Option<(u8, u64)>;
    /// A node's type.
    fn node_type(&self, node: u64) -> Option<NodeType>;
    /// A node's id.
    fn node_id(&self, node: u64) -> Option<[u8; 20]>;
}

/// Walks `path` from directory `root`.
pub fn walk_path(tree: &impl Tree, root: u64, path: &str) -> PathResult {
    let not_found = PathResult::status(RowStatus::PathNotFound);
    let comps: Vec<&str> = path.split('/').collect();
    let mut dir = root;
    for (i, comp) in comps.iter().enumerate() {
        let Some(name) = tree.name_id(comp) else {
            return not_found;
        };
        let Some((perm, target)) = tree.entry(dir, name) else {
            return not_found;
        };
        let last = i + 1 == comps.len();
        let mode = GIT_MODES.get(perm as usize).copied();
        let with = |status| PathResult {
            status,
            sha1_git: None,
            permissions: mode,
        };
        match tree.node_type(target) {
            Some(NodeType::Directory) if !last => dir = target,
            Some(NodeType::Directory) => return with(RowStatus::IsDirectory),
            Some(NodeType::Revision) => return with(RowStatus::Submodule),
            Some(NodeType::Content) if last => {
                let status = if perm == SYMLINK {
                    RowStatus::Symlink
                } else {
                    RowStatus::Ok
                };
                return PathResult {
                    sha1_git: tree.node_id(target).map(Sha1Git),
                    ..with(status)
                };
            }
            _ => return not_found,
        }
    }
    not_found
}

/// Counts of the walk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WalkCounts {
    /// Rows written.
    pub rows: u64,
    /// Rows whose path more than one revision of the origin with the prefix holds.
    pub rows_with_several_candidates: u64,
    /// Paths walked (a row walks one per revision of its origin with its prefix).
    pub walks: u64,
    /// Distinct revisions the rows went to that have a license file at their root.
    pub revisions_with_license: u64,
    /// License files at those roots.
    pub license_files: u64,
    /// Rows per status (`status_ok`, ...).
    #[serde(flatten)]
    pub status: StatusCounts<RowStatus>,
}

impl Counts for WalkCounts {
    fn add(&mut self, o: &Self) {
        self.rows += o.rows;
        self.revisions_with_license += o.revisions_with_license;
        self.license_files += o.license_files;
        self.rows_with_several_candidates += o.rows_with_several_candidates;
        self.walks += o.walks;
        self.status.merge(&o.status);
    }
}

/// What the walk reads.
pub struct Input {
    /// The input files, in row order, with their planned row counts.
    pub files: Vec<(String, u64)>,
    /// Pairs by key.
    pub pairs: PairLookup,
    /// The match.
    pub matches: Matches,
    /// The requested origins found, sorted by node (members name them by index).
    pub origins: Vec<Origin>,
    /// The requested names' label ids.
    pub names: Names,
    /// The kept entries.
    pub entries: Entries,
    /// Node types and ids.
    pub maps: NodeMaps,
    /// Label ids of the license file names the graph has, sorted.
    pub license_names: Vec<u64>,
}

impl Input {
    /// The label ids of the license file names in `names`, sorted.
    pub fn license_names(names: &Names) -> Vec<u64> {
        let mut ids: Vec<u64> = crate::model::license::file_names()
            .iter()
            .filter_map(|n| names.get(n.as_bytes()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The license files at the root `root` of `revision`: file entries (not links) with a
    /// license file name.
    fn root_licenses(&self, revision: Sha1Git, root: u64) -> Vec<RootLicense> {
        self.entries
            .in_dir(root)
            .filter(|e| self.license_names.binary_search(&e.name_id).is_ok())
            .filter(|e| e.perm != SYMLINK)
            .filter(|e| self.maps.node_type(e.target) == Some(NodeType::Content))
            .filter_map(|e| {
                Some(RootLicense {
                    revision,
                    content: Sha1Git(self.maps.hash(e.target)?),
                })
            })
            .collect()
    }
}

impl Tree for Input {
    fn name_id(&self, name: &str) -> Option<u64> {
        self.names.get(name.as_bytes())
    }
    fn entry(&self, dir: u64, name: u64) -> Option<(u8, u64)> {
        self.entries.lookup(dir, name)
    }
    fn node_type(&self, node: u64) -> Option<NodeType> {
        self.maps.node_type(node)
    }
    fn node_id(&self, node: u64) -> Option<[u8; 20]> {
        self.maps.hash(node)
    }
}

/// A row's answer, how many paths it walked, and the root directory of its revision.
struct Answer {
    resolution: Resolution,
    walks: u64,
    root: Option<u64>,
}

fn unresolved(status: RowStatus, candidates: Option<u32>) -> Answer {
    Answer {
        resolution: Resolution {
            origin_url: None,
            snapshot: None,
            revision: None,
            sha1_git: None,
            permissions: None,
            status,
            candidates,
            candidates_with_path: None,
        },
        walks: 0,
        root: None,
    }
}

/// Resolves one row; `None` when its pair is not in the plan (the input changed).
fn resolve_row(
    input: &Input,
    repo: Option<&str>,
    commit: Option<&str>,
    path: Option<&str>,
) -> Option<Answer> {
    let Ok((slug, prefix)) = row_pair(repo, commit, path) else {
        return Some(unresolved(RowStatus::Invalid, None));
    };
    let path = path.unwrap_or_default();
    let pm = input.matches.pair(input.pairs.get(&slug, &prefix)?)?;
    if let Some(failed) = pm.status.failure() {
        return Some(unresolved(failed, Some(pm.candidates)));
    }
    let members = input.matches.members(&pm);
    let results: Vec<PathResult> = members
        .iter()
        .map(|m| match m.root {
            u64::MAX => PathResult::status(RowStatus::CommitNotFound),
            root => walk_path(input, root, path),
        })
        .collect();
    let holds = |r: &&PathResult| {
        !matches!(
            r.status,
            RowStatus::PathNotFound | RowStatus::CommitNotFound
        )
    };
    let with_path = results.iter().filter(holds).count() as u32;
    let chosen = results.iter().position(|r| holds(&r)).unwrap_or(0);
    let (m, r) = (members.get(chosen)?, results.get(chosen)?);
    let rooted = m.root != u64::MAX;
    Some(Answer {
        resolution: Resolution {
            origin_url: input.origins.get(m.origin as usize).map(|o| o.url.clone()),
            snapshot: rooted.then_some(m.snapshot),
            revision: rooted.then_some(m.revision),
            sha1_git: r.sha1_git,
            permissions: r.permissions,
            status: r.status,
            candidates: Some(pm.candidates),
            candidates_with_path: Some(with_path),
        },
        walks: results.len() as u64,
        root: rooted.then_some(m.root),
    })
}

/// The `repo`, `commit_id` and `rel_path` columns of a batch of `file`.
pub(crate) fn row_columns<'b>(
    file: &Path,
    batch: &'b RecordBatch,
) -> Result<RowColumns<'b>, PhaseError> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(table::str_values)
            .ok_or_else(|| {
                PhaseError::Changed(format!(
                    "metadata file {}: no Utf8 column {name}",
                    file.display()
                ))
            })
    };
    Ok((col("repo")?, col("commit_id")?, col("rel_path")?))
}

/// A batch's `repo`, `commit_id` and `rel_path` values.
pub(crate) type RowColumns<'b> = (
    Vec<Option<&'b str>>,
    Vec<Option<&'b str>>,
    Vec<Option<&'b str>>,
);

/// Resolves the rows of one input batch, in parallel.
fn resolve_batch(
    input: &Input,
    file: &Path,
    batch: &RecordBatch,
) -> Result<Vec<Answer>, PhaseError> {
    let (repo, commit, path) = row_columns(file, batch)?;
    (0..batch.num_rows())
        .into_par_iter()
        .map(|i| {
            resolve_row(input, repo[i], commit[i], path[i]).ok_or_else(|| {
                PhaseError::Changed(format!(
                    "metadata file {}: a row's pair is not in the plan",
                    file.display()
                ))
            })
        })
        .collect()
}

/// Walks every row and writes one resolved file per input file into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<WalkCounts, PhaseError> {
    let mut counts = WalkCounts::default();
    let mut row_id = 0u64;
    let planned: u64 = input.files.iter().map(|f| f.1).sum();
    let mut pl = dsi_progress_logger::progress_logger!(
        item_name = "row",
        display_memory = true,
        expected_updates = Some(planned as usize)
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Walking rows down their paths");
    let budget = ctx.config.options.sort_memory_mb << 20;
    let mut licenses = crate::sort::Sorter::new(&ctx.scratch.join("licenses"), budget, true)
        .map_err(super::plan::PlanError::from)?;
    for (fi, (file, rows)) in input.files.iter().enumerate() {
        let file = Path::new(file);
        let (schema, batches) = table::open(file)?;
        let mut w = ResolvedWriter::create(&ctx.out.join(resolved::file_name(fi)), &schema)?;
        let mut in_file = 0u64;
        for batch in batches {
            let batch = batch?;
            let answers = resolve_batch(&input, file, &batch)?;
            // Rows of a batch share few revisions: each root is listed once per batch.
            let mut roots: Vec<(Sha1Git, u64)> = answers
                .iter()
                .filter_map(|a| Some((a.resolution.revision?, a.root?)))
                .collect();
            roots.sort_unstable();
            roots.dedup();
            for (revision, root) in roots {
                for l in input.root_licenses(revision, root) {
                    licenses.push(l).map_err(super::plan::PlanError::from)?;
                }
            }
            let out: Vec<Resolution> = answers
                .into_iter()
                .map(|a| {
                    counts.status.bump(a.resolution.status);
                    counts.walks += a.walks;
                    counts.rows_with_several_candidates +=
                        (a.resolution.candidates_with_path.unwrap_or(0) > 1) as u64;
                    a.resolution
                })
                .collect();
            w.write(row_id, &batch, &out)?;
            row_id += batch.num_rows() as u64;
            in_file += batch.num_rows() as u64;
            pl.update_with_count(batch.num_rows());
        }
        w.close()?;
        if in_file != *rows {
            return Err(PhaseError::Changed(format!(
                "metadata file {} now has {in_file} rows but was planned with {rows}",
                file.display()
            )));
        }
    }
    pl.done();
    counts.rows = row_id;
    let mut out = FlatWriter::create(&ctx.out.join(LICENSES))?;
    let mut last: Option<Sha1Git> = None;
    for l in licenses.finish().map_err(super::plan::PlanError::from)? {
        let l = l.map_err(super::plan::PlanError::from)?;
        counts.license_files += 1;
        counts.revisions_with_license += (last != Some(l.revision)) as u64;
        last = Some(l.revision);
        out.push(&l)?;
    }
    out.finish()?;
    Ok(counts)
}

/// The walk as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Walk;
    type Counts = WalkCounts;

    fn inputs(_config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(Inputs::new())
    }

    fn run(ctx: &Context) -> Result<WalkCounts, PhaseError> {
        let plan = ctx.upstream(Phase::Plan);
        let names = Names::open(&ctx.upstream(Phase::Names))?;
        let input = Input {
            files: plan_files::read_inputs(&plan)?,
            pairs: PairLookup::open(&plan)?,
            matches: Matches::open(&ctx.upstream(Phase::Match))?,
            origins: super::matching::load_origins(&ctx.upstream(Phase::Scan))?,
            license_names: Input::license_names(&names),
            names,
            entries: Entries::open(&ctx.upstream(Phase::Labels))?,
            maps: NodeMaps::open(ctx.graph())?,
        };
        run(ctx, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Nodes: 0 root dir, 1 dir `src`, 2 file `a.rs`, 3 link `l`, 4 submodule `sub`.
    struct Fixture {
        names: HashMap<&'static str, u64>,
        entries: HashMap<(u64, u64), (u8, u64)>,
    }

    impl Tree for Fixture {
        fn name_id(&self, name: &str) -> Option<u64> {
            self.names.get(name).copied()
        }
        fn entry(&self, dir: u64, name: u64) -> Option<(u8, u64)> {
            self.entries.get(&(dir, name)).copied()
        }
        fn node_type(&self, n: u64) -> Option<NodeType> {
            Some(match n {
                0 | 1 => NodeType::Directory,
                2 | 3 => NodeType::Content,
                4 => NodeType::Revision,
                _ => return None,
            })
        }
        fn node_id(&self, n: u64) -> Option<[u8; 20]> {
            Some([n as u8; 20])
        }
    }

    #[test]
    fn walks_every_kind_of_path() {
        let t = Fixture {
            names: [("src", 10), ("a.rs", 11), ("l", 12), ("sub", 13)].into(),
            entries: [
                ((0, 10), (4, 1)),
                ((1, 11), (1, 2)),
                ((0, 12), (3, 3)),
                ((0, 13), (5, 4)),
            ]
            .into(),
        };
        let walk = |p: &str| walk_path(&t, 0, p);
        let ok = walk("src/a.rs");
        assert_eq!(ok.status, RowStatus::Ok);
        assert_eq!(ok.sha1_git, Some(Sha1Git([2; 20])));
        assert_eq!(ok.permissions, Some(0o100644));
        assert_eq!(walk("l").status, RowStatus::Symlink);
        assert_eq!(walk("l").sha1_git, Some(Sha1Git([3; 20])));
        assert_eq!(walk("src").status, RowStatus::IsDirectory);
        assert_eq!(walk("sub").status, RowStatus::Submodule);
        assert_eq!(walk("sub/x").status, RowStatus::Submodule);
        for missing in ["nope", "src/nope", "src/a.rs/x", "a.rs", "l/x"] {
            assert_eq!(walk(missing).status, RowStatus::PathNotFound, "{missing}");
        }
    }
}
