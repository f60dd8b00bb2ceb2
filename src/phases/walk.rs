//! Phase 6, **path walk**: every row from its revision's root directory down its path, using
//! only the entries the label pass kept, and the `resolved` output.
//!
//! Statuses, in the order they are decided: `invalid` (plan), `origin_not_found`,
//! `commit_not_found`, `commit_not_in_origin` (origin match), then along the path:
//! `path_not_found` (a component is absent, or a file is walked through), `submodule` (the
//! path reaches a gitlink), and at the leaf `ok` (a file), `symlink` (a symbolic link: the
//! content is the link's own blob, its target path) or `is_directory`.
//!
//! Output: [`crate::artifacts::resolved`], one file per input file, rows in input order.
//!
//! Memory: the kept entries (32 bytes each, binary-searched) and a few bytes per row.

use std::collections::HashMap;
use std::path::Path;

use swh_graph::NodeType;

use crate::artifacts::entries::{self, Entry, ENTRIES, NAMES};
use crate::artifacts::matches::{self, PairMatch};
use crate::artifacts::plan::Plan;
use crate::artifacts::resolved::{self, Resolution, ResolvedWriter};
use crate::config::Config;
use crate::graph::NodeMaps;
use crate::model::{Counts, Phase, RowStatus, Sha1Git, Shard, StatusCounts};
use crate::table;

use super::{Context, Inputs, PhaseError};

/// Git mode of each swh-graph permission code.
pub const GIT_MODES: [u32; 6] = [0, 0o100644, 0o100755, 0o120000, 0o040000, 0o160000];

/// Permission code of symbolic links.
const SYMLINK: u8 = 3;

/// The answer for one row's path.
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

/// The entry named `name` in directory `dir`, from entries sorted by (dir, name id).
fn lookup(entries: &[Entry], dir: u64, name: u64) -> Option<(u8, u64)> {
    entries
        .binary_search_by(|e| (e.dir, e.name_id).cmp(&(dir, name)))
        .ok()
        .map(|i| (entries[i].perm, entries[i].target))
}

/// Walks `path` from `root` through the kept entries (sorted by directory and name id).
pub fn walk_path(
    root: u64,
    path: &str,
    names: &HashMap<String, u64>,
    entries: &[Entry],
    node_type: &dyn Fn(u64) -> Option<NodeType>,
    node_hash: &dyn Fn(u64) -> Option<[u8; 20]>,
) -> PathResult {
    let not_found = PathResult::status(RowStatus::PathNotFound);
    let comps: Vec<&str> = path.split('/').collect();
    let mut dir = root;
    for (i, comp) in comps.iter().enumerate() {
        let Some(name) = names.get(*comp) else {
            return not_found;
        };
        let Some((perm, target)) = lookup(entries, dir, *name) else {
            return not_found;
        };
        let last = i + 1 == comps.len();
        let mode = GIT_MODES.get(perm as usize).copied();
        let with = |status| PathResult {
            status,
            sha1_git: None,
            permissions: mode,
        };
        match node_type(target) {
            Some(NodeType::Directory) if !last => dir = target,
            Some(NodeType::Directory) => return with(RowStatus::IsDirectory),
            Some(NodeType::Revision) => return with(RowStatus::Submodule),
            Some(NodeType::Content) if last => {
                return PathResult {
                    sha1_git: node_hash(target).map(Sha1Git),
                    ..with(if perm == SYMLINK {
                        RowStatus::Symlink
                    } else {
                        RowStatus::Ok
                    })
                }
            }
            _ => return not_found,
        }
    }
    not_found
}

/// Resolves every row of the plan.
pub fn resolve(
    maps: &NodeMaps,
    plan: &Plan,
    pairs: &[PairMatch],
    names: &HashMap<String, u64>,
    entries: &[Entry],
) -> Vec<PathResult> {
    let node_type = |n: u64| maps.node_type(n);
    let node_hash = |n: u64| maps.hash(n);
    plan.row_pair
        .iter()
        .zip(&plan.row_path)
        .map(|(&pair, &path)| {
            let (Some(p), Some(path)) = (pairs.get(pair as usize), plan.paths.get(path as usize))
            else {
                return PathResult::status(RowStatus::Invalid);
            };
            match (p.status.failure(), p.root) {
                (Some(failed), _) => PathResult::status(failed),
                (None, Some(root)) => walk_path(root, path, names, entries, &node_type, &node_hash),
                // A matched revision without a root directory (a damaged graph).
                (None, None) => PathResult::status(RowStatus::CommitNotFound),
            }
        })
        .collect()
}

/// Counts of the walk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WalkCounts {
    /// Rows written.
    pub rows: u64,
    /// Rows per status (`status_ok`, ...).
    #[serde(flatten)]
    pub status: StatusCounts<RowStatus>,
}

impl Counts for WalkCounts {
    fn add(&mut self, o: &Self) {
        self.rows += o.rows;
        self.status.merge(&o.status);
    }
}

/// Writes one resolved file per input file into `out`; returns the counts.
pub fn write_resolved(
    plan: &Plan,
    pairs: &[PairMatch],
    results: &[PathResult],
    out: &Path,
) -> Result<WalkCounts, PhaseError> {
    let mut counts = WalkCounts::default();
    let mut row_id = 0usize;
    for (fi, (file, _)) in plan.files.iter().enumerate() {
        let file = Path::new(file);
        let (schema, batches) = table::open(file)?;
        let mut w = ResolvedWriter::create(&out.join(resolved::file_name(fi)), &schema)?;
        for batch in batches {
            let batch = batch?;
            let rows = row_id..row_id + batch.num_rows();
            row_id = rows.end;
            let Some(results) = results.get(rows.clone()) else {
                return Err(PhaseError::Changed(format!(
                    "metadata file {} has more rows than when it was planned",
                    file.display()
                )));
            };
            let out_rows: Vec<Resolution> = rows
                .zip(results)
                .map(|(r, res)| {
                    counts.status.bump(res.status);
                    let pair = plan.row_pair.get(r).and_then(|&p| pairs.get(p as usize));
                    let resolved =
                        res.status != RowStatus::Invalid && pair.is_some_and(|p| p.root.is_some());
                    Resolution {
                        origin_url: pair.and_then(|p| p.origin_url.clone()),
                        snapshot: pair.filter(|_| resolved).and_then(|p| p.snapshot),
                        revision: pair.filter(|_| resolved).and_then(|p| p.revision),
                        sha1_git: res.sha1_git,
                        permissions: res.permissions,
                        status: res.status,
                        candidates: pair.map(|p| p.candidates),
                    }
                })
                .collect();
            w.write((row_id - batch.num_rows()) as u64, &batch, &out_rows)?;
        }
        w.close()?;
    }
    if row_id != results.len() {
        return Err(PhaseError::Changed(format!(
            "the input now has {row_id} rows but was planned with {}",
            results.len()
        )));
    }
    counts.rows = row_id as u64;
    Ok(counts)
}

/// What the walk reads.
pub struct Input<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The matches, by pair id.
    pub pairs: Vec<PairMatch>,
    /// The kept entries, sorted.
    pub entries: Vec<Entry>,
    /// The requested names' label ids.
    pub names: HashMap<String, u64>,
    /// The node tables.
    pub maps: NodeMaps,
}

/// Walks every row and writes the resolved files into `ctx.out`.
pub fn run(ctx: &Context, input: Input) -> Result<WalkCounts, PhaseError> {
    let results = resolve(
        &input.maps,
        input.plan,
        &input.pairs,
        &input.names,
        &input.entries,
    );
    write_resolved(input.plan, &input.pairs, &results, ctx.out)
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
        let plan = Plan::load(&ctx.upstream(Phase::Plan))?;
        let labels = ctx.upstream(Phase::Labels);
        let input = Input {
            plan: &plan,
            pairs: matches::read(&ctx.upstream(Phase::Match).join(matches::PAIRS))?,
            entries: entries::read_entries(&labels.join(ENTRIES))?,
            names: entries::read_names(&labels.join(NAMES))?,
            maps: NodeMaps::open(ctx.graph())?,
        };
        run(ctx, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes: 0 root dir, 1 dir `src`, 2 file `a.rs`, 3 link `l`, 4 submodule `sub`.
    fn fixture() -> (HashMap<String, u64>, Vec<Entry>) {
        let names: HashMap<String, u64> = [("src", 10), ("a.rs", 11), ("l", 12), ("sub", 13)]
            .into_iter()
            .map(|(n, i)| (n.to_string(), i))
            .collect();
        let mut entries = vec![
            Entry {
                dir: 0,
                name_id: 10,
                perm: 4,
                target: 1,
            },
            Entry {
                dir: 1,
                name_id: 11,
                perm: 1,
                target: 2,
            },
            Entry {
                dir: 0,
                name_id: 12,
                perm: 3,
                target: 3,
            },
            Entry {
                dir: 0,
                name_id: 13,
                perm: 5,
                target: 4,
            },
        ];
        entries.sort();
        (names, entries)
    }

    #[test]
    fn walks_every_kind_of_path() {
        let (names, entries) = fixture();
        let ty = |n: u64| {
            Some(match n {
                0 | 1 => NodeType::Directory,
                2 | 3 => NodeType::Content,
                4 => NodeType::Revision,
                _ => return None,
            })
        };
        let hash = |n: u64| Some([n as u8; 20]);
        let walk = |p: &str| walk_path(0, p, &names, &entries, &ty, &hash);
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
